// The CPU backend's caching allocator (PyTorch-style): freed buffers >= 64 KiB are kept by rounded
// size and handed back zero-filled; a freed storage no longer reaches its buffer; the cache is capped
// (oldest evicted first), can be switched off (env / setCpuCacheLimit) and emptied, and live-byte
// statistics keep counting live tensors only.
import { afterEach, describe, expect, it } from 'vitest';
import {
  CPU_CACHE_MIN_BYTES,
  CpuBackend,
  cpuAllocationSize,
  empty,
  emptyCache,
  memoryStats,
  setCpuCacheLimit,
  Tensor,
} from '../src/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const bufferOf = (s: { handle: unknown }) => s.handle as ArrayBuffer;

describe('cpu caching allocator', () => {
  afterEach(() => emptyCache('cpu'));

  it('rounds cacheable sizes: 4 KiB steps below 1 MiB, 8 classes per power of two above', () => {
    expect(cpuAllocationSize(10)).toBe(16);
    expect(cpuAllocationSize(CPU_CACHE_MIN_BYTES - 4)).toBe(CPU_CACHE_MIN_BYTES);
    expect(cpuAllocationSize(CPU_CACHE_MIN_BYTES + 1)).toBe(CPU_CACHE_MIN_BYTES + 4 * KiB);
    expect(cpuAllocationSize(MiB)).toBe(MiB);
    expect(cpuAllocationSize(MiB + 1)).toBe(MiB + 128 * KiB);
    expect(cpuAllocationSize(4 * MiB + 12345)).toBe(4 * MiB + 512 * KiB);
    for (const n of [70_001, 1_500_000, 33_000_000, 100 * MiB + 3]) {
      const c = cpuAllocationSize(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c / n).toBeLessThanOrEqual(1.125 + 1e-9);
    }
  });

  it('reuses a freed buffer of the same rounded size, zero-filled', () => {
    const b = new CpuBackend(64 * MiB);
    const s1 = b.allocate(300 * KiB);
    const buf = bufferOf(s1);
    new Float32Array(buf).fill(7);
    s1.release();
    expect(b.stats()).toMatchObject({ liveBytes: 0, liveStorages: 0, cachedBytes: 300 * KiB });
    const s2 = b.allocate(300 * KiB - 100); // same 4 KiB class
    expect(bufferOf(s2)).toBe(buf);
    expect(new Float32Array(bufferOf(s2), 0, (300 * KiB - 100) / 4).every((v) => v === 0)).toBe(true);
    expect(b.stats()).toMatchObject({ liveBytes: 300 * KiB - 100, liveStorages: 1, cachedBytes: 0 });
    // A different class gets a fresh buffer.
    const s3 = b.allocate(400 * KiB);
    expect(bufferOf(s3)).not.toBe(buf);
    s2.release();
    s3.release();
    // Small buffers are never cached.
    const small = b.allocate(CPU_CACHE_MIN_BYTES / 2);
    small.release();
    expect(b.stats().cachedBytes).toBe(300 * KiB + 400 * KiB);
  });

  it('zeroFill false (Tensor.uninitialized) hands a reused buffer back as it was; empty still zero-fills', () => {
    const b = new CpuBackend(64 * MiB);
    const s1 = b.allocate(300 * KiB);
    const buf = bufferOf(s1);
    new Float32Array(buf).fill(7);
    s1.release();
    const s2 = b.allocate(300 * KiB, 'float32', 0, false);
    expect(bufferOf(s2)).toBe(buf);
    expect(new Float32Array(bufferOf(s2), 0, (300 * KiB) / 4).every((v) => v === 7)).toBe(true);
    expect(b.stats()).toMatchObject({ liveBytes: 300 * KiB, liveStorages: 1, cachedBytes: 0 });
    s2.release();
    const s3 = b.allocate(300 * KiB, 'float32', 0);
    expect(bufferOf(s3)).toBe(buf);
    expect(new Float32Array(bufferOf(s3)).every((v) => v === 0)).toBe(true);
    s3.release();
    // Through Tensor (default backend): same buffer class, old bytes kept by uninitialized only.
    const t1 = Tensor.empty([200, 300]);
    (t1.raw() as Float32Array).fill(3);
    t1.dispose();
    const t2 = Tensor.uninitialized([200, 300]);
    expect((t2.raw() as Float32Array)[123]).toBe(3);
    t2.dispose();
    const t3 = Tensor.empty([200, 300]);
    expect((t3.raw() as Float32Array).every((v) => v === 0)).toBe(true);
    t3.dispose();
  });

  it('a freed storage no longer reaches its buffer: stale access throws instead of aliasing', () => {
    const b = new CpuBackend(64 * MiB);
    const s = b.allocate(256 * KiB);
    const t = new Tensor(s, [256 * 256], 'float32', 'cpu');
    t.raw().fill(3);
    const view = t.reshape(256, 256); // a second tensor on the same storage
    t.dispose();
    // Still one live view: the storage is not freed, nothing was cached.
    expect(b.stats().cachedBytes).toBe(0);
    const other = b.allocate(256 * KiB);
    expect(bufferOf(other)).not.toBe(bufferOf(s));
    expect(view.raw()[1000]).toBe(3);
    view.dispose();
    expect(b.stats().cachedBytes).toBe(256 * KiB);
    expect(() => s.handle).toThrow(/storage freed/);
    expect(s.isAllocated).toBe(false);
    expect(() => view.raw()).toThrow(/dispos/);
    expect(() => view.toArray()).toThrow(/dispos/);
    expect(() => b.readBytes(s, 0, 4)).toThrow(/storage freed/);
    expect(() => b.writeBytes(s, 0, new Uint8Array(4))).toThrow(/storage freed/);
    // The new owner of the memory is untouched by the stale attempts above.
    const reuse = new Tensor(b.allocate(256 * KiB), [256 * 256], 'float32', 'cpu');
    reuse.raw().fill(5);
    expect(() => s.handle).toThrow(/storage freed/);
    expect(reuse.raw().every((v) => v === 5)).toBe(true);
    reuse.dispose();
    other.release();
  });

  it('caps the cached bytes and evicts the oldest first; setCacheLimit trims; emptyCache drops all', () => {
    const b = new CpuBackend(1 * MiB);
    const a = b.allocate(400 * KiB);
    const c = b.allocate(400 * KiB);
    const d = b.allocate(300 * KiB);
    const [bufA, bufC, bufD] = [a, c, d].map(bufferOf);
    a.release(); // oldest
    c.release();
    expect(b.cachedBytes).toBe(800 * KiB);
    d.release(); // 1100 KiB > 1 MiB: a goes
    expect(b.cachedBytes).toBe(700 * KiB);
    const again = b.allocate(400 * KiB);
    expect(bufferOf(again)).toBe(bufC); // a was evicted, c kept
    expect(bufferOf(again)).not.toBe(bufA);
    again.release();
    // A buffer larger than the cap is never cached.
    const huge = b.allocate(2 * MiB);
    huge.release();
    expect(b.cachedBytes).toBe(700 * KiB);
    b.setCacheLimit(450 * KiB); // trims oldest first: d (freed before c's second free) goes
    expect(b.cachedBytes).toBe(400 * KiB);
    const notD = b.allocate(300 * KiB);
    expect(bufferOf(notD)).not.toBe(bufD);
    const stillC = b.allocate(400 * KiB);
    expect(bufferOf(stillC)).toBe(bufC);
    notD.release();
    stillC.release();
    b.emptyCache();
    expect(b.cachedBytes).toBe(0);
    expect(b.stats()).toMatchObject({ liveBytes: 0, liveStorages: 0, cachedBytes: 0 });
  });

  it('is off with limit 0 and with OMNITRAIN_CPU_CACHE_MB=0; the env var sets the cap in MiB', () => {
    const saved = process.env.OMNITRAIN_CPU_CACHE_MB;
    try {
      process.env.OMNITRAIN_CPU_CACHE_MB = '0';
      const off = new CpuBackend();
      expect(off.cacheLimit).toBe(0);
      const s = off.allocate(200 * KiB);
      expect(bufferOf(s).byteLength).toBe(200 * KiB); // exact size when not caching
      const buf = bufferOf(s);
      s.release();
      expect(off.cachedBytes).toBe(0);
      expect(bufferOf(off.allocate(200 * KiB))).not.toBe(buf);
      process.env.OMNITRAIN_CPU_CACHE_MB = '3';
      expect(new CpuBackend().cacheLimit).toBe(3 * MiB);
      process.env.OMNITRAIN_CPU_CACHE_MB = 'lots';
      expect(() => new CpuBackend()).toThrow(/OMNITRAIN_CPU_CACHE_MB/);
    } finally {
      if (saved === undefined) delete process.env.OMNITRAIN_CPU_CACHE_MB;
      else process.env.OMNITRAIN_CPU_CACHE_MB = saved;
    }
    const b = new CpuBackend(8 * MiB);
    const s = b.allocate(200 * KiB);
    b.setCacheLimit(0);
    s.release();
    expect(b.cachedBytes).toBe(0);
    expect(() => b.setCacheLimit(-1)).toThrow(/cache limit/);
  });

  it('memoryStats: live bytes count live tensors only, cachedBytes the cache; emptyCache and setCpuCacheLimit', () => {
    emptyCache('cpu');
    const base = memoryStats('cpu');
    expect(base.cachedBytes).toBe(0);
    const t = empty([1000, 100], { dtype: 'float32' }); // 400000 bytes
    expect(memoryStats('cpu').liveBytes - base.liveBytes).toBe(400_000);
    t.raw().fill(1);
    t.dispose();
    const after = memoryStats('cpu');
    expect(after.liveBytes).toBe(base.liveBytes);
    expect(after.liveStorages).toBe(base.liveStorages);
    expect(after.cachedBytes).toBe(cpuAllocationSize(400_000));
    const u = empty([100, 1000], { dtype: 'float32' }); // same bytes: reused and zeroed
    expect(memoryStats('cpu').cachedBytes).toBe(0);
    expect(u.raw().every((v) => v === 0)).toBe(true);
    u.dispose();
    emptyCache('cpu');
    expect(memoryStats('cpu').cachedBytes).toBe(0);
    const previous = setCpuCacheLimit(0);
    try {
      empty([1000, 100]).dispose();
      expect(memoryStats('cpu').cachedBytes).toBe(0);
    } finally {
      setCpuCacheLimit(previous);
    }
    empty([1000, 100]).dispose();
    expect(memoryStats('cpu').cachedBytes).toBe(cpuAllocationSize(400_000));
    emptyCache('meta'); // no cache there: no-op
  });

  it('releaseBytes returns the buffer to the cache; ensureAllocated takes one back zeroed', () => {
    const b = new CpuBackend(64 * MiB);
    const s = b.allocate(512 * KiB);
    const t = new Tensor(s, [128 * KiB], 'float32', 'cpu');
    t.raw().fill(9);
    const buf = bufferOf(s);
    s.releaseBytes('test');
    expect(b.stats()).toMatchObject({ liveBytes: 0, liveStorages: 0, cachedBytes: 512 * KiB });
    expect(() => t.raw()).toThrow(/storage released/);
    // Someone else takes that buffer meanwhile; the released storage's tensor cannot touch it.
    const other = new Tensor(b.allocate(512 * KiB), [128 * KiB], 'float32', 'cpu');
    expect(bufferOf(other.storage)).toBe(buf);
    other.raw().fill(4);
    expect(() => t.raw()).toThrow(/storage released/);
    other.dispose();
    s.ensureAllocated();
    expect(b.stats()).toMatchObject({ liveBytes: 512 * KiB, liveStorages: 1, cachedBytes: 0 });
    expect(bufferOf(s)).toBe(buf);
    expect(t.raw().every((v) => v === 0)).toBe(true);
    t.dispose();
    expect(b.stats()).toMatchObject({ liveBytes: 0, liveStorages: 0, liveTensors: 0, cachedBytes: 512 * KiB });
  });
});
