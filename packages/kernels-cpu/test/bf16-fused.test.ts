// The fused and in-place native kernels on bfloat16 operands (alone and mixed with float32 as the reference
// allows): conformance against core's reference kernels, a probe that none of these cases falls back to the
// reference, no leaked temporaries, and a bfloat16 training step of a small transformer block.
import {
  createRegistry,
  type DType,
  type Kernel,
  manualSeed,
  memoryStats,
  optim,
  type Registry,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, referenceKernelIn, runConformance } from '@omnitrain/core/testing';
import { NATIVE_KERNELS, native, plugin } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { caseInputs } from './case-inputs.js';
import { allowNoNative, status } from './native-available.js';
import { cfg, TinyBlock } from './tiny-block.js';

const F: DType = 'float32';
const B: DType = 'bfloat16';
const registry = createRegistry().use(plugin);
const skip = !status.available && allowNoNative;

const cases: ConformanceCase[] = [];
const addCase = (c: ConformanceCase) => cases.push(c);

/** Outputs `keep` of core's reference kernel (saved statistics for backward cases); the others are disposed. */
function reference(op: string, ins: Tensor[], attrs: object, keep: number[]): Tensor[] {
  const outs = [referenceKernelIn(registry, op)(ins, attrs)].flat();
  outs.forEach((t, i) => {
    if (!keep.includes(i)) t.dispose();
  });
  return keep.map((i) => outs[i]!);
}

// ---- rmsNorm: bf16 x and weight; float32 x with a bf16 weight; bf16 x with a float32 weight (the reference's
// rounding of x * rstd to bf16 shows in the float32 output and in the float32 weight gradient).
for (const [xd, wd, shape] of [
  [B, B, [3, 5, 37]],
  [B, B, [2, 1031]],
  [F, B, [4, 33]],
  [B, F, [4, 33]],
] as [DType, DType, number[]][]) {
  const d = shape[shape.length - 1]!;
  addCase({
    op: 'rmsNorm',
    name: `${JSON.stringify(shape)} x ${xd} w ${wd}`,
    dtype: B,
    inputs: (r) => [r.tensor(shape, xd), r.tensor([d], wd, 0.5, 1.5)],
    attrs: { eps: 1e-6 },
  });
  addCase({
    op: 'rmsNormBackward',
    name: `${JSON.stringify(shape)} x ${xd} w ${wd}`,
    dtype: B,
    inputs: (r) => {
      const x = r.tensor(shape, xd);
      const w = r.tensor([d], wd, 0.5, 1.5);
      const [rstd] = reference('rmsNorm', [x, w], { eps: 1e-6 }, [1]);
      return [r.tensor(shape, xd), x, w, rstd!];
    },
    attrs: { eps: 1e-6 },
  });
}

// ---- layerNorm: weight+bias / plain / bias only, bf16 and bf16 x with float32 affine parameters.
for (const [name, hasWeight, hasBias, pd] of [
  ['weight+bias', true, true, B],
  ['plain', false, false, B],
  ['bias only', false, true, B],
  ['weight+bias f32', true, true, F],
  ['weight only f32', true, false, F],
] as [string, boolean, boolean, DType][]) {
  const shape = [3, 5, 71];
  const attrs = { eps: 1e-5, hasWeight, hasBias };
  const params = (r: CaseRandom) => [
    ...(hasWeight ? [r.tensor([71], pd, 0.5, 1.5)] : []),
    ...(hasBias ? [r.tensor([71], hasWeight ? pd : B)] : []),
  ];
  addCase({
    op: 'layerNorm',
    name: `${JSON.stringify(shape)} ${name}`,
    dtype: B,
    inputs: (r) => [r.tensor(shape, B, -2, 3), ...params(r)],
    attrs,
  });
  addCase({
    op: 'layerNormBackward',
    name: `${JSON.stringify(shape)} ${name}`,
    dtype: B,
    inputs: (r) => {
      const x = r.tensor(shape, B, -2, 3);
      const p = params(r);
      const [mean, rstd] = reference('layerNorm', [x, ...p], attrs, [1, 2]);
      for (const t of p.slice(hasWeight ? 1 : 0)) t.dispose(); // the backward takes the weight only
      return [r.tensor(shape, B), x, mean!, rstd!, ...p.slice(0, hasWeight ? 1 : 0)];
    },
    attrs,
  });
}

