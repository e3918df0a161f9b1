import { createRegistry } from '@omnitrain/core';
import { fullyShard, plugin, validRows } from '@omnitrain/parallel-fsdp';
import { describe, expect, it } from 'vitest';

describe('plugin and layout', () => {
  it("registers 'fsdp' in registry.parallel", () => {
    const r = createRegistry();
    r.use(plugin);
    expect((r.parallel.get('fsdp') as { fullyShard: unknown }).fullyShard).toBe(fullyShard);
  });
  it('Shard(0) with padding: ceil(rows / N) rows per rank, the rest padding', () => {
    const l = { name: 'w', fullShape: [5, 3], rows: 5, inner: 3, chunk: 2, offset: 0 };
    expect([0, 1, 2].map((r) => validRows(l, r))).toEqual([2, 2, 1]);
    const l2 = { ...l, rows: 2, chunk: 1 };
    expect([0, 1, 2, 3].map((r) => validRows(l2, r))).toEqual([1, 1, 0, 0]);
  });
});
