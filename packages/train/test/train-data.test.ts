import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '@omnitrain/data';
import { type StepRows, TrainData } from '@omnitrain/train';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'omnitrain-data-'));
const file = join(dir, 'c.jsonl');
writeFileSync(
  file,
  Array.from({ length: 23 }, (_, i) =>
    JSON.stringify({ text: `record ${i}: ${'abcdefgh'.slice(0, (i * 5) % 8)}` }),
  ).join('\n'),
);
const make = (from: number, to: number) =>
  new TrainData({
    path: file,
    textField: 'text',
    tokenizer: new ByteTokenizer(),
    seqLen: 24,
    lanes: 4,
    from,
    to,
    seed: 3,
    bufferSize: 4,
  });
const cat = (parts: StepRows[]) => parts.flatMap((p) => [...p.inputIds]);

describe('TrainData (lanes over @omnitrain/data)', () => {
  it('gives the same global batch at any data-parallel size, across epochs', async () => {
    const one = make(0, 4);
    const halves = [make(0, 2), make(2, 4)];
    for (let step = 0; step < 12; step++) {
      const a = await one.next();
      const b = [await halves[0]!.next(), await halves[1]!.next()];
      expect(cat([a]), `step ${step}`).toEqual(cat(b));
      expect(a.targetCount).toBe(b[0]!.targetCount + b[1]!.targetCount);
      expect(a.inputIds.length).toBe(4 * 24);
      expect(a.cuSeqlens.at(-1)).toBe(4 * 24);
    }
    expect(Object.values(one.laneEpochs).every((e) => e >= 1)).toBe(true); // 23 records: every lane wrapped
    for (const d of [one, ...halves]) await d.close();
  });

  it('state saved by 2 ranks restores on 1 rank: the next batches are those of an uninterrupted run', async () => {
    const straight = make(0, 4);
    const ranks = [make(0, 2), make(2, 4)];
    for (let i = 0; i < 5; i++) {
      await straight.next();
      for (const r of ranks) await r.next();
    }
    const saved = JSON.parse(JSON.stringify({ ...ranks[0]!.state(), ...ranks[1]!.state() }));
    const resumed = make(0, 4);
    await resumed.restore(saved);
    for (let i = 0; i < 6; i++) expect(cat([await resumed.next()])).toEqual(cat([await straight.next()]));
    const missing = make(0, 4);
    await expect(missing.restore(ranks[0]!.state())).rejects.toThrow(/no state for data lane 2/);
    for (const d of [straight, ...ranks, resumed, missing]) await d.close();
  });

  it("data.long_samples 'split' trains on every token of a long record, and resumes mid-record", async () => {
    const long = join(dir, 'long.jsonl');
    const texts = Array.from({ length: 9 }, (_, i) => `${i}:${'the quick brown fox jumps. '.repeat(1 + (i % 4) * 2)}`);
    writeFileSync(long, texts.map((text) => JSON.stringify({ text })).join('\n'));
    const mk = (longSamples?: 'split' | 'truncate') =>
      new TrainData({
        path: long,
        textField: 'text',
        tokenizer: new ByteTokenizer(),
        seqLen: 32,
        lanes: 1,
        from: 0,
        to: 1,
        seed: 0,
        bufferSize: 2,
        longSamples,
      });
    const total = texts.reduce((n, t) => n + t.length + 1, 0);
    const count = async (d: TrainData) => {
      let tokens = 0;
      while (Object.values(d.laneEpochs)[0] === 0) tokens += (await d.next()).tokens;
      return tokens;
    };
    const split = mk('split');
    // the step that wraps into epoch 1 also counts its row
    const seen = await count(split);
    expect(seen).toBeGreaterThanOrEqual(total);
    expect(seen).toBeLessThan(total + 32);
    expect(await count(mk('truncate'))).toBeLessThan(total - 100);
    // resume mid-record: the rows of an uninterrupted run
    const straight = mk('split');
    const a = mk('split');
    for (let i = 0; i < 3; i++) {
      await straight.next();
      await a.next();
    }
    const b = mk('split');
    await b.restore(JSON.parse(JSON.stringify(a.state())));
    for (let i = 0; i < 8; i++) expect(cat([await b.next()])).toEqual(cat([await straight.next()]));
    for (const d of [split, straight, a, b]) await d.close();
  });
});
