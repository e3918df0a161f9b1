import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, readMetadata, saveCheckpoint } from '@omnitrain/checkpoint';
import { full, type Tensor, tensor } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helperLoadBytes, setParallelLoadMinBytes } from '../src/dcp/read-jobs.js';

// A validating load splits the whole chunks bound for the staging buffer between this thread and
// a helper thread. Whichever thread meets a corrupt block, the error names it and no target changes.
let root: string;
let previous: number;
const SIZES = { a: 300_000, b: 200_000, c: 120_000, d: 50_001 } as const;
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.01 + seed));
const want = Object.fromEntries(Object.entries(SIZES).map(([k, n], i) => [k, values(n, i)])) as Record<
  keyof typeof SIZES,
  Float32Array
>;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'dcp-two-threads-'));
  previous = setParallelLoadMinBytes(0);
});
afterAll(() => {
  setParallelLoadMinBytes(previous);
  rmSync(root, { recursive: true, force: true });
});

const targets = () =>
  Object.fromEntries(Object.entries(SIZES).map(([k, n]) => [k, full([n], 7)])) as Record<string, Tensor>;
const bits = (t: Tensor) => Buffer.from((t.toTypedArray() as Float32Array).buffer);

describe('dcp load on two threads', () => {
  it('loads bit-exactly with the helper thread reading part of the chunks', () => {
    const dir = join(root, 'ok');
    const state = Object.fromEntries(Object.entries(want).map(([k, v]) => [k, tensor(v)]));
    saveCheckpoint(dir, 1, { model: state }, { blockBytes: 16 << 10 });
    const before = helperLoadBytes();
    const t = targets();
    const r = loadCheckpoint(join(dir, 'step-1'), { model: t });
    expect(helperLoadBytes() - before).toBeGreaterThan(0); // the helper took part
    expect(r.bytesRead).toBe(Object.values(SIZES).reduce((s, n) => s + 4 * n, 0));
    for (const k of Object.keys(SIZES) as (keyof typeof SIZES)[]) {
      expect(bits(t[k]!).equals(Buffer.from(want[k].buffer))).toBe(true);
    }
  });

  it('a flipped byte in any tensor (either thread) is an error naming it; no target is touched', () => {
    const dir = join(root, 'bad');
    const state = Object.fromEntries(Object.entries(want).map(([k, v]) => [k, tensor(v)]));
    saveCheckpoint(dir, 1, { model: state }, { blockBytes: 16 << 10 });
    const step = join(dir, 'step-1');
    const meta = readMetadata(step);
    for (const k of Object.keys(SIZES)) {
      const c = meta.tensors[`model.${k}`]!.chunks[0]!;
      const file = join(step, c.file);
      const good = readFileSync(file);
      const bad = Buffer.from(good);
      bad[c.byteOffset + Math.floor(c.byteLength / 2)]! ^= 0x10;
      writeFileSync(file, bad);
      const t = targets();
      expect(() => loadCheckpoint(step, { model: t })).toThrow(
        new RegExp(`checksum mismatch in file .* bytes \\[\\d+, \\d+\\) of tensor 'model\\.${k}'.*the file is corrupt`),
      );
      for (const x of Object.values(t)) expect((x.toTypedArray() as Float32Array).every((v) => v === 7)).toBe(true);
      writeFileSync(file, good);
    }
  });
});
