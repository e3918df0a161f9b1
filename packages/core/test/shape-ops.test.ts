import { describe, expect, it } from 'vitest';
import {
  cat,
  contiguous,
  expand,
  gather,
  indexSelect,
  maskedScatter,
  maskedSelect,
  memoryStats,
  narrow,
  permute,
  runBackward,
  scatterAdd,
  split,
  stack,
  type Tensor,
  tensor,
  tidy,
  transpose,
} from '../src/index.js';
import { checkCase, loadFixture } from './helpers/fixtures.js';
import { gradcheck, randomF64 } from './helpers/gradcheck.js';

type Fn = (i: Record<string, Tensor>, a: Record<string, any>) => Tensor | Tensor[];

const list = (i: Record<string, Tensor>) => Object.values(i);
const OPS: [string, Fn][] = [
  ['permute_', (i, a) => permute(i.x!, a.dims)],
  ['transpose_', (i, a) => transpose(i.x!, a.d0, a.d1)],
  ['expand_', (i, a) => expand(i.x!, a.shape)],
  ['cat_', (i, a) => cat(list(i), a.dim)],
  ['split_', (i, a) => split(i.x!, a.sizes, a.dim)],
  ['stack_', (i, a) => stack(list(i), a.dim)],
  ['narrow_', (i, a) => narrow(i.x!, a.dim, a.start, a.length)],
  ['index_select_', (i, a) => indexSelect(i.x!, a.dim, i.index!)],
  ['gather_', (i, a) => gather(i.x!, a.dim, i.index!)],
  ['scatter_add_', (i, a) => scatterAdd(i.x!, a.dim, i.index!, i.src!)],
  ['masked_scatter_', (i) => maskedScatter(i.x!, i.mask!, i.source!)],
  ['masked_select_', (i) => maskedSelect(i.x!, i.mask!)],
];

const ints = (values: number[], shape?: number[]) =>
  tensor(values, { dtype: 'int32', shape: shape ?? [values.length] });
const bools = (values: number[], shape?: number[]) =>
  tensor(values, { dtype: 'bool', shape: shape ?? [values.length] });

describe('shape ops match PyTorch (float32 and bfloat16)', () => {
  const cases = loadFixture('shape');
  it('has cases for every op in both dtypes', () => {
    for (const [prefix] of OPS) {
      for (const tag of ['_f32', '_bf16']) {
        expect(
          cases.some((c) => c.name.startsWith(prefix) && c.name.endsWith(tag)),
          prefix + tag,
        ).toBe(true);
      }
    }
  });
  for (const c of cases) {
    it(c.name, () => {
      const op = OPS.find(([p]) => c.name.startsWith(p));
      if (!op) throw new Error(`no op for fixture case ${c.name}`);
      checkCase(c, op[1]);
    });
  }
});

describe('shape ops: float64 gradcheck', () => {
  it('permute and transpose', () => {
    gradcheck((x) => permute(x, [2, 0, 1]), [randomF64([2, 3, 4], 1)]);
    gradcheck((x) => permute(x, [3, 1, 0, 2]), [randomF64([3, 1, 2, 2], 2)]);
    gradcheck((x) => transpose(x, -1, 0), [randomF64([3, 2, 5], 3)]);
  });
  it('contiguous and expand', () => {
    gradcheck((x) => contiguous(x), [randomF64([3, 4], 4)]);
    gradcheck((x) => expand(x, [2, 3, 4, 5]), [randomF64([3, 1, 5], 5)]);
    gradcheck((x) => expand(x, [4, -1]), [randomF64([1, 3], 6)]);
  });
  it('cat (every input) and stack', () => {
    gradcheck(
      (a, b, c) => cat([a!, b!, c!], 1),
      [randomF64([2, 3, 2], 7), randomF64([2, 1, 2], 8), randomF64([2, 2, 2], 9)],
    );
    gradcheck((a, b) => cat([a!, b!], 0), [randomF64([2, 3], 10), randomF64([1, 3], 11)]);
    gradcheck((a, b) => stack([a!, b!], 1), [randomF64([3, 2], 12), randomF64([3, 2], 13)]);
  });
  it('split, through every piece and through only some pieces', () => {
    gradcheck((x) => cat(split(x, 2, 1).reverse(), 1), [randomF64([3, 5, 2], 14)]);
    gradcheck((x) => split(x, [1, 3, 2], 0)[1]!, [randomF64([6, 2], 15)]);
    gradcheck((x) => split(x, [2, 3], -1)[1]!, [randomF64([2, 5], 16)]);
  });
  it('narrow (copy and view paths)', () => {
    gradcheck((x) => narrow(x, 1, 1, 2), [randomF64([3, 4, 2], 17)]);
    gradcheck((x) => narrow(x, 0, 2, 3), [randomF64([6, 2], 18)]);
    gradcheck((x) => narrow(x, 1, 1, 2), [randomF64([1, 4, 2], 19)]);
  });
  it('indexSelect and gather (repeated indices accumulate)', () => {
    gradcheck((x) => indexSelect(x, 0, ints([2, 0, 2, 2])), [randomF64([3, 4], 20)]);
    gradcheck((x) => indexSelect(x, 1, ints([1])), [randomF64([2, 3, 2], 21)]);
    gradcheck((x) => gather(x, 1, ints([0, 0, 2, 1, 1, 1], [2, 3])), [randomF64([3, 3], 22)]);
  });
  it('scatterAdd in x and src (src larger than index too)', () => {
    const index = ints([0, 2, 2, 1, 0, 0], [2, 3]);
    gradcheck((x, s) => scatterAdd(x!, 0, index, s!), [randomF64([3, 3], 23), randomF64([2, 3], 24)]);
    gradcheck((x, s) => scatterAdd(x!, 1, index, s!), [randomF64([2, 4], 25), randomF64([3, 5], 26)]);
  });
  it('maskedScatter in x and source, maskedSelect', () => {
    const mask = bools([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0], [3, 4]);
    gradcheck((x, s) => maskedScatter(x!, mask, s!), [randomF64([3, 4], 27), randomF64([2, 5], 28)]);
    gradcheck((x, s) => maskedScatter(x!, bools([0, 1, 1]), s!), [randomF64([2, 3], 29), randomF64([4], 30)]);
    gradcheck((x) => maskedSelect(x, mask), [randomF64([3, 4], 31)]);
    gradcheck((x) => maskedSelect(x, bools([1, 0, 1, 1], [1, 4])), [randomF64([3, 1], 32)]);
  });
});

