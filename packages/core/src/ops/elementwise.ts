// Elementwise ops: broadcasting arithmetic with PyTorch dtype promotion, comparisons, `where`,
// unary math and activations, `cast` and `clone`, each with its gradient.
import { record } from '../autograd/node.js';
import { full } from '../creation.js';
import { checkDType, type DType, isFloating, promoteTypes } from '../dtype.js';
import { tidy } from '../memory.js';
import { broadcastShapes, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch1 } from './dispatch.js';
import { sumTo } from './reduce.js';

/** A tensor or a number (a "scalar" operand, as a Python number in PyTorch). */
export type Operand = Tensor | number;

const fmt = (s: readonly number[]) => JSON.stringify(s);

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as { isTensor?: boolean }).isTensor === true;
}

function describe(v: Operand): string {
  return isTensor(v) ? `${v.dtype} ${fmt(v.shape)}` : `scalar ${v}`;
}

function checkOperand(op: string, name: string, v: unknown): asserts v is Operand {
  if (!isTensor(v) && typeof v !== 'number') {
    throw new Error(`${op}: ${name} must be a Tensor or a number, got ${v === null ? 'null' : typeof v}`);
  }
}

/**
 * PyTorch's result type of mixed operands: tensors with dimensions take precedence over 0-d
 * tensors, which take precedence over numbers, unless a lower-priority operand is of a higher
 * category (bool < integer < floating). A non-integral number counts as float32 (the default
 * dtype), an integral one as int32 (our int64).
 */
function resultType(...operands: (Operand | undefined)[]): DType {
  let dimmed: DType | undefined;
  let zeroDim: DType | undefined;
  let wrapped: DType | undefined;
  const join = (acc: DType | undefined, d: DType) => (acc === undefined ? d : promoteTypes(acc, d));
  for (const v of operands) {
    if (v === undefined) continue;
    if (typeof v === 'number') wrapped = join(wrapped, Number.isInteger(v) ? 'int32' : 'float32');
    else if (v.ndim === 0) zeroDim = join(zeroDim, v.dtype);
    else dimmed = join(dimmed, v.dtype);
  }
  const combine = (higher: DType | undefined, lower: DType | undefined): DType | undefined => {
    if (higher === undefined) return lower;
    if (lower === undefined || isFloating(higher)) return higher;
    if (higher === 'bool' || isFloating(lower)) return promoteTypes(higher, lower);
    return higher;
  };
  const r = combine(dimmed, combine(zeroDim, wrapped));
  if (r === undefined) throw new Error('resultType: no operands');
  return r;
}

/** Validate the operands of a binary op and return their common dtype. */
function binaryType(op: string, a: Operand, b: Operand): DType {
  checkOperand(op, 'first operand', a);
  checkOperand(op, 'second operand', b);
  if (!isTensor(a) && !isTensor(b)) {
    throw new Error(`${op}: at least one operand must be a Tensor, got two numbers (${a}, ${b})`);
  }
  return resultType(a, b);
}

/** Run a binary kernel on tensor/number operands (validated by `binaryType`). */
function binaryDispatch(op: string, a: Operand, b: Operand, dtype: DType): Tensor {
  if (isTensor(a) && isTensor(b)) {
    broadcastShapes(a.shape, b.shape, op);
    return dispatch1(op, [a, b], { dtype });
  }
  if (isTensor(a)) return dispatch1(op, [a], { scalar: b as number, dtype });
  return dispatch1(op, [b as Tensor], { scalar: a, reverse: true, dtype });
}

/** Reduce a gradient to an operand's shape (sum over broadcast dims) and cast it to its dtype. */
function gradFor(g: Tensor, shape: readonly number[], dtype: DType): Tensor {
  let r = sameShape(g.shape, shape) ? g : sumTo(g, shape);
  if (r.dtype !== dtype) r = dispatch1('cast', [r], { dtype });
  return r;
}

/**
 * Record a binary op. `grads(g, saved, need)` returns the unreduced gradients of `a` and `b`
 * (only those in `need` are used); they are summed to the operands' shapes and cast to their dtypes.
 */
