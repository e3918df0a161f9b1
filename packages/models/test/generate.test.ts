// Generation: cached = uncached, batched prompts of different lengths = one by one, sampling
// options and stop tokens.
import { join } from 'node:path';
import { dispose, Generator, memoryStats, noGrad, tensor, tidy } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleToken } from '../src/generate.js';
import { type CausalLM, fromPretrained, generate } from '../src/index.js';
import { FIXTURES, loadReference, relErr } from './helpers.js';

describe.each(['qwen3_moe-odd', 'llama-odd', 'qwen2-base'])('%s', (name) => {
  let model: CausalLM;
  let prompt: number[];
  beforeAll(() => {
    model = fromPretrained(join(FIXTURES, name));
    const ref = loadReference(name);
    prompt = ref.prompt!.toArray();
    dispose(ref);
  });
  afterAll(() => model.dispose());

  it('cached decoding equals uncached (tokens, and logits within 1e-5)', () => {
    const a: Float32Array[] = [];
    const b: Float32Array[] = [];
    const before = memoryStats('cpu').liveTensors;
    const cached = generate(model, [prompt], { maxNewTokens: 12, onLogits: (l) => a.push(l) });
    const uncached = generate(model, [prompt], { maxNewTokens: 12, useCache: false, onLogits: (l) => b.push(l) });
    expect(memoryStats('cpu').liveTensors).toBe(before);
    expect(cached).toEqual(uncached);
    a.forEach((l, i) => {
      expect(relErr(l, b[i]!)).toBeLessThan(1e-5);
    });
    // and the first step equals the plain forward's last-position logits
    const full = noGrad(() =>
      tidy(() => {
        const ids = tensor(prompt, { dtype: 'int32', shape: [1, prompt.length] });
        const l = model.forward(ids).logits!;
        return Float32Array.from(l.toTypedArray()).subarray((prompt.length - 1) * model.config.vocabSize);
      }),
    );
    expect(relErr(a[0]!, full)).toBeLessThan(1e-5);
  });

  it('batched prompts of different lengths give what each gives alone', () => {
    const prompts = [
      prompt,
      prompt.slice(2),
      [prompt[4]!, prompt[0]!, prompt[3]!, prompt[1]!, prompt[2]!, prompt[0]!, 7],
    ];
    const alone = prompts.map((p) => generate(model, [p], { maxNewTokens: 10 })[0]);
    const batched = generate(model, prompts, { maxNewTokens: 10 });
    expect(batched).toEqual(alone);
    const uncached = generate(model, prompts, { maxNewTokens: 10, useCache: false });
    expect(uncached).toEqual(alone);
  });
});

