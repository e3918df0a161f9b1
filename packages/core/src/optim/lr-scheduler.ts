// Learning-rate schedules: LambdaLR (lr = base lr x factor(step)) and the usual warmup shapes.

import type { Optimizer } from './optimizer.js';

/** A factor of the base learning rate as a function of the scheduler step (0 at construction). */
export type LrLambda = (step: number) => number;

/** What a scheduler saves: its step and the base learning rates. */
export interface SchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
}

/**
 * `torch.optim.lr_scheduler.LambdaLR`: `lr = baseLr * lambda(lastEpoch)` for every group
 * (one lambda for all groups, or one per group). Constructing it sets `lastEpoch = 0` and
 * applies `lambda(0)`; every `step()` (after `optimizer.step()`) advances by one.
 */
export class LambdaLR {
  /** Scheduler steps taken (0 after construction). */
  lastEpoch = -1;
  /** Each group's learning rate when the scheduler was made (`initial_lr`). */
  baseLrs: number[];
  private readonly lambdas: LrLambda[];
  private lastLrs: number[] = [];

  constructor(
    readonly optimizer: Optimizer<{ lr: number }>,
    lambda: LrLambda | LrLambda[],
  ) {
    const n = optimizer.paramGroups.length;
    this.lambdas = Array.isArray(lambda) ? lambda : new Array(n).fill(lambda);
    if (this.lambdas.length !== n)
      throw new Error(`LambdaLR: ${this.lambdas.length} lambdas for ${n} parameter groups`);
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.step();
  }

  /** Advance one step and set every group's learning rate. */
  step(): void {
    this.lastEpoch++;
    this.apply();
  }

  /** The learning rates set by the last step. */
  getLastLr(): number[] {
    return [...this.lastLrs];
  }

  /** Step and base learning rates (plain JSON). */
  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs] };
  }

  /** Restore a state and set the learning rates it implies. */
  loadStateDict(sd: SchedulerStateDict): void {
    if (sd.baseLrs.length !== this.baseLrs.length) {
      throw new Error(
        `LambdaLR.loadStateDict: ${sd.baseLrs.length} base learning rates for ${this.baseLrs.length} groups`,
      );
    }
    this.lastEpoch = sd.lastEpoch;
    this.baseLrs = [...sd.baseLrs];
    this.apply();
  }

  private apply(): void {
    this.lastLrs = this.optimizer.paramGroups.map((g, i) => {
      const lr = this.baseLrs[i]! * this.lambdas[i]!(this.lastEpoch);
      g.lr = lr;
      return lr;
    });
  }
}

/** Options of the warmup schedules. */
export interface WarmupOptions {
  /** Steps of linear warmup from 0 to the base learning rate (default 0). */
  warmupSteps?: number;
  /** Total steps (linear and cosine decay end here). */
  totalSteps?: number;
  /** Floor of the decay as a fraction of the base learning rate (default 0). */
  minLrRatio?: number;
  /** Cosine only: cosine cycles over the decay (default 0.5: a half cosine from 1 down to 0). */
  numCycles?: number;
}

function warmup(step: number, warmupSteps: number): number | null {
  return step < warmupSteps ? step / Math.max(1, warmupSteps) : null;
}

function checkOpts(name: string, o: WarmupOptions, needTotal: boolean): void {
  const w = o.warmupSteps ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new Error(`${name}: warmupSteps must be an integer >= 0, got ${w}`);
  if (needTotal && (!Number.isInteger(o.totalSteps) || (o.totalSteps as number) < 0)) {
    throw new Error(`${name}: totalSteps must be an integer >= 0, got ${o.totalSteps}`);
  }
  const m = o.minLrRatio ?? 0;
  if (!(m >= 0 && m <= 1)) throw new Error(`${name}: minLrRatio must be in [0, 1], got ${m}`);
}

/** Factor of a constant schedule after linear warmup (`get_constant_schedule_with_warmup`). */
export function constantLambda(opts: WarmupOptions = {}): LrLambda {
  checkOpts('constantSchedule', opts, false);
  const w = opts.warmupSteps ?? 0;
  return (step) => warmup(step, w) ?? 1;
}

/**
 * Factor of linear warmup then linear decay to `minLrRatio` at `totalSteps`
 * (`get_linear_schedule_with_warmup`, with a floor): `min + (1 - min) * max(0, (T - s) / (T - w))`.
 */
export function linearLambda(opts: WarmupOptions & { totalSteps: number }): LrLambda {
  checkOpts('linearSchedule', opts, true);
  const w = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  const floor = opts.minLrRatio ?? 0;
  return (step) => {
    const up = warmup(step, w);
    if (up !== null) return up;
    const decay = Math.max(0, (total - step) / Math.max(1, total - w));
    return floor + (1 - floor) * decay;
  };
}

/**
 * Factor of linear warmup then cosine decay to `minLrRatio` (`get_cosine_schedule_with_warmup`,
 * with a floor): `min + (1 - min) * max(0, 0.5 (1 + cos(π · 2 · cycles · progress)))`, where
 * progress = (s - w) / (T - w), held at 1 after `totalSteps`.
 */
export function cosineLambda(opts: WarmupOptions & { totalSteps: number }): LrLambda {
  checkOpts('cosineSchedule', opts, true);
  const w = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  const floor = opts.minLrRatio ?? 0;
  const cycles = opts.numCycles ?? 0.5;
  return (step) => {
    const up = warmup(step, w);
    if (up !== null) return up;
    const progress = Math.min(1, (step - w) / Math.max(1, total - w));
    const c = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
    return floor + (1 - floor) * c;
  };
}

/** Constant learning rate after linear warmup. */
export function constantSchedule(optimizer: Optimizer<{ lr: number }>, opts: WarmupOptions = {}): LambdaLR {
  return new LambdaLR(optimizer, constantLambda(opts));
}

/** Linear warmup, then linear decay to `minLrRatio` x base lr at `totalSteps`. */
export function linearSchedule(
  optimizer: Optimizer<{ lr: number }>,
  opts: WarmupOptions & { totalSteps: number },
): LambdaLR {
  return new LambdaLR(optimizer, linearLambda(opts));
}

/** Linear warmup, then cosine decay to `minLrRatio` x base lr at `totalSteps`. */
export function cosineSchedule(
  optimizer: Optimizer<{ lr: number }>,
  opts: WarmupOptions & { totalSteps: number },
): LambdaLR {
  return new LambdaLR(optimizer, cosineLambda(opts));
}