function recordBinary(
  op: string,
  a: Operand,
  b: Operand,
  out: Tensor,
  toSave: Tensor[],
  grads: (g: Tensor, saved: Tensor[], need: [boolean, boolean]) => [Tensor | null, Tensor | null],
): void {
  const inputs = [a, b].filter(isTensor);
  const metas = [a, b].map((v) => (isTensor(v) ? { shape: v.shape, dtype: v.dtype, need: v.requiresGrad } : null));
  const need: [boolean, boolean] = [metas[0]?.need ?? false, metas[1]?.need ?? false];
  record(
    op,
    inputs,
    [out],
    ([g], saved) =>
      tidy(() => {
        if (!g) return inputs.map(() => null);
        const raw = grads(g, saved, need);
        const res: (Tensor | null)[] = [];
        metas.forEach((m, i) => {
          if (!m) return;
          const gi = raw[i];
          res.push(gi && m.need ? gradFor(gi, m.shape, m.dtype) : null);
        });
        return res;
      }),
    toSave,
  );
}

/**
 * `a + b` with NumPy broadcasting and PyTorch dtype promotion; either operand may be a number.
 * Differentiable (broadcast gradients are summed back with `sumTo`).
 */
export function add(a: Operand, b: Operand): Tensor {
  const out = binaryDispatch('add', a, b, binaryType('add', a, b));
  recordBinary('add', a, b, out, [], (g) => [g, g]);
  return out;
}

/** `a - b` with broadcasting and dtype promotion (not for two bools). Differentiable. */
export function sub(a: Operand, b: Operand): Tensor {
  const dtype = binaryType('sub', a, b);
  if (dtype === 'bool')
    throw new Error(`sub: subtraction of bool operands (${describe(a)}, ${describe(b)}) is not supported`);
  const out = binaryDispatch('sub', a, b, dtype);
  recordBinary('sub', a, b, out, [], (g, _s, need) => [g, need[1] ? neg(g) : null]);
  return out;
}

/** `a * b` with broadcasting and dtype promotion. Differentiable. */
export function mul(a: Operand, b: Operand): Tensor {
  const out = binaryDispatch('mul', a, b, binaryType('mul', a, b));
  // Save only what the other operand's gradient needs (b for a's, a for b's).
  const aT = isTensor(a) ? a : null;
  const bT = isTensor(b) ? b : null;
  const needA = aT?.requiresGrad ?? false;
  const needB = bT?.requiresGrad ?? false;
  const toSave: Tensor[] = [];
  const bIdx = needA && bT ? toSave.push(bT) - 1 : -1;
  const aIdx = needB && aT ? toSave.push(aT) - 1 : -1;
  recordBinary('mul', a, b, out, toSave, (g, s) => [
    needA ? mul(g, bIdx >= 0 ? s[bIdx]! : (b as number)) : null,
    needB ? mul(g, aIdx >= 0 ? s[aIdx]! : (a as number)) : null,
  ]);
  return out;
}

/**
 * `a / b` (true division) with broadcasting; integer operands give float32 as in PyTorch.
 * Differentiable.
 */
export function div(a: Operand, b: Operand): Tensor {
  let dtype = binaryType('div', a, b);
  if (!isFloating(dtype)) dtype = 'float32';
  const out = binaryDispatch('div', a, b, dtype);
  const aT = isTensor(a) ? a : null;
  const bT = isTensor(b) ? b : null;
  const needA = aT?.requiresGrad ?? false;
  const needB = bT?.requiresGrad ?? false;
  const toSave: Tensor[] = [];
  const bIdx = bT && (needA || needB) ? toSave.push(bT) - 1 : -1;
  const aIdx = aT && needB ? toSave.push(aT) - 1 : -1;
  recordBinary('div', a, b, out, toSave, (g, s) => {
    const bv: Operand = bIdx >= 0 ? s[bIdx]! : (b as number);
    const av: Operand = aIdx >= 0 ? s[aIdx]! : (a as number);
    // PyTorch: grad_a = grad / b; grad_b = -grad * ((a / b) / b).
    return [needA ? div(g, bv) : null, needB ? mul(neg(g), div(div(av, bv), bv)) : null];
  });
  return out;
}

