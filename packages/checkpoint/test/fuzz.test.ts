import { memoryStats } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { type FileOpener, openSafetensors, safetensorsItemSize } from '../src/index.js';
import { rng, specFile } from './helpers.js';

/** An in-memory file that records any read outside its bytes (the reader must never make one). */
function memoryOpener(bytes: Uint8Array, violations: string[]): FileOpener {
  return () => ({
    size: bytes.length,
    read(dst, position) {
      if (!Number.isSafeInteger(position) || position < 0 || position + dst.length > bytes.length) {
        violations.push(`read of ${dst.length} bytes at ${position} in a ${bytes.length}-byte file`);
      }
      const n = Math.max(0, Math.min(dst.length, bytes.length - position));
      dst.set(bytes.subarray(position, position + n));
      return n;
    },
    close() {},
  });
}

/** A valid file: several dtypes, a 0-d and an empty tensor, metadata. */
function validFile(): Uint8Array {
  const data: number[] = [];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'fuzz' } };
  const add = (name: string, dtype: string, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1) * safetensorsItemSize(dtype as never);
    header[name] = { dtype, shape, data_offsets: [data.length, data.length + n] };
    // I64 holds small values (so it converts to int32); everything else arbitrary bytes.
    for (let i = 0; i < n; i++) data.push(dtype === 'I64' ? (i % 8 === 0 ? i : 0) : (i * 37 + name.length) & 0xff);
  };
  add('w', 'F32', [4, 3]);
  add('b', 'BF16', [5]);
  add('h', 'F16', [2, 2]);
  add('d', 'F64', [2]);
  add('i', 'I64', [3]);
  add('s', 'I16', [2]);
  add('q', 'F8_E4M3', [3]);
  add('m', 'BOOL', [2]);
  add('u', 'U8', [1, 2]);
  add('z', 'F32', []);
  add('e', 'I32', [0, 5]);
  return specFile(header, data, true);
}

const RANDOM_VALUES: unknown[] = [
  -1,
  0,
  1,
  2,
  3,
  7,
  8,
  12,
  2 ** 31,
  2 ** 53,
  2 ** 64,
  1e308,
  -0,
  0.5,
  Number.NaN,
  '3',
  '',
  null,
  true,
  [],
  [1],
  [[2]],
  {},
  { a: 1 },
  'F32',
  'I64',
  'F128',
  'BOOL',
  '__proto__',
  [0, 0],
  [0, 1e9],
  [-1, 3],
  [3, 1],
];

