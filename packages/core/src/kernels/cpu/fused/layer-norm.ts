// Reference CPU kernels of the fused LayerNorm (torch.nn.functional.layer_norm over the last dim).
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { output, read } from '../util.js';
import { rowsOf, statDType } from './rms-norm.js';

interface LayerNormAttrs {
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
}

/**
 * Register `layerNorm` and `layerNormBackward`. Optional weight and bias travel as extra
 * inputs, announced by `hasWeight` / `hasBias`.
 *
 * - `layerNorm([x, weight?, bias?], { eps, hasWeight, hasBias })` → `[y, mean, rstd]`; mean and
 *   rstd = 1/sqrt(biased var + eps) per row (float32, float64 for float64 x, shaped x.shape[:-1]).
 * - `layerNormBackward([gy, x, mean, rstd, weight?], { hasWeight, hasBias })` →
 *   `[gx, gweight?, gbias?]` (the optional ones only when present).
 */
export function registerLayerNormKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'layerNorm',
    (inputs: Tensor[], { eps, hasWeight, hasBias }: LayerNormAttrs) => {
      const x = inputs[0]!;
      const weight = hasWeight ? inputs[1]! : null;
      const bias = hasBias ? inputs[hasWeight ? 2 : 1]! : null;
      const { rows, d } = rowsOf(x);
      const xs = read(x);
      const ws = weight ? read(weight) : null;
      const bs = bias ? read(bias) : null;
      const y = output(x.shape, x.dtype);
      const mean = output(x.shape.slice(0, -1), statDType(x.dtype));
      const rstd = output(x.shape.slice(0, -1), statDType(x.dtype));
      const yd = y.data;
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        let s = 0;
        for (let j = 0; j < d; j++) s += xs[o + j]!;
        const mu = s / d;
        let v = 0;
        for (let j = 0; j < d; j++) {
          const c = xs[o + j]! - mu;
          v += c * c;
        }
        mean.data[r] = mu;
        rstd.data[r] = 1 / Math.sqrt(v / d + eps);
        const m = mean.data[r]!;
        const rs = rstd.data[r]!;
        for (let j = 0; j < d; j++) {
          let h = (xs[o + j]! - m) * rs;
          if (ws) h *= ws[j]!;
          if (bs) h += bs[j]!;
          yd[o + j] = h;
        }
      }
      return [y.done(), mean.done(), rstd.done()];
    },
    { priority: 0, source },
  );

  r.registerKernel(
    'cpu',
    'layerNormBackward',
    (inputs: Tensor[], { hasWeight, hasBias }: LayerNormAttrs) => {
      const [gy, x, mean, rstd] = inputs as [Tensor, Tensor, Tensor, Tensor];
      const weight = hasWeight ? inputs[4]! : null;
      const { rows, d } = rowsOf(x);
      const gs = read(gy);
      const xs = read(x);
      const md = read(mean);
      const rd = read(rstd);
      const ws = weight ? read(weight) : null;
      const gx = output(x.shape, x.dtype);
      const gwAcc = new Float64Array(hasWeight ? d : 0);
      const gbAcc = new Float64Array(hasBias ? d : 0);
      const gxd = gx.data;
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        const m = md[r]!;
        const rs = rd[r]!;
        let sumG = 0;
        let sumGX = 0;
        for (let j = 0; j < d; j++) {
          const g = gs[o + j]!;
          const xhat = (xs[o + j]! - m) * rs;
          const gh = ws ? g * ws[j]! : g;
          sumG += gh;
          sumGX += gh * xhat;
          if (hasWeight) gwAcc[j]! += g * xhat;
          if (hasBias) gbAcc[j]! += g;
        }
        const a = sumG / d;
        const b = sumGX / d;
        for (let j = 0; j < d; j++) {
          const g = gs[o + j]!;
          const gh = ws ? g * ws[j]! : g;
          gxd[o + j] = rs * (gh - a - (xs[o + j]! - m) * rs * b);
        }
      }
      const outs = [gx.done()];
      if (weight) {
        const gw = output(weight.shape, weight.dtype);
        gw.data.set(gwAcc);
        outs.push(gw.done());
      }
      if (hasBias) {
        // The bias has the weight's shape; its dtype is x's (checked by the op).
        const gb = output([d], x.dtype);
        gb.data.set(gbAcc);
        outs.push(gb.done());
      }
      return outs;
    },
    { priority: 0, source },
  );
}
