// Optimizers, gradient clipping and learning-rate schedules (exported as the `optim` namespace).

export { AdamW, type AdamWOptions } from './adamw.js';
export { type ClipGradNormOptions, clipGradNorm } from './clip.js';
export {
  constantLambda,
  constantSchedule,
  cosineLambda,
  cosineSchedule,
  LambdaLR,
  type LrLambda,
  linearLambda,
  linearSchedule,
  type SchedulerStateDict,
  type WarmupOptions,
} from './lr-scheduler.js';
export {
  Optimizer,
  type OptimizerStateDict,
  type ParamGroup,
  type ParamState,
  type ParamsInput,
  stateDTypeOf,
} from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
