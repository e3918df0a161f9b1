import { type Backend, MemoryCounters, type MemoryStats } from '../backend.js';
import { Storage } from '../storage.js';

/** Host memory: each storage is an ArrayBuffer that kernels (TypeScript or native) use in place. */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  private readonly counters = new MemoryCounters();

  allocate(byteLength: number): Storage {
    // Round up to 8 bytes so any dtype view of the buffer is aligned.
    const buffer = new ArrayBuffer(Math.ceil(byteLength / 8) * 8);
    this.counters.allocated(byteLength);
    return new Storage(this, byteLength, buffer);
  }

  free(storage: Storage): void {
    this.counters.freed(storage.byteLength);
  }

  readBytes(storage: Storage, byteOffset: number, byteLength: number): Uint8Array {
    return new Uint8Array(storage.handle as ArrayBuffer, byteOffset, byteLength).slice();
  }

  writeBytes(storage: Storage, byteOffset: number, data: Uint8Array): void {
    new Uint8Array(storage.handle as ArrayBuffer, byteOffset, data.length).set(data);
  }

  synchronize(): void {}

  stats(): MemoryStats {
    return this.counters.snapshot();
  }

  resetPeak(): void {
    this.counters.peakBytes = this.counters.liveBytes;
  }

  countTensor(delta: number): void {
    this.counters.liveTensors += delta;
  }
}
