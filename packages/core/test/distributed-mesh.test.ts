import {
  DeviceMesh,
  meshCoords,
  meshGroupOf,
  meshGroups,
  meshRank,
  type ProcessGroup,
  resolveMeshSizes,
} from '@omnitrain/core';
import { describe, expect, it } from 'vitest';

const sorted = (gs: number[][]) => gs.map((g) => [...g]);

describe('mesh rank arithmetic (pure)', () => {
  it('coords and ranks are row-major inverses', () => {
    const shape = [2, 3, 4];
    for (let r = 0; r < 24; r++) expect(meshRank(shape, meshCoords(shape, r))).toBe(r);
    expect(meshCoords(shape, 23)).toEqual([1, 2, 3]);
    expect(meshCoords(shape, 5)).toEqual([0, 1, 1]);
  });

  it('groups along a dim are the ranks differing only in that dim', () => {
    expect(meshGroups([2, 2], [1])).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(meshGroups([2, 2], [0])).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(meshGroupOf([2, 3, 4], [0, 2], 5)).toEqual([4, 5, 6, 7, 16, 17, 18, 19]);
  });
});

describe('DeviceMesh membership', () => {
  it('dp_shard=2 × ulysses=2 on 4 ranks', () => {
    const m = new DeviceMesh({ dp_shard: 2, ulysses: 2 }, 4, 0);
    expect(m.shape).toEqual([1, 2, 2]);
    expect(sorted(m.allGroups('ulysses'))).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(m.allGroups('sp')).toEqual(m.allGroups('ulysses'));
    expect(m.allGroups('dp_shard')).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(m.allGroups('dp')).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(m.allGroups('dp_replicate')).toEqual([[0], [1], [2], [3]]);
    expect(m.allGroups('dp_shard_sp')).toEqual([[0, 1, 2, 3]]);
    expect(m.allGroups('world')).toEqual([[0, 1, 2, 3]]);
    // per rank, and group-local ranks
    const m3 = new DeviceMesh({ dp_shard: 2, ulysses: 2 }, 4, 3);
    expect(m3.groupRanks('ulysses')).toEqual([2, 3]);
    expect(m3.groupRanks('dp_shard')).toEqual([1, 3]);
    expect(m3.localRank('ulysses')).toBe(1);
    expect(m3.localRank('dp_shard')).toBe(1);
    expect(m3.coords()).toEqual({ dp_replicate: 0, dp_shard: 1, ulysses: 1 });
    expect(m3.size('sp')).toBe(2);
  });

  it('expert mesh ep_fsdp=2 × ep=2 on 4 ranks', () => {
    const m = new DeviceMesh({ dp_shard: 4, ep: 2 }, 4, 1);
    expect(m.sizes.ep_fsdp).toBe(2);
    expect(m.expertShape).toEqual([1, 2, 2]);
    expect(m.allGroups('ep')).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(m.allGroups('ep_fsdp')).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(m.groupRanks('ep')).toEqual([0, 1]);
    expect(m.groupRanks('ep_fsdp')).toEqual([1, 3]);
    expect(m.allGroups('dp_shard')).toEqual([[0, 1, 2, 3]]);
  });

  it('3-D: dp_replicate=2 × dp_shard=2 × ulysses=2 on 8 ranks, with ep=2', () => {
    const m = new DeviceMesh({ dp_replicate: 2, dp_shard: 2, ulysses: 2, ep: 2 }, 8, 5);
    expect(m.allGroups('dp_replicate')).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ]);
    expect(m.allGroups('dp_shard')).toEqual([
      [0, 2],
      [1, 3],
      [4, 6],
      [5, 7],
    ]);
    expect(m.allGroups('ulysses')).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(m.allGroups('dp')).toEqual([
      [0, 2, 4, 6],
      [1, 3, 5, 7],
    ]);
    expect(m.allGroups('dp_shard_sp')).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(m.allGroups('dp_sp')).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
    // expert mesh [ep_replicate=2, ep_fsdp=2, ep=2]
    expect(m.expertShape).toEqual([2, 2, 2]);
    expect(m.allGroups('ep')).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(m.allGroups('ep_fsdp')).toEqual([
      [0, 2],
      [1, 3],
      [4, 6],
      [5, 7],
    ]);
    expect(m.allGroups('ep_replicate')).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ]);
    expect(m.groupRanks('dp')).toEqual([1, 3, 5, 7]);
    expect(m.localRank('dp')).toBe(2);
    expect(m.coords()).toEqual({ dp_replicate: 1, dp_shard: 0, ulysses: 1 });
  });

  it('every view partitions the world', () => {
    const m = new DeviceMesh({ dp_replicate: 2, ulysses: 3, ep: 3 }, 24, 0);
    expect(m.sizes.dp_shard).toBe(4);
    for (const name of DeviceMesh.names) {
      const flat = m.allGroups(name).flat();
      expect(flat.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    }
  });
});

