// Shape and indexing ops: permute, transpose, contiguous, expand, cat, split, stack, narrow,
// indexSelect, gather, scatterAdd, maskedScatter, maskedSelect. PyTorch semantics.
import { noGrad } from '../autograd/grad-mode.js';
import { record } from '../autograd/node.js';
import { zeros } from '../creation.js';
import { tidy } from '../memory.js';
import { broadcastShapes, normalizeDim, numelOf, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch1 } from './dispatch.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

function withSize(shape: readonly number[], dim: number, size: number): number[] {
  const s = [...shape];
  s[dim] = size;
  return s;
}

function requireInt32(op: string, what: string, t: Tensor): void {
  if (t.dtype !== 'int32') throw new Error(`${op}: ${what} must be int32, got ${t.dtype} ${fmt(t.shape)}`);
}

function requireSameDtype(op: string, a: Tensor, aName: string, b: Tensor, bName: string): void {
  if (a.dtype !== b.dtype) {
    throw new Error(`${op}: ${aName} is ${a.dtype} but ${bName} is ${b.dtype}; cast one of them first`);
  }
}

/** A view of `x` with the same shape (differentiable, shares storage). */
function alias(x: Tensor): Tensor {
  return x.reshape(x.shape);
}

/** `g` summed down to `shape` (the gradient of a broadcast). */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  return sameShape(g.shape, shape) ? g : dispatch1('sumTo', [g], { shape });
}

/**
 * Reorder dimensions: output dimension `i` is input dimension `dims[i]` (negative dims count
 * from the end). Like `torch.permute`, but since tensors are always contiguous the result is
 * a copy, except when only size-1 dimensions move (then it is a view sharing storage).
 */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const n = x.ndim;
  if (dims.length !== n) {
    throw new Error(`permute: dims ${fmt(dims)} has ${dims.length} entries for a tensor of rank ${n} ${fmt(x.shape)}`);
  }
  const perm = dims.map((d) => normalizeDim(d, n, 'permute'));
  if (new Set(perm).size !== n) throw new Error(`permute: dims ${fmt(dims)} is not a permutation of 0..${n - 1}`);
  const outShape = perm.map((d) => x.shape[d]!);
  // Only size-1 dimensions change place: the element order is unchanged, so a view will do.
  const moved = perm.filter((d) => x.shape[d] !== 1);
  if (moved.every((d, i) => i === 0 || d > moved[i - 1]!)) return x.reshape(outShape);
  const out = dispatch1('permute', [x], { dims: perm });
  const inverse = new Array<number>(n);
  perm.forEach((d, i) => {
    inverse[d] = i;
  });
  record('permute', [x], [out], ([g]) => [g ? permute(g, inverse) : null]);
  return out;
}

