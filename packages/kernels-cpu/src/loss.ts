// crossEntropy and the fused linear + cross-entropy (rows in chunks, never holding [N, V] logits), forward and
// backward.
import type { Tensor } from '@omnitrain/core';
import type { NativeKernel } from './bf16.js';
import { empty, f32, i32, ints, raw } from './kernel-util.js';

function labelsOk(y: Int32Array, vocab: number, ignoreIndex: number): boolean {
  for (let i = 0; i < y.length; i++) if (y[i] !== ignoreIndex && (y[i]! < 0 || y[i]! >= vocab)) return false;
  return true;
}

function finishLoss(rowLoss: Float64Array, count: number, reduction: string): Tensor {
  if (reduction === 'none') {
    const o = empty([rowLoss.length]);
    raw(o).set(rowLoss);
    return o;
  }
  let total = 0;
  for (let i = 0; i < rowLoss.length; i++) total += rowLoss[i]!;
  const o = empty([]);
  raw(o)[0] = reduction === 'mean' ? total / count : total;
  return o;
}

function rowScales(
  labels: Int32Array,
  gradLoss: Tensor,
  attrs: { ignoreIndex: number; reduction: string },
): Float64Array | null {
  if (gradLoss.dtype !== 'float32' && gradLoss.dtype !== 'float64') return null;
  const g = gradLoss.raw() as Float32Array | Float64Array;
  const n = labels.length;
  const scales = new Float64Array(n);
  let count = 1;
  if (attrs.reduction === 'mean') {
    count = 0;
    for (let i = 0; i < n; i++) if (labels[i] !== attrs.ignoreIndex) count++;
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] === attrs.ignoreIndex) continue;
    scales[i] = attrs.reduction === 'none' ? g[i]! : g[0]! / count;
  }
  return scales;
}

export const crossEntropy: NativeKernel = (n, [logits, labels], attrs) => {
  if (!f32(logits) || logits.ndim !== 2 || !i32(labels)) return null;
  const [rows, vocab] = logits.shape as [number, number];
  if (!labelsOk(ints(labels), vocab, attrs.ignoreIndex)) return null;
  const lse = empty([rows]);
  const rowLoss = new Float64Array(rows);
  const count = n.ceFwd(raw(logits), ints(labels), raw(lse), rowLoss, rows, vocab, attrs.ignoreIndex);
  return [finishLoss(rowLoss, count, attrs.reduction), lse];
};

export const crossEntropyBackward: NativeKernel = (n, [logits, labels, lse, gradLoss], attrs) => {
  if (!f32(logits) || logits.ndim !== 2 || !i32(labels) || !f32(lse) || !gradLoss) return null;
  const [rows, vocab] = logits.shape as [number, number];
  const scales = rowScales(ints(labels), gradLoss, attrs);
  if (!scales) return null;
  const out = empty([rows, vocab]);
  n.ceBwd(raw(logits), ints(labels), raw(lse), scales, raw(out), rows, vocab);
  return out;
};

export const flce: NativeKernel = (n, [h, w, labels], attrs) => {
  if (!f32(h) || !f32(w) || h.ndim !== 2 || w.ndim !== 2 || !i32(labels)) return null;
  const [rows, dim] = h.shape as [number, number];
  const vocab = w.shape[0]!;
  if (w.shape[1] !== dim || !labelsOk(ints(labels), vocab, attrs.ignoreIndex)) return null;
  const lse = empty([rows]);
  const rowLoss = new Float64Array(rows);
  const count = n.flceFwd(
    raw(h),
    raw(w),
    ints(labels),
    raw(lse),
    rowLoss,
    rows,
    dim,
    vocab,
    attrs.ignoreIndex,
    attrs.chunkSize,
  );
  return [finishLoss(rowLoss, count, attrs.reduction), lse];
};

export const flceBackward: NativeKernel = (n, [h, w, labels, lse, gradLoss], attrs) => {
  if (!f32(h) || !f32(w) || h.ndim !== 2 || !i32(labels) || !f32(lse) || !gradLoss) return null;
  const [rows, dim] = h.shape as [number, number];
  const vocab = w.shape[0]!;
  const scales = rowScales(ints(labels), gradLoss, attrs);
  if (!scales) return null;
  const gh = (attrs.needHidden ?? true) ? empty([rows, dim]) : null;
  const gw = (attrs.needWeight ?? true) ? empty([vocab, dim]) : null;
  n.flceBwd(
    raw(h),
    raw(w),
    ints(labels),
    raw(lse),
    scales,
    gh && raw(gh),
    gw && raw(gw),
    rows,
    dim,
    vocab,
    attrs.chunkSize,
  );
  const outs: Tensor[] = [];
  if (gh) outs.push(gh);
  if (gw) outs.push(gw);
  return outs;
};
