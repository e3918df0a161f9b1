// Reference CPU kernels for elementwise ops: broadcasting binary arithmetic and comparisons,
// `where`, unary math, activations and their backward kernels. Operands are first converted to
// the op's common dtype (as PyTorch's TensorIterator does), the op is computed in the compute
// precision (float64 arithmetic, stored to float32 for float32/bf16/fp16 and rounded at output).
import { type DType, isFloating, promoteTypes } from '../../dtype.js';
import { bfloat16BitsToFloat, float16BitsToFloat, floatToBFloat16Bits, floatToFloat16Bits } from '../../half.js';
import type { Registry } from '../../registry.js';
import { broadcastShapes, numelOf } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { type ComputeArray, computesInFloat64, output, read } from './util.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

// ---------------------------------------------------------------------------------------------
// erf to float64 precision (PyTorch's exact gelu uses erf).

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;

/**
 * The error function, accurate to a few float64 ulps. For |x| < 2.5 it sums the series
 * erf(x) = 2/sqrt(pi) * x * exp(-x^2) * sum_n (2x^2)^n / (1*3*...*(2n+1)) (all terms positive, so
 * no cancellation); above it uses the continued fraction of erfc (Laplace), 50 terms.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return x > 0 ? 1 : -1; // erfc(6) ~ 2e-17: below half an ulp of 1
  if (ax < 2.5) {
    const x2 = x * x;
    const r = 2 * x2;
    let t = 1;
    let s = 1;
    for (let n = 1; n < 80; n++) {
      t *= r / (2 * n + 1);
      s += t;
      if (t < 1e-17 * s) break;
    }
    return TWO_OVER_SQRT_PI * x * Math.exp(-x2) * s;
  }
  const c = erfcLarge(ax);
  return x > 0 ? 1 - c : c - 1;
}

/** erfc(x) for x >= 2.5 by the continued fraction 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))). */
function erfcLarge(x: number): number {
  let f = x;
  for (let k = 50; k >= 1; k--) f = x + k / 2 / f;
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / f;
}

// ---------------------------------------------------------------------------------------------
// Dtype conversion of operands.

/** A function rounding a number to a dtype's value set, as a cast to that dtype does. */
export function rounderFor(dtype: DType): (v: number) => number {
  switch (dtype) {
    case 'float64':
      return (v) => v;
    case 'float32':
      return Math.fround;
    case 'bfloat16':
      return (v) => bfloat16BitsToFloat(floatToBFloat16Bits(v));
    case 'float16':
      return (v) => float16BitsToFloat(floatToFloat16Bits(v));
    case 'int32':
      return (v) => Math.trunc(v) | 0;
    case 'uint8':
      return (v) => (Math.trunc(v) | 0) & 0xff;
    case 'bool':
      return (v) => (v !== 0 ? 1 : 0);
  }
}

/** True when every value of `from` is exactly representable in `to`. */
function exactIn(from: DType, to: DType): boolean {
  if (from === to || to === 'float64') return true;
  if (from === 'bool' || from === 'uint8') return to !== 'bool';
  if (from === 'bfloat16' || from === 'float16') return to === 'float32';
  return false;
}

