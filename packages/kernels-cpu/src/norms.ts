// rmsNorm and layerNorm, forward and backward: float32 natively; a bfloat16 x with the reference's intermediate
// rounding.
import { promoteTypes, type Tensor } from '@omnitrain/core';
import { type NativeKernel, narrowToBf16, widenBf16 } from './bf16.js';
import { BINARY_OPS, broadcastPlan, REDUCE_OPS } from './elementwise.js';
import { empty, type F32, f32, floatLike, fromF32, raw, valuesF32 } from './kernel-util.js';
import type { NativeAddon } from './native.js';

export const rmsNorm: NativeKernel = (n, [x, w], { eps }) => {
  if (!f32(x) || !f32(w) || x.ndim < 1) return null;
  const d = x.shape[x.ndim - 1]!;
  if (w.numel !== d || d === 0) return null;
  const y = empty(x.shape);
  const rstd = empty(x.shape.slice(0, -1));
  n.rmsNormFwd(raw(x), raw(w), raw(y), raw(rstd), x.numel / d, d, eps);
  return [y, rstd];
};

export const rmsNormBackward: NativeKernel = (n, [gy, x, w, rstd]) => {
  if (!f32(gy) || !f32(x) || !f32(w) || !f32(rstd)) return null;
  const d = x.shape[x.ndim - 1]!;
  if (d === 0 || gy.numel !== x.numel) return null;
  const gx = empty(x.shape);
  const gw = empty(w.shape);
  n.rmsNormBwd(raw(gy), raw(x), raw(w), raw(rstd), raw(gx), raw(gw), x.numel / d, d);
  return [gx, gw];
};

/** Round float32 values to bfloat16 and back, in place. */
function roundBf16InPlace(n: NativeAddon, a: F32): void {
  const bits = new Uint16Array(a.length);
  n.castToBf16(a, bits, a.length);
  n.castFromBf16(bits, a, a.length);
}

/** A float32 tensor of `d` ones (the weight under which the native norm returns the normalised x itself). */
function ones(d: number): Tensor {
  const t = empty([d]);
  raw(t).fill(1);
  return t;
}

/**
 * rmsNorm of a bfloat16 x (weight float32 or bfloat16). The reference follows Hugging Face: y = w * (x * rstd)
 * rounded to x's dtype, in promote(x, w) — an intermediate rounding the float32 kernel does not make, and that
 * shows in the float32 output of a float32 weight. So: the native norm under a unit weight, x * rstd rounded to
 * bfloat16, times the weight natively, one rounding where y is bfloat16.
 */
export const rmsNormBf16: NativeKernel = (n, [x, w], { eps }) => {
  if (x?.dtype !== 'bfloat16' || !floatLike(w) || x.ndim < 1) return null;
  const d = x.shape[x.ndim - 1]!;
  if (w.numel !== d || d === 0) return null;
  const xw = widenBf16(n, x);
  const unit = ones(d);
  try {
    const [h, rstd] = rmsNorm(n, [xw, unit], { eps }) as [Tensor, Tensor];
    roundBf16InPlace(n, raw(h));
    const wv = valuesF32(n, w);
    const total = x.numel;
    const y = fromF32(n, x.shape, promoteTypes(x.dtype, w.dtype), (out) =>
      n.binary(BINARY_OPS.mul!, raw(h), total, wv, d, out, total, d),
    );
    h.dispose();
    return [y, rstd];
  } finally {
    xw.dispose();
    unit.dispose();
  }
};

/**
 * rmsNormBackward of a bfloat16 x, as the reference's graph: dL/dh = gy * w rounded to x's dtype drives gx (the
 * native backward under a unit weight), gw = sum over rows of gy * (x * rstd rounded to x's dtype), summed in
 * float64 natively.
 */
export const rmsNormBackwardBf16: NativeKernel = (n, [gy, x, w, saved]) => {
  if (x?.dtype !== 'bfloat16' || !floatLike(gy) || !floatLike(w) || !floatLike(saved) || x.ndim < 1) return null;
  const d = x.shape[x.ndim - 1]!;
  const total = x.numel;
  if (d === 0 || gy.numel !== total || w.numel !== d || saved.numel * d !== total) return null;
  const rows = total / d;
  const mul = BINARY_OPS.mul!;
  const gv = valuesF32(n, gy);
  const rstd = saved.dtype === 'bfloat16' ? widenBf16(n, saved) : saved;
  const xw = widenBf16(n, x);
  const gh = empty(x.shape);
  const unit = ones(d);
  try {
    n.binary(mul, gv, total, valuesF32(n, w), d, raw(gh), total, d);
    roundBf16InPlace(n, raw(gh));
    const [gx, unused] = rmsNormBackward(n, [gh, xw, unit, rstd], {}) as [Tensor, Tensor];
    unused.dispose();
    const xhat = new Float32Array(total);
    const plan = broadcastPlan(
      [
        [rows, d],
        [rows, 1],
      ],
      [rows, d],
    )!;
    n.binaryBroadcast(mul, raw(xw), raw(rstd), xhat, plan.shape, plan.strides[0]!, plan.strides[1]!);
    roundBf16InPlace(n, xhat);
    const prod = new Float32Array(total);
    n.binary(mul, gv, total, xhat, total, prod, total, total);
    const gw = fromF32(n, w.shape, w.dtype, (out) => n.reduce(REDUCE_OPS.sum!, prod, out, null, 1, rows, d));
    return [narrowToBf16(n, gx), gw];
  } finally {
    if (rstd !== saved) rstd.dispose();
    xw.dispose();
    gh.dispose();
    unit.dispose();
  }
};

export const layerNorm: NativeKernel = (n, inputs, { eps, hasWeight, hasBias }) => {
  const x = inputs[0];
  const w = hasWeight ? inputs[1] : undefined;
  const b = hasBias ? inputs[hasWeight ? 2 : 1] : undefined;
  if (!f32(x) || x.ndim < 1 || (hasWeight && !f32(w)) || (hasBias && !f32(b))) return null;
  const d = x.shape[x.ndim - 1]!;
  if (d === 0 || (w && w.numel !== d) || (b && b.numel !== d)) return null;
  const y = empty(x.shape);
  const mean = empty(x.shape.slice(0, -1));
  const rstd = empty(x.shape.slice(0, -1));
  n.layerNormFwd(raw(x), w ? raw(w) : null, b ? raw(b) : null, raw(y), raw(mean), raw(rstd), x.numel / d, d, eps);
  return [y, mean, rstd];
};

export const layerNormBackward: NativeKernel = (n, inputs, { hasWeight, hasBias }) => {
  const [gy, x, mean, rstd] = inputs;
  const w = hasWeight ? inputs[4] : undefined;
  if (!f32(gy) || !f32(x) || !f32(mean) || !f32(rstd) || (hasWeight && !f32(w))) return null;
  const d = x.shape[x.ndim - 1]!;
  if (d === 0 || gy.numel !== x.numel) return null;
  const gx = empty(x.shape);
  const gw = w ? empty(w.shape) : null;
  const gb = hasBias ? empty([d]) : null;
  n.layerNormBwd(
    raw(gy),
    raw(x),
    raw(mean),
    raw(rstd),
    w ? raw(w) : null,
    raw(gx),
    gw && raw(gw),
    gb && raw(gb),
    x.numel / d,
    d,
  );
  const outs = [gx];
  if (gw) outs.push(gw);
  if (gb) outs.push(gb);
  return outs;
};
