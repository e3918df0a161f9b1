import { describe, expect, it } from 'vitest';
import {
  add,
  attention,
  fusedLinearCrossEntropy,
  manualSeed,
  memoryStats,
  nn,
  optim,
  rope,
  swiglu,
  type Tensor,
  tensor,
  tidy,
} from '../src/index.js';

// A two-layer transformer built from core alone: the same ops a real model uses.
class Block extends nn.Module {
  norm1 = new nn.RMSNorm(16, 1e-6);
  q = new nn.Linear(16, 16, { bias: false });
  k = new nn.Linear(16, 8, { bias: false });
  v = new nn.Linear(16, 8, { bias: false });
  o = new nn.Linear(16, 16, { bias: false });
  norm2 = new nn.RMSNorm(16, 1e-6);
  gate = new nn.Linear(16, 24, { bias: false });
  up = new nn.Linear(16, 24, { bias: false });
  down = new nn.Linear(24, 16, { bias: false });

  override forward(x: Tensor, pos: Tensor): Tensor {
    const [b, s] = x.shape as [number, number];
    const h = this.norm1.call(x);
    const q = rope(this.q.call(h).reshape(b, s, 4, 4), pos, { theta: 10000 });
    const k = rope(this.k.call(h).reshape(b, s, 2, 4), pos, { theta: 10000 });
    const v = this.v.call(h).reshape(b, s, 2, 4);
    const a = add(x, this.o.call(attention(q, k, v, { causal: true }).reshape(b, s, 16)));
    const m = this.norm2.call(a);
    return add(a, this.down.call(swiglu(this.gate.call(m), this.up.call(m))));
  }
}

class Tiny extends nn.Module {
  embed = new nn.Embedding(32, 16);
  layers = new nn.ModuleList([new Block(), new Block()]);
  head = new nn.Linear(16, 32, { bias: false });

  loss(ids: Tensor, pos: Tensor, labels: Tensor): Tensor {
    let h = this.embed.call(ids);
    for (const l of this.layers) h = l.call(h, pos);
    return fusedLinearCrossEntropy(h.reshape(-1, 16), this.head.weight, labels.reshape(-1), { chunkSize: 8 });
  }
}

describe('a training step leaks nothing', () => {
  it('10 steps of forward, backward, clip, AdamW leave live tensors and bytes where step 1 left them', () => {
    manualSeed(3);
    const model = new Tiny();
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
    const ids = tensor(
      Array.from({ length: 24 }, (_, i) => (i * 7) % 32),
      { dtype: 'int32', shape: [2, 12] },
    );
    const labels = tensor(
      Array.from({ length: 24 }, (_, i) => (i * 7 + 7) % 32),
      { dtype: 'int32', shape: [2, 12] },
    );
    const pos = tensor(
      Array.from({ length: 24 }, (_, i) => i % 12),
      { dtype: 'int32', shape: [2, 12] },
    );
    const after: { tensors: number; bytes: number }[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 10; step++) {
      losses.push(
        tidy(() => {
          const l = model.loss(ids, pos, labels);
          l.backward();
          return l.item();
        }),
      );
      optim.clipGradNorm(model.parameters(), 1.0);
      opt.step();
      opt.zeroGrad();
      const s = memoryStats('cpu');
      after.push({ tensors: s.liveTensors, bytes: s.liveBytes });
    }
    for (let i = 1; i < after.length; i++) expect(after[i], `after step ${i + 1}`).toEqual(after[0]);
    expect(losses[9]!).toBeLessThan(losses[0]! * 0.8); // and it trains
    for (const t of [ids, labels, pos]) t.dispose();
    opt.dispose();
    model.dispose();
  });
});
