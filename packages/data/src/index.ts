/**
 * @omnitrain/data — tokenizers, JSONL/Parquet sources, packing and dynamic batching, resumable iterators.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

export { ByteTokenizer, type ByteTokenizerOptions } from './byte-tokenizer.js';
export { type ChatMessage, ChatTemplate, type ChatTokens, type RenderOptions } from './chat-template.js';
export {
  type Batch,
  type DataLoaderOptions,
  type DataLoaderState,
  type DataLoaderStats,
  disposeBatch,
  PackedDataLoader,
} from './data-loader.js';
export { HfTokenizer } from './hf-tokenizer.js';
export { type JsonlLine, JsonlReader } from './jsonl-reader.js';
export { firstFit, type HostBatch, IGNORE_INDEX, packBatch, type TokenizedSample } from './packing.js';
export { ParquetReader } from './parquet-reader.js';
export {
  BadRecordError,
  describeOrigin,
  type MediaKind,
  type MediaRef,
  recordToSample,
  type Sample,
  type SampleFields,
  type SampleOrigin,
} from './sample.js';
export {
  type BadRecord,
  type BadRecordPolicy,
  DataSource,
  resolveSourceFiles,
  type SourceSpec,
  type SourceState,
  sourceName,
} from './source.js';
export type { DecodeOptions, EncodeOptions, TextTokenizer } from './tokenizer.js';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'data',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