/** Elementwise maximum with broadcasting; NaN propagates; the gradient is split evenly on ties. */
export function maximum(a: Operand, b: Operand): Tensor {
  return extremum('maximum', a, b);
}

/** Elementwise minimum with broadcasting; NaN propagates; the gradient is split evenly on ties. */
export function minimum(a: Operand, b: Operand): Tensor {
  return extremum('minimum', a, b);
}

function extremum(op: 'maximum' | 'minimum', a: Operand, b: Operand): Tensor {
  const out = binaryDispatch(op, a, b, binaryType(op, a, b));
  const toSave = [a, b].filter(isTensor);
  const aIdx = isTensor(a) ? 0 : -1;
  const bIdx = isTensor(b) ? aIdx + 1 : -1;
  recordBinary(op, a, b, out, toSave, (g, s, need) => {
    const av: Operand = aIdx >= 0 ? s[aIdx]! : (a as number);
    const bv: Operand = bIdx >= 0 ? s[bIdx]! : (b as number);
    // PyTorch: where(a == b, g / 2, g) masked to 0 where the other operand wins.
    const shared = where(eq(av, bv), div(g, 2), g);
    const aLoses = op === 'maximum' ? lt(av, bv) : gt(av, bv);
    const bLoses = op === 'maximum' ? gt(av, bv) : lt(av, bv);
    return [need[0] ? where(aLoses, 0, shared) : null, need[1] ? where(bLoses, 0, shared) : null];
  });
  return out;
}

function comparison(op: string, a: Operand, b: Operand): Tensor {
  return binaryDispatch(op, a, b, binaryType(op, a, b));
}

/** `a == b` elementwise (broadcasting; compared in the promoted dtype) → bool. Not differentiable. */
export function eq(a: Operand, b: Operand): Tensor {
  return comparison('eq', a, b);
}

/** `a != b` elementwise → bool. Not differentiable. */
export function ne(a: Operand, b: Operand): Tensor {
  return comparison('ne', a, b);
}

/** `a < b` elementwise → bool. Not differentiable. */
export function lt(a: Operand, b: Operand): Tensor {
  return comparison('lt', a, b);
}

/** `a <= b` elementwise → bool. Not differentiable. */
export function le(a: Operand, b: Operand): Tensor {
  return comparison('le', a, b);
}

/** `a > b` elementwise → bool. Not differentiable. */
export function gt(a: Operand, b: Operand): Tensor {
  return comparison('gt', a, b);
}

/** `a >= b` elementwise → bool. Not differentiable. */
export function ge(a: Operand, b: Operand): Tensor {
  return comparison('ge', a, b);
}

/**
 * `cond ? a : b` elementwise, broadcasting all three (`cond` must be bool; `a`/`b` may be
 * numbers; their dtypes promote). Differentiable with respect to `a` and `b`.
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (!isTensor(cond)) throw new Error('where: condition must be a bool Tensor');
  if (cond.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${cond.dtype} ${fmt(cond.shape)}`);
  checkOperand('where', 'a', a);
  checkOperand('where', 'b', b);
  const dtype = resultType(a, b);
  const shapeOf = (v: Operand) => (isTensor(v) ? v.shape : []);
  try {
    broadcastShapes(broadcastShapes(cond.shape, shapeOf(a)), shapeOf(b));
  } catch {
    throw new Error(
      `where: shapes of condition ${fmt(cond.shape)}, a ${fmt(shapeOf(a))} and b ${fmt(shapeOf(b))} do not broadcast`,
    );
  }
  const out = tidy(() => {
    const asTensor = (v: Operand) => (isTensor(v) ? v : full([], v, { dtype, device: cond.device }));
    return dispatch1('where', [cond, asTensor(a), asTensor(b)], { dtype });
  });
  recordBinary('where', a, b, out, [cond], (g, [c], need) => [
    need[0] ? where(c!, g, 0) : null,
    need[1] ? where(c!, 0, g) : null,
  ]);
  return out;
}

/** Dtype of a float-valued unary op: float inputs keep theirs, others become float32. */
function floatDType(x: Tensor): DType {
  return isFloating(x.dtype) ? x.dtype : 'float32';
}

