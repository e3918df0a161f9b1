import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  memoryStats,
  runBackward,
  swiglu,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const cases = loadFixture('swiglu');
const run = ({ gate, up }: Record<string, Tensor>) => swiglu(gate!, up!);

describe('swiglu', () => {
  it('has float32 and bfloat16 fixtures with gradients for gate and up', () => {
    expect(cases.length).toBeGreaterThanOrEqual(5);
    expect(cases.some((c) => c.inputs.gate!.dtype === 'bfloat16')).toBe(true);
    for (const c of cases) expect(Object.keys(c.grads).sort()).toEqual(['gate', 'up']);
  });

  for (const c of cases) {
    it(`matches silu(gate) * up: ${c.name}`, () => checkCase(c, run));
  }

  it('is exact at a few known points, saturation included', () => {
    tidy(() => {
      const gate = tensor([0, 1, -1, 60, -60, -1000], { dtype: 'float64' });
      const up = tensor([3, 2, 2, 0.5, 4, 1], { dtype: 'float64' });
      const s = (v: number) => 1 / (1 + Math.exp(-v));
      const want = [0, 2 * s(1), -2 * s(-1), 30, -240 * s(-60), 0];
      const got = swiglu(gate, up).toArray();
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 14);
    });
  });

  it('passes float64 gradcheck for gate and up', () => {
    tidy(() => {
      gradcheck(swiglu, [randomF64([3, 7], 1, 8), randomF64([3, 7], 2, 2)], { names: ['gate', 'up'] });
      gradcheck(swiglu, [randomF64([1], 3), randomF64([1], 4)], { names: ['gate', 'up'] });
    });
  });

  it('dispatches its own backward kernel, which a backend can override', () => {
    const r = createRegistry();
    const reference = r.kernels('cpu', 'swigluBackward')[0]!.kernel;
    let calls = 0;
    r.registerKernel(
      'cpu',
      'swigluBackward',
      (inputs, attrs) => {
        calls++;
        return reference(inputs, attrs);
      },
      { priority: 10, source: 'test' },
    );
    withRegistry(r, () =>
      tidy(() => {
        const gate = tensor([0, 1], { requiresGrad: true });
        const up = tensor([2, 3], { requiresGrad: true });
        runBackward([swiglu(gate, up)], [tensor([1, 1])]);
        expect(up.grad!.toArray()[0]).toBe(0);
        expect(gate.grad!.toArray()[0]).toBeCloseTo(1, 6); // d silu(0) = 0.5, times up = 2
        gate.grad?.dispose();
        up.grad?.dispose();
      }),
    );
    expect(calls).toBe(1);
  });

  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const gate = tensor([1, 2, 3], { requiresGrad: true });
      const up = tensor([1, -1, 2], { requiresGrad: true });
      runBackward([swiglu(gate, up)], [tensor([1, 1, 1])]);
      gate.grad?.dispose();
      up.grad?.dispose();
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('rejects bad arguments with errors naming the op and the shapes', () => {
    tidy(() => {
      expect(() => swiglu(tensor([1, 2, 3]), tensor([1, 2]))).toThrow(
        /swiglu: gate of shape \[3\] and up of shape \[2\] must have the same shape/,
      );
      expect(() => swiglu(tensor([1, 2]), tensor([1, 2], { dtype: 'bfloat16' }))).toThrow(
        /swiglu: gate has dtype float32 but up has bfloat16/,
      );
      expect(() => swiglu(tensor([1, 2], { dtype: 'int32' }), tensor([1, 2]))).toThrow(
        /swiglu: gate must be a float tensor/,
      );
    });
  });
});
