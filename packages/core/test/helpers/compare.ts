import { expect } from 'vitest';
import type { Tensor } from '../../src/index.js';

/** Norm-wise relative error ||a - b|| / ||b|| (absolute when ||b|| is 0). NaNs must match. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) && Number.isNaN(a)) continue;
      return Number.POSITIVE_INFINITY;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a === e) continue;
      return Number.POSITIVE_INFINITY;
    }
    num += (a - e) ** 2;
    den += e * e;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Default tolerance for a dtype: float32 1e-5, bf16/fp16 1e-2, float64 1e-10. */
export function toleranceFor(dtype: string): number {
  if (dtype === 'bfloat16' || dtype === 'float16') return 1e-2;
  if (dtype === 'float64') return 1e-10;
  if (dtype === 'int32' || dtype === 'uint8' || dtype === 'bool') return 0;
  return 1e-5;
}

/** Expect same shape and relative error within `rtol` (defaults by dtype). */
export function expectClose(actual: Tensor, expected: Tensor, rtol?: number, what = 'tensor'): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  const tol = rtol ?? toleranceFor(expected.dtype);
  const err = relativeError(actual.toTypedArray(), expected.toTypedArray());
  expect(err, `${what}: relative error ${err} > ${tol}`).toBeLessThanOrEqual(tol);
}
