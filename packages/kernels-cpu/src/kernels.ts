// Registration of the native float32 kernels over core's reference kernels. Each kernel handles the
// dtype/shape/attribute combinations it supports natively and otherwise calls the next kernel
// registered for the op (core's reference), so nothing fails that worked before.
import {
  batchOffsets,
  bfloat16BitsToFloat,
  broadcastShapes,
  type DType,
  floatToBFloat16Bits,
  type Kernel,
  numelOf,
  promoteTypes,
  type Registry,
  Tensor,
} from '@omnitrain/core';
import { type NativeKernel, narrowToBf16, widenBf16, withBf16 } from './bf16.js';
import { MOVEMENT_KERNELS } from './movement.js';
import { gemmBf16Mode, type NativeAddon, native } from './native.js';

/** `source` of every kernel this package registers. */
export const KERNEL_SOURCE = '@omnitrain/kernels-cpu native';
/** Priority of the native kernels (core's reference kernels are at 0). */
export const KERNEL_PRIORITY = 10;

type F32 = Float32Array;

const f32 = (t: Tensor | undefined): t is Tensor => t !== undefined && t.dtype === 'float32';
const i32 = (t: Tensor | undefined): t is Tensor => t !== undefined && t.dtype === 'int32';
const raw = (t: Tensor) => t.raw() as F32;
const ints = (t: Tensor) => t.raw() as Int32Array;
const empty = (shape: readonly number[]) => Tensor.empty(shape, 'float32', 'cpu');
/** A float32 output the kernel writes whole (GEMM with beta 0): no zero-fill of a reused buffer. */
const uninitialized = (shape: readonly number[]) => Tensor.uninitialized(shape, 'float32', 'cpu');

/** The best kernel for `op` on cpu below ours (core's reference): never one of ours or a wrapper above. */
function fallback(r: Registry, op: string): Kernel {
  const e = r.kernels('cpu', op).find((k) => k.source !== KERNEL_SOURCE && k.priority < KERNEL_PRIORITY);
  if (!e) throw new Error(`kernels-cpu: no fallback kernel for '${op}' on cpu`);
  return e.kernel;
}

/** float32 values of a bfloat16 tensor (a converted copy). */
function bf16Values(n: NativeAddon, t: Tensor): F32 {
  const out = new Float32Array(t.numel);
  n.castFromBf16(t.raw() as Uint16Array, out, t.numel);
  return out;
}

/**
 * How one matmul maps onto batched GEMM calls: sizes, the broadcast batch shape, and per batch entry the element
 * offsets of A and B. When B is shared across the batch and A is not transposed, the batch folds into one GEMM
 * over all rows of A. `null` when K disagrees (the reference then throws the descriptive error).
 */
interface GemmPlan {
  outShape: number[];
  m: number;
  n: number;
  k: number;
  transA: boolean;
  offA: Float64Array;
  offB: Float64Array;
}

function gemmPlan(a: Tensor, b: Tensor, transA: boolean, transB: boolean): GemmPlan | null {
  const ar = a.ndim;
  const br = b.ndim;
  const M = a.shape[transA ? ar - 1 : ar - 2]!;
  const K = a.shape[transA ? ar - 2 : ar - 1]!;
  const N = b.shape[transB ? br - 2 : br - 1]!;
  if (K !== b.shape[transB ? br - 1 : br - 2]) return null;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB, 'matmul');
  const outShape = [...batch, M, N];
  if (batchB.length === 0 && !transA && numelOf(batchA) > 1) {
    const one = new Float64Array(1);
    return { outShape, m: numelOf(batchA) * M, n: N, k: K, transA: false, offA: one, offB: one };
  }
  return {
    outShape,
    m: M,
    n: N,
    k: K,
    transA,
    offA: Float64Array.from(batchOffsets(batchA, batch, M * K)),
    offB: Float64Array.from(batchOffsets(batchB, batch, K * N)),
  };
}

let bf16Hardware: boolean | undefined;

/**
 * bfloat16 matmul on the packed bfloat16 GEMM (native/gemm_bf16.cc): the bfloat16 operands are packed directly
 * (no widened copies), products accumulate in float32, the float32 result is rounded once to bfloat16. Batches
 * and broadcasting as the float32 path. `null` when the kernel of `mode` is not available here.
 */
function matmulBf16Packed(
  n: NativeAddon,
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  mode: 0 | 1,
): Tensor | null {
  const plan = gemmPlan(a, b, transA, transB);
  if (!plan) return null;
  const y = Tensor.uninitialized(plan.outShape, 'bfloat16', 'cpu'); // castToBf16 writes every element
  if (y.numel === 0) return y;
  const o = uninitialized(y.shape);
  let ok = false;
  try {
    const { m, n: cols, k, offA, offB } = plan;
    ok = n.gemmBf16(
      a.raw() as Uint16Array,
      b.raw() as Uint16Array,
      raw(o),
      m,
      cols,
      k,
      plan.transA,
      transB,
      offA,
      offB,
      mode,
    );
    if (ok) n.castToBf16(raw(o), y.raw() as Uint16Array, o.numel);
  } finally {
    o.dispose();
  }
  if (ok) return y;
  y.dispose();
  return null;
}

