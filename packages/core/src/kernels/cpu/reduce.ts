// Reference CPU kernels for reductions over any set of dimensions (sum, mean, max/min with
// indices, logsumexp, sumTo) and for softmax / logSoftmax and their backward kernels.
// Accumulation is in float64; outputs are rounded to the input dtype.
import { type DType, isFloating, promoteTypes } from '../../dtype.js';
import type { Registry } from '../../registry.js';
import { broadcastShapes, numelOf, sameShape, stridesOf } from '../../shape.js';
import type { Tensor } from '../../tensor.js';
import { forEachRun, valuesAs } from './elementwise.js';
import { type ComputeArray, output, read } from './util.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

/** How the elements of a tensor map onto the output of a reduction over `dims`. */
interface ReducePlan {
  /** Output shape with reduced dimensions kept as 1. */
  keepShape: number[];
  /** Output shape with reduced dimensions removed. */
  dropShape: number[];
  /** Per input dimension: stride in the output (0 for reduced dimensions). */
  outStrides: number[];
  /** Per input dimension: stride in the reduced sub-space, row-major (0 for kept dimensions). */
  redStrides: number[];
  /** Number of elements reduced into each output element. */
  count: number;
}

/** Plan a reduction of `shape` over `dims` (normalised, unique; every dim when `dims` is undefined). */
export function planReduce(op: string, shape: readonly number[], dims: readonly number[] | undefined): ReducePlan {
  const n = shape.length;
  const set = new Set(dims ?? shape.map((_, i) => i));
  for (const d of set) {
    if (!Number.isInteger(d) || d < 0 || d >= n) {
      throw new Error(`${op}: dim ${d} out of range for shape ${fmt(shape)} (kernel dims must be normalised)`);
    }
  }
  const keepShape = shape.map((s, i) => (set.has(i) ? 1 : s));
  const dropShape = shape.filter((_, i) => !set.has(i));
  const keepStrides = stridesOf(keepShape);
  const outStrides = shape.map((_, i) => (set.has(i) ? 0 : keepStrides[i]!));
  const redShape = shape.filter((_, i) => set.has(i));
  const redStridesDense = stridesOf(redShape);
  const redStrides = new Array<number>(n).fill(0);
  let j = 0;
  for (let i = 0; i < n; i++) if (set.has(i)) redStrides[i] = redStridesDense[j++]!;
  return { keepShape, dropShape, outStrides, redStrides, count: numelOf(redShape) };
}

/**
 * Visit every element of `x` (shape `shape`) with its output offset and its position in the
 * reduced sub-space: `visit(i, o, r)` for runs of the last dimension.
 */
function walk(
  shape: readonly number[],
  plan: ReducePlan,
  visit: (i0: number, o0: number, r0: number, len: number, oStep: number, rStep: number) => void,
): void {
  const last = shape.length - 1;
  const oStep = last >= 0 ? plan.outStrides[last]! : 0;
  const rStep = last >= 0 ? plan.redStrides[last]! : 0;
  forEachRun(shape, [plan.outStrides, plan.redStrides], (i0, offs, len) =>
    visit(i0, offs[0]!, offs[1]!, len, oStep, rStep),
  );
}

/** Float64 sums of `x` over the plan's reduced dimensions. */
function sums(xv: ComputeArray, shape: readonly number[], plan: ReducePlan): Float64Array {
  const acc = new Float64Array(numelOf(plan.keepShape));
  walk(shape, plan, (i0, o0, _r0, len, oStep) => {
    if (oStep === 0) {
      let s = 0;
      for (let j = 0; j < len; j++) s += xv[i0 + j]!;
      acc[o0] += s;
    } else {
      for (let j = 0; j < len; j++) acc[o0 + j] += xv[i0 + j]!;
    }
  });
  return acc;
}

/** Maximum (or minimum) and the first position of it in the reduced sub-space; NaN wins. */
function extremes(
  op: string,
  xv: ComputeArray,
  shape: readonly number[],
  plan: ReducePlan,
  isMax: boolean,
): { values: Float64Array; index: Int32Array } {
  const m = numelOf(plan.keepShape);
  if (plan.count === 0 && m > 0) {
    throw new Error(`${op}: cannot reduce over a zero-size dimension (shape ${fmt(shape)})`);
  }
  const values = new Float64Array(m);
  const index = new Int32Array(m).fill(-1);
  walk(shape, plan, (i0, o0, r0, len, oStep, rStep) => {
    for (let j = 0; j < len; j++) {
      const v = xv[i0 + j]!;
      const o = o0 + j * oStep;
      const best = values[o]!;
      if (index[o]! < 0 || (isMax ? v > best : v < best) || (Number.isNaN(v) && !Number.isNaN(best))) {
        values[o] = v;
        index[o] = r0 + j * rStep;
      }
    }
  });
  return { values, index };
}

