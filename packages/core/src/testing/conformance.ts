// Backend conformance suite: every op of core, run through the best kernel a registry has for a device,
// compared with core's reference CPU kernels on random inputs with odd shapes, per-dtype thresholds, and
// NaN-poisoned memory (freed NaN buffers before every call, NaN-filled destinations of overwriting ops).
import { tensor } from '../creation.js';
import type { DType } from '../dtype.js';
import { defaultRegistry, type Kernel, type Registry } from '../registry.js';
import { Tensor } from '../tensor.js';

/** The `source` core's reference kernels are registered under. */
export const REFERENCE_SOURCE = '@omnitrain/core reference';

/** Allowed error of a dtype: `max|got - want| <= atol + rtol * max|want|` over each output. */
export interface Tolerance {
  rtol: number;
  atol: number;
}

/** Default per-dtype thresholds (integers and bools must match exactly). */
export const DEFAULT_TOLERANCES: Readonly<Record<DType, Tolerance>> = {
  float64: { rtol: 1e-10, atol: 1e-12 },
  float32: { rtol: 1e-4, atol: 1e-5 },
  bfloat16: { rtol: 2e-2, atol: 1e-2 },
  float16: { rtol: 5e-3, atol: 1e-3 },
  int32: { rtol: 0, atol: 0 },
  uint8: { rtol: 0, atol: 0 },
  bool: { rtol: 0, atol: 0 },
};

/** A deterministic source of random numbers for a case. */
export interface CaseRandom {
  /** Uniform in [lo, hi). */
  uniform(lo?: number, hi?: number): number;
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number;
  /** A tensor of `shape` with uniform values in [lo, hi) (integers for int32/uint8/bool). */
  tensor(shape: readonly number[], dtype?: DType, lo?: number, hi?: number): Tensor;
}

/** One kernel call to compare. */
export interface ConformanceCase {
  op: string;
  /** Short description (shapes, attrs). */
  name: string;
  /** dtype of the main operand; selects the tolerance. */
  dtype: DType;
  /** Inputs, built from `rand` (called once per run with the same seed). */
  inputs(rand: CaseRandom): Tensor[];
  attrs?: object;
  /** Indices of inputs the kernel overwrites entirely: NaN-filled before the call. */
  poison?: readonly number[];
  /** The kernel writes into its inputs (in-place ops): don't check inputs are unchanged. */
  mutates?: boolean;
}

/** Outcome of one case. */
export interface ConformanceResult {
  op: string;
  name: string;
  dtype: DType;
  /** `source` of the kernel under test. */
  source: string;
  ok: boolean;
  /** Largest error relative to the allowed error (<= 1 passes). */
  score: number;
  message: string;
}

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /** Registry whose best kernels are tested (default: the default registry). */
  registry?: Registry;
  /** Device of the backend under test (default `cpu`); inputs are moved there, outputs back. */
  device?: string;
  /** Only these ops. */
  ops?: readonly string[];
  /** Base seed of the random inputs. */
  seed?: number;
  /** Per-dtype overrides of {@link DEFAULT_TOLERANCES}. */
  tolerances?: Partial<Record<DType, Tolerance>>;
  /** Extra cases (e.g. for ops a plugin adds). */
  extraCases?: readonly ConformanceCase[];
}

function makeRandom(seed: number): CaseRandom {
  let s = (seed >>> 0) ^ 0x9e3779b9;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r: CaseRandom = {
    uniform: (lo = -1, hi = 1) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo)),
    tensor(shape, dtype = 'float32', lo = -1, hi = 1) {
      const n = shape.reduce((a, b) => a * b, 1);
      const v = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        v[i] =
          dtype === 'bool'
            ? next() < 0.5
              ? 1
              : 0
            : dtype === 'int32' || dtype === 'uint8'
              ? r.int(lo, hi)
              : r.uniform(lo, hi);
      }
      return tensor(v, { shape, dtype });
    },
  };
  return r;
}

const F: DType = 'float32';
const ints = (values: number[]) => tensor(values, { shape: [values.length], dtype: 'int32' });

