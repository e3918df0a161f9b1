/**
 * @omnitrain/kernels-cpu — native CPU kernels (C++17, SIMD, threads, BLAS) registered over core's reference kernels.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'kernels-cpu',
  version: '0.1.0',
  coreRange: '^0.1',
  setup() {},
};
