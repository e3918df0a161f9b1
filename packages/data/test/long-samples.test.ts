import { join } from 'node:path';
import { ByteTokenizer, type DataLoaderOptions, type HostBatch, IGNORE_INDEX, PackedDataLoader } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { paragraphs, tempDir, writeJsonl } from './helpers.js';

const tok = new ByteTokenizer();
const EOS = tok.eosTokenId as number;

async function drain(loader: PackedDataLoader, n = 1e9): Promise<HostBatch[]> {
  const out: HostBatch[] = [];
  for (let i = 0; i < n; i++) {
    const b = await loader.nextHost();
    if (!b) break;
    out.push(b);
  }
  return out;
}

function plain(b: HostBatch) {
  return {
    ids: Array.from(b.inputIds),
    labels: Array.from(b.labels),
    pos: Array.from(b.positions),
    cu: Array.from(b.cuSeqlens),
    samples: b.samples.map((s) => ({ origin: s.origin, length: s.length, piece: s.piece })),
  };
}

describe("oversize: 'split' (long samples cut into budget-sized pieces)", () => {
  // short speeches mixed with long ones (several joined: up to ~6 budgets long)
  const speeches = paragraphs(240);
  const texts: string[] = [];
  for (let i = 0; i < speeches.length; i += 1 + (i % 7)) texts.push(speeches.slice(i, i + 1 + (i % 7)).join('\n\n'));
  const dir = tempDir();
  writeJsonl(
    join(dir, 'a.jsonl'),
    texts.map((text) => ({ text })),
  );
  const budget = 160;
  const base: DataLoaderOptions = { sources: [{ path: dir }], tokenizer: tok, tokenBudget: budget, bufferSize: 6 };

  it('pieces reassemble to the original tokens; no label crosses a piece boundary; nothing is lost', async () => {
    const loader = new PackedDataLoader({ ...base, oversize: 'split' });
    const batches = await drain(loader);
    const pieces = new Map<string, Array<{ index: number; count: number; ids: number[]; labels: number[] }>>();
    let targets = 0;
    for (const b of batches) {
      expect(b.numTokens).toBeLessThanOrEqual(budget);
      for (let k = 0; k < b.samples.length; k++) {
        const s = b.samples[k] as HostBatch['samples'][number];
        const a = b.cuSeqlens[k] as number;
        const e = b.cuSeqlens[k + 1] as number;
        expect(e - a).toBe(s.length);
        expect(s.length).toBeLessThanOrEqual(budget);
        expect(Array.from(b.positions.subarray(a, e))).toEqual(Array.from({ length: e - a }, (_, i) => i));
        const ids = Array.from(b.inputIds.subarray(a, e));
        const labels = Array.from(b.labels.subarray(a, e));
        // labels: next token inside the piece, none at its last token (the next piece is another sample)
        expect(labels.slice(0, -1)).toEqual(ids.slice(1));
        expect(labels[labels.length - 1]).toBe(IGNORE_INDEX);
        targets += labels.filter((l) => l !== IGNORE_INDEX).length;
        const key = JSON.stringify(s.origin);
        const list = pieces.get(key) ?? [];
        list.push({ index: s.piece?.index ?? 0, count: s.piece?.count ?? 1, ids, labels });
        pieces.set(key, list);
      }
    }
    expect(pieces.size).toBe(texts.length);
    let long = 0;
    for (const [key, list] of pieces) {
      const line = (JSON.parse(key) as { line: number }).line;
      list.sort((x, y) => x.index - y.index);
      expect(list.map((p) => p.index)).toEqual(list.map((_, k) => k));
      expect(list.every((p) => p.count === list.length)).toBe(true);
      const ids = list.flatMap((p) => p.ids);
      expect(ids).toEqual([...tok.encode(texts[line - 1] as string), EOS]);
      // every piece but the last is exactly the budget
      for (const p of list.slice(0, -1)) expect(p.ids.length).toBe(budget);
      if (list.length > 1) long++;
    }
    expect(long).toBeGreaterThan(10);
    const st = loader.stats;
    expect(st.split).toBe(long);
    expect(st.truncated).toBe(0);
    const allTokens = texts.reduce((n, t) => n + Buffer.byteLength(t) + 1, 0);
    expect(st.tokens).toBe(allTokens);
    // one target lost per sample end and per piece boundary, none otherwise
    const pieceCount = [...pieces.values()].reduce((n, l) => n + l.length, 0);
    expect(targets).toBe(allTokens - pieceCount);
    expect(st.samples).toBe(pieceCount);
  });

  it("'truncate' (the default) is unchanged: the first budget tokens of a long sample, the rest dropped", async () => {
    const tr = new PackedDataLoader(base);
    const batches = await drain(tr);
    const seen = batches.flatMap((b) =>
      b.samples.map((s, k) => ({
        s,
        ids: Array.from(b.inputIds.subarray(b.cuSeqlens[k] as number, b.cuSeqlens[k + 1] as number)),
      })),
    );
    expect(seen.length).toBe(texts.length);
    let cut = 0;
    for (const { s, ids } of seen) {
      const full = [...tok.encode(texts[(s.origin.line as number) - 1] as string), EOS];
      expect(ids).toEqual(full.slice(0, budget));
      expect(s.truncated).toBe(full.length > budget);
      expect(s.piece).toBeUndefined();
      if (s.truncated) cut++;
    }
    expect(tr.stats.truncated).toBe(cut);
    expect(tr.stats.split).toBe(0);
  });

  it('rejects an unknown mode, naming it', () => {
    expect(() => new PackedDataLoader({ ...base, oversize: 'chunk' as never })).toThrow(
      /oversize must be 'truncate', 'skip' or 'split', got "chunk"/,
    );
  });

  for (const worldSize of [1, 2]) {
    it(`resume mid-split gives the batches of an uninterrupted run (${worldSize} rank${worldSize > 1 ? 's' : ''})`, async () => {
      for (let rank = 0; rank < worldSize; rank++) {
        const opts: DataLoaderOptions = { ...base, oversize: 'split', rank, worldSize, padToMultiple: 8 };
        const all = (await drain(new PackedDataLoader(opts))).map(plain);
        expect(all.length).toBeGreaterThan(10);
        // states taken while pieces of a split sample are still waiting in the buffer
        const cuts: number[] = [];
        for (let k = 1; k < all.length - 1 && cuts.length < 3; k++) {
          const prev = all[k - 1]?.samples ?? [];
          const last = prev[prev.length - 1];
          if (last?.piece && last.piece.index < last.piece.count - 1) cuts.push(k);
        }
        expect(cuts.length).toBeGreaterThan(0);
        for (const k of [...cuts, 0, all.length - 1]) {
          const a = new PackedDataLoader(opts);
          const first = (await drain(a, k)).map(plain);
          const saved = JSON.stringify(a.state());
          await a.close();
          const b = new PackedDataLoader(opts);
          await b.restore(JSON.parse(saved));
          const rest = (await drain(b)).map(plain);
          expect([...first, ...rest]).toEqual(all);
          expect(b.stats.batches).toBe(all.length);
        }
      }
    });
  }
});
