/**
 * @omnitrain/core — tensors, dtypes, devices, the kernel/plugin registry, autograd,
 * `nn.Module`, optimizers and the counter-based RNG. Plain TypeScript, nothing native:
 * its CPU kernels are the reference every other backend is checked against.
 * @packageDocumentation
 */
export * from './dtype.js';
export * from './device.js';
export * from './half.js';
export * from './shape.js';
export type { Backend, MemoryStats } from './backend.js';
export { MemoryCounters } from './backend.js';
export { Storage } from './storage.js';
export { CpuBackend } from './backends/cpu-backend.js';
export { MetaBackend } from './backends/meta-backend.js';
export { Catalog } from './catalog.js';
export {
  Registry,
  type Kernel,
  type KernelEntry,
  type Plugin,
  defaultRegistry,
  getRegistry,
  withRegistry,
} from './registry.js';
export { corePlugin, createRegistry } from './core-plugin.js';
export { CORE_VERSION } from './version.js';
export { Tensor } from './tensor.js';
export type { HostArray } from './host-data.js';
export * from './creation.js';
export { tidy, keep, dispose } from './memory.js';
export { memoryStats } from './memory-stats.js';
export { noGrad, enableGrad, isGradEnabled, withGradMode } from './autograd/grad-mode.js';
export { GradNode, record, needsGrad, type BackwardFn, type GradHook, type Edge } from './autograd/node.js';
export { runBackward } from './autograd/engine.js';
export * from './autograd/checkpoint.js';
export * from './ops/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * from './rng/index.js';
