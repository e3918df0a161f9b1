import { describe, expect, it } from 'vitest';
import {
  type BackwardFn,
  createRegistry,
  dispatch1,
  keep,
  memoryStats,
  noGrad,
  record,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';

// A private registry with two toy ops, so these tests exercise only the engine.
const r = createRegistry();
const values = (t: Tensor) => t.toArray();
r.registerKernel('cpu', 'add', ([a, b]) =>
  tensor(
    values(a!).map((v, i) => v + values(b!)[i]!),
    { shape: a!.shape },
  ),
);
r.registerKernel('cpu', 'scale', ([a], { s }) =>
  tensor(
    values(a!).map((v) => v * s),
    { shape: a!.shape },
  ),
);
r.registerKernel('cpu', 'sq', ([a]) =>
  tensor(
    values(a!).map((v) => v * v),
    { shape: a!.shape },
  ),
);
r.registerKernel('cpu', 'mulT', ([a, b]) =>
  tensor(
    values(a!).map((v, i) => v * values(b!)[i]!),
    { shape: a!.shape },
  ),
);

const scale = (x: Tensor, s: number): Tensor => {
  const out = dispatch1('scale', [x], { s });
  record('scale', [x], [out], ([g]) => [g ? scale(g, s) : null]);
  return out;
};
const square = (x: Tensor): Tensor => {
  const out = dispatch1('sq', [x]);
  const back: BackwardFn = ([g], [xs]) => [g ? mulT(g, scale(xs!, 2)) : null];
  record('sq', [x], [out], back, [x]);
  return out;
};
const mulT = (a: Tensor, b: Tensor): Tensor => dispatch1('mulT', [a, b]);
const add = (a: Tensor, b: Tensor): Tensor => {
  const out = dispatch1('add', [a, b]);
  record('add', [a, b], [out], ([g]) => [g, g]);
  return out;
};

describe('autograd engine', () => {
  it('diamond graph: gradients from both paths are summed', () =>
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3], { requiresGrad: true });
        const y = add(square(x), scale(x, 3)); // dy/dx = 2x + 3
        y.backward(tensor([1, 1, 1]));
        expect(x.grad!.toArray()).toEqual([5, 7, 9]);
        x.grad!.dispose();
      }),
    ));

  it('accumulates across backward calls in place and hooks can rewrite gradients', () =>
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2], { requiresGrad: true });
        scale(x, 2).backward(tensor([1, 1]));
        const first = x.grad!;
        scale(x, 2).backward(tensor([1, 1]));
        expect(x.grad).toBe(first); // same tensor, updated in place
        expect(x.grad!.toArray()).toEqual([4, 4]);
        const seen: number[][] = [];
        const remove = x.registerHook((g) => {
          seen.push(g.toArray());
          return scale(g, 10);
        });
        let posted = 0;
        x.registerPostAccumulateGradHook(() => posted++);
        scale(x, 1).backward(tensor([1, 1]));
        expect(seen).toEqual([[1, 1]]);
        expect(x.grad!.toArray()).toEqual([14, 14]);
        expect(posted).toBe(1);
        remove();
        x.grad!.dispose();
      }),
    ));

  it('non-leaf hooks see the gradient flowing through that tensor', () =>
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([3], { requiresGrad: true });
        const h = scale(x, 2);
        h.registerHook((g) => scale(g, 0.5));
        square(h).backward(); // d/dx (2x)^2 = 8x = 24, halved by the hook
        expect(x.grad!.item()).toBe(12);
        x.grad!.dispose();
      }),
    ));

  it('frees saved tensors and intermediates: nothing leaks after backward', () =>
    withRegistry(r, () => {
      const x = keep(tensor([1, 2, 3, 4], { requiresGrad: true }));
      const before = memoryStats();
      tidy(() => {
        let h = x;
        for (let i = 0; i < 5; i++) h = square(scale(h, 0.5));
        h.backward(tensor([1, 1, 1, 1]));
      });
      const after = memoryStats();
      expect(after.liveTensors).toBe(before.liveTensors + 1); // x.grad
      x.grad!.dispose();
      x.dispose();
    }));

  it('a second backward through a freed graph is an error, noGrad records nothing', () =>
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1], { requiresGrad: true });
        const y = square(x);
        y.backward();
        expect(() => y.backward()).toThrow(/second time/);
        const z = noGrad(() => square(x));
        expect(z.requiresGrad).toBe(false);
        x.grad!.dispose();
      }),
    ));

  it('reshape and slice0 views are differentiable', () =>
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2], requiresGrad: true });
        const s = x.slice0(1, 2).reshape(2);
        square(s).backward(tensor([1, 1]));
        expect(x.grad!.toArray()).toEqual([0, 0, 6, 8, 0, 0]);
        x.grad!.dispose();
      }),
    ));
});
