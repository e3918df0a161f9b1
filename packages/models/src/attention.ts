// Grouped-query self-attention with Hugging Face parameter names (q_proj, k_proj, v_proj,
// o_proj, and qwen3's per-head q_norm / k_norm), rotary embeddings and an optional KV cache.
import {
  add,
  attention,
  cast,
  cat,
  expand,
  keep,
  matmul,
  mul,
  nn,
  permute,
  rmsNorm,
  rope,
  softmax,
  type Tensor,
} from '@omnitrain/core';
import type { ModelConfig } from './config.js';

/** One layer's cached keys and values, [B, S, Hkv, D] each (rope already applied to keys). */
export interface LayerCache {
  k: Tensor | null;
  v: Tensor | null;
}

/** What a decoder layer needs besides its input: positions, and for generation the cache and mask. */
export interface LayerContext {
  /** int32 [B, S] rotary positions. */
  positions: Tensor;
  /**
   * Additive float32 mask [B, 1, S, Skv] (0 = attend, -Infinity = not). When set, attention runs
   * the masked path (generation with padding and caches); otherwise causal fused attention.
   */
  mask?: Tensor;
  /**
   * Packed sequences: int32 [nSeq + 1] cumulative lengths over the S tokens of a single row
   * (B = 1); each token attends causally within its own sequence only.
   */
  cuSeqlens?: Tensor;
  /** Per-layer KV caches (indexed by layer); new keys/values are appended. */
  cache?: LayerCache[];
  /** Router logits [T, E] of each sparse layer, appended in layer order (MoE). */
  routerLogits: Tensor[];
  /** Experts chosen per token (T x topK, row-major) of each sparse layer, in layer order. */
  routing: Int32Array[];
}

/**
 * `softmax(q k^T * scale + mask) v` with explicit ops (any mask, any number of keys), for
 * generation: q [B, Sq, Hq, D], k/v [B, Skv, Hkv, D], mask [B, 1, Sq, Skv]. Math in float32.
 */
export function maskedAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: number): Tensor {
  const [b, , hq, d] = q.shape as [number, number, number, number];
  const [, skv, hkv] = k.shape as [number, number, number, number];
  const groups = hq / hkv;
  const f = (t: Tensor) => (t.dtype === 'float32' ? t : cast(t, 'float32'));
  const heads = (t: Tensor) =>
    groups === 1 ? t : expand(t.reshape(b, skv, hkv, 1, d), [b, skv, hkv, groups, d]).reshape(b, skv, hq, d);
  const qh = permute(f(q), [0, 2, 1, 3]);
  const kh = permute(heads(f(k)), [0, 2, 1, 3]);
  const vh = permute(heads(f(v)), [0, 2, 1, 3]);
  const scores = add(mul(matmul(qh, kh, { transB: true }), scale), mask);
  const out = permute(matmul(softmax(scores, -1), vh), [0, 2, 1, 3]);
  return out.dtype === q.dtype ? out : cast(out, q.dtype);
}

/** Self-attention of one decoder layer (`self_attn`). Input and output [B, S, hidden]. */
export class Attention extends nn.Module {
  readonly cfg: ModelConfig;
  readonly layerIdx: number;
  qProj: nn.Linear;
  kProj: nn.Linear;
  vProj: nn.Linear;
  oProj: nn.Linear;
  qNorm: nn.RMSNorm | null = null;
  kNorm: nn.RMSNorm | null = null;

  constructor(cfg: ModelConfig, layerIdx: number, opts: nn.LayerOptions = {}) {
    super();
    this.cfg = cfg;
    this.layerIdx = layerIdx;
    const { hiddenSize: h, numAttentionHeads: hq, numKeyValueHeads: hkv, headDim: d } = cfg;
    this.qProj = this.registerModule('q_proj', new nn.Linear(h, hq * d, { ...opts, bias: cfg.qkvBias }));
    this.kProj = this.registerModule('k_proj', new nn.Linear(h, hkv * d, { ...opts, bias: cfg.qkvBias }));
    this.vProj = this.registerModule('v_proj', new nn.Linear(h, hkv * d, { ...opts, bias: cfg.qkvBias }));
    this.oProj = this.registerModule('o_proj', new nn.Linear(hq * d, h, { ...opts, bias: cfg.oProjBias }));
    if (cfg.qkNorm) {
      this.qNorm = this.registerModule('q_norm', new nn.RMSNorm(d, cfg.rmsNormEps, opts));
      this.kNorm = this.registerModule('k_norm', new nn.RMSNorm(d, cfg.rmsNormEps, opts));
    }
  }

  override forward(x: Tensor, ctx: LayerContext): Tensor {
    const [b, s] = x.shape as [number, number, number];
    const { numAttentionHeads: hq, numKeyValueHeads: hkv, headDim: d, ropeTheta, ropeScaling } = this.cfg;
    const ropeOpts = { theta: ropeTheta, scaling: ropeScaling };
    let q = this.qProj.call(x).reshape(b, s, hq, d);
    let k = this.kProj.call(x).reshape(b, s, hkv, d);
    let v = this.vProj.call(x).reshape(b, s, hkv, d);
    if (this.qNorm && this.kNorm) {
      q = rmsNorm(q, this.qNorm.weight, this.cfg.rmsNormEps);
      k = rmsNorm(k, this.kNorm.weight, this.cfg.rmsNormEps);
    }
    q = rope(q, ctx.positions, ropeOpts);
    k = rope(k, ctx.positions, ropeOpts);
    const cache = ctx.cache?.[this.layerIdx];
    if (cache) {
      const nk = cache.k ? cat([cache.k, k], 1) : k.reshape(k.shape);
      const nv = cache.v ? cat([cache.v, v], 1) : v.reshape(v.shape);
      cache.k?.dispose();
      cache.v?.dispose();
      cache.k = keep(nk);
      cache.v = keep(nv);
      k = nk;
      v = nv;
    }
    let o: Tensor;
    if (ctx.mask) o = maskedAttention(q, k, v, ctx.mask, 1 / Math.sqrt(d));
    else if (ctx.cuSeqlens) {
      if (b !== 1 || cache)
        throw new Error(`Attention: cuSeqlens needs one packed row (B = 1) and no cache, got B = ${b}`);
      const flat = (t: Tensor) => t.reshape(t.shape[1]!, t.shape[2]!, d);
      o = attention(flat(q), flat(k), flat(v), { causal: true, cuSeqlens: ctx.cuSeqlens });
    } else o = attention(q, k, v, { causal: true });
    return this.oProj.call(o.reshape(b, s, hq * d));
  }
}
