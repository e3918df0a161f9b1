import { join } from 'node:path';
import { memoryStats } from '@omnitrain/core';
import {
  ByteTokenizer,
  disposeBatch,
  firstFit,
  type HostBatch,
  IGNORE_INDEX,
  PackedDataLoader,
  packBatch,
} from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { paragraphs, tempDir, writeJsonl, writeTextFolder } from './helpers.js';

const tok = new ByteTokenizer();
const EOS = tok.eosTokenId as number;

async function drain(loader: PackedDataLoader): Promise<HostBatch[]> {
  const out: HostBatch[] = [];
  for (let b = await loader.nextHost(); b; b = await loader.nextHost()) out.push(b);
  return out;
}

describe('packBatch', () => {
  it('restarts positions, marks cuSeqlens, masks labels across boundaries, pads to a multiple', () => {
    const s = (ids: number[], trainable?: number[]) => ({
      ids,
      trainable: trainable ?? ids.map(() => 1),
      media: [],
      origin: { source: 's', file: 'f', line: 1 },
    });
    const b = packBatch([s([1, 2, 3]), s([4, 5], [0, 1]), s([6, 7, 8, 9], [0, 0, 1, 1])], {
      padToMultiple: 4,
      padId: 0,
    });
    expect(Array.from(b.inputIds)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]);
    expect(Array.from(b.positions)).toEqual([0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 1, 2]);
    expect(Array.from(b.cuSeqlens)).toEqual([0, 3, 5, 9, 12]);
    const I = IGNORE_INDEX;
    expect(Array.from(b.labels)).toEqual([2, 3, I, 5, I, I, 8, 9, I, I, I, I]);
    expect([b.numTokens, b.numPadding, b.maxSeqlen, b.samples.length]).toEqual([9, 3, 4, 3]);
    expect(firstFit([5, 4, 3, 2], 7)).toEqual([0, 3]);
    expect(firstFit([3, 4, 3, 2], 7)).toEqual([0, 1]);
  });
});

describe('PackedDataLoader packing', () => {
  const texts = paragraphs(300);
  const dir = tempDir();
  writeTextFolder(dir, texts);

  it('never splits or drops a sample: each token appears exactly once, batches fit the budget', async () => {
    const budget = 1024;
    const loader = new PackedDataLoader({
      sources: [{ path: dir }],
      tokenizer: tok,
      tokenBudget: budget,
      bufferSize: 16,
    });
    const batches = await drain(loader);
    const seen: string[] = [];
    for (const b of batches) {
      expect(b.numTokens).toBeLessThanOrEqual(budget);
      expect(b.inputIds.length).toBe(b.numTokens);
      expect(b.cuSeqlens[b.cuSeqlens.length - 1]).toBe(b.inputIds.length);
      for (let k = 0; k < b.samples.length; k++) {
        const a = b.cuSeqlens[k] as number;
        const e = b.cuSeqlens[k + 1] as number;
        expect(e - a).toBe(b.samples[k]?.length);
        const seg = b.inputIds.subarray(a, e);
        expect(seg[seg.length - 1]).toBe(EOS);
        expect(Array.from(b.positions.subarray(a, e))).toEqual(Array.from({ length: e - a }, (_, i) => i));
        expect(b.labels[e - 1]).toBe(IGNORE_INDEX);
        expect(Array.from(b.labels.subarray(a, e - 1))).toEqual(Array.from(seg.subarray(1)));
        seen.push(tok.decode(seg.subarray(0, seg.length - 1)));
      }
    }
    expect(seen.sort()).toEqual([...texts].sort());
    const st = loader.stats;
    expect([st.samples, st.truncated, st.skippedOversize, st.badRecordCount]).toEqual([texts.length, 0, 0, 0]);
    expect(st.tokens).toBe(texts.reduce((n, t) => n + Buffer.byteLength(t) + 1, 0));
    // first-fit fills batches well: on average more than 80% of the budget
    expect(st.tokens / (batches.length * budget)).toBeGreaterThan(0.8);
  });

  it('oversize samples are truncated or skipped, and counted', async () => {
    const d = tempDir();
    const long = 'x'.repeat(300);
    writeJsonl(join(d, 'a.jsonl'), [
      { text: 'short one' },
      { text: long },
      { text: 'short two' },
      { text: long + long },
    ]);
    const tr = new PackedDataLoader({ sources: [{ path: d }], tokenizer: tok, tokenBudget: 100 });
    const bt = await drain(tr);
    expect(tr.stats.truncated).toBe(2);
    const lens = bt.flatMap((b) => b.samples.map((s) => [s.length, s.truncated]));
    expect(lens).toContainEqual([100, true]);
    expect(lens).toContainEqual([10, false]);
    const sk = new PackedDataLoader({ sources: [{ path: d }], tokenizer: tok, tokenBudget: 100, oversize: 'skip' });
    const bs = await drain(sk);
    expect(sk.stats.skippedOversize).toBe(2);
    expect(bs.flatMap((b) => b.samples.map((s) => s.length))).toEqual([10, 10]);
  });

  it('pads to a multiple for sequence parallelism, with padding as its own masked segment', async () => {
    const loader = new PackedDataLoader({
      sources: [{ path: dir }],
      tokenizer: tok,
      tokenBudget: 1000,
      padToMultiple: 64,
    });
    for (let i = 0; i < 5; i++) {
      const b = (await loader.nextHost()) as HostBatch;
      expect(b.inputIds.length % 64).toBe(0);
      expect(b.inputIds.length - b.numTokens).toBe(b.numPadding);
      if (b.numPadding > 0) {
        expect(b.cuSeqlens.length).toBe(b.samples.length + 2);
        expect(Array.from(b.labels.subarray(b.numTokens)).every((l) => l === IGNORE_INDEX)).toBe(true);
        expect(Array.from(b.inputIds.subarray(b.numTokens)).every((t) => t === EOS)).toBe(true);
      }
    }
  });

  it('batches are int32 core tensors that the caller disposes; memory does not grow per batch', async () => {
    const loader = new PackedDataLoader({ sources: [{ path: dir }], tokenizer: tok, tokenBudget: 512 });
    const b0 = await loader.next();
    if (!b0) throw new Error('no batch');
    expect([b0.inputIds.dtype, b0.labels.dtype, b0.positions.dtype, b0.cuSeqlens.dtype]).toEqual([
      'int32',
      'int32',
      'int32',
      'int32',
    ]);
    expect(b0.inputIds.shape).toEqual([b0.numTokens]);
    expect(b0.cuSeqlens.shape).toEqual([b0.samples.length + 1]);
    expect(b0.index).toBe(0);
    const host = tok.encode(texts[0] as string);
    expect(b0.inputIds.toArray().slice(0, host.length)).toEqual(host);
    disposeBatch(b0);
    const before = memoryStats('cpu');
    for (let i = 0; i < 5; i++) {
      const b = await loader.next();
      if (!b) break;
      disposeBatch(b);
    }
    const after = memoryStats('cpu');
    expect([after.liveTensors, after.liveStorages, after.liveBytes]).toEqual([
      before.liveTensors,
      before.liveStorages,
      before.liveBytes,
    ]);
  });
});
