// Casts, binary and unary elementwise ops (any broadcast), where, softmax backward, logsumexp, reductions, sumTo:
// float32 natively; bfloat16 widened to float32 at the edges and rounded once at the output, exactly as the
// reference computes (float32 values, float32 result, one rounding to bfloat16).
import { broadcastShapes, numelOf, Tensor } from '@omnitrain/core';
import type { NativeKernel } from './bf16.js';
import { type F32, floatLike, fromF32, ints, roundTo, valuesF32 } from './kernel-util.js';
import type { NativeAddon } from './native.js';

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

export const cast: NativeKernel = (n, [x], { dtype }) => {
  const f = x ? CASTS[`${x.dtype}>${dtype}`] : undefined;
  if (!x || !f) return null;
  const y = Tensor.empty(x.shape, dtype, 'cpu');
  f(n, x.raw(), y.raw(), x.numel);
  return y;
};

/** Op codes shared with native/ops.h. */
export const BINARY_OPS: Readonly<Record<string, number>> = {
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

export const binary =
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
export function broadcastPlan(
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
export const where: NativeKernel = (n, [c, a, b], attrs) => {
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
export const softmaxBackward =
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
export const logsumexp: NativeKernel = (n, [x], { dims, keepdim = false, dtype }) => {
  if (!floatLike(x) || (dtype && dtype !== x.dtype)) return null;
  const run = contiguousRun(x.shape, dims);
  if (!run || run[1] === 0 || run[0] * run[2] === 0) return null;
  const set = new Set<number>(dims ?? x.shape.map((_: number, i: number) => i));
  const shape = keepdim ? x.shape.map((s, i) => (set.has(i) ? 1 : s)) : x.shape.filter((_, i) => !set.has(i));
  const xv = valuesF32(n, x);
  return fromF32(n, shape, x.dtype, (y) => n.logsumexp(xv, y, run[0], run[1], run[2]));
};

export const UNARY_OPS: Readonly<Record<string, number>> = {
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

export const unary =
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

export const BACKWARD_OPS: Readonly<Record<string, number>> = {
  tanhBackward: 0,
  sigmoidBackward: 1,
  siluBackward: 2,
  geluBackward: 3, // 4: approximate 'tanh'
};

export const unaryBackward =
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

export const REDUCE_OPS: Readonly<Record<string, number>> = { sum: 0, mean: 1, max: 2, min: 3 };

export const reduce =
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
export const sumTo: NativeKernel = (n, [x], { shape }) => {
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
