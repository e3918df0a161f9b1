// Fused scaled-dot-product attention (causal, GQA, packed variable-length sequences).
import { record } from '../autograd/node.js';
import type { Tensor } from '../tensor.js';
import { dispatch } from './dispatch.js';

/** Options of {@link attention}. */
export interface AttentionOptions {
  /** Query i attends keys 0..i of its sequence only. Default true (needs as many keys as queries). */
  causal?: boolean;
  /** Multiplies q.k before the softmax. Default 1 / sqrt(D). */
  scale?: number;
  /**
   * Packed layout only: int32 [nSeq + 1] cumulative sequence lengths (0, ..., T). Tokens attend
   * only within their own sequence (and causally inside it when `causal`).
   */
  cuSeqlens?: Tensor;
}

function shapeOf(t: Tensor): string {
  return JSON.stringify(t.shape);
}

/**
 * Attention `softmax(q k^T * scale + mask) v` per head. Layouts: `q` [B, S, Hq, D] with `k`, `v`
 * [B, Skv, Hkv, D], or packed `q` [T, Hq, D] with `k`, `v` [T, Hkv, D] (one sequence, or several
 * given by `cuSeqlens`). Grouped-query attention: `Hq % Hkv == 0` and query head h reads kv head
 * `floor(h / (Hq / Hkv))`. The output is shaped like `q` with q's dtype; math runs in float32
 * (float64 for float64). Like flash attention, the forward keeps only each query row's
 * logsumexp and the backward recomputes the probabilities from it (no [S, S] matrix lives
 * between forward and backward). Differentiable w.r.t. q, k and v. Kernels: `attention`
 * ([q, k, v, cuSeqlens?] -> [out, lse] with lse float32 shaped q.shape[:-1]) and
 * `attentionBackward` ([q, k, v, out, lse, gradOut, cuSeqlens?] -> [dq, dk, dv]); attrs `{ causal, scale }`.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'attention';
  const causal = opts.causal ?? true;
  const cu = opts.cuSeqlens;
  const nd = q.ndim;
  if (nd !== 3 && nd !== 4) throw new Error(`${op}: q must be [B, S, Hq, D] or packed [T, Hq, D], got ${shapeOf(q)}`);
  if (k.ndim !== nd || v.ndim !== nd) {
    throw new Error(`${op}: k and v must have the rank of q ${shapeOf(q)}, got k ${shapeOf(k)} and v ${shapeOf(v)}`);
  }
  if (!q.isFloatingPoint || k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new Error(`${op}: q, k, v must share one floating dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  }
  if (k.shape.some((s, i) => s !== v.shape[i])) {
    throw new Error(`${op}: k ${shapeOf(k)} and v ${shapeOf(v)} must have the same shape`);
  }
  const d = q.shape[nd - 1]!;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  if (k.shape[nd - 1] !== d) throw new Error(`${op}: head dim of k ${shapeOf(k)} differs from q ${shapeOf(q)}`);
  if (hkv < 1 || hq % hkv !== 0) {
    throw new Error(
      `${op}: query heads (${hq}) must be a multiple of kv heads (${hkv}); q ${shapeOf(q)}, k ${shapeOf(k)}`,
    );
  }
  if (nd === 4 && k.shape[0] !== q.shape[0]) {
    throw new Error(`${op}: batch of k ${shapeOf(k)} differs from q ${shapeOf(q)}`);
  }
  if (causal && k.shape[nd - 3] !== q.shape[nd - 3]) {
    throw new Error(`${op}: causal attention needs as many keys as queries; q ${shapeOf(q)}, k ${shapeOf(k)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new Error(`${op}: scale must be a finite number, got ${scale}`);
  const inputs = [q, k, v];
  if (cu) {
    if (nd !== 3) throw new Error(`${op}: cuSeqlens needs the packed layout q [T, Hq, D], got q ${shapeOf(q)}`);
    if (cu.dtype !== 'int32' || cu.ndim !== 1 || cu.shape[0]! < 2) {
      throw new Error(`${op}: cuSeqlens must be int32 [nSeq + 1] with nSeq >= 1, got ${cu.dtype} ${shapeOf(cu)}`);
    }
    if (k.shape[0] !== q.shape[0]) {
      throw new Error(`${op}: with cuSeqlens k ${shapeOf(k)} must have as many tokens as q ${shapeOf(q)}`);
    }
    inputs.push(cu);
  }
  const attrs = { causal, scale };
  const [out, lse] = dispatch(op, inputs, attrs) as [Tensor, Tensor];
  record(
    op,
    inputs,
    [out],
    ([g], saved) => {
      const [sq, sk, sv, so, sl, scu] = saved;
      const bwdInputs = [sq!, sk!, sv!, so!, sl!, g!];
      if (scu) bwdInputs.push(scu);
      const [dq, dk, dv] = dispatch('attentionBackward', bwdInputs, attrs);
      return [dq!, dk!, dv!, null];
    },
    cu ? [q, k, v, out, lse, cu] : [q, k, v, out, lse],
  );
  lse.dispose();
  return out;
}
