import type { Registry } from '../../../registry.js';
import { registerAttentionKernels } from './attention.js';
import { registerCrossEntropyKernels } from './cross-entropy.js';
import { registerGroupedMatmulKernels } from './grouped-matmul.js';
import { registerLayerNormKernels } from './layer-norm.js';
import { registerRmsNormKernels } from './rms-norm.js';
import { registerRopeKernels } from './rope.js';
import { registerSwigluKernels } from './swiglu.js';

/** Register the reference CPU kernels of the fused ops. */
export function registerFusedKernels(r: Registry, source: string): void {
  registerRmsNormKernels(r, source);
  registerLayerNormKernels(r, source);
  registerRopeKernels(r, source);
  registerSwigluKernels(r, source);
  registerGroupedMatmulKernels(r, source);
  registerCrossEntropyKernels(r, source);
  registerAttentionKernels(r, source);
}
