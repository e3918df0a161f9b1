import { record } from '../autograd/node.js';
import type { Tensor } from '../tensor.js';
import { dispatch, dispatch1 } from './dispatch.js';

const fmt = (shape: readonly number[]) => JSON.stringify(shape);

/**
 * Grouped matmul of mixture-of-experts layers: the rows of `x` are grouped contiguously by
 * expert (expert 0's `groupSizes[0]` rows first, then expert 1's, ...) and each group is
 * multiplied by its expert's weight: `y[rows of e] = x[rows of e] @ weight[e]^T`.
 * Groups may be empty (that expert's weight gets a zero gradient).
 *
 * Fused: kernels `groupedMatmul` and `groupedMatmulBackward` (→ `[gx, gweight]`).
 * Differentiable with respect to x and weight. The CPU kernel checks that the group sizes are
 * non-negative and sum to T (other backends may not read them back to the host).
 *
 * @param x [T, K]
 * @param weight [E, N, K] (one `nn.Linear` weight [N, K] per expert)
 * @param groupSizes int32 [E], summing to T
 * @returns [T, N]
 */
export function groupedMatmul(x: Tensor, weight: Tensor, groupSizes: Tensor): Tensor {
  if (!x.isFloatingPoint) throw new Error(`groupedMatmul: x must be a float tensor, got ${x.dtype} ${fmt(x.shape)}`);
  if (x.ndim !== 2) throw new Error(`groupedMatmul: x must be [T, K], got shape ${fmt(x.shape)}`);
  if (weight.ndim !== 3) throw new Error(`groupedMatmul: weight must be [E, N, K], got shape ${fmt(weight.shape)}`);
  if (weight.shape[2] !== x.shape[1]) {
    throw new Error(
      `groupedMatmul: x ${fmt(x.shape)} and weight ${fmt(weight.shape)} disagree on K (${x.shape[1]} vs ${weight.shape[2]})`,
    );
  }
  if (weight.dtype !== x.dtype) {
    throw new Error(`groupedMatmul: x has dtype ${x.dtype} but weight has ${weight.dtype}; cast one of them`);
  }
  if (groupSizes.dtype !== 'int32') {
    throw new Error(`groupedMatmul: groupSizes must be int32, got ${groupSizes.dtype} ${fmt(groupSizes.shape)}`);
  }
  if (groupSizes.ndim !== 1 || groupSizes.shape[0] !== weight.shape[0]) {
    throw new Error(
      `groupedMatmul: groupSizes of shape ${fmt(groupSizes.shape)} must be [E] for weight ${fmt(weight.shape)} (expected [${weight.shape[0]}])`,
    );
  }
  const y = dispatch1('groupedMatmul', [x, weight, groupSizes]);
  record(
    'groupedMatmul',
    [x, weight, groupSizes],
    [y],
    ([gy], [xs, ws, gs]) => {
      if (!gy) return [null, null, null];
      const [gx, gw] = dispatch('groupedMatmulBackward', [gy, xs!, ws!, gs!]);
      return [gx!, gw!, null];
    },
    [x, weight, groupSizes],
  );
  return y;
}
