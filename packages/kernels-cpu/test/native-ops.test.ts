// The native elementwise, reduction, cast and GEMM kernels against core's reference kernels, on cases the core
// conformance suite does not reach natively: trailing-row broadcasts, last-dim/prefix reductions, bfloat16,
// float16 special values, sizes large enough for the threaded paths, every transA/transB GEMM form, beta.
import { createRegistry, type DType, Tensor, tensor } from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, referenceKernelIn, runConformance } from '@omnitrain/core/testing';
import { NATIVE_KERNELS, native, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { nativeFallbacks } from './case-inputs.js';
import { allowNoNative, status } from './native-available.js';

const F: DType = 'float32';
const B: DType = 'bfloat16';
const cases: ConformanceCase[] = [];
const add = (c: ConformanceCase) => cases.push(c);

for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'lt', 'ge', 'eq']) {
  for (const dt of [F, B]) {
    add({
      op,
      name: `[3,7,129] row [129] ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor([3, 7, 129], dt), r.tensor([129], dt)],
    });
    add({
      op,
      name: `row [1,129] + [5,129] ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor([1, 129], dt), r.tensor([5, 129], dt)],
    });
    add({ op, name: `[70001] same ${dt}`, dtype: dt, inputs: (r) => [r.tensor([70001], dt), r.tensor([70001], dt)] });
    add({
      op,
      name: `[33,9] scalar 0.37 ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor([33, 9], dt)],
      attrs: { scalar: 0.37 },
    });
  }
  add({
    op,
    name: 'reverse scalar 3',
    dtype: F,
    inputs: (r) => [r.tensor([5, 17])],
    attrs: { scalar: 3, reverse: true },
  });
  add({ op, name: '[1,1] tensor scalar', dtype: F, inputs: (r) => [r.tensor([6, 11]), r.tensor([1, 1])] });
}
const positive = new Set(['log', 'sqrt', 'rsqrt']);
for (const op of ['neg', 'abs', 'square', 'relu', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'silu', 'gelu']) {
  const lo = positive.has(op) ? 0.01 : -9;
  for (const dt of [F, B]) {
    add({ op, name: `[41,1001] ${dt}`, dtype: dt, inputs: (r) => [r.tensor([41, 1001], dt, lo, 9)] });
  }
}
add({
  op: 'gelu',
  name: 'tanh [5,999]',
  dtype: F,
  inputs: (r) => [r.tensor([5, 999], F, -9, 9)],
  attrs: { approximate: 'tanh' },
});
add({
  op: 'gelu',
  name: 'tanh bf16',
  dtype: B,
  inputs: (r) => [r.tensor([77], B, -5, 5)],
  attrs: { approximate: 'tanh' },
});
for (const exponent of [2, 3, -1.5, 0.5]) {
  add({
    op: 'pow',
    name: `^${exponent}`,
    dtype: F,
    inputs: (r) => [r.tensor([9, 31], F, 0.1, 3)],
    attrs: { exponent },
  });
}
add({ op: 'clamp', name: 'min only', dtype: F, inputs: (r) => [r.tensor([4, 33])], attrs: { min: -0.2 } });
add({
  op: 'clamp',
  name: 'bf16 [-0.3,0.7]',
  dtype: B,
  inputs: (r) => [r.tensor([4, 33], B)],
  attrs: { min: -0.3, max: 0.7 },
});
for (const op of ['tanhBackward', 'sigmoidBackward', 'siluBackward', 'geluBackward']) {
  for (const approximate of op === 'geluBackward' ? ['none', 'tanh'] : [undefined]) {
    add({
      op,
      name: `[23,1001] ${approximate ?? ''}`,
      dtype: F,
      inputs: (r) => [r.tensor([23, 1001]), r.tensor([23, 1001], F, op === 'tanhBackward' ? -1 : -6, 6)],
      attrs: approximate ? { approximate } : {},
    });
  }
}
for (const op of ['sum', 'mean', 'max', 'min']) {
  for (const dt of [F, B]) {
    add({
      op,
      name: `[17,1003] last ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor([17, 1003], dt)],
      attrs: { dims: [1] },
    });
    add({
      op,
      name: `[2,3,13] last two keepdim ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor([2, 3, 13], dt)],
      attrs: { dims: [1, 2], keepdim: true },
    });
  }
  add({ op, name: '[300007] all', dtype: F, inputs: (r) => [r.tensor([300007], F, 0, 1)], attrs: {} });
  add({ op, name: '[2049,65] dim 0 (prefix)', dtype: F, inputs: (r) => [r.tensor([2049, 65])], attrs: { dims: [0] } });
  add({
    op,
    name: '[5,401,33] dims [0,1]',
    dtype: F,
    inputs: (r) => [r.tensor([5, 401, 33])],
    attrs: { dims: [0, 1] },
  });
  add({ op, name: 'scalar tensor', dtype: F, inputs: (r) => [r.tensor([])], attrs: {} });
}
add({
  op: 'max',
  name: 'NaN and ties',
  dtype: F,
  inputs: () => [tensor([1, 3, 3, Number.NaN, 2, 5, 5, 0, 0, 7, Number.NaN, 7], { shape: [3, 4] })],
  attrs: { dims: [1] },
});
add({ op: 'sumTo', name: '[4,7,33] -> [33]', dtype: F, inputs: (r) => [r.tensor([4, 7, 33])], attrs: { shape: [33] } });
add({
  op: 'sumTo',
  name: '[4,7,33] -> [1,1,33] bf16',
  dtype: B,
  inputs: (r) => [r.tensor([4, 7, 33], B)],
  attrs: { shape: [1, 1, 33] },
});
const specials = [0, -0, 1, -1, 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 2.98e-8, 1e-10, Infinity, -Infinity, Number.NaN];
add({
  op: 'cast',
  name: 'f32 -> f16 specials',
  dtype: 'float16',
  inputs: () => [tensor(specials)],
  attrs: { dtype: 'float16' },
});
add({
  op: 'cast',
  name: '[70001] f32 -> f16',
  dtype: 'float16',
  inputs: (r) => [r.tensor([70001], F, -7e4, 7e4)],
  attrs: { dtype: 'float16' },
});
add({
  op: 'cast',
  name: 'f16 -> f32',
  dtype: F,
  inputs: (r) => [r.tensor([3, 999], 'float16', -100, 100)],
  attrs: { dtype: 'float32' },
});
add({
  op: 'cast',
  name: 'f16 specials -> f32',
  dtype: F,
  inputs: () => [tensor(specials, { dtype: 'float16' })],
  attrs: { dtype: 'float32' },
});
add({
  op: 'cast',
  name: 'f32 -> f64',
  dtype: 'float64',
  inputs: (r) => [r.tensor([7, 13])],
  attrs: { dtype: 'float64' },
});
/** The four (transA, transB) combinations. */
const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;
for (const [ta, tb] of TRANSPOSES) {
  const attrs = { transA: ta, transB: tb };
  const sh = (r: number, c: number, t: boolean) => (t ? [c, r] : [r, c]);
  add({
    op: 'matmul',
    name: `97x131x67 ${ta}${tb}`,
    dtype: F,
    inputs: (r: CaseRandom) => [r.tensor(sh(97, 67, ta)), r.tensor(sh(67, 131, tb))],
    attrs,
  });
  add({
    op: 'matmul',
    name: `batched 3x29x301x23 ${ta}${tb}`,
    dtype: F,
    inputs: (r: CaseRandom) => [r.tensor([3, ...sh(29, 301, ta)]), r.tensor([3, ...sh(301, 23, tb)])],
    attrs,
  });
  add({
    op: 'matmul',
    name: `300x1100x260 ${ta}${tb}`,
    dtype: F,
    inputs: (r: CaseRandom) => [r.tensor(sh(300, 260, ta)), r.tensor(sh(260, 1100, tb))],
    attrs,
  });
  add({
    op: 'matmul',
    name: `5x4200x40 (two column blocks) ${ta}${tb}`,
    dtype: F,
    inputs: (r: CaseRandom) => [r.tensor(sh(5, 40, ta)), r.tensor(sh(40, 4200, tb))],
    attrs,
  });
}

const registry = createRegistry().use(plugin);
const skip = !status.available && allowNoNative;

/**
 * The native matmul kernel against the reference on sin/cos inputs (A[i] = sin(i*fa), B[i] = cos(i*fb)): the largest
 * absolute difference and the largest reference magnitude. Inputs and outputs are disposed.
 */
function matmulVsReference(
  n: NonNullable<ReturnType<typeof native>>,
  M: number,
  N: number,
  K: number,
  ta: boolean,
  tb: boolean,
  fa: number,
  fb: number,
): { err: number; ref: number } {
  const at = tensor(
    Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * fa)),
    { shape: ta ? [K, M] : [M, K] },
  );
  const bt = tensor(
    Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * fb)),
    { shape: tb ? [N, K] : [K, N] },
  );
  const got = NATIVE_KERNELS.matmul!(n, [at, bt], { transA: ta, transB: tb }) as Tensor;
  const want = referenceKernelIn(registry, 'matmul')([at, bt], { transA: ta, transB: tb }) as Tensor;
  const g = got.raw() as Float32Array;
  const w = want.raw() as Float32Array;
  let err = 0;
  let ref = 0;
  for (let i = 0; i < g.length; i++) {
    err = Math.max(err, Math.abs(g[i]! - w[i]!));
    ref = Math.max(ref, Math.abs(w[i]!));
  }
  for (const x of [at, bt, got, want]) x.dispose();
  return { err, ref };
}

describe('native elementwise, reduction, cast and GEMM kernels', () => {
  const ops = [...new Set(cases.map((c) => c.op))];
  const results = skip ? [] : runConformance({ registry, ops, extraCases: cases }).slice(-cases.length);

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name} (${r.dtype})`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
  });

  it.skipIf(skip)('handles these cases natively (no fallback to the reference)', () => {
    expect(nativeFallbacks(cases)).toEqual([]);
  });

  it.skipIf(skip)('the packed SIMD GEMM (OMNITRAIN_GEMM=packed) passes the same matmul cases', () => {
    const n = native()!;
    n.setGemmImpl(1);
    try {
      const bad = runConformance({ registry, ops: ['matmul'], extraCases: cases }).filter((r) => !r.ok);
      expect(bad.map((r) => `${r.name}: ${r.message}`)).toEqual([]);
    } finally {
      n.setGemmImpl(2);
    }
  });

  it.skipIf(skip)(
    'the packed GEMM over several depth and column blocks matches the reference, at 1, 2 and 3 threads',
    () => {
      // K = 2100: three depth blocks (B double-buffered across the team's barriers); N = 1100 at K = 1024: two column
      // blocks (a B block holds at most 1M floats); 3 threads on this machine's cores: ranks that wait for each other.
      const n = native()!;
      const threads = n.info().threads;
      n.setGemmImpl(1);
      try {
        for (const t of [1, 2, 3]) {
          n.setThreads(t);
          for (const [M, N, K, ta, tb] of [
            [40, 70, 2100, false, false],
            [30, 1100, 1024, true, false],
            [61, 1100, 1024, false, true],
          ] as const) {
            const { err, ref } = matmulVsReference(n, M, N, K, ta, tb, 0.37, 0.11);
            expect(err, `${t} threads ${M}x${N}x${K} ta ${ta} tb ${tb}`).toBeLessThan(1e-5 * ref);
          }
        }
      } finally {
        n.setThreads(threads);
        n.setGemmImpl(2);
      }
    },
  );

  it.skipIf(skip)('the automatic GEMM choice is the packed GEMM for K <= 1536 and OpenBLAS panels above', () => {
    // The two implementations sum in different orders, so their float32 bits differ; the automatic mode must
    // reproduce, bit for bit, the one it claims to pick on each side of the threshold.
    const n = native()!;
    const run = (impl: 0 | 1 | 2, M: number, N: number, K: number) => {
      n.setGemmImpl(impl);
      const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.3));
      const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
      const c = new Float32Array(M * N);
      n.gemm(a, b, c, M, N, K, false, false, new Float64Array(1), new Float64Array(1), 0);
      return c;
    };
    try {
      for (const [K, picks] of [
        [1536, 1],
        [1537, 0],
      ] as const) {
        const [M, N] = [64, 96];
        const auto = run(2, M, N, K);
        const other = run(picks === 1 ? 0 : 1, M, N, K);
        expect(run(picks, M, N, K), `K ${K}`).toEqual(auto);
        expect(other, `K ${K}: the two implementations must differ for this check to mean anything`).not.toEqual(auto);
      }
      n.setGemmImpl(2);
      expect(n.info().gemm).toContain('for K <= 1536');
    } finally {
      n.setGemmImpl(2);
    }
  });

  it.skipIf(skip)("the AVX-512 kernel's 6x32 tiling (emulated lanes) equals the AVX2 6x16 kernel bit for bit", () => {
    // Each element is one FMA chain over k in the same order and the same depth blocks, whatever tile it falls in,
    // so the 6x32 path (32-wide B panels and their packing, edge tiles, column blocks) must reproduce the AVX2
    // kernel's bits. Here it runs on 16 emulated C++ lanes (setPackedGemmIsa(3)); on an AVX-512 CPU the real 6x32
    // kernel (level 2) is held to the same.
    const n = native()!;
    const gemm = (M: number, N: number, K: number, ta: boolean, tb: boolean, beta: number) => {
      const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
      const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
      const c = Float32Array.from({ length: M * N }, (_, i) => (i % 5) - 2);
      n.gemm(a, b, c, M, N, K, ta, tb, new Float64Array(1), new Float64Array(1), beta);
      return new Uint32Array(c.buffer);
    };
    const levels: (2 | 3)[] = n.info().isa.startsWith('avx512') ? [3, 2] : [3];
    n.setGemmImpl(1);
    try {
      for (const [M, N, K] of [
        [7, 5, 3],
        [13, 33, 300],
        [100, 37, 513],
        [145, 290, 257],
        [40, 70, 2100], // three depth blocks
        [61, 1100, 1024], // two column blocks
      ] as const) {
        for (const [ta, tb] of TRANSPOSES) {
          for (const beta of [0, 1, 0.5]) {
            expect(n.setPackedGemmIsa(1)).toBe(true);
            const want = gemm(M, N, K, ta, tb, beta);
            for (const level of levels) {
              expect(n.setPackedGemmIsa(level)).toBe(true);
              expect(n.info().gemm).toContain(level === 3 ? 'emulated 6x32' : 'avx512 6x32');
              const got = gemm(M, N, K, ta, tb, beta);
              const at = got.findIndex((x, i) => x !== want[i]);
              expect(at, `level ${level} ${M}x${N}x${K} ta ${ta} tb ${tb} beta ${beta}: first bit difference`).toBe(-1);
            }
          }
        }
      }
    } finally {
      n.setPackedGemmIsa(0);
      n.setGemmImpl(2);
    }
    expect(n.info().gemm).not.toContain('emulated');
  });

  it.skipIf(skip)('setPackedGemmIsa refuses a kernel this CPU cannot run, and changes nothing then', () => {
    const n = native()!;
    const before = n.info().gemm;
    if (!n.info().isa.startsWith('avx512')) expect(n.setPackedGemmIsa(2)).toBe(false);
    expect(n.setPackedGemmIsa(7 as 0)).toBe(false);
    expect(n.info().gemm).toBe(before);
  });

  it.skipIf(skip)('matmul outputs are not zero-filled first, yet every element is written (NaN-poisoned reuse)', () => {
    // The output comes from Tensor.uninitialized: a reused cached buffer keeps old bytes. Poison the buffer class
    // the outputs will reuse with NaN, then check each GEMM form (both implementations, K = 0 too) overwrites all.
    const n = native()!;
    const shapes: [number, number, number][] = [
      [200, 330, 70],
      [200, 330, 0],
      [3, 200, 330],
    ];
    for (const impl of [0, 1, 2] as const) {
      n.setGemmImpl(impl);
      for (const [M, N, K] of shapes) {
        for (const [ta, tb] of TRANSPOSES) {
          const poison = Tensor.empty([M, N]);
          (poison.raw() as Float32Array).fill(Number.NaN);
          poison.dispose();
          const { err } = matmulVsReference(n, M, N, K, ta, tb, 1, 1);
          expect(err, `impl ${impl} ${M}x${N}x${K} ta ${ta} tb ${tb}`).toBeLessThan(1e-3);
        }
      }
    }
    n.setGemmImpl(2);
  });

  it.skipIf(skip)('GEMM accumulates into C with beta (as fused cross-entropy backward does)', () => {
    const n = native()!;
    const [M, N, K] = [37, 45, 300];
    const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
    const at = tensor(a, { shape: [M, K] });
    const bt = tensor(b, { shape: [K, N] });
    const want = referenceKernelIn(registry, 'matmul')([at, bt], {}) as Tensor;
    const w = want.raw() as Float32Array;
    for (const [impl, beta] of [
      [0, 1],
      [0, 0.5],
      [1, 1],
      [1, 0.5],
      [2, 1],
      [2, 0.5],
    ] as const) {
      n.setGemmImpl(impl);
      const c = Float32Array.from({ length: M * N }, (_, i) => (i % 7) - 3);
      const c0 = c.slice();
      n.gemm(a, b, c, M, N, K, false, false, new Float64Array(1), new Float64Array(1), beta);
      let err = 0;
      let ref = 0;
      for (let i = 0; i < M * N; i++) {
        err = Math.max(err, Math.abs(c[i]! - (beta * c0[i]! + w[i]!)));
        ref = Math.max(ref, Math.abs(w[i]!));
      }
      expect(err, `impl ${impl} beta ${beta}`).toBeLessThan(1e-5 * ref + 1e-5);
    }
    n.setGemmImpl(2);
    for (const t of [at, bt, want]) t.dispose();
  });
});
