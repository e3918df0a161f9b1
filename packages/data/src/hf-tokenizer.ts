import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './tokenizer.js';

type Json = Record<string, unknown>;

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/**
 * A Hugging Face `tokenizer.json` (BPE including byte-level, WordPiece, Unigram; normalizers,
 * pre-tokenizers, added/special tokens) run by `@huggingface/tokenizers`. Special tokens come from
 * `tokenizer_config.json` when given (`bos_token`, `eos_token`, `pad_token`, `chat_template`).
 */
export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** The `chat_template` of `tokenizer_config.json`, when it has one (a string template). */
  readonly chatTemplate: string | null;
  private readonly tok: Tokenizer;

  constructor(tokenizerJson: Json, config: Json = {}, where = 'tokenizer.json') {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !tokenizerJson.model) {
      throw new Error(`HfTokenizer: ${where} has no "model": not a Hugging Face tokenizer.json`);
    }
    try {
      this.tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new Error(`HfTokenizer: cannot build the tokenizer from ${where}: ${(e as Error).message}`);
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    const look = (key: string): [string | null, number | null] => {
      const s = tokenString(config[key]);
      if (s === null) return [null, null];
      const id = this.tok.token_to_id(s);
      if (id === undefined)
        throw new Error(`HfTokenizer: ${key} ${JSON.stringify(s)} of the config is not in the vocabulary of ${where}`);
      return [s, id];
    };
    [this.eosToken, this.eosTokenId] = look('eos_token');
    [this.bosToken, this.bosTokenId] = look('bos_token');
    this.padTokenId = look('pad_token')[1];
    const ct = config.chat_template;
    this.chatTemplate = typeof ct === 'string' ? ct : null;
  }

  /**
   * Load `tokenizer.json` (and `tokenizer_config.json` beside it, if present) from a file or a
   * model folder.
   */
  static async fromFile(path: string): Promise<HfTokenizer> {
    let dir = path;
    let file = path;
    const st = await stat(path).catch(() => {
      throw new Error(`HfTokenizer.fromFile: ${path} does not exist`);
    });
    if (st.isDirectory()) file = join(path, 'tokenizer.json');
    else dir = join(path, '..');
    const text = await readFile(file, 'utf8').catch(() => {
      throw new Error(`HfTokenizer.fromFile: cannot read ${file}`);
    });
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`HfTokenizer.fromFile: ${file} is not valid JSON: ${(e as Error).message}`);
    }
    let config: Json = {};
    const cfgText = await readFile(join(dir, 'tokenizer_config.json'), 'utf8').catch(() => null);
    if (cfgText !== null) config = JSON.parse(cfgText);
    return new HfTokenizer(json, config, file);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.tok.decode(Array.from(ids), {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** Token strings of `text` (as the tokenizer's vocabulary spells them). */
  tokenize(text: string): string[] {
    return text.length === 0 ? [] : this.tok.tokenize(text);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}
