import { describe, expect, it } from 'vitest';
import { embedding, memoryStats, runBackward, type Tensor, tensor, tidy } from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const ids = (values: number[], shape?: number[]) => tensor(values, { dtype: 'int32', shape: shape ?? [values.length] });

describe('embedding matches PyTorch (float32 and bfloat16)', () => {
  const cases = loadFixture('embedding');
  it('has cases in both dtypes', () => {
    expect(cases.filter((c) => c.name.endsWith('_f32')).length).toBeGreaterThan(3);
    expect(cases.filter((c) => c.name.endsWith('_bf16')).length).toBeGreaterThan(3);
  });
  for (const c of cases) {
    it(c.name, () => checkCase(c, (i) => embedding(i.ids!, i.weight!)));
  }
});

describe('embedding: gradients', () => {
  it('float64 gradcheck with repeated ids in a 2-D batch', () => {
    gradcheck((w) => embedding(ids([3, 0, 3, 1, 3, 4], [2, 3]), w!), [randomF64([5, 4], 1)]);
    gradcheck((w) => embedding(ids([2]).reshape([]), w!), [randomF64([3, 2], 2)]);
  });
  it('backward is deterministic and adds rows of repeated ids in order', () => {
    const run = (): Float32Array =>
      tidy(() => {
        const w = tensor(new Array(12).fill(0), { shape: [3, 4] }).requiresGrad_();
        const i = ids(Array.from({ length: 200 }, (_, p) => (p * 7) % 3));
        const out = embedding(i, w);
        const g = tensor(
          Array.from({ length: 800 }, (_, p) => Math.sin(p) * 10 ** ((p % 7) - 3)),
          { shape: [200, 4] },
        );
        runBackward([out], [g]);
        const v = w.grad!.toTypedArray() as Float32Array;
        w.grad!.dispose();
        return v;
      });
    const a = run();
    expect(run()).toEqual(a);
    expect(a.some((v) => v !== 0)).toBe(true);
  });
  it('ids never require grad; only the weight gets a gradient', () => {
    tidy(() => {
      const w = randomF64([4, 2], 3).requiresGrad_();
      const i = ids([1, 1]);
      const out = embedding(i, w);
      expect(out.shape).toEqual([2, 2]);
      runBackward([out], [tensor([1, 2, 3, 4], { dtype: 'float64', shape: [2, 2] })]);
      expect(w.grad!.toArray()).toEqual([0, 0, 4, 6, 0, 0, 0, 0]);
      expect(i.grad).toBeNull();
    });
  });
  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const w = randomF64([6, 3], 4).requiresGrad_();
      const out = embedding(ids([5, 0, 5, 2], [2, 2]), w);
      runBackward([out], [randomF64([2, 2, 3], 5)]);
      w.grad!.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});

describe('embedding: values and errors', () => {
  it('copies rows exactly, bf16 bit patterns included', () => {
    tidy(() => {
      const w = tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], { shape: [3, 2], dtype: 'bfloat16' });
      const out = embedding(ids([2, 0]), w);
      expect(out.dtype).toBe('bfloat16');
      expect(Array.from(out.raw())).toEqual([...Array.from(w.raw()).slice(4, 6), ...Array.from(w.raw()).slice(0, 2)]);
    });
  });
  it('names the bad id, its position and the vocabulary size', () => {
    tidy(() => {
      const w = randomF64([32, 8], 6);
      expect(() => embedding(ids([1, 50, 2]), w)).toThrow(
        /embedding: id 50 at position 1 is out of range for a vocabulary of 32 \(weight \[32, 8\]\)/,
      );
      expect(() => embedding(ids([-1]), w)).toThrow(/id -1 at position 0 is out of range for a vocabulary of 32/);
      expect(() => embedding(tensor([1]) as Tensor, w)).toThrow(/embedding: ids must be int32, got float32/);
      expect(() => embedding(ids([1]), randomF64([32], 7))).toThrow(
        /embedding: weight must be 2-D \[vocab, hidden\], got \[32\]/,
      );
    });
  });
});
