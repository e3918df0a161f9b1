import type { Tensor } from '@omnitrain/core';
import { type ParallelReadOptions, type ParallelReadResult, readSafetensorsDirParallel } from './parallel-read.js';
import { type ParallelWriteOptions, type ParallelWriteResult, writeSafetensorsDirParallel } from './parallel-write.js';
import type { OpenOptions, ReadOptions, SafetensorsSource } from './reader.js';
import type { ParallelTensor } from './row-block.js';
import { openSafetensorsDir } from './sharded-reader.js';
import { type TensorDict, type WriteDirOptions, type WriteResult, writeSafetensorsDir } from './writer.js';

/** Options of {@link CheckpointFormat.load}. */
export interface LoadOptions extends ReadOptions, OpenOptions {
  /** Load only these tensors (default: all). */
  names?: readonly string[];
}

/**
 * A checkpoint format as registered in `registry.checkpointFormats`: `load` reads a directory
 * into a state dict (the caller owns and disposes the tensors), `open` gives random access
 * without reading the data, `save` writes a state dict.
 */
export interface CheckpointFormat {
  /** Registry name. */
  readonly name: string;
  /** Read every tensor (or `opts.names`) of `dir` onto `opts.device`, converted to `opts.dtype`. */
  load(dir: string, opts?: LoadOptions): Record<string, Tensor>;
  /** Open `dir` for random access (byte ranges, row ranges); close it when done. */
  open(dir: string, opts?: OpenOptions): SafetensorsSource;
  /** Write `stateDict` into `dir`, sharded by `opts.maxShardBytes`. */
  save(stateDict: TensorDict, dir: string, opts?: WriteDirOptions): WriteResult;
  /** Every rank writes its rows of a sharded state dict into one checkpoint (see {@link writeSafetensorsDirParallel}). */
  saveParallel?(
    tensors: Record<string, ParallelTensor> | Map<string, ParallelTensor>,
    dir: string,
    opts?: ParallelWriteOptions,
  ): ParallelWriteResult;
  /** Every rank reads only its rows into its shards (see {@link readSafetensorsDirParallel}). */
  loadParallel?(
    dir: string,
    targets: Record<string, ParallelTensor> | Map<string, ParallelTensor>,
    opts?: ParallelReadOptions,
  ): ParallelReadResult;
}

/**
 * `hf-safetensors`: Hugging Face checkpoint directories (`model.safetensors`, or
 * `model.safetensors.index.json` plus `model-0000i-of-0000n.safetensors` shards).
 *
 * ```ts
 * const fmt = getRegistry().checkpointFormats.get('hf-safetensors') as CheckpointFormat;
 * fmt.save(model.stateDict(), 'out/', { maxShardBytes: '2GB' });
 * const sd = fmt.load('out/', { device: 'cpu', dtype: 'float32' });
 * ```
 */
export const hfSafetensorsFormat: CheckpointFormat = {
  name: 'hf-safetensors',
  load(dir, opts = {}) {
    const src = openSafetensorsDir(dir, opts);
    try {
      return src.readAll(opts);
    } finally {
      src.close();
    }
  },
  open(dir, opts = {}) {
    return openSafetensorsDir(dir, opts);
  },
  save(stateDict, dir, opts = {}) {
    return writeSafetensorsDir(dir, stateDict, opts);
  },
  saveParallel(tensors, dir, opts = {}) {
    return writeSafetensorsDirParallel(dir, tensors, opts);
  },
  loadParallel(dir, targets, opts = {}) {
    return readSafetensorsDirParallel(dir, targets, opts);
  },
};