function checkTensor(op: string, x: unknown): asserts x is Tensor {
  if (!isTensor(x)) throw new Error(`${op}: expected a Tensor, got ${x === null ? 'null' : typeof x}`);
}

/** Run a unary kernel and record its gradient `grad(g, saved)`. */
function unary(
  op: string,
  x: Tensor,
  dtype: DType,
  attrs: object,
  save: 'input' | 'output' | 'none',
  grad: (g: Tensor, saved: Tensor) => Tensor,
): Tensor {
  checkTensor(op, x);
  const out = dispatch1(op, [x], { ...attrs, dtype });
  const inDtype = x.dtype;
  const toSave = save === 'input' ? [x] : save === 'output' ? [out] : [];
  record(
    op,
    [x],
    [out],
    ([g], saved) =>
      tidy(() => {
        if (!g) return [null];
        const r = grad(g, saved[0]!);
        return [r.dtype === inDtype ? r : dispatch1('cast', [r], { dtype: inDtype })];
      }),
    toSave,
  );
  return out;
}

/** `-x` (not for bool tensors). Differentiable. */
export function neg(x: Tensor): Tensor {
  checkTensor('neg', x);
  if (x.dtype === 'bool') throw new Error('neg: negation of a bool tensor is not supported');
  return unary('neg', x, x.dtype, {}, 'none', (g) => neg(g));
}

/** `|x|`. Gradient `g * sign(x)` (0 at 0). */
export function abs(x: Tensor): Tensor {
  checkTensor('abs', x);
  return unary('abs', x, x.dtype, {}, 'input', (g, xs) => where(gt(xs, 0), g, where(lt(xs, 0), neg(g), 0)));
}

/** `x * x`. Differentiable. */
export function square(x: Tensor): Tensor {
  checkTensor('square', x);
  return unary('square', x, x.dtype === 'bool' ? 'int32' : x.dtype, {}, 'input', (g, xs) => mul(g, mul(xs, 2)));
}

/** `e^x` (integer inputs give float32). Differentiable. */
export function exp(x: Tensor): Tensor {
  checkTensor('exp', x);
  return unary('exp', x, floatDType(x), {}, 'output', (g, y) => mul(g, y));
}

/** Natural logarithm (NaN below 0, -Infinity at 0). Differentiable. */
export function log(x: Tensor): Tensor {
  checkTensor('log', x);
  return unary('log', x, floatDType(x), {}, 'input', (g, xs) => div(g, xs));
}

/** Square root. Differentiable. */
export function sqrt(x: Tensor): Tensor {
  checkTensor('sqrt', x);
  return unary('sqrt', x, floatDType(x), {}, 'output', (g, y) => div(g, mul(y, 2)));
}

/** `1 / sqrt(x)`. Differentiable. */
export function rsqrt(x: Tensor): Tensor {
  checkTensor('rsqrt', x);
  return unary('rsqrt', x, floatDType(x), {}, 'output', (g, y) => mul(mul(g, -0.5), pow(y, 3)));
}

/** Hyperbolic tangent. Differentiable. */
export function tanh(x: Tensor): Tensor {
  checkTensor('tanh', x);
  return unary('tanh', x, floatDType(x), {}, 'output', (g, y) => dispatch1('tanhBackward', [g, y], {}));
}

/** Logistic sigmoid `1 / (1 + e^-x)`. Differentiable. */
export function sigmoid(x: Tensor): Tensor {
  checkTensor('sigmoid', x);
  return unary('sigmoid', x, floatDType(x), {}, 'output', (g, y) => dispatch1('sigmoidBackward', [g, y], {}));
}

