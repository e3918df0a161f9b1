// Tensors of the parallel Hugging Face export/import tests: a small model's state dict (f32 and
// bf16, rows not divisible by the world size, one tensor with fewer rows than ranks, one whole
// replicated tensor). Any block of any tensor can be rebuilt by any process (see data.ts).
import type { Spec } from './data.js';

export const HF_SPECS: (Spec & { replicated?: boolean })[] = [
  { name: 'model.embed_tokens.weight', shape: [37, 8], dtype: 'bfloat16', dim: 0 },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [16, 8], dtype: 'float32', dim: 0 },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [21, 8], dtype: 'bfloat16', dim: 0 },
  { name: 'model.layers.0.input_layernorm.weight', shape: [8], dtype: 'float32', dim: 0 },
  { name: 'model.tiny', shape: [3, 4], dtype: 'float32', dim: 0 },
  { name: 'model.norm.weight', shape: [8], dtype: 'bfloat16', dim: 0, replicated: true },
  { name: 'lm_head.weight', shape: [37, 8], dtype: 'float32', dim: 0 },
];
