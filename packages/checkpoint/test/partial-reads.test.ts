import { join } from 'node:path';
import { type Backend, CpuBackend, defaultRegistry, memoryStats, Storage, type Tensor } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { openSafetensors, openSafetensorsDir, writeSafetensors, writeSafetensorsDir } from '../src/index.js';
import { countingOpener, randomTensor, rng, tempDir, tensorBytes } from './helpers.js';

const bytesOf = (t: Tensor) => Buffer.from(tensorBytes(t));

describe('partial reads', () => {
  const dir = tempDir('partial');
  const next = rng(11);
  const w = randomTensor([37, 6], 'float32', next);
  const b = randomTensor([10, 3, 2], 'bfloat16', next);
  const path = join(dir, 'p.safetensors');
  writeSafetensors(path, { w, b, big: randomTensor([300, 50], 'float16', next) });
  const headerBytes = (() => {
    const c = countingOpener();
    openSafetensors(path, { opener: c.opener }).close();
    return c.bytes();
  })();

  it('opening reads only the header', () => {
    const c = countingOpener();
    const f = openSafetensors(path, { opener: c.opener });
    // 8-byte length + header JSON, nothing of the 30 kB of data.
    expect(c.reads.map((r) => r[1])).toEqual([0, 8]);
    expect(c.bytes()).toBe(8 + c.reads[1]![2]);
    expect(c.bytes()).toBeLessThan(400);
    f.close();
  });

  it('readRows equals the rows of the full tensor and reads only those bytes', () => {
    const before = memoryStats('cpu').liveTensors;
    for (const [start, end] of [
      [0, 37],
      [0, 1],
      [5, 17],
      [36, 37],
      [12, 12],
    ] as const) {
      const c = countingOpener();
      const f = openSafetensors(path, { opener: c.opener });
      const rows = f.readRows('w', start, end);
      expect(rows.shape).toEqual([end - start, 6]);
      const slice = w.slice0(start, end);
      expect(bytesOf(rows).equals(bytesOf(slice))).toBe(true);
      slice.dispose();
      expect(c.bytes() - headerBytes).toBe((end - start) * 6 * 4);
      // The data read starts exactly at row `start`.
      if (end > start) expect(c.reads[2]![1]).toBe(f.info('w').byteRange[0] + start * 24);
      rows.dispose();
      f.close();
    }
    const f = openSafetensors(path);
    const r = f.readRows('b', 3, 7);
    const s = b.slice0(3, 7);
    expect(r.shape).toEqual([4, 3, 2]);
    expect(bytesOf(r).equals(bytesOf(s))).toBe(true);
    r.dispose();
    s.dispose();
    f.close();
    expect(memoryStats('cpu').liveTensors).toBe(before);
  });

  it('readBytes and readElements read any byte or element range', () => {
    const f = openSafetensors(path);
    const all = bytesOf(w);
    for (const [s, e] of [
      [0, 4],
      [3, 101],
      [887, 888],
      [0, 888],
      [50, 50],
    ] as const) {
      const c = countingOpener();
      const g = openSafetensors(path, { opener: c.opener });
      expect(Buffer.from(g.readBytes('w', s, e)).equals(all.subarray(s, e))).toBe(true);
      expect(c.bytes() - headerBytes).toBe(e - s);
      g.close();
    }
    const el = f.readElements('w', 7, 20);
    expect(el.shape).toEqual([13]);
    expect(bytesOf(el).equals(all.subarray(28, 80))).toBe(true);
    el.dispose();
    expect(() => f.readBytes('w', 0, 889)).toThrow(/p\.safetensors: tensor 'w': byte range \[0, 889\) outside its 888/);
    expect(() => f.readRows('w', 30, 38)).toThrow(/rows \[30, 38\) outside dimension 0 of size 37/);
    expect(() => f.readRows('w', -1, 2)).toThrow(/outside/);
    expect(() => f.readRows('w', 1.5, 2)).toThrow(/outside/);
    expect(() => f.readElements('w', 0, 223)).toThrow(/elements \[0, 223\) outside its 222/);
    expect(() => f.readTensor('nope')).toThrow(/p\.safetensors: no tensor 'nope'/);
    f.close();
    expect(() => f.readTensor('w')).toThrow(/read after close/);
  });

  it('a sharded directory gives the same partial reads, from the right shard only', () => {
    const out = join(dir, 'sharded');
    writeSafetensorsDir(out, { w, b }, { maxShardBytes: 900 });
    const c = countingOpener();
    const src = openSafetensorsDir(out, { opener: c.opener });
    const info = src.info('b');
    expect(info.file).toMatch(/model-00002-of-00002\.safetensors$/);
    const n = c.reads.length;
    const rows = src.readRows('b', 2, 4);
    const s = b.slice0(2, 4);
    expect(bytesOf(rows).equals(bytesOf(s))).toBe(true);
    expect(c.reads.slice(n)).toEqual([[info.file, info.byteRange[0] + 2 * 12, 2 * 12]]);
    rows.dispose();
    s.dispose();
    src.close();
  });

  it('converts dtype on read (bf16 -> float32 as core casts) and reads nothing for meta', () => {
    const f = openSafetensors(path);
    const t = f.readTensor('b', { dtype: 'float32' });
    expect(t.dtype).toBe('float32');
    const ref = b.to('float32');
    expect(bytesOf(t).equals(bytesOf(ref))).toBe(true);
    const rows = f.readRows('w', 2, 5, { dtype: 'bfloat16' });
    const wr = w.slice0(2, 5);
    const wrb = wr.to('bfloat16');
    expect(bytesOf(rows).equals(bytesOf(wrb))).toBe(true);
    for (const x of [t, ref, rows, wr, wrb]) x.dispose();
    f.close();
    const c = countingOpener();
    const g = openSafetensors(path, { opener: c.opener });
    const m = g.readTensor('big', { device: 'meta', dtype: 'float32' });
    expect([m.device, m.dtype, m.shape]).toEqual(['meta', 'float32', [300, 50]]);
    expect(c.bytes()).toBe(headerBytes);
    m.dispose();
    g.close();
  });

  it('reads integer and float8 types core lacks, converting to int32 / float32 with a range check', () => {
    const i64 = new BigInt64Array([-2147483648n, 2147483647n, 5n, -7n, 2n ** 33n, 0n]);
    const u32 = new Uint32Array([1, 2147483647, 4294967295]);
    const e4m3 = new Uint8Array([0x38, 0xb8, 0x7e, 0x7f, 0x01, 0x08, 0x00, 0x80]);
    const e5m2 = new Uint8Array([0x3c, 0xbc, 0x7c, 0xfc, 0x7d, 0x01, 0x04, 0x00]);
    const p = join(dir, 'ints.safetensors');
    writeSafetensors(p, {
      i64: { dtype: 'I64', shape: [3, 2], data: new Uint8Array(i64.buffer) },
      i16: { dtype: 'I16', shape: [3], data: new Uint8Array(new Int16Array([-32768, 32767, -1]).buffer) },
      i8: { dtype: 'I8', shape: [3], data: new Uint8Array(new Int8Array([-128, 127, -1]).buffer) },
      u16: { dtype: 'U16', shape: [2], data: new Uint8Array(new Uint16Array([65535, 3]).buffer) },
      u32: { dtype: 'U32', shape: [3], data: new Uint8Array(u32.buffer) },
      u64: { dtype: 'U64', shape: [1], data: new Uint8Array(new BigUint64Array([123n]).buffer) },
      e4m3: { dtype: 'F8_E4M3', shape: [8], data: e4m3 },
      e5m2: { dtype: 'F8_E5M2', shape: [8], data: e5m2 },
    });
    const f = openSafetensors(p);
    expect(f.info('i64').coreDtype).toBe('int32');
    const r = f.readRows('i64', 0, 2);
    expect([r.dtype, r.toArray()]).toEqual(['int32', [-2147483648, 2147483647, 5, -7]]);
    r.dispose();
    expect(() => f.readTensor('i64')).toThrow(
      /ints\.safetensors: tensor 'i64': element 4 = 8589934592 of a I64 tensor does not fit int32/,
    );
    expect(() => f.readRows('i64', 2, 3)).toThrow(/element 4 = 8589934592/);
    const read = (k: string, dtype?: 'float32') => {
      const t = f.readTensor(k, dtype ? { dtype } : {});
      const v = [t.dtype, t.toArray()];
      t.dispose();
      return v;
    };
    expect(read('i16')).toEqual(['int32', [-32768, 32767, -1]]);
    expect(read('i8')).toEqual(['int32', [-128, 127, -1]]);
    expect(read('u16')).toEqual(['int32', [65535, 3]]);
    expect(read('u64')).toEqual(['int32', [123]]);
    expect(read('i16', 'float32')).toEqual(['float32', [-32768, 32767, -1]]);
    expect(() => f.readTensor('u32')).toThrow(/element 2 = 4294967295 of a U32 tensor does not fit int32/);
    // float8: e4m3fn (bias 7, no infinities, S.1111.111 is NaN) and e5m2 (bias 15, IEEE-like).
    expect(read('e4m3')).toEqual(['float32', [1, -1, 448, Number.NaN, 2 ** -9, 2 ** -6, 0, -0]]);
    expect(read('e5m2')).toEqual([
      'float32',
      [1, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 2 ** -16, 2 ** -14, 0],
    ]);
    f.close();
  });

  it('reads onto another device through its backend (a fake device backed by host memory)', () => {
    const host = new CpuBackend();
    const uploads: number[] = [];
    const fake: Backend = {
      name: 'fake',
      allocate: (n) => {
        const st = host.allocate(n);
        return new Storage(fake, st.byteLength, st.handle);
      },
      free: (st) => host.free(st),
      readBytes: (st, o, n) => host.readBytes(st, o, n),
      writeBytes: (st, o, d) => {
        uploads.push(d.length);
        host.writeBytes(st, o, d);
      },
      synchronize: () => {},
      stats: () => host.stats(),
      resetPeak: () => host.resetPeak(),
      countTensor: (d) => host.countTensor(d),
    };
    defaultRegistry().registerBackend(fake);
    const f = openSafetensors(path);
    const cpuBefore = memoryStats('cpu').liveTensors;
    const t = f.readRows('w', 1, 4, { device: 'fake:0' });
    expect([t.device, t.dtype, t.shape]).toEqual(['fake:0', 'float32', [3, 6]]);
    expect(uploads).toEqual([3 * 6 * 4]);
    const s = w.slice0(1, 4);
    expect(t.toArray()).toEqual(s.toArray());
    const c = f.readTensor('b', { device: 'fake:0', dtype: 'float32' });
    const ref = b.to('float32');
    expect([c.device, c.dtype]).toEqual(['fake:0', 'float32']);
    expect(c.toArray()).toEqual(ref.toArray());
    for (const x of [t, s, c, ref]) x.dispose();
    expect(memoryStats('cpu').liveTensors).toBe(cpuBefore);
    expect(fake.stats().liveTensors).toBe(0);
    f.close();
  });
});
