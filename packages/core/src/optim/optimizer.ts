// Optimizer base: parameter groups with their hyper-parameters, per-parameter state, and a
// state dict in PyTorch's layout (state by parameter index, groups with parameter indices).

import { noGrad } from '../autograd/grad-mode.js';
import type { DType } from '../dtype.js';
import { keep } from '../memory.js';
import { transferred } from '../nn/transfer.js';
import { dispatch1 } from '../ops/dispatch.js';
import { Tensor } from '../tensor.js';

/** Per-parameter optimizer state: tensors (moments, buffers) and numbers (step count). */
export type ParamState = Record<string, Tensor | number>;

/** A group of parameters sharing hyper-parameters. */
export type ParamGroup<O> = O & { params: Tensor[] };

/** What the constructor accepts: parameters, or groups that override some defaults. */
export type ParamsInput<O> = Iterable<Tensor> | (Partial<O> & { params: Iterable<Tensor> })[];

/**
 * An optimizer's state, PyTorch's layout: `state[i]` for the i-th parameter counting through
 * the groups in order, and each group's hyper-parameters with `params` as those indices.
 * Tensors are the optimizer's own (not copies): read them, do not dispose them.
 */
export interface OptimizerStateDict {
  state: Record<number, ParamState>;
  paramGroups: (Record<string, unknown> & { params: number[] })[];
}

/** The dtype optimizer state is kept in for a parameter: float64 for float64, else float32. */
export function stateDTypeOf(param: Tensor): DType {
  return param.dtype === 'float64' ? 'float64' : 'float32';
}

/** A kept (never tidied) zero tensor shaped like `param`, in the state dtype, on its device. */
export function zeroState(param: Tensor): Tensor {
  const t = Tensor.empty(param.shape, stateDTypeOf(param), param.device);
  if (t.device !== 'meta' && t.numel) dispatch1('fill_', [t], { value: 0 });
  return keep(t);
}

/** Base class of optimizers (`torch.optim.Optimizer`). Subclasses implement `step()`. */
export abstract class Optimizer<O extends { lr: number }> {
  /** Hyper-parameters used where a group does not set them. */
  readonly defaults: O;
  /** Parameter groups; schedulers change `lr` here. */
  readonly paramGroups: ParamGroup<O>[] = [];
  /** State per parameter (created on its first step). */
  readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamsInput<O>, defaults: O) {
    this.defaults = { ...defaults };
    const list = [...(params as Iterable<unknown>)];
    if (!list.length) throw new Error(`${this.constructor.name}: got an empty parameter list`);
    if (list[0] instanceof Tensor)
      this.addParamGroup({ params: list as Tensor[] } as Partial<O> & { params: Tensor[] });
    else for (const g of list as (Partial<O> & { params: Iterable<Tensor> })[]) this.addParamGroup(g);
  }

  /** Add a group; unset hyper-parameters come from the defaults. A parameter may be in one group only. */
  addParamGroup(group: Partial<O> & { params: Iterable<Tensor> }): void {
    const params = [...group.params];
    const where = this.constructor.name;
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    for (const p of params) {
      if (!(p instanceof Tensor)) throw new Error(`${where}: parameters must be tensors`);
      if (!p.isLeaf) throw new Error(`${where}: can't optimize a non-leaf tensor (#${p.id} ${p.name ?? ''})`);
      if (!p.isFloatingPoint) throw new Error(`${where}: can't optimize a ${p.dtype} tensor`);
      if (seen.has(p)) throw new Error(`${where}: parameter ${p.name ?? `#${p.id}`} appears in more than one group`);
      seen.add(p);
    }
    const merged = { ...this.defaults, ...group, params } as ParamGroup<O>;
    this.validateGroup(merged);
    this.paramGroups.push(merged);
  }

  /** Check a group's hyper-parameters (subclasses add theirs). */
  protected validateGroup(group: ParamGroup<O>): void {
    if (!Number.isFinite(group.lr) || group.lr < 0)
      throw new Error(`${this.constructor.name}: invalid learning rate ${group.lr}`);
  }

  /** Update the parameters from their `.grad` (parameters without a gradient are skipped). */
  abstract step(): void;

  /** Clear the gradients of every parameter: dispose and set to null (default), or zero them. */
  zeroGrad(setToNone = true): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (!p.grad) continue;
        if (setToNone) {
          p.grad.dispose();
          p.grad = null;
        } else if (p.grad.device !== 'meta') dispatch1('fill_', [p.grad], { value: 0 });
      }
    }
  }

  /** State and groups in PyTorch's layout (see `OptimizerStateDict`). */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    const paramGroups: OptimizerStateDict['paramGroups'] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const { params, ...hyper } = g;
      const ids: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s) state[index] = { ...s };
        ids.push(index++);
      }
      paramGroups.push({ ...structuredClone(hyper), params: ids });
    }
    return { state, paramGroups };
  }

  /**
   * Load what `stateDict()` gave (possibly from a checkpoint): hyper-parameters per group, and
   * state tensors copied onto each parameter's device in the dtype the optimizer keeps state in.
   * The group layout must match (same number of groups and parameters per group).
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const where = `${this.constructor.name}.loadStateDict`;
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `${where}: the state dict has ${sd.paramGroups.length} parameter groups, the optimizer ${this.paramGroups.length}`,
      );
    }
    const byIndex: Tensor[] = [];
    sd.paramGroups.forEach((g, i) => {
      const mine = this.paramGroups[i]!;
      if (g.params.length !== mine.params.length) {
        throw new Error(
          `${where}: group ${i} has ${g.params.length} parameters in the state dict, ${mine.params.length} in the optimizer`,
        );
      }
      g.params.forEach((id, k) => {
        byIndex[id] = mine.params[k]!;
      });
    });
    for (const [id, s] of Object.entries(sd.state)) {
      const p = byIndex[Number(id)];
      if (!p) throw new Error(`${where}: state for parameter index ${id}, which no group lists`);
      for (const [key, v] of Object.entries(s)) {
        if (v instanceof Tensor && v.numel !== p.numel) {
          throw new Error(
            `${where}: state '${key}' of parameter ${id} has shape ${JSON.stringify(v.shape)}, the parameter ${JSON.stringify(p.shape)}`,
          );
        }
      }
    }
    noGrad(() => {
      this.disposeState();
      for (const [id, s] of Object.entries(sd.state)) {
        const p = byIndex[Number(id)]!;
        const copy: ParamState = {};
        for (const [key, v] of Object.entries(s)) {
          if (v instanceof Tensor) {
            const dtype = v.isFloatingPoint ? stateDTypeOf(p) : v.dtype;
            const moved = transferred(v, p.device, dtype) ?? dispatch1('cast', [v], { dtype });
            copy[key] = keep(moved.shape.length === p.shape.length ? moved : reshaped(moved, p.shape));
          } else copy[key] = v;
        }
        this.state.set(p, copy);
      }
      sd.paramGroups.forEach((g, i) => {
        const { params: _ids, ...hyper } = g;
        Object.assign(this.paramGroups[i]!, structuredClone(hyper));
      });
    });
  }

  /** Free every state tensor (the optimizer starts over on its next step). */
  disposeState(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
  }

  /** Free the state; the optimizer must not be used afterwards. */
  dispose(): void {
    this.disposeState();
  }
}

function reshaped(t: Tensor, shape: readonly number[]): Tensor {
  const r = t.reshape(shape);
  t.dispose();
  return r;
}
