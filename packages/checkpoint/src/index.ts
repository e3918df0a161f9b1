/**
 * @omnitrain/checkpoint — checkpoint formats: Hugging Face safetensors (single and sharded), sharded DCP-style checkpoints.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'checkpoint',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