/** Swap dimensions `dim0` and `dim1` (a copy unless only size-1 dimensions move). Differentiable. */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const n = x.ndim;
  const a = normalizeDim(dim0, n, 'transpose');
  const b = normalizeDim(dim1, n, 'transpose');
  const perm = Array.from({ length: n }, (_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/**
 * `x` in contiguous layout. Every tensor already is contiguous, so, as `torch.contiguous` on a
 * contiguous tensor, this returns `x`'s data without copying: a differentiable view sharing
 * storage (writes through one are seen by the other; use `clone` for a private copy).
 */
export function contiguous(x: Tensor): Tensor {
  return alias(x);
}

/**
 * Broadcast `x` to `shape` (`torch.expand` / `broadcast_to`): size-1 dimensions repeat, new
 * leading dimensions are added, `-1` keeps a dimension's size. The result is materialised
 * (a view when no element repeats). The gradient sums over the broadcast dimensions.
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const n = shape.length;
  if (n < x.ndim) {
    throw new Error(`expand: target ${fmt(shape)} has fewer dimensions than the tensor ${fmt(x.shape)}`);
  }
  const lead = n - x.ndim;
  const target = shape.map((s, i) => {
    const xs = i >= lead ? x.shape[i - lead]! : undefined;
    if (s === -1) {
      if (xs === undefined)
        throw new Error(`expand: -1 is not allowed for the new leading dimension ${i} in ${fmt(shape)}`);
      return xs;
    }
    if (!Number.isInteger(s) || s < 0) throw new Error(`expand: invalid size ${s} in ${fmt(shape)}`);
    if (xs !== undefined && xs !== s && xs !== 1) {
      throw new Error(
        `expand: cannot expand ${fmt(x.shape)} to ${fmt(shape)}: dimension ${i} has size ${xs}, expected 1 or ${s}`,
      );
    }
    return s;
  });
  if (numelOf(target) === x.numel) return x.reshape(target);
  const out = dispatch1('expand', [x], { shape: target });
  const inShape = x.shape;
  record('expand', [x], [out], ([g]) => [g ? reduceTo(g, inShape) : null]);
  return out;
}

/**
 * Concatenate tensors along `dim` (`torch.cat`). All must have the same rank, dtype and device
 * and equal sizes except along `dim`. Differentiable for every input. (A list of one tensor
 * gives a view of it, not a copy.)
 */
export function cat(xs: readonly Tensor[], dim = 0): Tensor {
  const first = xs[0];
  if (!first) throw new Error('cat: expected a non-empty list of tensors');
  const n = first.ndim;
  if (n === 0) throw new Error('cat: zero-dimensional tensors cannot be concatenated; use stack');
  const d = normalizeDim(dim, n, 'cat');
  xs.forEach((t, i) => {
    if (t.ndim !== n) {
      throw new Error(
        `cat: tensor ${i} has rank ${t.ndim} ${fmt(t.shape)}, tensor 0 has rank ${n} ${fmt(first.shape)}`,
      );
    }
    if (t.dtype !== first.dtype) throw new Error(`cat: tensor ${i} is ${t.dtype}, tensor 0 is ${first.dtype}`);
    for (let k = 0; k < n; k++) {
      if (k !== d && t.shape[k] !== first.shape[k]) {
        throw new Error(
          `cat: sizes must match except in dimension ${d}: tensor ${i} has shape ${fmt(t.shape)}, tensor 0 ${fmt(first.shape)}`,
        );
      }
    }
  });
  if (xs.length === 1) return alias(first);
  const out = dispatch1('cat', xs, { dim: d });
  const sizes = xs.map((t) => t.shape[d]!);
  const needs = xs.map((t) => t.requiresGrad);
  record('cat', xs, [out], ([g]) => {
    let off = 0;
    return sizes.map((s, i) => {
      const piece = g && needs[i] ? narrow(g, d, off, s) : null;
      off += s;
      return piece;
    });
  });
  return out;
}

/**
 * Split `x` along `dim` (`torch.split`): into pieces of `sizes` elements (the last may be
 * smaller) or, given an array, into pieces of exactly those sizes (they must add up to the
 * dimension). Pieces along dimension 0 are views. Differentiable (one node for all pieces).
 */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  if (x.ndim === 0) throw new Error('split: cannot split a zero-dimensional tensor');
  const d = normalizeDim(dim, x.ndim, 'split');
  const total = x.shape[d]!;
  let parts: number[];
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes <= 0)
      throw new Error(`split: split size must be a positive integer, got ${sizes}`);
    parts = [];
    for (let s = 0; s < total; s += sizes) parts.push(Math.min(sizes, total - s));
    if (!parts.length) parts.push(0);
  } else {
    parts = [...sizes];
    if (parts.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`split: invalid sizes ${fmt(parts)}`);
    const sum = parts.reduce((a, b) => a + b, 0);
    if (sum !== total) {
      throw new Error(
        `split: sizes ${fmt(parts)} add up to ${sum}, but dimension ${d} of ${fmt(x.shape)} has size ${total}`,
      );
    }
  }
  const outs = noGrad(() => {
    let off = 0;
    return parts.map((p) => {
      const o = narrow(x, d, off, p);
      off += p;
      return o;
    });
  });
  const { dtype, device, shape } = x;
  record('split', [x], outs, (grads) =>
    tidy(() => [
      cat(
        grads.map((g, i) => g ?? zeros(withSize(shape, d, parts[i]!), { dtype, device })),
        d,
      ),
    ]),
  );
  return outs;
}

/** Stack equally shaped tensors along a new dimension `dim` (`torch.stack`). Differentiable. */
export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  const first = xs[0];
  if (!first) throw new Error('stack: expected a non-empty list of tensors');
  const d = normalizeDim(dim, first.ndim + 1, 'stack');
  xs.forEach((t, i) => {
    if (!sameShape(t.shape, first.shape)) {
      throw new Error(
        `stack: all tensors must have the same shape: tensor ${i} is ${fmt(t.shape)}, tensor 0 ${fmt(first.shape)}`,
      );
    }
  });
  const shape = [...first.shape.slice(0, d), 1, ...first.shape.slice(d)];
  return tidy(() =>
    cat(
      xs.map((t) => t.reshape(shape)),
      d,
    ),
  );
}

