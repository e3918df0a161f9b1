// Reference CPU kernels of crossEntropy and fusedLinearCrossEntropy (forward and backward).
import type { DType } from '../../../dtype.js';
import type { Registry } from '../../../registry.js';
import { Tensor } from '../../../tensor.js';
import { type ComputeArray, output, read, readInt } from '../util.js';

interface CeAttrs {
  ignoreIndex: number;
  reduction: 'mean' | 'sum' | 'none';
}

interface FlceAttrs extends CeAttrs {
  chunkSize: number;
}

interface FlceBackwardAttrs extends FlceAttrs {
  needHidden?: boolean;
  needWeight?: boolean;
}

function statDType(dtype: DType): DType {
  return dtype === 'float64' ? 'float64' : 'float32';
}

function checkLabel(op: string, label: number, row: number, vocab: number, ignoreIndex: number): void {
  if (label < 0 || label >= vocab) {
    throw new Error(
      `${op}: label ${label} at row ${row} is out of range [0, ${vocab}) and is not ignoreIndex (${ignoreIndex})`,
    );
  }
}

/** Number of rows whose label is not `ignoreIndex`. */
function countActive(labels: Int32Array, ignoreIndex: number): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== ignoreIndex) n++;
  return n;
}

/** Write the reduced loss (or the per-row losses) as a tensor of `dtype`. */
function finishLoss(rowLoss: Float64Array, count: number, reduction: string, dtype: DType): Tensor {
  if (reduction === 'none') {
    const o = output([rowLoss.length], dtype);
    o.data.set(rowLoss);
    return o.done();
  }
  let total = 0;
  for (let i = 0; i < rowLoss.length; i++) total += rowLoss[i]!;
  const o = output([], dtype);
  o.data[0] = reduction === 'mean' ? total / count : total;
  return o.done();
}

/** Per-row factor the softmax-minus-one-hot gradient is multiplied by (0 for ignored rows). */
function rowScales(labels: Int32Array, gradLoss: Tensor, attrs: CeAttrs): Float64Array {
  const n = labels.length;
  const g = read(gradLoss);
  const scales = new Float64Array(n);
  const count = attrs.reduction === 'mean' ? countActive(labels, attrs.ignoreIndex) : 1;
  for (let i = 0; i < n; i++) {
    if (labels[i] === attrs.ignoreIndex) continue;
    scales[i] = attrs.reduction === 'none' ? g[i]! : g[0]! / count;
  }
  return scales;
}

/** Stable logsumexp of `x[off .. off + n)`. */
function rowLogSumExp(x: ComputeArray, off: number, n: number): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) {
    const v = x[off + j]!;
    if (v > m) m = v;
  }
  if (m === Number.NEGATIVE_INFINITY || m === Number.POSITIVE_INFINITY) return m;
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[off + j]! - m);
  return m + Math.log(s);
}

function crossEntropyForward([logits, labels]: Tensor[], attrs: CeAttrs): Tensor[] {
  const [n, vocab] = logits!.shape as [number, number];
  const x = read(logits!);
  const y = readInt(labels!, 'crossEntropy labels');
  const lse = output([n], statDType(logits!.dtype));
  const rowLoss = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const off = i * vocab;
    const l = rowLogSumExp(x, off, vocab);
    lse.data[i] = l;
    const label = y[i]!;
    if (label === attrs.ignoreIndex) continue;
    checkLabel('crossEntropy', label, i, vocab, attrs.ignoreIndex);
    rowLoss[i] = l - x[off + label]!;
    count++;
  }
  return [finishLoss(rowLoss, count, attrs.reduction, logits!.dtype), lse.done()];
}

function crossEntropyBackward([logits, labels, lse, gradLoss]: Tensor[], attrs: CeAttrs): Tensor {
  const [n, vocab] = logits!.shape as [number, number];
  const x = read(logits!);
  const y = readInt(labels!, 'crossEntropyBackward labels');
  const s = read(lse!);
  const scales = rowScales(y, gradLoss!, attrs);
  const o = output([n, vocab], logits!.dtype);
  const d = o.data;
  for (let i = 0; i < n; i++) {
    const sc = scales[i]!;
    if (sc === 0) continue; // ignored row (or zero incoming gradient): zeros already there
    const off = i * vocab;
    const l = s[i]!;
    for (let j = 0; j < vocab; j++) d[off + j] = Math.exp(x[off + j]! - l) * sc;
    d[off + y[i]!]! -= sc;
  }
  return o.done();
}

