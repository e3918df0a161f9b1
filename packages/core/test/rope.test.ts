import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  dispatch1,
  memoryStats,
  type RopeScaling,
  rope,
  ropeInvFreq,
  runBackward,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';
import { expectClose, relativeError } from './helpers/compare.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

const all = loadFixture('rope');
const cases = all.filter((c) => !c.name.startsWith('inv_freq'));
const invFreqCases = all.filter((c) => c.name.startsWith('inv_freq'));
const run = ({ x, positions }: Record<string, Tensor>, { theta, scaling }: Record<string, any>) =>
  rope(x!, positions!, { theta, scaling: scaling ?? undefined });

const LLAMA31: RopeScaling = {
  type: 'llama3',
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

describe('ropeInvFreq', () => {
  it('has fixtures for the default, llama3 and linear frequencies', () => {
    expect(invFreqCases.length).toBeGreaterThanOrEqual(6);
    expect(invFreqCases.some((c) => c.attrs.scaling?.type === 'llama3')).toBe(true);
  });

  for (const c of invFreqCases) {
    it(`matches Hugging Face's rope init: ${c.name}`, () => {
      const { headDim, theta, scaling } = c.attrs;
      const got = ropeInvFreq(headDim, theta, scaling ?? undefined);
      const want = c.outputs[0]!.toTypedArray();
      expect(got.length).toBe(want.length);
      // float32 operations as in PyTorch; pow may differ from PyTorch's vectorised powf by an ulp.
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(want[i]! * 2 ** -23);
      expect(relativeError(got, want)).toBeLessThan(1e-7);
    });
  }

  it('keeps high frequencies, divides low ones by factor and interpolates between (llama3)', () => {
    const base = ropeInvFreq(128, 500000);
    const scaled = ropeInvFreq(128, 500000, LLAMA31);
    const wavelen = (f: number) => (2 * Math.PI) / f;
    let kinds = 0;
    for (let i = 0; i < 64; i++) {
      if (wavelen(base[i]!) < 8192 / 4) expect(scaled[i]).toBe(base[i]);
      else if (wavelen(base[i]!) > 8192) expect(scaled[i]).toBe(Math.fround(base[i]! / 8));
      else {
        expect(scaled[i]!).toBeLessThan(base[i]!);
        expect(scaled[i]!).toBeGreaterThan(base[i]! / 8);
        kinds++;
      }
    }
    expect(kinds).toBeGreaterThan(0);
  });

  it('rejects bad arguments', () => {
    expect(() => ropeInvFreq(7, 10000)).toThrow(/ropeInvFreq: head dim must be a positive even integer, got 7/);
    expect(() => ropeInvFreq(8, 0)).toThrow(/ropeInvFreq: theta must be a finite number > 0/);
    expect(() => ropeInvFreq(8, 10000, { type: 'yarn' } as unknown as RopeScaling)).toThrow(
      /unsupported scaling type 'yarn'; supported: 'llama3', 'linear'/,
    );
    expect(() => ropeInvFreq(8, 10000, { ...LLAMA31, highFreqFactor: 1 })).toThrow(
      /highFreqFactor \(1\) must be greater than scaling.lowFreqFactor \(1\)/,
    );
    expect(() => ropeInvFreq(8, 10000, { ...LLAMA31, factor: -2 })).toThrow(
      /scaling.factor must be a finite number > 0/,
    );
  });
});

describe('rope', () => {
  it('has float32 and bfloat16 fixtures (batched, packed, scaled) with gradients for x', () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
    expect(cases.some((c) => c.inputs.x!.dtype === 'bfloat16')).toBe(true);
    expect(cases.some((c) => c.inputs.x!.ndim === 3)).toBe(true);
    expect(cases.some((c) => c.inputs.x!.size(-1) === 6)).toBe(true);
    expect(cases.some((c) => c.inputs.x!.size(-1) === 10)).toBe(true);
    for (const c of cases) expect(Object.keys(c.grads)).toEqual(['x']);
  });

  for (const c of cases) {
    it(`matches Hugging Face apply_rotary_pos_emb: ${c.name}`, () => checkCase(c, run));
  }

  it('is the identity at position 0 and treats packed [T, H, D] like [1, T, H, D]', () => {
    tidy(() => {
      const x = randomF64([4, 3, 6], 1);
      const y0 = rope(x, tensor([0, 0, 0, 0], { dtype: 'int32' }));
      expectClose(y0, x, 0);
      const pos = tensor([5, 0, 2, 9], { dtype: 'int32' });
      const packed = rope(x, pos, { theta: 500000, scaling: LLAMA31 });
      const batched = rope(x.reshape(1, 4, 3, 6), pos.reshape(1, 4), { theta: 500000, scaling: LLAMA31 });
      expectClose(packed, batched.reshape(4, 3, 6), 0);
    });
  });

  it('backward kernel is the inverse rotation', () => {
    tidy(() => {
      const x = randomF64([2, 3, 2, 10], 2);
      const pos = tensor([7, 1, 300, 4, 4, 0], { dtype: 'int32', shape: [2, 3] });
      const invFreq = ropeInvFreq(10, 10000);
      const back = dispatch1('ropeBackward', [rope(x, pos), pos], { invFreq });
      expectClose(back, x, 1e-6); // cos² + sin² = 1 only to float32: cos and sin are float32 values, as in HF
    });
  });

  it('passes float64 gradcheck for x', () => {
    tidy(() => {
      const pos = tensor([3, 0, 17, 2, 9, 1], { dtype: 'int32', shape: [2, 3] });
      gradcheck((x, p) => rope(x, p), [randomF64([2, 3, 2, 6], 3), pos], { names: ['x'] });
      gradcheck(
        (x, p) => rope(x, p, { theta: 500000, scaling: LLAMA31 }),
        [randomF64([3, 1, 10], 4), pos.reshape(6).slice0(0, 3)],
        {
          names: ['x'],
        },
      );
    });
  });

  it('dispatches its own backward kernel, which a backend can override', () => {
    const r = createRegistry();
    const reference = r.kernels('cpu', 'ropeBackward')[0]!.kernel;
    let calls = 0;
    r.registerKernel(
      'cpu',
      'ropeBackward',
      (inputs, attrs) => {
        calls++;
        expect(Array.from(attrs.invFreq as Float64Array)).toEqual(Array.from(ropeInvFreq(4, 100)));
        return reference(inputs, attrs);
      },
      { priority: 10, source: 'test' },
    );
    withRegistry(r, () =>
      tidy(() => {
        const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], { shape: [2, 1, 4], requiresGrad: true });
        runBackward(
          [rope(x, tensor([0, 3], { dtype: 'int32' }), { theta: 100 })],
          [tensor(new Float32Array(8).fill(1), { shape: [2, 1, 4] })],
        );
        expect(x.grad!.toArray().slice(0, 4)).toEqual([1, 1, 1, 1]); // position 0: identity
        x.grad?.dispose();
      }),
    );
    expect(calls).toBe(1);
  });

  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], { shape: [2, 1, 4], requiresGrad: true });
      runBackward(
        [rope(x, tensor([1, 3], { dtype: 'int32' }))],
        [tensor(new Float32Array(8).fill(1), { shape: [2, 1, 4] })],
      );
      x.grad?.dispose();
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('rejects bad arguments with errors naming the op and the shapes', () => {
    tidy(() => {
      const x = tensor(new Float32Array(2 * 5 * 3 * 6), { shape: [2, 5, 3, 6] });
      expect(() => rope(x, tensor(new Int32Array(5), { dtype: 'int32' }))).toThrow(
        /rope: positions of shape \[5\] must have the shape of x \[2,5,3,6\] without its last two dims \(\[2,5\]\)/,
      );
      expect(() => rope(x, tensor(new Float32Array(10), { shape: [2, 5] }))).toThrow(
        /rope: positions must be int32, got float32/,
      );
      expect(() => rope(tensor(new Float32Array(10), { shape: [2, 5] }), tensor([0, 1], { dtype: 'int32' }))).toThrow(
        /rope: head dim \(last dim of x \[2,5\]\) must be even/,
      );
      expect(() => rope(tensor([1, 2]), tensor(0, { dtype: 'int32' }))).toThrow(
        /rope: x must be \[..., heads, headDim\]/,
      );
      expect(() => rope(tensor([[1, 2]], { dtype: 'int32' }), tensor(0, { dtype: 'int32' }))).toThrow(
        /rope: x must be a float tensor/,
      );
    });
  });
});