describe('DeviceMesh validation says what to change', () => {
  it('product != world size', () => {
    expect(() => resolveMeshSizes({ dp_shard: 3, ulysses: 2 }, 4)).toThrow(
      /dp_replicate\(1\) × dp_shard\(3\) × ulysses\(2\) = 6, but the world size is 4; set dp_shard to 2/,
    );
    expect(() => resolveMeshSizes({ ulysses: 3 }, 4)).toThrow(/cannot derive dp_shard.*divisors of 4: 1, 2, 4/);
  });
  it('heads % ulysses', () => {
    expect(() => resolveMeshSizes({ ulysses: 4, numHeads: 6 }, 4)).toThrow(
      /numHeads 6 is not divisible by ulysses 4; choose ulysses among 1, 2, 3, 6/,
    );
    expect(() => resolveMeshSizes({ ulysses: 4, numHeads: 8, numKvHeads: 6 }, 4)).toThrow(/numKvHeads 6/);
    expect(resolveMeshSizes({ ulysses: 4, numHeads: 8, numKvHeads: 2 }, 4).ulysses).toBe(4);
  });
  it('experts % ep and ep | dp_shard×ulysses', () => {
    expect(() => resolveMeshSizes({ ep: 4, numExperts: 6 }, 8)).toThrow(
      /numExperts 6 is not divisible by ep 4; choose ep among 1, 2/,
    );
    expect(() => resolveMeshSizes({ dp_replicate: 2, ep: 4 }, 4)).toThrow(/ep 4 must divide dp_shard × ulysses = 2/);
  });
  it('unknown dimension names list the known ones', () => {
    expect(() => new DeviceMesh({}, 2, 0).groupRanks('tp')).toThrow(/unknown dimension 'tp'; known: dp_replicate/);
  });
});

describe('DeviceMesh sub-groups', () => {
  function fakeGroup(ranks: readonly number[], name: string, log: string[]): ProcessGroup {
    log.push(`${name}:${ranks.join(',')}`);
    return { ranks, name, size: ranks.length, destroy: () => log.push(`destroy ${name}`) } as unknown as ProcessGroup;
  }
  it('are created lazily, once, and shared between views with the same members', () => {
    const log: string[] = [];
    const m = new DeviceMesh({ dp_shard: 2, ulysses: 2 }, 4, 2, (r, n) => fakeGroup(r, n, log));
    expect(log).toEqual([]);
    const a = m.group('ulysses');
    expect(m.group('ulysses')).toBe(a);
    expect(m.group('sp')).toBe(a);
    expect(m.group('dp_shard').ranks).toEqual([0, 2]);
    expect(log).toEqual(['ulysses:2,3', 'dp_shard:0,2']);
    m.destroy();
    expect(log.slice(2)).toEqual(['destroy ulysses', 'destroy dp_shard']);
  });
});
