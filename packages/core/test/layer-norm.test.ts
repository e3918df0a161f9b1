import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  layerNorm,
  memoryStats,
  runBackward,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const cases = loadFixture('layer_norm');
const run = ({ x, weight, bias }: Record<string, Tensor>, { eps }: Record<string, any>) =>
  layerNorm(x!, weight ?? null, bias ?? null, eps);

describe('layerNorm', () => {
  it('has float32 and bfloat16 fixtures with gradients for every input', () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
    expect(cases.some((c) => c.inputs.x!.dtype === 'bfloat16')).toBe(true);
    expect(cases.some((c) => !c.inputs.weight && c.inputs.bias)).toBe(true);
    for (const c of cases) expect(Object.keys(c.grads).sort()).toEqual(Object.keys(c.inputs).sort());
  });

  for (const c of cases) {
    it(`matches torch.nn.functional.layer_norm: ${c.name}`, () => checkCase(c, run));
  }

  it('passes float64 gradcheck for x, weight and bias', () => {
    tidy(() => {
      const x = randomF64([3, 2, 7], 1, 2);
      const w = randomF64([7], 2);
      const b = randomF64([7], 3);
      gradcheck((a, c, d) => layerNorm(a, c, d, 1e-3), [x, w, b], { names: ['x', 'weight', 'bias'] });
      gradcheck((a) => layerNorm(a, null, null), [randomF64([1, 5], 4, 3)], { names: ['x'] });
      gradcheck((a, c) => layerNorm(a, c, null), [randomF64([2, 7], 5), w], { names: ['x', 'weight'] });
      gradcheck((a, d) => layerNorm(a, null, d), [randomF64([2, 6], 6), randomF64([6], 7)], { names: ['x', 'bias'] });
    });
  });

  it('dispatches its own backward kernel, which a backend can override', () => {
    const r = createRegistry();
    const reference = r.kernels('cpu', 'layerNormBackward')[0]!.kernel;
    const seen: unknown[] = [];
    r.registerKernel(
      'cpu',
      'layerNormBackward',
      (inputs, attrs) => {
        seen.push({ n: inputs.length, attrs });
        return reference(inputs, attrs);
      },
      { priority: 10, source: 'test' },
    );
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3, -1, 0.5, 2], { shape: [2, 3], requiresGrad: true });
        const b = tensor([0, 1, 2], { requiresGrad: true });
        runBackward([layerNorm(x, null, b)], [tensor([1, 2, 3, 1, 1, 1], { shape: [2, 3] })]);
        expect(b.grad?.toArray()).toEqual([2, 3, 4]);
        x.grad?.dispose();
        b.grad?.dispose();
      }),
    );
    expect(seen).toEqual([{ n: 4, attrs: { eps: 1e-5, hasWeight: false, hasBias: true } }]);
  });

  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 7], { shape: [2, 3], requiresGrad: true });
      const w = tensor([1, 1, 2], { requiresGrad: true });
      const b = tensor([0, 1, 2], { requiresGrad: true });
      runBackward([layerNorm(x, w, b)], [tensor([1, 0, 1, 0, 1, 0], { shape: [2, 3] })]);
      for (const t of [x, w, b]) t.grad?.dispose();
    });
    tidy(() => {
      layerNorm(tensor([1, 2, 3]));
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('rejects bad arguments with errors naming the op and the shapes', () => {
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
      expect(() => layerNorm(x, tensor([1, 1]))).toThrow(
        /layerNorm: weight of shape \[2\] does not match the last dimension of x \[2,3\]/,
      );
      expect(() => layerNorm(x, null, tensor([1, 1, 1, 1]))).toThrow(
        /layerNorm: bias of shape \[4\] does not match the last dimension of x \[2,3\]/,
      );
      expect(() => layerNorm(x, tensor([1, 1, 1], { dtype: 'bfloat16' }))).toThrow(
        /layerNorm: weight has dtype bfloat16 but x has float32/,
      );
      expect(() => layerNorm(tensor([1, 2], { dtype: 'int32' }))).toThrow(/layerNorm: x must be a float tensor/);
      expect(() => layerNorm(x, null, null, Number.NaN)).toThrow(/layerNorm: eps must be/);
    });
  });
});
