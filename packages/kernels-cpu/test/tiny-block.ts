// The small decoder the training-step tests run (float32 in training-step.test.ts, bfloat16 in
// bf16-fused.test.ts): embedding, RMSNorm, rope, GQA attention, a second norm, SwiGLU, fused linear + CE.
import { add, attention, fusedLinearCrossEntropy, nn, rope, swiglu, type Tensor } from '@omnitrain/core';

export const cfg = { vocab: 61, hidden: 32, heads: 4, kvHeads: 2, ffn: 40, batch: 2, seq: 11 };
const hd = cfg.hidden / cfg.heads;

/** The block; `secondNorm` picks the norm before the MLP (LayerNorm exercises layerNorm's kernels too). */
export class TinyBlock extends nn.Module {
  embed = new nn.Embedding(cfg.vocab, cfg.hidden);
  n1 = new nn.RMSNorm(cfg.hidden, 1e-6);
  q = new nn.Linear(cfg.hidden, cfg.hidden, { bias: false });
  k = new nn.Linear(cfg.hidden, cfg.kvHeads * hd, { bias: false });
  v = new nn.Linear(cfg.hidden, cfg.kvHeads * hd, { bias: false });
  o = new nn.Linear(cfg.hidden, cfg.hidden, { bias: false });
  n2: nn.RMSNorm | nn.LayerNorm;
  g = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
  u = new nn.Linear(cfg.hidden, cfg.ffn, { bias: false });
  d = new nn.Linear(cfg.ffn, cfg.hidden, { bias: false });
  head = new nn.Linear(cfg.hidden, cfg.vocab, { bias: false });

  constructor(secondNorm: 'rms' | 'layer' = 'rms') {
    super();
    this.n2 = secondNorm === 'rms' ? new nn.RMSNorm(cfg.hidden, 1e-6) : new nn.LayerNorm(cfg.hidden);
  }

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
