import { type Backend, MemoryCounters, type MemoryStats } from '../backend.js';
import { Storage } from '../storage.js';

/** Shape-only tensors: models are built here, then materialised shard by shard elsewhere. */
export class MetaBackend implements Backend {
  readonly name = 'meta';
  private readonly counters = new MemoryCounters();

  allocate(byteLength: number): Storage {
    return new Storage(this, byteLength, null);
  }

  free(): void {}

  readBytes(): Uint8Array {
    throw new Error("meta tensors have no data: materialise them first (e.g. module.to('cpu') with an init)");
  }

  writeBytes(): void {
    throw new Error('meta tensors have no data to write into');
  }

  synchronize(): void {}

  stats(): MemoryStats {
    return this.counters.snapshot();
  }

  resetPeak(): void {}

  countTensor(delta: number): void {
    this.counters.liveTensors += delta;
  }
}
