/**
 * @omnitrain/parallel-fsdp — fully sharded data parallel (FSDP2 semantics): per-parameter Shard(0), prefetch, mixed precision, HSDP.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';
import { fullyShard } from './fully-shard.js';

export { checkOptimizer, clipGradNorm, finalizeBackward } from './clip.js';
export type { FSDPEvent } from './fsdp-unit.js';
export {
  type FSDPModule,
  type FSDPOptions,
  fullyShard,
  isFullySharded,
  type MixedPrecision,
} from './fully-shard.js';
export { type TrainingStateBytes, trainingStateBytes } from './memory.js';
export { type ParamLayout, validRows } from './shard-layout.js';
export {
  disposeShardedStateDict,
  isRowShard,
  loadShardedOptimStateDict,
  type RowShard,
  type ShardedOptimStateDict,
  type ShardedStateDictOptions,
  shardedOptimStateDict,
  shardedStateDict,
} from './sharded-state-dict.js';
export { fullStateDict, loadFullStateDict } from './state-dict.js';

/** The plugin object: `registry.use(plugin)` registers the 'fsdp' parallel strategy (`{ fullyShard }`). */
export const plugin: Plugin = {
  name: 'parallel-fsdp',
  version: '0.1.0',
  coreRange: '^0.1',
  setup(r) {
    r.parallel.register('fsdp', { fullyShard });
  },
};
