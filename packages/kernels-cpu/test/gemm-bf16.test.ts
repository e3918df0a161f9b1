// The packed bfloat16 GEMM (native/gemm_bf16.cc). On every x86-64 the scalar emulation of vdpbf16ps (mode 1) runs
// through the same packing and loops as the AVX-512 BF16 kernel: bf16 matmul against core's reference on odd shapes
// (K odd, K = 1, partial tiles, every transA/transB, batched and broadcast batches, several depth/row/column blocks
// and threads), and the float32 GEMM bit for bit against a JavaScript model of the documented accumulation order.
// Where the CPU has avx512bf16 the hardware kernel is also compared with the emulation (skipped elsewhere).
import { bfloat16BitsToFloat, createRegistry, type DType, type Tensor, tensor } from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, referenceKernelIn, runConformance } from '@omnitrain/core/testing';
import { type GemmBf16Mode, gemmBf16Mode, native, plugin, setGemmBf16Mode } from '@omnitrain/kernels-cpu';
import { afterEach, describe, expect, it } from 'vitest';
import { allowNoNative, status } from './native-available.js';

const B: DType = 'bfloat16';
const FORMS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

const cases: ConformanceCase[] = [];
for (const [ta, tb] of FORMS) {
  const attrs = { transA: ta, transB: tb };
  const f = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
  const a = (m: number, k: number) => (ta ? [k, m] : [m, k]);
  const b = (k: number, n: number) => (tb ? [n, k] : [k, n]);
  // [M, N, K]: K odd, K = 1, M = 1, N = 1, tiles of 8 x 32 partial and exact, several depth blocks (2 * 192 k
  // each), row blocks and threads, two column blocks (N > 4096), K = 0.
  const shapes: [number, number, number, string][] = [
    [97, 131, 67, ''],
    [13, 40, 1, ''],
    [1, 70, 33, ''],
    [37, 1, 20, ''],
    [16, 64, 2, ' (exact tiles)'],
    [150, 530, 901, ' (depth, row and thread blocks)'],
    [5, 4200, 40, ' (two column blocks)'],
    [4, 5, 0, ''],
  ];
  for (const [M, N, K, why] of shapes) {
    cases.push({
      op: 'matmul',
      name: `${f} ${M}x${N}x${K}${why}`,
      dtype: B,
      inputs: (r: CaseRandom) => [r.tensor(a(M, K), B), r.tensor(b(K, N), B)],
      attrs,
    });
  }
  cases.push({
    op: 'matmul',
    name: `${f} batched [3] 29x23x301`,
    dtype: B,
    inputs: (r) => [r.tensor([3, ...a(29, 301)], B), r.tensor([3, ...b(301, 23)], B)],
    attrs,
  });
  cases.push({
    op: 'matmul',
    name: `${f} broadcast [2,1] x [4] 5x7x9`,
    dtype: B,
    inputs: (r) => [r.tensor([2, 1, ...a(5, 9)], B), r.tensor([4, ...b(9, 7)], B)],
    attrs,
  });
  cases.push({
    op: 'matmul',
    name: `${f} broadcast [2,3] x [3] 4x5x6`,
    dtype: B,
    inputs: (r) => [r.tensor([2, 3, ...a(4, 6)], B), r.tensor([3, ...b(6, 5)], B)],
    attrs,
  });
  cases.push({
    op: 'matmul',
    name: `${f} shared B [2,3] x [] 9x5x17`,
    dtype: B,
    inputs: (r) => [r.tensor([2, 3, ...a(9, 17)], B), r.tensor(b(17, 5), B)],
    attrs,
  });
  cases.push({
    op: 'matmul',
    name: `${f} shared A [] x [3] 11x33x7`,
    dtype: B,
    inputs: (r) => [r.tensor(a(11, 7), B), r.tensor([3, ...b(7, 33)], B)],
    attrs,
  });
}

const skip = !status.available && allowNoNative;
const registry = createRegistry().use(plugin);
const n = skip ? null : native();
const hardware = n?.info().gemmBf16 === 'avx512-bf16';
const runs = () => n!.info().gemmBf16Runs;

/** The bf16 matmul cases through the registry's kernel with the given mode (restored afterwards). */
function conformance(mode: GemmBf16Mode) {
  const before = gemmBf16Mode();
  setGemmBf16Mode(mode);
  try {
    return runConformance({ registry, ops: ['matmul'], extraCases: cases }).slice(-cases.length);
  } finally {
    setGemmBf16Mode(before);
  }
}

