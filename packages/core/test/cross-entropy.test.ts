import { describe, expect, it } from 'vitest';
import { crossEntropy, memoryStats, runBackward, type Tensor, tensor, tidy } from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const labels = (values: number[]) => tensor(values, { dtype: 'int32' });

// Scalar losses are recorded as [1] by the fixture generator (see tools/fixtures/gen_cross_entropy.py).
const as1 = (loss: Tensor) => (loss.ndim === 0 ? loss.reshape(1) : loss);

describe('crossEntropy', () => {
  const cases = loadFixture('cross_entropy');

  it('has float32 and bfloat16 fixtures for every reduction', () => {
    for (const tag of ['f32', 'bf16']) {
      for (const red of ['mean', 'sum', 'none']) {
        expect(cases.some((c) => c.name.startsWith(`${tag}_${red}`))).toBe(true);
      }
    }
  });

  for (const c of cases) {
    it(`matches PyTorch: ${c.name}`, () => {
      checkCase(c, ({ logits, labels: y }, attrs) =>
        as1(crossEntropy(logits!, y!, { ignoreIndex: attrs.ignoreIndex, reduction: attrs.reduction })),
      );
    });
  }

  it('returns a 0-d loss for mean and sum, [N] for none, in the logits dtype', () => {
    tidy(() => {
      const x = tensor(
        Array.from({ length: 15 }, (_, i) => Math.sin(i)),
        { shape: [3, 5], dtype: 'bfloat16' },
      );
      const y = labels([1, -100, 4]);
      expect(crossEntropy(x, y).shape).toEqual([]);
      expect(crossEntropy(x, y, { reduction: 'sum' }).dtype).toBe('bfloat16');
      const none = crossEntropy(x, y, { reduction: 'none' });
      expect(none.shape).toEqual([3]);
      expect(none.toArray()[1]).toBe(0);
    });
  });

  it('mean over non-ignored rows equals sum / count', () => {
    tidy(() => {
      const x = randomF64([6, 9], 3, 4);
      const y = labels([0, -100, 8, 3, -100, 5]);
      const mean = crossEntropy(x, y).item();
      const sum = crossEntropy(x, y, { reduction: 'sum' }).item();
      expect(mean).toBeCloseTo(sum / 4, 12);
    });
  });

  it('is stable for huge logits', () => {
    tidy(() => {
      const x = tensor([[1e30, 0, -1e30]], { dtype: 'float32' });
      expect(crossEntropy(x, labels([0])).item()).toBe(0);
      expect(crossEntropy(x, labels([1])).item()).toBeCloseTo(1e30, -25);
    });
  });

  for (const reduction of ['mean', 'sum', 'none'] as const) {
    it(`passes a float64 gradcheck (${reduction}, ignored rows)`, () => {
      const y = labels([2, -100, 0, 6, 6]);
      gradcheck((x) => crossEntropy(x, y, { reduction }), [randomF64([5, 7], 11, 3)], { names: ['logits'] });
      const y6 = labels([2, 1, 0, 6, 6]);
      gradcheck((x) => crossEntropy(x, y6, { reduction, ignoreIndex: 6 }), [randomF64([5, 7], 12, 3)], {
        names: ['logits (ignoreIndex 6)'],
      });
      y.dispose();
      y6.dispose();
    });
  }

  it('gives NaN loss and zero gradient when every row is ignored with mean', () => {
    tidy(() => {
      const x = randomF64([2, 3], 5).requiresGrad_();
      const loss = crossEntropy(x, labels([-100, -100]));
      expect(Number.isNaN(loss.item())).toBe(true);
      loss.backward();
      expect(x.grad!.toArray()).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });

  it('rejects bad arguments with clear errors', () => {
    tidy(() => {
      const x = randomF64([3, 4], 1);
      expect(() => crossEntropy(x, labels([0, 1]))).toThrow(/labels must have shape \[3\]/);
      expect(() => crossEntropy(x, tensor([0, 1, 2]))).toThrow(/labels must be int32/);
      expect(() => crossEntropy(x.reshape(12), labels([0]))).toThrow(/logits must be \[N, V\]/);
      expect(() => crossEntropy(x, labels([0, 4, 1]))).toThrow(/label 4 at row 1 is out of range \[0, 4\)/);
      expect(() => crossEntropy(x, labels([0, -1, 1]))).toThrow(/label -1 at row 1/);
      expect(() => crossEntropy(x, labels([0, 1, 2]), { reduction: 'avg' as never })).toThrow(/reduction/);
    });
  });

  it('leaves no tensors or bytes behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = randomF64([4, 6], 2).requiresGrad_();
      const loss = crossEntropy(x, labels([1, 2, -100, 5]));
      runBackward([loss]);
      x.grad?.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});
