import { describe, expect, it } from 'vitest';
import { keep, memoryStats, Tensor, tensor, tidy, zeros } from '../src/index.js';

describe('tensor views', () => {
  it('reshape, flatten and slice0 share storage without copying', () => {
    tidy(() => {
      const t = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] });
      const r = t.reshape(2, -1);
      expect(r.shape).toEqual([2, 3]);
      expect(r.storage).toBe(t.storage);
      const s = t.slice0(1, 3);
      expect(s.shape).toEqual([2, 2]);
      expect(s.storage).toBe(t.storage);
      expect(s.toArray()).toEqual([3, 4, 5, 6]);
      (t.raw() as Float32Array)[2] = 30;
      expect(s.toArray()[0]).toBe(30);
      expect(t.flatten().shape).toEqual([6]);
    });
  });

  it('frees storage only when the last view is disposed', () => {
    const before = memoryStats();
    const t = keep(zeros([4, 4]));
    const v = keep(t.reshape(16));
    t.dispose();
    expect(memoryStats().liveBytes).toBe(before.liveBytes + 64);
    v.dispose();
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
  });

  it('rejects bad reshapes and out-of-range slices with the shapes in the message', () => {
    tidy(() => {
      const t = zeros([3, 2]);
      expect(() => t.reshape(4, 2)).toThrow(/\[4,2\] has 8 elements, tensor has 6/);
      expect(() => t.slice0(2, 5)).toThrow(/out of range/);
    });
  });

  it('tidy disposes temporaries and keeps what is returned', () => {
    const before = memoryStats().liveTensors;
    const kept = tidy(() => {
      zeros([10]);
      zeros([10]);
      return zeros([3]);
    });
    expect(memoryStats().liveTensors).toBe(before + 1);
    expect(kept).toBeInstanceOf(Tensor);
    kept.dispose();
    expect(memoryStats().liveTensors).toBe(before);
  });
});
