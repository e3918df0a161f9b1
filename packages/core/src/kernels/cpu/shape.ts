import type { Registry } from '../../registry.js';

/** Register the reference CPU kernels of this family. */
export function registerShapeKernels(_r: Registry, _source: string): void {}