/** Core's built-in cases: every op its reference backend registers, in several shapes and dtypes. */
export function conformanceCases(): ConformanceCase[] {
  const c: ConformanceCase[] = [];
  const add = (x: ConformanceCase) => c.push(x);
  // Elementwise binary: same shape, broadcast, scalar; float32, bfloat16, float64, int32.
  for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge']) {
    add({ op, name: '[3,5,7] + [3,5,7]', dtype: F, inputs: (r) => [r.tensor([3, 5, 7]), r.tensor([3, 5, 7])] });
    add({ op, name: '[4,1,9] + [5,1]', dtype: F, inputs: (r) => [r.tensor([4, 1, 9]), r.tensor([5, 1])] });
    add({ op, name: '[2,33] scalar', dtype: F, inputs: (r) => [r.tensor([2, 33])], attrs: { scalar: 0.37 } });
    add({
      op,
      name: '[37] bf16',
      dtype: 'bfloat16',
      inputs: (r) => [r.tensor([37], 'bfloat16'), r.tensor([37], 'bfloat16')],
    });
    add({
      op,
      name: '[3,11] f64',
      dtype: 'float64',
      inputs: (r) => [r.tensor([3, 11], 'float64'), r.tensor([11], 'float64')],
    });
    if (op !== 'div')
      add({
        op,
        name: '[13] int32',
        dtype: 'int32',
        inputs: (r) => [r.tensor([13], 'int32', -5, 6), r.tensor([13], 'int32', -5, 6)],
      });
  }
  add({ op: 'add', name: '[1031] + [1031] (long)', dtype: F, inputs: (r) => [r.tensor([1031]), r.tensor([1031])] });
  add({
    op: 'add',
    name: 'reverse scalar',
    dtype: F,
    inputs: (r) => [r.tensor([7, 3])],
    attrs: { scalar: 2, reverse: true },
  });
  add({
    op: 'where',
    name: '[3,1,5] ? [4,1] : [5]',
    dtype: F,
    inputs: (r) => [r.tensor([3, 1, 5], 'bool'), r.tensor([4, 1]), r.tensor([5])],
  });
  // Unary math and activations.
  const pos = new Set(['log', 'sqrt', 'rsqrt']);
  for (const op of [
    'neg',
    'abs',
    'square',
    'relu',
    'exp',
    'log',
    'sqrt',
    'rsqrt',
    'tanh',
    'sigmoid',
    'silu',
    'gelu',
    'clone',
  ]) {
    const lo = pos.has(op) ? 0.1 : -3;
    add({ op, name: '[5,13]', dtype: F, inputs: (r) => [r.tensor([5, 13], F, lo, 3)] });
    add({ op, name: '[29] bf16', dtype: 'bfloat16', inputs: (r) => [r.tensor([29], 'bfloat16', lo, 3)] });
    add({ op, name: '[2,9] f64', dtype: 'float64', inputs: (r) => [r.tensor([2, 9], 'float64', lo, 3)] });
  }
  add({
    op: 'gelu',
    name: 'tanh [3,17]',
    dtype: F,
    inputs: (r) => [r.tensor([3, 17], F, -3, 3)],
    attrs: { approximate: 'tanh' },
  });
  add({ op: 'pow', name: '[4,7] ^ 3', dtype: F, inputs: (r) => [r.tensor([4, 7], F, 0.1, 2)], attrs: { exponent: 3 } });
  add({
    op: 'pow',
    name: '[4,7] ^ 0.5',
    dtype: F,
    inputs: (r) => [r.tensor([4, 7], F, 0.1, 2)],
    attrs: { exponent: 0.5 },
  });
  add({
    op: 'clamp',
    name: '[6,5] in [-0.5, 0.25]',
    dtype: F,
    inputs: (r) => [r.tensor([6, 5])],
    attrs: { min: -0.5, max: 0.25 },
  });
  for (const op of ['tanhBackward', 'sigmoidBackward']) {
    add({ op, name: '[3,19]', dtype: F, inputs: (r) => [r.tensor([3, 19]), r.tensor([3, 19], F, 0, 1)] });
  }
  add({
    op: 'siluBackward',
    name: '[3,19]',
    dtype: F,
    inputs: (r) => [r.tensor([3, 19]), r.tensor([3, 19], F, -3, 3)],
  });
  for (const approximate of ['none', 'tanh']) {
    add({
      op: 'geluBackward',
      name: `[3,19] ${approximate}`,
      dtype: F,
      inputs: (r) => [r.tensor([3, 19]), r.tensor([3, 19], F, -3, 3)],
      attrs: { approximate },
    });
  }
  // Reductions.
  for (const op of ['sum', 'mean', 'max', 'min', 'logsumexp']) {
    add({ op, name: '[3,5,7] dims [1]', dtype: F, inputs: (r) => [r.tensor([3, 5, 7])], attrs: { dims: [1] } });
    add({
      op,
      name: '[3,5,7] dims [0,2] keepdim',
      dtype: F,
      inputs: (r) => [r.tensor([3, 5, 7])],
      attrs: { dims: [0, 2], keepdim: true },
    });
    add({ op, name: '[11,3] all', dtype: F, inputs: (r) => [r.tensor([11, 3])], attrs: {} });
  }
  add({
    op: 'sum',
    name: '[4,9] int32',
    dtype: 'int32',
    inputs: (r) => [r.tensor([4, 9], 'int32', -9, 9)],
    attrs: { dims: [1] },
  });
  add({
    op: 'sumTo',
    name: '[4,3,5] -> [3,1]',
    dtype: F,
    inputs: (r) => [r.tensor([4, 3, 5])],
    attrs: { shape: [3, 1] },
  });
  for (const op of ['softmax', 'logSoftmax']) {
    add({ op, name: '[3,5,37] dim 2', dtype: F, inputs: (r) => [r.tensor([3, 5, 37], F, -4, 4)], attrs: { dim: 2 } });
    add({ op, name: '[3,5,7] dim 1', dtype: F, inputs: (r) => [r.tensor([3, 5, 7], F, -4, 4)], attrs: { dim: 1 } });
    add({
      op,
      name: '[4,9] bf16',
      dtype: 'bfloat16',
      inputs: (r) => [r.tensor([4, 9], 'bfloat16', -4, 4)],
      attrs: { dim: 1 },
    });
  }
  for (const op of ['softmaxBackward', 'logSoftmaxBackward']) {
    add({
      op,
      name: '[3,13] dim 1',
      dtype: F,
      inputs: (r) => [r.tensor([3, 13]), r.tensor([3, 13], F, -2, 0)],
      attrs: { dim: 1 },
    });
  }
  // Shape and indexing.
  add({
    op: 'permute',
    name: '[2,3,5] (2,0,1)',
    dtype: F,
    inputs: (r) => [r.tensor([2, 3, 5])],
    attrs: { dims: [2, 0, 1] },
  });
  add({
    op: 'expand',
    name: '[3,1] -> [2,3,4]',
    dtype: F,
    inputs: (r) => [r.tensor([3, 1])],
    attrs: { shape: [2, 3, 4] },
  });
  add({
    op: 'narrow',
    name: '[4,9] dim 1 [2,7)',
    dtype: F,
    inputs: (r) => [r.tensor([4, 9])],
    attrs: { dim: 1, start: 2, length: 5 },
  });
  add({
    op: 'cat',
    name: '[2,3]+[2,5] dim 1',
    dtype: F,
    inputs: (r) => [r.tensor([2, 3]), r.tensor([2, 5])],
    attrs: { dim: 1 },
  });
  add({
    op: 'indexSelect',
    name: '[7,3] dim 0',
    dtype: F,
    inputs: (r) => [r.tensor([7, 3]), ints([6, 0, 2, 2])],
    attrs: { dim: 0 },
  });
  add({
    op: 'gather',
    name: '[3,5] dim 1',
    dtype: F,
    inputs: (r) => [r.tensor([3, 5]), r.tensor([3, 2], 'int32', 0, 5)],
    attrs: { dim: 1 },
  });
  add({
    op: 'scatterAdd',
    name: '[3,5] dim 1',
    dtype: F,
    inputs: (r) => [r.tensor([3, 5]), r.tensor([3, 4], 'int32', 0, 5), r.tensor([3, 4])],
    attrs: { dim: 1 },
  });
  add({
    op: 'maskedSelect',
    name: '[4,5]',
    dtype: F,
    inputs: (r) => [r.tensor([4, 5]), r.tensor([4, 5], 'bool')],
  });
  add({
    op: 'maskedScatter',
    name: '[2,5]',
    dtype: F,
    inputs: (r) => [
      r.tensor([2, 5]),
      tensor([1, 0, 1, 1, 0, 0, 0, 1, 0, 1], { shape: [2, 5], dtype: 'bool' }),
      r.tensor([5]),
    ],
  });
  // Matrix products.
  for (const [ta, tb] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    const a = (m: number, k: number) => (ta ? [k, m] : [m, k]);
    const b = (k: number, n: number) => (tb ? [n, k] : [k, n]);
    const attrs = { transA: ta, transB: tb };
    const t = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;
    add({ op: 'matmul', name: `${t} 5x7x3`, dtype: F, inputs: (r) => [r.tensor(a(5, 7)), r.tensor(b(7, 3))], attrs });
    add({
      op: 'matmul',
      name: `${t} 67x129x33`,
      dtype: F,
      inputs: (r) => [r.tensor(a(67, 129)), r.tensor(b(129, 33))],
      attrs,
    });
    add({
      op: 'matmul',
      name: `${t} batch [2,3] x [3]`,
      dtype: F,
      inputs: (r) => [r.tensor([2, 3, ...a(4, 6)]), r.tensor([3, ...b(6, 5)])],
      attrs,
    });
    add({
      op: 'matmul',
      name: `${t} batch [2,1] x [4]`,
      dtype: F,
      inputs: (r) => [r.tensor([2, 1, ...a(3, 5)]), r.tensor([4, ...b(5, 2)])],
      attrs,
    });
  }
  add({
    op: 'matmul',
    name: '[2,3,9,17] x [17,5]',
    dtype: F,
    inputs: (r) => [r.tensor([2, 3, 9, 17]), r.tensor([17, 5])],
  });
  add({
    op: 'matmul',
    name: 'bf16 9x21x7',
    dtype: 'bfloat16',
    inputs: (r) => [r.tensor([9, 21], 'bfloat16'), r.tensor([21, 7], 'bfloat16')],
  });
  add({
    op: 'matmul',
    name: 'f64 9x21x7',
    dtype: 'float64',
    inputs: (r) => [r.tensor([9, 21], 'float64'), r.tensor([21, 7], 'float64')],
  });
  add({
    op: 'groupedMatmul',
    name: 'T=11 K=7 E=3 N=5 sizes [4,0,7]',
    dtype: F,
    inputs: (r) => [r.tensor([11, 7]), r.tensor([3, 5, 7]), ints([4, 0, 7])],
  });
  add({
    op: 'groupedMatmulBackward',
    name: 'T=11 K=7 E=3 N=5 sizes [4,0,7]',
    dtype: F,
    inputs: (r) => [r.tensor([11, 5]), r.tensor([11, 7]), r.tensor([3, 5, 7]), ints([4, 0, 7])],
  });
  // Embedding.
  add({
    op: 'embedding',
    name: 'ids [3,5] weight [17,9]',
    dtype: F,
    inputs: (r) => [r.tensor([3, 5], 'int32', 0, 17), r.tensor([17, 9])],
  });
  add({
    op: 'embeddingBackward',
    name: 'ids [3,5] grad [3,5,9] V=17',
    dtype: F,
    inputs: (r) => [r.tensor([3, 5], 'int32', 0, 17), r.tensor([3, 5, 9])],
    attrs: { numEmbeddings: 17 },
  });
  // Fused ops.
  for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
    add({
      op: 'rmsNorm',
      name: `[3,5,37] ${dtype}`,
      dtype,
      inputs: (r) => [r.tensor([3, 5, 37], dtype), r.tensor([37], dtype, 0.5, 1.5)],
      attrs: { eps: 1e-6 },
    });
    add({
      op: 'swiglu',
      name: `[7,19] ${dtype}`,
      dtype,
      inputs: (r) => [r.tensor([7, 19], dtype, -4, 4), r.tensor([7, 19], dtype)],
    });
  }
  add({
    op: 'rmsNorm',
    name: '[2,1031]',
    dtype: F,
    inputs: (r) => [r.tensor([2, 1031]), r.tensor([1031], F, 0.5, 1.5)],
    attrs: { eps: 1e-5 },
  });
  add({
    op: 'rmsNormBackward',
    name: '[3,5,37]',
    dtype: F,
    inputs: (r) => {
      const x = r.tensor([3, 5, 37]);
      const xs = x.raw() as Float32Array;
      const rstd = new Array<number>(15);
      for (let i = 0; i < 15; i++) {
        let ss = 0;
        for (let j = 0; j < 37; j++) ss += xs[i * 37 + j]! ** 2;
        rstd[i] = 1 / Math.sqrt(ss / 37 + 1e-6);
      }
      return [r.tensor([3, 5, 37]), x, r.tensor([37], F, 0.5, 1.5), tensor(rstd, { shape: [3, 5] })];
    },
    attrs: { eps: 1e-6 },
  });
  add({
    op: 'swigluBackward',
    name: '[7,19]',
    dtype: F,
    inputs: (r) => [r.tensor([7, 19]), r.tensor([7, 19], F, -4, 4), r.tensor([7, 19])],
  });
  add({
    op: 'layerNorm',
    name: '[3,5,21] weight+bias',
    dtype: F,
    inputs: (r) => [r.tensor([3, 5, 21]), r.tensor([21]), r.tensor([21])],
    attrs: { eps: 1e-5, hasWeight: true, hasBias: true },
  });
  add({
    op: 'layerNorm',
    name: '[7,33] plain',
    dtype: F,
    inputs: (r) => [r.tensor([7, 33], F, -2, 3)],
    attrs: { eps: 1e-5, hasWeight: false, hasBias: false },
  });
  add({
    op: 'layerNorm',
    name: '[7,33] bias only',
    dtype: F,
    inputs: (r) => [r.tensor([7, 33]), r.tensor([33])],
    attrs: { eps: 1e-5, hasWeight: false, hasBias: true },
  });
  add({
    op: 'layerNormBackward',
    name: '[5,1031] weight+bias',
    dtype: F,
    inputs: (r) => [
      r.tensor([5, 1031]),
      r.tensor([5, 1031]),
      r.tensor([5], F, -0.1, 0.1),
      r.tensor([5], F, 0.5, 2),
      r.tensor([1031]),
    ],
    attrs: { eps: 1e-5, hasWeight: true, hasBias: true },
  });
  add({
    op: 'layerNormBackward',
    name: '[3,21] weight',
    dtype: F,
    inputs: (r) => [
      r.tensor([3, 21]),
      r.tensor([3, 21]),
      r.tensor([3], F, -0.1, 0.1),
      r.tensor([3], F, 0.5, 2),
      r.tensor([21]),
    ],
    attrs: { eps: 1e-5, hasWeight: true, hasBias: false },
  });
  const invFreq = (d: number) => Array.from({ length: d / 2 }, (_, j) => Math.fround(1 / 10000 ** ((2 * j) / d)));
  for (const op of ['rope', 'ropeBackward']) {
    add({
      op,
      name: '[2,7,3,10] positions [2,7]',
      dtype: F,
      inputs: (r) => [r.tensor([2, 7, 3, 10]), r.tensor([2, 7], 'int32', 0, 300)],
      attrs: { invFreq: invFreq(10) },
    });
    add({
      op,
      name: 'packed [9,2,16] bf16',
      dtype: 'bfloat16',
      inputs: (r) => [r.tensor([9, 2, 16], 'bfloat16'), r.tensor([9], 'int32', 0, 50)],
      attrs: { invFreq: invFreq(16) },
    });
  }
  const ce = { ignoreIndex: -100 };
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    const labels = (r: CaseRandom) => {
      const t = r.tensor([13], 'int32', 0, 37);
      (t.raw() as Int32Array)[3] = -100;
      return t;
    };
    add({
      op: 'crossEntropy',
      name: `[13,37] ${reduction}`,
      dtype: F,
      inputs: (r) => [r.tensor([13, 37], F, -5, 5), labels(r)],
      attrs: { ...ce, reduction },
    });
    add({
      op: 'crossEntropyBackward',
      name: `[13,37] ${reduction}`,
      dtype: F,
      inputs: (r) => {
        const x = r.tensor([13, 37], F, -5, 5);
        const xs = x.raw() as Float32Array;
        const lse = Array.from({ length: 13 }, (_, i) => {
          let m = -Infinity;
          for (let j = 0; j < 37; j++) m = Math.max(m, xs[i * 37 + j]!);
          let s = 0;
          for (let j = 0; j < 37; j++) s += Math.exp(xs[i * 37 + j]! - m);
          return m + Math.log(s);
        });
        return [
          x,
          labels(r),
          tensor(lse, { shape: [13] }),
          reduction === 'none' ? r.tensor([13]) : tensor([0.7], { shape: [] }),
        ];
      },
      attrs: { ...ce, reduction },
    });
    add({
      op: 'fusedLinearCrossEntropy',
      name: `h [13,10] w [37,10] chunk 4 ${reduction}`,
      dtype: F,
      inputs: (r) => [r.tensor([13, 10]), r.tensor([37, 10]), labels(r)],
      attrs: { ...ce, reduction, chunkSize: 4 },
    });
  }
  for (const [needHidden, needWeight] of [
    [true, true],
    [true, false],
    [false, true],
  ] as const) {
    add({
      op: 'fusedLinearCrossEntropyBackward',
      name: `h [13,10] w [37,10] chunk 5 hidden=${needHidden} weight=${needWeight}`,
      dtype: F,
      inputs: (r) => {
        const h = r.tensor([13, 10]);
        const w = r.tensor([37, 10]);
        const hs = h.raw() as Float32Array;
        const ws = w.raw() as Float32Array;
        const lse = Array.from({ length: 13 }, (_, i) => {
          const z = Array.from({ length: 37 }, (_, v) => {
            let a = 0;
            for (let k = 0; k < 10; k++) a += hs[i * 10 + k]! * ws[v * 10 + k]!;
            return a;
          });
          const m = Math.max(...z);
          return m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
        });
        const y = r.tensor([13], 'int32', 0, 37);
        (y.raw() as Int32Array)[5] = -100;
        return [h, w, y, tensor(lse, { shape: [13] }), tensor([1.3], { shape: [] })];
      },
      attrs: { ...ce, reduction: 'mean', chunkSize: 5, needHidden, needWeight },
    });
  }
  // Attention: batched (GQA), packed with cuSeqlens, causal and not, odd lengths; backward too.
  const attnCases: { name: string; q: number[]; kv: number[]; cu?: number[]; causal: boolean }[] = [
    { name: 'B2 S9 Hq4 Hkv2 D8 causal', q: [2, 9, 4, 8], kv: [2, 9, 2, 8], causal: true },
    { name: 'B1 S70 Hq2 Hkv2 D16 causal', q: [1, 70, 2, 16], kv: [1, 70, 2, 16], causal: true },
    { name: 'B2 Sq5 Sk11 Hq3 Hkv1 D4', q: [2, 5, 3, 4], kv: [2, 11, 1, 4], causal: false },
    {
      name: 'packed [0,5,13,13+66] Hq4 Hkv2 D8 causal',
      q: [79, 4, 8],
      kv: [79, 2, 8],
      cu: [0, 5, 13, 79],
      causal: true,
    },
    { name: 'packed one sequence T7 Hq2 Hkv1 D6', q: [7, 2, 6], kv: [7, 1, 6], causal: false },
  ];
  for (const a of attnCases) {
    const scale = 1 / Math.sqrt(a.q[a.q.length - 1]!);
    const qkv = (r: CaseRandom) => {
      const t = [r.tensor(a.q, F, -2, 2), r.tensor(a.kv, F, -2, 2), r.tensor(a.kv)];
      return a.cu ? [...t, ints(a.cu)] : t;
    };
    add({ op: 'attention', name: a.name, dtype: F, inputs: qkv, attrs: { causal: a.causal, scale } });
    add({
      op: 'attentionBackward',
      name: a.name,
      dtype: F,
      inputs: (r) => {
        const [q, k, v, cu] = qkv(r) as [Tensor, Tensor, Tensor, Tensor | undefined];
        const ref = referenceKernelIn(defaultRegistry(), 'attention');
        const [o, lse] = ref(cu ? [q, k, v, cu] : [q, k, v], { causal: a.causal, scale }) as Tensor[];
        const g = r.tensor(a.q);
        return cu ? [q, k, v, o!, lse!, g, cu] : [q, k, v, o!, lse!, g];
      },
      attrs: { causal: a.causal, scale },
    });
  }
  // Optimizer step and in-place/conversion kernels.
  const adamw = {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0.1,
    step: 3,
    maximize: false,
    amsgrad: false,
  };
  add({
    op: 'adamwStep',
    name: '[37,5]',
    dtype: F,
    mutates: true,
    inputs: (r) => [
      r.tensor([37, 5]),
      r.tensor([37, 5]),
      r.tensor([37, 5], F, -0.1, 0.1),
      r.tensor([37, 5], F, 0, 0.01),
    ],
    attrs: adamw,
  });
  add({
    op: 'adamwStep',
    name: '[1031] amsgrad maximize',
    dtype: F,
    mutates: true,
    inputs: (r) => [
      r.tensor([1031]),
      r.tensor([1031]),
      r.tensor([1031], F, -0.1, 0.1),
      r.tensor([1031], F, 0, 0.01),
      r.tensor([1031], F, 0, 0.02),
    ],
    attrs: { ...adamw, amsgrad: true, maximize: true },
  });
  for (const [from, to] of [
    ['float32', 'bfloat16'],
    ['bfloat16', 'float32'],
    ['float32', 'float16'],
    ['float32', 'int32'],
    ['int32', 'float32'],
    ['float64', 'float32'],
  ] as [DType, DType][]) {
    add({
      op: 'cast',
      name: `[5,7] ${from} -> ${to}`,
      dtype: to,
      inputs: (r) => [r.tensor([5, 7], from, -50, 50)],
      attrs: { dtype: to },
    });
  }
  add({
    op: 'copy_',
    name: '[5,7]',
    dtype: F,
    mutates: true,
    poison: [0],
    inputs: (r) => [r.tensor([5, 7]), r.tensor([5, 7])],
  });
  add({
    op: 'copy_',
    name: '[5,7] <- f64',
    dtype: F,
    mutates: true,
    poison: [0],
    inputs: (r) => [r.tensor([5, 7]), r.tensor([5, 7], 'float64')],
  });
  add({
    op: 'add_',
    name: '[1031] alpha -0.5',
    dtype: F,
    mutates: true,
    inputs: (r) => [r.tensor([1031]), r.tensor([1031])],
    attrs: { alpha: -0.5 },
  });
  add({
    op: 'add_',
    name: '[3,5] + scalar tensor',
    dtype: F,
    mutates: true,
    inputs: (r) => [r.tensor([3, 5]), r.tensor([1])],
    attrs: {},
  });
  add({
    op: 'add_',
    name: '[13] bf16',
    dtype: 'bfloat16',
    mutates: true,
    inputs: (r) => [r.tensor([13], 'bfloat16'), r.tensor([13], 'bfloat16')],
    attrs: {},
  });
  add({
    op: 'mul_',
    name: '[1031] * 0.3',
    dtype: F,
    mutates: true,
    inputs: (r) => [r.tensor([1031])],
    attrs: { value: 0.3 },
  });
  add({
    op: 'fill_',
    name: '[5,7] = 1.5',
    dtype: F,
    mutates: true,
    poison: [0],
    inputs: (r) => [r.tensor([5, 7])],
    attrs: { value: 1.5 },
  });
  return c;
}