/**
 * bfloat16 matmul, float32 accumulation, rounded once to bfloat16: the AVX-512 BF16 GEMM where the CPU has it and
 * it is switched on (or its emulation when forced, {@link gemmBf16Mode}), otherwise operands widened to float32 and
 * the float32 GEMM.
 */
function matmulBf16(n: NativeAddon, a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor | null {
  const mode = gemmBf16Mode();
  bf16Hardware ??= n.info().gemmBf16 === 'avx512-bf16';
  if (mode === 1 || (mode === 0 && bf16Hardware)) {
    const y = matmulBf16Packed(n, a, b, transA, transB, mode);
    if (y) return y;
  }
  const wa = widenBf16(n, a);
  const wb = widenBf16(n, b);
  try {
    const o = matmul(n, [wa, wb], { transA, transB }) as Tensor | null;
    return o ? narrowToBf16(n, o) : null;
  } finally {
    wa.dispose();
    wb.dispose();
  }
}

const matmul: NativeKernel = (n, [a, b], { transA = false, transB = false }) => {
  if (a?.dtype === 'bfloat16' && b?.dtype === 'bfloat16' && a.ndim >= 2 && b.ndim >= 2) {
    return matmulBf16(n, a, b, transA, transB);
  }
  if (!f32(a) || !f32(b) || a.ndim < 2 || b.ndim < 2) return null;
  const plan = gemmPlan(a, b, transA, transB);
  if (!plan) return null;
  const out = uninitialized(plan.outShape);
  if (out.numel === 0) return out;
  n.gemm(raw(a), raw(b), raw(out), plan.m, plan.n, plan.k, plan.transA, transB, plan.offA, plan.offB);
  return out;
};

const rmsNorm: NativeKernel = (n, [x, w], { eps }) => {
  if (!f32(x) || !f32(w) || x.ndim < 1) return null;
  const d = x.shape[x.ndim - 1]!;
  if (w.numel !== d || d === 0) return null;
  const y = empty(x.shape);
  const rstd = empty(x.shape.slice(0, -1));
  n.rmsNormFwd(raw(x), raw(w), raw(y), raw(rstd), x.numel / d, d, eps);
  return [y, rstd];
};

const rmsNormBackward: NativeKernel = (n, [gy, x, w, rstd]) => {
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
const rmsNormBf16: NativeKernel = (n, [x, w], { eps }) => {
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
const rmsNormBackwardBf16: NativeKernel = (n, [gy, x, w, saved]) => {
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

const layerNorm: NativeKernel = (n, inputs, { eps, hasWeight, hasBias }) => {
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

const layerNormBackward: NativeKernel = (n, inputs, { hasWeight, hasBias }) => {
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

const swiglu: NativeKernel = (n, [g, u]) => {
  if (!f32(g) || !f32(u) || g.numel !== u.numel) return null;
  const y = empty(g.shape);
  n.swigluFwd(raw(g), raw(u), raw(y), g.numel);
  return y;
};

const swigluBackward: NativeKernel = (n, [dy, g, u]) => {
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
const rope =
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

const addInplace: NativeKernel = (n, [dst, src], { alpha = 1 }) => {
  if (!f32(dst) || !f32(src)) return null;
  if (src.numel !== dst.numel && src.numel !== 1) return null;
  if (src.numel !== 1 && (dst.ndim !== src.ndim || dst.shape.some((s, i) => s !== src.shape[i]))) return null;
  n.addInplace(raw(dst), raw(src), alpha, dst.numel, src.numel === 1 && dst.numel !== 1);
  return dst;
};

const mulInplace: NativeKernel = (n, [dst], { value }) => {
  if (!f32(dst)) return null;
  n.mulInplace(raw(dst), value, dst.numel);
  return dst;
};

const adamwStep: NativeKernel = (n, inputs, a) => {
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

const embedding: NativeKernel = (n, [ids, w]) => {
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

const embeddingBackward: NativeKernel = (n, [ids, g], { numEmbeddings }) => {
  if (!i32(ids) || !f32(g)) return null;
  const hidden = g.shape[g.ndim - 1]!;
  if (g.numel !== ids.numel * hidden || !idsInRange(ints(ids), numEmbeddings)) return null;
  const dw = empty([numEmbeddings, hidden]);
  n.embeddingBwd(ints(ids), raw(g), raw(dw), ids.numel, hidden, numEmbeddings);
  return dw;
};

function labelsOk(y: Int32Array, vocab: number, ignoreIndex: number): boolean {
  for (let i = 0; i < y.length; i++) if (y[i] !== ignoreIndex && (y[i]! < 0 || y[i]! >= vocab)) return false;
  return true;
}

function finishLoss(rowLoss: Float64Array, count: number, reduction: string): Tensor {
  if (reduction === 'none') {
    const o = empty([rowLoss.length]);
    raw(o).set(rowLoss);
    return o;
  }
  let total = 0;
  for (let i = 0; i < rowLoss.length; i++) total += rowLoss[i]!;
  const o = empty([]);
  raw(o)[0] = reduction === 'mean' ? total / count : total;
  return o;
}

function rowScales(
  labels: Int32Array,
  gradLoss: Tensor,
  attrs: { ignoreIndex: number; reduction: string },
): Float64Array | null {
  if (gradLoss.dtype !== 'float32' && gradLoss.dtype !== 'float64') return null;
  const g = gradLoss.raw() as Float32Array | Float64Array;
  const n = labels.length;
  const scales = new Float64Array(n);
  let count = 1;
  if (attrs.reduction === 'mean') {
    count = 0;
    for (let i = 0; i < n; i++) if (labels[i] !== attrs.ignoreIndex) count++;
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] === attrs.ignoreIndex) continue;
    scales[i] = attrs.reduction === 'none' ? g[i]! : g[0]! / count;
  }
  return scales;
}

const crossEntropy: NativeKernel = (n, [logits, labels], attrs) => {
  if (!f32(logits) || logits.ndim !== 2 || !i32(labels)) return null;
  const [rows, vocab] = logits.shape as [number, number];
  if (!labelsOk(ints(labels), vocab, attrs.ignoreIndex)) return null;
  const lse = empty([rows]);
  const rowLoss = new Float64Array(rows);
  const count = n.ceFwd(raw(logits), ints(labels), raw(lse), rowLoss, rows, vocab, attrs.ignoreIndex);
  return [finishLoss(rowLoss, count, attrs.reduction), lse];
};

const crossEntropyBackward: NativeKernel = (n, [logits, labels, lse, gradLoss], attrs) => {
  if (!f32(logits) || logits.ndim !== 2 || !i32(labels) || !f32(lse) || !gradLoss) return null;
  const [rows, vocab] = logits.shape as [number, number];
  const scales = rowScales(ints(labels), gradLoss, attrs);
  if (!scales) return null;
  const out = empty([rows, vocab]);
  n.ceBwd(raw(logits), ints(labels), raw(lse), scales, raw(out), rows, vocab);
  return out;
};

const flce: NativeKernel = (n, [h, w, labels], attrs) => {
  if (!f32(h) || !f32(w) || h.ndim !== 2 || w.ndim !== 2 || !i32(labels)) return null;
  const [rows, dim] = h.shape as [number, number];
  const vocab = w.shape[0]!;
  if (w.shape[1] !== dim || !labelsOk(ints(labels), vocab, attrs.ignoreIndex)) return null;
  const lse = empty([rows]);
  const rowLoss = new Float64Array(rows);
  const count = n.flceFwd(
    raw(h),
    raw(w),
    ints(labels),
    raw(lse),
    rowLoss,
    rows,
    dim,
    vocab,
    attrs.ignoreIndex,
    attrs.chunkSize,
  );
  return [finishLoss(rowLoss, count, attrs.reduction), lse];
};

const flceBackward: NativeKernel = (n, [h, w, labels, lse, gradLoss], attrs) => {
  if (!f32(h) || !f32(w) || h.ndim !== 2 || !i32(labels) || !f32(lse) || !gradLoss) return null;
  const [rows, dim] = h.shape as [number, number];
  const vocab = w.shape[0]!;
  const scales = rowScales(ints(labels), gradLoss, attrs);
  if (!scales) return null;
  const gh = (attrs.needHidden ?? true) ? empty([rows, dim]) : null;
  const gw = (attrs.needWeight ?? true) ? empty([vocab, dim]) : null;
  n.flceBwd(
    raw(h),
    raw(w),
    ints(labels),
    raw(lse),
    scales,
    gh && raw(gh),
    gw && raw(gw),
    rows,
    dim,
    vocab,
    attrs.chunkSize,
  );
  const outs: Tensor[] = [];
  if (gh) outs.push(gh);
  if (gw) outs.push(gw);
  return outs;
};

const ZERO = new Float64Array(1);

const groupedMatmul: NativeKernel = (n, [x, w, sizes]) => {
  if (!f32(x) || !f32(w) || !i32(sizes) || x.ndim !== 2 || w.ndim !== 3) return null;
  const [t, k] = x.shape as [number, number];
  const [e, nOut, kw] = w.shape as [number, number, number];
  const g = ints(sizes);
  if (kw !== k || g.length !== e || g.reduce((a, b) => a + b, 0) !== t || g.some((s) => s < 0)) return null;
  const y = empty([t, nOut]);
  const X = raw(x);
  const W = raw(w);
  const Y = raw(y);
  for (let i = 0, r0 = 0; i < e; r0 += g[i]!, i++) {
    if (g[i] === 0) continue;
    n.gemm(
      X.subarray(r0 * k),
      W.subarray(i * nOut * k),
      Y.subarray(r0 * nOut),
      g[i]!,
      nOut,
      k,
      false,
      true,
      ZERO,
      ZERO,
    );
  }
  return y;
};

const groupedMatmulBackward: NativeKernel = (n, [gy, x, w, sizes]) => {
  if (!f32(gy) || !f32(x) || !f32(w) || !i32(sizes) || x.ndim !== 2 || w.ndim !== 3) return null;
  const [t, k] = x.shape as [number, number];
  const [e, nOut, kw] = w.shape as [number, number, number];
  const g = ints(sizes);
  if (kw !== k || g.length !== e || g.reduce((a, b) => a + b, 0) !== t || gy.numel !== t * nOut) return null;
  const gx = empty([t, k]);
  const gw = empty(w.shape);
  const GY = raw(gy);
  const X = raw(x);
  const W = raw(w);
  const GX = raw(gx);
  const GW = raw(gw);
  for (let i = 0, r0 = 0; i < e; r0 += g[i]!, i++) {
    const wi = GW.subarray(i * nOut * k, (i + 1) * nOut * k);
    if (g[i] === 0) {
      wi.fill(0);
      continue;
    }
    const gyi = GY.subarray(r0 * nOut);
    n.gemm(gyi, W.subarray(i * nOut * k), GX.subarray(r0 * k), g[i]!, k, nOut, false, false, ZERO, ZERO);
    n.gemm(gyi, X.subarray(r0 * k), wi, nOut, k, g[i]!, true, false, ZERO, ZERO);
  }
  return [gx, gw];
};

/** [q0, k0, sq, sk] per sequence, as core's reference attention lays them out; null when invalid. */
function segmentsOf(q: Tensor, k: Tensor, cu: Tensor | undefined): Int32Array | null {
  if (q.ndim === 4) {
    const [b, s] = q.shape as [number, number];
    const sk = k.shape[1]!;
    const seg = new Int32Array(b * 4);
    for (let i = 0; i < b; i++) seg.set([i * s, i * sk, s, sk], i * 4);
    return seg;
  }
  if (q.ndim !== 3) return null;
  if (!cu) return Int32Array.from([0, 0, q.shape[0]!, k.shape[0]!]);
  if (cu.dtype !== 'int32') return null;
  const c = ints(cu);
  if (c[0] !== 0 || c[c.length - 1] !== q.shape[0]) return null;
  const seg = new Int32Array((c.length - 1) * 4);
  for (let i = 0; i + 1 < c.length; i++) {
    const len = c[i + 1]! - c[i]!;
    if (len < 0) return null;
    seg.set([c[i]!, c[i]!, len, len], i * 4);
  }
  return seg;
}

const attention: NativeKernel = (n, [q, k, v, cu], { causal, scale }) => {
  if (!f32(q) || !f32(k) || !f32(v)) return null;
  const seg = segmentsOf(q, k, cu);
  if (!seg) return null;
  const nd = q.ndim;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  const d = q.shape[nd - 1]!;
  if (hkv === 0 || hq % hkv !== 0) return null;
  const out = empty(q.shape);
  const lse = empty(q.shape.slice(0, -1));
  n.attentionFwd(raw(q), raw(k), raw(v), raw(out), raw(lse), seg, hq, hkv, d, scale, !!causal);
  return [out, lse];
};

const attentionBackward: NativeKernel = (n, [q, k, v, , lse, gradOut, cu], { causal, scale }) => {
  if (!f32(q) || !f32(k) || !f32(v) || !f32(lse) || !f32(gradOut)) return null;
  const seg = segmentsOf(q, k, cu);
  if (!seg) return null;
  const nd = q.ndim;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  const d = q.shape[nd - 1]!;
  if (hkv === 0 || hq % hkv !== 0) return null;
  const dq = empty(q.shape);
  const dk = empty(k.shape);
  const dv = empty(v.shape);
  n.attentionBwd(
    raw(q),
    raw(k),
    raw(v),
    raw(lse),
    raw(gradOut),
    raw(dq),
    raw(dk),
    raw(dv),
    seg,
    hq,
    hkv,
    d,
    scale,
    !!causal,
  );
  return [dq, dk, dv];
};

const softmax =
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

// Native conversions by `from>to`; every other pair falls back to core's kernel.
// x and y are the typed arrays of the pair's own dtypes.
type CastFn = (n: NativeAddon, x: any, y: any, count: number) => void;
const CASTS: Readonly<Record<string, CastFn>> = {
  'float32>bfloat16': (n, x, y, k) => n.castToBf16(x, y, k),
  'bfloat16>float32': (n, x, y, k) => n.castFromBf16(x, y, k),
  'float32>float16': (n, x, y, k) => n.castToF16(x, y, k),
  'float16>float32': (n, x, y, k) => n.castFromF16(x, y, k),
  'float64>float32': (n, x, y, k) => n.castF64ToF32(x, y, k),
  'float32>float64': (n, x, y, k) => n.castF32ToF64(x, y, k),
};

const cast: NativeKernel = (n, [x], { dtype }) => {
  const f = x ? CASTS[`${x.dtype}>${dtype}`] : undefined;
  if (!x || !f) return null;
  const y = Tensor.empty(x.shape, dtype, 'cpu');
  f(n, x.raw(), y.raw(), x.numel);
  return y;
};

// ---- Elementwise, reductions, casts (float32 natively; bfloat16 widened to float32 at the edges, rounded once
// at the output, exactly as the reference computes: float32 values, float32 result, one rounding to bfloat16).

/** Element types the generic kernels handle: float32 directly, bfloat16 through float32. */
const floatLike = (t: Tensor | undefined): t is Tensor =>
  t !== undefined && (t.dtype === 'float32' || t.dtype === 'bfloat16');

/** float32 values of a float32 (zero-copy) or bfloat16 (converted copy) tensor. */
function valuesF32(n: NativeAddon, t: Tensor): F32 {
  return t.dtype === 'float32' ? raw(t) : bf16Values(n, t);
}

/** A tensor of `dtype` from float32 results (`v` becomes the storage for float32, is rounded for bfloat16). */
function fromF32(n: NativeAddon, shape: readonly number[], dtype: DType, fill: (out: F32) => void): Tensor {
  const y = Tensor.empty(shape, dtype, 'cpu');
  if (dtype === 'float32') {
    fill(raw(y));
    return y;
  }
  const tmp = new Float32Array(y.numel);
  fill(tmp);
  n.castToBf16(tmp, y.raw() as Uint16Array, y.numel);
  return y;
}

/** A number rounded to the value set of `dtype`, as the reference rounds scalars and clamp bounds. */
function roundTo(v: number, dtype: DType): number {
  return dtype === 'float32' ? Math.fround(v) : bfloat16BitsToFloat(floatToBFloat16Bits(v));
}

/** Op codes shared with native/ops.h. */
const BINARY_OPS: Readonly<Record<string, number>> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  maximum: 4,
  minimum: 5,
  eq: 6,
  ne: 7,
  lt: 8,
  le: 9,
  gt: 10,
  ge: 11,
};

/**
 * How an operand of `shape` reads in a broadcast to `out`: `n` (full), the length of a trailing row (its shape,
 * without leading 1s, is the end of `out`) or 1 (a scalar); null for other broadcasts (the reference does those).
 */
function operandLength(shape: readonly number[], out: readonly number[], n: number): number | null {
  const len = numelOf(shape);
  if (len === n || len === 1) return len;
  let k = 0;
  while (k < shape.length && shape[k] === 1) k++;
  const core = shape.slice(k);
  const tail = out.slice(out.length - core.length);
  return core.length <= out.length && core.every((s, i) => s === tail[i]) ? len : null;
}

const binary =
  (op: string): NativeKernel =>
  (n, inputs, attrs) => {
    const code = BINARY_OPS[op]!;
    let a: Tensor | number | undefined = inputs[0];
    let b: Tensor | number | undefined = inputs.length > 1 ? inputs[1] : attrs.scalar;
    if (!floatLike(a) || b === undefined) return null;
    const dt = a.dtype;
    if ((attrs.dtype && attrs.dtype !== dt) || (typeof b !== 'number' && b.dtype !== dt)) return null;
    if (attrs.reverse) [a, b] = [b, a];
    const shapeOf = (x: Tensor | number) => (typeof x === 'number' ? [] : x.shape);
    const out = broadcastShapes(shapeOf(a), shapeOf(b), op);
    const total = numelOf(out);
    if (total === 0) return null;
    const aLen = operandLength(shapeOf(a), out, total);
    const bLen = operandLength(shapeOf(b), out, total);
    // Full, trailing-row and scalar operands: the row kernel; any other broadcast: the stride walk.
    const isRow = (len: number | null): len is number => len !== null && len !== total && len !== 1;
    const inner = isRow(aLen) ? aLen : isRow(bLen) ? bLen : total;
    const fits = (len: number | null) => len === total || len === 1 || len === inner;
    const simple = fits(aLen) && fits(bLen);
    const plan = simple ? null : broadcastPlan([shapeOf(a), shapeOf(b)], out);
    if (!simple && !plan) return null;
    const vals = (x: Tensor | number) =>
      typeof x === 'number' ? Float32Array.of(roundTo(x, dt)) : valuesF32(n, x as Tensor);
    const av = vals(a);
    const bv = vals(b);
    const run = (y: F32 | Uint8Array) =>
      plan
        ? n.binaryBroadcast(code, av, bv, y, plan.shape, plan.strides[0]!, plan.strides[1]!)
        : n.binary(code, av, aLen!, bv, bLen!, y, total, inner);
    if (code >= BINARY_OPS.eq!) {
      const y = Tensor.empty(out, 'bool', 'cpu');
      run(y.raw() as Uint8Array);
      return y;
    }
    return fromF32(n, out, dt, run);
  };

/** Most dims the native stride walk takes (after collapsing). */
const MAX_BROADCAST_DIMS = 16;

/**
 * The native stride walk for operands of `shapes` broadcast to `out`: output dims of size 1 dropped, neighbours
 * merged where every operand is contiguous across them, and each operand's element strides (0 = broadcast).
 */
function broadcastPlan(
  shapes: readonly (readonly number[])[],
  out: readonly number[],
): { shape: Float64Array; strides: Float64Array[] } | null {
  const full = shapes.map((s) => {
    const st = new Array<number>(out.length).fill(0);
    let acc = 1;
    for (let i = s.length - 1; i >= 0; i--) {
      st[out.length - s.length + i] = s[i] === 1 ? 0 : acc;
      acc *= s[i]!;
    }
    return st;
  });
  const dims: number[] = [];
  const strides: number[][] = shapes.map(() => []);
  for (let d = 0; d < out.length; d++) {
    if (out[d] === 1) continue;
    const p = dims.length - 1;
    if (p >= 0 && full.every((st, k) => strides[k]![p] === st[d]! * out[d]!)) {
      dims[p]! *= out[d]!;
      for (let k = 0; k < full.length; k++) strides[k]![p] = full[k]![d]!;
      continue;
    }
    dims.push(out[d]!);
    for (let k = 0; k < full.length; k++) strides[k]!.push(full[k]![d]!);
  }
  if (dims.length > MAX_BROADCAST_DIMS) return null;
  return { shape: Float64Array.from(dims), strides: strides.map((st) => Float64Array.from(st)) };
}

/** where(cond, a, b) with broadcasting; a and b float32 (the buffers themselves) or bfloat16 (widened). */
const where: NativeKernel = (n, [c, a, b], attrs) => {
  if (c?.dtype !== 'bool' || !floatLike(a) || !floatLike(b) || a.dtype !== b.dtype) return null;
  if (attrs.dtype && attrs.dtype !== a.dtype) return null;
  const out = broadcastShapes(broadcastShapes(c.shape, a.shape, 'where'), b.shape, 'where');
  if (numelOf(out) === 0) return null;
  const plan = broadcastPlan([c.shape, a.shape, b.shape], out);
  if (!plan) return null;
  const av = valuesF32(n, a);
  const bv = valuesF32(n, b);
  const cv = c.raw() as Uint8Array;
  const [sc, sa, sb] = plan.strides as [Float64Array, Float64Array, Float64Array];
  return fromF32(n, out, a.dtype, (y) => n.whereBroadcast(cv, av, bv, y, plan.shape, sc, sa, sb));
};

/** softmaxBackward / logSoftmaxBackward ([grad, output], { dim }) along any dim. */
const softmaxBackward =
  (log: boolean): NativeKernel =>
  (n, [g, y], { dim, dtype }) => {
    if (!floatLike(g) || !floatLike(y) || g.dtype !== y.dtype || (dtype && dtype !== y.dtype)) return null;
    if (y.ndim === 0 || g.ndim !== y.ndim || g.shape.some((s, i) => s !== y.shape[i])) return null;
    if (!Number.isInteger(dim) || dim < 0 || dim >= y.ndim || y.numel === 0) return null;
    const size = y.shape[dim]!;
    const inner = numelOf(y.shape.slice(dim + 1));
    const outer = y.numel / (size * inner);
    const gv = valuesF32(n, g);
    const yv = valuesF32(n, y);
    return fromF32(n, y.shape, y.dtype, (dx) => n.softmaxBackward(gv, yv, dx, outer, size, inner, log));
  };

/** logsumexp over one contiguous run of dims. */
const logsumexp: NativeKernel = (n, [x], { dims, keepdim = false, dtype }) => {
  if (!floatLike(x) || (dtype && dtype !== x.dtype)) return null;
  const run = contiguousRun(x.shape, dims);
  if (!run || run[1] === 0 || run[0] * run[2] === 0) return null;
  const set = new Set<number>(dims ?? x.shape.map((_: number, i: number) => i));
  const shape = keepdim ? x.shape.map((s, i) => (set.has(i) ? 1 : s)) : x.shape.filter((_, i) => !set.has(i));
  const xv = valuesF32(n, x);
  return fromF32(n, shape, x.dtype, (y) => n.logsumexp(xv, y, run[0], run[1], run[2]));
};

const UNARY_OPS: Readonly<Record<string, number>> = {
  neg: 0,
  abs: 1,
  square: 2,
  relu: 3,
  exp: 4,
  log: 5,
  sqrt: 6,
  rsqrt: 7,
  tanh: 8,
  sigmoid: 9,
  silu: 10,
  gelu: 11, // 12: approximate 'tanh'
  pow: 13,
  clamp: 14,
};

const unary =
  (op: string): NativeKernel =>
  (n, [x], attrs) => {
    if (!floatLike(x) || (attrs.dtype && attrs.dtype !== x.dtype) || x.numel === 0) return null;
    let code = UNARY_OPS[op]!;
    let p = 0;
    let q = 0;
    if (op === 'gelu') {
      const approx = attrs.approximate ?? 'none';
      if (approx !== 'none' && approx !== 'tanh') return null; // the reference reports it
      if (approx === 'tanh') code = 12;
    } else if (op === 'pow') {
      if (typeof attrs.exponent !== 'number') return null;
      p = attrs.exponent;
    } else if (op === 'clamp') {
      p = attrs.min === undefined || attrs.min === null ? -Infinity : roundTo(attrs.min, x.dtype);
      q = attrs.max === undefined || attrs.max === null ? Infinity : roundTo(attrs.max, x.dtype);
      if (Number.isNaN(p) || Number.isNaN(q)) return null;
    }
    const xv = valuesF32(n, x);
    return fromF32(n, x.shape, x.dtype, (y) => n.unary(code, xv, y, x.numel, p, q));
  };

const BACKWARD_OPS: Readonly<Record<string, number>> = {
  tanhBackward: 0,
  sigmoidBackward: 1,
  siluBackward: 2,
  geluBackward: 3, // 4: approximate 'tanh'
};

const unaryBackward =
  (op: string): NativeKernel =>
  (n, [g, t], attrs) => {
    if (!floatLike(g) || !floatLike(t) || g.dtype !== t.dtype || (attrs.dtype && attrs.dtype !== t.dtype)) return null;
    if (g.numel !== t.numel || t.numel === 0) return null;
    let code = BACKWARD_OPS[op]!;
    if (op === 'geluBackward') {
      const approx = attrs.approximate ?? 'none';
      if (approx !== 'none' && approx !== 'tanh') return null;
      if (approx === 'tanh') code = 4;
    }
    const gv = valuesF32(n, g);
    const tv = valuesF32(n, t);
    return fromF32(n, t.shape, t.dtype, (y) => n.unaryBackward(code, gv, tv, y, t.numel));
  };

/** [outer, red, inner] of a reduction over `dims` when they are one contiguous run (else null). */
function contiguousRun(shape: readonly number[], dims: readonly number[] | undefined): [number, number, number] | null {
  const nd = shape.length;
  const list = dims ?? shape.map((_, i) => i);
  if (list.some((d) => !Number.isInteger(d) || d < 0 || d >= Math.max(nd, 1))) return null;
  const set = [...new Set(list)].sort((x, y) => x - y);
  if (nd === 0) return [1, 1, 1];
  if (set.length === 0) return null;
  const lo = set[0]!;
  const hi = set[set.length - 1]!;
  if (hi - lo + 1 !== set.length) return null;
  return [numelOf(shape.slice(0, lo)), numelOf(shape.slice(lo, hi + 1)), numelOf(shape.slice(hi + 1))];
}

const REDUCE_OPS: Readonly<Record<string, number>> = { sum: 0, mean: 1, max: 2, min: 3 };

const reduce =
  (op: string): NativeKernel =>
  (n, [x], { dims, keepdim = false, dtype }) => {
    if (!floatLike(x) || (dtype && dtype !== x.dtype)) return null;
    const run = contiguousRun(x.shape, dims);
    if (!run || run[1] === 0 || run[0] * run[2] === 0) return null;
    const set = new Set<number>(dims ?? x.shape.map((_: number, i: number) => i));
    const shape = keepdim ? x.shape.map((s, i) => (set.has(i) ? 1 : s)) : x.shape.filter((_, i) => !set.has(i));
    const [outer, red, inner] = run;
    const code = REDUCE_OPS[op]!;
    const xv = valuesF32(n, x);
    if (op === 'max' || op === 'min') {
      const idx = Tensor.empty(shape, 'int32', 'cpu');
      const v = fromF32(n, shape, x.dtype, (y) => n.reduce(code, xv, y, ints(idx), outer, red, inner));
      return [v, idx];
    }
    return fromF32(n, shape, x.dtype, (y) => n.reduce(code, xv, y, null, outer, red, inner));
  };

/** sumTo when the summed dimensions are one contiguous run (e.g. a bias gradient [B, S, H] -> [H]). */
const sumTo: NativeKernel = (n, [x], { shape }) => {
  if (!floatLike(x) || !Array.isArray(shape) || shape.length > x.ndim) return null;
  const xs = x.shape;
  const lead = xs.length - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    if (i < lead) dims.push(i);
    else if (shape[i - lead] !== xs[i]) {
      if (shape[i - lead] !== 1) return null; // not a broadcast of `shape`: the reference reports it
      dims.push(i);
    }
  }
  if (dims.length === 0) return null;
  const run = contiguousRun(xs, dims);
  if (!run || run[0] * run[1] * run[2] === 0) return null;
  const xv = valuesF32(n, x);
  return fromF32(n, shape, x.dtype, (y) => n.reduce(0, xv, y, null, run[0], run[1], run[2]));
};

const F: DType = 'float32';
const dtypeOf = (t: Tensor | undefined): DType => t?.dtype ?? F;
/** Output dtypes when the op returns optional outputs: the present ones in order. */
const present = (...outs: [boolean, DType][]) => outs.filter(([on]) => on).map(([, d]) => d);

/**
 * The fused and in-place kernels, float32 natively, extended to bfloat16 operands by {@link withBf16}: for each op
 * the dtypes of its outputs as core's reference makes them (bfloat16 results rounded once; saved statistics such as
 * rstd, mean and lse, and gradients of float32 operands, stay float32), or the inputs it updates in place.
 */
const FUSED: Readonly<Record<string, NativeKernel>> = {
  matmul: withBf16(matmul, { outputs: ([a]) => [dtypeOf(a)] }),
  // bfloat16 x: rmsNormBf16 (the reference's intermediate rounding); float32 x with a bfloat16 weight: widened.
  rmsNorm: withBf16((n, ins, a) => rmsNormBf16(n, ins, a) ?? rmsNorm(n, ins, a), {
    outputs: ([x, w]) => [promoteTypes(dtypeOf(x), dtypeOf(w)), F],
  }),
  rmsNormBackward: withBf16((n, ins, a) => rmsNormBackwardBf16(n, ins, a) ?? rmsNormBackward(n, ins, a), {
    outputs: ([, x, w]) => [dtypeOf(x), dtypeOf(w)],
  }),
  layerNorm: withBf16(layerNorm, { outputs: ([x]) => [dtypeOf(x), F, F] }),
  layerNormBackward: withBf16(layerNormBackward, {
    outputs: (ins, { hasWeight, hasBias }) =>
      present([true, dtypeOf(ins[1])], [!!hasWeight, dtypeOf(ins[4])], [!!hasBias, dtypeOf(ins[1])]),
  }),
  swiglu: withBf16(swiglu, { outputs: ([g]) => [dtypeOf(g)] }),
  swigluBackward: withBf16(swigluBackward, { outputs: ([, g, u]) => [dtypeOf(g), dtypeOf(u)] }),
  rope: rope(1),
  ropeBackward: rope(-1),
  add_: withBf16(addInplace, { inplace: [0] }),
  mul_: withBf16(mulInplace, { inplace: [0] }),
  adamwStep: withBf16(adamwStep, { inplace: [0, 2, 3, 4] }),
  embedding,
  embeddingBackward: withBf16(embeddingBackward, { outputs: ([, g]) => [dtypeOf(g)] }),
  crossEntropy: withBf16(crossEntropy, { outputs: ([x]) => [dtypeOf(x), F] }),
  crossEntropyBackward: withBf16(crossEntropyBackward, { outputs: ([x]) => [dtypeOf(x)] }),
  fusedLinearCrossEntropy: withBf16(flce, { outputs: ([h]) => [dtypeOf(h), F] }),
  fusedLinearCrossEntropyBackward: withBf16(flceBackward, {
    outputs: ([h, w], a) => present([a.needHidden ?? true, dtypeOf(h)], [a.needWeight ?? true, dtypeOf(w)]),
  }),
  groupedMatmul: withBf16(groupedMatmul, { outputs: ([x]) => [dtypeOf(x)] }),
  groupedMatmulBackward: withBf16(groupedMatmulBackward, { outputs: ([, x, w]) => [dtypeOf(x), dtypeOf(w)] }),
  attention: withBf16(attention, { outputs: ([q]) => [dtypeOf(q), F] }),
  attentionBackward: withBf16(attentionBackward, {
    unused: [3],
    outputs: ([q, k, v]) => [dtypeOf(q), dtypeOf(k), dtypeOf(v)],
  }),
  softmax: withBf16(softmax(false), { outputs: ([x]) => [dtypeOf(x)] }),
  logSoftmax: withBf16(softmax(true), { outputs: ([x]) => [dtypeOf(x)] }),
};

/** Every native kernel by op name (same names, inputs, attrs and outputs as core's reference kernels). */
export const NATIVE_KERNELS: Readonly<Record<string, NativeKernel>> = {
  ...FUSED,
  softmaxBackward: softmaxBackward(false),
  logSoftmaxBackward: softmaxBackward(true),
  logsumexp,
  where,
  cast,
  ...Object.fromEntries(Object.keys(BINARY_OPS).map((op) => [op, binary(op)])),
  ...Object.fromEntries(Object.keys(UNARY_OPS).map((op) => [op, unary(op)])),
  ...Object.fromEntries(Object.keys(BACKWARD_OPS).map((op) => [op, unaryBackward(op)])),
  ...Object.fromEntries(Object.keys(REDUCE_OPS).map((op) => [op, reduce(op)])),
  sumTo,
  ...MOVEMENT_KERNELS,
};

/** Register every native kernel on `cpu` at {@link KERNEL_PRIORITY}; each falls back to the next kernel. */
export function registerNativeKernels(r: Registry): void {
  for (const [op, impl] of Object.entries(NATIVE_KERNELS)) {
    let next: Kernel | null = null;
    const kernel: Kernel = (inputs, attrs) => {
      const n = native();
      const out = n ? impl(n, inputs, attrs ?? {}) : null;
      if (out) return out;
      next ??= fallback(r, op);
      return next(inputs, attrs);
    };
    r.registerKernel('cpu', op, kernel, { priority: KERNEL_PRIORITY, source: KERNEL_SOURCE });
  }
}