/** Values of `t` converted to `dtype` (rounded when the conversion is inexact), in compute precision. */
export function valuesAs(t: Tensor, dtype: DType): ComputeArray {
  const v = read(t);
  if (exactIn(t.dtype, dtype)) return v;
  const round = rounderFor(dtype);
  const out = computesInFloat64(dtype) ? new Float64Array(v.length) : new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = round(v[i]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Broadcast iteration.

/** Strides of `shape` (right-aligned) seen from `outShape`: 0 where a dimension is broadcast. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const n = outShape.length;
  const lead = n - shape.length;
  const strides = new Array<number>(n).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[lead + i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i]!;
  }
  return strides;
}

/**
 * Walk `outShape` in row-major order one run of the last dimension at a time:
 * `visit(o, offsets, len)` gets the output start `o` and each input's start offset.
 * Inner (last-dimension) strides of the inputs are `broadcastStrides(...)[n - 1]` (0 or 1).
 */
export function forEachRun(
  outShape: readonly number[],
  strides: readonly (readonly number[])[],
  visit: (o: number, offsets: Int32Array | number[], len: number) => void,
): void {
  const total = numelOf(outShape);
  if (total === 0) return;
  const n = outShape.length;
  const k = strides.length;
  const offs = new Array<number>(k).fill(0);
  if (n === 0) {
    visit(0, offs, 1);
    return;
  }
  const inner = outShape[n - 1]!;
  const idx = new Array<number>(n).fill(0);
  for (let o = 0; o < total; o += inner) {
    visit(o, offs, inner);
    for (let d = n - 2; d >= 0; d--) {
      idx[d]!++;
      for (let j = 0; j < k; j++) offs[j]! += strides[j]![d]!;
      if (idx[d]! < outShape[d]!) break;
      for (let j = 0; j < k; j++) offs[j]! -= strides[j]![d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

type Fn1 = (x: number) => number;
type Fn2 = (a: number, b: number) => number;

/** out[i] = f(a[ia], b[ib]) over the broadcast of `aShape` and `bShape` to `outShape`. */
function binaryLoop(
  f: Fn2,
  out: ComputeArray,
  av: ComputeArray,
  aShape: readonly number[],
  bv: ComputeArray,
  bShape: readonly number[],
  outShape: readonly number[],
): void {
  const n = out.length;
  if (av.length === n && bv.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(av[i]!, bv[i]!);
    return;
  }
  if (av.length === n && bv.length === 1) {
    const b = bv[0]!;
    for (let i = 0; i < n; i++) out[i] = f(av[i]!, b);
    return;
  }
  if (av.length === 1 && bv.length === n) {
    const a = av[0]!;
    for (let i = 0; i < n; i++) out[i] = f(a, bv[i]!);
    return;
  }
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const last = outShape.length - 1;
  const ia = sa[last]!;
  const ib = sb[last]!;
  forEachRun(outShape, [sa, sb], (o, offs, len) => {
    const ao = offs[0]!;
    const bo = offs[1]!;
    for (let j = 0; j < len; j++) out[o + j] = f(av[ao + j * ia]!, bv[bo + j * ib]!);
  });
}

// ---------------------------------------------------------------------------------------------
// Kernels.

/** Attributes of binary kernels: `[a, b]` tensors (broadcast), or `[a]` and a `scalar`. */
interface BinaryAttrs {
  /** Common dtype the operands are converted to (default: promotion of the operands). */
  dtype?: DType;
  /** Second operand as a number (then there is one tensor input). */
  scalar?: number;
  /** With `scalar`: compute `scalar op a` instead of `a op scalar`. */
  reverse?: boolean;
}

interface BinarySpec {
  /** Float function. */
  f: Fn2;
  /** Integer function (int32/uint8/bool common dtype); defaults to `f`. */
  fInt?: Fn2;
  /** Output dtype: the common dtype, bool (comparisons), or floating (true division). */
  out: 'common' | 'bool' | 'float';
}

const BINARY: Record<string, BinarySpec> = {
  add: { f: (a, b) => a + b, out: 'common' },
  sub: { f: (a, b) => a - b, out: 'common' },
  mul: { f: (a, b) => a * b, fInt: (a, b) => Math.imul(a, b), out: 'common' },
  div: { f: (a, b) => a / b, out: 'float' },
  maximum: { f: (a, b) => (a > b || Number.isNaN(a) ? a : b), out: 'common' },
  minimum: { f: (a, b) => (a < b || Number.isNaN(a) ? a : b), out: 'common' },
  eq: { f: (a, b) => (a === b ? 1 : 0), out: 'bool' },
  ne: { f: (a, b) => (a !== b ? 1 : 0), out: 'bool' },
  lt: { f: (a, b) => (a < b ? 1 : 0), out: 'bool' },
  le: { f: (a, b) => (a <= b ? 1 : 0), out: 'bool' },
  gt: { f: (a, b) => (a > b ? 1 : 0), out: 'bool' },
  ge: { f: (a, b) => (a >= b ? 1 : 0), out: 'bool' },
};

/** Dtype of a number operand by PyTorch's rules (integral numbers are int, others float32). */
function scalarDType(v: number): DType {
  return Number.isInteger(v) ? 'int32' : 'float32';
}

/** Default common dtype when the op layer did not pass one. */
function defaultCommon(a: Tensor, b: Tensor | number): DType {
  if (typeof b === 'number') {
    if (isFloating(a.dtype)) return a.dtype;
    const s = scalarDType(b);
    return s === 'float32' ? 'float32' : a.dtype === 'bool' ? s : a.dtype;
  }
  return promoteTypes(a.dtype, b.dtype);
}

function binaryKernel(name: string, spec: BinarySpec) {
  return (inputs: Tensor[], attrs: BinaryAttrs): Tensor => {
    const a = inputs[0];
    const b: Tensor | number | undefined = inputs.length > 1 ? inputs[1] : attrs.scalar;
    if (!a || b === undefined || (inputs.length < 2 && typeof b !== 'number')) {
      throw new Error(`${name}: expected inputs [a, b], or [a] with a number attrs.scalar`);
    }
    let common = attrs.dtype ?? defaultCommon(a, b);
    if (spec.out === 'float' && !isFloating(common)) common = 'float32';
    const outDtype: DType = spec.out === 'bool' ? 'bool' : common;
    const f = !isFloating(common) && spec.fInt ? spec.fInt : spec.f;
    let av = valuesAs(a, common);
    let aShape = a.shape;
    let bv: ComputeArray;
    let bShape: readonly number[];
    if (typeof b === 'number') {
      bv = new Float64Array([rounderFor(common)(b)]);
      bShape = [];
    } else {
      bv = valuesAs(b, common);
      bShape = b.shape;
    }
    if (attrs.reverse) [av, aShape, bv, bShape] = [bv, bShape, av, aShape];
    const outShape = broadcastShapes(aShape, bShape, name);
    const o = output(outShape, outDtype);
    binaryLoop(f, o.data, av, aShape, bv, bShape, outShape);
    return o.done();
  };
}

/** Attributes of unary kernels. */
interface UnaryAttrs {
  /** Output dtype (also the dtype the input is converted to); default: the input's float dtype. */
  dtype?: DType;
  [k: string]: unknown;
}

function unaryKernel(name: string, make: (attrs: any, dtype: DType) => Fn1, opts: { keepInt?: boolean } = {}) {
  return ([x]: Tensor[], attrs: UnaryAttrs): Tensor => {
    if (!x) throw new Error(`${name}: expected one input tensor`);
    const dtype = attrs.dtype ?? (isFloating(x.dtype) || opts.keepInt ? x.dtype : 'float32');
    const f = make(attrs, dtype);
    const xv = valuesAs(x, dtype);
    const o = output(x.shape, dtype);
    const d = o.data;
    for (let i = 0; i < d.length; i++) d[i] = f(xv[i]!);
    return o.done();
  };
}

const SQRT1_2 = Math.SQRT1_2;
const GELU_BETA = Math.sqrt(2 / Math.PI);
const GELU_KAPPA = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_BETA * (x + GELU_KAPPA * x * x * x)));
}

function geluTanhGrad(x: number): number {
  const x2 = x * x;
  const t = Math.tanh(GELU_BETA * (x + GELU_KAPPA * x2 * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_BETA * (1 + 3 * GELU_KAPPA * x2);
}

function geluErfGrad(x: number): number {
  return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

function sigmoidOf(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function checkApproximate(name: string, approximate: unknown): 'none' | 'tanh' {
  const a = approximate ?? 'none';
  if (a !== 'none' && a !== 'tanh')
    throw new Error(`${name}: approximate must be 'none' or 'tanh', got '${String(a)}'`);
  return a;
}

/** A kernel `(grad, t) -> grad * f'(t)` computed in float like PyTorch's `*_backward` kernels. */
function backwardKernel(name: string, make: (attrs: any) => Fn2) {
  return ([g, t]: Tensor[], attrs: { dtype?: DType }): Tensor => {
    if (!g || !t) throw new Error(`${name}: expected [grad, tensor]`);
    if (g.numel !== t.numel) {
      throw new Error(`${name}: grad ${fmt(g.shape)} and saved tensor ${fmt(t.shape)} have different sizes`);
    }
    const dtype = attrs.dtype ?? promoteTypes(g.dtype, t.dtype);
    const f = make(attrs);
    const gv = valuesAs(g, dtype);
    const tv = valuesAs(t, dtype);
    const o = output(t.shape, dtype);
    const d = o.data;
    for (let i = 0; i < d.length; i++) d[i] = f(gv[i]!, tv[i]!);
    return o.done();
  };
}

/**
 * Register the elementwise kernels on the CPU backend: `add sub mul div maximum minimum`,
 * `eq ne lt le gt ge` (broadcasting `[a, b]`, or `[a]` with `{ scalar, reverse? }`; `{ dtype }` is
 * the common dtype), `where` (`[cond, a, b]`), unary `neg abs square exp log sqrt rsqrt tanh
 * sigmoid silu relu gelu pow clamp clone`, and `tanhBackward sigmoidBackward siluBackward geluBackward`.
 */
export function registerElementwiseKernels(r: Registry, source: string): void {
  const k = (op: string, fn: (inputs: Tensor[], attrs: any) => Tensor | Tensor[]) =>
    r.registerKernel('cpu', op, fn, { priority: 0, source });

  for (const [name, spec] of Object.entries(BINARY)) k(name, binaryKernel(name, spec));

  k('where', ([cond, a, b], attrs: { dtype?: DType }) => {
    if (!cond || !a || !b) throw new Error('where: expected [cond, a, b]');
    if (cond.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${cond.dtype}`);
    const dtype = attrs.dtype ?? promoteTypes(a.dtype, b.dtype);
    const outShape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
    const cv = cond.raw() as Uint8Array;
    const av = valuesAs(a, dtype);
    const bv = valuesAs(b, dtype);
    const o = output(outShape, dtype);
    const d = o.data;
    const n = d.length;
    if (cv.length === n && av.length === n && bv.length === n) {
      for (let i = 0; i < n; i++) d[i] = cv[i] ? av[i]! : bv[i]!;
    } else {
      const s = [cond.shape, a.shape, b.shape].map((sh) => broadcastStrides(sh, outShape));
      const last = outShape.length - 1;
      const [ic, ia, ib] = s.map((st) => st[last] ?? 0) as [number, number, number];
      forEachRun(outShape, s, (o0, offs, len) => {
        const co = offs[0]!;
        const ao = offs[1]!;
        const bo = offs[2]!;
        for (let j = 0; j < len; j++) d[o0 + j] = cv[co + j * ic] ? av[ao + j * ia]! : bv[bo + j * ib]!;
      });
    }
    return o.done();
  });

  k(
    'neg',
    unaryKernel('neg', () => (x) => -x, { keepInt: true }),
  );
  k(
    'abs',
    unaryKernel('abs', () => Math.abs, { keepInt: true }),
  );
  k(
    'square',
    unaryKernel('square', (_, dtype) => (isFloating(dtype) ? (x) => x * x : (x) => Math.imul(x, x)), { keepInt: true }),
  );
  k(
    'relu',
    unaryKernel('relu', () => (x) => (x > 0 || Number.isNaN(x) ? x : 0), { keepInt: true }),
  );
  k(
    'exp',
    unaryKernel('exp', () => Math.exp),
  );
  k(
    'log',
    unaryKernel('log', () => Math.log),
  );
  k(
    'sqrt',
    unaryKernel('sqrt', () => Math.sqrt),
  );
  k(
    'rsqrt',
    unaryKernel('rsqrt', () => (x) => 1 / Math.sqrt(x)),
  );
  k(
    'tanh',
    unaryKernel('tanh', () => Math.tanh),
  );
  k(
    'sigmoid',
    unaryKernel('sigmoid', () => sigmoidOf),
  );
  k(
    'silu',
    unaryKernel('silu', () => (x) => x / (1 + Math.exp(-x))),
  );
  k(
    'gelu',
    unaryKernel('gelu', (attrs) =>
      checkApproximate('gelu', attrs.approximate) === 'tanh' ? geluTanh : (x) => 0.5 * x * (1 + erf(x * SQRT1_2)),
    ),
  );
  k(
    'pow',
    unaryKernel(
      'pow',
      (attrs: { exponent: number }, dtype) => {
        const e = attrs.exponent;
        if (typeof e !== 'number') throw new Error('pow: attrs.exponent must be a number');
        if (!isFloating(dtype) && Number.isInteger(e) && e >= 0) {
          // Integer powers by repeated multiplication with int32 wrap-around, as integer pow does.
          return (x) => {
            let r = 1;
            for (let i = 0; i < e; i++) r = Math.imul(r, x);
            return r;
          };
        }
        if (e === 2) return (x) => x * x;
        if (e === 0.5) return Math.sqrt;
        return (x) => x ** e;
      },
      { keepInt: true },
    ),
  );
  k(
    'clamp',
    unaryKernel(
      'clamp',
      (attrs: { min?: number | null; max?: number | null }, dtype) => {
        const round = rounderFor(dtype);
        const lo = attrs.min ?? null;
        const hi = attrs.max ?? null;
        const min = lo === null ? Number.NEGATIVE_INFINITY : round(lo);
        const max = hi === null ? Number.POSITIVE_INFINITY : round(hi);
        if (Number.isNaN(min) || Number.isNaN(max)) return () => Number.NaN;
        return (x) => Math.min(Math.max(x, min), max);
      },
      { keepInt: true },
    ),
  );
  k('clone', ([x]) => {
    if (!x) throw new Error('clone: expected one input tensor');
    const t = Tensor.empty(x.shape, x.dtype, 'cpu');
    t.raw().set(x.raw() as never);
    return t;
  });

  k(
    'tanhBackward',
    backwardKernel('tanhBackward', () => (g, y) => g * (1 - y * y)),
  );
  k(
    'sigmoidBackward',
    backwardKernel('sigmoidBackward', () => (g, y) => g * (1 - y) * y),
  );
  k(
    'siluBackward',
    backwardKernel('siluBackward', () => (g, x) => {
      const s = sigmoidOf(x);
      return g * s * (1 + x * (1 - s));
    }),
  );
  k(
    'geluBackward',
    backwardKernel('geluBackward', (attrs: { approximate?: string }) => {
      const grad = checkApproximate('geluBackward', attrs.approximate) === 'tanh' ? geluTanhGrad : geluErfGrad;
      return (g, x) => g * grad(x);
    }),
  );
}