/** Core's reference kernel for `op` in `registry` (the one registered by core itself). */
export function referenceKernelIn(registry: Registry, op: string): Kernel {
  const e = registry.kernels('cpu', op).find((k) => k.source === REFERENCE_SOURCE);
  if (!e) throw new Error(`conformance: no reference kernel for '${op}' (source '${REFERENCE_SOURCE}')`);
  return e.kernel;
}

function poisonFill(t: Tensor): void {
  const raw = t.raw();
  if (raw instanceof Float32Array || raw instanceof Float64Array) raw.fill(Number.NaN);
  else if (raw instanceof Uint16Array && (t.dtype === 'bfloat16' || t.dtype === 'float16')) raw.fill(0x7fc0);
  else raw.fill(0x55 as never);
}

/** Allocate NaN-filled buffers of the given sizes and free them, so allocators that reuse memory hand out NaNs. */
function poisonAllocator(bytes: number[], device: string): void {
  for (const n of bytes) {
    const t = Tensor.empty([Math.max(1, Math.ceil(n / 4))], 'float32', 'cpu');
    (t.raw() as Float32Array).fill(Number.NaN);
    if (device !== 'cpu') t.to(device).dispose();
    t.dispose();
  }
}

function values(t: Tensor): Float64Array {
  const cpu = t.device === 'cpu' ? t : t.to('cpu');
  const v = Float64Array.from(cpu.toTypedArray() as ArrayLike<number>);
  if (cpu !== t) cpu.dispose();
  return v;
}

