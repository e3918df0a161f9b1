import { ByteTokenizer, DataSource, type HostBatch, PackedDataLoader } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { paragraphs, tempDir, writeTextFolder } from './helpers.js';

const tok = new ByteTokenizer();

describe('sharding over data-parallel ranks', () => {
  const texts = paragraphs(250);
  const dir = tempDir();
  writeTextFolder(dir, texts);

  it('DataSource shards are disjoint and cover the data (JSONL and Parquet files in a folder)', async () => {
    for (const ws of [1, 2, 3, 8]) {
      const all: string[] = [];
      const keys = new Set<string>();
      for (let rank = 0; rank < ws; rank++) {
        const src = new DataSource({ path: dir }, { rank, worldSize: ws });
        const mine: string[] = [];
        for (let s = await src.next(); s; s = await src.next()) {
          if (s.kind !== 'text') throw new Error('text expected');
          const key = `${s.origin.file}#${s.origin.line ?? `r${s.origin.row}`}`;
          expect(keys.has(key), `${key} on two ranks`).toBe(false);
          keys.add(key);
          mine.push(s.text);
        }
        // balanced to within one record
        expect(Math.abs(mine.length - texts.length / ws)).toBeLessThanOrEqual(1);
        all.push(...mine);
      }
      expect(all.sort()).toEqual([...texts].sort());
    }
  });

  it('packed loaders on 4 ranks together emit every sample exactly once', async () => {
    const seen: string[] = [];
    for (let rank = 0; rank < 4; rank++) {
      const loader = new PackedDataLoader({
        sources: [{ path: dir }],
        tokenizer: tok,
        tokenBudget: 4096,
        rank,
        worldSize: 4,
      });
      for (let b: HostBatch | null = await loader.nextHost(); b; b = await loader.nextHost()) {
        for (let k = 0; k < b.samples.length; k++) {
          seen.push(tok.decode(b.inputIds.subarray(b.cuSeqlens[k] as number, (b.cuSeqlens[k + 1] as number) - 1)));
        }
      }
    }
    expect(seen.sort()).toEqual([...texts].sort());
  });

  it('rejects an invalid rank', () => {
    expect(() => new DataSource({ path: dir }, { rank: 2, worldSize: 2 })).toThrow(/invalid rank 2 of worldSize 2/);
  });
});
