import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  add,
  defaultGenerator,
  Generator,
  keep,
  manualSeed,
  memoryStats,
  mul,
  nn,
  runBackward,
  silu,
  sum,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '../src/index.js';
import { expectClose } from './helpers/compare.js';
import { readSafetensors, tensorFromBytes } from './helpers/safetensors.js';

const fixture = readSafetensors(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'nn.safetensors'));
const meta = (k: string) => JSON.parse(fixture.metadata[k]!) as string[];
const get = (key: string) => tensorFromBytes(fixture.tensors.get(key)!);

// The same tree as tools/fixtures/gen_nn.py, written the TypeScript way.
class Mlp extends nn.Module {
  // A camelCase field registered under the Hugging Face name.
  readonly upProj = this.registerModule('up_proj', new nn.Linear(8, 12, { bias: false }));
  down_proj = new nn.Linear(12, 8);
  override forward(x: Tensor): Tensor {
    return this.down_proj.call(silu(this.upProj.call(x)));
  }
}

class Block extends nn.Module {
  input_layernorm = new nn.RMSNorm(8);
  mlp = new Mlp();
  scale = nn.buffer(tensor(Array.from({ length: 8 }, (_, i) => 0.5 + i / 7)));
  cache = nn.buffer(zeros([8]), { persistent: false });
  post_norm = new nn.LayerNorm(8, 1e-5);
  override forward(h: Tensor): Tensor {
    return this.post_norm.call(add(h, mul(this.mlp.call(this.input_layernorm.call(h)), this.scale)));
  }
}

class Model extends nn.Module {
  embed_tokens = new nn.Embedding(11, 8);
  layers = new nn.ModuleList([new Block(), new Block()]);
  norm = new nn.RMSNorm(8);
  lm_head = new nn.Linear(8, 11, { bias: false });
  override forward(ids: Tensor): Tensor {
    let h = this.embed_tokens.call(ids);
    for (const layer of this.layers) h = layer.call(h);
    return this.lm_head.call(this.norm.call(h));
  }
}

function fixtureStateDict(): Record<string, Tensor> {
  const sd: Record<string, Tensor> = {};
  for (const k of meta('state_dict')) sd[k] = get(`sd.${k}`);
  return sd;
}

describe('names match PyTorch', () => {
  it('namedParameters, namedBuffers, namedModules and stateDict keys, in order', () => {
    const m = new Model();
    expect(m.namedParameters().map(([k]) => k)).toEqual(meta('named_parameters'));
    expect(m.namedBuffers().map(([k]) => k)).toEqual(meta('named_buffers'));
    expect(m.namedModules().map(([k]) => k)).toEqual(meta('named_modules'));
    expect(Object.keys(m.stateDict())).toEqual(meta('state_dict'));
    expect(m.children().length).toBe(4);
    expect(m.layers.at(-1)).toBe(m.layers.at(1));
    m.dispose();
  });

  it('forward and every parameter gradient equal PyTorch after loadStateDict', () => {
    const m = new Model();
    tidy(() => {
      m.loadStateDict(fixtureStateDict());
      const out = m.call(get('ids'));
      expectClose(out, get('out'), 1e-5, 'logits');
      runBackward([out], [get('gout')]);
      for (const [name, p] of m.namedParameters()) expectClose(p.grad!, get(`grad.${name}`), 1e-5, `grad ${name}`);
      m.zeroGrad();
      for (const p of m.parameters()) expect(p.grad).toBeNull();
    });
    m.dispose();
  });

  it('explicit names, field reassignment, null slots and tied weights', () => {
    class Tied extends nn.Module {
      embed = new nn.Embedding(5, 3);
      head = new nn.Linear(3, 5, { bias: false });
      extra: nn.Parameter | null = null;
      constructor() {
        super();
        this.head.weight.dispose();
        this.head.weight = this.embed.weight; // tie
        this.registerParameter('alpha', nn.parameter(zeros([1])));
      }
    }
    const t = new Tied();
    // Parameters are listed once; the state dict has every name (PyTorch's behaviour).
    expect(t.namedParameters().map(([k]) => k)).toEqual(['alpha', 'embed.weight']);
    expect(t.namedParameters({ removeDuplicate: false }).map(([k]) => k)).toEqual([
      'alpha',
      'embed.weight',
      'head.weight',
    ]);
    expect(Object.keys(t.stateDict())).toEqual(['alpha', 'embed.weight', 'head.weight']);
    t.extra = nn.parameter(zeros([2]));
    expect(t.namedParameters().map(([k]) => k)).toEqual(['alpha', 'extra', 'embed.weight']);
    t.extra.dispose();
    t.extra = null;
    expect(t.namedParameters().map(([k]) => k)).toEqual(['alpha', 'embed.weight']);
    expect(() => t.registerParameter('a.b', null)).toThrow(/invalid name/);
    expect(() => t.registerModule('alpha', new nn.Module())).toThrow(/a parameter of that name exists/);
    t.dispose();
  });
});

