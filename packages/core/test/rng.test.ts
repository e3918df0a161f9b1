import { describe, expect, it } from 'vitest';
import {
  defaultGenerator,
  empty,
  fillNormal,
  fillUniform,
  Generator,
  manualSeed,
  memoryStats,
  normal,
  philox4x32,
  rand,
  randn,
  replayDraw,
  tidy,
  uniform,
} from '../src/index.js';

const hex = (w: Uint32Array) => Array.from(w, (x) => x.toString(16).padStart(8, '0')).join(' ');

describe('Philox4x32-10', () => {
  // Random123 kat_vectors for philox4x32 with 10 rounds.
  const kat: [number[], number[], string][] = [
    [[0, 0, 0, 0], [0, 0], '6627e8d5 e169c58d bc57ac4c 9b00dbd8'],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], '408f276d 41c83b0e a20bc7c6 6d5451fd'],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], 'd16cfe09 94fdcceb 5001e420 24126ea1'],
  ];
  for (const [c, k, want] of kat) {
    it(`known answer for counter ${hex(Uint32Array.from(c))}`, () => {
      const out = new Uint32Array(4);
      philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!, out);
      expect(hex(out)).toBe(want);
    });
  }

  it('a generator block is philox(counter = [block, stream], key = seed)', () => {
    const out = new Uint32Array(4);
    const s = new Generator((0xffffffffn << 32n) | 0xffffffffn);
    s.block(0, out);
    const ref = new Uint32Array(4);
    philox4x32(0, 0, 0, 0, 0xffffffff, 0xffffffff, ref);
    expect(hex(out)).toBe(hex(ref));
    s.block(2 ** 32 + 5, out);
    philox4x32(5, 1, 0, 0, 0xffffffff, 0xffffffff, ref);
    expect(hex(out)).toBe(hex(ref));
  });
});

