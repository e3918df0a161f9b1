import { describe, expect, it } from 'vitest';
import { bmm, linear, matmul, memoryStats, runBackward, type Tensor, tensor, tidy } from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

type Fn = (i: Record<string, Tensor>, a: Record<string, any>) => Tensor;

const OPS: [string, Fn][] = [
  ['matmul_', (i, a) => matmul(i.a!, i.b!, { transA: a.transA, transB: a.transB })],
  ['bmm_', (i, a) => bmm(i.a!, i.b!, { transA: a.transA, transB: a.transB })],
  ['linear_', (i) => linear(i.x!, i.weight!, i.bias)],
];

/** Plain triple loop on host numbers: the oracle for the kernel's loop orders. */
function naive(a: number[], b: number[], M: number, K: number, N: number): number[] {
  const c = new Array(M * N).fill(0);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) c[i * N + j] += a[i * K + k]! * b[k * N + j]!;
  return c;
}

describe('matmul/bmm/linear match PyTorch (float32 and bfloat16)', () => {
  const cases = loadFixture('matmul');
  it('has cases for every op in both dtypes', () => {
    for (const [prefix] of OPS) {
      for (const tag of ['_f32', '_bf16']) {
        expect(
          cases.some((c) => c.name.startsWith(prefix) && c.name.endsWith(tag)),
          prefix + tag,
        ).toBe(true);
      }
    }
  });
  for (const c of cases) {
    it(c.name, () => {
      const op = OPS.find(([p]) => c.name.startsWith(p));
      if (!op) throw new Error(`no op for fixture case ${c.name}`);
      checkCase(c, op[1]);
    });
  }
});

describe('matmul: float64 gradcheck', () => {
  // Shapes as stored: a transposed operand is given in its transposed layout.
  const shapes: [string, number[], number[], boolean, boolean][] = [
    ['2-D', [3, 4], [4, 5], false, false],
    ['transA', [4, 3], [4, 5], true, false],
    ['transB', [3, 4], [5, 4], false, true],
    ['transA+transB', [4, 3], [5, 4], true, true],
    ['batch broadcast', [2, 1, 3, 4], [3, 4, 2], false, false],
    ['batch broadcast, both flags', [2, 1, 4, 3], [3, 2, 4], true, true],
    ['batch x shared 2-D', [2, 3, 4], [4, 5], false, false],
    ['batch x shared 2-D transB', [2, 3, 4], [5, 4], false, true],
    ['batch x shared 2-D transA', [2, 4, 3], [4, 5], true, false],
    ['shared 2-D x batch', [3, 4], [2, 4, 5], false, false],
    ['vector x matrix', [4], [4, 3], false, false],
    ['matrix x vector', [3, 4], [4], false, false],
    ['vector x vector', [4], [4], false, false],
    ['vector x batch', [4], [2, 3, 4], false, true],
    ['batch x vector', [2, 3, 4], [4], false, false],
  ];
  for (const [name, sa, sb, transA, transB] of shapes) {
    it(name, () => {
      gradcheck((x, y) => matmul(x!, y!, { transA, transB }), [randomF64(sa, 1), randomF64(sb, 2)], {
        names: ['a', 'b'],
      });
    });
  }
  it('bmm with flags', () => {
    gradcheck((x, y) => bmm(x!, y!, { transA: true }), [randomF64([2, 4, 3], 3), randomF64([2, 4, 2], 4)]);
    gradcheck((x, y) => bmm(x!, y!, { transB: true }), [randomF64([2, 3, 4], 5), randomF64([2, 2, 4], 6)]);
  });
  it('linear in x, weight and bias', () => {
    gradcheck((x, w, b) => linear(x!, w!, b!), [randomF64([2, 3, 4], 7), randomF64([5, 4], 8), randomF64([5], 9)], {
      names: ['x', 'weight', 'bias'],
    });
    gradcheck((x, w) => linear(x!, w!), [randomF64([4], 10), randomF64([2, 4], 11)]);
  });
  it('only the operand that needs a gradient gets one', () => {
    tidy(() => {
      const a = randomF64([3, 4], 12).requiresGrad_();
      const b = randomF64([4, 2], 13);
      const y = matmul(a, b);
      runBackward([y], [tensor(new Array(6).fill(1), { dtype: 'float64', shape: [3, 2] })]);
      expect(a.grad!.shape).toEqual([3, 4]);
      expect(b.grad).toBeNull();
    });
  });
});

