import { type Backend, MemoryCounters, type MemoryStats } from '../backend.js';
import type { DType } from '../dtype.js';
import { Storage } from '../storage.js';

/** Buffers below this many bytes are not cached: `new ArrayBuffer` is cheap there. */
export const CPU_CACHE_MIN_BYTES = 64 * 1024;
const MIB = 1024 * 1024;

/** Default cap on the bytes the CPU cache holds: `OMNITRAIN_CPU_CACHE_MB` (0 = off), else 256 MiB. */
function defaultCacheLimit(): number {
  const env = typeof process !== 'undefined' ? process.env?.OMNITRAIN_CPU_CACHE_MB : undefined;
  if (env !== undefined && env.trim() !== '') {
    const mb = Number(env);
    if (!Number.isFinite(mb) || mb < 0) {
      throw new Error(`OMNITRAIN_CPU_CACHE_MB must be a number of MiB >= 0 (0 = no cache), got '${env}'`);
    }
    return Math.floor(mb * MIB);
  }
  return 256 * MIB;
}

/**
 * Capacity actually allocated for a request of `byteLength` bytes. Small requests: 8-byte
 * multiples (every dtype view stays aligned). Cached sizes: 4 KiB multiples below 1 MiB, above
 * that 8 classes per power of two (waste <= 12.5%, and `liveBytes` still counts the request), so
 * shapes that vary slightly reuse the same buffers.
 */
export function cpuAllocationSize(byteLength: number): number {
  if (byteLength < CPU_CACHE_MIN_BYTES) return Math.ceil(byteLength / 8) * 8;
  if (byteLength <= MIB) return Math.ceil(byteLength / 4096) * 4096;
  const step = 2 ** (Math.floor(Math.log2(byteLength)) - 3);
  return Math.ceil(byteLength / step) * step;
}

/**
 * Host memory: each storage is an ArrayBuffer that kernels (TypeScript or native) use in place.
 *
 * Caching allocator (like PyTorch's): a freed buffer of at least {@link CPU_CACHE_MIN_BYTES}
 * goes to a free list keyed by its rounded size ({@link cpuAllocationSize}) instead of waiting for
 * V8's garbage collector; `allocate` of that size takes the most recently freed one and zero-fills
 * it unless asked not to (a memset of warm memory is ~5-10x cheaper than the page faults of a fresh buffer). The cache
 * holds at most {@link CpuBackend.cacheLimit} bytes (oldest evicted first); `emptyCache()` drops
 * it. A freed `Storage` no longer reaches its buffer (`storage.handle` throws), but typed arrays
 * taken earlier with `raw()` do: they are valid only until their tensor is disposed.
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private readonly counters = new MemoryCounters();
  private limit: number;
  /** Free buffers by capacity, oldest first in each list. */
  private readonly bins = new Map<number, ArrayBuffer[]>();
  /** Every cached buffer in the order it was freed (Map keeps insertion order): eviction order. */
  private readonly lru = new Map<ArrayBuffer, number>();
  /** Buffers this backend made at a cacheable size (only those may enter the cache). */
  private readonly owned = new WeakSet<ArrayBuffer>();
  private cached = 0;

  /** `cacheLimitBytes` defaults to `OMNITRAIN_CPU_CACHE_MB` (MiB; 0 = off) or 256 MiB. */
  constructor(cacheLimitBytes: number = defaultCacheLimit()) {
    this.limit = checkLimit(cacheLimitBytes);
  }

  /** Most bytes the free-buffer cache may hold (0 = caching off). */
  get cacheLimit(): number {
    return this.limit;
  }

  /** Set the cache cap in bytes (0 turns caching off); evicts oldest buffers down to it. */
  setCacheLimit(bytes: number): void {
    this.limit = checkLimit(bytes);
    this.trim(this.limit);
  }

  /** Bytes held by the cache (freed buffers kept for reuse; not counted in `liveBytes`). */
  get cachedBytes(): number {
    return this.cached;
  }

  /** Drop every cached buffer (V8 frees them at its next GC), like `torch.cuda.empty_cache()`. */
  emptyCache(): void {
    this.trim(0);
  }

  allocate(byteLength: number, _dtype?: DType, _deviceIndex?: number, zeroFill = true): Storage {
    const capacity = cpuAllocationSize(byteLength);
    let buffer: ArrayBuffer | undefined;
    if (capacity >= CPU_CACHE_MIN_BYTES) {
      const bin = this.bins.get(capacity);
      buffer = bin?.pop();
      if (buffer !== undefined) {
        if (bin!.length === 0) this.bins.delete(capacity);
        this.lru.delete(buffer);
        this.cached -= capacity;
        // Zero only what a view can reach: the storage's bytes (8-aligned). Skipped for outputs a kernel
        // overwrites whole (a GEMM with beta 0 already clears C itself: a second pass costs ~3-5% of 1024^3).
        if (zeroFill) new Uint8Array(buffer, 0, Math.min(capacity, Math.ceil(byteLength / 8) * 8)).fill(0);
      } else if (this.limit > 0) {
        buffer = new ArrayBuffer(capacity);
        this.owned.add(buffer);
      } else {
        buffer = new ArrayBuffer(Math.ceil(byteLength / 8) * 8);
      }
    } else {
      buffer = new ArrayBuffer(capacity);
    }
    this.counters.allocated(byteLength);
    return new Storage(this, byteLength, buffer);
  }

  free(storage: Storage): void {
    this.counters.freed(storage.byteLength);
    const buffer = storage.handle as ArrayBuffer | null;
    if (buffer === null || this.limit === 0 || !this.owned.has(buffer)) return;
    const capacity = buffer.byteLength; // 0 if it was detached (transferred): never cache that
    if (capacity < CPU_CACHE_MIN_BYTES || capacity > this.limit || this.lru.has(buffer)) return;
    this.trim(this.limit - capacity);
    const bin = this.bins.get(capacity);
    if (bin) bin.push(buffer);
    else this.bins.set(capacity, [buffer]);
    this.lru.set(buffer, capacity);
    this.cached += capacity;
  }

  /** Evict oldest cached buffers until at most `target` bytes remain. */
  private trim(target: number): void {
    for (const [buffer, capacity] of this.lru) {
      if (this.cached <= target) break;
      const bin = this.bins.get(capacity)!;
      // The globally oldest buffer is the oldest of its bin: the front.
      if (bin[0] === buffer) bin.shift();
      else bin.splice(bin.indexOf(buffer), 1);
      if (bin.length === 0) this.bins.delete(capacity);
      this.lru.delete(buffer);
      this.cached -= capacity;
    }
  }

  readBytes(storage: Storage, byteOffset: number, byteLength: number): Uint8Array {
    return new Uint8Array(storage.handle as ArrayBuffer, byteOffset, byteLength).slice();
  }

  writeBytes(storage: Storage, byteOffset: number, data: Uint8Array): void {
    new Uint8Array(storage.handle as ArrayBuffer, byteOffset, data.length).set(data);
  }

  synchronize(): void {}

  stats(): MemoryStats {
    return { ...this.counters.snapshot(), cachedBytes: this.cached };
  }

  resetPeak(): void {
    this.counters.peakBytes = this.counters.liveBytes;
  }

  countTensor(delta: number): void {
    this.counters.liveTensors += delta;
  }
}

function checkLimit(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes < 0) {
    throw new Error(`cpu cache limit must be a number of bytes >= 0 (0 = no cache), got ${bytes}`);
  }
  return Math.floor(bytes);
}
