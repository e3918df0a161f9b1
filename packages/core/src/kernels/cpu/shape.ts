// Reference CPU kernels for shape and indexing ops. Pure data movement works on the raw
// storage arrays (bit patterns for halves, so it is exact for every dtype); only scatterAdd
// does arithmetic, in the compute precision.
import type { RawArray } from '../../dtype.js';
import type { Registry } from '../../registry.js';
import { broadcastShapes, numelOf, sameShape, stridesOf } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { output, read, readInt } from './util.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

/** A new CPU tensor and its raw array. */
function alloc(shape: readonly number[], like: Tensor): { t: Tensor; raw: RawArray } {
  const t = Tensor.empty(shape, like.dtype, 'cpu');
  return { t, raw: t.raw() };
}

/**
 * Copy the elements of `src` seen through (`shape`, `strides`, `offset`) into `dst` in
 * row-major order. Strides may be 0 (broadcast) or permuted.
 */
export function stridedCopy(
  src: RawArray,
  offset: number,
  dst: RawArray,
  shape: readonly number[],
  strides: readonly number[],
): void {
  const total = numelOf(shape);
  if (total === 0) return;
  const n = shape.length;
  if (n === 0) {
    dst[0] = src[offset]!;
    return;
  }
  const inner = shape[n - 1]!;
  const is = strides[n - 1]!;
  const outer = total / inner;
  const idx = new Array<number>(n).fill(0);
  let base = offset;
  let o = 0;
  for (let r = 0; r < outer; r++) {
    if (is === 1) {
      for (let j = 0; j < inner; j++) dst[o++] = src[base + j]!;
    } else {
      for (let j = 0, p = base; j < inner; j++, p += is) dst[o++] = src[p]!;
    }
    for (let d = n - 2; d >= 0; d--) {
      base += strides[d]!;
      if (++idx[d]! < shape[d]!) break;
      base -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

/**
 * Storage offsets (in `strides`) of every position of `shape`, row-major, ignoring dimension
 * `skipDim`. Int32 when they fit, so index arithmetic stays integer.
 */
function offsetsOf(
  shape: readonly number[],
  strides: readonly number[],
  skipDim: number,
  limit: number,
): Int32Array | Float64Array {
  const total = numelOf(shape);
  const out = limit < 2 ** 31 ? new Int32Array(total) : new Float64Array(total);
  if (total === 0) return out;
  const n = shape.length;
  const idx = new Array<number>(n).fill(0);
  let base = 0;
  for (let p = 0; p < total; p++) {
    out[p] = base;
    for (let d = n - 1; d >= 0; d--) {
      const st = d === skipDim ? 0 : strides[d]!;
      base += st;
      if (++idx[d]! < shape[d]!) break;
      base -= st * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function checkIndex(op: string, v: number, p: number, dim: number, size: number): void {
  if (v < 0 || v >= size) {
    throw new Error(`${op}: index ${v} at position ${p} is out of range for dimension ${dim} of size ${size}`);
  }
}

/** Register permute, expand, cat, narrow, indexSelect, gather, scatterAdd, maskedScatter, maskedSelect. */
export function registerShapeKernels(r: Registry, source: string): void {
  const k = (op: string, fn: (inputs: Tensor[], attrs: any) => Tensor | Tensor[]) =>
    r.registerKernel('cpu', op, fn, { priority: 0, source });

  k('permute', ([x], { dims }: { dims: number[] }) => {
    const strides = stridesOf(x!.shape);
    const { t, raw } = alloc(
      dims.map((d) => x!.shape[d]!),
      x!,
    );
    stridedCopy(
      x!.raw(),
      0,
      raw,
      t.shape,
      dims.map((d) => strides[d]!),
    );
    return t;
  });

  k('expand', ([x], { shape }: { shape: number[] }) => {
    const lead = shape.length - x!.ndim;
    const xs = stridesOf(x!.shape);
    const strides = shape.map((s, i) => {
      if (i < lead) return 0;
      const d = x!.shape[i - lead]!;
      if (d !== s && d !== 1) throw new Error(`expand: cannot expand ${fmt(x!.shape)} to ${fmt(shape)}`);
      return d === 1 ? 0 : xs[i - lead]!;
    });
    const { t, raw } = alloc(shape, x!);
    stridedCopy(x!.raw(), 0, raw, shape, strides);
    return t;
  });

  k('narrow', ([x], { dim, start, length }: { dim: number; start: number; length: number }) => {
    const strides = stridesOf(x!.shape);
    const shape = [...x!.shape];
    shape[dim] = length;
    const { t, raw } = alloc(shape, x!);
    stridedCopy(x!.raw(), start * strides[dim]!, raw, shape, strides);
    return t;
  });

  k('cat', (xs, { dim }: { dim: number }) => {
    const first = xs[0]!;
    const shape = [...first.shape];
    shape[dim] = xs.reduce((a, t) => a + t.shape[dim]!, 0);
    const { t, raw } = alloc(shape, first);
    const outer = numelOf(shape.slice(0, dim));
    const inner = numelOf(shape.slice(dim + 1));
    const row = shape[dim]! * inner;
    let off = 0;
    for (const x of xs) {
      const chunk = x.shape[dim]! * inner;
      const src = x.raw();
      for (let o = 0; o < outer; o++) raw.set(src.subarray(o * chunk, (o + 1) * chunk) as never, o * row + off);
      off += chunk;
    }
    return t;
  });

  k('indexSelect', ([x, index], { dim }: { dim: number }) => {
    const idx = readInt(index!, 'indexSelect');
    const size = x!.shape[dim]!;
    for (let i = 0; i < idx.length; i++) checkIndex('indexSelect', idx[i]!, i, dim, size);
    const shape = [...x!.shape];
    shape[dim] = idx.length;
    const { t, raw } = alloc(shape, x!);
    const src = x!.raw();
    const outer = numelOf(shape.slice(0, dim));
    const inner = numelOf(shape.slice(dim + 1));
    let o = 0;
    for (let r = 0; r < outer; r++) {
      const base = r * size * inner;
      for (let i = 0; i < idx.length; i++, o += inner) {
        const from = base + idx[i]! * inner;
        raw.set(src.subarray(from, from + inner) as never, o);
      }
    }
    return t;
  });

  k('gather', ([x, index], { dim }: { dim: number }) => {
    const idx = readInt(index!, 'gather');
    const xs = stridesOf(x!.shape);
    const size = x!.shape[dim]!;
    for (let p = 0; p < idx.length; p++) checkIndex('gather', idx[p]!, p, dim, size); // before allocating: no leak
    const offs = offsetsOf(index!.shape, xs, dim, x!.numel);
    const { t, raw } = alloc(index!.shape, x!);
    const src = x!.raw();
    const sd = xs[dim]!;
    for (let p = 0; p < idx.length; p++) raw[p] = src[offs[p]! + idx[p]! * sd]!;
    return t;
  });

  k('scatterAdd', ([x, index, src], { dim }: { dim: number }) => {
    const idx = readInt(index!, 'scatterAdd');
    const size = x!.shape[dim]!;
    for (let p = 0; p < idx.length; p++) checkIndex('scatterAdd', idx[p]!, p, dim, size);
    const xs = stridesOf(x!.shape);
    const xOffs = offsetsOf(index!.shape, xs, dim, x!.numel);
    const sOffs = offsetsOf(index!.shape, stridesOf(src!.shape), -1, src!.numel);
    const o = output(x!.shape, x!.dtype);
    const out = o.data;
    out.set(read(x!));
    const s = read(src!);
    const sd = xs[dim]!;
    for (let p = 0; p < idx.length; p++) {
      const at = xOffs[p]! + idx[p]! * sd;
      out[at] = out[at]! + s[sOffs[p]!]!;
    }
    return o.done();
  });

  k('maskedScatter', ([x, mask, src]) => {
    if (!sameShape(mask!.shape, x!.shape)) {
      throw new Error(`maskedScatter: mask ${fmt(mask!.shape)} must have x's shape ${fmt(x!.shape)}`);
    }
    const m = mask!.raw();
    let count = 0;
    for (let i = 0; i < m.length; i++) if (m[i]) count++;
    if (count > src!.numel) {
      throw new Error(
        `maskedScatter: mask has ${count} true elements but source ${fmt(src!.shape)} has only ${src!.numel}`,
      );
    }
    const { t, raw } = alloc(x!.shape, x!);
    raw.set(x!.raw() as never);
    const s = src!.raw();
    for (let i = 0, j = 0; i < m.length; i++) if (m[i]) raw[i] = s[j++]!;
    return t;
  });

  k('maskedSelect', ([x, mask]) => {
    const shape = broadcastShapes(x!.shape, mask!.shape, 'maskedSelect');
    if (!sameShape(shape, x!.shape) || !sameShape(shape, mask!.shape)) {
      throw new Error(`maskedSelect: kernel expects x ${fmt(x!.shape)} and mask ${fmt(mask!.shape)} of one shape`);
    }
    const m = mask!.raw();
    let count = 0;
    for (let i = 0; i < m.length; i++) if (m[i]) count++;
    const { t, raw } = alloc([count], x!);
    const src = x!.raw();
    for (let i = 0, j = 0; i < m.length; i++) if (m[i]) raw[j++] = src[i]!;
    return t;
  });
}
