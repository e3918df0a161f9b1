// The decoder-only causal LM shared by llama, qwen2, qwen3 and qwen3_moe, with Hugging Face
// parameter names (`model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, ...).
import {
  add,
  arange,
  cat,
  expand,
  full,
  fusedLinearCrossEntropy,
  linear,
  mul,
  narrow,
  nn,
  type Tensor,
} from '@omnitrain/core';
import { Attention, type LayerCache, type LayerContext } from './attention.js';
import { isSparseLayer, type ModelConfig } from './config.js';
import { Mlp } from './mlp.js';
import { loadBalancingLoss, SparseMoeBlock } from './moe.js';
import { type ParallelPlan, parallelPlanOf } from './plan.js';

/** One decoder layer: pre-norm attention and pre-norm MLP (dense or mixture-of-experts), each residual. */
export class DecoderLayer extends nn.Module {
  readonly layerIdx: number;
  selfAttn: Attention;
  mlp: Mlp | SparseMoeBlock;
  inputLayernorm: nn.RMSNorm;
  postAttentionLayernorm: nn.RMSNorm;

  constructor(cfg: ModelConfig, layerIdx: number, opts: nn.LayerOptions = {}) {
    super();
    this.layerIdx = layerIdx;
    this.selfAttn = this.registerModule('self_attn', new Attention(cfg, layerIdx, opts));
    this.mlp = isSparseLayer(cfg, layerIdx)
      ? new SparseMoeBlock(cfg.hiddenSize, cfg.moe!, opts)
      : new Mlp(cfg.hiddenSize, cfg.intermediateSize, { ...opts, bias: cfg.mlpBias });
    this.inputLayernorm = this.registerModule('input_layernorm', new nn.RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts));
    this.postAttentionLayernorm = this.registerModule(
      'post_attention_layernorm',
      new nn.RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts),
    );
  }

  override forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = add(x, this.selfAttn.call(this.inputLayernorm.call(x), ctx));
    const n = this.postAttentionLayernorm.call(h);
    const m = this.mlp instanceof SparseMoeBlock ? this.mlp.call(n, ctx) : this.mlp.call(n);
    return add(h, m);
  }
}

/** The transformer body (`model`): `embed_tokens`, `layers`, final `norm`. Returns hidden states. */
export class DecoderModel extends nn.Module {
  embedTokens: nn.Embedding;
  layers: nn.ModuleList<DecoderLayer>;
  norm: nn.RMSNorm;

  constructor(cfg: ModelConfig, opts: nn.LayerOptions = {}) {
    super();
    this.embedTokens = this.registerModule('embed_tokens', new nn.Embedding(cfg.vocabSize, cfg.hiddenSize, opts));
    this.layers = new nn.ModuleList(
      Array.from({ length: cfg.numHiddenLayers }, (_, i) => new DecoderLayer(cfg, i, opts)),
    );
    this.norm = new nn.RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, opts);
  }

  override forward(ids: Tensor, ctx: LayerContext): Tensor {
    let h = this.embedTokens.call(ids);
    for (const layer of this.layers) h = layer.call(h, ctx);
    return this.norm.call(h);
  }
}

/** Options of {@link CausalLM.forward}. */
export interface ForwardOptions {
  /** int32 [B, S] rotary positions; default 0..S-1 for every row. */
  positions?: Tensor;
  /**
   * int32 [B, S] labels, Hugging Face style: the loss at position t predicts `labels[t + 1]`
   * (shifted inside), -100 is ignored. When given the result has `loss` and no logits.
   */
  labels?: Tensor;
  /**
   * Packed sequences in one row (ids [1, T]): int32 [nSeq + 1] cumulative lengths; attention
   * stays inside each sequence. Give `positions` restarting at 0 per sequence, and labels with
   * -100 at each sequence's first token (the loss there would predict across the boundary).
   */
  cuSeqlens?: Tensor;
  /** Per-layer KV caches (generation); keys and values are appended. */
  cache?: LayerCache[];
  /** Additive float32 mask [B, 1, S, Skv] (generation with padding); default causal. */
  mask?: Tensor;
  /** Only compute logits for the last `n` positions (generation). */
  logitsToKeep?: number;
  /** Compute the MoE load-balancing loss (default: the config's `output_router_logits`). */
  outputRouterLogits?: boolean;
}

