// The whole training state as one `dcp` checkpoint (@omnitrain/checkpoint): the model and the
// optimizer as each rank's FSDP rows (no gathering; loadable at any world size), the LR
// schedule, the data lanes' iterator states, the RNG and the step.

import {
  dim0Shard,
  findLatestCheckpoint,
  loadCheckpoint,
  readMetadata,
  type SaveHandle,
  saveCheckpoint,
} from '@omnitrain/checkpoint';
import { defaultGenerator, type GeneratorState, type nn, type optim, type ProcessGroup, Tensor } from '@omnitrain/core';
import {
  disposeShardedStateDict,
  isRowShard,
  loadShardedOptimStateDict,
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
