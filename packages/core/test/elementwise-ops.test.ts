import { describe, expect, it } from 'vitest';
import {
  abs,
  add,
  cast,
  clamp,
  clone,
  div,
  eq,
  exp,
  ge,
  gelu,
  gt,
  le,
  log,
  lt,
  maximum,
  memoryStats,
  minimum,
  mul,
  ne,
  neg,
  pow,
  relu,
  rsqrt,
  sigmoid,
  silu,
  sqrt,
  square,
  sub,
  sum,
  type Tensor,
  tanh,
  tensor,
  tidy,
  where,
} from '../src/index.js';
import { erf } from '../src/kernels/cpu/elementwise.js';
import { checkCase, type FixtureCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

type Operand = Tensor | number;
const BINARY: Record<string, (a: Operand, b: Operand) => Tensor> = {
  add,
  sub,
  mul,
  div,
  maximum,
  minimum,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
};
const UNARY: Record<string, (x: Tensor) => Tensor> = {
  neg,
  abs,
  square,
  exp,
  log,
  sqrt,
  rsqrt,
  tanh,
  sigmoid,
  silu,
  relu,
  gelu: (x) => gelu(x),
  geluTanh: (x) => gelu(x, 'tanh'),
  clone,
};

/** The TypeScript call for a fixture case (attrs.op names the op; other attrs are its arguments). */
function run(inputs: Record<string, Tensor>, attrs: Record<string, any>): Tensor {
  const op = attrs.op as string;
  const binary = BINARY[op];
  if (binary) {
    const { a, b } = inputs;
    if (b) return binary(a!, b);
    return attrs.reverse ? binary(attrs.scalar, a!) : binary(a!, attrs.scalar);
  }
  const unary = UNARY[op];
  if (unary) return unary(inputs.x!);
  switch (op) {
    case 'pow':
      return pow(inputs.x!, attrs.exponent);
    case 'clamp':
      return clamp(inputs.x!, attrs.min, attrs.max);
    case 'where':
      return where(inputs.condition!, inputs.input!, inputs.other ?? attrs.other);
    case 'cast':
      return cast(inputs.x!, attrs.dtype);
  }
  throw new Error(`no TypeScript call for fixture op '${op}'`);
}

/** `run`, also checking that each output has PyTorch's dtype (int64 is stored as int32). */
function runChecked(c: FixtureCase) {
  return (inputs: Record<string, Tensor>, attrs: Record<string, any>) => {
    const out = run(inputs, attrs);
    expect(out.dtype, `${c.name}: dtype`).toBe(c.outputs[0]!.dtype);
    return out;
  };
}

const cases = loadFixture('elementwise');

describe('elementwise ops match PyTorch (float32, bfloat16, int32, bool)', () => {
  it('has fixtures for every op in float32 and bfloat16', () => {
    const ops = new Set(cases.map((c) => c.attrs.op));
    for (const op of [...Object.keys(BINARY), ...Object.keys(UNARY), 'pow', 'clamp', 'where', 'cast']) {
      expect(ops.has(op), op).toBe(true);
      if (op !== 'cast') {
        expect(
          cases.some((c) => c.attrs.op === op && c.name.includes('_bf16')),
          `${op} bf16`,
        ).toBe(true);
        expect(
          cases.some((c) => c.attrs.op === op && c.name.includes('_f32')),
          `${op} f32`,
        ).toBe(true);
      }
    }
  });
  for (const c of cases) {
    const bf16 = c.name.includes('_bf16');
    // PyTorch 1.13 rounds some bf16 backward intermediates to bf16 (pow's x*x*x, silu/gelu
    // backward), while our kernels compute in float and round once: allow ~2 bf16 ulps there.
    // A one-element case's norm-wise error is that element's own error, so it gets the same.
    const loose =
      bf16 &&
      (['rsqrt', 'pow', 'silu', 'gelu', 'geluTanh'].includes(c.attrs.op) ||
        Object.values(c.inputs).every((t) => t.numel === 1));
    it(c.name, () => checkCase(c, runChecked(c), loose ? { gradRtol: 2e-2 } : {}));
  }
});

describe('elementwise gradients (float64 finite differences)', () => {
  const x = (shape: number[], seed: number, scale = 2) => randomF64(shape, seed, scale);
  /** Values with |v| >= 0.2 so kinks at 0 are far from every finite-difference step. */
  const awayFromZero = (shape: number[], seed: number) =>
    tidy(() => {
      const r = randomF64(shape, seed, 2);
      return add(r, where(ge(r, 0), 0.2, -0.2));
    });
  const positive = (shape: number[], seed: number) => tidy(() => add(abs(randomF64(shape, seed, 2)), 0.3));

  const cases2: [string, (...xs: Tensor[]) => Tensor, () => Tensor[]][] = [
    ['add broadcast', add, () => [x([3, 1, 5], 1), x([4, 1], 2)]],
    ['sub broadcast', sub, () => [x([2, 5], 3), x([5], 4)]],
    ['mul broadcast', mul, () => [x([3, 1, 5], 5), x([4, 5], 6)]],
    ['div broadcast', div, () => [x([3, 4], 7), awayFromZero([4], 8)]],
    ['add 0-d', add, () => [x([3, 4], 9), x([], 10)]],
    ['sub number first', (a) => sub(1.5, a), () => [x([3, 4], 11)]],
    ['mul number', (a) => mul(a, -2.5), () => [x([3, 4], 12)]],
    ['div number first', (a) => div(2, a), () => [awayFromZero([3, 4], 13)]],
    ['div number', (a) => div(a, 3), () => [x([3, 4], 14)]],
    ['maximum broadcast', maximum, () => [x([3, 5], 15), x([5], 16)]],
    ['minimum broadcast', minimum, () => [x([3, 1], 17), x([3, 5], 18)]],
    ['maximum number', (a) => maximum(a, 0.1), () => [x([3, 5], 19)]],
    ['where', (a, b) => where(gt(a, 0.2), a, b), () => [x([4, 5], 20), x([5], 21)]],
    ['where number', (a) => where(lt(a, 0), a, 2), () => [x([4, 5], 22)]],
    ['neg', neg, () => [x([3, 4], 23)]],
    ['abs', abs, () => [awayFromZero([3, 4], 24)]],
    ['square', square, () => [x([3, 4], 25)]],
    ['exp', exp, () => [x([3, 4], 26)]],
    ['log', log, () => [positive([3, 4], 27)]],
    ['sqrt', sqrt, () => [positive([3, 4], 28)]],
    ['rsqrt', rsqrt, () => [positive([3, 4], 29)]],
    ['tanh', tanh, () => [x([3, 4], 30, 4)]],
    ['sigmoid', sigmoid, () => [x([3, 4], 31, 6)]],
    ['silu', silu, () => [x([3, 4], 32, 6)]],
    ['relu', relu, () => [awayFromZero([3, 4], 33)]],
    ['gelu', (a) => gelu(a), () => [x([3, 5], 34, 8)]],
    ['gelu tanh', (a) => gelu(a, 'tanh'), () => [x([3, 5], 35, 8)]],
    ['pow 3', (a) => pow(a, 3), () => [x([3, 4], 36)]],
    ['pow 2', (a) => pow(a, 2), () => [x([3, 4], 37)]],
    ['pow -1.5', (a) => pow(a, -1.5), () => [positive([3, 4], 38)]],
    ['pow 0.5', (a) => pow(a, 0.5), () => [positive([3, 4], 39)]],
    ['pow 0', (a) => pow(a, 0), () => [x([3, 4], 40)]],
    ['clamp', (a) => clamp(a, -0.4, 0.3), () => [x([4, 6], 41)]],
    ['clamp min', (a) => clamp(a, -0.2), () => [x([4, 6], 42)]],
    ['clamp max', (a) => clamp(a, undefined, 0.1), () => [x([4, 6], 43)]],
    ['clone', clone, () => [x([3, 4], 44)]],
    ['cast to float64 (view)', (a) => cast(a, 'float64'), () => [x([3, 4], 45)]],
  ];
  for (const [name, fn, inputs] of cases2) {
    it(name, () => tidy(() => gradcheck(fn, inputs())));
  }

  it('cast float64 -> float32 -> float64 passes the gradient back', () =>
    tidy(() =>
      gradcheck((a) => cast(mul(cast(a, 'float32'), 3), 'float64'), [x([3, 4], 46)], { eps: 1e-3, rtol: 1e-4 }),
    ));

  it('mul(x, x) sums both gradients', () => tidy(() => gradcheck((a) => mul(a, a), [x([5], 47)])));
});

describe('elementwise semantics', () => {
  it('erf is accurate to float64 precision', () => {
    const ref: [number, number][] = [
      [1e-10, 1.1283791670955126e-10],
      [0.001, 0.0011283787909692365],
      [-0.1, -0.1124629160182849],
      [0.5, 0.5204998778130465],
      [0.8, 0.7421009647076605],
      [1, 0.8427007929497149],
      [1.5, 0.9661051464753108],
      [2, 0.9953222650189527],
      [2.4999, 0.9995928300996666],
      [2.5, 0.999593047982555],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [-4.5, -0.9999999998033839],
      [5.9, 0.9999999999999999],
      [6.5, 1],
    ];
    for (const [x, want] of ref) expect(Math.abs(erf(x) - want) / Math.abs(want), `erf(${x})`).toBeLessThan(3e-15);
    expect(erf(0)).toBe(0);
    expect(Number.isNaN(erf(Number.NaN))).toBe(true);
    expect(erf(Number.POSITIVE_INFINITY)).toBe(1);
  });

  it('promotes dtypes as PyTorch does', () =>
    tidy(() => {
      const i = tensor([1, 2, 3], { dtype: 'int32' });
      const b = tensor([1, 0, 1], { dtype: 'bool' });
      const h = tensor([1, 2, 3], { dtype: 'bfloat16' });
      const f = tensor([1, 2, 3]);
      const u = tensor([250, 3, 4], { dtype: 'uint8' });
      expect(add(i, 2.5).dtype).toBe('float32');
      expect(add(i, 2.5).toArray()).toEqual([3.5, 4.5, 5.5]);
      expect(add(i, 3).dtype).toBe('int32');
      expect(mul(i, i).dtype).toBe('int32');
      expect(div(i, 2).dtype).toBe('float32');
      expect(div(i, 2).toArray()).toEqual([0.5, 1, 1.5]);
      expect(add(b, b).dtype).toBe('bool');
      expect(add(b, b).toArray()).toEqual([1, 0, 1]);
      expect(add(b, 1).dtype).toBe('int32');
      expect(add(b, 0.5).dtype).toBe('float32');
      expect(add(h, 0.1).dtype).toBe('bfloat16');
      expect(add(h, f).dtype).toBe('float32');
      expect(add(h, tensor(2)).dtype).toBe('bfloat16'); // 0-d float32 does not promote bf16
      expect(add(i, tensor(2)).dtype).toBe('float32'); // ...but a higher category does
      expect(add(u, 10).dtype).toBe('uint8');
      expect(add(u, 10).toArray()).toEqual([4, 13, 14]); // wraps like torch.uint8
      expect(add(i, u).dtype).toBe('int32');
      expect(add(h, i).dtype).toBe('bfloat16');
      expect(add(f, tensor([1], { dtype: 'float64' })).dtype).toBe('float64');
      expect(exp(i).dtype).toBe('float32');
      expect(pow(i, 2).dtype).toBe('int32');
      expect(pow(i, 2).toArray()).toEqual([1, 4, 9]);
      expect(pow(i, 0.5).dtype).toBe('float32');
      expect(square(i).dtype).toBe('int32');
      expect(neg(i).dtype).toBe('int32');
      expect(clamp(i, 0, 2).dtype).toBe('int32');
      expect(clamp(i, 0.5).dtype).toBe('float32');
      expect(where(tensor([true, false, true], { dtype: 'bool' }), i, 0.5).dtype).toBe('float32');
    }));

  it('rounds number operands to the common dtype before computing', () =>
    tidy(() => {
      // 0.1 in bf16 is 0.10009765625; PyTorch casts the number to the tensor dtype first.
      const h = tensor([0.10009765625], { dtype: 'bfloat16' });
      expect(eq(h, 0.1).toArray()).toEqual([1]);
      const f = tensor([0.1]);
      expect(eq(f, 0.1).toArray()).toEqual([1]);
      expect(lt(tensor([0.1], { dtype: 'float64' }), 0.1).toArray()).toEqual([0]);
    }));

  it('keeps int32 arithmetic exact and wrapping', () =>
    tidy(() => {
      const big = tensor([2147483647, -2147483648, 65536, 16777217], { dtype: 'int32' });
      expect(add(big, 1).toArray()).toEqual([-2147483648, -2147483647, 65537, 16777218]);
      expect(mul(big, tensor([1, 1, 65536, 3], { dtype: 'int32' })).toArray()).toEqual([
        2147483647, -2147483648, 0, 50331651,
      ]);
      expect(sub(big, big).toArray()).toEqual([0, 0, 0, 0]);
      // Compared exactly (int32 computes in float64 here): 16777217 != 16777216.
      expect(eq(big, 16777216).toArray()).toEqual([0, 0, 0, 0]);
      expect(gt(big, 16777216).toArray()).toEqual([1, 0, 0, 1]);
    }));

  it('comparisons give bool for every input dtype and are not differentiable', () =>
    tidy(() => {
      const a = tensor([1, 2, 3, 4]).requiresGrad_();
      for (const op of [eq, ne, lt, le, gt, ge]) {
        const r = op(a, 2.5);
        expect(r.dtype).toBe('bool');
        expect(r.requiresGrad).toBe(false);
      }
      expect(lt(a, 2.5).toArray()).toEqual([1, 1, 0, 0]);
      expect(ge(a, tensor([[4], [1]])).toArray()).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
      const bools = tensor([1, 0, 1], { dtype: 'bool' });
      expect(eq(bools, tensor([1, 1, 0], { dtype: 'bool' })).toArray()).toEqual([1, 0, 0]);
      expect(eq(bools, 1).toArray()).toEqual([1, 0, 1]);
      const i = tensor([-1, 0, 7], { dtype: 'int32' });
      expect(le(i, 0).toArray()).toEqual([1, 1, 0]);
      expect(ne(i, tensor([-1, 1, 7], { dtype: 'int32' })).toArray()).toEqual([0, 1, 0]);
      const u = tensor([0, 200, 255], { dtype: 'uint8' });
      expect(gt(u, 100).toArray()).toEqual([0, 1, 1]);
      const nan = tensor([Number.NaN, 1]);
      expect(eq(nan, nan).toArray()).toEqual([0, 1]);
      expect(ne(nan, nan).toArray()).toEqual([1, 0]);
    }));

  it('propagates NaN through maximum, minimum, clamp and relu', () =>
    tidy(() => {
      const a = tensor([Number.NaN, 1, -1]);
      expect(Number.isNaN(maximum(a, 0).toArray()[0]!)).toBe(true);
      expect(Number.isNaN(minimum(0, a).toArray()[0]!)).toBe(true);
      expect(Number.isNaN(clamp(a, -0.5, 0.5).toArray()[0]!)).toBe(true);
      expect(clamp(a, -0.5, 0.5).toArray().slice(1)).toEqual([0.5, -0.5]);
      expect(clamp(tensor([0, 5]), 3, 1).toArray()).toEqual([1, 1]); // min > max gives max
      expect(Number.isNaN(relu(a).toArray()[0]!)).toBe(true);
    }));

  it('where is differentiable in a and b only, with broadcasting', () =>
    tidy(() => {
      const cond = tensor([[true], [false]], { dtype: 'bool' });
      const a = tensor([1, 2, 3]).requiresGrad_();
      const b = tensor([[10], [20]]).requiresGrad_();
      const out = where(cond, a, b);
      expect(out.shape).toEqual([2, 3]);
      expect(out.toArray()).toEqual([1, 2, 3, 20, 20, 20]);
      sum(out).backward();
      expect(a.grad!.toArray()).toEqual([1, 1, 1]);
      expect(b.grad!.toArray()).toEqual([0, 3]);
    }));

  it('gives each operand its gradient in its own dtype and shape', () =>
    tidy(() => {
      const a = tensor([[1, 2, 3]], { dtype: 'bfloat16' }).requiresGrad_();
      const b = tensor([[1], [2]], { dtype: 'float32' }).requiresGrad_();
      const out = mul(a, b);
      expect(out.dtype).toBe('float32');
      sum(out).backward();
      expect(a.grad!.dtype).toBe('bfloat16');
      expect(a.grad!.shape).toEqual([1, 3]);
      expect(a.grad!.toArray()).toEqual([3, 3, 3]);
      expect(b.grad!.dtype).toBe('float32');
      expect(b.grad!.toArray()).toEqual([6, 6]);
      // A non-leaf operand (no engine cast on the way) also gets its own dtype and shape.
      const h = mul(a, 2);
      let seen = '';
      h.registerHook((g) => {
        seen = `${g.dtype} ${JSON.stringify(g.shape)}`;
      });
      sum(div(h, b)).backward();
      expect(seen).toBe('bfloat16 [1,3]');
    }));

  it('cast and clone make copies; cast to the same dtype is a view', () =>
    tidy(() => {
      const x = tensor([1.5, -2.7, 3.2]);
      const c = clone(x);
      expect(c.storage).not.toBe(x.storage);
      expect(c.toArray()).toEqual(x.toArray());
      expect(cast(x, 'float32').storage).toBe(x.storage);
      expect(cast(x, 'int32').toArray()).toEqual([1, -2, 3]);
      expect(cast(x, 'int32').requiresGrad).toBe(false);
      expect(cast(tensor([0, 2, -1]), 'bool').toArray()).toEqual([0, 1, 1]);
    }));

  it('frees every intermediate of forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const a = randomF64([4, 5], 1).requiresGrad_();
      const b = randomF64([5], 2).requiresGrad_();
      const y = sum(mul(gelu(div(add(a, b), maximum(b, 0.1))), clamp(sub(1, a), -0.3, 0.4)));
      y.backward();
      a.grad!.dispose();
      b.grad!.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});

describe('elementwise errors', () => {
  it('names the op and the shapes that do not broadcast', () =>
    tidy(() => {
      expect(() => add(tensor([[1, 2, 3]]), tensor([1, 2]))).toThrow(/add: shapes \[1,3\] and \[2\] do not broadcast/);
      expect(() =>
        mul(
          tensor([
            [1, 2, 3],
            [4, 5, 6],
          ]),
          tensor([1, 2, 3, 4]),
        ),
      ).toThrow(/mul: shapes \[2,3\] and \[4\]/);
      expect(() => lt(tensor([1, 2]), tensor([1, 2, 3]))).toThrow(/lt: shapes \[2\] and \[3\]/);
      expect(() => where(tensor([true, false], { dtype: 'bool' }), tensor([1, 2, 3]), 0)).toThrow(
        /where: shapes of condition \[2\], a \[3\] and b \[\] do not broadcast/,
      );
    }));

  it('rejects bad arguments with clear messages', () =>
    tidy(() => {
      const x = tensor([1, 2]);
      expect(() => add(1, 2)).toThrow(/add: at least one operand must be a Tensor/);
      expect(() => add(x, 'a' as never)).toThrow(/add: second operand must be a Tensor or a number/);
      expect(() => where(x, x, x)).toThrow(/where: condition must be bool, got float32 \[2\]/);
      expect(() => pow(tensor([2], { dtype: 'int32' }), -1)).toThrow(/pow: integers to negative integer powers/);
      expect(() => gelu(x, 'fast' as never)).toThrow(/gelu: approximate must be 'none' or 'tanh'/);
      expect(() => clamp(x)).toThrow(/clamp: at least one of min and max/);
      const b = tensor([1, 0], { dtype: 'bool' });
      expect(() => sub(b, b)).toThrow(/sub: subtraction of bool operands/);
      expect(() => neg(b)).toThrow(/neg: negation of a bool tensor/);
      expect(() => cast(x, 'float8' as never)).toThrow(/cast: unknown dtype 'float8'/);
    }));
});