/**
 * Elements `start .. start+length` of dimension `dim` (`torch.narrow`; a negative `start`
 * counts from the end). A view when the slice is contiguous in memory (dimension 0, or only
 * size-1 dimensions before `dim`), otherwise a copy. Differentiable.
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  if (x.ndim === 0) throw new Error('narrow: cannot narrow a zero-dimensional tensor');
  const d = normalizeDim(dim, x.ndim, 'narrow');
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > size) {
    throw new Error(
      `narrow: start ${start} and length ${length} are out of range for dimension ${d} of size ${size} (shape ${fmt(x.shape)})`,
    );
  }
  if (length === size) return alias(x);
  if (numelOf(x.shape.slice(0, d)) === 1) {
    // Contiguous in memory: slice along dimension 0 of a view without the leading 1s.
    if (d === 0) return x.slice0(s, s + length);
    return tidy(() =>
      x
        .reshape(x.shape.slice(d))
        .slice0(s, s + length)
        .reshape(withSize(x.shape, d, length)),
    );
  }
  const out = dispatch1('narrow', [x], { dim: d, start: s, length });
  const { dtype, device, shape } = x;
  record('narrow', [x], [out], ([g]) => {
    if (!g) return [null];
    return [
      tidy(() => {
        const pieces: Tensor[] = [];
        if (s > 0) pieces.push(zeros(withSize(shape, d, s), { dtype, device }));
        pieces.push(g);
        if (size - s - length > 0) pieces.push(zeros(withSize(shape, d, size - s - length), { dtype, device }));
        return cat(pieces, d);
      }),
    ];
  });
  return out;
}

/**
 * Entries of `x` along `dim` at the positions in `index` (int32, 0-d or 1-D), as
 * `torch.index_select`; out-of-range indices are an error. Differentiable in `x` (the gradient
 * adds rows back, repeated indices accumulate).
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  requireInt32('indexSelect', 'index', index);
  if (index.ndim > 1) throw new Error(`indexSelect: index must be 0-d or 1-D, got ${fmt(index.shape)}`);
  if (x.ndim === 0) throw new Error('indexSelect: x must have at least one dimension');
  const d = normalizeDim(dim, x.ndim, 'indexSelect');
  const out = dispatch1('indexSelect', [x, index], { dim: d });
  const { dtype, device, shape } = x;
  record(
    'indexSelect',
    [x, index],
    [out],
    ([g], [idx]) => {
      if (!g) return [null, null];
      return [
        tidy(() => {
          const expanded = expand(idx!.reshape(shape.map((_, k) => (k === d ? idx!.numel : 1))), g.shape);
          return scatterAdd(zeros(shape, { dtype, device }), d, expanded, g);
        }),
        null,
      ];
    },
    [index],
  );
  return out;
}

function checkIndexShape(op: string, index: Tensor, x: Tensor, d: number, xName: string): void {
  if (index.ndim !== x.ndim) {
    throw new Error(`${op}: index ${fmt(index.shape)} must have the same rank as ${xName} ${fmt(x.shape)}`);
  }
  for (let k = 0; k < x.ndim; k++) {
    if (k !== d && index.shape[k]! > x.shape[k]!) {
      throw new Error(
        `${op}: index ${fmt(index.shape)} is larger than ${xName} ${fmt(x.shape)} in dimension ${k} (only dimension ${d} may differ)`,
      );
    }
  }
}

/**
 * `out[i][j] = x[index[i][j]][j]` for `dim = 0` and likewise for other dims (`torch.gather`).
 * `index` is int32 with the rank of `x` and sizes no larger than `x` outside `dim`; the output
 * has `index`'s shape. Differentiable in `x` (scatter-add of the output gradient).
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  requireInt32('gather', 'index', index);
  if (x.ndim === 0) throw new Error('gather: x must have at least one dimension');
  const d = normalizeDim(dim, x.ndim, 'gather');
  checkIndexShape('gather', index, x, d, 'x');
  const out = dispatch1('gather', [x, index], { dim: d });
  const { dtype, device, shape } = x;
  record(
    'gather',
    [x, index],
    [out],
    ([g], [idx]) => [g ? tidy(() => scatterAdd(zeros(shape, { dtype, device }), d, idx!, g)) : null, null],
    [index],
  );
  return out;
}

/** Zero-pad `g` at the end of each dimension up to `shape`. */
function padEnd(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  return tidy(() => {
    let t = g;
    for (let k = 0; k < shape.length; k++) {
      const missing = shape[k]! - t.shape[k]!;
      if (missing > 0) t = cat([t, zeros(withSize(t.shape, k, missing), { dtype: g.dtype, device: g.device })], k);
    }
    return t;
  });
}

