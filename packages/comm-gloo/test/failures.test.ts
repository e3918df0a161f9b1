import { glooBackend } from '@omnitrain/comm-gloo';
import { startStoreServerInWorker, TcpStoreServer } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { spawnRanks } from './helpers/spawn-ranks.js';

describe('gloo failures', () => {
  it('a rank killed while the others are inside an allReduce: they fail fast, naming group, op and peers', async () => {
    const secret = `kill-${process.pid}`;
    const server = await TcpStoreServer.start({ port: 0, secret });
    const timeoutMs = 8000;
    const ranks = spawnRanks(3, { port: server.port, secret, scenario: 'killed', timeoutMs });
    try {
      await Promise.all([
        ranks[2]!.waitFor('VICTIM_READY'),
        ranks[0]!.waitFor('IN_COLLECTIVE'),
        ranks[1]!.waitFor('IN_COLLECTIVE'),
      ]);
      await new Promise((r) => setTimeout(r, 200));
      ranks[2]!.child.kill('SIGKILL');
      const done = await Promise.all(ranks.map((r) => r.done));
      expect(done[2]!.signal).toBe('SIGKILL');
      for (const r of [0, 1]) {
        const res = done[r]!.result;
        if (process.env.SHOW) console.log(JSON.stringify(res));
        expect(res, ranks[r]!.output).not.toBeNull();
        expect(res.error).toContain("gloo group 'world'");
        expect(res.error).toContain('allReduce(sum, float32, 1048576 elements)');
        expect(res.error).toContain(`rank ${r} of 3`);
        expect(res.error).toMatch(/group ranks \[.*2 \(global 2\)/);
        expect(res.elapsed).toBeLessThan(timeoutMs + 3000);
        // The group is unusable afterwards, and says so instead of hanging.
        expect(res.after).toContain('unusable after an earlier failure');
      }
    } finally {
      for (const r of ranks) r.child.kill('SIGKILL');
      await server.close();
    }
  }, 40_000);

  it('a peer with the wrong secret is refused', () => {
    const server = startStoreServerInWorker({ port: 0, secret: 'the-right-secret' });
    try {
      const t0 = Date.now();
      expect(() =>
        glooBackend.create({
          store: { host: '127.0.0.1', port: server.port, secret: 'a-wrong-secret' },
          prefix: 'world',
          rank: 0,
          size: 2,
          ranks: [0, 1],
          name: 'world',
          timeoutMs: 5000,
        }),
      ).toThrow(/gloo group 'world'.*rendezvous failed.*AUTH_FAILED/s);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      void server.close();
    }
  });

  it('a rendezvous that a peer never joins times out, naming the store key and the peers', () => {
    const secret = 'lonely-secret';
    const server = startStoreServerInWorker({ port: 0, secret });
    try {
      const t0 = Date.now();
      let message = '';
      try {
        glooBackend.create({
          store: { host: '127.0.0.1', port: server.port, secret },
          prefix: 'lonely',
          rank: 0,
          size: 2,
          ranks: [5, 7],
          name: 'dp_shard',
          timeoutMs: 1500,
        });
      } catch (e) {
        message = (e as Error).message;
      }
      const elapsed = Date.now() - t0;
      expect(message).toContain("gloo group 'dp_shard' (rank 0 of 2, global ranks [5, 7])");
      expect(message).toContain('group ranks [1 (global 7)]');
      expect(message).toMatch(/timed out after 1500 ms waiting for key 'lonely\/1'/);
      expect(elapsed).toBeGreaterThanOrEqual(1400);
      expect(elapsed).toBeLessThan(6000);
    } finally {
      void server.close();
    }
  });
});
