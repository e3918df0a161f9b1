import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteTokenizer, type DataLoaderOptions, HfTokenizer, type HostBatch, PackedDataLoader } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { fixtures, paragraphs, tempDir, writeJsonl, writeParquet, writeTextFolder } from './helpers.js';

const chatml = (
  JSON.parse(readFileSync(join(fixtures, 'chat-templates.json'), 'utf8')) as { templates: { chatml: string } }
).templates.chatml;

function plain(b: HostBatch) {
  return {
    ids: Array.from(b.inputIds),
    labels: Array.from(b.labels),
    pos: Array.from(b.positions),
    cu: Array.from(b.cuSeqlens),
    origins: b.samples.map((s) => s.origin),
  };
}

async function take(loader: PackedDataLoader, n: number) {
  const out: ReturnType<typeof plain>[] = [];
  for (let i = 0; i < n; i++) {
    const b = await loader.nextHost();
    if (!b) break;
    out.push(plain(b));
  }
  return out;
}

describe('resume: state → JSON → restore gives the batches of an uninterrupted run', () => {
  const texts = paragraphs(400);
  const textDir = tempDir();
  writeTextFolder(textDir, texts);
  // a chat source (speech k asks, speech k+1 answers), half JSONL, half Parquet with JSON strings
  const chatDir = tempDir();
  const convs = texts.slice(0, 120).map((t, i) => [
    { role: 'user', content: t },
    { role: 'assistant', content: texts[i + 1] as string },
  ]);
  writeJsonl(
    join(chatDir, 'chat-0.jsonl'),
    convs.slice(0, 60).map((messages, i) => ({ messages, images: [`img/${i}.png`] })),
  );
  writeParquet(join(chatDir, 'chat-1.parquet'), { messages: convs.slice(60).map((m) => JSON.stringify(m)) }, 9);

  const configs: Array<[string, () => Promise<DataLoaderOptions>]> = [
    [
      'byte tokenizer, one text folder, small buffer',
      async () => ({ sources: [{ path: textDir }], tokenizer: new ByteTokenizer(), tokenBudget: 600, bufferSize: 5 }),
    ],
    [
      'BPE tokenizer, weighted mix of text and chat sources, 2 ranks, padding',
      async () => ({
        sources: [
          { name: 'text', path: textDir, weight: 3 },
          { name: 'chat', path: chatDir, weight: 1, kind: 'chat' as const },
        ],
        tokenizer: await HfTokenizer.fromFile(join(fixtures, 'bpe-shakespeare')),
        chatTemplate: chatml,
        tokenBudget: 256,
        bufferSize: 12,
        padToMultiple: 8,
        rank: 1,
        worldSize: 2,
        seed: 1234,
      }),
    ],
    [
      "byte tokenizer, long samples split into pieces (oversize: 'split'), 2 ranks",
      async () => ({
        sources: [{ path: textDir }],
        tokenizer: new ByteTokenizer(),
        tokenBudget: 120,
        bufferSize: 4,
        oversize: 'split' as const,
        rank: 0,
        worldSize: 2,
      }),
    ],
  ];

  for (const [name, make] of configs) {
    it(name, async () => {
      const opts = await make();
      const ref = new PackedDataLoader(opts);
      const all = await take(ref, 1e9);
      expect(all.length).toBeGreaterThan(10);
      for (const k of [0, 1, 7, all.length - 2]) {
        const a = new PackedDataLoader(opts);
        const first = await take(a, k);
        const saved = JSON.stringify(a.state());
        await a.close();
        const b = new PackedDataLoader(opts);
        await b.restore(JSON.parse(saved));
        const rest = await take(b, 1e9);
        expect([...first, ...rest]).toEqual(all);
        expect(b.stats.batches).toBe(all.length);
      }
    });
  }

  it('mixing follows the weights and is deterministic per seed', async () => {
    const opts = (await configs[1]?.[1]()) as DataLoaderOptions;
    const count = async (seed: number) => {
      const l = new PackedDataLoader({ ...opts, seed, rank: 0, worldSize: 1, tokenBudget: 2048 });
      const first = await take(l, 6);
      return first.flatMap((b) => b.origins.map((o) => o.source));
    };
    const a = await count(1);
    expect(await count(1)).toEqual(a);
    expect(await count(2)).not.toEqual(a);
    const frac = a.filter((s) => s === 'text').length / a.length;
    expect(frac).toBeGreaterThan(0.6);
    expect(frac).toBeLessThan(0.9);
  });

  it('chat samples keep their media references and mask non-assistant tokens', async () => {
    const tok = await HfTokenizer.fromFile(join(fixtures, 'bpe-shakespeare'));
    const l = new PackedDataLoader({
      sources: [{ path: join(chatDir, 'chat-0.jsonl') }],
      tokenizer: tok,
      chatTemplate: chatml,
      tokenBudget: 1024,
    });
    const b = (await l.nextHost()) as HostBatch;
    const s0 = b.samples[0];
    expect(s0?.media).toEqual([
      { kind: 'image', path: 'img/0.png', resolved: join(chatDir, 'img/0.png'), field: 'images' },
    ]);
    // labels inside sample 0: targets only where the next token is in the assistant reply
    const n = s0?.length as number;
    const targets = Array.from(b.labels.subarray(0, n)).filter((x) => x !== -100);
    const reply = `${convs[0]?.[1]?.content}<|im_end|>\n`;
    expect(tok.decode(targets)).toBe(reply);
  });

  it('refuses a state saved for another rank or other files', async () => {
    const opts = (await configs[0]?.[1]()) as DataLoaderOptions;
    const a = new PackedDataLoader(opts);
    await take(a, 2);
    const st = a.state();
    const other = new PackedDataLoader({ ...opts, rank: 1, worldSize: 2 });
    await expect(other.restore(st)).rejects.toThrow(/state is for rank 0 of 1, this loader is rank 1 of 2/);
    const files = new PackedDataLoader({
      ...opts,
      sources: [{ path: join(textDir, 'a.jsonl'), name: opts.sources[0]?.name }],
    });
    await expect(files.restore(st)).rejects.toThrow(/the saved state is for source/);
  });
});
