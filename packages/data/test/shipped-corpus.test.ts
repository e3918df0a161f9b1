import { join } from 'node:path';
import {
  ByteTokenizer,
  ChatTemplate,
  DataSource,
  HfTokenizer,
  type HostBatch,
  PackedDataLoader,
} from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { fixtures, paragraphs, repoRoot } from './helpers.js';

const ex = join(repoRoot, 'examples/data');

describe('the shipped corpus (examples/data)', () => {
  it('JSONL and Parquet versions hold exactly the speeches of tiny-shakespeare.txt', async () => {
    const want = paragraphs(10_000);
    for (const f of ['tiny-shakespeare.jsonl', 'tiny-shakespeare.parquet']) {
      const src = new DataSource({ path: join(ex, f), kind: 'text' });
      const got: string[] = [];
      for (let s = await src.next(); s; s = await src.next()) if (s.kind === 'text') got.push(s.text);
      expect(got, f).toEqual(want);
    }
  });

  it('packs the chat version with the BPE tokenizer and the chat_template of its tokenizer_config.json', async () => {
    const tok = await HfTokenizer.fromFile(join(fixtures, 'bpe-shakespeare'));
    expect(tok.chatTemplate).toContain('<|im_start|>');
    const loader = new PackedDataLoader({
      sources: [{ path: join(ex, 'tiny-shakespeare-chat.jsonl') }, { path: join(ex, 'tiny-shakespeare.parquet') }],
      tokenizer: tok,
      tokenBudget: 512,
    });
    const b = (await loader.nextHost()) as HostBatch;
    expect(b.numTokens).toBeGreaterThan(400);
    expect(b.numTokens).toBeLessThanOrEqual(512);
    const chat = b.samples.findIndex((s) => s.origin.file.endsWith('chat.jsonl'));
    expect(chat).toBeGreaterThanOrEqual(0);
    const a = b.cuSeqlens[chat] as number;
    const seg = Array.from(b.inputIds.subarray(a, b.cuSeqlens[chat + 1] as number));
    const template = ChatTemplate.fromTokenizer(tok);
    expect(tok.decode(seg)).toMatch(
      /^<\|im_start\|>user\n[\s\S]*<\|im_end\|>\n<\|im_start\|>assistant\n[\s\S]*<\|im_end\|>\n$/,
    );
    expect(template.source).toBe(tok.chatTemplate);
    const byte = new PackedDataLoader({
      sources: [{ path: join(ex, 'tiny-shakespeare.jsonl') }],
      tokenizer: new ByteTokenizer(),
      tokenBudget: 2048,
    });
    let n = 0;
    for (let x = await byte.nextHost(); x; x = await byte.nextHost()) n += x.samples.length;
    expect(n).toBe(713);
  });
});
