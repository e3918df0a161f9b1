import type { MemoryStats } from './backend.js';
import { CpuBackend } from './backends/cpu-backend.js';
import { getRegistry } from './registry.js';

/**
 * Live tensors, storages, bytes and peak bytes of the backend owning `device`, and (CPU) the
 * bytes its caching allocator holds for reuse (`cachedBytes`, not part of `liveBytes`).
 */
export function memoryStats(device = 'cpu'): MemoryStats {
  return getRegistry().backend(device).stats();
}

/**
 * Release the memory the backend owning `device` keeps cached for reuse (PyTorch's
 * `torch.cuda.empty_cache()`); live tensors are untouched. No-op for backends without a cache.
 */
export function emptyCache(device = 'cpu'): void {
  getRegistry().backend(device).emptyCache?.();
}

/**
 * Cap, in bytes, the CPU backend's cache of freed buffers (0 turns it off; evicts oldest buffers
 * down to the cap). The default is `OMNITRAIN_CPU_CACHE_MB` (MiB, read at startup) or 256 MiB.
 * Returns the previous cap.
 */
export function setCpuCacheLimit(bytes: number): number {
  const backend = getRegistry().backend('cpu');
  if (!(backend instanceof CpuBackend)) throw new Error('setCpuCacheLimit: the cpu backend is not a CpuBackend');
  const previous = backend.cacheLimit;
  backend.setCacheLimit(bytes);
  return previous;
}
