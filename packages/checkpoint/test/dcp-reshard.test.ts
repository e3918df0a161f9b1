import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, readMetadata, shardedTensor } from '@omnitrain/checkpoint';
import { empty, TcpStoreServer } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleChild } from './dcp-helpers/bundle.js';
import { block, bytesOf, evenSplit, SPECS, setPath, shardOf } from './dcp-helpers/data.js';
import { spawnChild } from './dcp-helpers/spawn.js';

// Four processes each save their own uneven shard (dim 0, and dim 1 for model.cols) of several
// tensors; the checkpoint is then loaded at world size 2 (even FSDP-style split) and 1 (full
// tensors) and compared bitwise with the tensors built directly.
describe('dcp resharding: save at 4 processes, load at 2 and 1', () => {
  let root: string;
  let server: TcpStoreServer;
  let script: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dcp-reshard-'));
    script = await bundleChild();
    const secret = `s-${process.pid}`;
    server = await TcpStoreServer.start({ port: 0, secret });
    const kids = [0, 1, 2, 3].map((rank) =>
      spawnChild(script, {
        SCENARIO: 'reshard-save',
        RANK: String(rank),
        WORLD_SIZE: '4',
        STORE_PORT: String(server.port),
        STORE_SECRET: secret,
        ROOT: root,
      }),
    );
    const exits = await Promise.all(kids.map((k) => k.done));
    for (const [r, e] of exits.entries()) expect(e.code, `rank ${r}:\n${kids[r]!.output}`).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
    rmSync(join(script, '..'), { recursive: true, force: true });
  });

  it('committed one folder with 4 rank files and chunks from every rank', () => {
    const meta = readMetadata(join(root, 'step-5'));
    expect(meta.worldSize).toBe(4);
    expect(Object.keys(meta.files).sort()).toEqual([0, 1, 2, 3].map((r) => `rank-0000${r}.bin`));
    expect(meta.tensors['model.emb']!.chunks.map((c) => c.offsets[0])).toEqual([0, 4, 11, 22]);
    expect(meta.tensors['model.cols']!.chunks.map((c) => c.offsets)).toEqual([
      [0, 0],
      [0, 1],
      [0, 3],
      [0, 5],
    ]);
    // model.tiny has 3 rows: the first rank owns none (uneven split 0, 1, 1, 1 rows... whichever) but all rows are covered.
    expect(meta.tensors['model.tiny']!.chunks.reduce((a, c) => a + c.lengths[0]!, 0)).toBe(3);
    expect(meta.tensors['model.scale']!.chunks).toHaveLength(1);
  });

  it('loads at world size 1: every full tensor equals the original bitwise', () => {
    const targets: Record<string, unknown> = {};
    const full = new Map(SPECS.map((s) => [s.name, empty(s.shape, { dtype: s.dtype })]));
    for (const s of SPECS) setPath(targets, s.name, full.get(s.name));
    const res = loadCheckpoint(join(root, 'step-5'), targets);
    expect(res.step).toBe(5);
    for (const s of SPECS) {
      expect(bytesOf(full.get(s.name)!), s.name).toEqual(
        bytesOf(
          block(
            s,
            s.shape.map(() => 0),
            s.shape,
          ),
        ),
      );
    }
    const st = res.state as any;
    expect(st.data).toEqual({ rank: 0, cursor: 1000, epoch: 1 });
    expect(st.model.scale.toArray()).toEqual([1.5, -2, 3.25, 0]);
    expect(st.model.emb).toBe(full.get('model.emb'));
  });

  it('loads at world size 2 (even split): each rank gets its blocks bitwise, reading only overlapping blocks', () => {
    let total = 0;
    const meta = readMetadata(join(root, 'step-5'));
    for (const [, size] of Object.entries(meta.files)) total += size;
    for (const rank of [0, 1]) {
      const targets: Record<string, unknown> = {};
      const mine = new Map<string, { t: ReturnType<typeof empty>; offsets: number[]; lengths: number[] }>();
      for (const s of SPECS) {
        const { offsets, lengths } = shardOf(s, 2, rank, evenSplit);
        const t = empty(lengths, { dtype: s.dtype });
        mine.set(s.name, { t, offsets, lengths });
        setPath(targets, s.name, shardedTensor(t, s.shape, offsets));
      }
      const res = loadCheckpoint(join(root, 'step-5'), targets, { stateOf: rank });
      for (const s of SPECS) {
        const m = mine.get(s.name)!;
        expect(bytesOf(m.t), `${s.name} rank ${rank}`).toEqual(bytesOf(block(s, m.offsets, m.lengths)));
      }
      expect((res.state as any).data.cursor).toBe(1000 + rank);
      // Each rank needs about half of the data; 64-byte checksum blocks bound the over-read.
      expect(res.bytesRead).toBeLessThan(total * 0.75);
    }
  });

  it('a state for a rank the checkpoint does not have is a clear error', () => {
    expect(() => loadCheckpoint(join(root, 'step-5'), {}, { stateOf: 6 })).toThrow(/saved by 4 ranks.*rank 6/);
  });
});
