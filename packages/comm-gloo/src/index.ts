/**
 * @omnitrain/comm-gloo — Gloo collectives over TCP for CPU tensors (N-API binding to the system Gloo).
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';
import { glooBackend } from './gloo-backend.js';

export { glooBackend } from './gloo-backend.js';
export { type GlooGroupExtras, GlooProcessGroup } from './gloo-process-group.js';
export { glooStatus } from './status.js';

/** The plugin object: `registry.use(plugin)` registers the `gloo` process-group backend. */
export const plugin: Plugin = {
  name: 'comm-gloo',
  version: '0.1.0',
  coreRange: '^0.1',
  setup(r) {
    r.processGroups.register('gloo', glooBackend);
  },
};
