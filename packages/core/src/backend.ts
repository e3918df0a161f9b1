import type { DType } from './dtype.js';
import type { Storage } from './storage.js';

/** Live and peak memory of one backend, as its own counters see it. */
export interface MemoryStats {
  /** Tensors (handles) not yet disposed. */
  liveTensors: number;
  /** Storages not yet freed. */
  liveStorages: number;
  /** Bytes held by live storages. */
  liveBytes: number;
  /** Highest `liveBytes` since the last `resetPeak()`. */
  peakBytes: number;
  /**
   * Bytes a caching allocator holds for reuse: freed, not live, not counted in `liveBytes` or
   * `peakBytes` (CPU: see `CpuBackend`; absent where the backend does not cache). Dropped by
   * `emptyCache(device)`.
   */
  cachedBytes?: number;
}

/** A device backend: owns memory for one kind of device. Kernels are registered separately. */
export interface Backend {
  /** Backend name, e.g. `cpu`, `cuda`, `meta`. */
  readonly name: string;
  /**
   * Allocate `byteLength` bytes for elements of `dtype`, zero-filled on CPU unless `zeroFill` is false: then the
   * contents are unspecified (a reused buffer keeps a freed tensor's bytes), for kernels that write every element.
   */
  allocate(byteLength: number, dtype: DType, deviceIndex: number, zeroFill?: boolean): Storage;
  /** Return a storage's memory (called by `Storage.release`). */
  free(storage: Storage): void;
  /** Copy bytes out to host memory. */
  readBytes(storage: Storage, byteOffset: number, byteLength: number): Uint8Array;
  /** Copy bytes in from host memory. */
  writeBytes(storage: Storage, byteOffset: number, data: Uint8Array): void;
  /** Wait until all queued work on the device is done (no-op on CPU). */
  synchronize(): void;
  /** Counters for leak tests and memory reports. */
  stats(): MemoryStats;
  /** Reset the peak to the current live bytes. */
  resetPeak(): void;
  /** Called by tensors as handles are made and disposed. */
  countTensor(delta: number): void;
  /** Release memory a caching allocator holds for reuse (optional; see `emptyCache`). */
  emptyCache?(): void;
}

/** Shared counter bookkeeping for backends. */
export class MemoryCounters {
  liveTensors = 0;
  liveStorages = 0;
  liveBytes = 0;
  peakBytes = 0;

  allocated(bytes: number): void {
    this.liveStorages++;
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
  }

  freed(bytes: number): void {
    this.liveStorages--;
    this.liveBytes -= bytes;
  }

  snapshot(): MemoryStats {
    return {
      liveTensors: this.liveTensors,
      liveStorages: this.liveStorages,
      liveBytes: this.liveBytes,
      peakBytes: this.peakBytes,
    };
  }
}
