// Reference CPU kernels of the grouped (per-expert) matmul used by mixture-of-experts layers.
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { output, read, readInt } from '../util.js';

/** Group sizes as numbers, checked: non-negative and summing to the rows of x. */
function groups(groupSizes: Tensor, rows: number, where: string): Int32Array {
  const sizes = readInt(groupSizes, where);
  let total = 0;
  for (let e = 0; e < sizes.length; e++) {
    const s = sizes[e]!;
    if (s < 0) throw new Error(`${where}: groupSizes[${e}] is ${s}; group sizes must be >= 0`);
    total += s;
  }
  if (total !== rows) {
    throw new Error(`${where}: groupSizes sum to ${total} but x has ${rows} rows [${Array.from(sizes).join(', ')}]`);
  }
  return sizes;
}

/**
 * Register `groupedMatmul` and `groupedMatmulBackward`.
 *
 * - `groupedMatmul([x [T, K], weight [E, N, K], groupSizes int32 [E]])` → y [T, N]; the rows of
 *   expert e (contiguous, in expert order) are x_e @ weight[e]^T.
 * - `groupedMatmulBackward([gy, x, weight, groupSizes])` → `[gx [T, K], gweight [E, N, K]]`
 *   (zero gradient for the weight of an empty group).
 */
export function registerGroupedMatmulKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'groupedMatmul',
    ([x, weight, groupSizes]: Tensor[]) => {
      const [t, k] = x!.shape as [number, number];
      const [, n] = weight!.shape as [number, number, number];
      const sizes = groups(groupSizes!, t, 'groupedMatmul');
      const xs = read(x!);
      const ws = read(weight!);
      const y = output([t, n], x!.dtype);
      const yd = y.data;
      let row = 0;
      for (let e = 0; e < sizes.length; e++) {
        const wBase = e * n * k;
        for (const end = row + sizes[e]!; row < end; row++) {
          const xo = row * k;
          for (let c = 0; c < n; c++) {
            const wo = wBase + c * k;
            let s = 0;
            for (let i = 0; i < k; i++) s += xs[xo + i]! * ws[wo + i]!;
            yd[row * n + c] = s;
          }
        }
      }
      return y.done();
    },
    { priority: 0, source },
  );

  r.registerKernel(
    'cpu',
    'groupedMatmulBackward',
    ([gy, x, weight, groupSizes]: Tensor[]) => {
      const [t, k] = x!.shape as [number, number];
      const [, n] = weight!.shape as [number, number, number];
      const sizes = groups(groupSizes!, t, 'groupedMatmulBackward');
      const gs = read(gy!);
      const xs = read(x!);
      const ws = read(weight!);
      const gx = output(x!.shape, x!.dtype);
      const gw = output(weight!.shape, weight!.dtype);
      const gxAcc = new Float64Array(k);
      const gwAcc = new Float64Array(n * k);
      let row = 0;
      for (let e = 0; e < sizes.length; e++) {
        const wBase = e * n * k;
        gwAcc.fill(0);
        for (const end = row + sizes[e]!; row < end; row++) {
          const xo = row * k;
          gxAcc.fill(0);
          for (let c = 0; c < n; c++) {
            const g = gs[row * n + c]!;
            const wo = wBase + c * k;
            const go = c * k;
            for (let i = 0; i < k; i++) {
              gxAcc[i]! += g * ws[wo + i]!;
              gwAcc[go + i]! += g * xs[xo + i]!;
            }
          }
          gx.data.set(gxAcc, xo);
        }
        gw.data.set(gwAcc, wBase);
      }
      return [gx.done(), gw.done()];
    },
    { priority: 0, source },
  );
}
