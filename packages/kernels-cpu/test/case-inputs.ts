// Inputs of a conformance case from a small deterministic generator, for the tests that call NATIVE_KERNELS
// directly (to prove a case runs natively, without the registry's fallback to the reference).
import { type Tensor, tensor } from '@omnitrain/core';
import type { CaseRandom, ConformanceCase } from '@omnitrain/core/testing';
import { NATIVE_KERNELS, native } from '@omnitrain/kernels-cpu';

/** A seeded CaseRandom: uniform floats; int32 tensors get integers in [lo, hi), bool tensors 0/1. */
export function caseRandom(seed: number): CaseRandom {
  let s = seed;
  const rand: CaseRandom = {
    uniform: (lo = -1, hi = 1) => {
      s = (s * 16807) % 2147483647;
      return lo + ((hi - lo) * s) / 2147483647;
    },
    int: (lo, hi) => lo + Math.floor(rand.uniform(0, hi - lo)),
    tensor: (shape, dtype = 'float32', lo = -1, hi = 1) =>
      tensor(
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () =>
          dtype === 'bool' ? Number(rand.uniform() > 0) : dtype === 'int32' ? rand.int(lo, hi) : rand.uniform(lo, hi),
        ),
        { shape, dtype },
      ),
  };
  return rand;
}

/** The inputs of case number `i` (seed i + 1). */
export function caseInputs(c: ConformanceCase, i: number): Tensor[] {
  return c.inputs(caseRandom(i + 1));
}

/** `op name` of every case the native kernel declines (returns null for), each run on its caseInputs. */
export function nativeFallbacks(cases: readonly ConformanceCase[]): string[] {
  const n = native()!;
  const fallbacks: string[] = [];
  cases.forEach((c, i) => {
    const ins: Tensor[] = caseInputs(c, i);
    const out = NATIVE_KERNELS[c.op]!(n, ins, c.attrs ?? {});
    if (!out) fallbacks.push(`${c.op} ${c.name}`);
    for (const t of [...ins, ...[out ?? []].flat()]) if (!t.isDisposed) t.dispose();
  });
  return fallbacks;
}