/** `[outer, size, inner]` around dimension `dim`. */
function around(shape: readonly number[], dim: number): [number, number, number] {
  return [numelOf(shape.slice(0, dim)), shape[dim] ?? 1, numelOf(shape.slice(dim + 1))];
}

function checkDim(op: string, shape: readonly number[], dim: unknown): number {
  const n = Math.max(shape.length, 1);
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0 || dim >= n) {
    throw new Error(`${op}: dim ${String(dim)} out of range for shape ${fmt(shape)} (kernel dims must be normalised)`);
  }
  return dim;
}

function checkFloat(op: string, x: Tensor): void {
  if (!isFloating(x.dtype)) throw new Error(`${op}: expected a floating-point tensor, got ${x.dtype} ${fmt(x.shape)}`);
}

/** Dtype of a sum: floats keep theirs, integers and bool sum to int32. */
function sumDType(dtype: DType): DType {
  return isFloating(dtype) ? dtype : 'int32';
}

interface ReduceAttrs {
  /** Normalised dimensions to reduce (every dimension when omitted). */
  dims?: number[];
  /** Keep reduced dimensions as size 1. */
  keepdim?: boolean;
  /** Output dtype (sum only). */
  dtype?: DType;
}

/**
 * Register the reduction kernels on the CPU backend: `sum mean max min logsumexp` (`[x]`,
 * `{ dims, keepdim }`; `max`/`min` return `[values, int32 indices into the reduced sub-space]`),
 * `sumTo` (`[x]`, `{ shape }`), `softmax logSoftmax` (`[x]`, `{ dim }`) and
 * `softmaxBackward logSoftmaxBackward` (`[grad, output]`, `{ dim }`).
 */
