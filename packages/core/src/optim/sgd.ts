import { noGrad } from '../autograd/grad-mode.js';
import { keep, tidy } from '../memory.js';
import { dispatch1 } from '../ops/dispatch.js';
import type { Tensor } from '../tensor.js';
import { Optimizer, type ParamGroup, type ParamsInput, stateDTypeOf } from './optimizer.js';

/** SGD hyper-parameters (`torch.optim.SGD`, camelCased). */
export interface SGDOptions {
  /** Learning rate (required). */
  lr: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Dampening of the momentum (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Maximise the objective (default false). */
  maximize: boolean;
}

/**
 * Stochastic gradient descent with momentum, exactly `torch.optim.SGD`:
 * d = g + wd·p; buf = d (first step) or momentum·buf + (1 - dampening)·d;
 * d = d + momentum·buf (Nesterov) or buf; p -= lr·d. The momentum buffer (`momentumBuffer`)
 * is float32. Built from the in-place kernels (`cast`, `add_`, `mul_`), so it runs on any backend.
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsInput<SGDOptions>, opts: Partial<SGDOptions> & { lr: number }) {
    super(params, {
      lr: opts.lr,
      momentum: opts.momentum ?? 0,
      dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      nesterov: opts.nesterov ?? false,
      maximize: opts.maximize ?? false,
    });
  }

  protected override validateGroup(g: ParamGroup<SGDOptions>): void {
    super.validateGroup(g);
    if (!(g.momentum >= 0)) throw new Error(`SGD: invalid momentum value: ${g.momentum}`);
    if (!(g.weightDecay >= 0)) throw new Error(`SGD: invalid weightDecay value: ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
    }
  }

  override step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad || p.device === 'meta') continue;
          tidy(() => {
            const dtype = stateDTypeOf(p);
            let d: Tensor = dispatch1('cast', [grad], { dtype }); // always a fresh copy
            if (g.maximize) dispatch1('mul_', [d], { value: -1 });
            if (g.weightDecay !== 0) dispatch1('add_', [d, p], { alpha: g.weightDecay });
            if (g.momentum !== 0) {
              const s = this.state.get(p) ?? {};
              let buf = s.momentumBuffer as Tensor | undefined;
              if (!buf) {
                buf = keep(dispatch1('cast', [d], { dtype }));
                s.momentumBuffer = buf;
                this.state.set(p, s);
              } else {
                dispatch1('mul_', [buf], { value: g.momentum });
                dispatch1('add_', [buf, d], { alpha: 1 - g.dampening });
              }
              if (g.nesterov) dispatch1('add_', [d, buf], { alpha: g.momentum });
              else d = buf;
            }
            dispatch1('add_', [p, d], { alpha: -g.lr });
          });
        }
      }
    });
  }
}