// ---- swiglu: bf16, odd sizes, and a bf16 gate with a float32 up (output in the gate's dtype).
for (const [gd, ud, shape] of [
  [B, B, [3, 1001]],
  [B, F, [7, 19]],
  [F, B, [5, 13]],
] as [DType, DType, number[]][]) {
  addCase({
    op: 'swiglu',
    name: `${JSON.stringify(shape)} gate ${gd} up ${ud}`,
    dtype: B,
    inputs: (r) => [r.tensor(shape, gd, -4, 4), r.tensor(shape, ud)],
  });
  addCase({
    op: 'swigluBackward',
    name: `${JSON.stringify(shape)} gate ${gd} up ${ud}`,
    dtype: B,
    inputs: (r) => [r.tensor(shape, gd), r.tensor(shape, gd, -4, 4), r.tensor(shape, ud)],
  });
}

// ---- rope / ropeBackward.
const invFreq = (d: number) => Array.from({ length: d / 2 }, (_, j) => Math.fround(1 / 10000 ** ((2 * j) / d)));
for (const op of ['rope', 'ropeBackward']) {
  addCase({
    op,
    name: '[2,7,3,10] positions [2,7] bf16',
    dtype: B,
    inputs: (r) => [r.tensor([2, 7, 3, 10], B), r.tensor([2, 7], 'int32', 0, 300)],
    attrs: { invFreq: invFreq(10) },
  });
  addCase({
    op,
    name: 'packed [33,3,64] bf16',
    dtype: B,
    inputs: (r) => [r.tensor([33, 3, 64], B), r.tensor([33], 'int32', 0, 4000)],
    attrs: { invFreq: invFreq(64) },
  });
}

// ---- In-place: add_, mul_ (bf16 destinations written in their own storage), adamwStep.
for (const [dd, sd, shape, srcShape, alpha] of [
  [B, B, [1031], [1031], -0.5],
  [B, B, [3, 5], [1], 1],
  [B, F, [7, 9], [7, 9], 2],
  [F, B, [7, 9], [7, 9], 0.25],
] as [DType, DType, number[], number[], number][]) {
  addCase({
    op: 'add_',
    name: `${JSON.stringify(shape)} ${dd} += ${alpha} * ${JSON.stringify(srcShape)} ${sd}`,
    dtype: B,
    mutates: true,
    inputs: (r) => [r.tensor(shape, dd), r.tensor(srcShape, sd)],
    attrs: { alpha },
  });
}
addCase({
  op: 'mul_',
  name: '[1031] bf16 * 0.3',
  dtype: B,
  mutates: true,
  inputs: (r) => [r.tensor([1031], B)],
  attrs: { value: 0.3 },
});
const adamw = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3, maximize: false };
for (const [name, gd, sd, extra] of [
  ['p bf16 g bf16 moments f32', B, F, {}],
  ['p bf16 g f32 moments f32 maximize', F, F, { maximize: true }],
  ['all bf16', B, B, {}],
] as [string, DType, DType, object][]) {
  addCase({
    op: 'adamwStep',
    name: `[37,5] ${name}`,
    dtype: B,
    mutates: true,
    inputs: (r) => [
      r.tensor([37, 5], B),
      r.tensor([37, 5], gd),
      r.tensor([37, 5], sd, -0.1, 0.1),
      r.tensor([37, 5], sd, 0, 0.01),
    ],
    attrs: { ...adamw, amsgrad: false, ...extra },
  });
}

