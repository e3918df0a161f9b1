// A tiny decoder-only transformer (Llama/Qwen2 shape: RMSNorm, RoPE, GQA attention, SwiGLU),
// written from @omnitrain/core alone.
import { add, attention, fusedLinearCrossEntropy, linear, nn, rope, swiglu, type Tensor } from '@omnitrain/core';

export interface CharModelConfig {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  ropeTheta: number;
}

class Attention extends nn.Module {
  readonly cfg: CharModelConfig;
  readonly headDim: number;
  qProj: nn.Linear;
  kProj: nn.Linear;
  vProj: nn.Linear;
  oProj: nn.Linear;

  constructor(cfg: CharModelConfig) {
    super();
    this.cfg = cfg;
    this.headDim = cfg.hidden / cfg.heads;
    this.qProj = new nn.Linear(cfg.hidden, cfg.heads * this.headDim, { bias: false });
    this.kProj = new nn.Linear(cfg.hidden, cfg.kvHeads * this.headDim, { bias: false });
    this.vProj = new nn.Linear(cfg.hidden, cfg.kvHeads * this.headDim, { bias: false });
    this.oProj = new nn.Linear(cfg.heads * this.headDim, cfg.hidden, { bias: false });
  }

  override forward(x: Tensor, positions: Tensor): Tensor {
    const [b, s] = x.shape as [number, number, number];
    const { heads, kvHeads, ropeTheta } = this.cfg;
    const q = rope(this.qProj.call(x).reshape(b, s, heads, this.headDim), positions, { theta: ropeTheta });
    const k = rope(this.kProj.call(x).reshape(b, s, kvHeads, this.headDim), positions, { theta: ropeTheta });
    const v = this.vProj.call(x).reshape(b, s, kvHeads, this.headDim);
    const o = attention(q, k, v, { causal: true });
    return this.oProj.call(o.reshape(b, s, heads * this.headDim));
  }
}

class Mlp extends nn.Module {
  gateProj: nn.Linear;
  upProj: nn.Linear;
  downProj: nn.Linear;

  constructor(cfg: CharModelConfig) {
    super();
    this.gateProj = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
    this.upProj = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
    this.downProj = new nn.Linear(cfg.ffn, cfg.hidden, { bias: false });
  }

  override forward(x: Tensor): Tensor {
    return this.downProj.call(swiglu(this.gateProj.call(x), this.upProj.call(x)));
  }
}

class Block extends nn.Module {
  inputNorm: nn.RMSNorm;
  attn: Attention;
  postNorm: nn.RMSNorm;
  mlp: Mlp;

  constructor(cfg: CharModelConfig) {
    super();
    this.inputNorm = new nn.RMSNorm(cfg.hidden, 1e-6);
    this.attn = new Attention(cfg);
    this.postNorm = new nn.RMSNorm(cfg.hidden, 1e-6);
    this.mlp = new Mlp(cfg);
  }

  override forward(x: Tensor, positions: Tensor): Tensor {
    const h = add(x, this.attn.call(this.inputNorm.call(x), positions));
    return add(h, this.mlp.call(this.postNorm.call(h)));
  }
}

/** Embedding → blocks → final norm; the LM head is applied by the loss or `logits`. */
export class CharTransformer extends nn.Module {
  readonly cfg: CharModelConfig;
  embed: nn.Embedding;
  layers: nn.ModuleList<Block>;
  norm: nn.RMSNorm;
  lmHead: nn.Linear;

  constructor(cfg: CharModelConfig) {
    super();
    this.cfg = cfg;
    this.embed = new nn.Embedding(cfg.vocabSize, cfg.hidden);
    this.layers = new nn.ModuleList(Array.from({ length: cfg.layers }, () => new Block(cfg)));
    this.norm = new nn.RMSNorm(cfg.hidden, 1e-6);
    this.lmHead = new nn.Linear(cfg.hidden, cfg.vocabSize, { bias: false });
  }

  /** Final hidden states [B, S, hidden] for ids [B, S]. */
  override forward(ids: Tensor, positions: Tensor): Tensor {
    let h = this.embed.call(ids);
    for (const block of this.layers) h = block.call(h, positions);
    return this.norm.call(h);
  }

  /** Mean next-token loss: the fused, chunked LM head + cross-entropy (never holds all logits). */
  loss(ids: Tensor, positions: Tensor, labels: Tensor): Tensor {
    const h = (this as CharTransformer).call(ids, positions); // through call(): hooks run
    const flat = h.reshape(-1, this.cfg.hidden);
    return fusedLinearCrossEntropy(flat, this.lmHead.weight, labels.reshape(-1), { chunkSize: 256 });
  }

  /** Logits [B, S, vocab]. */
  logits(ids: Tensor, positions: Tensor): Tensor {
    return linear((this as CharTransformer).call(ids, positions), this.lmHead.weight);
  }
}
