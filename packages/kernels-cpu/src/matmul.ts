// matmul (float32: OpenBLAS panels or the packed GEMM; bfloat16: the packed bfloat16 GEMM or widened operands)
// and groupedMatmul (the MoE experts' GEMMs), forward and backward.
import { batchOffsets, broadcastShapes, numelOf, Tensor } from '@omnitrain/core';
import { type NativeKernel, narrowToBf16, widenBf16 } from './bf16.js';
import { empty, f32, i32, ints, raw, uninitialized } from './kernel-util.js';
import { gemmBf16Mode, type NativeAddon } from './native.js';

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

export const matmul: NativeKernel = (n, [a, b], { transA = false, transB = false }) => {
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

const ZERO = new Float64Array(1);

export const groupedMatmul: NativeKernel = (n, [x, w, sizes]) => {
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

export const groupedMatmulBackward: NativeKernel = (n, [gy, x, w, sizes]) => {
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
