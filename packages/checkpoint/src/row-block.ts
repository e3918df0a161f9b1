import type { Tensor } from '@omnitrain/core';
import { isShardedTensor, isTensor, type ShardedTensor } from './dcp/sharded-tensor.js';
import { type SafetensorsDType, safetensorsDTypeOf } from './dtypes.js';

/**
 * Rows of dim 0 of a global tensor as parallel-fsdp's `shardedStateDict` describes them
 * (matched by shape, so the packages need not import each other).
 */
export interface RowShardLike {
  readonly kind: 'fsdp-rows';
  /** This rank's rows (contiguous). */
  readonly local: Tensor;
  /** Shape of the whole tensor. */
  readonly globalShape: readonly number[];
  /** First row of `local` in the whole tensor. */
  readonly rowStart: number;
}

/**
 * What the parallel Hugging Face export and import take per tensor: a whole tensor (the same on
 * every rank that has it), a {@link ShardedTensor} that splits only dim 0 ({@link dim0Shard}), or
 * a {@link RowShardLike}.
 */
export type ParallelTensor = Tensor | ShardedTensor | RowShardLike;

/** @internal A tensor leaf as rows `[rowStart, rowStart + rows)` of a global tensor. */
export interface RowBlock {
  local: Tensor;
  /** Safetensors dtype. */
  dtype: SafetensorsDType;
  /** Global shape. */
  shape: number[];
  rowStart: number;
  /** Rows held (for a 0-d tensor: 1). */
  rows: number;
  /** A whole tensor (not a row block). */
  replicated: boolean;
}

/** @internal Describe a leaf as a row block, checking that it is one; errors name the tensor and `who`. */
export function rowBlockOf(name: string, leaf: ParallelTensor, who: string): RowBlock {
  const fail = (msg: string): never => {
    throw new Error(`tensor '${name}' on ${who}: ${msg}`);
  };
  if (isTensor(leaf)) {
    if (leaf.isDisposed) fail('the tensor is disposed');
    if (leaf.device === 'meta') fail("the tensor is on 'meta' and has no data");
    return {
      local: leaf,
      dtype: safetensorsDTypeOf(leaf.dtype),
      shape: [...leaf.shape],
      rowStart: 0,
      rows: leaf.shape.length ? leaf.shape[0]! : 1,
      replicated: true,
    };
  }
  let local: Tensor;
  let shape: number[];
  let rowStart: number;
  if (isShardedTensor(leaf)) {
    local = leaf.local;
    shape = [...leaf.globalShape];
    rowStart = leaf.offsets[0] ?? 0;
    if (leaf.offsets.some((o, d) => d > 0 && o !== 0)) {
      fail(`block at offsets [${leaf.offsets}] splits a dim other than 0 (only row blocks map to byte ranges)`);
    }
  } else if ((leaf as RowShardLike)?.kind === 'fsdp-rows') {
    const r = leaf as RowShardLike;
    local = r.local;
    shape = [...r.globalShape];
    rowStart = r.rowStart;
  } else {
    return fail('not a tensor, a dim0Shard or an fsdp row shard');
  }
  if (!isTensor(local) || local.isDisposed) fail('the local block is not a live tensor');
  if (local.device === 'meta') fail("the local block is on 'meta' and has no data");
  if (!shape.length) fail('a 0-d tensor has no rows to split (pass the tensor itself)');
  if (local.shape.length !== shape.length || local.shape.some((n, d) => d > 0 && n !== shape[d])) {
    fail(`local block [${local.shape}] does not match the global shape [${shape}] (only dim 0 may differ)`);
  }
  const rows = local.shape[0]!;
  if (!(Number.isSafeInteger(rowStart) && rowStart >= 0 && rowStart + rows <= shape[0]!)) {
    fail(`rows [${rowStart}, ${rowStart + rows}) are outside dim 0 of the global shape [${shape}]`);
  }
  return { local, dtype: safetensorsDTypeOf(local.dtype), shape, rowStart, rows, replicated: false };
}
