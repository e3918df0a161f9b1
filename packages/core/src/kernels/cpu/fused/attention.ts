// Reference CPU kernels of attention (forward saves per-row logsumexp; backward recomputes).
import type { DType } from '../../../dtype.js';
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { type ComputeArray, output, read, readInt } from '../util.js';

interface AttnAttrs {
  causal: boolean;
  scale: number;
}

/** One sequence: its first query row, first key row and lengths (rows are tokens). */
interface Segment {
  q0: number;
  k0: number;
  sq: number;
  sk: number;
}

interface Layout {
  segments: Segment[];
  hq: number;
  hkv: number;
  d: number;
  maxSk: number;
}

function layoutOf(op: string, q: Tensor, k: Tensor, cu: Tensor | undefined): Layout {
  const nd = q.ndim;
  const hq = q.shape[nd - 2]!;
  const hkv = k.shape[nd - 2]!;
  const d = q.shape[nd - 1]!;
  const segments: Segment[] = [];
  if (nd === 4) {
    const [b, s] = q.shape as [number, number];
    const sk = k.shape[1]!;
    for (let i = 0; i < b; i++) segments.push({ q0: i * s, k0: i * sk, sq: s, sk });
  } else if (!cu) {
    segments.push({ q0: 0, k0: 0, sq: q.shape[0]!, sk: k.shape[0]! });
  } else {
    const c = readInt(cu, `${op} cuSeqlens`);
    const t = q.shape[0]!;
    if (c[0] !== 0 || c[c.length - 1] !== t) {
      throw new Error(`${op}: cuSeqlens must start at 0 and end at the token count ${t}, got [${Array.from(c)}]`);
    }
    for (let i = 0; i + 1 < c.length; i++) {
      const len = c[i + 1]! - c[i]!;
      if (len < 0) throw new Error(`${op}: cuSeqlens must be non-decreasing, got [${Array.from(c)}]`);
      segments.push({ q0: c[i]!, k0: c[i]!, sq: len, sk: len });
    }
  }
  let maxSk = 0;
  for (const s of segments) maxSk = Math.max(maxSk, s.sk);
  return { segments, hq, hkv, d, maxSk };
}

function statDType(dtype: DType): DType {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Scaled scores of the query at `qo` against keys `k0 .. k0 + n` of kv head `hk`, into `p`. */
function scores(
  q: ComputeArray,
  k: ComputeArray,
  qo: number,
  k0: number,
  n: number,
  hk: number,
  hkv: number,
  d: number,
  scale: number,
  p: Float64Array,
): void {
  for (let j = 0; j < n; j++) {
    const ko = ((k0 + j) * hkv + hk) * d;
    let acc = 0;
    for (let x = 0; x < d; x++) acc += q[qo + x]! * k[ko + x]!;
    p[j] = acc * scale;
  }
}

function attentionForward(inputs: Tensor[], attrs: AttnAttrs): Tensor[] {
  const [q, k, v, cu] = inputs as [Tensor, Tensor, Tensor, Tensor | undefined];
  const { segments, hq, hkv, d, maxSk } = layoutOf('attention', q, k, cu);
  const group = hq / hkv;
  const qd = read(q);
  const kd = read(k);
  const vd = read(v);
  const out = output(q.shape, q.dtype);
  const lse = output(q.shape.slice(0, -1), statDType(q.dtype));
  const o = out.data;
  const p = new Float64Array(maxSk);
  const acc = new Float64Array(d);
  for (const seg of segments) {
    for (let i = 0; i < seg.sq; i++) {
      const n = attrs.causal ? Math.min(i + 1, seg.sk) : seg.sk;
      const row = seg.q0 + i;
      for (let h = 0; h < hq; h++) {
        const hk = Math.floor(h / group);
        const qo = (row * hq + h) * d;
        if (n === 0) {
          lse.data[row * hq + h] = Number.NEGATIVE_INFINITY;
          continue; // no keys: output stays zero
        }
        scores(qd, kd, qo, seg.k0, n, hk, hkv, d, attrs.scale, p);
        let m = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < n; j++) if (p[j]! > m) m = p[j]!;
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j < n; j++) {
          const e = Math.exp(p[j]! - m);
          sum += e;
          const vo = ((seg.k0 + j) * hkv + hk) * d;
          for (let x = 0; x < d; x++) acc[x]! += e * vd[vo + x]!;
        }
        for (let x = 0; x < d; x++) o[qo + x] = acc[x]! / sum;
        lse.data[row * hq + h] = m + Math.log(sum);
      }
    }
  }
  return [out.done(), lse.done()];
}

function attentionBackward(inputs: Tensor[], attrs: AttnAttrs): Tensor[] {
  const [q, k, v, , lse, gradOut, cu] = inputs as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const { segments, hq, hkv, d, maxSk } = layoutOf('attentionBackward', q, k, cu);
  const group = hq / hkv;
  const scale = attrs.scale;
  const qd = read(q);
  const kd = read(k);
  const vd = read(v);
  const ls = read(lse);
  const go = read(gradOut);
  const dq = output(q.shape, q.dtype);
  const dk = output(k.shape, k.dtype);
  const dv = output(v.shape, v.dtype);
  const dqd = dq.data;
  const dkd = dk.data;
  const dvd = dv.data;
  const p = new Float64Array(maxSk);
  const dp = new Float64Array(maxSk);
  const acc = new Float64Array(d);
  for (const seg of segments) {
    for (let i = 0; i < seg.sq; i++) {
      const n = attrs.causal ? Math.min(i + 1, seg.sk) : seg.sk;
      if (n === 0) continue;
      const row = seg.q0 + i;
      for (let h = 0; h < hq; h++) {
        const hk = Math.floor(h / group);
        const qo = (row * hq + h) * d;
        const l = ls[row * hq + h]!;
        scores(qd, kd, qo, seg.k0, n, hk, hkv, d, scale, p);
        // p_j = exp(s_j - lse); dp_j = dO . v_j; delta = sum_j p_j dp_j.
        let delta = 0;
        for (let j = 0; j < n; j++) {
          p[j] = Math.exp(p[j]! - l);
          const vo = ((seg.k0 + j) * hkv + hk) * d;
          let a = 0;
          for (let x = 0; x < d; x++) a += go[qo + x]! * vd[vo + x]!;
          dp[j] = a;
          delta += p[j]! * a;
        }
        acc.fill(0);
        for (let j = 0; j < n; j++) {
          const pj = p[j]!;
          const ds = pj * (dp[j]! - delta) * scale;
          const ko = ((seg.k0 + j) * hkv + hk) * d;
          for (let x = 0; x < d; x++) {
            acc[x]! += ds * kd[ko + x]!;
            dkd[ko + x]! += ds * qd[qo + x]!;
            dvd[ko + x]! += pj * go[qo + x]!;
          }
        }
        for (let x = 0; x < d; x++) dqd[qo + x] = acc[x]!;
      }
    }
  }
  return [dq.done(), dk.done(), dv.done()];
}

/** Register `attention` and `attentionBackward` on the CPU backend. */
export function registerAttentionKernels(r: Registry, source: string): void {
  r.registerKernel('cpu', 'attention', attentionForward, { priority: 0, source });
  r.registerKernel('cpu', 'attentionBackward', attentionBackward, { priority: 0, source });
}