/** Deterministic bfloat16 bits, values in about [-2, 2). */
function bits(count: number, seed: number): Uint16Array {
  let s = seed >>> 0 || 1;
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s / 4294967296) * 4 - 2;
    out[i] = (new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16) & 0xffff;
  }
  return out;
}

/**
 * The documented per-element chain of vdpbf16ps, in float32: for each k-pair q, acc += A[2q+1]*B[2q+1] then
 * acc += A[2q]*B[2q] (a missing odd k of an odd K reads as 0). Products of bfloat16 are exact in float32.
 */
function model(A: Uint16Array, Bm: Uint16Array, M: number, N: number, K: number, ta: boolean, tb: boolean) {
  const av = Float64Array.from(A, bfloat16BitsToFloat);
  const bv = Float64Array.from(Bm, bfloat16BitsToFloat);
  const a = (i: number, k: number) => (k >= K ? 0 : av[ta ? k * M + i : i * K + k]!);
  const b = (k: number, j: number) => (k >= K ? 0 : bv[tb ? j * K + k : k * N + j]!);
  const C = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k += 2) {
        acc = Math.fround(acc + a(i, k + 1) * b(k + 1, j));
        acc = Math.fround(acc + a(i, k) * b(k, j));
      }
      C[i * N + j] = acc;
    }
  }
  return C;
}

describe.skipIf(skip)('bfloat16 matmul on the emulated AVX-512 BF16 GEMM (OMNITRAIN_GEMM_BF16=emulate)', () => {
  const before = skip ? null : runs();
  const results = skip ? [] : conformance(1);
  const after = skip ? null : runs();

  it.each(results.map((r) => [r.name, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
  });

  it('ran every case on the emulation (not the float32 widening)', () => {
    // One GEMM per batch entry at least; the core suite's own bf16 matmul case adds one more.
    expect(after!.emulated - before!.emulated).toBeGreaterThanOrEqual(cases.length);
    expect(after!.hardware).toBe(before!.hardware);
  });
});

describe.skipIf(skip)('gemmBf16 binding', () => {
  const initial = gemmBf16Mode();
  afterEach(() => setGemmBf16Mode(initial));

  it('emulation: float32 result bit for bit equal to the documented vdpbf16ps chain', () => {
    const shapes: [number, number, number][] = [
      [37, 45, 301],
      [8, 32, 1],
      [1, 1, 2],
      [3, 70, 5],
      [150, 70, 901],
      [300, 40, 777],
    ];
    let seed = 7;
    for (const [M, N, K] of shapes) {
      for (const [ta, tb] of FORMS) {
        const A = bits(M * K, seed++);
        const Bm = bits(K * N, seed++);
        const C = new Float32Array(M * N).fill(Number.NaN);
        const one = new Float64Array(1);
        expect(n!.gemmBf16(A, Bm, C, M, N, K, ta, tb, one, one, 1)).toBe(true);
        const want = model(A, Bm, M, N, K, ta, tb);
        let bad = 0;
        let first = '';
        for (let i = 0; i < want.length; i++) {
          if (!Object.is(C[i], want[i])) {
            if (!bad) first = `element ${i}: got ${C[i]}, expected ${want[i]}`;
            bad++;
          }
        }
        expect(bad, `${M}x${N}x${K} ${ta}${tb}: ${bad} differ, ${first}`).toBe(0);
      }
    }
  });

  it('emulation: batch offsets (broadcast operands), K = 0 writes zeros', () => {
    const [M, N, K] = [9, 35, 13];
    const A = bits(2 * M * K, 101);
    const Bm = bits(3 * K * N, 102);
    // batch of 6: A entries 0,1,0,1,0,1; B entries 0,0,1,1,2,2.
    const offA = Float64Array.from([0, 1, 0, 1, 0, 1], (e) => e * M * K);
    const offB = Float64Array.from([0, 0, 1, 1, 2, 2], (e) => e * K * N);
    const C = new Float32Array(6 * M * N).fill(Number.NaN);
    expect(n!.gemmBf16(A, Bm, C, M, N, K, false, true, offA, offB, 1)).toBe(true);
    for (let p = 0; p < 6; p++) {
      const a = A.subarray(offA[p]!, offA[p]! + M * K);
      const b = Bm.subarray(offB[p]!, offB[p]! + K * N);
      expect(Array.from(C.subarray(p * M * N, (p + 1) * M * N)), `entry ${p}`).toEqual(
        Array.from(model(a, b, M, N, K, false, true)),
      );
    }
    const Z = new Float32Array(12).fill(Number.NaN);
    const one = new Float64Array(1);
    expect(n!.gemmBf16(new Uint16Array(0), new Uint16Array(0), Z, 3, 4, 0, false, false, one, one, 1)).toBe(true);
    expect(Array.from(Z)).toEqual(new Array(12).fill(0));
  });

  it('mode selection: emulate / off / auto, and auto writes nothing without avx512bf16', () => {
    const a = tensor(
      Array.from({ length: 6 * 10 }, (_, i) => Math.sin(i)),
      { shape: [6, 10], dtype: B },
    );
    const b = tensor(
      Array.from({ length: 10 * 7 }, (_, i) => Math.cos(i)),
      { shape: [10, 7], dtype: B },
    );
    const kernel = registry.kernels('cpu', 'matmul')[0]!.kernel;
    const want = referenceKernelIn(registry, 'matmul')([a, b], {}) as Tensor;
    const check = (mode: GemmBf16Mode, emulated: number, hw: number) => {
      setGemmBf16Mode(mode);
      const r0 = runs();
      const y = kernel([a, b], {}) as Tensor;
      const r1 = runs();
      expect(y.dtype).toBe(B);
      const got = Array.from(y.toTypedArray() as ArrayLike<number>);
      const ref = Array.from(want.toTypedArray() as ArrayLike<number>);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!), `mode ${mode}`).toBeLessThan(0.05);
      expect([r1.emulated - r0.emulated, r1.hardware - r0.hardware], `mode ${mode}`).toEqual([emulated, hw]);
      y.dispose();
    };
    check(1, 1, 0);
    check(2, 0, 0);
    check(0, 0, hardware ? 1 : 0);
    expect(() => setGemmBf16Mode(3 as GemmBf16Mode)).toThrow(/expected 0, 1 or 2/);
    if (!hardware) {
      const C = new Float32Array(4).fill(Number.NaN);
      const one = new Float64Array(1);
      expect(n!.gemmBf16(new Uint16Array(4), new Uint16Array(4), C, 2, 2, 2, false, false, one, one, 0)).toBe(false);
      expect(C.every(Number.isNaN)).toBe(true);
    }
    for (const t of [a, b, want]) t.dispose();
  });
});

