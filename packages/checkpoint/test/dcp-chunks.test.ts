import { crc32c, dim0Shard, shardedTensor } from '@omnitrain/checkpoint';
import { tensor } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { copyRegion, elementSpan, intersect } from '../src/dcp/sharded-tensor.js';

describe('dcp building blocks', () => {
  it('crc32c matches the standard check values', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    // Continuing from a seed equals one pass.
    const d = new TextEncoder().encode('hello, sharded world');
    expect(crc32c(d.subarray(7), crc32c(d.subarray(0, 7)))).toBe(crc32c(d));
  });

  it('copies an N-d overlap between two differently-placed blocks', () => {
    // Global [4, 5, 3]; src block rows 1..3, cols 0..4; dst block rows 2..3, cols 2..4.
    const g = (i: number, j: number, k: number) => i * 100 + j * 10 + k;
    const mk = (o: number[], l: number[]) => {
      const v: number[] = [];
      for (let i = 0; i < l[0]!; i++)
        for (let j = 0; j < l[1]!; j++) for (let k = 0; k < l[2]!; k++) v.push(g(o[0]! + i, o[1]! + j, o[2]! + k));
      return new Float64Array(v);
    };
    const src = { offsets: [1, 0, 0], lengths: [3, 4, 3] };
    const dst = { offsets: [2, 2, 0], lengths: [2, 3, 3] };
    const part = intersect(src, dst)!;
    expect(part).toEqual({ offsets: [2, 2, 0], lengths: [2, 2, 3] });
    const [first, end] = elementSpan(src, part);
    const srcBytes = new Uint8Array(mk(src.offsets, src.lengths).buffer);
    const out = new Float64Array(2 * 3 * 3).fill(-1);
    copyRegion(srcBytes.subarray(first * 8, end * 8), src, first, new Uint8Array(out.buffer), dst, part, 8);
    const want = mk(dst.offsets, dst.lengths);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 3; k++) {
          const at = (i * 3 + j) * 3 + k;
          expect(out[at]).toBe(j < 2 ? want[at] : -1);
        }
    expect(intersect(src, { offsets: [0, 4, 0], lengths: [4, 1, 3] })).toBeNull();
  });

  it('shard descriptors are checked', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] });
    expect(dim0Shard(t, 10, 7).globalShape).toEqual([10, 2]);
    expect(() => dim0Shard(t, 10, 8)).toThrow(/does not fit/);
    expect(() => shardedTensor(t, [3], [0])).toThrow(/same number of dims/);
  });
});
