// Our models against the PyTorch reference (tools/fixtures/models/gen_models.py): logits, loss,
// every parameter's gradient, MoE routing and aux loss, and 32 greedy tokens, in float32.
import { join } from 'node:path';
import { dispose, memoryStats, noGrad, type Tensor, tidy } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { fromPretrained, generate, hfStateDict } from '../src/index.js';
import { FIXTURE_NAMES, FIXTURES, loadReference, relErr } from './helpers.js';

describe.each(FIXTURE_NAMES)('%s matches the PyTorch reference', (name) => {
  it('float32 logits, loss, gradients and routing within 1e-4', () => {
    const ref = loadReference(name);
    const model = fromPretrained(join(FIXTURES, name));
    const before = memoryStats('cpu').liveTensors;
    try {
      const ids = ref.ids!;
      const out = noGrad(() =>
        tidy(() => {
          const r = model.forward(ids);
          return { logits: Float32Array.from(r.logits!.toTypedArray()), routing: r.routing };
        }),
      );
      expect(memoryStats('cpu').liveTensors).toBe(before);
      expect(relErr(out.logits, ref.logits!.toTypedArray())).toBeLessThan(1e-4);
      const moeLayers = Object.keys(ref)
        .filter((k) => k.startsWith('routing.'))
        .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
      expect(out.routing?.length ?? 0).toBe(moeLayers.length);
      moeLayers.forEach((k, i) => {
        expect(Array.from(out.routing![i]!)).toEqual(ref[k]!.toArray());
      });

      const { loss, aux } = tidy(() => {
        const r = model.forward(ids, { labels: ref.labels! });
        r.loss!.backward();
        return { loss: r.loss!.item(), aux: r.auxLoss?.item() };
      });
      expect(Math.abs(loss - ref.loss!.item()) / Math.abs(ref.loss!.item())).toBeLessThan(1e-4);
      if (ref.aux_loss) expect(Math.abs(aux! - ref.aux_loss.item()) / ref.aux_loss.item()).toBeLessThan(1e-4);
      else expect(aux).toBeUndefined();

      // Gradients under Hugging Face names (stacked experts split per expert).
      const grads = new Map<string, Tensor>();
      const plan = model.parallelPlan();
      const params = new Map(model.namedParameters());
      for (const m of plan.hf) {
        const g = params.get(m.name)!.grad!;
        expect(g, m.name).toBeTruthy();
        m.hfNames.forEach((n, e) => {
          grads.set(n, m.stacked ? g.slice0(e, e + 1) : g);
        });
      }
      const refGrads = Object.keys(ref).filter((k) => k.startsWith('grad.'));
      expect(refGrads.length).toBe(grads.size);
      for (const k of refGrads) {
        const hf = k.slice(5);
        const g = grads.get(hf);
        expect(g, hf).toBeDefined();
        expect(relErr(g!.toTypedArray(), ref[k]!.toTypedArray()), hf).toBeLessThan(1e-4);
      }
      for (const [n, g] of grads) if (plan.fromHf(n)?.index !== undefined) g.dispose();
      model.zeroGrad();
      expect(memoryStats('cpu').liveTensors).toBe(before);
    } finally {
      model.dispose();
      dispose(ref);
    }
  });

  it('greedy generation reproduces the 32 reference tokens (with the KV cache)', () => {
    const ref = loadReference(name);
    const model = fromPretrained(join(FIXTURES, name));
    try {
      const tokens = generate(model, [ref.prompt!.toArray()], { maxNewTokens: 32 });
      expect(tokens[0]).toEqual(ref.greedy!.toArray());
    } finally {
      model.dispose();
      dispose(ref);
    }
  });
});

describe('bfloat16', () => {
  it.each(FIXTURE_NAMES)('%s: bf16 logits and loss within 2e-2 of the reference', (name) => {
    const ref = loadReference(name);
    const model = fromPretrained(join(FIXTURES, name), { dtype: 'bfloat16' });
    try {
      expect(model.outputWeight.dtype).toBe('bfloat16');
      const logits = tidy(() => Float32Array.from(model.forward(ref.ids!).logits!.toTypedArray()));
      expect(relErr(logits, ref.logits!.toTypedArray())).toBeLessThan(2e-2);
      const loss = tidy(() => model.forward(ref.ids!, { labels: ref.labels! }).loss!.item());
      expect(Math.abs(loss - ref.loss!.item()) / ref.loss!.item()).toBeLessThan(2e-2);
    } finally {
      model.dispose();
      dispose(ref);
    }
  });
});

it('hfStateDict gives views under Hugging Face names', () => {
  const model = fromPretrained(join(FIXTURES, 'qwen3_moe-base'));
  const sd = hfStateDict(model);
  try {
    expect(sd.get('model.layers.0.mlp.experts.3.down_proj.weight')!.shape).toEqual([32, 24]);
    expect(sd.has('lm_head.weight')).toBe(true);
  } finally {
    dispose([...sd.values()]);
    model.dispose();
  }
});
