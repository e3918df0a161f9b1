// Native data-movement kernels: permute, expand, narrow, cat, indexSelect, gather, maskedSelect, maskedScatter
// (every dtype, bit-exact: elements move as 1/2/4/8-byte words) and scatterAdd (float32/float64, summed in the
// reference's order). An out-of-range index or a short source makes the kernel step aside, so that core's reference
// kernel reports it with its own message.
import { numelOf, stridesOf, Tensor } from '@omnitrain/core';
import type { NativeKernel } from './bf16.js';
import type { NativeAddon } from './native.js';

/** Most dims the native strided walk takes after merging (native/strided.h kMaxDims). */
const MAX_DIMS = 16;

/**
 * A read of `shape` at `strides` with size-1 dims dropped and neighbours merged where the source is contiguous
 * across them (so that runs are as long as possible); at least one dim. `null` when more than {@link MAX_DIMS}
 * dims remain.
 */
export function copyPlan(
  shape: readonly number[],
  strides: readonly number[],
): { shape: Float64Array; strides: Float64Array } | null {
  const dims: number[] = [];
  const st: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const p = dims.length - 1;
    if (p >= 0 && st[p] === strides[d]! * shape[d]!) {
      dims[p]! *= shape[d]!;
      st[p] = strides[d]!;
      continue;
    }
    dims.push(shape[d]!);
    st.push(strides[d]!);
  }
  if (dims.length === 0) {
    dims.push(1);
    st.push(1);
  }
  if (dims.length > MAX_DIMS) return null;
  return { shape: Float64Array.from(dims), strides: Float64Array.from(st) };
}

/** A new CPU tensor of x's dtype whose every element the kernel writes. */
const outputLike = (x: Tensor, shape: readonly number[]) => Tensor.uninitialized(shape, x.dtype, 'cpu');

/** out (shape) = src read at `strides` from element `offset` of x's storage; null when the walk does not fit. */
function stridedRead(
  n: NativeAddon,
  x: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): Tensor | null {
  const out = outputLike(x, shape);
  if (out.numel === 0) return out;
  const plan = copyPlan(shape, strides);
  if (!plan || !n.stridedCopy(x.raw().subarray(offset), out.raw(), plan.shape, plan.strides)) {
    out.dispose();
    return null;
  }
  return out;
}

const permute: NativeKernel = (n, [x], { dims }: { dims: number[] }) => {
  if (!x || !Array.isArray(dims) || dims.length !== x.ndim) return null;
  if (new Set(dims).size !== dims.length || dims.some((d) => !Number.isInteger(d) || d < 0 || d >= x.ndim)) return null;
  const st = stridesOf(x.shape);
  return stridedRead(
    n,
    x,
    dims.map((d) => x.shape[d]!),
    dims.map((d) => st[d]!),
  );
};

const expand: NativeKernel = (n, [x], { shape }: { shape: number[] }) => {
  if (!x || !Array.isArray(shape) || shape.length < x.ndim) return null;
  const lead = shape.length - x.ndim;
  const xs = stridesOf(x.shape);
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (i < lead) {
      strides.push(0);
      continue;
    }
    const d = x.shape[i - lead]!;
    if (d !== shape[i] && d !== 1) return null; // not an expansion: the reference reports it
    strides.push(d === 1 ? 0 : xs[i - lead]!);
  }
  return stridedRead(n, x, shape, strides);
};

const narrow: NativeKernel = (n, [x], { dim, start, length }: { dim: number; start: number; length: number }) => {
  if (!x || !Number.isInteger(dim) || dim < 0 || dim >= x.ndim) return null;
  if (!(start >= 0 && length >= 0 && start + length <= x.shape[dim]!)) return null;
  const strides = stridesOf(x.shape);
  const shape = [...x.shape];
  shape[dim] = length;
  return stridedRead(n, x, shape, strides, start * strides[dim]!);
};

const cat: NativeKernel = (n, xs, { dim }: { dim: number }) => {
  const first = xs[0];
  if (!first || !Number.isInteger(dim) || dim < 0 || dim >= first.ndim) return null;
  for (const x of xs) {
    if (x.dtype !== first.dtype || x.ndim !== first.ndim) return null;
    if (x.shape.some((s, i) => i !== dim && s !== first.shape[i])) return null;
  }
  const shape = [...first.shape];
  shape[dim] = xs.reduce((a, t) => a + t.shape[dim]!, 0);
  const out = outputLike(first, shape);
  const outer = numelOf(shape.slice(0, dim));
  const inner = numelOf(shape.slice(dim + 1));
  const row = shape[dim]! * inner;
  let off = 0;
  for (const x of xs) {
    const chunk = x.shape[dim]! * inner;
    if (chunk > 0 && outer > 0) n.catCopy(x.raw(), out.raw(), outer, chunk, row, off);
    off += chunk;
  }
  return out;
};