describe('shape ops: semantics', () => {
  it('permute/transpose values', () => {
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
      expect(transpose(x, 0, 1).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
      expect(permute(x, [1, 0]).shape).toEqual([3, 2]);
      const y = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 1, 3] });
      expect(permute(y, [1, 0, 2]).storage).toBe(y.storage); // only a size-1 dim moved: a view
      expect(transpose(y, 0, 2).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
    });
  });
  it('contiguous shares storage; narrow along dimension 0 and split along dimension 0 are views', () => {
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] });
      expect(contiguous(x).storage).toBe(x.storage);
      expect(narrow(x, 0, 1, 2).storage).toBe(x.storage);
      expect(narrow(x, 0, 1, 2).toArray()).toEqual([3, 4, 5, 6]);
      expect(narrow(x, 1, 1, 1).toArray()).toEqual([2, 4, 6]);
      const parts = split(x, 2);
      expect(parts.map((p) => p.shape)).toEqual([
        [2, 2],
        [1, 2],
      ]);
      expect(parts[1]!.storage).toBe(x.storage);
      expect(split(x, 1, 1).map((p) => p.toArray())).toEqual([
        [1, 3, 5],
        [2, 4, 6],
      ]);
    });
  });
  it('int32 and bool data move exactly', () => {
    tidy(() => {
      const i = ints([1, 2, 3, 4, 5, 6], [2, 3]);
      expect(transpose(i, 0, 1).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
      expect(transpose(i, 0, 1).dtype).toBe('int32');
      expect(expand(bools([1, 0]), [2, 2]).toArray()).toEqual([1, 0, 1, 0]);
      expect(cat([i, ints([7, 8, 9], [1, 3])], 0).toArray()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(scatterAdd(ints([0, 0, 0]), 0, ints([2, 2]), ints([5, 7])).toArray()).toEqual([0, 0, 12]);
    });
  });
  it('maskedScatter fills masked positions with consecutive source elements', () => {
    tidy(() => {
      const x = tensor([0, 0, 0, 0]);
      const out = maskedScatter(x, bools([0, 1, 0, 1]), tensor([7, 8, 9]));
      expect(out.toArray()).toEqual([0, 7, 0, 8]);
      expect(maskedSelect(tensor([1, 2, 3, 4]), bools([1, 0, 0, 1])).toArray()).toEqual([1, 4]);
    });
  });
  it('an unused split piece still gets a zero gradient', () => {
    tidy(() => {
      const x = randomF64([5, 2], 40).requiresGrad_();
      const [, b] = split(x, [2, 3]);
      runBackward([b!], [tensor(new Array(6).fill(1), { dtype: 'float64', shape: [3, 2] })]);
      expect(x.grad!.toArray()).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    });
  });
  it('leaves no tensors behind after forward and backward', () => {
    const before = memoryStats();
    tidy(() => {
      const x = randomF64([3, 4, 2], 41).requiresGrad_();
      const s = randomF64([4, 4], 42).requiresGrad_();
      const parts = split(permute(x, [1, 0, 2]), [1, 3], 0);
      const y = cat(
        [stack([parts[0]!, parts[0]!], 0).reshape(2, 3, 2), expand(narrow(parts[1]!, 2, 1, 1), [3, 3, 2])],
        0,
      );
      const z = maskedScatter(
        gather(y, 0, ints(new Array(30).fill(1), [5, 3, 2])),
        bools([1, 0, 1, 0, 0, 1]).reshape(3, 2),
        s,
      );
      const big = expand(z, [2, 5, 3, 2]);
      const w = scatterAdd(big, 1, ints(new Array(12).fill(0), [2, 1, 3, 2]), big);
      runBackward([w], [tensor(new Array(w.numel).fill(1), { dtype: 'float64', shape: w.shape })]);
      expect(x.grad).not.toBeNull();
      expect(s.grad).not.toBeNull();
      x.grad!.dispose();
      s.grad!.dispose();
    });
    const after = memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
  });
});

