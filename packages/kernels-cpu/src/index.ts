/**
 * @omnitrain/kernels-cpu — native CPU kernels (C++17, SIMD, threads, BLAS) registered over core's reference kernels.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';
import { registerNativeKernels } from './kernels.js';

export { KERNEL_PRIORITY, KERNEL_SOURCE, NATIVE_KERNELS, registerNativeKernels } from './kernels.js';
export {
  fmaPeakGflops,
  type GemmBf16Mode,
  gemmBf16Mode,
  type NativeAddon,
  native,
  nativeStatus,
  nativeUnavailableReason,
  setGemmBf16Mode,
  setNumThreads,
} from './native.js';

/**
 * The plugin object: `registry.use(plugin)` registers the native kernels on `cpu` at priority 10.
 * Nothing native is loaded here; the addon loads on the first kernel call, and when it is unavailable
 * every op runs core's reference kernel (`nativeStatus()` says "backend unavailable: <why>").
 */
export const plugin: Plugin = {
  name: 'kernels-cpu',
  version: '0.1.0',
  coreRange: '^0.1',
  setup(r) {
    registerNativeKernels(r);
  },
};