export function registerReduceKernels(r: Registry, source: string): void {
  const k = (op: string, fn: (inputs: Tensor[], attrs: any) => Tensor | Tensor[]) =>
    r.registerKernel('cpu', op, fn, { priority: 0, source });

  k('sum', ([x], { dims, keepdim = false, dtype }: ReduceAttrs) => {
    const plan = planReduce('sum', x!.shape, dims);
    const o = output(keepdim ? plan.keepShape : plan.dropShape, dtype ?? sumDType(x!.dtype));
    o.data.set(sums(read(x!), x!.shape, plan));
    return o.done();
  });

  k('mean', ([x], { dims, keepdim = false }: ReduceAttrs) => {
    checkFloat('mean', x!);
    const plan = planReduce('mean', x!.shape, dims);
    const acc = sums(read(x!), x!.shape, plan);
    const o = output(keepdim ? plan.keepShape : plan.dropShape, x!.dtype);
    for (let i = 0; i < acc.length; i++) o.data[i] = acc[i]! / plan.count;
    return o.done();
  });

  for (const [name, isMax] of [
    ['max', true],
    ['min', false],
  ] as const) {
    k(name, ([x], { dims, keepdim = false }: ReduceAttrs) => {
      const plan = planReduce(name, x!.shape, dims);
      const { values, index } = extremes(name, read(x!), x!.shape, plan, isMax);
      const shape = keepdim ? plan.keepShape : plan.dropShape;
      const v = output(shape, x!.dtype);
      v.data.set(values);
      const idx = output(shape, 'int32');
      idx.data.set(index);
      return [v.done(), idx.done()];
    });
  }

  k('logsumexp', ([x], { dims, keepdim = false }: ReduceAttrs) => {
    checkFloat('logsumexp', x!);
    const plan = planReduce('logsumexp', x!.shape, dims);
    const xv = read(x!);
    const m = numelOf(plan.keepShape);
    const shift = new Float64Array(m).fill(Number.NEGATIVE_INFINITY);
    walk(x!.shape, plan, (i0, o0, _r0, len, oStep) => {
      for (let j = 0; j < len; j++) {
        const o = o0 + j * oStep;
        const v = xv[i0 + j]!;
        if (v > shift[o]! || Number.isNaN(v)) shift[o] = v;
      }
    });
    for (let i = 0; i < m; i++)
      if (shift[i] === Number.POSITIVE_INFINITY || shift[i] === Number.NEGATIVE_INFINITY) shift[i] = 0;
    const acc = new Float64Array(m);
    walk(x!.shape, plan, (i0, o0, _r0, len, oStep) => {
      for (let j = 0; j < len; j++) {
        const o = o0 + j * oStep;
        acc[o] += Math.exp(xv[i0 + j]! - shift[o]!);
      }
    });
    const o = output(keepdim ? plan.keepShape : plan.dropShape, x!.dtype);
    for (let i = 0; i < m; i++) o.data[i] = Math.log(acc[i]!) + shift[i]!;
    return o.done();
  });

  k('sumTo', ([x], { shape }: { shape: readonly number[] }) => {
    const xs = x!.shape;
    let ok = shape.length <= xs.length;
    if (ok) {
      try {
        ok = sameShape(broadcastShapes(shape, xs), xs);
      } catch {
        ok = false;
      }
    }
    if (!ok) throw new Error(`sumTo: cannot sum shape ${fmt(xs)} down to ${fmt(shape)} (it does not broadcast to it)`);
    const lead = xs.length - shape.length;
    const dims: number[] = [];
    for (let i = 0; i < xs.length; i++) if (i < lead || (shape[i - lead] === 1 && xs[i] !== 1)) dims.push(i);
    const plan = planReduce('sumTo', xs, dims);
    const o = output(shape, x!.dtype);
    o.data.set(sums(read(x!), xs, plan));
    return o.done();
  });

  const softmaxLike =
    (name: string, log: boolean) =>
    ([x]: Tensor[], { dim }: { dim: number }) => {
      checkFloat(name, x!);
      const [outer, size, inner] = around(x!.shape, checkDim(name, x!.shape, dim));
      const xv = read(x!);
      const o = output(x!.shape, x!.dtype);
      const d = o.data;
      const e = new Float64Array(size);
      for (let a = 0; a < outer; a++) {
        for (let c = 0; c < inner; c++) {
          const base = a * size * inner + c;
          let m = Number.NEGATIVE_INFINITY;
          for (let j = 0; j < size; j++) {
            const v = xv[base + j * inner]!;
            if (v > m || Number.isNaN(v)) m = v;
          }
          let s = 0;
          for (let j = 0; j < size; j++) {
            e[j] = Math.exp(xv[base + j * inner]! - m);
            s += e[j]!;
          }
          if (log) {
            const ls = Math.log(s);
            for (let j = 0; j < size; j++) d[base + j * inner] = xv[base + j * inner]! - m - ls;
          } else {
            for (let j = 0; j < size; j++) d[base + j * inner] = e[j]! / s;
          }
        }
      }
      return o.done();
    };
  k('softmax', softmaxLike('softmax', false));
  k('logSoftmax', softmaxLike('logSoftmax', true));

  const softmaxBackward =
    (name: string, log: boolean) =>
    ([g, y]: Tensor[], { dim, dtype }: { dim: number; dtype?: DType }) => {
      if (!sameShape(g!.shape, y!.shape)) {
        throw new Error(`${name}: grad ${fmt(g!.shape)} and output ${fmt(y!.shape)} differ in shape`);
      }
      const out = dtype ?? promoteTypes(g!.dtype, y!.dtype);
      const [outer, size, inner] = around(y!.shape, checkDim(name, y!.shape, dim));
      const gv = valuesAs(g!, out);
      const yv = valuesAs(y!, out);
      const o = output(y!.shape, out);
      const d = o.data;
      for (let a = 0; a < outer; a++) {
        for (let c = 0; c < inner; c++) {
          const base = a * size * inner + c;
          let s = 0;
          for (let j = 0; j < size; j++) {
            const i = base + j * inner;
            s += log ? gv[i]! : gv[i]! * yv[i]!;
          }
          for (let j = 0; j < size; j++) {
            const i = base + j * inner;
            d[i] = log ? gv[i]! - Math.exp(yv[i]!) * s : yv[i]! * (gv[i]! - s);
          }
        }
      }
      return o.done();
    };
  k('softmaxBackward', softmaxBackward('softmaxBackward', false));
  k('logSoftmaxBackward', softmaxBackward('logSoftmaxBackward', true));
}