/** What {@link CausalLM.forward} returns. */
export interface CausalLMOutput {
  /** [B, S, vocab] (or the last `logitsToKeep` positions) when no labels were given. */
  logits?: Tensor;
  /** Mean next-token cross-entropy (+ `router_aux_loss_coef * auxLoss` for MoE with router logits). */
  loss?: Tensor;
  /** MoE load-balancing loss (unscaled, as Hugging Face's `aux_loss`), when requested. */
  auxLoss?: Tensor;
  /** MoE: experts chosen per token (T x topK, row-major) for each sparse layer, in layer order. */
  routing?: Int32Array[];
}

/** Construction options: where the parameters live and their dtype. */
export interface ModelOptions extends nn.LayerOptions {}

/**
 * A decoder-only causal language model (`LlamaForCausalLM`, `Qwen2ForCausalLM`,
 * `Qwen3ForCausalLM`, `Qwen3MoeForCausalLM`): `model` (embeddings, layers, norm) and
 * `lm_head` (absent when `tie_word_embeddings`: the embedding matrix is used).
 */
export class CausalLM extends nn.Module {
  readonly config: ModelConfig;
  model: DecoderModel;
  lmHead: nn.Linear | null = null;

  constructor(config: ModelConfig, opts: ModelOptions = {}) {
    super();
    this.config = config;
    this.model = new DecoderModel(config, opts);
    if (!config.tieWordEmbeddings) {
      this.lmHead = this.registerModule(
        'lm_head',
        new nn.Linear(config.hiddenSize, config.vocabSize, { ...opts, bias: false }),
      );
    }
  }

  /** The output projection [vocab, hidden] (the embedding matrix when tied). */
  get outputWeight(): Tensor {
    return this.lmHead ? this.lmHead.weight : this.model.embedTokens.weight;
  }

  /** The model's parallel plan: FSDP blocks, attention modules, experts, Hugging Face names. */
  parallelPlan(): ParallelPlan {
    return parallelPlanOf(this);
  }

  /** Run the model on `ids` [B, S] (int32): logits, or with `labels` the loss. */
  override forward(ids: Tensor, opts: ForwardOptions = {}): CausalLMOutput {
    if (ids.dtype !== 'int32' || ids.ndim !== 2) {
      throw new Error(`CausalLM.forward: ids must be int32 [B, S], got ${ids.dtype} ${JSON.stringify(ids.shape)}`);
    }
    const [b, s] = ids.shape as [number, number];
    const positions = opts.positions ?? expand(arange(s, undefined, 1, { device: ids.device }).reshape(1, s), [b, s]);
    const ctx: LayerContext = {
      positions,
      mask: opts.mask,
      cuSeqlens: opts.cuSeqlens,
      cache: opts.cache,
      routerLogits: [],
      routing: [],
    };
    const hidden = this.model.call(ids, ctx);
    const out: CausalLMOutput = {};
    const moe = this.config.moe;
    if (moe) out.routing = ctx.routing;
    const wantAux = moe && (opts.outputRouterLogits ?? moe.outputRouterLogits) && ctx.routerLogits.length > 0;
    if (wantAux) out.auxLoss = loadBalancingLoss(ctx.routerLogits, ctx.routing, moe.numExperts);
    const w = this.outputWeight;
    if (opts.labels) {
      const labels = opts.labels;
      if (labels.dtype !== 'int32' || labels.shape[0] !== b || labels.shape[1] !== s || labels.ndim !== 2) {
        throw new Error(
          `CausalLM.forward: labels must be int32 ${JSON.stringify([b, s])} like ids, got ${labels.dtype} ${JSON.stringify(labels.shape)}`,
        );
      }
      const pad = full([b, 1], -100, { dtype: 'int32', device: labels.device });
      const shifted = s > 1 ? cat([narrow(labels, 1, 1, s - 1), pad], 1) : pad;
      const h = this.config.hiddenSize;
      let loss = fusedLinearCrossEntropy(hidden.reshape(-1, h), w, shifted.reshape(-1), { chunkSize: 1024 });
      if (out.auxLoss && moe) loss = add(loss, mul(out.auxLoss, moe.routerAuxLossCoef));
      out.loss = loss;
      return out;
    }
    const keepN = opts.logitsToKeep;
    const hs = keepN !== undefined && keepN > 0 && keepN < s ? narrow(hidden, 1, s - keepN, keepN) : hidden;
    out.logits = linear(hs, w);
    return out;
  }
}
