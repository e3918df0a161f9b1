import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, readMetadata, saveCheckpoint, waitForPendingSave } from '@omnitrain/checkpoint';
import { full, type Tensor, tensor } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The validating load stages every byte in the reused host buffer (shared with async saves),
// verifies it block by block, and only then copies into the targets.
let root: string;
const ROWS = 1280; // 5 MiB float32 tensors: more than one 4 MiB read segment each
const COLS = 1024;
const values = (seed: number) => Float32Array.from({ length: ROWS * COLS }, (_, i) => Math.sin(i * 0.001 + seed));

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'dcp-staging-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sameBits = (t: Tensor, want: Float32Array) =>
  Buffer.from((t.toTypedArray() as Float32Array).buffer).equals(Buffer.from(want.buffer));

describe('dcp staged load', () => {
  it('a corrupt block in the last segment of the last tensor: every target keeps its old values; a good load fills all', () => {
    const dir = join(root, 'corrupt');
    const a = values(1);
    const b = values(2);
    saveCheckpoint(
      dir,
      1,
      { model: { a: tensor(a, { shape: [ROWS, COLS] }), b: tensor(b, { shape: [ROWS, COLS] }) }, step: 1 },
      { blockBytes: 64 << 10 },
    );
    const step = join(dir, 'step-1');
    const c = readMetadata(step).tensors['model.b']!.chunks[0]!;
    const file = join(step, c.file);
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[c.byteOffset + c.byteLength - 10]! ^= 0x04;
    writeFileSync(file, bad);
    const ta = full([ROWS, COLS], 7);
    const tb = full([ROWS, COLS], 7);
    expect(() => loadCheckpoint(step, { model: { a: ta, b: tb } })).toThrow(
      /checksum mismatch in file .*rank-00000\.bin bytes .* of tensor 'model\.b'.*the file is corrupt/,
    );
    expect((ta.toTypedArray() as Float32Array).every((v) => v === 7)).toBe(true);
    expect((tb.toTypedArray() as Float32Array).every((v) => v === 7)).toBe(true);
    writeFileSync(file, good);
    loadCheckpoint(step, { model: { a: ta, b: tb } });
    expect(sameBits(ta, a) && sameBits(tb, b)).toBe(true);
  });

  it('a load waits for a pending async save, which keeps its snapshot although both use the host buffer', () => {
    const dir = join(root, 'async');
    const x = values(3);
    const y = values(4);
    saveCheckpoint(dir, 1, { w: tensor(x, { shape: [ROWS, COLS] }) });
    const live = tensor(y, { shape: [ROWS, COLS] });
    saveCheckpoint(dir, 2, { w: live }, { async: true });
    const t = full([ROWS, COLS], 0);
    loadCheckpoint(join(dir, 'step-1'), { w: t }); // stages through the buffer the save is writing from
    expect(sameBits(t, x)).toBe(true);
    waitForPendingSave();
    const u = full([ROWS, COLS], 0);
    loadCheckpoint(join(dir, 'step-2'), { w: u });
    expect(sameBits(u, y)).toBe(true);
  });

  it('filter: only the selected tensors are read; filtered references come back null, nothing is materialized', () => {
    const dir = join(root, 'filter');
    const w = tensor([1, 2, 3, 4], { shape: [2, 2] });
    const m = tensor(Array.from({ length: 1000 }, (_, i) => i));
    saveCheckpoint(dir, 5, { model: { w }, optim: { m, lr: 0.1 }, step: 5 });
    const t = full([2, 2], 0);
    const res = loadCheckpoint(
      join(dir, 'step-5'),
      { model: { w: t } },
      { filter: (n) => n.startsWith('model.'), strict: true },
    );
    expect(t.toArray()).toEqual([1, 2, 3, 4]);
    expect(res.bytesRead).toBe(16);
    expect((res.state as { optim: { m: unknown; lr: number } }).optim).toEqual({ m: null, lr: 0.1 });
    // Without the filter the moment is materialized from the state reference.
    const all = loadCheckpoint(join(dir, 'step-5'), { model: { w: full([2, 2], 0) } });
    const mm = (all.state as { optim: { m: Tensor } }).optim.m;
    expect(mm.toArray()).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    mm.dispose();
  });
});
