import type { DecodeOptions, TextTokenizer } from './tokenizer.js';

/** Options of {@link ByteTokenizer}. */
export interface ByteTokenizerOptions {
  /** Special tokens, given ids 256, 257, ... in order. Default `['<|endoftext|>', '<|im_start|>', '<|im_end|>']`. */
  specialTokens?: string[];
  /** Which special token ends a sequence. Default the first special token. */
  eosToken?: string | null;
  /** Which special token begins a sequence. Default none. */
  bosToken?: string | null;
  /** Which special token pads. Default the EOS token. */
  padToken?: string | null;
}

/**
 * The built-in tokenizer of the embedded demo: one id per UTF-8 byte (0-255), then the special
 * tokens (256...). Special tokens written in the text are matched first, as Hugging Face matches
 * added tokens; everything else is its UTF-8 bytes, so any string round-trips exactly.
 */
export class ByteTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** The special tokens, in id order (id = 256 + index). */
  readonly specialTokens: readonly string[];
  private readonly specialIds = new Map<string, number>();
  private readonly splitter: RegExp | null;
  private readonly encoder = new TextEncoder();
  private scratch = new Uint8Array(1024);

  constructor(opts: ByteTokenizerOptions = {}) {
    const specials = opts.specialTokens ?? ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
    specials.forEach((s, i) => {
      if (s.length === 0) throw new Error('ByteTokenizer: empty special token');
      if (this.specialIds.has(s)) throw new Error(`ByteTokenizer: duplicate special token ${JSON.stringify(s)}`);
      this.specialIds.set(s, 256 + i);
    });
    this.specialTokens = [...specials];
    this.vocabSize = 256 + specials.length;
    const pick = (name: string, tok: string | null | undefined): [string | null, number | null] => {
      if (tok == null) return [null, null];
      const id = this.specialIds.get(tok);
      if (id === undefined) throw new Error(`ByteTokenizer: ${name} ${JSON.stringify(tok)} is not a special token`);
      return [tok, id];
    };
    [this.eosToken, this.eosTokenId] = pick(
      'eosToken',
      opts.eosToken === undefined ? (specials[0] ?? null) : opts.eosToken,
    );
    [this.bosToken, this.bosTokenId] = pick('bosToken', opts.bosToken);
    this.padTokenId = pick('padToken', opts.padToken === undefined ? this.eosToken : opts.padToken)[1];
    // Longest first, so that a special token that is a prefix of another never wins.
    const alts = [...specials].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.splitter = alts.length ? new RegExp(`(${alts.join('|')})`) : null;
  }

  /** Ids of `text`: special tokens as their ids, the rest as UTF-8 bytes. `addSpecialTokens` prepends BOS when there is one. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.addSpecialTokens && this.bosTokenId !== null) out.push(this.bosTokenId);
    const parts = this.splitter ? text.split(this.splitter) : [text];
    for (let p = 0; p < parts.length; p++) {
      const part = parts[p] as string;
      if (p % 2 === 1) {
        out.push(this.specialIds.get(part) as number);
        continue;
      }
      this.pushBytes(part, out);
    }
    return out;
  }

  /** Text of `ids`; invalid UTF-8 becomes U+FFFD as in Hugging Face's byte-level decoder. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    let text = '';
    const bytes: number[] = [];
    const flush = () => {
      if (bytes.length) text += new TextDecoder().decode(new Uint8Array(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id >= 0 && id < 256) bytes.push(id);
      else if (id >= 256 && id < this.vocabSize) {
        flush();
        if (!opts.skipSpecialTokens) text += this.specialTokens[id - 256];
      } else
        throw new Error(
          `ByteTokenizer.decode: id ${id} at position ${i} is outside the vocabulary [0, ${this.vocabSize})`,
        );
    }
    flush();
    return text;
  }

  tokenToId(token: string): number | undefined {
    const s = this.specialIds.get(token);
    if (s !== undefined) return s;
    const b = this.encoder.encode(token);
    return b.length === 1 ? b[0] : undefined;
  }

  private pushBytes(s: string, out: number[]): void {
    if (s.length === 0) return;
    if (this.scratch.length < s.length * 3) this.scratch = new Uint8Array(s.length * 3);
    const { written } = this.encoder.encodeInto(s, this.scratch);
    for (let i = 0; i < written; i++) out.push(this.scratch[i] as number);
  }
}
