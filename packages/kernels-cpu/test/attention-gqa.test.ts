// The native attention with several query heads of a GQA group stacked into one product (native/attention.cc),
// forward and backward, against core's reference at sizes the core conformance cases do not reach: several
// 64-row query blocks with a partial last one, groups of 2, 3 and 4 heads, packed sequences of uneven lengths,
// cross-attention lengths (Sq != Sk), causal and not. Run with 1 thread (each kv head's dK/dV owned by one task) and
// with 8 (too few kv heads per thread: query blocks split over tasks with private dK/dV, summed afterwards). The
// forward runs again with key blocks of 37 and 64 keys: its online softmax then rescales across many blocks.
import { createRegistry, type Tensor, tensor } from '@omnitrain/core';
import { type CaseRandom, type ConformanceCase, referenceKernelIn, runConformance } from '@omnitrain/core/testing';
import { KERNEL_SOURCE, native, nativeStatus, plugin, setNumThreads } from '@omnitrain/kernels-cpu';
import { describe, expect, it } from 'vitest';
import { allowNoNative, status } from './native-available.js';

const registry = createRegistry().use(plugin);
const skip = !status.available && allowNoNative;

const SHAPES: { name: string; q: number[]; kv: number[]; cu?: number[]; causal: boolean }[] = [
  { name: 'B2 S200 Hq8 Hkv2 D32 causal (stacks of 4)', q: [2, 200, 8, 32], kv: [2, 200, 2, 32], causal: true },
  { name: 'B1 S130 Hq6 Hkv2 D16 (stacks of 3)', q: [1, 130, 6, 16], kv: [1, 130, 2, 16], causal: false },
  { name: 'B1 S150 Hq4 Hkv4 D24 causal (no GQA)', q: [1, 150, 4, 24], kv: [1, 150, 4, 24], causal: true },
  { name: 'B2 Sq70 Sk140 Hq4 Hkv2 D8 cross', q: [2, 70, 4, 8], kv: [2, 140, 2, 8], causal: false },
  {
    name: 'packed [0,130,137,260] Hq4 Hkv1 D16 causal (stacks of 4)',
    q: [260, 4, 16],
    kv: [260, 1, 16],
    cu: [0, 130, 137, 260],
    causal: true,
  },
];

const cases: ConformanceCase[] = [];
for (const a of SHAPES) {
  const attrs = { causal: a.causal, scale: 1 / Math.sqrt(a.q[a.q.length - 1]!) };
  const qkv = (r: CaseRandom): Tensor[] => {
    const t = [r.tensor(a.q, 'float32', -2, 2), r.tensor(a.kv, 'float32', -2, 2), r.tensor(a.kv)];
    return a.cu ? [...t, tensor(a.cu, { dtype: 'int32', shape: [a.cu.length] })] : t;
  };
  cases.push({ op: 'attention', name: a.name, dtype: 'float32', inputs: qkv, attrs });
  cases.push({
    op: 'attentionBackward',
    name: a.name,
    dtype: 'float32',
    inputs: (r) => {
      const [q, k, v, cu] = qkv(r) as [Tensor, Tensor, Tensor, Tensor | undefined];
      const [o, lse] = referenceKernelIn(registry, 'attention')(cu ? [q, k, v, cu] : [q, k, v], attrs) as Tensor[];
      const g = r.tensor(a.q);
      return cu ? [q, k, v, o!, lse!, g, cu] : [q, k, v, o!, lse!, g];
    },
    attrs,
  });
}

describe('native attention with stacked GQA heads', () => {
  const run = (threads: number) => {
    if (skip) return [];
    const before = nativeStatus().threads!;
    setNumThreads(threads);
    try {
      return runConformance({ registry, ops: ['attention', 'attentionBackward'], extraCases: cases })
        .slice(-cases.length)
        .map((r) => ({ ...r, name: `${r.name}, ${threads} thread(s)` }));
    } finally {
      setNumThreads(before);
    }
  };
  const results = [...run(1), ...run(8)];

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name}`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
    expect(r.source).toBe(KERNEL_SOURCE);
  });
});

describe('native attention forward: the online softmax across key blocks', () => {
  const forward = cases.filter((c) => c.op === 'attention');
  const run = (keyBlock: number, threads: number) => {
    if (skip) return [];
    const before = nativeStatus().threads!;
    setNumThreads(threads);
    native()!.setAttentionKeyBlock(keyBlock);
    try {
      return runConformance({ registry, ops: ['attention'], extraCases: forward })
        .slice(-forward.length)
        .map((r) => ({ ...r, name: `${r.name}, key blocks of ${keyBlock}, ${threads} thread(s)` }));
    } finally {
      native()!.setAttentionKeyBlock(0);
      setNumThreads(before);
    }
  };
  // 37: blocks that split query blocks and segments anywhere; 64: one block per causal query block's diagonal.
  const results = [...run(37, 1), ...run(37, 8), ...run(64, 2)];

  it.skipIf(skip).each(results.map((r) => [`${r.op} ${r.name}`, r] as const))('%s', (_, r) => {
    expect(r.ok, r.message).toBe(true);
    expect(r.source).toBe(KERNEL_SOURCE);
  });

  it.skipIf(skip)('many key blocks and one give the same output and logsumexp (to float32 rounding)', () => {
    const n = native()!;
    const [S, H, D] = [300, 2, 16];
    const mk = (seed: number) =>
      tensor(
        Float32Array.from({ length: S * H * D }, (_, i) => Math.sin(i * 0.37 + seed) * 3),
        { shape: [1, S, H, D] },
      );
    const [q, k, v] = [mk(1), mk(2), mk(3)];
    const fwd = (keyBlock: number) => {
      n.setAttentionKeyBlock(keyBlock);
      try {
        return registry.kernel('attention', 'cpu')([q, k, v], { causal: true, scale: 0.25 }) as Tensor[];
      } finally {
        n.setAttentionKeyBlock(0);
      }
    };
    const one = fwd(0);
    const many = fwd(29);
    for (const i of [0, 1]) {
      const a = one[i]!.raw() as Float32Array;
      const b = many[i]!.raw() as Float32Array;
      let err = 0;
      for (let j = 0; j < a.length; j++) err = Math.max(err, Math.abs(a[j]! - b[j]!) / (1 + Math.abs(a[j]!)));
      expect(err, i === 0 ? 'output' : 'logsumexp').toBeLessThan(2e-6);
    }
    for (const t of [q, k, v, ...one, ...many]) t.dispose();
  });
});
