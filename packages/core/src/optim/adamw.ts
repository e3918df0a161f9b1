import { noGrad } from '../autograd/grad-mode.js';
import { adamwStep } from '../ops/adamw-step.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamGroup, type ParamsInput, zeroState } from './optimizer.js';

/** AdamW hyper-parameters (`torch.optim.AdamW`, camelCased). */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Moment decays (default [0.9, 0.999]). */
  betas: [number, number];
  /** Denominator term (default 1e-8). */
  eps: number;
  /** Decoupled weight decay (default 1e-2). */
  weightDecay: number;
  /** AMSGrad variant (default false). */
  amsgrad: boolean;
  /** Maximise the objective (default false). */
  maximize: boolean;
}

/**
 * AdamW (Loshchilov & Hutter), exactly `torch.optim.AdamW`: decoupled weight decay,
 * bias-corrected moments. State per parameter: `step` (number), `expAvg`, `expAvgSq`
 * (and `maxExpAvgSq` with AMSGrad) in float32 — also for bf16 parameters, whose update is
 * computed in float32 and rounded once. Each update is the fused `adamwStep` op.
 */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: ParamsInput<AdamWOptions>, opts: Partial<AdamWOptions> = {}) {
    super(params, {
      lr: opts.lr ?? 1e-3,
      betas: opts.betas ?? [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 1e-2,
      amsgrad: opts.amsgrad ?? false,
      maximize: opts.maximize ?? false,
    });
  }

  protected override validateGroup(g: ParamGroup<AdamWOptions>): void {
    super.validateGroup(g);
    const [b1, b2] = g.betas;
    if (!(b1 >= 0 && b1 < 1)) throw new Error(`AdamW: invalid beta parameter at index 0: ${b1}`);
    if (!(b2 >= 0 && b2 < 1)) throw new Error(`AdamW: invalid beta parameter at index 1: ${b2}`);
    if (!(g.eps >= 0)) throw new Error(`AdamW: invalid epsilon value: ${g.eps}`);
    if (!(g.weightDecay >= 0)) throw new Error(`AdamW: invalid weightDecay value: ${g.weightDecay}`);
  }

  override step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad) continue;
          let s = this.state.get(p);
          if (!s) {
            s = { step: 0, expAvg: zeroState(p), expAvgSq: zeroState(p) };
            if (g.amsgrad) s.maxExpAvgSq = zeroState(p);
            this.state.set(p, s);
          }
          s.step = (s.step as number) + 1;
          adamwStep(p, grad, s.expAvg as Tensor, s.expAvgSq as Tensor, {
            lr: g.lr,
            beta1: g.betas[0],
            beta2: g.betas[1],
            eps: g.eps,
            weightDecay: g.weightDecay,
            step: s.step,
            maximize: g.maximize,
            maxExpAvgSq: g.amsgrad ? (s.maxExpAvgSq as Tensor) : null,
          });
        }
      }
    });
  }
}