// ---- embedding.
addCase({
  op: 'embedding',
  name: 'ids [3,5] weight [17,9] bf16',
  dtype: B,
  inputs: (r) => [r.tensor([3, 5], 'int32', 0, 17), r.tensor([17, 9], B)],
});
addCase({
  op: 'embeddingBackward',
  name: 'ids [3,5] grad [3,5,9] V=17 bf16',
  dtype: B,
  inputs: (r) => [r.tensor([3, 5], 'int32', 0, 17), r.tensor([3, 5, 9], B)],
  attrs: { numEmbeddings: 17 },
});

// ---- crossEntropy and fusedLinearCrossEntropy (loss in the logits'/hidden's dtype, lse float32).
const ce = { ignoreIndex: -100 };
const labelsOf = (r: CaseRandom, n: number, vocab: number) => {
  const t = r.tensor([n], 'int32', 0, vocab);
  (t.raw() as Int32Array)[3] = -100;
  return t;
};
for (const reduction of ['mean', 'sum', 'none'] as const) {
  const attrs = { ...ce, reduction };
  addCase({
    op: 'crossEntropy',
    name: `[13,37] bf16 ${reduction}`,
    dtype: B,
    inputs: (r) => [r.tensor([13, 37], B, -5, 5), labelsOf(r, 13, 37)],
    attrs,
  });
  addCase({
    op: 'crossEntropyBackward',
    name: `[13,37] bf16 ${reduction}`,
    dtype: B,
    inputs: (r) => {
      const x = r.tensor([13, 37], B, -5, 5);
      const y = labelsOf(r, 13, 37);
      const [lse] = reference('crossEntropy', [x, y], attrs, [1]);
      return [x, y, lse!, reduction === 'none' ? r.tensor([13], B) : tensor([0.7], { shape: [], dtype: B })];
    },
    attrs,
  });
  for (const wd of [B, F]) {
    addCase({
      op: 'fusedLinearCrossEntropy',
      name: `h [13,10] bf16 w [37,10] ${wd} chunk 4 ${reduction}`,
      dtype: B,
      inputs: (r) => [r.tensor([13, 10], B), r.tensor([37, 10], wd), labelsOf(r, 13, 37)],
      attrs: { ...attrs, chunkSize: 4 },
    });
  }
}
for (const [needHidden, needWeight, wd] of [
  [true, true, B],
  [true, false, B],
  [false, true, B],
  [true, true, F],
] as [boolean, boolean, DType][]) {
  const attrs = { ...ce, reduction: 'mean', chunkSize: 5, needHidden, needWeight };
  addCase({
    op: 'fusedLinearCrossEntropyBackward',
    name: `h [13,10] bf16 w [37,10] ${wd} hidden=${needHidden} weight=${needWeight}`,
    dtype: B,
    inputs: (r) => {
      const h = r.tensor([13, 10], B);
      const w = r.tensor([37, 10], wd);
      const y = labelsOf(r, 13, 37);
      const [lse] = reference('fusedLinearCrossEntropy', [h, w, y], attrs, [1]);
      return [h, w, y, lse!, tensor([1.3], { shape: [], dtype: B })];
    },
    attrs,
  });
}

// ---- groupedMatmul (an empty group included), bf16 and bf16 x with float32 experts.
for (const wd of [B, F]) {
  const sizes = () => tensor([4, 0, 9, 2], { dtype: 'int32' });
  addCase({
    op: 'groupedMatmul',
    name: `x [15,11] bf16 w [4,7,11] ${wd}`,
    dtype: B,
    inputs: (r) => [r.tensor([15, 11], B), r.tensor([4, 7, 11], wd), sizes()],
  });
  addCase({
    op: 'groupedMatmulBackward',
    name: `x [15,11] bf16 w [4,7,11] ${wd}`,
    dtype: B,
    inputs: (r) => [r.tensor([15, 7], B), r.tensor([15, 11], B), r.tensor([4, 7, 11], wd), sizes()],
  });
}

