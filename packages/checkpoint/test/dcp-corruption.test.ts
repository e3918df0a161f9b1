import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, readMetadata, saveCheckpoint, verifyCheckpoint } from '@omnitrain/checkpoint';
import { full, type Tensor, tensor } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Each case damages a copy of a good checkpoint; loading must fail with an error naming the file
// and the tensor, and leave every target exactly as it was (nothing half-loaded).
let root: string;
let good: string;
const A = Array.from({ length: 64 * 16 }, (_, i) => Math.sin(i));
const B = Array.from({ length: 100 }, (_, i) => i * 0.5);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'dcp-bad-'));
  saveCheckpoint(
    root,
    1,
    { model: { a: tensor(A, { shape: [64, 16] }), b: tensor(B, { shape: [100] }) }, step: 1 },
    { blockBytes: 256 },
  );
  good = join(root, 'step-1');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function copy(name: string): string {
  const d = join(root, name);
  cpSync(good, d, { recursive: true });
  return d;
}

function targets(shapeB: number[] = [100]): { a: Tensor; b: Tensor; tree: unknown } {
  const a = full([64, 16], 7);
  const b = full(shapeB, 7);
  return { a, b, tree: { model: { a, b } } };
}

function expectUntouched(t: { a: Tensor; b: Tensor }): void {
  expect(t.a.toArray().every((v) => v === 7)).toBe(true);
  expect(t.b.toArray().every((v) => v === 7)).toBe(true);
}

describe('dcp corruption errors', () => {
  it('the good checkpoint loads and verifies', () => {
    const t = targets();
    loadCheckpoint(good, t.tree);
    expect(t.b.toArray()).toEqual(B);
    expect(verifyCheckpoint(good)).toBe(64 * 16 * 4 + 100 * 4);
  });

  it('a flipped byte: checksum error naming the file and the tensor', () => {
    const d = copy('flip');
    const meta = readMetadata(d);
    const c = meta.tensors['model.b']!.chunks[0]!;
    const file = join(d, c.file);
    const bytes = readFileSync(file);
    bytes[c.byteOffset + 123]! ^= 0x10;
    writeFileSync(file, bytes);
    const t = targets();
    expect(() => loadCheckpoint(d, t.tree)).toThrow(/checksum mismatch in file .*rank-00000\.bin.*tensor 'model\.b'/);
    expectUntouched(t);
    expect(() => verifyCheckpoint(d)).toThrow(/checksum mismatch.*'model\.b'/);
  });

  it('a truncated shard', () => {
    const d = copy('trunc');
    truncateSync(join(d, 'rank-00000.bin'), 1000);
    const t = targets();
    expect(() => loadCheckpoint(d, t.tree)).toThrow(
      /tensor 'model\.a'.*rank-00000\.bin is 1000 bytes.*truncated shard/,
    );
    expectUntouched(t);
  });

  it('a missing data file', () => {
    const d = copy('missing');
    unlinkSync(join(d, 'rank-00000.bin'));
    const t = targets();
    expect(() => loadCheckpoint(d, t.tree)).toThrow(/tensor 'model\.a'.*missing file .*rank-00000\.bin/);
    expectUntouched(t);
  });

  it('a missing or corrupt metadata file', () => {
    const d = copy('nometa');
    unlinkSync(join(d, 'metadata.json'));
    expect(() => loadCheckpoint(d, targets().tree)).toThrow(/missing file metadata\.json/);
    writeFileSync(join(d, 'metadata.json'), '{"format": "omnitrain-dcp", "vers');
    expect(() => loadCheckpoint(d, targets().tree)).toThrow(/metadata\.json: corrupt metadata/);
  });

  it('metadata of another model: a shape mismatch or a missing tensor names the tensor', () => {
    const t = targets([101]);
    expect(() => loadCheckpoint(good, t.tree)).toThrow(
      /tensor 'model\.b' is float32 \[100\] in the checkpoint but the target is float32 \[101\]/,
    );
    expectUntouched(t);
    const u = targets();
    expect(() => loadCheckpoint(good, { model: { a: u.a, b: u.b, c: full([3], 7) } })).toThrow(
      /tensor 'model\.c' is not in the checkpoint/,
    );
    expectUntouched(u);
    expect(() => loadCheckpoint(good, { model: { a: full([64, 16], 0, { dtype: 'float64' }) } })).toThrow(
      /'model\.a' is float32 \[64,16\] in the checkpoint but the target is float64/,
    );
  });

  it('with crc32c block checksums a flipped byte is found too', () => {
    const r2 = join(root, 'c');
    saveCheckpoint(r2, 1, { model: { a: tensor(A, { shape: [64, 16] }) } }, { checksum: 'crc32c', blockBytes: 512 });
    const d = join(r2, 'step-1');
    expect(readMetadata(d).checksum).toBe('crc32c');
    const t = full([64, 16], 7);
    loadCheckpoint(d, { model: { a: t } });
    expect(t.toArray().slice(0, 3)).toEqual(A.slice(0, 3).map((v) => Math.fround(v)));
    const bytes = readFileSync(join(d, 'rank-00000.bin'));
    bytes[4000]! ^= 1;
    writeFileSync(join(d, 'rank-00000.bin'), bytes);
    expect(() => verifyCheckpoint(d)).toThrow(
      /checksum mismatch in file .*rank-00000\.bin bytes \[3584, 4096\) of tensor 'model\.a'/,
    );
  });

  it('inPlace: loads the same values straight into the targets; a corrupt block is still an error, flagged as partial', () => {
    const t = targets();
    loadCheckpoint(good, t.tree, { inPlace: true });
    expect(t.b.toArray()).toEqual(B);
    expect(t.a.toArray()).toEqual(Array.from(new Float32Array(A)));
    const d = copy('flip-in-place');
    const meta = readMetadata(d);
    const c = meta.tensors['model.b']!.chunks[0]!;
    const file = join(d, c.file);
    const bytes = readFileSync(file);
    bytes[c.byteOffset + 300]! ^= 0x01;
    writeFileSync(file, bytes);
    const u = targets();
    expect(() => loadCheckpoint(d, u.tree, { inPlace: true })).toThrow(
      /checksum mismatch in file .*rank-00000\.bin.*tensor 'model\.b'.*inPlace: the targets may be partly overwritten/,
    );
  });
});
