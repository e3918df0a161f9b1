// Per-parameter Shard(0) with padding: each rank owns `chunk = ceil(rows / N)` rows of dim 0
// (the last ranks' chunks padded with zeros), so every rank's packed shard has the same size
// and one even all-gather / reduce-scatter moves a whole unit.

import { type DType, type Tensor, zeros } from '@omnitrain/core';

/** Where one parameter lives inside its unit's flat, per-rank packed shard. */
export interface ParamLayout {
  /** Fully qualified name (relative to the unit's module), for error messages. */
  name: string;
  /** Full (unsharded) shape. */
  fullShape: number[];
  /** Rows of dim 0 in the full parameter. */
  rows: number;
  /** Elements per row (product of the other dims; 1 for 1-D). */
  inner: number;
  /** Rows each rank holds (padded): ceil(rows / N). */
  chunk: number;
  /** Offset of this parameter in a rank's packed shard, in elements. */
  offset: number;
}

/** Shard(0) layout of a unit's parameters over a group of `n` ranks. */
export function layoutOf(
  params: { name: string; shape: readonly number[] }[],
  n: number,
): {
  layouts: ParamLayout[];
  shardNumel: number;
} {
  let offset = 0;
  const layouts = params.map(({ name, shape }) => {
    if (shape.length === 0) throw new Error(`fullyShard: parameter '${name}' is 0-d; Shard(0) needs at least 1 dim`);
    const rows = shape[0]!;
    const inner = shape.slice(1).reduce((a, b) => a * b, 1);
    const chunk = Math.ceil(rows / n);
    const l: ParamLayout = { name, fullShape: [...shape], rows, inner, chunk, offset };
    offset += chunk * inner;
    return l;
  });
  return { layouts, shardNumel: offset };
}

/** Rows of `l` that rank `r` really owns (the rest of its chunk is padding). */
export function validRows(l: ParamLayout, r: number): number {
  return Math.max(0, Math.min(l.rows, (r + 1) * l.chunk) - r * l.chunk);
}

/** Copy `n` elements: `dst[dstOff..] = src[srcOff..]` (same dtype, CPU). */
export function copyElems(dst: Tensor, dstOff: number, src: Tensor, srcOff: number, n: number): void {
  if (n <= 0) return;
  if (dst.dtype !== src.dtype) throw new Error(`fsdp copy: dtype ${src.dtype} into ${dst.dtype}`);
  const d = dst.raw();
  const s = src.raw();
  (d as unknown as { set(a: ArrayLike<number>, o: number): void }).set(
    (s as unknown as { subarray(a: number, b: number): ArrayLike<number> }).subarray(srcOff, srcOff + n),
    dstOff,
  );
}

/** A zero-filled CPU tensor. */
export function zerosOf(shape: readonly number[], dtype: DType, device = 'cpu'): Tensor {
  return zeros(shape, { dtype, device });
}
