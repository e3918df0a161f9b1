/**
 * @omnitrain/models — foundation LLMs (llama, qwen2, qwen3, qwen3_moe) with Hugging Face config and weights.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'models',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
