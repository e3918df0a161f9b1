// The whole training state as one `dcp` checkpoint (@omnitrain/checkpoint): the model and the
// optimizer as each rank's FSDP rows (no gathering; loadable at any world size), the LR
// schedule, the data lanes' iterator states, the RNG and the step.

import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  dim0Shard,
  findLatestCheckpoint,
  loadCheckpoint,
  openSafetensorsDir,
  type ParallelTensor,
  readMetadata,
  readSafetensorsDirParallel,
  type SaveHandle,
  saveCheckpoint,
  writeSafetensorsDirParallel,
} from '@omnitrain/checkpoint';
import {
  defaultGenerator,
  type GeneratorState,
  keep,
  type nn,
  noGrad,
  type optim,
  type ProcessGroup,
  Tensor,
} from '@omnitrain/core';
import { architectureFor, type CausalLM, toHfConfig } from '@omnitrain/models';
import {
  disposeShardedStateDict,
  isRowShard,
  loadShardedOptimStateDict,
  type RowShard,
  type ShardedOptimStateDict,
  shardedOptimStateDict,
  shardedStateDict,
} from '@omnitrain/parallel-fsdp';
import type { LaneState, TrainData } from './train-data.js';

/** What the trainer puts in a checkpoint besides tensors (rank 0's copy is what `omnitrain generate` reads). */
export interface TrainMeta {
  /** Ranks that saved it. */
  world_size: number;
  /** The Hugging Face config.json of the model. */
  model_config: Record<string, unknown>;
  /** `data.tokenizer` of the run ('byte' or a tokenizer.json path). */
  tokenizer: string;
  /** The run's whole configuration. */
  config: unknown;
}

/** The parts of a training run that a checkpoint holds. */
export interface TrainStateParts {
  /** The model (fullyShard'ed or not). */
  model: nn.Module;
  opt: optim.Optimizer<{ lr: number }>;
  schedule: optim.LambdaLR;
  data: TrainData;
}

/** The saved non-tensor tree (per rank). */
interface SavedTree {
  optim: ShardedOptimStateDict;
  schedule: optim.SchedulerStateDict;
  data: { lanes: Record<string, LaneState> };
  rng: GeneratorState;
  step: number;
  meta: TrainMeta;
}

/** FSDP row shards → dcp sharded tensors (other values as they are). */
function toDcp(v: unknown): unknown {
  if (isRowShard(v)) return dim0Shard(v.local, v.globalRows, v.rowStart);
  if (v instanceof Tensor || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toDcp);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toDcp(x)]));
}

/**
 * Save checkpoint `step` of a run under `root` (`root/step-N`, atomic; the newest `keep` are
 * kept). Every rank calls it. With `async`, tensors are copied to host and written in the
 * background (the next save or {@link waitForTrainState} waits for it).
 */
export function saveTrainState(
  root: string,
  step: number,
  parts: TrainStateParts,
  meta: TrainMeta,
  opts: { keep: number; async?: boolean; group?: ProcessGroup | null },
): SaveHandle {
  const model = shardedStateDict(parts.model);
  const optimState = shardedOptimStateDict(parts.model, parts.opt);
  try {
    const tree = {
      model: toDcp(model),
      optim: toDcp(optimState),
      schedule: parts.schedule.stateDict(),
      data: { lanes: parts.data.state() },
      rng: defaultGenerator().getState(),
      step,
      meta,
    };
    return saveCheckpoint(root, step, tree, {
      keep: opts.keep,
      async: opts.async ?? false,
      ...(opts.group ? { coordinator: opts.group } : {}),
    });
  } finally {
    disposeShardedStateDict(model);
    disposeShardedStateDict(optimState);
  }
}

/** The newest complete checkpoint under `root`, or null. */
export function latestTrainState(root: string): { step: number; dir: string } | null {
  return findLatestCheckpoint(root);
}

/** The run metadata saved in checkpoint folder `dir` (rank 0's). */
export function readTrainMeta(dir: string): TrainMeta {
  const meta = readMetadata(dir);
  const m = (meta.states[0] as Partial<SavedTree> | undefined)?.meta;
  if (!m?.model_config) throw new Error(`${dir}: not a checkpoint written by omnitrain train (no meta.model_config)`);
  return m;
}

function disposeExtra(v: unknown, keepSet: Set<Tensor>): void {
  if (v instanceof Tensor) {
    if (!keepSet.has(v)) v.dispose();
  } else if (v && typeof v === 'object') for (const x of Object.values(v)) disposeExtra(x, keepSet);
}

function locals(v: unknown, out: Set<Tensor>): Set<Tensor> {
  if (v instanceof Tensor) out.add(v);
  else if (isRowShard(v)) out.add(v.local);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) locals(x, out);
  return out;
}

/**
 * Load checkpoint folder `dir` into the parts of this run, at any world size: model and
 * optimizer rows are read in place (resharding), schedule, RNG and this rank's data lanes
 * (from whichever rank saved them) are restored. Returns the step it was saved at.
 */
