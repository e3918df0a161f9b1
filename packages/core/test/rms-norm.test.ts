import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  memoryStats,
  rmsNorm,
  runBackward,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';
import { expectClose } from './helpers/compare.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const cases = loadFixture('rms_norm');
const run = ({ x, weight }: Record<string, Tensor>, { eps }: Record<string, any>) => rmsNorm(x!, weight!, eps);

describe('rmsNorm', () => {
  it('has float32 and bfloat16 fixtures with gradients for x and weight', () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
    expect(cases.some((c) => c.inputs.x!.dtype === 'float32')).toBe(true);
    expect(cases.some((c) => c.inputs.x!.dtype === 'bfloat16')).toBe(true);
    for (const c of cases) expect(Object.keys(c.grads).sort()).toEqual(['weight', 'x']);
  });

  for (const c of cases) {
    it(`matches Hugging Face LlamaRMSNorm: ${c.name}`, () => checkCase(c, run));
  }

  it('rounds the normalised value to x.dtype before the weight, as Hugging Face does (bf16 bit-exact here)', () => {
    for (const c of cases.filter((k) => k.inputs.x!.dtype === 'bfloat16')) {
      tidy(() => {
        expectClose(run(c.inputs, c.attrs), c.outputs[0]!, 0, c.name);
      });
    }
  });

  it('gives promote(x, weight) dtype: bf16 x with a float32 weight is float32', () => {
    const c = cases.find((k) => k.name === 'bf16_x_f32_weight')!;
    tidy(() => {
      expect(run(c.inputs, c.attrs).dtype).toBe('float32');
    });
  });

  it('passes float64 gradcheck for x and weight', () => {
    const x = randomF64([3, 2, 7], 1, 2);
    const w = randomF64([7], 2, 1);
    gradcheck((a, b) => rmsNorm(a, b, 1e-3), [x, w], { names: ['x', 'weight'] });
    gradcheck((a, b) => rmsNorm(a, b, 1e-6), [randomF64([1, 5], 3), randomF64([5], 4)], { names: ['x', 'weight'] });
    x.dispose();
    w.dispose();
  });

  it('dispatches its own backward kernel, which a backend can override', () => {
    const r = createRegistry();
    const reference = r.kernels('cpu', 'rmsNormBackward')[0]!.kernel;
    let calls = 0;
    r.registerKernel(
      'cpu',
      'rmsNormBackward',
      (inputs, attrs) => {
        calls++;
        expect(inputs.map((t) => t.shape)).toEqual([[2, 3], [2, 3], [3], [2]]);
        return reference(inputs, attrs);
      },
      { priority: 10, source: 'test' },
    );
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3, -1, 0.5, 2], { shape: [2, 3], requiresGrad: true });
        const w = tensor([1, 2, 3], { requiresGrad: true });
        runBackward([rmsNorm(x, w)], [tensor([1, 1, 1, 1, 1, 1], { shape: [2, 3] })]);
        expect(x.grad?.shape).toEqual([2, 3]);
        expect(w.grad?.shape).toEqual([3]);
        x.grad?.dispose();
        w.grad?.dispose();
      }),
    );
    expect(calls).toBe(1);
  });

  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3], requiresGrad: true });
      const w = tensor([1, 1, 2], { requiresGrad: true });
      const y = rmsNorm(x, w);
      runBackward([y], [tensor([1, 0, 1, 0, 1, 0], { shape: [2, 3] })]);
      x.grad?.dispose();
      w.grad?.dispose();
    });
    tidy(() => {
      rmsNorm(tensor([1, 2, 3]), tensor([1, 1, 1])); // no grad: the rstd output is freed at once
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('rejects bad arguments with errors naming the op and the shapes', () => {
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
      expect(() => rmsNorm(x, tensor([1, 1]))).toThrow(
        /rmsNorm: weight of shape \[2\] does not match the last dimension of x \[2,3\]/,
      );
      expect(() => rmsNorm(x, tensor([1, 1, 1, 1, 1, 1], { shape: [2, 3] }))).toThrow(
        /rmsNorm: weight of shape \[2,3\]/,
      );
      expect(() => rmsNorm(tensor([1, 2], { dtype: 'int32' }), tensor([1, 1]))).toThrow(
        /rmsNorm: x must be a float tensor, got int32/,
      );
      expect(() => rmsNorm(x, tensor([1, 1, 1]), -1)).toThrow(/rmsNorm: eps must be/);
      expect(() => rmsNorm(tensor(3), tensor([1]))).toThrow(/rmsNorm: x must have at least one dimension/);
    });
  });
});
