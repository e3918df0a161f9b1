// Attention (causal or not, GQA, packed variable-length sequences via cuSeqlens), forward and backward, on
// native/attention.cc.
import type { Tensor } from '@omnitrain/core';
import type { NativeKernel } from './bf16.js';
import { empty, f32, ints, raw } from './kernel-util.js';

/** [q0, k0, sq, sk] per sequence, as core's reference attention lays them out; null when invalid. */
function segmentsOf(q: Tensor, k: Tensor, cu: Tensor | undefined): Int32Array | null {
  if (q.ndim === 4) {
    const [b, s] = q.shape as [number, number];
    const sk = k.shape[1]!;
    const seg = new Int32Array(b * 4);
    for (let i = 0; i < b; i++) seg.set([i * s, i * sk, s, sk], i * 4);
    return seg;
  }
  if (q.ndim !== 3) return null;
  if (!cu) return Int32Array.from([0, 0, q.shape[0]!, k.shape[0]!]);
  if (cu.dtype !== 'int32') return null;
  const c = ints(cu);
  if (c[0] !== 0 || c[c.length - 1] !== q.shape[0]) return null;
  const seg = new Int32Array((c.length - 1) * 4);
  for (let i = 0; i + 1 < c.length; i++) {
    const len = c[i + 1]! - c[i]!;
    if (len < 0) return null;
    seg.set([c[i]!, c[i]!, len, len], i * 4);
  }
  return seg;
}

export const attention: NativeKernel = (n, [q, k, v, cu], { causal, scale }) => {
  if (!f32(q) || !f32(k) || !f32(v)) return null;
  const seg = segmentsOf(q, k, cu);
  if (!seg) return null;
  const nd = q.ndim;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  const d = q.shape[nd - 1]!;
  if (hkv === 0 || hq % hkv !== 0) return null;
  const out = empty(q.shape);
  const lse = empty(q.shape.slice(0, -1));
  n.attentionFwd(raw(q), raw(k), raw(v), raw(out), raw(lse), seg, hq, hkv, d, scale, !!causal);
  return [out, lse];
};

export const attentionBackward: NativeKernel = (n, [q, k, v, , lse, gradOut, cu], { causal, scale }) => {
  if (!f32(q) || !f32(k) || !f32(v) || !f32(lse) || !f32(gradOut)) return null;
  const seg = segmentsOf(q, k, cu);
  if (!seg) return null;
  const nd = q.ndim;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  const d = q.shape[nd - 1]!;
  if (hkv === 0 || hq % hkv !== 0) return null;
  const dq = empty(q.shape);
  const dk = empty(k.shape);
  const dv = empty(v.shape);
  n.attentionBwd(
    raw(q),
    raw(k),
    raw(v),
    raw(lse),
    raw(gradOut),
    raw(dq),
    raw(dk),
    raw(dv),
    seg,
    hq,
    hkv,
    d,
    scale,
    !!causal,
  );
  return [dq, dk, dv];
};
