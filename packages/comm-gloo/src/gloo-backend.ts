import type { ProcessGroup, ProcessGroupBackend, ProcessGroupOptions } from '@omnitrain/core';
import { GlooProcessGroup } from './gloo-process-group.js';
import { tryLoadNative } from './native.js';

/** The `gloo` process-group backend: CPU collectives over TCP through the system Gloo library. */
export const glooBackend: ProcessGroupBackend & {
  /** Null when the native addon loads, else why it does not ("backend unavailable: <why>"). */
  unavailableReason(): string | null;
} = {
  name: 'gloo',
  create(opts: ProcessGroupOptions): ProcessGroup {
    return new GlooProcessGroup(opts);
  },
  unavailableReason(): string | null {
    const r = tryLoadNative();
    return r.binding ? null : `backend unavailable: ${r.why}`;
  },
};
