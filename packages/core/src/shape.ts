/** Number of elements of a shape. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validate a shape: non-negative integers. */
export function checkShape(shape: readonly number[], where: string): number[] {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${where}: invalid shape ${JSON.stringify(shape)}`);
  }
  return [...shape];
}

/** Resolve a reshape target (one -1 allowed) against `numel`. */
export function inferShape(shape: readonly number[], numel: number, where = 'reshape'): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg !== out.lastIndexOf(-1))
    throw new Error(`${where}: only one dimension can be -1, got ${JSON.stringify(shape)}`);
  if (neg >= 0) {
    const rest = numelOf(out.filter((_, i) => i !== neg));
    if (rest === 0 || numel % rest !== 0) {
      throw new Error(`${where}: cannot infer -1 in ${JSON.stringify(shape)} for ${numel} elements`);
    }
    out[neg] = numel / rest;
  }
  checkShape(out, where);
  if (numelOf(out) !== numel) {
    throw new Error(`${where}: shape ${JSON.stringify(shape)} has ${numelOf(out)} elements, tensor has ${numel}`);
  }
  return out;
}

/** Normalise a possibly negative dimension index for a tensor of rank `ndim`. */
export function normalizeDim(dim: number, ndim: number, where = 'dim'): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) {
    throw new Error(`${where}: dimension ${dim} out of range for a tensor of rank ${ndim}`);
  }
  return d;
}

/** NumPy broadcasting of two shapes, or an error naming both. */
export function broadcastShapes(a: readonly number[], b: readonly number[], where = 'broadcast'): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${where}: shapes ${JSON.stringify(a)} and ${JSON.stringify(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Row-major strides of a contiguous shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** True when two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Element offsets of each batch matrix of an operand with batch shape `own` broadcast inside
 * `batch` (row-major over `batch`; stride 0 where broadcast). Used by batched matmul kernels.
 */
export function batchOffsets(own: readonly number[], batch: readonly number[], matrixSize: number): number[] {
  const n = batch.length;
  const total = numelOf(batch);
  const out = new Array<number>(total);
  const ownStrides = stridesOf(own);
  const lead = n - own.length;
  // Stride of each broadcast batch dimension in this operand (0 where it is broadcast).
  const strides = batch.map((s, i) =>
    i < lead || own[i - lead] !== s || s === 1 ? 0 : ownStrides[i - lead]! * matrixSize,
  );
  const idx = new Array<number>(n).fill(0);
  let base = 0;
  for (let p = 0; p < total; p++) {
    out[p] = base;
    for (let d = n - 1; d >= 0; d--) {
      base += strides[d]!;
      if (++idx[d]! < batch[d]!) break;
      base -= strides[d]! * batch[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
