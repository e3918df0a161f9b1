import { describe, expect, it } from 'vitest';
import {
  crossEntropy,
  fusedLinearCrossEntropy,
  getRegistry,
  linear,
  memoryStats,
  runBackward,
  type Tensor,
  tensor,
  tidy,
} from '../src/index.js';
import { expectClose } from './helpers/compare.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const int32 = (values: number[]) => tensor(values, { dtype: 'int32' });

// Scalar losses are recorded as [1] by the fixture generator (see tools/fixtures/gen_cross_entropy.py).
const as1 = (loss: Tensor) => (loss.ndim === 0 ? loss.reshape(1) : loss);

function lcgLabels(n: number, vocab: number, seed: number, ignoreEvery = 0): Tensor {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(ignoreEvery && i % ignoreEvery === ignoreEvery - 1 ? -100 : s % vocab);
  }
  return int32(out);
}

function f32(t: Tensor): Tensor {
  return tensor(t.toTypedArray(), { shape: t.shape, dtype: 'float32' });
}

/** Loss and gradients of `fn(hidden, weight)` w.r.t. fresh float32 leaves. */
function lossAndGrads(fn: (h: Tensor, w: Tensor) => Tensor, hidden: Tensor, weight: Tensor, gradOut?: Tensor) {
  const h = hidden.detach().requiresGrad_();
  const w = weight.detach().requiresGrad_();
  const loss = fn(h, w);
  runBackward([loss], gradOut ? [gradOut] : undefined);
  return { loss, gh: h.grad!, gw: w.grad! };
}

