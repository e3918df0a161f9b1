import { isFloating } from '../dtype.js';
import { sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch } from './dispatch.js';

/** Hyper-parameters of one AdamW update (PyTorch's `torch.optim.AdamW` names, camelCased). */
export interface AdamWStepOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment. */
  beta1: number;
  /** Decay of the second moment. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** Decoupled weight decay: `param *= 1 - lr * weightDecay` before the Adam update. */
  weightDecay: number;
  /** The step number after this update (1 for the first update), for bias correction. */
  step: number;
  /** Maximise instead of minimise (the gradient is negated). */
  maximize?: boolean;
  /** AMSGrad: running maximum of the second moment, updated in place. */
  maxExpAvgSq?: Tensor | null;
}

/**
 * Fused AdamW update, in place: updates `expAvg`, `expAvgSq` (and `maxExpAvgSq`) and `param`
 * exactly as `torch.optim.AdamW` does, computing in float32 (float64 for float64 params) and
 * rounding the new parameter once to its dtype (bf16 params with fp32 state). Not recorded
 * on the autograd tape. Dispatches to the `adamwStep` kernel so native backends override it.
 * Kernel contract: inputs `[param, grad, expAvg, expAvgSq, maxExpAvgSq?]`, attrs
 * `{ lr, beta1, beta2, eps, weightDecay, step, maximize, amsgrad }`, returns `[param]`.
 */
export function adamwStep(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, opts: AdamWStepOptions): void {
  const tensors = [param, grad, expAvg, expAvgSq, ...(opts.maxExpAvgSq ? [opts.maxExpAvgSq] : [])];
  const names = ['param', 'grad', 'expAvg', 'expAvgSq', 'maxExpAvgSq'];
  tensors.forEach((t, i) => {
    if (!isFloating(t.dtype)) throw new Error(`adamwStep: ${names[i]} must be a float tensor, got ${t.dtype}`);
    if (!sameShape(t.shape, param.shape)) {
      throw new Error(
        `adamwStep: ${names[i]} has shape ${JSON.stringify(t.shape)}, param has ${JSON.stringify(param.shape)}`,
      );
    }
  });
  for (const [name, v] of Object.entries({ lr: opts.lr, beta1: opts.beta1, beta2: opts.beta2, eps: opts.eps })) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`adamwStep: invalid ${name} ${v}`);
  }
  if (!(opts.beta1 < 1 && opts.beta2 < 1))
    throw new Error(`adamwStep: betas must be < 1, got ${opts.beta1}, ${opts.beta2}`);
  if (!Number.isInteger(opts.step) || opts.step < 1)
    throw new Error(`adamwStep: step must be an integer >= 1, got ${opts.step}`);
  if (param.numel === 0 || param.device === 'meta') return;
  dispatch('adamwStep', tensors, {
    lr: opts.lr,
    beta1: opts.beta1,
    beta2: opts.beta2,
    eps: opts.eps,
    weightDecay: opts.weightDecay,
    step: opts.step,
    maximize: opts.maximize ?? false,
    amsgrad: !!opts.maxExpAvgSq,
  });
}
