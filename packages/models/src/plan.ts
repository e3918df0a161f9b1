// The parallel plan (DESIGN.md §4): which modules are the repeated blocks (FSDP units), which
// are attention (Ulysses), which hold experts (EP), and the Hugging Face name of every parameter.
import { type nn, noGrad, type Tensor, tidy } from '@omnitrain/core';
import { Attention } from './attention.js';
import { DecoderLayer } from './model.js';
import { Experts } from './moe.js';

/** An attention module and its head layout (Ulysses splits heads across ranks). */
export interface AttentionEntry {
  /** Fully qualified module name, e.g. `model.layers.0.self_attn`. */
  module: string;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
}

/** A group of experts held as stacked parameters (dimension 0 = expert), for expert parallelism. */
export interface ExpertsEntry {
  /** Fully qualified module name, e.g. `model.layers.0.mlp.experts`. */
  module: string;
  /** Its stacked parameters' fully qualified names (`....experts.gate_proj`, ...). */
  params: string[];
  numExperts: number;
}

/** How one parameter is stored in a Hugging Face checkpoint. */
export interface HfMapping {
  /** Our fully qualified parameter name. */
  name: string;
  /**
   * Hugging Face tensor names: one (identity or renamed), or for stacked experts one per expert,
   * each the slice `[e]` of dimension 0.
   */
  hfNames: string[];
  /** True when `hfNames[e]` is row `e` of a stacked parameter. */
  stacked: boolean;
}

/** A model's parallel plan; strategies read it, model code never calls a collective. */
export interface ParallelPlan {
  /** Repeated blocks (FSDP units), in forward order. */
  blocks: string[];
  /** Attention modules (Ulysses). */
  attention: AttentionEntry[];
  /** Expert groups (EP). */
  experts: ExpertsEntry[];
  /** Every parameter's Hugging Face names, in parameter order. */
  hf: HfMapping[];
  /** Hugging Face name → our parameter name and, for stacked experts, the expert index. */
  fromHf(hfName: string): { name: string; index?: number } | undefined;
}

/** Build the plan of `model` by walking its modules. */
export function parallelPlanOf(model: nn.Module): ParallelPlan {
  const blocks: string[] = [];
  const attention: AttentionEntry[] = [];
  const experts: ExpertsEntry[] = [];
  const stackedParams = new Map<string, number>();
  for (const [name, m] of model.namedModules()) {
    if (m instanceof DecoderLayer) blocks.push(name);
    if (m instanceof Attention) {
      attention.push({
        module: name,
        numHeads: m.cfg.numAttentionHeads,
        numKeyValueHeads: m.cfg.numKeyValueHeads,
        headDim: m.cfg.headDim,
      });
    }
    if (m instanceof Experts) {
      const e = m.numExperts;
      const params = m.namedParameters({ prefix: name, recurse: false }).map(([n]) => n);
      experts.push({ module: name, params, numExperts: e });
      for (const p of params) stackedParams.set(p, e);
    }
  }
  const hf: HfMapping[] = [];
  const reverse = new Map<string, { name: string; index?: number }>();
  for (const [name] of model.namedParameters()) {
    const e = stackedParams.get(name);
    if (e === undefined) {
      hf.push({ name, hfNames: [name], stacked: false });
      reverse.set(name, { name });
    } else {
      const dot = name.lastIndexOf('.');
      const base = name.slice(0, dot);
      const leaf = name.slice(dot + 1);
      const hfNames = Array.from({ length: e }, (_, i) => `${base}.${i}.${leaf}.weight`);
      hf.push({ name, hfNames, stacked: true });
      hfNames.forEach((n, index) => {
        reverse.set(n, { name, index });
      });
    }
  }
  return { blocks, attention, experts, hf, fromHf: (n) => reverse.get(n) };
}

/**
 * The model's tensors under their Hugging Face names, as views sharing the parameters' storage
 * (stacked expert weights become one [..] view per expert; nothing is copied). Every value is a
 * new handle owned by the caller: dispose them all when done (the parameters are unaffected).
 */
export function hfStateDict(model: nn.Module, plan = parallelPlanOf(model)): Map<string, Tensor> {
  const params = new Map(model.namedParameters());
  const out = new Map<string, Tensor>();
  for (const m of plan.hf) {
    const p = params.get(m.name)!;
    noGrad(() => {
      if (!m.stacked) out.set(m.hfNames[0]!, p.detach());
      else {
        m.hfNames.forEach((n, e) => {
          out.set(
            n,
            tidy(() =>
              p
                .detach()
                .slice0(e, e + 1)
                .reshape(p.shape.slice(1)),
            ),
          );
        });
      }
    });
  }
  return out;
}