/**
 * `x` with `src` added at the positions `index` names along `dim` (`torch.scatter_add`,
 * out of place): `out[index[i][j]][j] += src[i][j]` for `dim = 0`. `index`, `x`, `src` have one
 * rank; `index` is no larger than `src` anywhere and than `x` outside `dim`. Repeated indices
 * accumulate in a fixed order (deterministic). Differentiable in `x` and `src`.
 */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  requireInt32('scatterAdd', 'index', index);
  requireSameDtype('scatterAdd', x, 'x', src, 'src');
  if (x.ndim === 0) throw new Error('scatterAdd: x must have at least one dimension');
  const d = normalizeDim(dim, x.ndim, 'scatterAdd');
  checkIndexShape('scatterAdd', index, x, d, 'x');
  if (src.ndim !== index.ndim || index.shape.some((s, k) => s > src.shape[k]!)) {
    throw new Error(
      `scatterAdd: index ${fmt(index.shape)} must have the rank of src ${fmt(src.shape)} and be no larger`,
    );
  }
  const out = dispatch1('scatterAdd', [x, index, src], { dim: d });
  const srcShape = src.shape;
  const needSrc = src.requiresGrad;
  record(
    'scatterAdd',
    [x, index, src],
    [out],
    ([g], [idx]) => {
      if (!g) return [null, null, null];
      return [g, null, needSrc ? tidy(() => padEnd(gather(g, d, idx!), srcShape)) : null];
    },
    [index],
  );
  return out;
}

/**
 * Elements of `x` where `mask` (bool, broadcast with `x`) is true, in row-major order, as a
 * 1-D tensor (`torch.masked_select`). Differentiable in `x`.
 */
export function maskedSelect(x: Tensor, mask: Tensor): Tensor {
  if (mask.dtype !== 'bool') throw new Error(`maskedSelect: mask must be bool, got ${mask.dtype}`);
  const shape = broadcastShapes(x.shape, mask.shape, 'maskedSelect');
  return tidy(() => {
    const xe = expand(x, shape);
    const me = expand(mask, shape);
    const out = dispatch1('maskedSelect', [xe, me]);
    const { dtype, device } = x;
    record(
      'maskedSelect',
      [xe, me],
      [out],
      ([g], [m]) => [g ? maskedScatter(zeros(shape, { dtype, device }), m!, g) : null, null],
      [me],
    );
    return out;
  });
}

/**
 * `x` with the positions where `mask` is true filled, in row-major order, with consecutive
 * elements of `source` (`torch.masked_scatter`, out of place). `mask` is bool and broadcasts to
 * `x`'s shape; `source` (any shape, `x`'s dtype) needs at least as many elements as `mask` has
 * true entries. Differentiable in `x` (gradient zero where masked) and `source` (the gradient
 * at the masked positions, in order, zero for unused source elements).
 */
export function maskedScatter(x: Tensor, mask: Tensor, source: Tensor): Tensor {
  if (mask.dtype !== 'bool') throw new Error(`maskedScatter: mask must be bool, got ${mask.dtype}`);
  requireSameDtype('maskedScatter', x, 'x', source, 'source');
  const shape = broadcastShapes(x.shape, mask.shape, 'maskedScatter');
  if (!sameShape(shape, x.shape)) {
    throw new Error(`maskedScatter: mask ${fmt(mask.shape)} does not broadcast to x's shape ${fmt(x.shape)}`);
  }
  return tidy(() => {
    const me = expand(mask, shape);
    const out = dispatch1('maskedScatter', [x, me, source]);
    const srcShape = source.shape;
    const srcNumel = source.numel;
    const needX = x.requiresGrad;
    const needSrc = source.requiresGrad;
    record(
      'maskedScatter',
      [x, me, source],
      [out],
      ([g], [m]) => {
        if (!g) return [null, null, null];
        return tidy(() => {
          const gx = needX ? maskedScatter(g, m!, zeros(g.shape, { dtype: g.dtype, device: g.device })) : null;
          let gs: Tensor | null = null;
          if (needSrc) {
            const sel = maskedSelect(g, m!);
            const rest = srcNumel - sel.numel;
            const flat = rest > 0 ? cat([sel, zeros([rest], { dtype: g.dtype, device: g.device })], 0) : sel;
            gs = flat.reshape(srcShape);
          }
          return [gx, null, gs];
        });
      },
      [me],
    );
    return out;
  });
}
