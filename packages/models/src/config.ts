// Hugging Face `config.json` → a validated, camel-cased model configuration.
import type { RopeScaling } from '@omnitrain/core';

/** The architectures this package implements, by Hugging Face `model_type`. */
export const SUPPORTED_MODEL_TYPES = ['llama', 'qwen2', 'qwen3', 'qwen3_moe'] as const;

/** A supported Hugging Face `model_type`. */
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** Mixture-of-experts settings (`qwen3_moe`). */
export interface MoeConfig {
  /** `num_experts`: experts per sparse layer. */
  numExperts: number;
  /** `num_experts_per_tok`: experts each token is routed to (top-k). */
  numExpertsPerTok: number;
  /** `moe_intermediate_size`: each expert's MLP width. */
  moeIntermediateSize: number;
  /** `norm_topk_prob`: renormalise the top-k routing probabilities to sum to 1. */
  normTopkProb: boolean;
  /** `decoder_sparse_step`: layer i is sparse when (i + 1) % step == 0 (and not in `mlpOnlyLayers`). */
  decoderSparseStep: number;
  /** `mlp_only_layers`: layers that keep a dense MLP. */
  mlpOnlyLayers: number[];
  /** `router_aux_loss_coef`: weight of the load-balancing loss added to the LM loss. */
  routerAuxLossCoef: number;
  /** `output_router_logits`: compute the load-balancing loss in training forwards. */
  outputRouterLogits: boolean;
}

/** A decoder-only LLM configuration (llama / qwen2 / qwen3 / qwen3_moe). */
export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  /** Dense MLP width. */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  /** Bias on q_proj, k_proj, v_proj. */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oProjBias: boolean;
  /** Bias on gate_proj, up_proj, down_proj (llama `mlp_bias`). */
  mlpBias: boolean;
  /** Per-head RMSNorm on q and k before rope (qwen3). */
  qkNorm: boolean;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** Present for mixture-of-experts models. */
  moe?: MoeConfig;
  /** The `config.json` object this was parsed from (written back by `saveToPretrained`). */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function fail(where: string, msg: string): never {
  throw new Error(`config${where ? ` (${where})` : ''}: ${msg}`);
}

