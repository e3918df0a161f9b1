import type { MemoryStats } from './backend.js';
import { getRegistry } from './registry.js';

/** Live tensors, storages, bytes and peak bytes of the backend owning `device`. */
export function memoryStats(device = 'cpu'): MemoryStats {
  return getRegistry().backend(device).stats();
}
