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
 * Layer normalisation over the last dimension, as `torch.nn.functional.layer_norm(x, [D], weight,
 * bias, eps)`: `(x - mean) / sqrt(var + eps) * weight + bias` with the biased variance.
 * `weight` and `bias` are optional (null) and must have x's dtype.
 *
 * Fused: kernels `layerNorm` (→ `[y, mean, rstd]`) and `layerNormBackward`
 * (→ `[gx, gweight?, gbias?]`), overridable by a native backend.
 *
 * @param x input [..., D]
 * @param weight scale [D] or null
 * @param bias shift [D] or null
 * @param eps added to the variance (default 1e-5)
 */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  checkFloat('layerNorm', 'x', x);
  if (x.ndim === 0) throw new Error('layerNorm: x must have at least one dimension, got a 0-d tensor');
  const d = x.shape[x.ndim - 1]!;
  for (const [name, t] of [
    ['weight', weight],
    ['bias', bias],
  ] as const) {
    if (!t) continue;
    if (t.ndim !== 1 || t.shape[0] !== d) {
      throw new Error(
        `layerNorm: ${name} of shape ${fmt(t.shape)} does not match the last dimension of x ${fmt(x.shape)} (expected [${d}])`,
      );
    }
    if (t.dtype !== x.dtype) {
      throw new Error(`layerNorm: ${name} has dtype ${t.dtype} but x has ${x.dtype}; cast one of them`);
    }
  }
  checkEps('layerNorm', eps);
  const hasWeight = weight !== null;
  const hasBias = bias !== null;
  const params = [...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const nInputs = 1 + params.length;
  const [y, mean, rstd] = dispatch('layerNorm', [x, ...params], { eps, hasWeight, hasBias }) as [
    Tensor,
    Tensor,
    Tensor,
  ];
  record(
    'layerNorm',
    [x, ...params],
    [y],
    ([gy], saved) => {
      if (!gy) return new Array<null>(nInputs).fill(null);
      const [xs, ms, rs, ws] = saved;
      return dispatch('layerNormBackward', [gy, xs!, ms!, rs!, ...(ws ? [ws] : [])], { eps, hasWeight, hasBias });
    },
    [x, mean, rstd, ...(weight ? [weight] : [])],
  );
  mean.dispose();
  rstd.dispose();
  return y;
}
