import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DTYPES, type DType, memoryStats, type Tensor } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import {
  INDEX_FILE,
  openSafetensors,
  openSafetensorsDir,
  SafetensorsDir,
  safetensorsItemSize,
  writeSafetensors,
  writeSafetensorsDir,
} from '../src/index.js';
import { randomTensor, rng, tempDir, tensorBytes } from './helpers.js';

const SHAPES: number[][] = [[3, 5], [7], [], [2, 3, 4], [0, 4], [1, 1, 9]];

/** One tensor of each core dtype and several shapes (0-d and empty included), random bit patterns. */
function stateDict(seed: number): Record<string, Tensor> {
  const next = rng(seed);
  const sd: Record<string, Tensor> = {};
  DTYPES.forEach((dtype, i) => {
    SHAPES.forEach((shape, j) => {
      if ((i + j) % 2 === 0 || shape.length === 0) sd[`layers.${i}.${dtype}.w${j}`] = randomTensor(shape, dtype, next);
    });
  });
  return sd;
}

function expectSameBitwise(loaded: Record<string, Tensor>, ref: Record<string, Tensor>): void {
  expect(Object.keys(loaded).sort()).toEqual(Object.keys(ref).sort());
  for (const [k, t] of Object.entries(ref)) {
    const l = loaded[k]!;
    expect(l.dtype, k).toBe(t.dtype);
    expect(l.shape, k).toEqual(t.shape);
    expect(Buffer.from(tensorBytes(l)).equals(Buffer.from(tensorBytes(t))), `${k} bitwise`).toBe(true);
  }
}

const dispose = (sd: Record<string, Tensor>) => {
  for (const t of Object.values(sd)) t.dispose();
};