describe('sampling', () => {
  let model: CausalLM;
  let prompt: number[];
  beforeAll(() => {
    model = fromPretrained(join(FIXTURES, 'qwen3-odd'));
    const ref = loadReference('qwen3-odd');
    prompt = ref.prompt!.toArray();
    dispose(ref);
  });
  afterAll(() => model.dispose());

  it('top-k 1 and a tiny top-p are greedy; a seed makes sampling reproducible', () => {
    const greedy = generate(model, [prompt], { maxNewTokens: 16 });
    expect(generate(model, [prompt], { maxNewTokens: 16, temperature: 1, topK: 1, seed: 3 })).toEqual(greedy);
    expect(generate(model, [prompt], { maxNewTokens: 16, temperature: 1, topP: 1e-9, seed: 3 })).toEqual(greedy);
    const s1 = generate(model, [prompt, prompt], { maxNewTokens: 16, temperature: 1.5, seed: 11 });
    const s2 = generate(model, [prompt, prompt], { maxNewTokens: 16, temperature: 1.5, seed: 11 });
    expect(s1).toEqual(s2);
    expect(s1[0]).not.toEqual(s1[1]); // two rows draw different numbers
    expect(s1[0]).not.toEqual(greedy[0]);
  });

  it('a stop token ends a sequence (kept in the output) while the others go on', () => {
    const greedy = generate(model, [prompt], { maxNewTokens: 16 })[0]!;
    const stop = greedy[5]!;
    const first = greedy.indexOf(stop);
    const out = generate(model, [prompt, prompt.slice(1)], { maxNewTokens: 16, stopTokens: [stop] });
    expect(out[0]).toEqual(greedy.slice(0, first + 1));
    const other = generate(model, [prompt.slice(1)], { maxNewTokens: 16 })[0]!;
    const j = other.indexOf(stop);
    expect(out[1]).toEqual(j >= 0 ? other.slice(0, j + 1) : other);
  });

  it('sampleToken honours temperature, top-k and top-p', () => {
    const row = Float32Array.from([0, Math.log(4), Math.log(3), Math.log(2), Math.log(1)]); // probs 1:4:3:2:1 (/11)
    const gen = new Generator(5);
    const count = (opts: object, n = 4000) => {
      const c = new Array(5).fill(0);
      for (let i = 0; i < n; i++) c[sampleToken(row, opts, gen)]++;
      return c.map((v) => v / n);
    };
    expect(sampleToken(row, {}, gen)).toBe(1);
    const all = count({ temperature: 1 });
    [1, 4, 3, 2, 1].forEach((w, i) => {
      expect(all[i]).toBeCloseTo(w / 11, 1);
    });
    const k2 = count({ temperature: 1, topK: 2 });
    expect(k2[0] + k2[3] + k2[4]).toBe(0);
    expect(k2[1]).toBeCloseTo(4 / 7, 1);
    const p = count({ temperature: 1, topP: 0.6 }); // 4/11 + 3/11 = 0.636 >= 0.6
    expect(p[0] + p[3] + p[4]).toBe(0);
    const cold = count({ temperature: 0.05 });
    expect(cold[1]).toBeGreaterThan(0.99);
  });

  it('rejects bad prompts', () => {
    expect(() => generate(model, [])).toThrow(/non-empty list/);
    expect(() => generate(model, [[1], []])).toThrow(/prompt 1 is empty/);
    expect(() => generate(model, [[1, 251]])).toThrow(/token 251 outside \[0, 251\)/);
  });
});

describe('packed sequences (cuSeqlens)', () => {
  it('two sequences packed in one row give the logits and loss of separate runs', () => {
    const model = fromPretrained(join(FIXTURES, 'qwen3_moe-base'));
    try {
      const a = [5, 9, 17, 3, 88, 41, 7];
      const b = [64, 2, 99, 12, 30];
      const V = model.config.vocabSize;
      const ids = (x: number[]) => tensor(x, { dtype: 'int32', shape: [1, x.length] });
      const { packed, sep, lossPacked, lossSep } = noGrad(() =>
        tidy(() => {
          const positions = tensor([...a.keys(), ...b.keys()], { dtype: 'int32', shape: [1, a.length + b.length] });
          const cuSeqlens = tensor([0, a.length, a.length + b.length], { dtype: 'int32' });
          const all = ids([...a, ...b]);
          const packed = Float32Array.from(model.forward(all, { positions, cuSeqlens }).logits!.toTypedArray());
          const sep = [
            ...model.forward(ids(a)).logits!.toTypedArray(),
            ...model.forward(ids(b)).logits!.toTypedArray(),
          ];
          const labels = tensor([...a, -100, ...b.slice(1)], { dtype: 'int32', shape: [1, a.length + b.length] });
          const lossPacked = model
            .forward(all, { positions, cuSeqlens, labels, outputRouterLogits: false })
            .loss!.item();
          const la = model.forward(ids(a), { labels: ids(a), outputRouterLogits: false }).loss!.item();
          const lb = model.forward(ids(b), { labels: ids(b), outputRouterLogits: false }).loss!.item();
          const lossSep = (la * (a.length - 1) + lb * (b.length - 1)) / (a.length + b.length - 2);
          return { packed, sep, lossPacked, lossSep };
        }),
      );
      expect(packed.length).toBe((a.length + b.length) * V);
      expect(relErr(packed, sep)).toBeLessThan(1e-5);
      expect(Math.abs(lossPacked - lossSep) / lossSep).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });
});
