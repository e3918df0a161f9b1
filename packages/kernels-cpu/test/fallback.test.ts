import { createRegistry, type Tensor, tensor } from '@omnitrain/core';
import { referenceKernelIn, runConformance } from '@omnitrain/core/testing';
import { KERNEL_PRIORITY, KERNEL_SOURCE, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';

const registry = createRegistry().use(plugin);

describe('registration and fallback', () => {
  it('registers over the reference kernels at priority 10 without loading native code', () => {
    const best = registry.kernels('cpu', 'matmul')[0]!;
    expect(best.source).toBe(KERNEL_SOURCE);
    expect(best.priority).toBe(KERNEL_PRIORITY);
    expect(registry.kernels('cpu', 'matmul').map((k) => k.source)).toContain('@omnitrain/core reference');
  });

  it('falls back to the reference kernel, bit for bit, for combinations it does not handle (float16 matmul)', () => {
    const a = tensor([1.5, -2, 3.25, 0.5, 7, -1], { shape: [2, 3], dtype: 'float16' });
    const b = tensor([0.25, 1, -3, 2, 0.5, 4], { shape: [3, 2], dtype: 'float16' });
    const got = registry.kernel('matmul', 'cpu')([a, b], {}) as Tensor;
    const want = referenceKernelIn(registry, 'matmul')([a, b], {}) as Tensor;
    expect(got.dtype).toBe('float16');
    expect(Array.from(got.raw())).toEqual(Array.from(want.raw()));
  });

  it('lets the reference kernel report bad inputs (out-of-range ids) with its own message', () => {
    const ids = tensor([0, 5], { shape: [2], dtype: 'int32' });
    const w = tensor([1, 2, 3, 4], { shape: [2, 2] });
    expect(() => registry.kernel('embedding', 'cpu')([ids, w], {})).toThrow(/id 5 at position 1 is out of range/);
  });
});

describe('the conformance suite catches broken kernels', () => {
  it('reports a wrong result and memory left unwritten (NaN)', () => {
    const r = createRegistry();
    r.registerKernel(
      'cpu',
      'swiglu',
      ([g]: Tensor[]) => {
        const y = tensor(Array.from(g!.raw() as Float32Array), { shape: g!.shape }); // silu(g)*u is not g
        return y;
      },
      { priority: 50, source: 'broken' },
    );
    r.registerKernel(
      'cpu',
      'add',
      ([a]: Tensor[]) => tensor(new Array<number>(a!.numel).fill(Number.NaN), { shape: a!.shape }),
      { priority: 50, source: 'uninitialised' },
    );
    const results = runConformance({ registry: r, ops: ['swiglu', 'add'] });
    const f32 = results.filter((x) => x.dtype === 'float32');
    expect(f32.length).toBeGreaterThan(2);
    for (const x of f32) expect(x.ok, `${x.op} ${x.name}`).toBe(false);
  });
});
