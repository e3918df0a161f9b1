/**
 * @omnitrain/comm-gloo — Gloo collectives over TCP for CPU tensors (N-API binding to the system Gloo).
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'comm-gloo',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
