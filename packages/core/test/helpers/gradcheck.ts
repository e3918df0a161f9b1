// float64 finite-difference gradient checks on CPU.
import { expect } from 'vitest';
import { noGrad, runBackward, type Tensor, tensor, tidy } from '../../src/index.js';

export interface GradcheckOptions {
  /** Finite-difference step. */
  eps?: number;
  /** Allowed relative (norm-wise) error between analytic and numeric gradients. */
  rtol?: number;
  /** Names for error messages. */
  names?: string[];
  /** Indices of inputs to check (default: every float64 input). */
  check?: number[];
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/**
 * Compare the gradients autograd computes for `fn` with central differences of
 * L(x) = sum(fn(x) * w) for a fixed random `w`. Inputs must be float64 CPU tensors
 * (integer inputs are passed through unchanged).
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): void {
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-6;
  const which = opts.check ?? inputs.map((x, i) => (x.dtype === 'float64' ? i : -1)).filter((i) => i >= 0);
  tidy(() => {
    const leaves = inputs.map((x, i) => (which.includes(i) ? x.detach().requiresGrad_(true) : x));
    const out = fn(...leaves);
    const rand = lcg(1234);
    const w = tensor(Array.from({ length: out.numel }, rand), { dtype: out.dtype, shape: out.shape });
    const wv = w.toTypedArray();
    runBackward([out], [w]);
    const loss = (xs: Tensor[]) =>
      noGrad(() =>
        tidy(() => {
          const o = fn(...xs).toTypedArray();
          let s = 0;
          for (let i = 0; i < o.length; i++) s += o[i]! * wv[i]!;
          return s;
        }),
      );
    for (const i of which) {
      const analytic = leaves[i]!.grad?.toTypedArray() ?? new Float64Array(inputs[i]!.numel);
      const base = inputs[i]!.toTypedArray();
      const numeric = new Float64Array(base.length);
      for (let j = 0; j < base.length; j++) {
        const plus = Float64Array.from(base);
        plus[j]! += eps;
        const minus = Float64Array.from(base);
        minus[j]! -= eps;
        const at = (v: Float64Array) =>
          inputs.map((x, k) => (k === i ? tensor(v, { dtype: 'float64', shape: x.shape }) : x));
        numeric[j] = (loss(at(plus)) - loss(at(minus))) / (2 * eps);
      }
      let num = 0;
      let den = 0;
      for (let j = 0; j < numeric.length; j++) {
        num += (analytic[j]! - numeric[j]!) ** 2;
        den += numeric[j]! ** 2;
      }
      const err = den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
      const name = opts.names?.[i] ?? `input ${i}`;
      expect(err, `gradcheck ${name}: relative error ${err}`).toBeLessThanOrEqual(rtol);
    }
    for (const l of leaves) if (l.grad) l.grad.dispose();
  });
}

/** A float64 CPU tensor of deterministic values in [-0.5, 0.5) * scale. */
export function randomF64(shape: number[], seed: number, scale = 1): Tensor {
  const rand = lcg(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Array.from({ length: n }, () => rand() * scale),
    { dtype: 'float64', shape },
  );
}
