// Per-rank bytes of parameters, gradients and optimizer state (what FSDP divides by N).

import { itemSize, type nn, type optim, Tensor } from '@omnitrain/core';

/** Bytes this rank holds for a module's training state. */
export interface TrainingStateBytes {
  params: number;
  grads: number;
  optimizerState: number;
  total: number;
}

const bytes = (t: Tensor) => t.numel * itemSize(t.dtype);

/** Count the bytes of `module`'s parameters (as they are now: shards after fullyShard), grads and `optimizer`'s state tensors. */
export function trainingStateBytes(module: nn.Module, optimizer?: optim.Optimizer<{ lr: number }>): TrainingStateBytes {
  let params = 0;
  let grads = 0;
  let optimizerState = 0;
  for (const p of module.parameters()) {
    params += bytes(p);
    if (p.grad) grads += bytes(p.grad);
    for (const v of Object.values(optimizer?.state.get(p) ?? {})) if (v instanceof Tensor) optimizerState += bytes(v);
  }
  return { params, grads, optimizerState, total: params + grads + optimizerState };
}
