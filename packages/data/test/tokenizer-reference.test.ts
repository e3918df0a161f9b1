import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteTokenizer, HfTokenizer } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { fixtures } from './helpers.js';

type Reference = {
  vocabSize: number;
  cases: Array<{ text: string; ids: number[]; tokens: string[]; decoded: string }>;
};
const dir = join(fixtures, 'bpe-shakespeare');
const load = (d: string) => JSON.parse(readFileSync(join(d, 'tokenizer-reference.json'), 'utf8')) as Reference;
const ref = load(dir);

describe('HfTokenizer (byte-level BPE tokenizer.json) against the Rust tokenizers library', () => {
  for (const [variant, d] of [
    ['GPT-2 layout: ByteLevel pre-tokenizer with its regex', dir],
    [
      'Qwen2 layout: NFC, Split with an Oniguruma regex, ByteLevel without regex',
      join(fixtures, 'bpe-shakespeare-split'),
    ],
  ] as const) {
    it(`${variant}: reference ids, tokens and decoded text for every string (Unicode, whitespace runs, special tokens)`, async () => {
      const r = load(d);
      const tok = await HfTokenizer.fromFile(d);
      expect(tok.vocabSize).toBe(r.vocabSize);
      expect(r.cases.length).toBeGreaterThanOrEqual(10);
      for (const c of r.cases) {
        expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
        expect(tok.tokenize(c.text), JSON.stringify(c.text)).toEqual(c.tokens);
        expect(tok.decode(c.ids), JSON.stringify(c.text)).toBe(c.decoded);
      }
    });
  }

  it('the two layouts really tokenize differently (the fixtures are not the same test twice)', () => {
    const other = load(join(fixtures, 'bpe-shakespeare-split'));
    const differ = ref.cases.filter((c, i) => JSON.stringify(c.ids) !== JSON.stringify(other.cases[i]?.ids));
    expect(differ.length).toBeGreaterThanOrEqual(2);
  });

  it('reads special tokens from tokenizer_config.json and skips them on request', async () => {
    const tok = await HfTokenizer.fromFile(join(dir, 'tokenizer.json'));
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosTokenId).toBe(tok.tokenToId('<|im_end|>'));
    expect(tok.padTokenId).toBe(tok.tokenToId('<|endoftext|>'));
    const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
    expect(ids[0]).toBe(tok.tokenToId('<|im_start|>'));
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
  });

  it('says what is wrong with a file that is not a tokenizer', async () => {
    expect(() => new HfTokenizer({ foo: 1 }, {}, 'x/tokenizer.json')).toThrow(/x\/tokenizer.json has no "model"/);
    await expect(HfTokenizer.fromFile('/nonexistent/tok')).rejects.toThrow(/does not exist/);
  });
});

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();
  it('is UTF-8 bytes plus special tokens, and round-trips any string', () => {
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('hé')).toEqual([104, 0xc3, 0xa9]);
    expect(tok.encode('a<|im_end|>b<|endoftext|>')).toEqual([97, 258, 98, 256]);
    for (const c of ref.cases) {
      const ids = tok.encode(c.text);
      expect(tok.decode(ids)).toBe(c.text);
      expect(ids.every((i) => i >= 0 && i < tok.vocabSize)).toBe(true);
    }
    expect(tok.decode(tok.encode('x<|im_start|>y'), { skipSpecialTokens: true })).toBe('xy');
    expect(tok.eosTokenId).toBe(256);
  });
  it('prefers the longest special token and rejects unknown ids', () => {
    const t = new ByteTokenizer({ specialTokens: ['<a>', '<a>b'] });
    expect(t.encode('<a>b<a>')).toEqual([257, 256]);
    expect(() => t.decode([300])).toThrow(/id 300 at position 0 is outside the vocabulary \[0, 258\)/);
  });
});
