import { isInitialized, worldGroup } from '@omnitrain/core';
import { tensorBytes, writeTensorBytes } from './dcp/sharded-tensor.js';
import { coreDTypeOf, isNativeDType, safetensorsItemSize } from './dtypes.js';
import { type OpenOptions, SourceBase, type TensorInfo } from './reader.js';
import { type ParallelTensor, type RowBlock, rowBlockOf } from './row-block.js';
import { openSafetensorsDir } from './sharded-reader.js';

/** Options of {@link readSafetensorsDirParallel}. */
export interface ParallelReadOptions extends OpenOptions {
  /** This rank, for error messages (default: the world rank when initialized). */
  rank?: number;
}

/** What {@link readSafetensorsDirParallel} did. */
export interface ParallelReadResult {
  /** Tensors filled. */
  tensors: number;
  /** Bytes of tensor data read (this rank's rows only). */
  bytesRead: number;
}

/**
 * Load a Hugging Face checkpoint (`model.safetensors` or an index and its shards) into this
 * rank's tensors: each target is a whole tensor or a row block ({@link dim0Shard}, parallel-fsdp's
 * `shardedStateDict` entries) and receives exactly its rows, read with positional reads of only
 * those rows' bytes (straight into the tensor's memory when the dtype matches; converted
 * otherwise). No communication: every rank calls it independently. Every target's name, global
 * shape and rows are checked against the headers before anything is read (errors name the tensor
 * and the rank); a failing read can leave the targets partly filled.
 */
export function readSafetensorsDirParallel(
  dir: string,
  targets: Record<string, ParallelTensor> | Map<string, ParallelTensor>,
  opts: ParallelReadOptions = {},
): ParallelReadResult {
  const rank = opts.rank ?? (isInitialized() ? worldGroup().rank : undefined);
  const who = rank === undefined ? 'this rank' : `rank ${rank}`;
  const src = openSafetensorsDir(dir, opts);
  try {
    const entries = targets instanceof Map ? [...targets.entries()] : Object.entries(targets);
    const plan: [string, RowBlock, TensorInfo][] = [];
    for (const [name, leaf] of entries) {
      const b = rowBlockOf(name, leaf, who);
      if (!src.has(name)) throw new Error(`safetensors ${dir}: no tensor '${name}' (wanted by ${who})`);
      const info = src.info(name);
      if (info.shape.join(',') !== b.shape.join(',')) {
        throw new Error(
          `safetensors ${info.file}: tensor '${name}' is [${info.shape}] but ${who}'s target describes ` +
            `a global shape [${b.shape}]`,
        );
      }
      plan.push([name, b, info]);
    }
    let bytesRead = 0;
    for (const [name, b, info] of plan) {
      if (!b.rows || !b.local.numel) continue;
      const inner = info.shape.slice(1).reduce((a, c) => a * c, 1);
      const direct =
        src instanceof SourceBase &&
        isNativeDType(info.dtype) &&
        coreDTypeOf(info.dtype) === b.local.dtype &&
        b.local.device === 'cpu';
      if (direct) {
        const dst = tensorBytes(b.local, `${who}: tensor '${name}'`);
        src.readBytesInto(name, b.rowStart * inner * safetensorsItemSize(info.dtype), dst);
        bytesRead += dst.length;
      } else {
        const t = info.shape.length
          ? src.readRows(name, b.rowStart, b.rowStart + b.rows, { dtype: b.local.dtype, device: 'cpu' })
          : src.readTensor(name, { dtype: b.local.dtype, device: 'cpu' });
        try {
          writeTensorBytes(b.local, tensorBytes(t, name));
        } finally {
          t.dispose();
        }
        bytesRead += b.rows * inner * safetensorsItemSize(info.dtype);
      }
    }
    return { tensors: plan.length, bytesRead };
  } finally {
    src.close();
  }
}