function compare(got: Tensor, want: Tensor, tol: Tolerance): { score: number; message: string } {
  if (got.dtype !== want.dtype) return { score: Infinity, message: `dtype ${got.dtype}, expected ${want.dtype}` };
  if (got.shape.length !== want.shape.length || got.shape.some((s, i) => s !== want.shape[i])) {
    return { score: Infinity, message: `shape ${JSON.stringify(got.shape)}, expected ${JSON.stringify(want.shape)}` };
  }
  const g = values(got);
  const w = values(want);
  let maxRef = 0;
  for (let i = 0; i < w.length; i++) if (Number.isFinite(w[i]!)) maxRef = Math.max(maxRef, Math.abs(w[i]!));
  const allowed = tol.atol + tol.rtol * maxRef;
  let worst = 0;
  let at = -1;
  for (let i = 0; i < w.length; i++) {
    const a = g[i]!;
    const b = w[i]!;
    if (Number.isNaN(b) || Number.isNaN(a)) {
      if (Number.isNaN(a) !== Number.isNaN(b))
        return { score: Infinity, message: `element ${i}: got ${a}, expected ${b}` };
      continue;
    }
    if (a === b) continue;
    const err = Math.abs(a - b);
    const s = allowed === 0 ? Infinity : err / allowed;
    if (s > worst) {
      worst = s;
      at = i;
    }
  }
  return {
    score: worst,
    message:
      at < 0 ? 'exact' : `worst element ${at}: got ${g[at]}, expected ${w[at]} (allowed ${allowed.toExponential(2)})`,
  };
}

