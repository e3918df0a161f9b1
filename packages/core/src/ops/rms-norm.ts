import { record } from '../autograd/node.js';
import type { Tensor } from '../tensor.js';
import { dispatch } from './dispatch.js';

const fmt = (shape: readonly number[]) => JSON.stringify(shape);

function checkEps(op: string, eps: number): void {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new Error(`${op}: eps must be a finite number >= 0, got ${eps}`);
  }
}

function checkFloat(op: string, name: string, t: Tensor): void {
  if (!t.isFloatingPoint) throw new Error(`${op}: ${name} must be a float tensor, got ${t.dtype} ${fmt(t.shape)}`);
}

/**
 * Root-mean-square normalisation over the last dimension, as Hugging Face's `LlamaRMSNorm`:
 * `h = x.float(); h = h * rsqrt(mean(h², -1) + eps); return weight * h.to(x.dtype)`.
 * The result has dtype promote(x.dtype, weight.dtype) (bf16 x with a float32 weight gives float32).
 *
 * Fused: one kernel (`rmsNorm` → `[y, rstd]`) forward and one (`rmsNormBackward` → `[gx, gweight]`)
 * backward, so a native backend can override both.
 *
 * @param x input [..., D]
 * @param weight scale [D]
 * @param eps added to the mean square (default 1e-6)
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  checkFloat('rmsNorm', 'x', x);
  checkFloat('rmsNorm', 'weight', weight);
  if (x.ndim === 0) throw new Error('rmsNorm: x must have at least one dimension, got a 0-d tensor');
  const d = x.shape[x.ndim - 1]!;
  if (weight.ndim !== 1 || weight.shape[0] !== d) {
    throw new Error(
      `rmsNorm: weight of shape ${fmt(weight.shape)} does not match the last dimension of x ${fmt(x.shape)} (expected [${d}])`,
    );
  }
  checkEps('rmsNorm', eps);
  const [y, rstd] = dispatch('rmsNorm', [x, weight], { eps }) as [Tensor, Tensor];
  record(
    'rmsNorm',
    [x, weight],
    [y],
    ([gy], [xs, ws, rs]) => {
      if (!gy) return [null, null];
      const [gx, gw] = dispatch('rmsNormBackward', [gy, xs!, ws!, rs!], { eps });
      return [gx!, gw!];
    },
    [x, weight, rstd],
  );
  rstd.dispose();
  return y;
}