describe('round trip', () => {
  const dir = tempDir('rt');

  it('a single file keeps every core dtype bitwise (NaN payloads, 0-d and empty tensors)', () => {
    const before = memoryStats('cpu').liveTensors;
    const sd = stateDict(1);
    const path = join(dir, 'one.safetensors');
    writeSafetensors(path, sd, { note: 'hello', ['__proto__']: 'x' });
    const f = openSafetensors(path);
    expect(f.metadata.note).toBe('hello');
    expect(Object.getOwnPropertyDescriptor(f.metadata, '__proto__')?.value).toBe('x');
    expect(f.keys()).toEqual(Object.keys(sd).sort());
    const loaded = f.readAll();
    f.close();
    expectSameBitwise(loaded, sd);
    dispose(loaded);
    dispose(sd);
    expect(memoryStats('cpu').liveTensors).toBe(before);
  });

  it('writes the header padded to 8 bytes and every tensor aligned to its element size', () => {
    const sd = stateDict(2);
    const path = join(dir, 'aligned.safetensors');
    writeSafetensors(path, sd);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    for (const [k, e] of Object.entries<{ dtype: string; data_offsets: number[] }>(header)) {
      expect(e.data_offsets[0]! % safetensorsItemSize(e.dtype as never), k).toBe(0);
    }
    dispose(sd);
  });

  for (const limit of [1, 40, 300, 700, 10_000_000]) {
    it(`sharded with maxShardBytes ${limit} keeps every tensor bitwise`, () => {
      const before = memoryStats('cpu').liveTensors;
      const sd = stateDict(3);
      const out = join(dir, `sharded-${limit}`);
      const res = writeSafetensorsDir(out, sd, { maxShardBytes: limit });
      const sizes = Object.values(sd).map((t) => t.byteLength);
      expect(res.totalSize).toBe(sizes.reduce((a, b) => a + b, 0));
      const src = openSafetensorsDir(out);
      if (limit <= 300) expect(res.files.length).toBeGreaterThan(3);
      if (res.totalSize <= limit) {
        expect(readdirSync(out)).toEqual(['model.safetensors']);
      } else {
        expect(src).toBeInstanceOf(SafetensorsDir);
        const index = JSON.parse(readFileSync(join(out, INDEX_FILE), 'utf8'));
        expect(index.metadata.total_size).toBe(res.totalSize);
        expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(sd).sort());
        const files = (src as SafetensorsDir).files();
        const n = files.length;
        expect(n).toBe(res.files.length - 1);
        files.forEach((f, i) => {
          expect(f).toBe(
            join(out, `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`),
          );
        });
        // Each shard holds at most `limit` bytes of data unless it is one tensor larger than the limit.
        for (const f of files) {
          const s = openSafetensors(f);
          const data = s.keys().reduce((a, k) => a + s.info(k).numel * safetensorsItemSize(s.info(k).dtype), 0);
          expect(data <= limit || s.keys().length === 1, `${f}: ${data} bytes`).toBe(true);
          expect(s.metadata).toEqual({ format: 'pt' });
          s.close();
        }
      }
      const info = src.info('layers.0.float32.w0');
      expect(info.dtype).toBe('F32');
      expect(info.shape).toEqual([3, 5]);
      expect(info.byteRange[1] - info.byteRange[0]).toBe(60);
      const loaded = src.readAll();
      src.close();
      expectSameBitwise(loaded, sd);
      dispose(loaded);
      dispose(sd);
      expect(memoryStats('cpu').liveTensors).toBe(before);
    });
  }

  it('re-saving a directory with another layout removes the old files', () => {
    const sd = stateDict(4);
    const out = join(dir, 'resave');
    writeSafetensorsDir(out, sd, { maxShardBytes: 100 });
    expect(readdirSync(out).length).toBeGreaterThan(2);
    writeSafetensorsDir(out, sd);
    expect(readdirSync(out)).toEqual(['model.safetensors']);
    writeSafetensorsDir(out, sd, { maxShardBytes: '0.2KB' });
    const files = readdirSync(out).sort();
    expect(files).not.toContain('model.safetensors');
    expect(files).toContain(INDEX_FILE);
    expect(files.every((f) => f === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))).toBe(true);
    const loaded = openSafetensorsDir(out).readAll();
    expectSameBitwise(loaded, sd);
    dispose(loaded);
    dispose(sd);
  });

  it('an empty state dict round-trips', () => {
    const out = join(dir, 'empty');
    writeSafetensorsDir(out, {});
    const src = openSafetensorsDir(out);
    expect(src.keys()).toEqual([]);
    src.close();
  });

  it('a failed write leaves neither a partial file under the final name nor a temp file', () => {
    const path = join(dir, 'crash.safetensors');
    const good = randomTensor([4, 4], 'float32', rng(9));
    writeSafetensors(path, { a: good });
    const old = readFileSync(path);
    // A device tensor whose read fails halfway through the write (after the header and 'a').
    const failing = {
      isTensor: true,
      isDisposed: false,
      device: 'cuda:0',
      dtype: 'float32' as DType,
      shape: [8],
      numel: 8,
      byteLength: 32,
      offset: 0,
      storage: {
        backend: {
          synchronize() {},
          readBytes() {
            throw new Error('device lost');
          },
        },
      },
    } as unknown as Tensor;
    expect(() => writeSafetensors(path, { a: good, z: failing })).toThrow('device lost');
    expect(readFileSync(path).equals(old)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(existsSync(path)).toBe(true);
    good.dispose();
  });

  it('refuses meta and disposed tensors and a tensor named __metadata__, naming them', () => {
    const t = randomTensor([2], 'float32', rng(1));
    expect(() => writeSafetensors(join(dir, 'x.safetensors'), { __metadata__: t })).toThrow(/__metadata__/);
    t.dispose();
    expect(() => writeSafetensors(join(dir, 'x.safetensors'), { w: t })).toThrow(/'w' is disposed/);
    expect(existsSync(join(dir, 'x.safetensors'))).toBe(false);
  });

  it('raw tensors of dtypes core lacks (I64, I16, U16, F8) round-trip as bytes', () => {
    const next = rng(5);
    const raws = {
      i64: { dtype: 'I64' as const, shape: [3], data: new Uint8Array(new BigInt64Array([-5n, 7n, 2n ** 40n]).buffer) },
      i16: {
        dtype: 'I16' as const,
        shape: [2, 2],
        data: new Uint8Array(new Int16Array([-3, 4, 32767, -32768]).buffer),
      },
      u16: { dtype: 'U16' as const, shape: [2], data: new Uint8Array(new Uint16Array([65535, 1]).buffer) },
      f8: { dtype: 'F8_E4M3' as const, shape: [5], data: new Uint8Array([0x38, 0xb8, 0x7e, 0x01, 0x00]) },
      f: { dtype: 'F32' as const, shape: [3], data: new Uint8Array(new Float32Array([1, 2, 3]).buffer) },
      b: { dtype: 'BF16' as const, shape: [4], data: new Uint8Array(8).map(() => Math.floor(next() * 256)) },
    };
    const path = join(dir, 'raw.safetensors');
    writeSafetensors(path, raws);
    const f = openSafetensors(path);
    for (const [k, r] of Object.entries(raws)) {
      expect(f.info(k).dtype).toBe(r.dtype);
      expect(f.readBytes(k)).toEqual(r.data);
    }
    f.close();
  });
});