/** Indices of the rows in [r0, r1) whose label is not ignored. */
function activeRows(y: Int32Array, r0: number, r1: number, ignoreIndex: number, into: Int32Array): number {
  let m = 0;
  for (let r = r0; r < r1; r++) if (y[r] !== ignoreIndex) into[m++] = r;
  return m;
}

/**
 * Logits of `m` rows (`rows[0..m)` of `h` [N, H]) against every row of `w` [V, H], written to
 * `buf` [m, V]. The weight row is the outer loop so each one is read once per chunk.
 */
function chunkLogits(
  h: ComputeArray,
  w: ComputeArray,
  rows: Int32Array,
  m: number,
  vocab: number,
  dim: number,
  buf: ComputeArray,
): void {
  const m4 = m - (m % 4);
  for (let v = 0; v < vocab; v++) {
    const wo = v * dim;
    // Four rows at a time: each weight element is loaded once per four dot products.
    for (let i = 0; i < m4; i += 4) {
      const h0 = rows[i]! * dim;
      const h1 = rows[i + 1]! * dim;
      const h2 = rows[i + 2]! * dim;
      const h3 = rows[i + 3]! * dim;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let k = 0; k < dim; k++) {
        const wk = w[wo + k]!;
        a0 += h[h0 + k]! * wk;
        a1 += h[h1 + k]! * wk;
        a2 += h[h2 + k]! * wk;
        a3 += h[h3 + k]! * wk;
      }
      buf[i * vocab + v] = a0;
      buf[(i + 1) * vocab + v] = a1;
      buf[(i + 2) * vocab + v] = a2;
      buf[(i + 3) * vocab + v] = a3;
    }
    for (let i = m4; i < m; i++) {
      const ho = rows[i]! * dim;
      let acc = 0;
      for (let k = 0; k < dim; k++) acc += h[ho + k]! * w[wo + k]!;
      buf[i * vocab + v] = acc;
    }
  }
}

/** A scratch tensor (counted by the backend's memory statistics) for one chunk of logits. */
function scratch(rows: number, vocab: number, dtype: DType): { t: Tensor; buf: ComputeArray } {
  const t = Tensor.empty([rows, vocab], statDType(dtype), 'cpu');
  return { t, buf: t.raw() as ComputeArray };
}

function flceForward([hidden, weight, labels]: Tensor[], attrs: FlceAttrs): Tensor[] {
  const op = 'fusedLinearCrossEntropy';
  const [n, dim] = hidden!.shape as [number, number];
  const vocab = weight!.shape[0]!;
  const h = read(hidden!);
  const w = read(weight!);
  const y = readInt(labels!, `${op} labels`);
  for (let i = 0; i < n; i++) if (y[i] !== attrs.ignoreIndex) checkLabel(op, y[i]!, i, vocab, attrs.ignoreIndex);
  const chunk = Math.max(1, Math.min(attrs.chunkSize, n));
  const lse = output([n], statDType(hidden!.dtype));
  const rowLoss = new Float64Array(n);
  const rows = new Int32Array(chunk);
  const { t, buf } = scratch(chunk, vocab, hidden!.dtype);
  let count = 0;
  try {
    for (let r0 = 0; r0 < n; r0 += chunk) {
      const m = activeRows(y, r0, Math.min(n, r0 + chunk), attrs.ignoreIndex, rows);
      if (!m) continue;
      chunkLogits(h, w, rows, m, vocab, dim, buf);
      for (let i = 0; i < m; i++) {
        const r = rows[i]!;
        const l = rowLogSumExp(buf, i * vocab, vocab);
        lse.data[r] = l;
        rowLoss[r] = l - buf[i * vocab + y[r]!]!;
        count++;
      }
    }
  } finally {
    t.dispose();
  }
  return [finishLoss(rowLoss, count, attrs.reduction, hidden!.dtype), lse.done()];
}