/** SiLU (swish) `x * sigmoid(x)`. Differentiable. */
export function silu(x: Tensor): Tensor {
  checkTensor('silu', x);
  return unary('silu', x, floatDType(x), {}, 'input', (g, xs) => dispatch1('siluBackward', [g, xs], {}));
}

/** `max(x, 0)` (NaN propagates). Gradient passes where the output is positive. */
export function relu(x: Tensor): Tensor {
  checkTensor('relu', x);
  if (x.dtype === 'bool') throw new Error('relu: not supported for bool tensors');
  return unary('relu', x, x.dtype, {}, 'output', (g, y) => where(le(y, 0), 0, g));
}

/**
 * GELU. `approximate: 'none'` (default) is the exact `x * Φ(x)` with `erf`;
 * `'tanh'` is `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`. Differentiable.
 */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  checkTensor('gelu', x);
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new Error(`gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  }
  return unary('gelu', x, floatDType(x), { approximate }, 'input', (g, xs) =>
    dispatch1('geluBackward', [g, xs], { approximate }),
  );
}

/**
 * `x ** exponent` for a number exponent. Integer tensors stay integer for non-negative integral
 * exponents and become float32 otherwise. Differentiable: `g * exponent * x^(exponent-1)`.
 */
export function pow(x: Tensor, exponent: number): Tensor {
  checkTensor('pow', x);
  if (typeof exponent !== 'number') throw new Error(`pow: exponent must be a number, got ${typeof exponent}`);
  const dtype = resultType(x, exponent);
  if (!isFloating(dtype) && exponent < 0) {
    throw new Error(
      `pow: integers to negative integer powers are not allowed (${x.dtype} ${fmt(x.shape)} ** ${exponent})`,
    );
  }
  return unary('pow', x, dtype, { exponent }, exponent === 0 ? 'none' : 'input', (g, xs) =>
    exponent === 0
      ? full(g.shape, 0, { dtype: g.dtype, device: g.device })
      : mul(g, mul(pow(xs, exponent - 1), exponent)),
  );
}

/**
 * Clamp into `[min, max]` (either bound may be omitted, not both; when `min > max` every
 * element becomes `max`, as in PyTorch). NaN propagates. Gradient passes where
 * `min <= x <= max`.
 */
export function clamp(x: Tensor, min?: number | null, max?: number | null): Tensor {
  checkTensor('clamp', x);
  const lo = min ?? undefined;
  const hi = max ?? undefined;
  if (lo === undefined && hi === undefined) throw new Error('clamp: at least one of min and max must be given');
  for (const [name, v] of [
    ['min', lo],
    ['max', hi],
  ] as const) {
    if (v !== undefined && typeof v !== 'number') throw new Error(`clamp: ${name} must be a number, got ${typeof v}`);
  }
  const dtype = resultType(x, lo, hi);
  return unary('clamp', x, dtype, { min: lo ?? null, max: hi ?? null }, 'input', (g, xs) => {
    let r = g;
    if (hi !== undefined) r = where(le(xs, hi), r, 0);
    if (lo !== undefined) r = where(ge(xs, lo), r, 0);
    return r;
  });
}

/**
 * Convert to `dtype` (rounding as PyTorch does; float → int truncates). Casting to the same
 * dtype returns a view sharing storage. Differentiable between float dtypes: the gradient is
 * cast back.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', x);
  checkDType(dtype, 'cast');
  if (x.dtype === dtype) return x.reshape(x.shape);
  const out = dispatch1('cast', [x], { dtype });
  const inDtype = x.dtype;
  if (isFloating(dtype)) {
    record('cast', [x], [out], ([g]) => [g ? dispatch1('cast', [g], { dtype: inDtype }) : null]);
  }
  return out;
}

/** A copy of `x` with its own storage. Differentiable. */
export function clone(x: Tensor): Tensor {
  checkTensor('clone', x);
  const out = dispatch1('clone', [x], {});
  record('clone', [x], [out], ([g]) => [g]);
  return out;
}
