import { describe, expect, it } from 'vitest';
import {
  argmax,
  exp,
  logSoftmax,
  logsumexp,
  max,
  mean,
  memoryStats,
  min,
  mul,
  neg,
  softmax,
  sum,
  sumTo,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '../src/index.js';
import { checkCase, type FixtureCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

/** The TypeScript call for a fixture case (attrs.op names the op; other attrs are its arguments). */
function run(inputs: Record<string, Tensor>, attrs: Record<string, any>): Tensor | Tensor[] {
  const x = inputs.x!;
  const dim = attrs.dim ?? undefined;
  const keepdim = attrs.keepdim ?? false;
  switch (attrs.op) {
    case 'sum':
      return sum(x, dim, keepdim);
    case 'mean':
      return mean(x, dim, keepdim);
    case 'max':
      // torch.max(x, dim) also returns indices: compare them with argmax.
      return typeof dim === 'number' ? [max(x, dim, keepdim), argmax(x, dim, keepdim)] : max(x, dim, keepdim);
    case 'min':
      return typeof dim === 'number' ? [min(x, dim, keepdim), argmax(neg(x), dim, keepdim)] : min(x, dim, keepdim);
    case 'argmax':
      return argmax(x, dim, keepdim);
    case 'logsumexp':
      return logsumexp(x, dim, keepdim);
    case 'softmax':
      return softmax(x, dim);
    case 'logSoftmax':
      return logSoftmax(x, dim);
    case 'sumTo':
      return sumTo(x, attrs.shape);
  }
  throw new Error(`no TypeScript call for fixture op '${attrs.op}'`);
}

/** `run`, also checking that each output has PyTorch's dtype (int64 is stored as int32). */
function runChecked(c: FixtureCase) {
  return (inputs: Record<string, Tensor>, attrs: Record<string, any>) => {
    const out = run(inputs, attrs);
    (Array.isArray(out) ? out : [out]).forEach((o, i) => {
      expect(o.dtype, `${c.name}: dtype of output ${i}`).toBe(c.outputs[i]!.dtype);
    });
    return out;
  };
}

const cases = loadFixture('reduce');

describe('reductions match PyTorch (float32, bfloat16, int32, bool)', () => {
  it('has fixtures for every op in float32 and bfloat16', () => {
    for (const op of ['sum', 'mean', 'max', 'min', 'argmax', 'logsumexp', 'softmax', 'logSoftmax', 'sumTo']) {
      for (const tag of ['_f32', '_bf16']) {
        expect(
          cases.some((c) => c.attrs.op.startsWith(op) && c.name.includes(tag)),
          `${op}${tag}`,
        ).toBe(true);
      }
    }
  });
  for (const c of cases) {
    // PyTorch 1.13 keeps bf16 intermediates in logsumexp and the softmax backward kernels, while
    // ours compute in float and round once; exp() also turns the output's rounding error into a
    // relative gradient error: allow ~2 bf16 ulps for those gradients.
    const loose = c.name.includes('_bf16') && ['logsumexp', 'softmax', 'logSoftmax'].includes(c.attrs.op);
    it(c.name, () => checkCase(c, runChecked(c), loose ? { gradRtol: 2e-2 } : {}));
  }
});

describe('reduction gradients (float64 finite differences)', () => {
  const x = (shape: number[], seed: number, scale = 2) => randomF64(shape, seed, scale);
  const list: [string, (t: Tensor) => Tensor, number[]][] = [
    ['sum all', (t) => sum(t), [3, 4]],
    ['sum dim -1', (t) => sum(t, -1), [3, 4, 5]],
    ['sum dims [0, 2] keepdim', (t) => sum(t, [0, 2], true), [3, 4, 5]],
    ['mean dim 1', (t) => mean(t, 1), [3, 4, 5]],
    ['mean dims [2, 0]', (t) => mean(t, [2, 0]), [3, 4, 5]],
    ['mean all keepdim', (t) => mean(t, undefined, true), [3, 4]],
    ['max dim 1', (t) => max(t, 1), [3, 4, 5]],
    ['max dim 0 keepdim', (t) => max(t, 0, true), [3, 4]],
    ['max dims [0, 2]', (t) => max(t, [0, 2]), [3, 4, 5]],
    ['max all', (t) => max(t), [3, 4]],
    ['min dim -1', (t) => min(t, -1), [3, 4, 5]],
    ['min dims [1, 2] keepdim', (t) => min(t, [1, 2], true), [3, 4, 5]],
    ['logsumexp dim 1', (t) => logsumexp(t, 1), [3, 4, 5]],
    ['logsumexp dims [0, 2] keepdim', (t) => logsumexp(t, [0, 2], true), [3, 4, 5]],
    ['softmax dim -1', (t) => softmax(t, -1), [3, 7]],
    ['softmax dim 1 of 3-d', (t) => softmax(t, 1), [2, 5, 3]],
    ['logSoftmax dim 0', (t) => logSoftmax(t, 0), [4, 3]],
    ['logSoftmax dim -1', (t) => logSoftmax(t, -1), [2, 3, 6]],
    ['sumTo [4, 1]', (t) => sumTo(t, [4, 1]), [3, 4, 5]],
    ['sumTo [3]', (t) => sumTo(t, [3]), [2, 3]],
    ['sumTo []', (t) => sumTo(t, []), [2, 3]],
  ];
  list.forEach(([name, fn, shape], i) => {
    it(name, () => tidy(() => gradcheck(fn, [x(shape, 100 + i, i % 2 ? 4 : 2)])));
  });
});

describe('reduction semantics', () => {
  it('max(x, dim) sends the gradient to the first maximal element; max(x) splits it among ties', () =>
    tidy(() => {
      const x = tensor([
        [1, 3, 3, 2],
        [5, 0, 5, 5],
      ]).requiresGrad_();
      sum(max(x, 1)).backward();
      expect(x.grad!.toArray()).toEqual([0, 1, 0, 0, 1, 0, 0, 0]);
      x.grad = null;
      max(x).backward();
      const third = Math.fround(1 / 3);
      expect(x.grad!.toArray()).toEqual([0, 0, 0, 0, third, 0, third, third]);
      x.grad = null;
      sum(min(x, 0)).backward();
      expect(x.grad!.toArray()).toEqual([1, 0, 1, 1, 0, 1, 0, 0]);
    }));

  it('argmax returns int32, the first index on ties, NaN as maximal, and flat indices without dim', () =>
    tidy(() => {
      const x = tensor([
        [1, 7, 7],
        [Number.NaN, 9, 9],
      ]);
      const a = argmax(x, 1);
      expect(a.dtype).toBe('int32');
      expect(a.toArray()).toEqual([1, 0]);
      expect(argmax(x, -1, true).shape).toEqual([2, 1]);
      expect(argmax(x, 0).toArray()).toEqual([1, 1, 1]);
      expect(
        argmax(
          tensor([
            [1, 9],
            [9, 2],
          ]),
        ).toArray(),
      ).toEqual([1]);
      expect(
        argmax(
          tensor([
            [1, 9],
            [9, 2],
          ]),
        ).shape,
      ).toEqual([]);
      expect(
        argmax(
          tensor([
            [1, 9],
            [9, 2],
          ]),
          undefined,
          true,
        ).shape,
      ).toEqual([1, 1]);
      expect(Number.isNaN(max(x, 1).toArray()[1]!)).toBe(true);
    }));

  it('reduces over dims, dim lists, negative dims and keepdim with the right shapes', () =>
    tidy(() => {
      const x = zeros([2, 3, 4, 5]);
      expect(sum(x).shape).toEqual([]);
      expect(sum(x, []).shape).toEqual([]); // empty list = every dim, as in PyTorch
      expect(sum(x, -1).shape).toEqual([2, 3, 4]);
      expect(sum(x, [3, 1]).shape).toEqual([2, 4]);
      expect(sum(x, [-1, 1], true).shape).toEqual([2, 1, 4, 1]);
      expect(mean(x, [0, 1, 2, 3], true).shape).toEqual([1, 1, 1, 1]);
      expect(max(x, [0, -2]).shape).toEqual([3, 5]);
      expect(logsumexp(x, 2).shape).toEqual([2, 3, 5]);
      const s = tensor(3);
      expect(sum(s).item()).toBe(3);
      expect(sum(s, 0).shape).toEqual([]);
      expect(softmax(s, -1).item()).toBe(1);
      const v = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      expect(sum(v, 0).toArray()).toEqual([5, 7, 9]);
      expect(sum(v, 1, true).toArray()).toEqual([6, 15]);
      expect(mean(v, [0, 1]).item()).toBe(3.5);
    }));

  it('sums integers and bools to int32', () =>
    tidy(() => {
      const i = tensor([[1, -2, 3]], { dtype: 'int32' });
      expect(sum(i).dtype).toBe('int32');
      expect(sum(i).item()).toBe(2);
      const b = tensor([1, 0, 1, 1], { dtype: 'bool' });
      expect(sum(b).dtype).toBe('int32');
      expect(sum(b).item()).toBe(3);
      expect(max(i, 1).dtype).toBe('int32');
      expect(max(i, 1).toArray()).toEqual([3]);
    }));

  it('is numerically stable for large logits and infinities', () =>
    tidy(() => {
      const x = tensor([
        [1000, 1001, 999],
        [-1000, -1001, -999],
      ]);
      const p = softmax(x, 1).toArray();
      expect(p.every(Number.isFinite)).toBe(true);
      expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 6);
      expect(logSoftmax(x, 1).toArray()[1]).toBeCloseTo(-0.40760596, 5);
      expect(logsumexp(x, 1).toArray()[0]).toBeCloseTo(1001.40760596, 3);
      const inf = Number.POSITIVE_INFINITY;
      expect(logsumexp(tensor([-inf, -inf]), 0).item()).toBe(-inf);
      expect(logsumexp(tensor([1, inf]), 0).item()).toBe(inf);
      expect(exp(logSoftmax(tensor([0, -inf]), 0)).toArray()).toEqual([1, 0]);
    }));

  it('handles empty tensors like PyTorch', () =>
    tidy(() => {
      const e = zeros([3, 0]);
      expect(sum(e, 1).toArray()).toEqual([0, 0, 0]);
      expect(mean(e, 1).toArray().every(Number.isNaN)).toBe(true);
      expect(max(e, 0).shape).toEqual([0]);
      expect(() => max(e, 1)).toThrow(/max: cannot reduce over a zero-size dimension \(shape \[3,0\], dims \[1\]\)/);
      expect(() => argmax(e)).toThrow(/argmax: cannot take the argmax of an empty tensor/);
    }));

  it('sumTo sums leading and size-1 dimensions and returns a view when nothing is summed', () =>
    tidy(() => {
      const x = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      expect(sumTo(x, [3]).toArray()).toEqual([5, 7, 9]);
      expect(sumTo(x, [2, 1]).toArray()).toEqual([6, 15]);
      expect(sumTo(x, [1, 1]).shape).toEqual([1, 1]);
      expect(sumTo(x, []).item()).toBe(21);
      expect(sumTo(x, [2, 3]).storage).toBe(x.storage);
    }));

  it('frees every intermediate of forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const a = randomF64([3, 4, 5], 1).requiresGrad_();
      const y = sum(
        mul(mul(softmax(a, 1), logSoftmax(a, -1)), mul(max(a, 0, true), sumTo(mean(a, [0, 2], true), [4, 1]))),
      );
      const z = sum(mul(logsumexp(a, [0, 1]), min(a, [0, 1])));
      sum(mul(y, z)).backward();
      a.grad!.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});

describe('reduction errors', () => {
  it('name the op, the dims and the shape', () =>
    tidy(() => {
      const x = zeros([7, 13]);
      expect(() => sum(x, 2)).toThrow(/sum: dim 2 out of range for a tensor of shape \[7,13\] \(rank 2\)/);
      expect(() => mean(x, [-3])).toThrow(/mean: dim -3 out of range for a tensor of shape \[7,13\]/);
      expect(() => sum(x, [1, -1])).toThrow(/sum: dim -1 appears more than once in \[1,-1\] \(shape \[7,13\]\)/);
      expect(() => max(x, 1.5)).toThrow(/max: dim 1.5 out of range/);
      expect(() => softmax(x, 2)).toThrow(/softmax: dim 2 out of range for a tensor of shape \[7,13\]/);
      const i = zeros([3], { dtype: 'int32' });
      expect(() => mean(i)).toThrow(/mean: expected a floating-point tensor, got int32 \[3\]/);
      expect(() => softmax(i, 0)).toThrow(/softmax: expected a floating-point tensor, got int32/);
      expect(() => logsumexp(x, undefined as never)).toThrow(/logsumexp: dim is required/);
      expect(() => argmax(x, [0] as never)).toThrow(/argmax: dim must be a number or omitted, got \[0\]/);
      expect(() => sumTo(x, [5])).toThrow(/sumTo: cannot sum shape \[7,13\] down to \[5\]/);
      expect(() => sumTo(x, [1, 7, 13])).toThrow(/sumTo: cannot sum shape \[7,13\] down to \[1,7,13\]/);
    }));
});
