// Reductions over any dimension or list of dimensions (sum, mean, max, min, argmax,
// logsumexp), softmax / logSoftmax, and sumTo (the reverse of broadcasting), with gradients.
import { record } from '../autograd/node.js';
import { arange } from '../creation.js';
import { isFloating } from '../dtype.js';
import { tidy } from '../memory.js';
import { broadcastShapes, numelOf, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch, dispatch1 } from './dispatch.js';
import { div, eq, exp, mul, sub, where } from './elementwise.js';
import { expand } from './shape.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

function checkTensor(op: string, x: unknown): asserts x is Tensor {
  if (typeof x !== 'object' || x === null || (x as { isTensor?: boolean }).isTensor !== true) {
    throw new Error(`${op}: expected a Tensor, got ${x === null ? 'null' : typeof x}`);
  }
}

/** Normalise one dimension index (negative counts from the end) with an error naming op and shape. */
function normDim(op: string, dim: unknown, shape: readonly number[]): number {
  const n = shape.length;
  const r = Math.max(n, 1);
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < -r || dim >= r) {
    throw new Error(`${op}: dim ${String(dim)} out of range for a tensor of shape ${fmt(shape)} (rank ${n})`);
  }
  return dim < 0 ? dim + r : dim;
}

/**
 * The sorted, normalised dimensions to reduce. `undefined` or an empty list means every
 * dimension (as in PyTorch); a 0-d tensor accepts dim 0 / -1 and has nothing to reduce.
 */
function resolveDims(op: string, x: Tensor, dim: number | readonly number[] | undefined): number[] {
  const all = x.shape.map((_, i) => i);
  if (dim === undefined || dim === null) return all;
  const list = typeof dim === 'number' ? [dim] : dim;
  if (!Array.isArray(list)) throw new Error(`${op}: dim must be a number or an array of numbers, got ${typeof dim}`);
  if (list.length === 0) return all;
  const dims = list.map((d) => normDim(op, d, x.shape));
  const seen = new Set<number>();
  for (let i = 0; i < dims.length; i++) {
    if (seen.has(dims[i]!)) {
      throw new Error(`${op}: dim ${list[i]} appears more than once in ${fmt(list)} (shape ${fmt(x.shape)})`);
    }
    seen.add(dims[i]!);
  }
  return x.ndim === 0 ? [] : dims.sort((a, b) => a - b);
}

/** `shape` with `dims` set to 1. */
function keptShape(shape: readonly number[], dims: readonly number[]): number[] {
  return shape.map((s, i) => (dims.includes(i) ? 1 : s));
}

function checkFloat(op: string, x: Tensor): void {
  if (!isFloating(x.dtype)) {
    throw new Error(`${op}: expected a floating-point tensor, got ${x.dtype} ${fmt(x.shape)}; cast it first`);
  }
}

function checkNonEmpty(op: string, x: Tensor, dims: readonly number[]): void {
  if (dims.some((d) => x.shape[d] === 0) && numelOf(keptShape(x.shape, dims)) > 0) {
    throw new Error(`${op}: cannot reduce over a zero-size dimension (shape ${fmt(x.shape)}, dims ${fmt(dims)})`);
  }
}

/**
 * Sum over `dim` (a dimension, a list of them, or every dimension when omitted; negative
 * dims count from the end). Integer and bool tensors sum to int32. Differentiable.
 */
export function sum(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  checkTensor('sum', x);
  const dims = resolveDims('sum', x, dim);
  const out = dispatch1('sum', [x], { dims, keepdim });
  const inShape = x.shape;
  const keep = keptShape(inShape, dims);
  record('sum', [x], [out], ([g]) => tidy(() => [g ? expand(g.reshape(keep), inShape) : null]));
  return out;
}

/** Mean over `dim` (like `sum`); floating-point tensors only. Differentiable. */
export function mean(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  checkTensor('mean', x);
  checkFloat('mean', x);
  const dims = resolveDims('mean', x, dim);
  const out = dispatch1('mean', [x], { dims, keepdim });
  const inShape = x.shape;
  const keep = keptShape(inShape, dims);
  const count = numelOf(dims.map((d) => inShape[d]!));
  record('mean', [x], [out], ([g]) => tidy(() => [g ? expand(div(g.reshape(keep), count), inShape) : null]));
  return out;
}

/**
 * Maximum over `dim` (values only; see `argmax` for indices). NaN propagates. With one
 * dimension the gradient goes to the first maximal element (PyTorch's `max(x, dim)`); over
 * several or all dimensions it is split evenly among ties (PyTorch's `amax` / `max(x)`).
 */
export function max(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return extreme('max', x, dim, keepdim);
}

/** Minimum over `dim`; gradient semantics as in `max`. */
export function min(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return extreme('min', x, dim, keepdim);
}

