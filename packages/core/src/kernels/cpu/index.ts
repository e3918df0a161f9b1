import type { Registry } from '../../registry.js';
import { registerElementwiseKernels } from './elementwise.js';
import { registerEmbeddingKernels } from './embedding.js';
import { registerFusedKernels } from './fused/index.js';
import { registerInplaceKernels } from './inplace.js';
import { registerMatmulKernels } from './matmul.js';
import { registerOptimKernels } from './optim.js';
import { registerReduceKernels } from './reduce.js';
import { registerShapeKernels } from './shape.js';

/** Register every reference CPU kernel (plain TypeScript: the correctness oracle). */
export function registerReferenceCpuKernels(r: Registry): void {
  const source = '@omnitrain/core reference';
  registerInplaceKernels(r, source);
  registerElementwiseKernels(r, source);
  registerReduceKernels(r, source);
  registerShapeKernels(r, source);
  registerMatmulKernels(r, source);
  registerEmbeddingKernels(r, source);
  registerFusedKernels(r, source);
  registerOptimKernels(r, source);
}