describe('fuzz', () => {
  it('thousands of mutated headers and truncations: only ever an Error naming the file, never an out-of-bounds read', () => {
    const base = validFile();
    const headerLen = Number(new DataView(base.buffer).getBigUint64(0, true));
    const headerText = new TextDecoder().decode(base.subarray(8, 8 + headerLen));
    const next = rng(20261127);
    const int = (n: number) => Math.floor(next() * n);
    const pick = <T>(xs: readonly T[]) => xs[int(xs.length)]!;
    const before = memoryStats('cpu').liveTensors;
    const started = Date.now();
    const counts = { opened: 0, rejected: 0, tensorsRead: 0, readErrors: 0 };
    const ITERATIONS = 4000;

    for (let iter = 0; iter < ITERATIONS; iter++) {
      let bytes: Uint8Array;
      const kind = iter % 6;
      if (kind === 0) {
        // Flip a few bytes of the header.
        bytes = base.slice();
        for (let k = 1 + int(4); k > 0; k--) bytes[8 + int(headerLen)] = int(256);
      } else if (kind === 1) {
        // Truncate anywhere.
        bytes = base.slice(0, int(base.length + 1));
      } else if (kind === 2) {
        // A random or nearby header length.
        bytes = base.slice();
        const v = next() < 0.5 ? BigInt(headerLen + int(64) - 32) : BigInt(int(2 ** 31)) * BigInt(int(2 ** 31) + 1);
        new DataView(bytes.buffer).setBigUint64(0, v < 0n ? 0n : v, true);
      } else if (kind === 3) {
        // Change one digit of a number in the header (offsets, shapes).
        const digits = [...headerText.matchAll(/\d/g)].map((m) => m.index!);
        const at = pick(digits);
        const text =
          headerText.slice(0, at) + String(int(10)) + (next() < 0.3 ? String(int(10)) : '') + headerText.slice(at + 1);
        bytes = specFile(text, base.subarray(8 + headerLen), next() < 0.5);
      } else if (kind === 4) {
        // Replace one field of one entry with a value of a random type.
        const h = JSON.parse(headerText) as Record<string, Record<string, unknown>>;
        const name = pick(Object.keys(h));
        const field = pick(['dtype', 'shape', 'data_offsets', 'extra', 'n']);
        if (next() < 0.1) (h as Record<string, unknown>)[name] = pick(RANDOM_VALUES);
        else if (field === 'shape' && Array.isArray(h[name]!.shape) && next() < 0.5) {
          const s = [...(h[name]!.shape as unknown[])];
          s[int(s.length + 1)] = pick(RANDOM_VALUES);
          h[name]!.shape = s;
        } else if (field === 'data_offsets' && next() < 0.5) {
          const o = [...((h[name]!.data_offsets as unknown[]) ?? [])];
          o[int(2)] = pick([...RANDOM_VALUES, int(200), int(200)]);
          h[name]!.data_offsets = o;
        } else h[name]![field] = pick(RANDOM_VALUES);
        bytes = specFile(JSON.stringify(h), base.subarray(8 + headerLen), next() < 0.5);
      } else {
        // Delete or insert a run of bytes inside the header or data.
        const at = 8 + int(base.length - 8);
        const len = 1 + int(8);
        bytes =
          next() < 0.5
            ? new Uint8Array([...base.subarray(0, at), ...base.subarray(at + len)])
            : new Uint8Array([
                ...base.subarray(0, at),
                ...Array.from({ length: len }, () => int(256)),
                ...base.subarray(at),
              ]);
      }

      const path = `fuzz-${iter}.safetensors`;
      const violations: string[] = [];
      let file: ReturnType<typeof openSafetensors>;
      try {
        file = openSafetensors(path, { opener: memoryOpener(bytes, violations) });
      } catch (e) {
        expect(e, `iteration ${iter}`).toBeInstanceOf(Error);
        expect((e as Error).message, `iteration ${iter}`).toContain(`safetensors ${path}: `);
        expect(violations, `iteration ${iter}`).toEqual([]);
        counts.rejected++;
        continue;
      }
      counts.opened++;
      // Accepted: the entries must tile the data section exactly and every read stay in bounds.
      const infos = file.keys().map((k) => file.info(k));
      const sorted = [...infos].sort((a, b) => a.byteRange[0] - b.byteRange[0] || a.byteRange[1] - b.byteRange[1]);
      let at = sorted.length ? sorted[0]!.byteRange[0] : bytes.length;
      for (const info of sorted) {
        expect(info.byteRange[0]).toBe(at);
        expect(info.byteRange[1] - info.byteRange[0]).toBe(info.numel * safetensorsItemSize(info.dtype));
        at = info.byteRange[1];
      }
      expect(at).toBe(bytes.length);
      for (const info of infos) {
        try {
          const t = file.readTensor(info.name);
          expect(t.shape).toEqual(info.shape);
          t.dispose();
          if (info.shape.length && info.shape[0]! > 0) {
            const r = file.readRows(info.name, int(info.shape[0]!), info.shape[0]!);
            r.dispose();
          }
          expect(file.readBytes(info.name).length).toBe(info.byteRange[1] - info.byteRange[0]);
          counts.tensorsRead++;
        } catch (e) {
          // Only value conversions may fail on an accepted file (e.g. an I64 that does not fit int32).
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toMatch(/does not fit int32/);
          counts.readErrors++;
        }
      }
      file.close();
      expect(violations, `iteration ${iter}`).toEqual([]);
    }
    const ms = Date.now() - started;
    expect(counts.opened + counts.rejected).toBe(ITERATIONS);
    // The mutations must exercise both outcomes.
    expect(counts.rejected).toBeGreaterThan(ITERATIONS / 2);
    expect(counts.opened).toBeGreaterThan(100);
    expect(memoryStats('cpu').liveTensors).toBe(before);
    console.log(`fuzz: ${ITERATIONS} inputs in ${ms} ms`, counts);
  });
});
