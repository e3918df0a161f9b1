import { createRegistry } from '@omnitrain/core';
import { runConformance, uncoveredOps } from '@omnitrain/core/testing';
import { KERNEL_SOURCE, NATIVE_KERNELS, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { allowNoNative, status } from './native-available.js';

describe('native CPU backend', () => {
  it('is available (set OMNITRAIN_ALLOW_NO_NATIVE=1 to accept the reference fallback)', () => {
    if (!status.available && !allowNoNative) throw new Error(status.message);
    expect(status.message).toMatch(
      allowNoNative && !status.available ? /^backend unavailable: / : /^native cpu kernels: /,
    );
  });
});

describe('conformance against core reference kernels', () => {
  const registry = createRegistry().use(plugin);
  const results = runConformance({ registry });

  it('covers every op of core and every native kernel', () => {
    expect(uncoveredOps(registry)).toEqual([]);
    const tested = new Set(results.filter((r) => r.source === KERNEL_SOURCE).map((r) => r.op));
    for (const op of Object.keys(NATIVE_KERNELS)) expect(tested, op).toContain(op);
  });

  it.each(results.map((r) => [`${r.op} ${r.name} (${r.dtype})`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
  });
});
