/**
 * @omnitrain/train — the omnitrain command: launcher, config-driven training, metrics.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'train',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