// ---- attention: batched GQA, packed with cuSeqlens; backward with the reference's saved lse.
const attnCases: { name: string; q: number[]; kv: number[]; cu?: number[]; causal: boolean }[] = [
  { name: 'B2 S9 Hq4 Hkv2 D8 causal', q: [2, 9, 4, 8], kv: [2, 9, 2, 8], causal: true },
  { name: 'B2 Sq5 Sk11 Hq3 Hkv1 D4', q: [2, 5, 3, 4], kv: [2, 11, 1, 4], causal: false },
  { name: 'packed [0,5,13,41] Hq4 Hkv2 D16 causal', q: [41, 4, 16], kv: [41, 2, 16], cu: [0, 5, 13, 41], causal: true },
];
for (const a of attnCases) {
  const attrs = { causal: a.causal, scale: 1 / Math.sqrt(a.q[a.q.length - 1]!) };
  const qkv = (r: CaseRandom) => {
    const t = [r.tensor(a.q, B, -2, 2), r.tensor(a.kv, B, -2, 2), r.tensor(a.kv, B)];
    return a.cu ? [...t, tensor(a.cu, { dtype: 'int32' })] : t;
  };
  addCase({ op: 'attention', name: `${a.name} bf16`, dtype: B, inputs: qkv, attrs });
  addCase({
    op: 'attentionBackward',
    name: `${a.name} bf16`,
    dtype: B,
    inputs: (r) => {
      const [q, k, v, cu] = qkv(r) as [Tensor, Tensor, Tensor, Tensor | undefined];
      const [o, lse] = reference('attention', cu ? [q, k, v, cu] : [q, k, v], attrs, [0, 1]);
      const g = r.tensor(a.q, B);
      return cu ? [q, k, v, o!, lse!, g, cu] : [q, k, v, o!, lse!, g];
    },
    attrs,
  });
}

// ---- softmax / logSoftmax over the last dim; matmul with one bf16 operand (output in the first's dtype).
for (const op of ['softmax', 'logSoftmax']) {
  addCase({ op, name: '[5,37] bf16', dtype: B, inputs: (r) => [r.tensor([5, 37], B, -4, 4)], attrs: { dim: 1 } });
  addCase({
    op,
    name: '[3,4,1001] bf16',
    dtype: B,
    inputs: (r) => [r.tensor([3, 4, 1001], B, -8, 8)],
    attrs: { dim: 2 },
  });
}
for (const [ad, bd] of [
  [B, F],
  [F, B],
]) {
  addCase({
    op: 'matmul',
    name: `[2,9,21] ${ad} x [21,7] ${bd}`,
    dtype: B,
    inputs: (r) => [r.tensor([2, 9, 21], ad), r.tensor([21, 7], bd)],
  });
}