export async function loadTrainState(dir: string, parts: TrainStateParts): Promise<{ step: number; meta: TrainMeta }> {
  const model = shardedStateDict(parts.model, { allReplicas: true });
  const optimState = shardedOptimStateDict(parts.model, parts.opt, { allReplicas: true, create: true });
  try {
    // Schedule, RNG and step are the same on every rank: take rank 0's (it may have saved with fewer ranks).
    const res = loadCheckpoint(dir, { model: toDcp(model), optim: toDcp(optimState) }, { stateOf: 0 });
    const st = res.state as SavedTree;
    loadShardedOptimStateDict(parts.model, parts.opt, st.optim);
    // Rank 0's optimizer state may reference rows this rank does not hold: those were materialized.
    disposeExtra(st.optim, locals(optimState, new Set()));
    parts.schedule.loadStateDict(st.schedule);
    defaultGenerator().setState(st.rng);
    const lanes: Record<string, LaneState> = {};
    for (const s of readMetadata(dir).states as SavedTree[]) Object.assign(lanes, s.data.lanes);
    await parts.data.restore(lanes);
    if (st.step !== res.step) throw new Error(`${dir}: folder of step ${res.step} holds the state of step ${st.step}`);
    return { step: st.step, meta: st.meta };
  } finally {
    disposeShardedStateDict(model);
    disposeShardedStateDict(optimState);
  }
}

/**
 * This rank's part of the model under Hugging Face names: FSDP row shards (views of the shards),
 * whole tensors for parameters FSDP does not manage, and for stacked experts one view per expert
 * row this rank holds. `views` are the handles made here (dispose them; the shards are unaffected).
 */
function hfParts(model: CausalLM, allReplicas: boolean): { tensors: Map<string, ParallelTensor>; views: Tensor[] } {
  const sd: Record<string, RowShard | Tensor> = shardedStateDict(model, { allReplicas });
  const tensors = new Map<string, ParallelTensor>();
  const views: Tensor[] = [];
  for (const v of Object.values(sd)) if (isRowShard(v)) views.push(v.local);
  noGrad(() => {
    for (const m of model.parallelPlan().hf) {
      const v = sd[m.name];
      if (v === undefined) continue; // no row of it on this rank (or an HSDP replica other than 0)
      if (!m.stacked) tensors.set(m.hfNames[0]!, v);
      else {
        const local = isRowShard(v) ? v.local : v;
        const first = isRowShard(v) ? v.rowStart : 0;
        const inner = local.shape.slice(1);
        for (let i = 0; i < local.shape[0]!; i++) {
          const t = keep(local.slice0(i, i + 1).reshape(inner));
          views.push(t);
          tensors.set(m.hfNames[first + i]!, t);
        }
      }
    }
  });
  return { tensors, views };
}

/**
 * Write the model as a Hugging Face folder `dir` (config.json + safetensors, byte for byte what
 * one process's `saveToPretrained` writes) with every rank writing only its own FSDP rows
 * (`writeSafetensorsDirParallel`: no gather). Every rank calls it.
 */
export function exportHfParallel(model: CausalLM, dir: string, group: ProcessGroup | null): void {
  const { tensors, views } = hfParts(model, false);
  try {
    writeSafetensorsDirParallel(dir, tensors, {
      metadata: { format: 'pt' },
      ...(group ? { coordinator: group } : {}),
    });
  } finally {
    for (const t of views) t.dispose();
  }
  if ((group?.rank ?? 0) === 0) {
    const cfg = toHfConfig(model.config);
    cfg.architectures = [architectureFor(model.config.modelType).hfClass];
    cfg.torch_dtype = model.outputWeight.dtype;
    const tmp = join(dir, `.config.json.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`);
    renameSync(tmp, join(dir, 'config.json'));
  }
  group?.barrier().wait();
}

/** Tensors Hugging Face folders may hold that are no parameter (old rotary buffers). */
const IGNORED_HF = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * Load the weights of Hugging Face folder `dir` into the (fullyShard'ed) model's shards: each rank
 * reads only its rows' byte ranges (`readSafetensorsDirParallel`), converting the dtype if needed.
 * Strict like `fromPretrained`: a missing tensor, a shape that differs or a tensor that is no
 * parameter is an error naming it.
 */
export function loadHfParallel(model: CausalLM, dir: string): { bytesRead: number } {
  const plan = model.parallelPlan();
  const known = new Set(plan.hf.flatMap((m) => m.hfNames));
  const src = openSafetensorsDir(dir);
  try {
    const extra = src
      .keys()
      .filter(
        (k) => !known.has(k) && !IGNORED_HF.test(k) && !(model.config.tieWordEmbeddings && k === 'lm_head.weight'),
      );
    const missing = [...known].filter((k) => !src.has(k));
    if (extra.length || missing.length) {
      throw new Error(
        `model.pretrained ${dir}: ${missing.length ? `missing tensor(s) ${missing.slice(0, 8).join(', ')}` : ''}` +
          `${missing.length && extra.length ? '; ' : ''}${extra.length ? `unexpected tensor(s) ${extra.slice(0, 8).join(', ')}` : ''}`,
      );
    }
  } finally {
    src.close();
  }
  const { tensors, views } = hfParts(model, true);
  try {
    return { bytesRead: readSafetensorsDirParallel(dir, tensors).bytesRead };
  } finally {
    for (const t of views) t.dispose();
  }
}
