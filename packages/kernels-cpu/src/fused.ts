// Fused and in-place kernels: swiglu, rope, add_ / mul_, adamwStep, embedding, softmax / logSoftmax (last dim).
import { Tensor } from '@omnitrain/core';
import type { NativeKernel } from './bf16.js';
import { empty, f32, floatLike, fromF32, i32, ints, raw, valuesF32 } from './kernel-util.js';

export const swiglu: NativeKernel = (n, [g, u]) => {
  if (!f32(g) || !f32(u) || g.numel !== u.numel) return null;
  const y = empty(g.shape);
  n.swigluFwd(raw(g), raw(u), raw(y), g.numel);
  return y;
};

export const swigluBackward: NativeKernel = (n, [dy, g, u]) => {
  if (!f32(dy) || !f32(g) || !f32(u) || g.numel !== u.numel || dy.numel !== g.numel) return null;
  const gg = empty(g.shape);
  const gu = empty(u.shape);
  n.swigluBwd(raw(dy), raw(g), raw(u), raw(gg), raw(gu), g.numel);
  return [gg, gu];
};

/**
 * rope / ropeBackward, float32 and bfloat16 (widened, rounded once; cos and sin rounded to bfloat16 first, as the
 * reference casts them to x's dtype).
 */
export const rope =
  (sign: 1 | -1): NativeKernel =>
  (n, [x, positions], { invFreq }) => {
    if (!floatLike(x) || !i32(positions) || x.ndim < 2) return null;
    const d = x.shape[x.ndim - 1]!;
    const h = x.shape[x.ndim - 2]!;
    if (d % 2 !== 0 || invFreq.length !== d / 2 || positions.numel * h * d !== x.numel) return null;
    const freq = Float32Array.from(invFreq as ArrayLike<number>);
    const xv = valuesF32(n, x);
    const bf = x.dtype === 'bfloat16';
    return fromF32(n, x.shape, x.dtype, (y) => n.rope(xv, ints(positions), freq, y, positions.numel, h, d, sign, bf));
  };

export const addInplace: NativeKernel = (n, [dst, src], { alpha = 1 }) => {
  if (!f32(dst) || !f32(src)) return null;
  if (src.numel !== dst.numel && src.numel !== 1) return null;
  if (src.numel !== 1 && (dst.ndim !== src.ndim || dst.shape.some((s, i) => s !== src.shape[i]))) return null;
  n.addInplace(raw(dst), raw(src), alpha, dst.numel, src.numel === 1 && dst.numel !== 1);
  return dst;
};

export const mulInplace: NativeKernel = (n, [dst], { value }) => {
  if (!f32(dst)) return null;
  n.mulInplace(raw(dst), value, dst.numel);
  return dst;
};

export const adamwStep: NativeKernel = (n, inputs, a) => {
  const [p, g, m, v, maxSq] = inputs;
  if (maxSq || a.amsgrad || !f32(p) || !f32(g) || !f32(m) || !f32(v)) return null;
  if (g.numel !== p.numel || m.numel !== p.numel || v.numel !== p.numel) return null;
  n.adamw(raw(p), raw(g), raw(m), raw(v), p.numel, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step, !!a.maximize);
  return p;
};

function idsInRange(ids: Int32Array, vocab: number): boolean {
  for (let i = 0; i < ids.length; i++) if (ids[i]! < 0 || ids[i]! >= vocab) return false;
  return true;
}

export const embedding: NativeKernel = (n, [ids, w]) => {
  if (!i32(ids) || !w || (w.dtype !== 'float32' && w.dtype !== 'bfloat16') || w.ndim !== 2) return null;
  const [vocab, hidden] = w.shape as [number, number];
  if (!idsInRange(ints(ids), vocab)) return null; // reference throws with the position
  if (w.dtype === 'bfloat16') {
    // A row gather computes nothing: the bfloat16 rows are copied as they are (widening the whole table would cost
    // more than the lookup).
    const out = Tensor.empty([...ids.shape, hidden], 'bfloat16', 'cpu');
    const src = w.raw() as Uint16Array;
    const dst = out.raw() as Uint16Array;
    const idx = ints(ids);
    for (let p = 0; p < idx.length; p++) dst.set(src.subarray(idx[p]! * hidden, (idx[p]! + 1) * hidden), p * hidden);
    return out;
  }
  const out = empty([...ids.shape, hidden]);
  n.embeddingFwd(ints(ids), raw(w), raw(out), ids.numel, hidden);
  return out;
};

export const embeddingBackward: NativeKernel = (n, [ids, g], { numEmbeddings }) => {
  if (!i32(ids) || !f32(g)) return null;
  const hidden = g.shape[g.ndim - 1]!;
  if (g.numel !== ids.numel * hidden || !idsInRange(ints(ids), numEmbeddings)) return null;
  const dw = empty([numEmbeddings, hidden]);
  n.embeddingBwd(ints(ids), raw(g), raw(dw), ids.numel, hidden, numEmbeddings);
  return dw;
};

export const softmax =
  (log: boolean): NativeKernel =>
  (n, [x], { dim }) => {
    if (!f32(x) || x.ndim === 0) return null;
    const dd = dim < 0 ? dim + x.ndim : dim;
    if (dd !== x.ndim - 1) return null;
    const size = x.shape[dd]!;
    if (size === 0) return null;
    const y = empty(x.shape);
    n.softmaxFwd(raw(x), raw(y), x.numel / size, size, log);
    return y;
  };
