import { TcpStoreServer } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRanks } from './helpers/spawn-ranks.js';

// Every collective x dtype (float32, bfloat16, int32, float64), even and uneven sizes, send/recv,
// two groups at once: each rank checks its results against values computed locally
// (test/helpers/rank-main.ts) and reports them here.
for (const size of [2, 4]) {
  describe(`gloo collectives, ${size} ranks on loopback`, () => {
    let server: TcpStoreServer;
    let results: { code: number | null; result: any }[] = [];
    let outputs: string[] = [];

    beforeAll(async () => {
      const secret = `secret-${size}-${process.pid}`;
      server = await TcpStoreServer.start({ port: 0, secret });
      // At 4 ranks, 64 KiB reduceScatter segments: the ~300k-element case then cycles its segment rings many times.
      const extra: Record<string, string> = size === 4 ? { OMNITRAIN_GLOO_SEGMENT_BYTES: '65536' } : {};
      const ranks = spawnRanks(size, { port: server.port, secret, scenario: 'suite', extra });
      results = await Promise.all(ranks.map((r) => r.done));
      outputs = ranks.map((r) => r.output);
    }, 80_000);
    afterAll(async () => {
      await server?.close();
    });

    it('every rank exits cleanly and reports', () => {
      for (const [i, r] of results.entries()) {
        expect(r.result, `rank ${i} output:\n${outputs[i]}`).not.toBeNull();
        expect(r.code).toBe(0);
      }
    });

    it('every check matches the locally computed values on every rank', () => {
      for (const r of results) expect(r.result.failures).toEqual([]);
    });

    it('ran every collective, dtype and op', () => {
      const names: string[] = results[0]!.result.checks;
      expect(names.length).toBeGreaterThan(60);
      for (const dtype of ['float32', 'bfloat16', 'int32', 'float64']) {
        for (const op of ['sum', 'avg', 'max', 'min']) {
          expect(names).toContain(`allReduce ${op} ${dtype}`);
          expect(names).toContain(`reduceScatter even ${op} ${dtype}`);
        }
        for (const c of ['allGather even', 'allToAll even', `broadcast root ${size - 1}`])
          expect(names).toContain(`${c} ${dtype}`);
        expect(names.some((n) => n.startsWith(`allGather uneven ${dtype}`))).toBe(true);
        expect(names.some((n) => n.startsWith(`reduceScatter uneven sum ${dtype}`))).toBe(true);
        expect(names.some((n) => n.startsWith(`allToAll splits ${dtype}`))).toBe(true);
      }
      expect(names).toContain('barrier');
      expect(names).toContain('send/recv ring tag 2 int32 (received first)');
      if (size === 2) expect(names).toContain('allReduce sum bfloat16 rounds to nearest even');
    });

    it('sub-groups have the right members and ranks', () => {
      const pairs = results.map((r) => r.result.checks.find((c: string) => c.startsWith('pair group')));
      if (size === 2) expect(pairs).toEqual(['pair group ranks [1,0] rank 1', 'pair group ranks [1,0] rank 0']);
      else {
        expect(pairs).toEqual([
          'pair group ranks [0,1] rank 0',
          'pair group ranks [0,1] rank 1',
          'pair group ranks [2,3] rank 0',
          'pair group ranks [2,3] rank 1',
        ]);
      }
    });
  });
}
