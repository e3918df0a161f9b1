// The native data-movement kernels (permute, expand, narrow, cat, indexSelect, gather, scatterAdd) against core's
// reference kernels, bit for bit: every dtype (elements move as raw words), odd shapes, the tiled transpose path,
// broadcasts, empty tensors, inputs that are views into a larger storage, sizes large enough for the threaded
// paths, and scatterAdd's repeated indices summed in the reference's order. Out-of-range indices still raise the
// reference's error, with nothing leaked; so does a maskedScatter source that is too short.
import { createRegistry, type DType, memoryStats, type Tensor, tensor } from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, runConformance } from '@omnitrain/core/testing';
import { KERNEL_SOURCE, NATIVE_KERNELS, native, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { nativeFallbacks } from './case-inputs.js';
import { allowNoNative, status } from './native-available.js';

const ALL_DTYPES: DType[] = ['float32', 'bfloat16', 'float16', 'float64', 'int32', 'uint8', 'bool'];
const cases: ConformanceCase[] = [];
/** The case for every dtype in `dtypes` (inputs get the dtype as the first operand's). */
function each(
  dtypes: readonly DType[],
  op: string,
  name: string,
  inputs: (r: CaseRandom, dt: DType) => Tensor[],
  attrs: object,
): void {
  for (const dt of dtypes) cases.push({ op, name: `${name} ${dt}`, dtype: dt, inputs: (r) => inputs(r, dt), attrs });
}
const ints = (v: number[], shape = [v.length]) => tensor(v, { dtype: 'int32', shape });

// permute: small odd shapes in every dtype, the transpose tiles (sizes not multiples of 32), merged runs, rank 0.
const PERMUTES: [number[], number[]][] = [
  [
    [2, 3, 5],
    [2, 0, 1],
  ],
  [
    [2, 3, 5],
    [0, 2, 1],
  ],
  [
    [130, 97],
    [1, 0],
  ],
  [
    [3, 70, 45],
    [0, 2, 1],
  ],
  [
    [5, 1, 7, 2],
    [3, 2, 1, 0],
  ],
  [
    [4, 6, 8, 3],
    [0, 2, 1, 3],
  ],
  [
    [2, 3, 4, 5, 6],
    [4, 1, 3, 0, 2],
  ],
  [[], []],
];
for (const [shape, dims] of PERMUTES) {
  each(ALL_DTYPES, 'permute', `[${shape}] (${dims})`, (r, dt) => [r.tensor(shape, dt)], { dims });
}
each(['float32'], 'permute', 'threaded [4,512,8,64] (0,2,1,3)', (r, dt) => [r.tensor([4, 512, 8, 64], dt)], {
  dims: [0, 2, 1, 3],
});
each(
  ['float32', 'bfloat16'],
  'permute',
  'threaded tiles [3,300,257] (0,2,1)',
  (r, dt) => [r.tensor([3, 300, 257], dt)],
  {
    dims: [0, 2, 1],
  },
);

// expand: new leading dims, middle and last broadcasts, from rank 0, large fills.
const EXPANDS: [number[], number[]][] = [
  [
    [3, 1],
    [2, 3, 4],
  ],
  [
    [5, 1, 7],
    [5, 6, 7],
  ],
  [[1], [4, 9]],
  [[], [4, 3]],
  [
    [2, 3],
    [2, 3],
  ],
  [
    [1, 4, 1],
    [3, 4, 5],
  ],
];
for (const [from, to] of EXPANDS) {
  each(ALL_DTYPES, 'expand', `[${from}] -> [${to}]`, (r, dt) => [r.tensor(from, dt)], { shape: to });
}
each(['float32'], 'expand', 'threaded [1] -> [1000,37]', (r, dt) => [r.tensor([1], dt)], { shape: [1000, 37] });
each(['float32'], 'expand', 'threaded [4,1,512,64] -> [4,4,512,64]', (r, dt) => [r.tensor([4, 1, 512, 64], dt)], {
  shape: [4, 4, 512, 64],
});

// narrow: every dim, offsets, whole and empty ranges.
const NARROWS: [number[], number, number, number][] = [
  [[4, 9], 1, 2, 5],
  [[100, 33], 0, 17, 50],
  [[6, 7, 300], 2, 250, 50],
  [[6, 7, 3], 1, 0, 7],
  [[6, 7, 3], 1, 3, 0],
];
for (const [shape, dim, start, length] of NARROWS) {
  each(ALL_DTYPES, 'narrow', `[${shape}] dim ${dim} [${start},+${length})`, (r, dt) => [r.tensor(shape, dt)], {
    dim,
    start,
    length,
  });
}

// cat: every dim of rank 3, uneven sizes, an empty input, a single input, large rows.
for (const dim of [0, 1, 2]) {
  const shapes = [
    [2, 3, 4],
    [2, 3, 4],
    [2, 3, 4],
  ].map((s, i) => s.map((v, d) => (d === dim ? [1, 5, 2][i]! : v)));
  each(ALL_DTYPES, 'cat', `3 inputs dim ${dim}`, (r, dt) => shapes.map((s) => r.tensor(s, dt)), { dim });
  each(
    ['float32', 'int32'],
    'cat',
    `with an empty input dim ${dim}`,
    (r, dt) => [
      r.tensor(shapes[0]!, dt),
      r.tensor(
        shapes[1]!.map((v, d) => (d === dim ? 0 : v)),
        dt,
      ),
    ],
    { dim },
  );
}
each(['float32'], 'cat', 'single input', (r, dt) => [r.tensor([3, 4], dt)], { dim: 1 });
each(
  ['float32'],
  'cat',
  'threaded 2x[4,512,512] dim 2',
  (r, dt) => [r.tensor([4, 512, 512], dt), r.tensor([4, 512, 512], dt)],
  {
    dim: 2,
  },
);
each(
  ['float32'],
  'cat',
  'threaded 2x[1,2000,300] dim 0',
  (r, dt) => [r.tensor([1, 2000, 300], dt), r.tensor([1, 2000, 300], dt)],
  {
    dim: 0,
  },
);

// indexSelect: repeats, every dim, 0-d and empty index, large row gathers.
each(ALL_DTYPES, 'indexSelect', '[7,3] dim 0 repeats', (r, dt) => [r.tensor([7, 3], dt), ints([6, 0, 2, 2, 6])], {
  dim: 0,
});
each(ALL_DTYPES, 'indexSelect', '[4,9,5] dim 1', (r, dt) => [r.tensor([4, 9, 5], dt), ints([8, 1, 1, 0])], { dim: 1 });
each(ALL_DTYPES, 'indexSelect', '[4,9,5] dim 2', (r, dt) => [r.tensor([4, 9, 5], dt), ints([4, 0, 3])], { dim: 2 });
each(['float32'], 'indexSelect', '0-d index', (r, dt) => [r.tensor([5, 3], dt), tensor(3, { dtype: 'int32' })], {
  dim: 0,
});
each(['float32'], 'indexSelect', 'empty index', (r, dt) => [r.tensor([5, 3], dt), ints([])], { dim: 1 });
each(
  ['float32'],
  'indexSelect',
  'threaded 5000 of [4096,64]',
  (r, dt) => [r.tensor([4096, 64], dt), r.tensor([5000], 'int32', 0, 4096)],
  { dim: 0 },
);

// gather: every dim, an index smaller than x outside dim, rank 4, large.
each(ALL_DTYPES, 'gather', '[3,5] dim 1', (r, dt) => [r.tensor([3, 5], dt), r.tensor([3, 7], 'int32', 0, 5)], {
  dim: 1,
});
each(ALL_DTYPES, 'gather', '[6,4,3] dim 0', (r, dt) => [r.tensor([6, 4, 3], dt), r.tensor([9, 4, 3], 'int32', 0, 6)], {
  dim: 0,
});
each(
  ['float32', 'int32'],
  'gather',
  'index smaller than x [5,6] <- [3,2] dim 1',
  (r, dt) => [r.tensor([5, 6], dt), r.tensor([3, 2], 'int32', 0, 6)],
  { dim: 1 },
);
each(
  ['float32'],
  'gather',
  'rank 4 dim 2',
  (r, dt) => [r.tensor([2, 3, 7, 4], dt), r.tensor([2, 3, 5, 4], 'int32', 0, 7)],
  {
    dim: 2,
  },
);
each(
  ['float32'],
  'gather',
  'threaded [2000,64] dim 1 k 8',
  (r, dt) => [r.tensor([2000, 64], dt), r.tensor([2000, 8], 'int32', 0, 64)],
  { dim: 1 },
);

// scatterAdd: many repeats per output element (bit-exact only if summed in the reference's order), float64,
// index smaller than x and src, large.
for (const dt of ['float32', 'float64'] as DType[]) {
  cases.push({
    op: 'scatterAdd',
    name: `[3,5] dim 1 ${dt}`,
    dtype: dt,
    inputs: (r) => [r.tensor([3, 5], dt), r.tensor([3, 9], 'int32', 0, 5), r.tensor([3, 9], dt)],
    attrs: { dim: 1 },
  });
  cases.push({
    op: 'scatterAdd',
    name: `[10,6] <- 40 rows dim 0 ${dt}`,
    dtype: dt,
    inputs: (r) => [r.tensor([10, 6], dt), r.tensor([40, 6], 'int32', 0, 10), r.tensor([40, 6], dt, -1e3, 1e3)],
    attrs: { dim: 0 },
  });
  cases.push({
    op: 'scatterAdd',
    name: `index smaller than x and src dim 0 ${dt}`,
    dtype: dt,
    inputs: (r) => [r.tensor([5, 6], dt), r.tensor([3, 2], 'int32', 0, 5), r.tensor([4, 3], dt)],
    attrs: { dim: 0 },
  });
  cases.push({
    op: 'scatterAdd',
    name: `rank 3 dim 2 ${dt}`,
    dtype: dt,
    inputs: (r) => [r.tensor([2, 3, 4], dt), r.tensor([2, 3, 11], 'int32', 0, 4), r.tensor([2, 3, 11], dt)],
    attrs: { dim: 2 },
  });
}
cases.push({
  op: 'scatterAdd',
  name: 'threaded [4096,128] <- [8192,128] dim 0',
  dtype: 'float32',
  inputs: (r) => [r.tensor([4096, 128]), r.tensor([8192, 128], 'int32', 0, 4096), r.tensor([8192, 128])],
  attrs: { dim: 0 },
});

// maskedSelect / maskedScatter: every dtype, all-false and all-true masks, sizes spanning several pool chunks.
each(ALL_DTYPES, 'maskedSelect', '[4,5]', (r, dt) => [r.tensor([4, 5], dt), r.tensor([4, 5], 'bool')], {});
each(
  ['float32'],
  'maskedSelect',
  'threaded [300,1001]',
  (r, dt) => [r.tensor([300, 1001], dt), r.tensor([300, 1001], 'bool')],
  {},
);
each(
  ['float32'],
  'maskedSelect',
  'all false',
  (r, dt) => [r.tensor([3, 4], dt), tensor(new Array(12).fill(0), { dtype: 'bool', shape: [3, 4] })],
  {},
);
each(
  ALL_DTYPES,
  'maskedScatter',
  '[2,5] src longer than needed',
  (r, dt) => [r.tensor([2, 5], dt), r.tensor([2, 5], 'bool'), r.tensor([13], dt)],
  {},
);
each(
  ['float32', 'bfloat16'],
  'maskedScatter',
  'threaded [4,512,300] all true',
  (r, dt) => [
    r.tensor([4, 512, 300], dt),
    tensor(new Array(4 * 512 * 300).fill(1), { dtype: 'bool', shape: [4, 512, 300] }),
    r.tensor([4 * 512 * 300], dt),
  ],
  {},
);
each(
  ['float32'],
  'maskedScatter',
  'threaded [700,999]',
  (r, dt) => [r.tensor([700, 999], dt), r.tensor([700, 999], 'bool'), r.tensor([700 * 999], dt)],
  {},
);

const OPS = [
  'permute',
  'expand',
  'narrow',
  'cat',
  'indexSelect',
  'gather',
  'scatterAdd',
  'maskedSelect',
  'maskedScatter',
];
const registry = createRegistry().use(plugin);
const skip = !status.available && allowNoNative;
const zero = { rtol: 0, atol: 0 };
const exact = { float32: zero, float64: zero, bfloat16: zero, float16: zero };

/** The kernel the registry picks for `op` (ours, falling back to the reference). */
const best = (op: string) => registry.kernels('cpu', op)[0]!.kernel;

describe('native data-movement kernels', () => {
  const results = skip ? [] : runConformance({ registry, ops: OPS, extraCases: cases, tolerances: exact });

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name} (${r.dtype})`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
    expect(r.source).toBe(KERNEL_SOURCE);
  });

  it.skipIf(skip)('computes every case natively (no fallback to the reference)', () => {
    expect(nativeFallbacks(cases)).toEqual([]);
  });

  it.skipIf(skip)('reads inputs that are views into a larger storage (element offset)', () => {
    const base = tensor(
      Array.from({ length: 6 * 4 * 5 }, (_, i) => i),
      { shape: [6, 4, 5] },
    );
    const view = base.slice0(2, 5);
    const idx = ints([3, 0, 3]);
    const src = tensor(
      Array.from({ length: 3 * 4 * 5 }, (_, i) => i / 8),
      { shape: [3, 4, 5] },
    );
    const gidx = tensor(
      Array.from({ length: 60 }, (_, i) => (i * 7) % 3),
      { dtype: 'int32', shape: [3, 4, 5] },
    );
    const calls: [string, Tensor[], object][] = [
      ['permute', [view], { dims: [2, 0, 1] }],
      ['permute', [view], { dims: [0, 2, 1] }],
      ['expand', [view.slice0(1, 2)], { shape: [3, 1, 4, 5] }],
      ['narrow', [view], { dim: 2, start: 1, length: 3 }],
      ['cat', [view, view.slice0(0, 1)], { dim: 0 }],
      ['indexSelect', [view, idx], { dim: 1 }],
      ['gather', [view, gidx], { dim: 0 }],
      ['scatterAdd', [view, gidx, src], { dim: 0 }],
    ];
    for (const [op, ins, attrs] of calls) {
      const n = NATIVE_KERNELS[op]!(native()!, ins, attrs) as Tensor;
      expect(n, op).not.toBeNull();
      const ref = registry
        .kernels('cpu', op)
        .find((k) => k.source !== KERNEL_SOURCE)!
        .kernel(ins, attrs) as Tensor;
      expect(n.shape, op).toEqual(ref.shape);
      expect(Array.from(n.raw()), op).toEqual(Array.from(ref.raw()));
      n.dispose();
      ref.dispose();
    }
    for (const t of [base, idx, src, gidx]) t.dispose();
  });

  it.skipIf(skip)('steps aside for attributes the op would have rejected (the reference reports them)', () => {
    const n = native()!;
    const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
    const declined: [string, object][] = [
      ['permute', { dims: [0, 0] }],
      ['permute', { dims: [1, 2] }],
      ['permute', { dims: [1] }],
      ['expand', { shape: [4, 3, 2] }],
      ['expand', { shape: [3] }],
      ['narrow', { dim: 1, start: 2, length: 2 }],
      ['narrow', { dim: 2, start: 0, length: 1 }],
    ];
    for (const [op, attrs] of declined)
      expect(NATIVE_KERNELS[op]!(n, [x], attrs), `${op} ${JSON.stringify(attrs)}`).toBe(null);
    x.dispose();
  });

  it.skipIf(skip)("out-of-range indices and short sources raise the reference's error and leak nothing", () => {
    const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
    const live = memoryStats().liveTensors;
    const bad: [string, Tensor[], object, RegExp][] = [
      ['indexSelect', [x, ints([0, 3])], { dim: 1 }, /indexSelect: index 3 at position 1 is out of range/],
      ['indexSelect', [x, ints([-1])], { dim: 0 }, /indexSelect: index -1 at position 0/],
      ['gather', [x, ints([0, 1, 2, 2, 1, 5], [2, 3])], { dim: 1 }, /gather: index 5 at position 5/],
      ['scatterAdd', [x, ints([0, 2], [1, 2]), tensor([1, 1], { shape: [1, 2] })], { dim: 0 }, /scatterAdd: index 2/],
      [
        'maskedScatter',
        [x, tensor([1, 1, 0, 1, 0, 1], { dtype: 'bool', shape: [2, 3] }), tensor([1, 2, 3])],
        {},
        /maskedScatter: mask has 4 true elements but source \[3\] has only 3/,
      ],
    ];
    for (const [op, ins, attrs, message] of bad) {
      expect(() => best(op)(ins, attrs), op).toThrow(message);
      for (const t of ins.slice(1)) t.dispose();
    }
    expect(memoryStats().liveTensors).toBe(live);
    x.dispose();
  });
});