function flceBackward([hidden, weight, labels, lse, gradLoss]: Tensor[], attrs: FlceBackwardAttrs): Tensor[] {
  const [n, dim] = hidden!.shape as [number, number];
  const vocab = weight!.shape[0]!;
  const needHidden = attrs.needHidden ?? true;
  const needWeight = attrs.needWeight ?? true;
  const h = read(hidden!);
  const w = read(weight!);
  const y = readInt(labels!, 'fusedLinearCrossEntropyBackward labels');
  const s = read(lse!);
  const scales = rowScales(y, gradLoss!, attrs);
  const gh = needHidden ? output([n, dim], hidden!.dtype) : null;
  const gw = needWeight ? output([vocab, dim], weight!.dtype) : null;
  const ghd = gh?.data;
  const gwd = gw?.data;
  const chunk = Math.max(1, Math.min(attrs.chunkSize, n));
  const rows = new Int32Array(chunk);
  const { t, buf } = scratch(chunk, vocab, hidden!.dtype);
  try {
    for (let r0 = 0; r0 < n; r0 += chunk) {
      // Rows with a zero factor (ignored, or zero incoming gradient) contribute nothing.
      let m = 0;
      for (let r = r0; r < Math.min(n, r0 + chunk); r++) if (scales[r] !== 0) rows[m++] = r;
      if (!m) continue;
      chunkLogits(h, w, rows, m, vocab, dim, buf);
      // dLogits = scale * (softmax - onehot), in place.
      for (let i = 0; i < m; i++) {
        const r = rows[i]!;
        const off = i * vocab;
        const l = s[r]!;
        const sc = scales[r]!;
        for (let v = 0; v < vocab; v++) buf[off + v] = Math.exp(buf[off + v]! - l) * sc;
        buf[off + y[r]!]! -= sc;
      }
      // gradHidden[r] += dLogits[r, v] * W[v]; gradWeight[v] += sum_r dLogits[r, v] * hidden[r].
      if (ghd) {
        for (let v = 0; v < vocab; v++) {
          const wo = v * dim;
          for (let i = 0; i < m; i++) {
            const dl = buf[i * vocab + v]!;
            const ho = rows[i]! * dim;
            for (let k = 0; k < dim; k++) ghd[ho + k]! += dl * w[wo + k]!;
          }
        }
      }
      if (gwd) {
        const m4 = m - (m % 4);
        for (let v = 0; v < vocab; v++) {
          const wo = v * dim;
          for (let i = 0; i < m4; i += 4) {
            const d0 = buf[i * vocab + v]!;
            const d1 = buf[(i + 1) * vocab + v]!;
            const d2 = buf[(i + 2) * vocab + v]!;
            const d3 = buf[(i + 3) * vocab + v]!;
            const h0 = rows[i]! * dim;
            const h1 = rows[i + 1]! * dim;
            const h2 = rows[i + 2]! * dim;
            const h3 = rows[i + 3]! * dim;
            for (let k = 0; k < dim; k++) {
              gwd[wo + k]! += d0 * h[h0 + k]! + d1 * h[h1 + k]! + d2 * h[h2 + k]! + d3 * h[h3 + k]!;
            }
          }
          for (let i = m4; i < m; i++) {
            const dl = buf[i * vocab + v]!;
            const ho = rows[i]! * dim;
            for (let k = 0; k < dim; k++) gwd[wo + k]! += dl * h[ho + k]!;
          }
        }
      }
    }
  } finally {
    t.dispose();
  }
  const outs: Tensor[] = [];
  if (gh) outs.push(gh.done());
  if (gw) outs.push(gw.done());
  return outs;
}

/** Register `crossEntropy`, `crossEntropyBackward`, `fusedLinearCrossEntropy` and its backward on the CPU backend. */
export function registerCrossEntropyKernels(r: Registry, source: string): void {
  const opts = { priority: 0, source };
  r.registerKernel('cpu', 'crossEntropy', crossEntropyForward, opts);
  r.registerKernel('cpu', 'crossEntropyBackward', crossEntropyBackward, opts);
  r.registerKernel('cpu', 'fusedLinearCrossEntropy', flceForward, opts);
  r.registerKernel('cpu', 'fusedLinearCrossEntropyBackward', flceBackward, opts);
}
