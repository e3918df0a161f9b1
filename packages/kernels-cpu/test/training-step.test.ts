import {
  add,
  attention,
  createRegistry,
  fusedLinearCrossEntropy,
  manualSeed,
  memoryStats,
  nn,
  optim,
  type Registry,
  rope,
  swiglu,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '@omnitrain/core';
import { plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';

const cfg = { vocab: 61, hidden: 32, heads: 4, kvHeads: 2, ffn: 40, batch: 2, seq: 11 };
const hd = cfg.hidden / cfg.heads;

class Tiny extends nn.Module {
  embed = new nn.Embedding(cfg.vocab, cfg.hidden);
  n1 = new nn.RMSNorm(cfg.hidden, 1e-6);
  q = new nn.Linear(cfg.hidden, cfg.hidden, { bias: false });
  k = new nn.Linear(cfg.hidden, cfg.kvHeads * hd, { bias: false });
  v = new nn.Linear(cfg.hidden, cfg.kvHeads * hd, { bias: false });
  o = new nn.Linear(cfg.hidden, cfg.hidden, { bias: false });
  n2 = new nn.RMSNorm(cfg.hidden, 1e-6);
  g = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
  u = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
  d = new nn.Linear(cfg.ffn, cfg.hidden, { bias: false });
  head = new nn.Linear(cfg.hidden, cfg.vocab, { bias: false });

  loss(ids: Tensor, pos: Tensor, labels: Tensor): Tensor {
    const { batch: b, seq: s } = cfg;
    let x = this.embed.call(ids);
    const h = this.n1.call(x);
    const q = rope(this.q.call(h).reshape(b, s, cfg.heads, hd), pos, { theta: 1e4 });
    const k = rope(this.k.call(h).reshape(b, s, cfg.kvHeads, hd), pos, { theta: 1e4 });
    const v = this.v.call(h).reshape(b, s, cfg.kvHeads, hd);
    x = add(x, this.o.call(attention(q, k, v, { causal: true }).reshape(b, s, cfg.hidden)));
    const h2 = this.n2.call(x);
    x = add(x, this.d.call(swiglu(this.g.call(h2), this.u.call(h2))));
    return fusedLinearCrossEntropy(x.reshape(-1, cfg.hidden), this.head.weight, labels.reshape(-1), { chunkSize: 7 });
  }
}

function train(registry: Registry, steps: number): { losses: number[]; live: number[] } {
  return withRegistry(registry, () => {
    manualSeed(3);
    const model = new Tiny();
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
    const n = cfg.batch * cfg.seq;
    const ids = tensor(
      Array.from({ length: n }, (_, i) => (i * 7 + 3) % cfg.vocab),
      { dtype: 'int32', shape: [cfg.batch, cfg.seq] },
    );
    const labels = tensor(
      Array.from({ length: n }, (_, i) => (i * 5 + 1) % cfg.vocab),
      { dtype: 'int32', shape: [cfg.batch, cfg.seq] },
    );
    const pos = tensor(
      Array.from({ length: n }, (_, i) => i % cfg.seq),
      { dtype: 'int32', shape: [cfg.batch, cfg.seq] },
    );
    const losses: number[] = [];
    const live: number[] = [];
    for (let i = 0; i < steps; i++) {
      losses.push(
        tidy(() => {
          const l = model.loss(ids, pos, labels);
          l.backward();
          return l.item();
        }),
      );
      opt.step();
      opt.zeroGrad();
      live.push(memoryStats('cpu').liveTensors);
    }
    return { losses, live };
  });
}

describe('a training step on the native backend', () => {
  it('matches the reference backend step by step and does not leak tensors', () => {
    const ref = train(createRegistry(), 4);
    const nat = train(createRegistry().use(plugin), 4);
    expect(ref.losses[3]!).toBeLessThan(ref.losses[0]!);
    for (let i = 0; i < 4; i++) expect(nat.losses[i]!).toBeCloseTo(ref.losses[i]!, 4);
    expect(nat.live[3]).toBe(nat.live[1]);
  });
});
