import { describe, expect, it } from 'vitest';
import { attention, memoryStats, runBackward, type Tensor, tensor, tidy } from '../src/index.js';
import { expectClose } from './helpers/compare.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const int32 = (values: number[]) => tensor(values, { dtype: 'int32' });

describe('attention', () => {
  const cases = loadFixture('attention');

  it('has fixtures for GQA ratios 1, 2, 3, causal and full, float32 and bfloat16', () => {
    for (const tag of ['f32', 'bf16']) {
      for (const hkv of [6, 3, 2]) {
        for (const mode of ['causal', 'full']) {
          for (const shape of ['b2_s7', 'b1_s13']) {
            expect(
              cases.some((c) => c.name.startsWith(`${tag}_${shape}_hq6_hkv${hkv}_`) && c.name.endsWith(mode)),
            ).toBe(true);
          }
        }
      }
      expect(cases.some((c) => c.name.startsWith(`${tag}_packed_t13_cu`))).toBe(true);
    }
  });

  for (const c of cases) {
    it(`matches PyTorch: ${c.name}`, () => {
      checkCase(c, ({ q, k, v, cuSeqlens }, attrs) =>
        attention(q!, k!, v!, { causal: attrs.causal, scale: attrs.scale, cuSeqlens }),
      );
    });
  }

  const configs: { name: string; q: number[]; kv: number[]; causal: boolean; cu?: number[]; scale?: number }[] = [
    { name: 'batched causal GQA 2', q: [2, 5, 4, 3], kv: [2, 5, 2, 3], causal: true },
    { name: 'batched full GQA 3', q: [1, 4, 3, 2], kv: [1, 4, 1, 2], causal: false, scale: 0.9 },
    { name: 'cross attention (4 queries, 6 keys)', q: [1, 4, 2, 3], kv: [1, 6, 2, 3], causal: false },
    { name: 'packed cuSeqlens causal', q: [7, 4, 3], kv: [7, 2, 3], causal: true, cu: [0, 3, 4, 7] },
    { name: 'packed cuSeqlens full', q: [6, 2, 3], kv: [6, 1, 3], causal: false, cu: [0, 2, 6] },
  ];
  for (const cfg of configs) {
    it(`passes a float64 gradcheck for q, k, v: ${cfg.name}`, () => {
      const cu = cfg.cu ? int32(cfg.cu) : undefined;
      gradcheck(
        (q, k, v) => attention(q!, k!, v!, { causal: cfg.causal, scale: cfg.scale, cuSeqlens: cu }),
        [randomF64(cfg.q, 1, 2), randomF64(cfg.kv, 2, 2), randomF64(cfg.kv, 3, 2)],
        { names: ['q', 'k', 'v'] },
      );
      cu?.dispose();
    });
  }

  for (const causal of [true, false]) {
    it(`with cuSeqlens equals running each packed sequence on its own (${causal ? 'causal' : 'full'})`, () => {
      tidy(() => {
        const cu = [0, 4, 5, 12, 12, 15];
        const T = 15;
        const q = randomF64([T, 6, 4], 21).requiresGrad_();
        const k = randomF64([T, 2, 4], 22).requiresGrad_();
        const v = randomF64([T, 2, 4], 23).requiresGrad_();
        const g = randomF64([T, 6, 4], 24);
        const out = attention(q, k, v, { causal, cuSeqlens: int32(cu) });
        runBackward([out], [g]);
        for (let s = 0; s + 1 < cu.length; s++) {
          const [a, b] = [cu[s]!, cu[s + 1]!];
          if (a === b) continue;
          const qs = q.detach().slice0(a, b).requiresGrad_();
          const ks = k.detach().slice0(a, b).requiresGrad_();
          const vs = v.detach().slice0(a, b).requiresGrad_();
          const os = attention(qs, ks, vs, { causal });
          runBackward([os], [g.slice0(a, b)]);
          expectClose(os, out.detach().slice0(a, b), 1e-12, `sequence ${s} output`);
          expectClose(qs.grad!, q.grad!.slice0(a, b), 1e-12, `sequence ${s} dq`);
          expectClose(ks.grad!, k.grad!.slice0(a, b), 1e-12, `sequence ${s} dk`);
          expectClose(vs.grad!, v.grad!.slice0(a, b), 1e-12, `sequence ${s} dv`);
          for (const t of [qs, ks, vs]) t.grad!.dispose();
        }
        for (const t of [q, k, v]) t.grad!.dispose();
      });
    });
  }

  it('a packed sequence without cuSeqlens equals the batched layout with B = 1', () => {
    tidy(() => {
      const q = randomF64([9, 4, 5], 31);
      const k = randomF64([9, 2, 5], 32);
      const v = randomF64([9, 2, 5], 33);
      const packed = attention(q, k, v);
      const batched = attention(q.reshape(1, 9, 4, 5), k.reshape(1, 9, 2, 5), v.reshape(1, 9, 2, 5));
      expectClose(batched.reshape(9, 4, 5), packed, 0);
    });
  });

  it('keeps only the output and a per-row logsumexp between forward and backward (no [S, S])', () => {
    tidy(() => {
      const [B, S, H, D] = [1, 64, 2, 4];
      const q = randomF64([B, S, H, D], 41).requiresGrad_();
      const k = randomF64([B, S, H, D], 42).requiresGrad_();
      const v = randomF64([B, S, H, D], 43).requiresGrad_();
      const before = memoryStats().liveBytes;
      const out = attention(q, k, v);
      const held = memoryStats().liveBytes - before;
      expect(held).toBe(B * S * H * D * 8 + B * S * H * 8); // out + lse (float64 here)
      runBackward([out], [randomF64([B, S, H, D], 44)]);
      for (const t of [q, k, v]) t.grad!.dispose();
    });
  });

  it('output has the shape and dtype of q', () => {
    tidy(() => {
      const q = tensor(
        new Float32Array(2 * 3 * 4 * 8).map((_, i) => Math.sin(i)),
        { shape: [2, 3, 4, 8], dtype: 'bfloat16' },
      );
      const kv = tensor(
        new Float32Array(2 * 3 * 2 * 8).map((_, i) => Math.cos(i)),
        { shape: [2, 3, 2, 8], dtype: 'bfloat16' },
      );
      const out = attention(q, kv, kv);
      expect(out.shape).toEqual([2, 3, 4, 8]);
      expect(out.dtype).toBe('bfloat16');
    });
  });

  it('rejects bad arguments with clear errors', () => {
    tidy(() => {
      const q = randomF64([1, 4, 6, 2], 1);
      const k4 = randomF64([1, 4, 4, 2], 2);
      expect(() => attention(q, k4, k4)).toThrow(/query heads \(6\) must be a multiple of kv heads \(4\)/);
      const k = randomF64([1, 5, 2, 2], 3);
      expect(() => attention(q, k, k)).toThrow(/causal attention needs as many keys as queries/);
      expect(() => attention(q, k, k, { causal: false, cuSeqlens: int32([0, 4]) })).toThrow(/packed layout/);
      const p = randomF64([5, 2, 2], 4);
      expect(() => attention(p, p, p, { cuSeqlens: int32([0, 2, 4]) })).toThrow(/end at the token count 5/);
      expect(() => attention(p, p, p, { cuSeqlens: int32([0, 3, 2, 5]) })).toThrow(/non-decreasing/);
      expect(() => attention(p, p, p, { cuSeqlens: tensor([0, 5]) })).toThrow(/cuSeqlens must be int32/);
      expect(() => attention(p, randomF64([5, 2, 3], 5), randomF64([5, 2, 3], 6))).toThrow(/head dim/);
      expect(() => attention(p, p.reshape(1, 5, 2, 2), p)).toThrow(/rank of q/);
    });
  });

  it('leaves no tensors or bytes behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const q: Tensor = randomF64([2, 3, 2, 4], 7).requiresGrad_();
      const kv = randomF64([2, 3, 1, 4], 8).requiresGrad_();
      runBackward([attention(q, kv, kv)], [randomF64([2, 3, 2, 4], 9)]);
      q.grad?.dispose();
      kv.grad?.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});
