import { noGrad } from '../autograd/grad-mode.js';
import { tidy } from '../memory.js';
import { dispatch1 } from '../ops/dispatch.js';
import { abs, cast, pow, square } from '../ops/elementwise.js';
import { max, sum } from '../ops/reduce.js';
import type { Tensor } from '../tensor.js';

/** Options of `clipGradNorm`. */
export interface ClipGradNormOptions {
  /** p of the p-norm (default 2; `Infinity` for the max norm). */
  normType?: number;
  /** Throw when the total norm is NaN or infinite (default false). */
  errorIfNonfinite?: boolean;
  /**
   * Combine this process's partial result across processes (sharded parameters, FSDP):
   * called with the local sum of |g|^p (op 'sum') or the local max |g| (op 'max', p = ∞);
   * returns the global value. Default: the local value.
   */
  allReduce?: (value: number, op: 'sum' | 'max') => number;
}

/**
 * Scale the gradients of `params` in place so that their total p-norm (over all gradients
 * together, as if concatenated) is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`:
 * coefficient `min(1, maxNorm / (total + 1e-6))`. Parameters without a gradient are skipped.
 * Norms are computed in float32 (float64 for float64 gradients). Returns the total norm
 * before clipping.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): number {
  const p = opts.normType ?? 2;
  if (!(p > 0)) throw new Error(`clipGradNorm: normType must be > 0, got ${p}`);
  if (!(maxNorm >= 0)) throw new Error(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  const grads: Tensor[] = [];
  for (const t of params) if (t.grad) grads.push(t.grad);
  const inf = p === Number.POSITIVE_INFINITY;
  const local = noGrad(() =>
    tidy(() => {
      let acc = 0;
      for (const g of grads) {
        if (g.numel === 0 || g.device === 'meta') continue;
        const x = g.dtype === 'float64' || g.dtype === 'float32' ? g : cast(g, 'float32');
        if (inf) acc = Math.max(acc, max(abs(x)).item());
        else if (p === 2) acc += sum(square(x)).item();
        else if (p === 1) acc += sum(abs(x)).item();
        else acc += sum(pow(abs(x), p)).item();
      }
      return acc;
    }),
  );
  const global = opts.allReduce ? opts.allReduce(local, inf ? 'max' : 'sum') : local;
  const total = inf ? global : global ** (1 / p);
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new Error(
      `clipGradNorm: the total norm of order ${p} for gradients is ${total}, so they cannot be clipped; ` +
        'set errorIfNonfinite: false to clip anyway',
    );
  }
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1 || Number.isNaN(coef)) {
    noGrad(() => {
      for (const g of grads) if (g.numel && g.device !== 'meta') dispatch1('mul_', [g], { value: coef });
    });
  }
  return total;
}
