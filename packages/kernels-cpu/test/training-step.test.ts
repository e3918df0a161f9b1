import {
  createRegistry,
  manualSeed,
  memoryStats,
  optim,
  type Registry,
  tensor,
  tidy,
  withRegistry,
} from '@omnitrain/core';
import { plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { cfg, TinyBlock } from './tiny-block.js';

function train(registry: Registry, steps: number): { losses: number[]; live: number[] } {
  return withRegistry(registry, () => {
    manualSeed(3);
    const model = new TinyBlock('rms');
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
