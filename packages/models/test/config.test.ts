// config.json parsing, registry lookup and the parallel plan.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRegistry } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import {
  architectureFor,
  CausalLM,
  createModel,
  isSparseLayer,
  parseConfig,
  plugin,
  SUPPORTED_MODEL_TYPES,
  toHfConfig,
} from '../src/index.js';
import { FIXTURES } from './helpers.js';

const fixtureConfig = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));

describe('parseConfig', () => {
  it('reads llama with llama3 rope scaling, biases and tied embeddings', () => {
    const c = parseConfig(fixtureConfig('llama-odd'));
    expect(c).toMatchObject({
      modelType: 'llama',
      vocabSize: 251,
      hiddenSize: 40,
      headDim: 48,
      numAttentionHeads: 3,
      numKeyValueHeads: 1,
      qkvBias: true,
      oProjBias: true,
      mlpBias: true,
      qkNorm: false,
      tieWordEmbeddings: true,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 16,
      },
    });
  });

  it('qwen2 has q/k/v bias and derives head_dim; qwen3 has q/k norm and an explicit head_dim', () => {
    const q2 = parseConfig(fixtureConfig('qwen2-odd'));
    expect([q2.qkvBias, q2.oProjBias, q2.headDim, q2.qkNorm]).toEqual([true, false, 48, false]);
    const q3 = parseConfig(fixtureConfig('qwen3-base'));
    expect([q3.qkvBias, q3.headDim, q3.qkNorm]).toEqual([false, 8, true]);
  });

  it('qwen3_moe: experts, routing and sparse layers (decoder_sparse_step, mlp_only_layers)', () => {
    const c = parseConfig(fixtureConfig('qwen3_moe-odd'));
    expect(c.moe).toEqual({
      numExperts: 5,
      numExpertsPerTok: 3,
      moeIntermediateSize: 20,
      normTopkProb: false,
      decoderSparseStep: 1,
      mlpOnlyLayers: [1],
      routerAuxLossCoef: 0.05,
      outputRouterLogits: true,
    });
    expect([0, 1, 2].map((i) => isSparseLayer(c, i))).toEqual([true, false, true]);
    const stepped = parseConfig({
      ...fixtureConfig('qwen3_moe-base'),
      num_hidden_layers: 6,
      decoder_sparse_step: 2,
      mlp_only_layers: [3],
    });
    expect([0, 1, 2, 3, 4, 5].map((i) => isSparseLayer(stepped, i))).toEqual([false, true, false, false, false, true]);
    const m = new CausalLM(stepped, { device: 'meta' });
    expect(m.parallelPlan().experts.map((e) => e.module)).toEqual([
      'model.layers.1.mlp.experts',
      'model.layers.5.mlp.experts',
    ]);
  });

  it('errors name the key and the problem', () => {
    const base = fixtureConfig('llama-base');
    expect(() => parseConfig({ ...base, model_type: 'bert' }, 'x/config.json')).toThrow(
      'config (x/config.json): unknown model_type "bert"; supported: llama, qwen2, qwen3, qwen3_moe',
    );
    const { hidden_size: _, ...noHidden } = base;
    expect(() => parseConfig(noHidden)).toThrow("'hidden_size' is missing");
    expect(() => parseConfig({ ...base, num_key_value_heads: 3 })).toThrow(/multiple of num_key_value_heads \(3\)/);
    expect(() => parseConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 2 } })).toThrow(
      /'yarn' is not supported/,
    );
    expect(() => parseConfig({ ...base, rms_norm_eps: -1 })).toThrow(/'rms_norm_eps' must be a finite number > 0/);
  });

  it('toHfConfig writes back what was read', () => {
    for (const n of ['llama-odd', 'qwen2-odd', 'qwen3_moe-odd']) {
      const j = fixtureConfig(n);
      const back = toHfConfig(parseConfig(j));
      for (const [k, v] of Object.entries(j)) expect(back[k], `${n} ${k}`).toEqual(v);
      const { raw: _a, ...again } = parseConfig(back);
      const { raw: _b, ...first } = parseConfig(j);
      expect(again).toEqual(first);
    }
  });
});

describe('registry', () => {
  it('the plugin registers every model_type; unknown ones list the registered', () => {
    const r = createRegistry();
    r.use(plugin);
    expect(r.models.names()).toEqual([...SUPPORTED_MODEL_TYPES]);
    expect(() => architectureFor('mistral', 'here', r)).toThrow(
      'here: unknown model_type "mistral"; supported: llama, qwen2, qwen3, qwen3_moe',
    );
    const m = createModel(fixtureConfig('qwen3-odd'), { device: 'meta' });
    expect(m.config.modelType).toBe('qwen3');
  });
});

describe('parallel plan and Hugging Face names', () => {
  it('qwen3 names, blocks and attention modules', () => {
    const m = createModel(fixtureConfig('qwen3-odd'), { device: 'meta' });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('model.embed_tokens.weight');
    expect(names).toContain('model.layers.2.self_attn.q_norm.weight');
    expect(names).toContain('model.layers.0.mlp.gate_proj.weight');
    expect(names).toContain('model.layers.0.post_attention_layernorm.weight');
    expect(names).toContain('model.norm.weight');
    expect(names).toContain('lm_head.weight');
    const plan = m.parallelPlan();
    expect(plan.blocks).toEqual(['model.layers.0', 'model.layers.1', 'model.layers.2']);
    expect(plan.attention[1]).toEqual({
      module: 'model.layers.1.self_attn',
      numHeads: 3,
      numKeyValueHeads: 1,
      headDim: 48,
    });
    expect(plan.experts).toEqual([]);
    expect(plan.hf.every((h) => !h.stacked && h.hfNames[0] === h.name)).toBe(true);
  });

  it('tied models have no lm_head; MoE experts map to per-expert names both ways', () => {
    const m = createModel(fixtureConfig('qwen3_moe-odd'), { device: 'meta' });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).not.toContain('lm_head.weight');
    expect(names).toContain('model.layers.0.mlp.gate.weight');
    expect(names).toContain('model.layers.0.mlp.experts.gate_proj');
    expect(names).toContain('model.layers.1.mlp.gate_proj.weight');
    const plan = m.parallelPlan();
    expect(plan.experts).toEqual([
      {
        module: 'model.layers.0.mlp.experts',
        params: [
          'model.layers.0.mlp.experts.gate_proj',
          'model.layers.0.mlp.experts.up_proj',
          'model.layers.0.mlp.experts.down_proj',
        ],
        numExperts: 5,
      },
      {
        module: 'model.layers.2.mlp.experts',
        params: [
          'model.layers.2.mlp.experts.gate_proj',
          'model.layers.2.mlp.experts.up_proj',
          'model.layers.2.mlp.experts.down_proj',
        ],
        numExperts: 5,
      },
    ]);
    const down = plan.hf.find((h) => h.name === 'model.layers.2.mlp.experts.down_proj')!;
    expect(down.stacked).toBe(true);
    expect(down.hfNames).toEqual([0, 1, 2, 3, 4].map((e) => `model.layers.2.mlp.experts.${e}.down_proj.weight`));
    expect(plan.fromHf('model.layers.2.mlp.experts.3.down_proj.weight')).toEqual({
      name: 'model.layers.2.mlp.experts.down_proj',
      index: 3,
    });
    expect(plan.fromHf('model.norm.weight')).toEqual({ name: 'model.norm.weight' });
    expect(plan.fromHf('nope')).toBeUndefined();
    expect(m.model.layers.at(0).mlp.constructor.name).toBe('SparseMoeBlock');
  });
});