describe('native fused and in-place kernels on bfloat16', () => {
  const ops = [...new Set(cases.map((c) => c.op))];
  const results = skip ? [] : runConformance({ registry, ops, extraCases: cases }).slice(-cases.length);

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name}`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
  });

  it.skipIf(skip)('computes these cases natively (no fallback to the reference) and frees its temporaries', () => {
    const n = native()!;
    const fallbacks: string[] = [];
    const leaks: string[] = [];
    cases.forEach((c, i) => {
      const ins = caseInputs(c, i);
      const before = memoryStats('cpu');
      const out = NATIVE_KERNELS[c.op]!(n, ins, c.attrs ?? {});
      const outs = [out ?? []].flat().filter((t) => !ins.includes(t));
      const after = memoryStats('cpu');
      const made = outs.reduce((s, t) => s + t.byteLength, 0);
      if (after.liveTensors !== before.liveTensors + outs.length || after.liveBytes !== before.liveBytes + made) {
        leaks.push(`${c.op} ${c.name}`);
      }
      if (!out) fallbacks.push(`${c.op} ${c.name}`);
      for (const t of [...ins, ...outs]) if (!t.isDisposed) t.dispose();
    });
    expect(fallbacks).toEqual([]);
    expect(leaks).toEqual([]);
  });

  it.skipIf(skip)('in-place ops write the bfloat16 result into the tensors own storage', () => {
    const n = native()!;
    const p = tensor([1, -2, 3.5], { dtype: B });
    const storage = p.raw().buffer;
    const g = tensor([0.5, 0.25, -1], { dtype: B });
    const m = tensor([0, 0, 0], { dtype: B });
    const v = tensor([0, 0, 0], { dtype: F });
    expect(NATIVE_KERNELS.add_!(n, [p, g], { alpha: 2 })).toBe(p);
    expect(Array.from(p.toTypedArray())).toEqual([2, -1.5, 1.5]);
    expect(NATIVE_KERNELS.mul_!(n, [p], { value: -1 })).toBe(p);
    expect(Array.from(p.toTypedArray())).toEqual([-2, 1.5, -1.5]);
    expect(NATIVE_KERNELS.adamwStep!(n, [p, g, m, v], { ...adamw, step: 1, amsgrad: false })).toBe(p);
    expect(p.raw().buffer).toBe(storage);
    expect((m.raw() as Uint16Array).some((x) => x !== 0)).toBe(true);
    expect((v.raw() as Float32Array).some((x) => x !== 0)).toBe(true);
    for (const t of [p, g, m, v]) t.dispose();
  });
});

// ---- A bfloat16 training step of a small transformer block.
const FUSED = [
  'rmsNorm',
  'rmsNormBackward',
  'layerNorm',
  'layerNormBackward',
  'swiglu',
  'swigluBackward',
  'rope',
  'ropeBackward',
  'attention',
  'attentionBackward',
  'embedding',
  'embeddingBackward',
  'fusedLinearCrossEntropy',
  'fusedLinearCrossEntropyBackward',
  'matmul',
  'add_',
  'mul_',
  'adamwStep',
];

/** The registry with a counter between the native kernels and the reference: counts each fused op's fallbacks. */
function probed(r: Registry): Map<string, number> {
  const calls = new Map<string, number>();
  for (const op of FUSED) {
    const ref: Kernel = referenceKernelIn(r, op);
    r.registerKernel(
      'cpu',
      op,
      (ins, attrs) => {
        calls.set(op, (calls.get(op) ?? 0) + 1);
        return ref(ins, attrs);
      },
      { priority: 5, source: 'bf16-fused test probe' },
    );
  }
  return calls;
}

function trainBf16(r: Registry, steps: number) {
  return withRegistry(r, () => {
    manualSeed(3);
    const model = new TinyBlock('layer').to('bfloat16');
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
    const n = cfg.batch * cfg.seq;
    const ints = (f: (i: number) => number) =>
      tensor(
        Array.from({ length: n }, (_, i) => f(i)),
        { dtype: 'int32', shape: [cfg.batch, cfg.seq] },
      );
    const ids = ints((i) => (i * 7 + 3) % cfg.vocab);
    const labels = ints((i) => (i * 5 + 1) % cfg.vocab);
    const pos = ints((i) => i % cfg.seq);
    const losses: number[] = [];
    const live: { tensors: number; bytes: number }[] = [];
    for (let i = 0; i < steps; i++) {
      losses.push(
        tidy(() => {
          const l = model.loss(ids, pos, labels);
          l.backward();
          return l.item();
        }),
      );
      opt.step();
      opt.zeroGrad();
      const s = memoryStats('cpu');
      live.push({ tensors: s.liveTensors, bytes: s.liveBytes });
    }
    for (const t of [ids, labels, pos]) t.dispose();
    return { losses, live };
  });
}

describe('a bfloat16 training step on the native backend', () => {
  it.skipIf(skip)('matches the reference, runs the fused ops natively and leaks nothing', () => {
    const ref = trainBf16(createRegistry(), 3);
    const r = createRegistry().use(plugin);
    const fallbacks = probed(r);
    const nat = trainBf16(r, 3);
    for (let i = 0; i < 3; i++) expect(Math.abs(nat.losses[i]! - ref.losses[i]!)).toBeLessThan(0.05);
    expect(ref.losses[2]!).toBeLessThan(ref.losses[0]!);
    expect(nat.losses[2]!).toBeLessThan(nat.losses[0]!);
    expect(Object.fromEntries(fallbacks)).toEqual({});
    expect(nat.live[2]).toEqual(nat.live[1]);
  });
});