describe('Generator', () => {
  it('is reproducible after manualSeed and advances by ceil(n/4) blocks per fill', () => {
    tidy(() => {
      manualSeed(123);
      const a = randn([7, 3]).toArray();
      expect(defaultGenerator().offset).toBe(Math.ceil(21 / 4));
      const b = randn([5]).toArray();
      manualSeed(123);
      expect(randn([7, 3]).toArray()).toEqual(a);
      expect(randn([5]).toArray()).toEqual(b);
      manualSeed(124);
      expect(randn([7, 3]).toArray()).not.toEqual(a);
    });
  });

  it('named streams are independent and share the seed', () => {
    tidy(() => {
      const g = new Generator(7);
      const init = g.stream('init');
      const data = g.stream('data');
      expect(g.stream('init')).toBe(init);
      const x = uniform([16], { generator: init }).toArray();
      data.uint32(1000); // using another stream does not shift 'init'
      const g2 = new Generator(7);
      expect(uniform([16], { generator: g2.stream('init') }).toArray()).toEqual(x);
      expect(uniform([16], { generator: g2.stream('other') }).toArray()).not.toEqual(x);
      expect(uniform([16], { generator: g2 }).toArray()).not.toEqual(x);
      g.manualSeed(7);
      expect(init.offset).toBe(0);
      expect(uniform([16], { generator: init }).toArray()).toEqual(x);
    });
  });

  it('getState/setState round-trips every stream', () => {
    tidy(() => {
      const g = new Generator(99);
      g.uint32(10);
      g.stream('a').uint32(21);
      const st = JSON.parse(JSON.stringify(g.getState()));
      const next = rand([9], { generator: g.stream('a') }).toArray();
      const h = new Generator(1);
      h.setState(st);
      expect(h.initialSeed()).toBe(99n);
      expect(h.offset).toBe(3);
      expect(rand([9], { generator: h.stream('a') }).toArray()).toEqual(next);
    });
  });

  it('element i depends only on (seed, stream, offset, i): any slice equals the whole fill', () => {
    tidy(() => {
      for (const dtype of ['float32', 'bfloat16', 'float64'] as const) {
        for (const kind of ['normal', 'uniform'] as const) {
          const n = 103;
          const whole = empty([n], { dtype });
          const g = new Generator(5).stream('init');
          g.uint32(6); // some earlier use
          const opts = { generator: g, mean: 0.5, std: 2, low: -3, high: 1 };
          (kind === 'normal' ? fillNormal : fillUniform)(whole, opts);
          const after = g.offset;
          const all = whole.toArray();
          // Shards of uneven sizes starting at odd offsets, each with its own fresh generator.
          for (const [start, count] of [
            [0, 1],
            [1, 2],
            [3, 10],
            [13, 33],
            [46, 57],
            [102, 1],
            [50, 0],
          ] as const) {
            const shard = empty([count], { dtype });
            const g2 = new Generator(5).stream('init');
            g2.uint32(6);
            (kind === 'normal' ? fillNormal : fillUniform)(shard, {
              ...opts,
              generator: g2,
              offset: start,
              logicalNumel: n,
            });
            expect(shard.toArray(), `${dtype} ${kind} [${start}, ${start + count})`).toEqual(
              all.slice(start, start + count),
            );
            expect(g2.offset).toBe(after);
          }
        }
      }
    });
  });

  it('a recorded draw regenerates any range, e.g. a 2-D shard', () => {
    tidy(() => {
      const full = empty([6, 5]);
      const draw = fillNormal(full, { generator: new Generator(3) });
      const rows = empty([2, 5]);
      replayDraw(draw, rows, 10);
      expect(rows.toArray()).toEqual(full.toArray().slice(10, 20));
      expect(() => replayDraw(draw, empty([3, 5]), 20)).toThrow(/outside the logical tensor of 30 elements/);
      expect(() => fillNormal(empty([4]), { offset: 8, logicalNumel: 10 })).toThrow(/does not fit/);
    });
  });

  it('meta tensors reserve the same counter range without values', () => {
    tidy(() => {
      const g = new Generator(1);
      normal([10, 10], { device: 'meta', generator: g });
      const h = new Generator(1);
      normal([10, 10], { generator: h });
      expect(g.offset).toBe(h.offset);
    });
  });
});

describe('distributions', () => {
  it('normal has the requested mean and std; uniform the requested range and moments', () => {
    const before = memoryStats();
    tidy(() => {
      const g = new Generator(2024);
      const n = 200_000;
      const x = normal([n], { mean: 1.5, std: 3, generator: g }).toArray();
      let s = 0;
      let s2 = 0;
      for (const v of x) s += v;
      const mean = s / n;
      for (const v of x) s2 += (v - mean) ** 2;
      const std = Math.sqrt(s2 / (n - 1));
      expect(Math.abs(mean - 1.5)).toBeLessThan(0.03);
      expect(Math.abs(std - 3)).toBeLessThan(0.03);
      // Within 1 sigma about 68.27%.
      const within = x.filter((v) => Math.abs(v - 1.5) < 3).length / n;
      expect(Math.abs(within - 0.6827)).toBeLessThan(0.005);

      const u = uniform([n], { low: -2, high: 6, generator: g }).toArray();
      let lo = Infinity;
      let hi = -Infinity;
      let us = 0;
      for (const v of u) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
        us += v;
      }
      expect(lo).toBeGreaterThanOrEqual(-2);
      expect(hi).toBeLessThan(6);
      expect(lo).toBeLessThan(-1.99);
      expect(hi).toBeGreaterThan(5.99);
      expect(Math.abs(us / n - 2)).toBeLessThan(0.03);
      const r = rand([4, 4], { dtype: 'bfloat16', generator: g });
      expect(r.dtype).toBe('bfloat16');
      const z = randn([3], { requiresGrad: true, generator: g });
      expect(z.requiresGrad).toBe(true);
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
  });
});
