/**
 * @omnitrain/checkpoint — checkpoint formats: Hugging Face safetensors (single and sharded), sharded DCP-style checkpoints.
 *
 * The `hf-safetensors` format: {@link openSafetensors} (one file), {@link openSafetensorsDir}
 * (a Hugging Face directory, single or sharded) give random access to tensors, byte ranges and
 * dim-0 row ranges without loading whole files; {@link writeSafetensors} and
 * {@link writeSafetensorsDir} write them (atomically, sharded by size);
 * {@link writeSafetensorsDirParallel} and {@link readSafetensorsDirParallel} export and import a
 * sharded model with every rank writing or reading only its rows' byte ranges. The reader validates the
 * whole header before use and never executes anything from a file.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';
import { dcpFormat } from './dcp/index.js';
import { hfSafetensorsFormat } from './format.js';

export * from './dcp/index.js';

export {
  coreDTypeOf,
  isSafetensorsDType,
  SAFETENSORS_DTYPES,
  type SafetensorsDType,
  safetensorsDTypeOf,
  safetensorsItemSize,
} from './dtypes.js';
export {
  type FileOpener,
  type FileWriteOpener,
  nodeFileOpener,
  nodeFileWriteOpener,
  type RandomAccessFile,
  type WritableFile,
} from './file-io.js';
export { type CheckpointFormat, hfSafetensorsFormat, type LoadOptions } from './format.js';
export { type HeaderEntry, MAX_HEADER_BYTES, type ParsedHeader, parseHeader } from './header.js';
export {
  type ParallelReadOptions,
  type ParallelReadResult,
  readSafetensorsDirParallel,
} from './parallel-read.js';
export { type ParallelWriteOptions, type ParallelWriteResult, writeSafetensorsDirParallel } from './parallel-write.js';
export {
  type OpenOptions,
  openSafetensors,
  type ReadOptions,
  SafetensorsFile,
  type SafetensorsSource,
  type TensorInfo,
} from './reader.js';
export type { ParallelTensor, RowShardLike } from './row-block.js';
export {
  INDEX_FILE,
  openSafetensorsDir,
  readIndex,
  SafetensorsDir,
  type SafetensorsIndex,
  SINGLE_FILE,
} from './sharded-reader.js';
export {
  parseSize,
  type RawTensor,
  type TensorDict,
  type WritableTensor,
  type WriteDirOptions,
  type WriteResult,
  writeSafetensors,
  writeSafetensorsDir,
} from './writer.js';

/** The plugin object: `registry.use(plugin)` registers the `hf-safetensors` and `dcp` checkpoint formats. */
export const plugin: Plugin = {
  name: 'checkpoint',
  version: '0.1.0',
  coreRange: '^0.1',
  setup(r) {
    r.checkpointFormats.register('hf-safetensors', hfSafetensorsFormat);
    r.checkpointFormats.register('dcp', dcpFormat);
  },
};
