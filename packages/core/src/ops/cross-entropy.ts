// Fused cross-entropy ops: `crossEntropy` over logits, and `fusedLinearCrossEntropy` that folds the
// final projection in and works through the rows in chunks (never holding [N, V] logits).
import { record } from '../autograd/node.js';
import type { Tensor } from '../tensor.js';
import { dispatch, dispatch1 } from './dispatch.js';

/** How per-row losses are combined: averaged over non-ignored rows, summed, or returned per row. */
export type CrossEntropyReduction = 'mean' | 'sum' | 'none';

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Rows whose label equals this contribute no loss and get zero gradient. Default -100. */
  ignoreIndex?: number;
  /**
   * `'mean'` (default): sum over non-ignored rows divided by their count (NaN when every row is
   * ignored, as in PyTorch; the gradient is then zero); `'sum'`; `'none'`: a loss per row
   * (0 for ignored rows).
   */
  reduction?: CrossEntropyReduction;
}

/** Options of {@link fusedLinearCrossEntropy}. */
export interface FusedLinearCrossEntropyOptions extends CrossEntropyOptions {
  /** Rows processed at a time; the only [rows, V] buffer is `chunkSize x V`. Default 1024. */
  chunkSize?: number;
}

const REDUCTIONS: readonly string[] = ['mean', 'sum', 'none'];

function shapeOf(t: Tensor): string {
  return JSON.stringify(t.shape);
}

function checkCommon(op: string, rows: number, labels: Tensor, ignoreIndex: number, reduction: string): void {
  if (labels.dtype !== 'int32') throw new Error(`${op}: labels must be int32, got ${labels.dtype}`);
  if (labels.ndim !== 1 || labels.shape[0] !== rows) {
    throw new Error(`${op}: labels must have shape [${rows}] (one per row), got ${shapeOf(labels)}`);
  }
  if (!Number.isInteger(ignoreIndex)) throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (!REDUCTIONS.includes(reduction)) {
    throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${reduction}'`);
  }
}

/**
 * Cross entropy between `logits` [N, V] and integer class `labels` [N], as
 * `torch.nn.functional.cross_entropy`: per row `logsumexp(logits[i]) - logits[i, labels[i]]`,
 * computed with a stable log-softmax in float32 (float64 for float64 logits), rows whose label is
 * `ignoreIndex` skipped. The result has the logits' dtype: a scalar for `'mean'`/`'sum'`, [N] for
 * `'none'`. With `'mean'` and every row ignored the loss is NaN (PyTorch does the same) and the
 * gradient is zero. Labels outside `[0, V)` other than `ignoreIndex` are an error.
 * Differentiable w.r.t. `logits`; kernels `crossEntropy` (returns [loss, lse]) and
 * `crossEntropyBackward` ([logits, labels, lse, gradLoss] -> gradLogits).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  if (logits.ndim !== 2) throw new Error(`crossEntropy: logits must be [N, V], got ${shapeOf(logits)}`);
  if (!logits.isFloatingPoint) throw new Error(`crossEntropy: logits must be floating point, got ${logits.dtype}`);
  checkCommon('crossEntropy', logits.shape[0]!, labels, ignoreIndex, reduction);
  const attrs = { ignoreIndex, reduction };
  const [loss, lse] = dispatch('crossEntropy', [logits, labels], attrs) as [Tensor, Tensor];
  record(
    'crossEntropy',
    [logits, labels],
    [loss],
    ([g], [x, y, s]) => [dispatch1('crossEntropyBackward', [x!, y!, s!, g!], attrs), null],
    [logits, labels, lse],
  );
  lse.dispose();
  return loss;
}

/**
 * `crossEntropy(linear(hidden, weight), labels, opts)` without materialising the [N, V] logits:
 * rows are processed `chunkSize` at a time. The forward keeps only the per-row logsumexp; the
 * backward recomputes each chunk's logits and accumulates the gradients of `hidden` [N, H] and
 * `weight` [V, H]. Logits are computed and kept in float32 (float64 for float64 inputs), never
 * rounded to a half dtype, so for bf16/f16 inputs it is slightly more accurate than the unfused
 * path. Kernels `fusedLinearCrossEntropy` ([hidden, weight, labels] -> [loss, lse]) and
 * `fusedLinearCrossEntropyBackward` ([hidden, weight, labels, lse, gradLoss] with attrs
 * `needHidden`/`needWeight` -> the requested gradients, hidden's first).
 */
export function fusedLinearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  labels: Tensor,
  opts: FusedLinearCrossEntropyOptions = {},
): Tensor {
  const op = 'fusedLinearCrossEntropy';
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  const chunkSize = opts.chunkSize ?? 1024;
  if (hidden.ndim !== 2) throw new Error(`${op}: hidden must be [N, H], got ${shapeOf(hidden)}`);
  if (weight.ndim !== 2 || weight.shape[1] !== hidden.shape[1]) {
    throw new Error(
      `${op}: weight must be [V, H] with H = ${hidden.shape[1]} (hidden ${shapeOf(hidden)}), got ${shapeOf(weight)}`,
    );
  }
  if (!hidden.isFloatingPoint || hidden.dtype !== weight.dtype) {
    throw new Error(`${op}: hidden and weight must share one floating dtype, got ${hidden.dtype} and ${weight.dtype}`);
  }
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new Error(`${op}: chunkSize must be a positive integer, got ${chunkSize}`);
  }
  checkCommon(op, hidden.shape[0]!, labels, ignoreIndex, reduction);
  const attrs = { ignoreIndex, reduction, chunkSize };
  const [loss, lse] = dispatch(op, [hidden, weight, labels], attrs) as [Tensor, Tensor];
  const needHidden = hidden.requiresGrad;
  const needWeight = weight.requiresGrad;
  record(
    op,
    [hidden, weight, labels],
    [loss],
    ([g], [h, w, y, s]) => {
      const grads = dispatch(`${op}Backward`, [h!, w!, y!, s!, g!], { ...attrs, needHidden, needWeight });
      let i = 0;
      const gh = needHidden ? grads[i++]! : null;
      const gw = needWeight ? grads[i++]! : null;
      return [gh, gw, null];
    },
    [hidden, weight, labels, lse],
  );
  lse.dispose();
  return loss;
}