describe('loadStateDict', () => {
  it('reports missing and unexpected keys and shape mismatches by name, and loads nothing on error', () => {
    const m = new Model();
    tidy(() => {
      const before = m.embed_tokens.weight.toArray();
      const sd = fixtureStateDict();
      delete sd['layers.1.mlp.down_proj.bias'];
      sd['layers.0.mlp.gate_proj.weight'] = zeros([12, 8]);
      sd['norm.weight'] = zeros([9]);
      let message = '';
      try {
        m.loadStateDict(sd);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/Missing key\(s\): 'layers\.1\.mlp\.down_proj\.bias'/);
      expect(message).toMatch(/Unexpected key\(s\): 'layers\.0\.mlp\.gate_proj\.weight'/);
      expect(message).toMatch(/size mismatch for 'norm\.weight'.*shape \[9\].*current model is \[8\]/);
      expect(m.embed_tokens.weight.toArray()).toEqual(before);
      // Non-strict: missing/unexpected are returned, but a shape mismatch is still an error.
      expect(() => m.loadStateDict(sd, { strict: false })).toThrow(/size mismatch for 'norm\.weight'/);
      expect(m.embed_tokens.weight.toArray()).toEqual(before);
      sd['norm.weight'] = get('sd.norm.weight');
      const r = m.loadStateDict(sd, { strict: false });
      expect(r).toEqual({
        missingKeys: ['layers.1.mlp.down_proj.bias'],
        unexpectedKeys: ['layers.0.mlp.gate_proj.weight'],
      });
      expect(m.embed_tokens.weight.toArray()).toEqual(get('sd.embed_tokens.weight').toArray());
    });
    m.dispose();
  });

  it('converts dtypes while loading and keeps Parameter identity', () => {
    const lin = new nn.Linear(3, 2);
    const w = lin.weight;
    tidy(() => {
      lin.loadStateDict({
        weight: tensor([1, 2, 3, 4, 5, 6.01], { shape: [2, 3], dtype: 'bfloat16' }),
        bias: tensor([7, 8]),
      });
      expect(lin.weight).toBe(w);
      expect(w.dtype).toBe('float32');
      expect(w.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    });
    lin.dispose();
  });
});

describe('to(), train/eval, init', () => {
  it('to(dtype) casts floating parameters, buffers and gradients in place', () => {
    const b = new Block();
    const ln = b.input_layernorm.weight;
    const idx = b.registerBuffer('idx', tensor([1, 2], { dtype: 'int32' }))!;
    const before = memoryStats();
    tidy(() => {
      ln.grad = keep(tensor(Array.from({ length: 8 }, (_, i) => i / 3)));
      const w = b.mlp.upProj.weight.toArray();
      b.to('bfloat16');
      expect(b.input_layernorm.weight).toBe(ln);
      expect(ln.dtype).toBe('bfloat16');
      expect(ln.grad!.dtype).toBe('bfloat16');
      expect(ln.requiresGrad).toBe(true);
      expect(ln.isLeaf).toBe(true);
      expect(b.scale.dtype).toBe('bfloat16');
      expect(idx.dtype).toBe('int32');
      const wb = b.mlp.upProj.weight.toArray();
      w.forEach((v, i) => {
        expect(Math.abs(wb[i]! - v)).toBeLessThanOrEqual(Math.abs(v) / 128);
      });
      b.to({ dtype: 'float32', device: 'cpu' });
      expect(ln.dtype).toBe('float32');
      expect(ln.grad!.dtype).toBe('float32');
      b.zeroGrad();
    });
    // Casting back and forth allocates nothing that stays.
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
    b.dispose();
  });

  it('a model built on meta and materialised equals one built on cpu with the same seed', () => {
    manualSeed(42);
    const cpu = new Model();
    const after = defaultGenerator().offset;
    manualSeed(42);
    const metaModel = new Model();
    metaModel.to('meta'); // moving to meta keeps the recorded inits
    const m2 = new (class extends nn.Module {
      inner = new nn.Linear(4, 4, { device: 'meta' });
    })();
    expect(m2.inner.weight.device).toBe('meta');
    m2.dispose();
    manualSeed(42);
    const lazy = new (class extends Model {})();
    expect(defaultGenerator().offset).toBe(after);
    lazy.to('meta');
    lazy.materialize('cpu');
    const a = cpu.stateDict();
    const b = lazy.stateDict();
    for (const k of Object.keys(a)) {
      if (k.endsWith('scale')) continue; // a plain buffer: no recorded init
      expect(b[k]!.toArray(), k).toEqual(a[k]!.toArray());
    }
    expect(() => metaModel.to('cpu')).toThrow(/meta tensor .* has no data/);
    // A shard of a parameter regenerates from its recorded init.
    tidy(() => {
      const w = cpu.layers.at(0).mlp.upProj.weight;
      const shard = zeros([3, 8]);
      expect(nn.init.replayInit(metaModel.layers.at(0).mlp.upProj.weight, shard, 16)).toBe(true);
      expect(shard.toArray()).toEqual(w.toArray().slice(16, 40));
    });
    cpu.dispose();
    metaModel.dispose();
    lazy.dispose();
  });

  it('Linear, Embedding and norms are initialised like PyTorch', () => {
    const g = new Generator(3);
    const lin = new nn.Linear(50, 40, { generator: g });
    const bound = 1 / Math.sqrt(50);
    const w = lin.weight.toArray();
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.95 * bound);
    const mean2 = w.reduce((s, v) => s + v * v, 0) / w.length;
    expect(Math.abs(mean2 - bound ** 2 / 3) / (bound ** 2 / 3)).toBeLessThan(0.05); // variance of U(-b, b)
    expect(Math.max(...lin.bias!.toArray().map(Math.abs))).toBeLessThanOrEqual(bound);
    const emb = new nn.Embedding(100, 30, { generator: g });
    const e = emb.weight.toArray();
    const m = e.reduce((s, v) => s + v, 0) / e.length;
    expect(Math.abs(m)).toBeLessThan(0.06);
    expect(new nn.RMSNorm(4).weight.toArray()).toEqual([1, 1, 1, 1]);
    const ln = new nn.LayerNorm(3, 1e-5, { bias: false });
    expect(ln.bias).toBeNull();
    expect(ln.namedParameters().map(([k]) => k)).toEqual(['weight']);
    expect(new nn.Linear(3, 3, { dtype: 'bfloat16' }).weight.dtype).toBe('bfloat16');
    lin.dispose();
    emb.dispose();
  });

  it('train/eval reach every module', () => {
    const m = new Model();
    m.eval();
    expect(m.modules().every((x) => !x.training)).toBe(true);
    m.train();
    expect(m.modules().every((x) => x.training)).toBe(true);
    m.dispose();
  });

  it('disposing a module frees all its memory', () => {
    const before = memoryStats();
    const m = new Model();
    expect(memoryStats().liveBytes).toBeGreaterThan(before.liveBytes);
    m.dispose();
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });
});

describe('Parameter', () => {
  it('is a leaf requiring grad that tidy does not free, and setData keeps identity', () => {
    const before = memoryStats();
    const p = tidy(() => nn.parameter(tensor([1, 2, 3])));
    expect(p.isDisposed).toBe(false);
    expect(p.requiresGrad).toBe(true);
    expect(p.isLeaf).toBe(true);
    tidy(() => {
      const loss = sum(mul(p, p));
      loss.backward();
      expect(p.grad!.toArray()).toEqual([2, 4, 6]);
      const other = tensor([5, 6], { dtype: 'float64' });
      p.setData(other);
      expect(p.shape).toEqual([2]);
      expect(p.dtype).toBe('float64');
      expect(p.toArray()).toEqual([5, 6]);
    });
    expect(p.toArray()).toEqual([5, 6]); // the storage lives on through the Parameter
    p.grad!.dispose();
    p.dispose();
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });
});
