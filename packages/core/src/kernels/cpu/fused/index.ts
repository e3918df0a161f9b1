import type { Registry } from '../../../registry.js';

/** Register the reference CPU kernels of the fused ops. */
export function registerFusedKernels(_r: Registry, _source: string): void {}