describe('fusedLinearCrossEntropy', () => {
  const cases = loadFixture('fused_linear_cross_entropy');

  for (const c of cases) {
    it(`matches PyTorch: ${c.name}`, () => {
      checkCase(c, ({ hidden, weight, labels }, attrs) =>
        as1(
          fusedLinearCrossEntropy(hidden!, weight!, labels!, {
            ignoreIndex: attrs.ignoreIndex,
            reduction: attrs.reduction,
            chunkSize: attrs.chunkSize,
          }),
        ),
      );
    });
  }

  for (const reduction of ['mean', 'sum', 'none'] as const) {
    it(`passes a float64 gradcheck for hidden and weight (${reduction}, chunks of 2, ignored rows)`, () => {
      const y = int32([3, -100, 0, 8, -100]);
      gradcheck(
        (h, w) => fusedLinearCrossEntropy(h!, w!, y, { reduction, chunkSize: 2 }),
        [randomF64([5, 4], 1, 2), randomF64([9, 4], 2, 2)],
        { names: ['hidden', 'weight'] },
      );
      y.dispose();
    });
  }

  for (const reduction of ['mean', 'sum', 'none'] as const) {
    for (const chunkSize of [1, 3, 7, 1024]) {
      it(`equals crossEntropy(linear(...)) in loss and gradients (${reduction}, chunkSize ${chunkSize})`, () => {
        tidy(() => {
          const hidden = f32(randomF64([13, 10], 3, 2));
          const weight = f32(randomF64([37, 10], 4, 1));
          const y = lcgLabels(13, 37, 5, 4);
          const g = reduction === 'none' ? f32(randomF64([13], 6)) : undefined;
          const fused = lossAndGrads(
            (h, w) => fusedLinearCrossEntropy(h, w, y, { reduction, chunkSize }),
            hidden,
            weight,
            g,
          );
          const ref = lossAndGrads((h, w) => crossEntropy(linear(h, w), y, { reduction }), hidden, weight, g);
          expectClose(fused.loss, ref.loss, 1e-6, 'loss');
          expectClose(fused.gh, ref.gh, 1e-6, 'grad hidden');
          expectClose(fused.gw, ref.gw, 1e-6, 'grad weight');
          for (const t of [fused.gh, fused.gw, ref.gh, ref.gw]) t.dispose();
        });
      });
    }
  }

  it('computes only the gradients that are needed', () => {
    tidy(() => {
      const hidden = f32(randomF64([6, 5], 7));
      const weight = f32(randomF64([11, 5], 8));
      const y = lcgLabels(6, 11, 9);
      const ref = lossAndGrads((h, w) => fusedLinearCrossEntropy(h, w, y, { chunkSize: 4 }), hidden, weight);
      const w = weight.detach().requiresGrad_();
      fusedLinearCrossEntropy(hidden, w, y, { chunkSize: 4 }).backward();
      expectClose(w.grad!, ref.gw, 0, 'weight grad alone');
      expect(hidden.grad).toBeNull();
      const h = hidden.detach().requiresGrad_();
      fusedLinearCrossEntropy(h, weight, y, { chunkSize: 4 }).backward();
      expectClose(h.grad!, ref.gh, 0, 'hidden grad alone');
      for (const t of [w.grad!, h.grad!, ref.gh, ref.gw]) t.dispose();
    });
  });

  it('gives NaN loss and zero gradients when every row is ignored with mean', () => {
    tidy(() => {
      const { loss, gh, gw } = lossAndGrads(
        (h, w) => fusedLinearCrossEntropy(h, w, int32([-100, -100])),
        f32(randomF64([2, 3], 1)),
        f32(randomF64([4, 3], 2)),
      );
      expect(Number.isNaN(loss.item())).toBe(true);
      expect(gh.toArray().every((x) => x === 0)).toBe(true);
      expect(gw.toArray().every((x) => x === 0)).toBe(true);
      gh.dispose();
      gw.dispose();
    });
  });

  it('rejects bad arguments with clear errors', () => {
    tidy(() => {
      const h = randomF64([3, 4], 1);
      const w = randomF64([5, 4], 2);
      const y = int32([0, 1, 2]);
      expect(() => fusedLinearCrossEntropy(h, randomF64([5, 3], 3), y)).toThrow(/weight must be \[V, H\] with H = 4/);
      expect(() => fusedLinearCrossEntropy(h, f32(w), y)).toThrow(/share one floating dtype/);
      expect(() => fusedLinearCrossEntropy(h, w, int32([0, 1]))).toThrow(/labels must have shape \[3\]/);
      expect(() => fusedLinearCrossEntropy(h, w, y, { chunkSize: 0 })).toThrow(/chunkSize must be a positive integer/);
      expect(() => fusedLinearCrossEntropy(h, w, int32([0, 5, 1]))).toThrow(
        /label 5 at row 1 is out of range \[0, 5\)/,
      );
    });
  });

  it('peaks below the unfused path for vocab 32768 and never holds [N, V] logits', () => {
    const [N, H, V, chunkSize] = [256, 64, 32768, 64];
    tidy(() => {
      const hidden = f32(randomF64([N, H], 11, 2));
      const weight = f32(randomF64([V, H], 12, 0.5));
      const y = lcgLabels(N, V, 13, 10);
      const backend = getRegistry().backend('cpu');
      const measure = (fn: (h: Tensor, w: Tensor) => Tensor) =>
        tidy(() => {
          const base = memoryStats('cpu').liveBytes;
          backend.resetPeak();
          const r = lossAndGrads(fn, hidden, weight);
          return { ...r, base, peak: memoryStats('cpu').peakBytes };
        });
      const fused = measure((h, w) => fusedLinearCrossEntropy(h, w, y, { chunkSize }));
      const unfused = measure((h, w) => crossEntropy(linear(h, w), y));
      const logitsBytes = N * V * 4;
      console.log(
        `fusedLinearCrossEntropy N=${N} H=${H} V=${V} chunk=${chunkSize}: peak ${fused.peak} B (+${fused.peak - fused.base} over live), ` +
          `unfused peak ${unfused.peak} B (+${unfused.peak - unfused.base} over live); [N, V] logits = ${logitsBytes} B`,
      );
      expect(fused.peak).toBeLessThan(unfused.peak);
      // The unfused run starts with the fused run's gradients still live, so compare growth too.
      expect(fused.peak - fused.base).toBeLessThan(unfused.peak - unfused.base);
      expect(fused.peak - fused.base).toBeLessThan(logitsBytes);
      expectClose(fused.loss, unfused.loss, 1e-5, 'loss (V = 32768)');
      expectClose(fused.gh, unfused.gh, 1e-5, 'grad hidden (V = 32768)');
      expectClose(fused.gw, unfused.gw, 1e-5, 'grad weight (V = 32768)');
      for (const r of [fused, unfused]) {
        r.gh.dispose();
        r.gw.dispose();
      }
    });
  });

  it('leaves no tensors or bytes behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const r = lossAndGrads(
        (h, w) => fusedLinearCrossEntropy(h, w, int32([1, -100, 2]), { chunkSize: 2 }),
        randomF64([3, 4], 1),
        randomF64([5, 4], 2),
      );
      r.gh.dispose();
      r.gw.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});
