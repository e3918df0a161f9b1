/**
 * @omnitrain/data — tokenizers, JSONL/Parquet sources, packing and dynamic batching, resumable iterators.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'data',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