describe('shape ops: errors name the op, the argument and the shapes', () => {
  it('permute / transpose / expand', () => {
    tidy(() => {
      const x = randomF64([2, 3], 50);
      expect(() => permute(x, [0])).toThrow(/permute: dims \[0\] has 1 entries for a tensor of rank 2 \[2,3\]/);
      expect(() => permute(x, [1, 1])).toThrow(/not a permutation/);
      expect(() => transpose(x, 0, 2)).toThrow(/transpose: dimension 2 out of range for a tensor of rank 2/);
      expect(() => expand(x, [4, 3])).toThrow(/expand: cannot expand \[2,3\] to \[4,3\]: dimension 0 has size 2/);
      expect(() => expand(x, [3])).toThrow(/fewer dimensions/);
    });
  });
  it('cat / split / stack / narrow', () => {
    tidy(() => {
      const a = randomF64([2, 3], 51);
      expect(() => cat([a, randomF64([3, 4], 52)], 0)).toThrow(
        /cat: sizes must match except in dimension 0: tensor 1 has shape \[3,4\]/,
      );
      expect(() => cat([a, ints([1, 2, 3], [1, 3])], 0)).toThrow(/cat: tensor 1 is int32, tensor 0 is float64/);
      expect(() => cat([], 0)).toThrow(/non-empty/);
      expect(() => split(a, [1, 1], 1)).toThrow(
        /split: sizes \[1,1\] add up to 2, but dimension 1 of \[2,3\] has size 3/,
      );
      expect(() => stack([a, randomF64([3, 2], 53)])).toThrow(
        /stack: all tensors must have the same shape: tensor 1 is \[3,2\]/,
      );
      expect(() => narrow(a, 1, 2, 2)).toThrow(
        /narrow: start 2 and length 2 are out of range for dimension 1 of size 3/,
      );
    });
  });
  it('indexing ops name the bad index and the dimension size', () => {
    tidy(() => {
      const x = randomF64([3, 4], 54);
      expect(() => indexSelect(x, 0, ints([0, 3]))).toThrow(
        /indexSelect: index 3 at position 1 is out of range for dimension 0 of size 3/,
      );
      expect(() => indexSelect(x, 0, tensor([0]))).toThrow(/indexSelect: index must be int32, got float32/);
      expect(() => gather(x, 1, ints([0, -1], [1, 2]))).toThrow(
        /gather: index -1 at position 1 is out of range for dimension 1 of size 4/,
      );
      expect(() => gather(x, 0, ints([0, 0, 0, 0, 0], [1, 5]))).toThrow(
        /gather: index \[1,5\] is larger than x \[3,4\] in dimension 1/,
      );
      expect(() => scatterAdd(x, 0, ints([5], [1, 1]), randomF64([1, 1], 55))).toThrow(
        /scatterAdd: index 5 at position 0 is out of range for dimension 0 of size 3/,
      );
      expect(() => scatterAdd(x, 0, ints([0], [1, 1]), tensor([[1]]))).toThrow(
        /scatterAdd: x is float64 but src is float32/,
      );
    });
  });
  it('a rejected index leaves no tensor behind (checked before the output is allocated)', () => {
    const x = randomF64([3, 4], 60);
    const idx = ints([0, 1, 2, 9], [1, 4]);
    const row = ints([4]);
    const live = memoryStats().liveTensors;
    expect(() => gather(x, 0, idx)).toThrow(/gather: index 9 at position 3/);
    expect(() => indexSelect(x, 1, row)).toThrow(/indexSelect: index 4/);
    expect(memoryStats().liveTensors).toBe(live);
    for (const t of [x, idx, row]) t.dispose();
  });
  it('maskedScatter needs enough source elements and a bool mask that broadcasts to x', () => {
    tidy(() => {
      const x = randomF64([2, 3], 56);
      expect(() => maskedScatter(x, bools([1, 1, 1]), randomF64([5], 57))).toThrow(
        /maskedScatter: mask has 6 true elements but source \[5\] has only 5/,
      );
      expect(() => maskedScatter(x, bools([1, 1, 1, 0], [4]), randomF64([5], 58))).toThrow(/do not broadcast/);
      expect(() => maskedScatter(x, bools(new Array(12).fill(1), [2, 2, 3]), randomF64([12], 59))).toThrow(
        /mask \[2,2,3\] does not broadcast to x's shape \[2,3\]/,
      );
      expect(() => maskedScatter(x, ints([1, 1, 1]), randomF64([5], 60))).toThrow(
        /maskedScatter: mask must be bool, got int32/,
      );
    });
  });
});