describe('matmul: semantics', () => {
  it('agrees with a naive triple loop for every flag combination and odd sizes', () => {
    tidy(() => {
      for (const [M, K, N] of [
        [1, 1, 1],
        [5, 9, 3],
        [13, 1, 7],
        [17, 33, 9],
      ] as [number, number, number][]) {
        const a = randomF64([M, K], M + K).toArray();
        const b = randomF64([K, N], K + N).toArray();
        const want = naive(a, b, M, K, N);
        // Transposed layouts built on the host: aT[k][i] = a[i][k], bT[j][k] = b[k][j].
        const aT = Array.from({ length: M * K }, (_, p) => a[(p % M) * K + Math.floor(p / M)]!);
        const bT = Array.from({ length: K * N }, (_, p) => b[(p % K) * N + Math.floor(p / K)]!);
        const f64 = (v: number[], shape: number[]) => tensor(v, { dtype: 'float64', shape });
        for (const [x, y, transA, transB] of [
          [f64(a, [M, K]), f64(b, [K, N]), false, false],
          [f64(aT, [K, M]), f64(b, [K, N]), true, false],
          [f64(a, [M, K]), f64(bT, [N, K]), false, true],
          [f64(aT, [K, M]), f64(bT, [N, K]), true, true],
        ] as [Tensor, Tensor, boolean, boolean][]) {
          const got = matmul(x, y, { transA, transB }).toArray();
          expect(got.length).toBe(M * N);
          const worst = Math.max(...got.map((v, p) => Math.abs(v - want[p]!)));
          expect(worst, `[${M},${K}]x[${K},${N}] transA=${transA} transB=${transB}`).toBeLessThan(1e-12);
        }
      }
    });
  });
  it('result shapes follow torch.matmul', () => {
    tidy(() => {
      const z = (...s: number[]) => randomF64(s, 1);
      expect(matmul(z(7), z(7)).shape).toEqual([]);
      expect(matmul(z(7), z(7, 5)).shape).toEqual([5]);
      expect(matmul(z(3, 7), z(7)).shape).toEqual([3]);
      expect(matmul(z(2, 3, 7), z(7)).shape).toEqual([2, 3]);
      expect(matmul(z(7), z(4, 7, 5)).shape).toEqual([4, 5]);
      expect(matmul(z(2, 1, 3, 4), z(5, 4, 6)).shape).toEqual([2, 5, 3, 6]);
      expect(matmul(z(2, 1, 4, 3), z(5, 6, 4), { transA: true, transB: true }).shape).toEqual([2, 5, 3, 6]);
      expect(matmul(z(0, 3), z(3, 2)).shape).toEqual([0, 2]);
      expect(matmul(z(2, 0), z(0, 3)).toArray()).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });
  it('float32 accumulates in float32; bfloat16 rounds the float32 result once', () => {
    tidy(() => {
      // 1 + 2^-24 * 4 terms: float32 accumulation drops every small term, float64 would keep them.
      const a = tensor([1, 2 ** -24, 2 ** -24, 2 ** -24, 2 ** -24], { shape: [1, 5] });
      const b = tensor([1, 1, 1, 1, 1], { shape: [5, 1] });
      expect(matmul(a, b).item()).toBe(1);
      expect(matmul(a, b.reshape(1, 5), { transB: true }).item()).toBe(1);
      const h = tensor([1, 2 ** -8, 2 ** -8], { shape: [1, 3], dtype: 'bfloat16' });
      const ones = tensor([1, 1, 1], { shape: [3, 1], dtype: 'bfloat16' });
      // The float32 sum 1 + 2^-7 is a bf16 value; rounding to bf16 after each step would give 1.
      expect(matmul(h, ones).item()).toBe(1 + 2 ** -7);
      expect(matmul(h, ones.reshape(1, 3), { transB: true }).item()).toBe(1 + 2 ** -7);
      expect(matmul(h, ones).dtype).toBe('bfloat16');
    });
  });
  it('int32 operands multiply exactly', () => {
    tidy(() => {
      const a = tensor([1, 2, 3, 4], { dtype: 'int32', shape: [2, 2] });
      expect(matmul(a, a).toArray()).toEqual([7, 10, 15, 22]);
      expect(matmul(a, a).dtype).toBe('int32');
    });
  });
  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = randomF64([2, 3, 4], 20).requiresGrad_();
      const w = randomF64([5, 4], 21).requiresGrad_();
      const b = randomF64([5], 22).requiresGrad_();
      const v = randomF64([3], 23).requiresGrad_();
      const y = matmul(v, linear(x, w, b)); // [2, 5]
      const z = bmm(y.reshape(1, 2, 5), y.reshape(1, 2, 5), { transB: true });
      runBackward([z], [tensor([1, 2, 3, 4], { dtype: 'float64', shape: [1, 2, 2] })]);
      for (const t of [x, w, b, v]) {
        expect(t.grad).not.toBeNull();
        t.grad!.dispose();
      }
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});

describe('matmul: errors name the op and the shapes', () => {
  it('mismatched inner sizes, flags included', () => {
    tidy(() => {
      const z = (...s: number[]) => randomF64(s, 1);
      expect(() => matmul(z(3, 7), z(6, 5))).toThrow(
        /matmul: a \[3,7\] and b \[6,5\] cannot be multiplied \(\[3, 7\] @ \[6, 5\]: 7 != 6\)/,
      );
      expect(() => matmul(z(3, 7), z(7, 5), { transB: true })).toThrow(/b \[7,5\] \(transposed\)/);
      expect(() => matmul(z(2, 3, 4), z(3, 4, 5))).toThrow(
        /matmul: batch dimensions \[2\] of a \[2,3,4\] and \[3\] of b \[3,4,5\] do not broadcast/,
      );
      expect(() => matmul(z(3), z(3), { transA: true })).toThrow(/transA needs a matrix/);
      expect(() => matmul(tensor(1), z(3))).toThrow(/at least one dimension/);
      expect(() => matmul(z(3, 3), tensor([[1, 2, 3]]).reshape(3, 1))).toThrow(/a is float64 but b is float32/);
    });
  });
  it('bmm and linear', () => {
    tidy(() => {
      const z = (...s: number[]) => randomF64(s, 1);
      expect(() => bmm(z(3, 4), z(4, 5))).toThrow(/bmm: both operands must be 3-D, got a \[3,4\] and b \[4,5\]/);
      expect(() => bmm(z(2, 3, 4), z(1, 4, 5))).toThrow(/bmm: batch sizes differ/);
      expect(() => linear(z(2, 3), z(5, 4))).toThrow(/linear: x \[2,3\] does not end in the weight's input size 4/);
      expect(() => linear(z(2, 4), z(5, 4), z(4))).toThrow(/linear: bias \[4\] must be \[5\]/);
    });
  });
});
