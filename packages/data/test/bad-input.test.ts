import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteTokenizer, DataSource, type HostBatch, PackedDataLoader } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { tempDir, writeJsonl, writeParquet } from './helpers.js';

const tok = new ByteTokenizer();

async function drainTexts(loader: PackedDataLoader): Promise<string[]> {
  const out: string[] = [];
  for (let b: HostBatch | null = await loader.nextHost(); b; b = await loader.nextHost()) {
    for (let k = 0; k < b.samples.length; k++) {
      out.push(tok.decode(b.inputIds.subarray(b.cuSeqlens[k] as number, (b.cuSeqlens[k + 1] as number) - 1)));
    }
  }
  return out;
}

describe('bad input', () => {
  const dir = tempDir();
  const file = writeJsonl(join(dir, 'mixed.jsonl'), [
    { text: 'one' },
    '{"text": "two"',
    '',
    { text: 'three' },
    'not json at all',
    { title: 'no text field' },
    { text: 42 },
    { text: 'four' },
  ]);

  it('a malformed JSON line or a record without the field is skipped and counted with file and line', async () => {
    const loader = new PackedDataLoader({ sources: [{ path: file }], tokenizer: tok, tokenBudget: 64 });
    expect(await drainTexts(loader)).toEqual(['one', 'three', 'four']);
    const st = loader.stats;
    expect(st.badRecordCount).toBe(4);
    expect(st.badRecords.map((r) => [r.file, r.line])).toEqual([
      [file, 2],
      [file, 5],
      [file, 6],
      [file, 7],
    ]);
    expect(st.badRecords[0]?.reason).toMatch(/^malformed JSON/);
    expect(st.badRecords[2]?.reason).toBe('missing field "text"');
    expect(st.badRecords[3]?.reason).toBe('field "text" must be a string, got number');
  });

  it("with onBadRecord: 'throw' the error names the file and line", async () => {
    const loader = new PackedDataLoader({
      sources: [{ path: file }],
      tokenizer: tok,
      tokenBudget: 64,
      onBadRecord: 'throw',
    });
    await expect(loader.nextHost()).rejects.toThrow(`${file}:2: malformed JSON`);
  });

  it('a missing field names the field and the file', async () => {
    const f = writeJsonl(join(dir, 'chat.jsonl'), [{ text: 'hello' }]);
    const src = new DataSource({ path: f, kind: 'chat' }, { onBadRecord: 'throw' });
    await expect(src.next()).rejects.toThrow(`${f}:1: missing field "messages"`);
    const g = writeJsonl(join(dir, 'chat2.jsonl'), [{ conversation: [{ role: 'user', text: 'hi' }] }]);
    const src2 = new DataSource({ path: g, messagesField: 'conversation' }, { onBadRecord: 'throw' });
    await expect(src2.next()).rejects.toThrow(`${g}:1: missing field "content" (a string) in conversation[0]`);
    const src3 = new DataSource({ path: f, textField: 'body' }, { onBadRecord: 'throw' });
    await expect(src3.next()).rejects.toThrow(`${f}:1: missing field "body"`);
  });

  it('a Parquet row with a missing or wrong value is skipped and counted with file and row', async () => {
    const p = writeParquet(
      join(dir, 'rows.parquet'),
      { text: ['a', null, 'b', 'c', null, 'd'], other: ['x', 'y', 'z', 'u', 'v', 'w'] },
      4,
    );
    const loader = new PackedDataLoader({ sources: [{ path: p }], tokenizer: tok, tokenBudget: 64 });
    expect(await drainTexts(loader)).toEqual(['a', 'b', 'c', 'd']);
    expect(loader.stats.badRecords).toEqual([
      { source: 'rows.parquet', file: p, row: 1, reason: 'missing field "text"' },
      { source: 'rows.parquet', file: p, row: 4, reason: 'missing field "text"' },
    ]);
    const chat = writeParquet(join(dir, 'chat.parquet'), {
      messages: ['[{"role":"user","content":"hi"}]', '[{"role": "user"'],
    });
    const src = new DataSource({ path: chat, kind: 'chat' });
    const bad: unknown[] = [];
    const s2 = new DataSource({ path: chat, kind: 'chat' }, { badRecords: bad as never });
    expect((await src.next())?.kind).toBe('chat');
    await s2.next();
    expect(await s2.next()).toBeNull();
    expect(bad).toEqual([
      { source: 'chat.parquet', file: chat, row: 1, reason: 'field "messages" is a string that is not JSON' },
    ]);
  });

  it('an empty source is a clear error', async () => {
    const empty = tempDir();
    expect(() => new DataSource({ path: empty, name: 'web' })).toThrow(
      `data source "web" is empty: no .jsonl/.json/.parquet files under ${empty}`,
    );
    const blank = join(empty, 'sub');
    mkdirSync(blank);
    writeFileSync(join(blank, 'x.jsonl'), '\n\n');
    writeFileSync(join(blank, 'y.jsonl'), '');
    const loader = new PackedDataLoader({ sources: [{ path: blank, name: 'blank' }], tokenizer: tok, tokenBudget: 8 });
    await expect(loader.nextHost()).rejects.toThrow(
      `data source "blank" is empty: no records in ${join(blank, 'x.jsonl')}, ${join(blank, 'y.jsonl')}`,
    );
    expect(() => new DataSource({ path: join(empty, 'missing.jsonl') })).toThrow(/path .*missing.jsonl does not exist/);
    expect(() => new PackedDataLoader({ sources: [], tokenizer: tok, tokenBudget: 8 })).toThrow(/no sources given/);
  });

  it('chat samples without a chat template say so', async () => {
    const f = writeJsonl(join(dir, 'c.jsonl'), [{ messages: [{ role: 'user', content: 'hi' }] }]);
    const loader = new PackedDataLoader({ sources: [{ path: f }], tokenizer: tok, tokenBudget: 64 });
    await expect(loader.nextHost()).rejects.toThrow(`${f} has chat samples but no chat template was given`);
  });
});