describe.skipIf(skip)('AVX-512 BF16 hardware kernel', () => {
  const reason = hardware ? '' : ` (skipped: info().gemmBf16 is '${n?.info().gemmBf16}', no avx512bf16 on this CPU)`;

  it.skipIf(!hardware)(`matches the emulation on every form and blocking${reason}`, () => {
    const shapes: [number, number, number][] = [
      [37, 45, 301],
      [8, 32, 1],
      [1, 1, 2],
      [150, 530, 901],
      [300, 1100, 260],
      [5, 4200, 40],
    ];
    let seed = 1;
    const one = new Float64Array(1);
    const report: string[] = [];
    for (const [M, N, K] of shapes) {
      for (const [ta, tb] of FORMS) {
        const A = bits(M * K, seed++);
        const Bm = bits(K * N, seed++);
        const hw = new Float32Array(M * N).fill(Number.NaN);
        const emu = new Float32Array(M * N).fill(Number.NaN);
        expect(n!.gemmBf16(A, Bm, hw, M, N, K, ta, tb, one, one, 0)).toBe(true);
        expect(n!.gemmBf16(A, Bm, emu, M, N, K, ta, tb, one, one, 1)).toBe(true);
        let diff = 0;
        let norm = 0;
        let differ = 0;
        for (let i = 0; i < emu.length; i++) {
          diff += (hw[i]! - emu[i]!) ** 2;
          norm += emu[i]! ** 2;
          if (!Object.is(hw[i], emu[i])) differ++;
        }
        report.push(`${M}x${N}x${K} ${ta}${tb}: ${differ} of ${emu.length} elements differ`);
        expect(Math.sqrt(diff), `${M}x${N}x${K} ${ta}${tb}`).toBeLessThanOrEqual(1e-5 * Math.sqrt(norm));
      }
    }
    console.info(`[gemm-bf16] hardware vs emulation:\n  ${report.join('\n  ')}`);
  });

  it.skipIf(!hardware)(`bf16 matmul on the hardware kernel passes the same cases${reason}`, () => {
    const r0 = runs();
    const bad = conformance(0).filter((r) => !r.ok);
    expect(bad.map((r) => `${r.name}: ${r.message}`)).toEqual([]);
    expect(runs().hardware - r0.hardware).toBeGreaterThanOrEqual(cases.length);
  });
});