const indexSelect: NativeKernel = (n, [x, index], { dim }: { dim: number }) => {
  if (!x || index?.dtype !== 'int32' || index.ndim > 1 || !Number.isInteger(dim) || dim < 0 || dim >= x.ndim) {
    return null;
  }
  const shape = [...x.shape];
  shape[dim] = index.numel;
  const out = outputLike(x, shape);
  if (out.numel === 0) return out;
  const outer = numelOf(x.shape.slice(0, dim));
  const inner = numelOf(x.shape.slice(dim + 1));
  const r = n.indexSelect(x.raw(), index.raw() as Int32Array, out.raw(), outer, x.shape[dim]!, index.numel, inner);
  if (r === -1) return out;
  out.dispose();
  return null;
};

/** index (int32) has x's rank and is no larger than `limit` outside `dim` (the op's own checks, repeated). */
const fitsIndex = (index: Tensor, limit: Tensor, dim: number, alsoDim: boolean) =>
  index.ndim === limit.ndim && index.shape.every((s, k) => (k === dim && !alsoDim) || s <= limit.shape[k]!);

const gather: NativeKernel = (n, [x, index], { dim }: { dim: number }) => {
  if (!x || index?.dtype !== 'int32' || !Number.isInteger(dim) || dim < 0 || dim >= x.ndim) return null;
  if (!fitsIndex(index, x, dim, false) || index.ndim > MAX_DIMS) return null;
  const out = outputLike(x, index.shape);
  if (out.numel === 0) return out;
  const st = stridesOf(x.shape);
  const base = st.map((s, k) => (k === dim ? 0 : s));
  const r = n.gather(
    x.raw(),
    index.raw() as Int32Array,
    out.raw(),
    Float64Array.from(index.shape),
    Float64Array.from(base),
    st[dim]!,
    x.shape[dim]!,
  );
  if (r === -1) return out;
  out.dispose();
  return null;
};

const scatterAdd: NativeKernel = (n, [x, index, src], { dim }: { dim: number }) => {
  if (!x || !src || index?.dtype !== 'int32' || !Number.isInteger(dim) || dim < 0 || dim >= x.ndim) return null;
  if ((x.dtype !== 'float32' && x.dtype !== 'float64') || src.dtype !== x.dtype) return null;
  if (!fitsIndex(index, x, dim, false) || !fitsIndex(index, src, dim, true)) return null;
  const out = outputLike(x, x.shape);
  if (out.numel === 0) return out;
  out.raw().set(x.raw() as never);
  if (index.numel === 0) return out;
  const r = n.scatterAdd(
    out.raw() as Float32Array | Float64Array,
    index.raw() as Int32Array,
    src.raw() as Float32Array | Float64Array,
    Float64Array.from(index.shape),
    dim,
    Float64Array.from(stridesOf(x.shape)),
    Float64Array.from(stridesOf(src.shape)),
    x.shape[dim]!,
  );
  if (r === -1) return out;
  out.dispose();
  return null;
};

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((s, i) => s === b[i]);

const maskedSelect: NativeKernel = (n, [x, mask]) => {
  if (!x || mask?.dtype !== 'bool' || !sameShape(x.shape, mask.shape)) return null;
  const m = mask.raw() as Uint8Array;
  const out = outputLike(x, [x.numel === 0 ? 0 : n.maskCount(m)]);
  if (out.numel > 0 && !n.maskedSelect(x.raw(), m, out.raw())) {
    out.dispose();
    return null;
  }
  return out;
};

const maskedScatter: NativeKernel = (n, [x, mask, src]) => {
  if (!x || !src || src.dtype !== x.dtype || mask?.dtype !== 'bool' || !sameShape(x.shape, mask.shape)) return null;
  const out = outputLike(x, x.shape);
  if (out.numel === 0) return out;
  if (n.maskedScatter(x.raw(), mask.raw() as Uint8Array, src.raw(), out.raw()) === -1) return out;
  out.dispose(); // src too short (the reference reports it) or an element size the addon does not take
  return null;
};

/** The data-movement kernels by op name (registered with the others in kernels.ts). */
export const MOVEMENT_KERNELS: Readonly<Record<string, NativeKernel>> = {
  permute,
  expand,
  narrow,
  cat,
  indexSelect,
  gather,
  scatterAdd,
  maskedSelect,
  maskedScatter,
};
