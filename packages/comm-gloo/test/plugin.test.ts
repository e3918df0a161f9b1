import { glooBackend, plugin } from '@omnitrain/comm-gloo';
import { createRegistry, type ProcessGroupBackend, startStoreServerInWorker, tensor, zeros } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';

describe('comm-gloo plugin', () => {
  it("registers the 'gloo' process-group backend", () => {
    const r = createRegistry();
    r.use(plugin);
    expect(r.processGroups.get('gloo')).toBe(glooBackend);
    expect((r.processGroups.get('gloo') as ProcessGroupBackend).name).toBe('gloo');
  });

  it('the native addon is built and loads (else says why)', () => {
    expect(glooBackend.unavailableReason()).toBeNull();
  });

  it('a group of one: every op works and bad arguments are named', () => {
    const secret = 'solo-secret';
    const server = startStoreServerInWorker({ port: 0, secret });
    const g = glooBackend.create({
      store: { host: '127.0.0.1', port: server.port, secret },
      prefix: 'solo',
      rank: 0,
      size: 1,
      ranks: [3],
      name: 'solo',
      timeoutMs: 5000,
    });
    try {
      expect([g.backend, g.name, g.rank, g.size, g.ranks]).toEqual(['gloo', 'solo', 0, 1, [3]]);
      const t = tensor([1, 2, 3]);
      g.allReduce(t, 'avg').wait();
      expect(t.toArray()).toEqual([1, 2, 3]);
      const out = zeros([3]);
      g.allGather(out, t).wait();
      expect(out.toArray()).toEqual([1, 2, 3]);
      const rs = zeros([3]);
      g.reduceScatter(rs, t).wait();
      expect(rs.toArray()).toEqual([1, 2, 3]);
      const a2a = zeros([3]);
      g.allToAll(a2a, t).wait();
      expect(a2a.toArray()).toEqual([1, 2, 3]);
      g.broadcast(t, 0).wait();
      const w = g.barrier();
      w.wait();
      expect(w.isCompleted()).toBe(true);
      expect(() => g.allGather(zeros([4]), t)).toThrow(
        /gloo group 'solo' \(rank 0 of 1\) allGather: out \[4\] must hold 3 rows/,
      );
      expect(() => g.reduceScatter(zeros([3]), t, 'sum', [1, 2])).toThrow(/expected 1 non-negative integer counts/);
      expect(() => g.allReduce(tensor([1], { dtype: 'uint8' }))).toThrow(/cannot reduce uint8/);
      expect(() => g.allGather(zeros([3], { dtype: 'int32' }), t)).toThrow(/out is int32 but input is float32/);
      expect(() => g.send(t, 0)).toThrow(/bad peer rank 0/);
    } finally {
      g.destroy();
      void server.close();
    }
    expect(() => g.barrier()).toThrow(/used after destroy/);
  });
});
