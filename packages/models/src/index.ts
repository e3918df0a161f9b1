/**
 * @omnitrain/models — foundation LLMs (llama, qwen2, qwen3, qwen3_moe) with Hugging Face config and weights:
 * configs parsed from `config.json`, models with Hugging Face parameter names and a parallel plan,
 * `fromPretrained` / `saveToPretrained` over safetensors, and generation with a KV cache.
 * @packageDocumentation
 */

export { ARCHITECTURES, type Architecture, architectureFor, createModel, plugin } from './architectures.js';
export { Attention, type LayerCache, type LayerContext, maskedAttention } from './attention.js';
export {
  isSparseLayer,
  type ModelConfig,
  type ModelType,
  type MoeConfig,
  parseConfig,
  SUPPORTED_MODEL_TYPES,
  toHfConfig,
} from './config.js';
export { type GenerateOptions, generate } from './generate.js';
export { Mlp } from './mlp.js';
export {
  CausalLM,
  type CausalLMOutput,
  DecoderLayer,
  DecoderModel,
  type ForwardOptions,
  type ModelOptions,
} from './model.js';
export { Experts, loadBalancingLoss, SparseMoeBlock, topK } from './moe.js';
export {
  type AttentionEntry,
  type ExpertsEntry,
  type HfMapping,
  hfStateDict,
  type ParallelPlan,
  parallelPlanOf,
} from './plan.js';
export {
  type FromPretrainedOptions,
  fromPretrained,
  readConfigJson,
  type SaveOptions,
  saveToPretrained,
} from './pretrained.js';
