import type { Registry } from '../../registry.js';

/** Register the reference CPU kernels of optimizer steps. */
export function registerOptimKernels(_r: Registry, _source: string): void {}
