// Deterministic test tensors: element i of tensor `name` at `salt` is a fixed value, so any block
// of any tensor can be built by any process and compared bitwise.
import { type DType, type Tensor, tensor } from '@omnitrain/core';

export interface Spec {
  name: string;
  shape: number[];
  dtype: DType;
  /** Which dim the ranks split (uneven at save). */
  dim: number;
}

export const SPECS: Spec[] = [
  { name: 'model.emb', shape: [37, 5], dtype: 'float32', dim: 0 },
  { name: 'model.w', shape: [10, 3, 4], dtype: 'bfloat16', dim: 0 },
  { name: 'model.b', shape: [7], dtype: 'float64', dim: 0 },
  { name: 'model.tiny', shape: [3], dtype: 'float32', dim: 0 },
  { name: 'model.cols', shape: [6, 9], dtype: 'float32', dim: 1 },
  { name: 'optim.state.0.exp_avg', shape: [37, 5], dtype: 'float32', dim: 0 },
  { name: 'optim.state.0.step', shape: [4], dtype: 'int32', dim: 0 },
];

export function value(name: string, i: number, salt: number): number {
  let h = salt * 7919 + 17;
  for (let k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) | 0;
  const x = Math.sin(h * 0.001 + i * 12.9898 + salt) * 43758.5453;
  return (x - Math.floor(x)) * 8 - 4;
}

/** The block at `offsets` with extent `lengths` of the tensor described by `spec`. */
export function block(spec: Spec, offsets: number[], lengths: number[], salt = 0): Tensor {
  const nd = spec.shape.length;
  const n = lengths.reduce((a, b) => a * b, 1);
  const vals: number[] = new Array(n);
  const idx = new Array<number>(nd).fill(0);
  for (let k = 0; k < n; k++) {
    let rem = k;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d] = rem % lengths[d]!;
      rem = Math.floor(rem / lengths[d]!);
    }
    let g = 0;
    for (let d = 0; d < nd; d++) g = g * spec.shape[d]! + offsets[d]! + idx[d]!;
    const v = value(spec.name, g, salt);
    vals[k] = spec.dtype === 'int32' ? Math.round(v * 1000) : v;
  }
  return tensor(vals, { dtype: spec.dtype, shape: lengths });
}

/** Uneven split of `n` into `parts` (weights 1, 2, 3...): [start, length] of part `r`. */
export function unevenSplit(n: number, parts: number, r: number): [number, number] {
  const s = (k: number) => (k * (k + 1)) / 2;
  const cut = (k: number) => Math.round((n * s(k)) / s(parts));
  return [cut(r), cut(r + 1) - cut(r)];
}

/** FSDP-style even split (ceil rows per rank, the last ranks may get fewer or none). */
export function evenSplit(n: number, parts: number, r: number): [number, number] {
  const per = Math.ceil(n / parts);
  const start = Math.min(n, r * per);
  return [start, Math.min(n, start + per) - start];
}

/** This rank's block of `spec` under a split function. */
export function shardOf(
  spec: Spec,
  parts: number,
  r: number,
  split: (n: number, p: number, r: number) => [number, number],
): { offsets: number[]; lengths: number[] } {
  const [start, len] = split(spec.shape[spec.dim]!, parts, r);
  const offsets = spec.shape.map((_, d) => (d === spec.dim ? start : 0));
  const lengths = spec.shape.map((n, d) => (d === spec.dim ? len : n));
  return { offsets, lengths };
}

export function bytesOf(t: Tensor): Uint8Array {
  const size = t.byteLength / Math.max(1, t.numel);
  return new Uint8Array(t.storage.handle as ArrayBuffer, t.offset * size, t.byteLength).slice();
}

/** Set `tree[a][b][c] = v` for `path` = `a.b.c`, creating objects on the way. */
export function setPath(tree: Record<string, unknown>, path: string, v: unknown): void {
  const keys = path.split('.');
  let o = tree;
  for (const k of keys.slice(0, -1)) {
    if (!o[k]) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys.at(-1)!] = v;
}