function int(j: Json, key: string, where: string, dflt?: number, min = 1): number {
  const v = j[key] ?? dflt;
  if (v === undefined) fail(where, `'${key}' is missing`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    fail(where, `'${key}' must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(j: Json, key: string, where: string, dflt: number, positive = true): number {
  const v = j[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive ? v <= 0 : v < 0)) {
    fail(where, `'${key}' must be a finite number ${positive ? '> 0' : '>= 0'}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(j: Json, key: string, where: string, dflt: boolean): boolean {
  const v = j[key] ?? dflt;
  if (typeof v !== 'boolean') fail(where, `'${key}' must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function parseRopeScaling(j: Json, where: string): RopeScaling | undefined {
  const rs = j.rope_scaling;
  if (rs === undefined || rs === null) return undefined;
  if (typeof rs !== 'object' || Array.isArray(rs)) fail(where, `'rope_scaling' must be an object or null`);
  const s = rs as Json;
  const type = s.rope_type ?? s.type;
  if (type === 'default') return undefined;
  if (type === 'linear') return { type: 'linear', factor: num(s, 'factor', `${where} rope_scaling`, Number.NaN) };
  if (type === 'llama3') {
    const w = `${where} rope_scaling`;
    return {
      type: 'llama3',
      factor: num(s, 'factor', w, Number.NaN),
      lowFreqFactor: num(s, 'low_freq_factor', w, 1),
      highFreqFactor: num(s, 'high_freq_factor', w, 4),
      originalMaxPositionEmbeddings: num(s, 'original_max_position_embeddings', w, 8192),
    };
  }
  return fail(where, `rope_scaling type '${String(type)}' is not supported; supported: 'default', 'linear', 'llama3'`);
}

/**
 * Parse a Hugging Face `config.json` object for `llama`, `qwen2`, `qwen3` or `qwen3_moe`.
 * Sizes (`vocab_size`, `hidden_size`, `intermediate_size`, `num_hidden_layers`,
 * `num_attention_heads`) are required; other keys take Hugging Face's defaults.
 * `head_dim` is read when present (qwen3 always has it), else `hidden_size / num_attention_heads`.
 *
 * @param json the parsed config.json
 * @param where a label for errors (e.g. the file path)
 */
export function parseConfig(json: unknown, where = ''): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(where, 'expected a JSON object');
  const j = json as Json;
  const modelType = j.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    fail(where, `unknown model_type ${JSON.stringify(modelType)}; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const mt = modelType as ModelType;
  const hiddenSize = int(j, 'hidden_size', where);
  const numAttentionHeads = int(j, 'num_attention_heads', where);
  const numKeyValueHeads = int(j, 'num_key_value_heads', where, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(
      where,
      `num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`,
    );
  }
  const hasHeadDim = j.head_dim !== undefined && j.head_dim !== null;
  if (!hasHeadDim && hiddenSize % numAttentionHeads !== 0) {
    fail(
      where,
      `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}) and head_dim is not given`,
    );
  }
  const headDim = hasHeadDim ? int(j, 'head_dim', where) : hiddenSize / numAttentionHeads;
  if (headDim % 2 !== 0) fail(where, `head_dim (${headDim}) must be even for rotary embeddings`);
  const attentionBias = bool(j, 'attention_bias', where, false);
  const cfg: ModelConfig = {
    modelType: mt,
    vocabSize: int(j, 'vocab_size', where),
    hiddenSize,
    intermediateSize: int(j, 'intermediate_size', where),
    numHiddenLayers: int(j, 'num_hidden_layers', where),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: num(j, 'rms_norm_eps', where, 1e-6),
    ropeTheta: num(j, 'rope_theta', where, 10000),
    ropeScaling: parseRopeScaling(j, where),
    qkvBias: mt === 'qwen2' ? true : attentionBias,
    oProjBias: mt === 'qwen2' ? false : attentionBias,
    mlpBias: mt === 'llama' ? bool(j, 'mlp_bias', where, false) : false,
    qkNorm: mt === 'qwen3' || mt === 'qwen3_moe',
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', where, false),
    maxPositionEmbeddings: int(j, 'max_position_embeddings', where, mt === 'llama' ? 2048 : 32768),
    raw: { ...j },
  };
  if (mt === 'qwen2' && j.use_sliding_window === true) {
    fail(where, `use_sliding_window: true is not supported (sliding-window attention is not implemented)`);
  }
  if (mt === 'qwen3_moe') {
    const numExperts = int(j, 'num_experts', where, 128, 0);
    const numExpertsPerTok = int(j, 'num_experts_per_tok', where, 8);
    if (numExperts > 0 && numExpertsPerTok > numExperts) {
      fail(where, `num_experts_per_tok (${numExpertsPerTok}) exceeds num_experts (${numExperts})`);
    }
    const mlpOnly = j.mlp_only_layers ?? [];
    if (!Array.isArray(mlpOnly) || mlpOnly.some((v) => !Number.isInteger(v) || v < 0)) {
      fail(where, `'mlp_only_layers' must be a list of layer indices, got ${JSON.stringify(mlpOnly)}`);
    }
    cfg.moe = {
      numExperts,
      numExpertsPerTok,
      moeIntermediateSize: int(j, 'moe_intermediate_size', where, 768),
      normTopkProb: bool(j, 'norm_topk_prob', where, false),
      decoderSparseStep: int(j, 'decoder_sparse_step', where, 1),
      mlpOnlyLayers: mlpOnly as number[],
      routerAuxLossCoef: num(j, 'router_aux_loss_coef', where, 0.001, false),
      outputRouterLogits: bool(j, 'output_router_logits', where, false),
    };
  }
  return cfg;
}

/** Whether decoder layer `i` has a sparse (mixture-of-experts) MLP, as Hugging Face's Qwen3-MoE decides. */
export function isSparseLayer(cfg: ModelConfig, i: number): boolean {
  const m = cfg.moe;
  if (!m || m.numExperts <= 0) return false;
  return !m.mlpOnlyLayers.includes(i) && (i + 1) % m.decoderSparseStep === 0;
}

/** The `config.json` object for `cfg`: its original keys, with the fields this package reads written back. */
export function toHfConfig(cfg: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...cfg.raw,
    model_type: cfg.modelType,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numHiddenLayers,
    num_attention_heads: cfg.numAttentionHeads,
    num_key_value_heads: cfg.numKeyValueHeads,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    max_position_embeddings: cfg.maxPositionEmbeddings,
  };
  if (cfg.raw.head_dim !== undefined || cfg.headDim !== cfg.hiddenSize / cfg.numAttentionHeads) {
    out.head_dim = cfg.headDim;
  }
  if (cfg.modelType !== 'qwen2') out.attention_bias = cfg.qkvBias;
  if (cfg.moe) {
    const m = cfg.moe;
    Object.assign(out, {
      num_experts: m.numExperts,
      num_experts_per_tok: m.numExpertsPerTok,
      moe_intermediate_size: m.moeIntermediateSize,
      norm_topk_prob: m.normTopkProb,
      decoder_sparse_step: m.decoderSparseStep,
      mlp_only_layers: m.mlpOnlyLayers,
      router_aux_loss_coef: m.routerAuxLossCoef,
      output_router_logits: m.outputRouterLogits,
    });
  }
  return out;
}
