/**
 * @omnitrain/core — tensors, dtypes, devices, the kernel/plugin registry, autograd,
 * `nn.Module`, optimizers and the counter-based RNG. Plain TypeScript, nothing native:
 * its CPU kernels are the reference every other backend is checked against.
 * @packageDocumentation
 */

export * from './autograd/checkpoint.js';
export { runBackward } from './autograd/engine.js';
export { enableGrad, isGradEnabled, noGrad, withGradMode } from './autograd/grad-mode.js';
export { type BackwardFn, type Edge, type GradHook, GradNode, needsGrad, record } from './autograd/node.js';
export type { Backend, MemoryStats } from './backend.js';
export { MemoryCounters } from './backend.js';
export { CPU_CACHE_MIN_BYTES, CpuBackend, cpuAllocationSize } from './backends/cpu-backend.js';
export { MetaBackend } from './backends/meta-backend.js';
export { Catalog } from './catalog.js';
export { corePlugin, createRegistry } from './core-plugin.js';
export * from './creation.js';
export * from './device.js';
export * from './distributed/index.js';
export * from './dtype.js';
export * from './half.js';
export type { HostArray } from './host-data.js';
export { dispose, keep, tidy } from './memory.js';
export { emptyCache, memoryStats, setCpuCacheLimit } from './memory-stats.js';
export * as nn from './nn/index.js';
export * from './ops/index.js';
export * as optim from './optim/index.js';
export {
  defaultRegistry,
  getRegistry,
  type Kernel,
  type KernelEntry,
  type Plugin,
  Registry,
  withRegistry,
} from './registry.js';
export * from './rng/index.js';
export * from './shape.js';
export { Storage } from './storage.js';
export { Tensor } from './tensor.js';
export { toDevice } from './transfer.js';
export { CORE_VERSION } from './version.js';