function extreme(op: 'max' | 'min', x: Tensor, dim: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  checkTensor(op, x);
  const dims = resolveDims(op, x, dim);
  checkNonEmpty(op, x, dims);
  const [values, indices] = dispatch(op, [x], { dims, keepdim }) as [Tensor, Tensor];
  const inShape = x.shape;
  const keep = keptShape(inShape, dims);
  if (typeof dim === 'number' && dims.length === 1) {
    // Gradient to the selected element: compare each position along `dim` with the index.
    const d = dims[0]!;
    const n = inShape[d]!;
    const posShape = inShape.map((_, i) => (i === d ? n : 1));
    record(
      op,
      [x],
      [values],
      ([g], [idx]) =>
        tidy(() => {
          if (!g) return [null];
          const pos = arange(n, undefined, 1, { device: g.device }).reshape(posShape);
          return [where(eq(pos, idx!.reshape(keep)), g.reshape(keep), 0)];
        }),
      [indices],
    );
  } else {
    record(
      op,
      [x],
      [values],
      ([g], [xs, v]) =>
        tidy(() => {
          if (!g) return [null];
          const mask = eq(xs!, v!.reshape(keep));
          const count = dispatch1('sum', [mask], { dims, keepdim: true });
          return [where(mask, div(g.reshape(keep), count), 0)];
        }),
      [x, values],
    );
  }
  indices.dispose();
  return values;
}

/**
 * Index of the maximum along `dim` (int32; first index on ties; NaN counts as maximal).
 * Without `dim`, the index into the flattened tensor. Not differentiable.
 */
export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  checkTensor('argmax', x);
  if (dim !== undefined && typeof dim !== 'number') {
    throw new Error(`argmax: dim must be a number or omitted, got ${Array.isArray(dim) ? fmt(dim) : typeof dim}`);
  }
  if (dim === undefined) {
    if (x.numel === 0) throw new Error(`argmax: cannot take the argmax of an empty tensor (shape ${fmt(x.shape)})`);
    return tidy(() => {
      const [, idx] = dispatch('max', [x.reshape(x.numel)], { dims: [0], keepdim: false });
      return keepdim ? idx!.reshape(x.shape.map(() => 1)) : idx!;
    });
  }
  const dims = resolveDims('argmax', x, dim);
  checkNonEmpty('argmax', x, dims);
  const [values, idx] = dispatch('max', [x], { dims, keepdim });
  values!.dispose();
  return idx!;
}

/**
 * `log(sum(exp(x)))` over `dim` (a dimension or a list), computed stably (shifted by the
 * maximum). Differentiable: `g * exp(x - out)`.
 */
export function logsumexp(x: Tensor, dim: number | readonly number[], keepdim = false): Tensor {
  checkTensor('logsumexp', x);
  checkFloat('logsumexp', x);
  if (dim === undefined || dim === null) throw new Error('logsumexp: dim is required (a dimension or a list of them)');
  const dims = resolveDims('logsumexp', x, dim);
  const out = dispatch1('logsumexp', [x], { dims, keepdim });
  const keep = keptShape(x.shape, dims);
  record(
    'logsumexp',
    [x],
    [out],
    ([g], [xs, y]) => tidy(() => [g ? mul(g.reshape(keep), exp(sub(xs!, y!.reshape(keep)))) : null]),
    [x, out],
  );
  return out;
}

/** Softmax along `dim`, computed stably. Differentiable. */
export function softmax(x: Tensor, dim: number): Tensor {
  return softmaxLike('softmax', x, dim);
}

/** `log(softmax(x))` along `dim`, computed stably. Differentiable. */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return softmaxLike('logSoftmax', x, dim);
}

function softmaxLike(op: 'softmax' | 'logSoftmax', x: Tensor, dim: number): Tensor {
  checkTensor(op, x);
  checkFloat(op, x);
  const d = normDim(op, dim, x.shape);
  const out = dispatch1(op, [x], { dim: d });
  record(op, [x], [out], ([g], [y]) => [g ? dispatch1(`${op}Backward`, [g, y!], { dim: d }) : null], [out]);
  return out;
}

/**
 * Sum `x` down to `shape`, which must broadcast to `x.shape` (the gradient of a broadcast):
 * leading dimensions are summed away, size-1 dimensions of `shape` are summed over.
 * Differentiable (the gradient is broadcast back).
 */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('sumTo', x);
  let ok = Array.isArray(shape) && shape.length <= x.ndim;
  if (ok) {
    try {
      ok = sameShape(broadcastShapes(shape, x.shape), x.shape);
    } catch {
      ok = false;
    }
  }
  if (!ok)
    throw new Error(`sumTo: cannot sum shape ${fmt(x.shape)} down to ${fmt(shape)} (it does not broadcast to it)`);
  if (sameShape(shape, x.shape)) return x.reshape(shape);
  const out = dispatch1('sumTo', [x], { shape });
  const inShape = x.shape;
  record('sumTo', [x], [out], ([g]) => [g ? expand(g, inShape) : null]);
  return out;
}
