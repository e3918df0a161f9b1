// The native general-broadcast binary ops, where, softmaxBackward / logSoftmaxBackward and logsumexp against core's
// reference kernels: every broadcast pattern (middle-dim 1s, both operands broadcasting, rank differences, size-1
// output dims, column broadcasts), float32 (binary ops and where bit-exact) and bfloat16, non-last softmax dims,
// non-finite logsumexp rows, and sizes large enough for the threaded paths.
import { createRegistry, type DType, tensor } from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, REFERENCE_SOURCE, runConformance } from '@omnitrain/core/testing';
import { KERNEL_SOURCE, NATIVE_KERNELS, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { nativeFallbacks } from './case-inputs.js';
import { allowNoNative, status } from './native-available.js';

const F: DType = 'float32';
const B: DType = 'bfloat16';
const exact: ConformanceCase[] = [];
const close: ConformanceCase[] = [];

const BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const PATTERNS: [string, number[], number[]][] = [
  ['both broadcast [4,1,33] [1,5,33]', [4, 1, 33], [1, 5, 33]],
  ['middle 1 [6,1,7] [6,9,7]', [6, 1, 7], [6, 9, 7]],
  ['rank diff [7,1,5] [3,1]', [7, 1, 5], [3, 1]],
  ['column [2,3,1] [2,3,8]', [2, 3, 1], [2, 3, 8]],
  ['outer product [9,1] [1,11]', [9, 1], [1, 11]],
  ['size-1 out dims [1,5,1,6] [3,1,1,6]', [1, 5, 1, 6], [3, 1, 1, 6]],
  ['rank 6 [2,1,3,1,2,5] [1,4,1,2,1,5]', [2, 1, 3, 1, 2, 5], [1, 4, 1, 2, 1, 5]],
  ['[5,1] vs [] scalar tensor in middle rank', [5, 1], [1, 1, 1]],
];
for (const op of BINARY) {
  for (const [name, sa, sb] of PATTERNS) {
    for (const dt of [F, B]) {
      const c = {
        op,
        name: `${name} ${dt}`,
        dtype: dt,
        inputs: (r: CaseRandom) => [r.tensor(sa, dt), r.tensor(sb, dt)],
      };
      (dt === F ? exact : close).push(c);
    }
  }
}
for (const op of ['add', 'mul', 'maximum', 'lt']) {
  exact.push({
    op,
    name: 'threaded [64,1,257] [1,130,257]',
    dtype: F,
    inputs: (r) => [r.tensor([64, 1, 257]), r.tensor([1, 130, 257])],
  });
  exact.push({
    op,
    name: 'threaded column [2000,1] [2000,300]',
    dtype: F,
    inputs: (r) => [r.tensor([2000, 1]), r.tensor([2000, 300])],
  });
}
exact.push({
  op: 'div',
  name: 'zeros, infinities, NaN broadcast',
  dtype: F,
  inputs: () => [
    tensor([0, 1, -1, Number.NaN, Number.POSITIVE_INFINITY, -0], { shape: [6, 1] }),
    tensor([0, -0, Number.NEGATIVE_INFINITY, 2], { shape: [1, 4] }),
  ],
});

const WHERE: [string, number[], number[], number[]][] = [
  ['same [5,7]', [5, 7], [5, 7], [5, 7]],
  ['all broadcast [4,1,9] [1,6,9] [6,1]', [4, 1, 9], [1, 6, 9], [6, 1]],
  ['scalar cond [] [3,5] [5]', [], [3, 5], [5]],
  ['cond column [3,1] [3,8] []', [3, 1], [3, 8], []],
  ['size-1 out dims [1,2,1,3] [2,1,1,1] [1,1,1,3]', [1, 2, 1, 3], [2, 1, 1, 1], [1, 1, 1, 3]],
];
for (const [name, sc, sa, sb] of WHERE) {
  for (const dt of [F, B]) {
    (dt === F ? exact : close).push({
      op: 'where',
      name: `${name} ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor(sc, 'bool'), r.tensor(sa, dt), r.tensor(sb, dt)],
    });
  }
}
exact.push({
  op: 'where',
  name: 'threaded [64,130,257] [64,1,257] [130,1]',
  dtype: F,
  inputs: (r) => [r.tensor([64, 130, 257], 'bool'), r.tensor([64, 1, 257]), r.tensor([130, 1])],
});

const SOFTMAX: [string, number[], number][] = [
  ['[7,33] last', [7, 33], 1],
  ['[3,5,17] middle', [3, 5, 17], 1],
  ['[9,4] first', [9, 4], 0],
  ['[1] single', [1], 0],
  ['threaded [256,2049] last', [256, 2049], 1],
  ['threaded [4,300,129] middle', [4, 300, 129], 1],
];
for (const op of ['softmaxBackward', 'logSoftmaxBackward']) {
  const lo = op === 'softmaxBackward' ? 0 : -8;
  const hi = op === 'softmaxBackward' ? 1 : 0;
  for (const [name, shape, dim] of SOFTMAX) {
    for (const dt of name.startsWith('threaded') ? [F] : [F, B]) {
      close.push({
        op,
        name: `${name} ${dt}`,
        dtype: dt,
        inputs: (r) => [r.tensor(shape, dt), r.tensor(shape, dt, lo, hi)],
        attrs: { dim },
      });
    }
  }
}

const LSE: [string, number[], object][] = [
  ['[17,1003] last', [17, 1003], { dims: [1] }],
  ['[2049,65] dim 0', [2049, 65], { dims: [0] }],
  ['[5,401,33] dim 1 keepdim', [5, 401, 33], { dims: [1], keepdim: true }],
  ['[3,4,7] dims [1,2]', [3, 4, 7], { dims: [1, 2] }],
  ['[300007] all (split row)', [300007], {}],
  ['scalar tensor', [], {}],
  ['threaded [4096,257] last', [4096, 257], { dims: [1] }],
];
for (const [name, shape, attrs] of LSE) {
  for (const dt of name.includes('threaded') || name.includes('300007') ? [F] : [F, B]) {
    close.push({
      op: 'logsumexp',
      name: `${name} ${dt}`,
      dtype: dt,
      inputs: (r) => [r.tensor(shape, dt, -20, 20)],
      attrs,
    });
  }
}
const inf = Number.POSITIVE_INFINITY;
// Rows and columns with +inf, NaN, every value -inf, and large finite values.
const specials = [1, 2, 3, -inf, -inf, -inf, 5, inf, 0, Number.NaN, 7, inf, 88, -inf, 100, -100];
const allNegInf = [-inf, -inf, -inf, -inf, 2, 3, -inf, -inf, -inf];
for (const dims of [[1], [0]]) {
  close.push({
    op: 'logsumexp',
    name: `non-finite rows/columns dims ${dims}`,
    dtype: F,
    inputs: () => [tensor(specials, { shape: [4, 4] })],
    attrs: { dims },
  });
  close.push({
    op: 'logsumexp',
    name: `all -inf row/column dims ${dims}`,
    dtype: F,
    inputs: () => [tensor(allNegInf, { shape: [3, 3] })],
    attrs: { dims },
  });
}

const ALL = [...exact, ...close];
const OPS = ['softmaxBackward', 'logSoftmaxBackward', 'logsumexp', 'where', ...BINARY];
const registry = createRegistry().use(plugin);
const skip = !status.available && allowNoNative;

describe('native broadcast, where, softmax backward and logsumexp kernels', () => {
  const run = (cases: ConformanceCase[], tolerances?: object) => {
    const ops = [...new Set(cases.map((c) => c.op))];
    return skip ? [] : runConformance({ registry, ops, extraCases: cases, tolerances }).slice(-cases.length);
  };
  const zero = { rtol: 0, atol: 0 };
  const results = [...run(exact, { float32: zero }), ...run(close)];

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name} (${r.dtype})`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
    expect(r.source).toBe(KERNEL_SOURCE);
  });

  it.skipIf(skip)('registers a native kernel above the reference for each op', () => {
    for (const op of OPS) {
      expect(NATIVE_KERNELS[op], op).toBeDefined();
      const best = registry.kernels('cpu', op)[0];
      expect(best?.source, op).toBe(KERNEL_SOURCE);
      expect(best?.source, op).not.toBe(REFERENCE_SOURCE);
    }
  });

  it.skipIf(skip)('computes every case natively (no fallback to the reference)', () => {
    expect(nativeFallbacks(ALL)).toEqual([]);
  });
});