/**
 * Run every conformance case through the best kernel `registry` has on `device` and through
 * core's reference kernel, and compare the outputs. Returns one result per case (never throws for
 * a failing kernel; see {@link assertConformance}).
 */
export function runConformance(opts: ConformanceOptions = {}): ConformanceResult[] {
  const registry = opts.registry ?? defaultRegistry();
  const device = opts.device ?? 'cpu';
  const backend = device.split(':')[0]!;
  const tolerances = { ...DEFAULT_TOLERANCES, ...opts.tolerances };
  const cases = [...conformanceCases(), ...(opts.extraCases ?? [])].filter((c) => !opts.ops || opts.ops.includes(c.op));
  const results: ConformanceResult[] = [];
  cases.forEach((cs, index) => {
    const seed = (opts.seed ?? 1234) + index * 7919;
    const entry = registry.kernels(backend, cs.op)[0];
    const result: ConformanceResult = {
      op: cs.op,
      name: cs.name,
      dtype: cs.dtype,
      source: entry?.source ?? '(none)',
      ok: false,
      score: Infinity,
      message: '',
    };
    results.push(result);
    const owned: Tensor[] = [];
    try {
      if (!entry) throw new Error(`no kernel '${cs.op}' on '${backend}'`);
      const build = () => {
        const ins = cs.inputs(makeRandom(seed));
        for (const i of cs.poison ?? []) poisonFill(ins[i]!);
        owned.push(...ins);
        return ins;
      };
      const refIn = build();
      const refOut = [referenceKernelIn(registry, cs.op)(refIn, cs.attrs ?? {})].flat();
      owned.push(...refOut);
      const candCpu = build();
      const before = cs.mutates ? null : candCpu.map(values);
      const candIn = device === 'cpu' ? candCpu : candCpu.map((t) => t.to(device));
      if (device !== 'cpu') owned.push(...candIn);
      poisonAllocator(
        refOut.map((t) => t.byteLength),
        device,
      );
      const candOut = [entry.kernel(candIn, cs.attrs ?? {})].flat();
      owned.push(...candOut);
      if (candOut.length !== refOut.length) throw new Error(`${candOut.length} outputs, expected ${refOut.length}`);
      if (before) {
        candCpu.forEach((t, i) => {
          const now = values(device === 'cpu' ? t : candIn[i]!);
          const was = before[i]!;
          for (let j = 0; j < was.length; j++) {
            if (!Object.is(now[j], was[j]) && !(Number.isNaN(now[j]!) && Number.isNaN(was[j]!))) {
              throw new Error(`input #${i} was modified at element ${j}`);
            }
          }
        });
      }
      let worst = 0;
      const messages: string[] = [];
      refOut.forEach((want, i) => {
        const tol = tolerances[want.dtype];
        const { score, message } = compare(candOut[i]!, want, tol);
        if (score > worst) worst = score;
        if (score > 1) messages.push(`output #${i}: ${message}`);
      });
      result.score = worst;
      result.ok = worst <= 1;
      result.message = result.ok ? `max error ${worst.toFixed(3)} of allowed` : messages.join('; ');
    } catch (e) {
      result.message = `threw: ${(e as Error).message}`;
    } finally {
      for (const t of new Set(owned)) if (!t.isDisposed) t.dispose();
    }
  });
  return results;
}

/** {@link runConformance}, throwing one error that lists every failing case. */
export function assertConformance(opts: ConformanceOptions = {}): ConformanceResult[] {
  const results = runConformance(opts);
  const bad = results.filter((r) => !r.ok);
  if (bad.length) {
    throw new Error(
      `conformance: ${bad.length} of ${results.length} cases failed:\n` +
        bad.map((r) => `  ${r.op} (${r.name}, ${r.dtype}, ${r.source}): ${r.message}`).join('\n'),
    );
  }
  return results;
}

/** Ops that have a kernel on `backend` in `registry` but no conformance case. */
export function uncoveredOps(
  registry: Registry = defaultRegistry(),
  backend = 'cpu',
  extra: readonly ConformanceCase[] = [],
): string[] {
  const covered = new Set([...conformanceCases(), ...extra].map((c) => c.op));
  return registry.ops(backend).filter((op) => !covered.has(op));
}
