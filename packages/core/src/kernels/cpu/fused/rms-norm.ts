// Reference CPU kernels of the fused RMSNorm (Hugging Face LlamaRMSNorm semantics).
import { type DType, promoteTypes } from '../../../dtype.js';
import { bfloat16BitsToFloat, float16BitsToFloat, floatToBFloat16Bits, floatToFloat16Bits } from '../../../half.js';
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { output, read } from '../util.js';

/**
 * A function rounding a number to the precision of `dtype` (identity for float64), for
 * kernels that reproduce an intermediate cast of the PyTorch reference (e.g. `h.to(x.dtype)`).
 */
export function roundToDType(dtype: DType): (v: number) => number {
  switch (dtype) {
    case 'float32':
      return Math.fround;
    case 'bfloat16':
      return (v) => bfloat16BitsToFloat(floatToBFloat16Bits(v));
    case 'float16':
      return (v) => float16BitsToFloat(floatToFloat16Bits(v));
    default:
      return (v) => v;
  }
}

/** dtype of the per-row statistics (rstd, mean) the norm kernels save for backward. */
export function statDType(dtype: DType): DType {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Rows and row length of a tensor normalised over its last dimension. */
export function rowsOf(x: Tensor): { rows: number; d: number } {
  const d = x.shape[x.shape.length - 1] ?? 1;
  return { rows: d === 0 ? 0 : x.numel / d, d };
}

/**
 * Register `rmsNorm` and `rmsNormBackward`.
 *
 * - `rmsNorm([x, weight], { eps })` → `[y, rstd]`: rstd = 1/sqrt(mean(x², -1) + eps) per row
 *   (float32, float64 for float64 x, shaped x.shape[:-1]); y = weight * (x * rstd).to(x.dtype),
 *   in promote(x.dtype, weight.dtype).
 * - `rmsNormBackward([gy, x, weight, rstd], { eps })` → `[gx (x.dtype), gweight (weight.dtype)]`.
 */
export function registerRmsNormKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'rmsNorm',
    ([x, weight]: Tensor[], { eps }: { eps: number }) => {
      const { rows, d } = rowsOf(x!);
      const xs = read(x!);
      const ws = read(weight!);
      const y = output(x!.shape, promoteTypes(x!.dtype, weight!.dtype));
      const rstd = output(x!.shape.slice(0, -1), statDType(x!.dtype));
      const roundH = roundToDType(x!.dtype);
      const yd = y.data;
      const rd = rstd.data;
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        let ss = 0;
        for (let j = 0; j < d; j++) {
          const v = xs[o + j]!;
          ss += v * v;
        }
        rd[r] = 1 / Math.sqrt(ss / d + eps);
        const rs = rd[r]!; // as saved (float32 unless float64)
        for (let j = 0; j < d; j++) yd[o + j] = ws[j]! * roundH(xs[o + j]! * rs);
      }
      return [y.done(), rstd.done()];
    },
    { priority: 0, source },
  );

  r.registerKernel(
    'cpu',
    'rmsNormBackward',
    ([gy, x, weight, rstd]: Tensor[]) => {
      const { rows, d } = rowsOf(x!);
      const gs = read(gy!);
      const xs = read(x!);
      const ws = read(weight!);
      const rd = read(rstd!);
      const gx = output(x!.shape, x!.dtype);
      const gw = output(weight!.shape, weight!.dtype);
      // Hugging Face's graph: y = w * h.to(x.dtype), so dL/dh = (gy * w) rounded to x.dtype.
      const round = roundToDType(x!.dtype);
      const gwAcc = new Float64Array(d);
      const gh = new Float64Array(d);
      const gxd = gx.data;
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        const rs = rd[r]!;
        let dot = 0;
        for (let j = 0; j < d; j++) {
          const g = gs[o + j]!;
          const xhat = xs[o + j]! * rs;
          const h = round(g * ws[j]!);
          gh[j] = h;
          dot += h * xhat;
          gwAcc[j]! += g * round(xhat);
        }
        const c = dot / d;
        for (let j = 0; j < d; j++) gxd[o + j] = rs * (gh[j]! - xs[o + j]! * rs * c);
      }
      gw.data.set(gwAcc);
      return [gx.done(), gw.done()];
    },
    { priority: 0, source },
  );
}
