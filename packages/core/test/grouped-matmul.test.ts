import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  groupedMatmul,
  memoryStats,
  runBackward,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const cases = loadFixture('grouped_matmul');
const run = ({ x, weight, group_sizes }: Record<string, Tensor>) => groupedMatmul(x!, weight!, group_sizes!);
const sizes = (v: number[]) => tensor(v, { dtype: 'int32' });

describe('groupedMatmul', () => {
  it('has float32 and bfloat16 fixtures, empty groups included, with gradients for x and weight', () => {
    expect(cases.length).toBeGreaterThanOrEqual(7);
    expect(cases.some((c) => c.inputs.x!.dtype === 'bfloat16')).toBe(true);
    expect(cases.some((c) => c.inputs.group_sizes!.toArray().includes(0))).toBe(true);
    for (const c of cases) expect(Object.keys(c.grads).sort()).toEqual(['weight', 'x']);
  });

  for (const c of cases) {
    it(`matches a per-expert loop of PyTorch matmuls: ${c.name}`, () => checkCase(c, run));
  }

  it('gives an empty group a zero weight gradient', () => {
    tidy(() => {
      const x = randomF64([3, 4], 1).detach().requiresGrad_(true);
      const w = randomF64([3, 2, 4], 2).detach().requiresGrad_(true);
      runBackward([groupedMatmul(x, w, sizes([2, 0, 1]))], [randomF64([3, 2], 3)]);
      expect(w.grad!.toArray().slice(8, 16)).toEqual(new Array(8).fill(0));
      expect(
        w
          .grad!.toArray()
          .slice(0, 8)
          .some((v) => v !== 0),
      ).toBe(true);
      x.grad!.dispose();
      w.grad!.dispose();
    });
  });

  it('passes float64 gradcheck for x and weight', () => {
    tidy(() => {
      gradcheck(
        (x, w, g) => groupedMatmul(x, w, g),
        [randomF64([6, 5], 1), randomF64([4, 3, 5], 2), sizes([2, 0, 3, 1])],
        {
          names: ['x', 'weight'],
        },
      );
      gradcheck((x, w, g) => groupedMatmul(x, w, g), [randomF64([1, 3], 3), randomF64([2, 2, 3], 4), sizes([0, 1])], {
        names: ['x', 'weight'],
      });
    });
  });

  it('dispatches its own backward kernel, which a backend can override', () => {
    const r = createRegistry();
    const reference = r.kernels('cpu', 'groupedMatmulBackward')[0]!.kernel;
    let calls = 0;
    r.registerKernel(
      'cpu',
      'groupedMatmulBackward',
      (inputs, attrs) => {
        calls++;
        return reference(inputs, attrs);
      },
      { priority: 10, source: 'test' },
    );
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3, 4], { shape: [2, 2], requiresGrad: true });
        const w = tensor([1, 0, 0, 1, 2, 0, 0, 2], { shape: [2, 2, 2], requiresGrad: true });
        const y = groupedMatmul(x, w, sizes([1, 1]));
        expect(y.toArray()).toEqual([1, 2, 6, 8]);
        runBackward([y], [tensor([1, 1, 1, 1], { shape: [2, 2] })]);
        expect(x.grad!.toArray()).toEqual([1, 1, 2, 2]);
        expect(w.grad!.toArray()).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
        x.grad?.dispose();
        w.grad?.dispose();
      }),
    );
    expect(calls).toBe(1);
  });

  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = tensor([1, 2, 3, 4], { shape: [2, 2], requiresGrad: true });
      const w = tensor([1, 0, 0, 1, 2, 0, 0, 2], { shape: [2, 2, 2], requiresGrad: true });
      runBackward([groupedMatmul(x, w, sizes([0, 2]))], [tensor([1, 1, 1, 1], { shape: [2, 2] })]);
      x.grad?.dispose();
      w.grad?.dispose();
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('rejects bad arguments with errors naming the op and the shapes', () => {
    tidy(() => {
      const x = tensor(new Float32Array(6 * 4), { shape: [6, 4] });
      const w = tensor(new Float32Array(3 * 5 * 4), { shape: [3, 5, 4] });
      expect(() =>
        groupedMatmul(x, tensor(new Float32Array(3 * 5 * 3), { shape: [3, 5, 3] }), sizes([2, 2, 2])),
      ).toThrow(/groupedMatmul: x \[6,4\] and weight \[3,5,3\] disagree on K \(4 vs 3\)/);
      expect(() => groupedMatmul(x, w, sizes([3, 3]))).toThrow(
        /groupedMatmul: groupSizes of shape \[2\] must be \[E\] for weight \[3,5,4\] \(expected \[3\]\)/,
      );
      expect(() => groupedMatmul(x, w, sizes([2, 2, 1]))).toThrow(
        /groupedMatmul: groupSizes sum to 5 but x has 6 rows/,
      );
      expect(() => groupedMatmul(x, w, sizes([7, -1, 0]))).toThrow(/groupedMatmul: groupSizes\[1\] is -1/);
      expect(() => groupedMatmul(x, w, tensor([2, 2, 2]))).toThrow(
        /groupedMatmul: groupSizes must be int32, got float32/,
      );
      expect(() => groupedMatmul(x.reshape(24), w, sizes([2, 2, 2]))).toThrow(
        /groupedMatmul: x must be \[T, K\], got shape \[24\]/,
      );
      expect(() => groupedMatmul(x, w.reshape(15, 4), sizes([2, 2, 2]))).toThrow(
        /groupedMatmul: weight must be \[E, N, K\], got shape \[15,4\]/,
      );
      expect(() =>
        groupedMatmul(x, tensor(new Float32Array(60), { shape: [3, 5, 4], dtype: 'bfloat16' }), sizes([2, 2, 2])),
      ).toThrow(/groupedMatmul: x has dtype float32 but weight has bfloat16/);
    });
  });
});
