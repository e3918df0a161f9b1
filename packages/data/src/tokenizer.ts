/** Options of {@link TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (BOS/EOS templates). Default false: training data adds what it needs itself. */
  addSpecialTokens?: boolean;
}

/** Options of {@link TextTokenizer.decode}. */
export interface DecodeOptions {
  /** Leave special tokens out of the text. Default false. */
  skipSpecialTokens?: boolean;
}

/**
 * What the data pipeline needs from a tokenizer: text to ids and back, special-token lookup.
 * Implemented by {@link ByteTokenizer} (built in) and {@link HfTokenizer} (Hugging Face `tokenizer.json`).
 */
export interface TextTokenizer {
  /** Number of ids (largest id + 1). */
  readonly vocabSize: number;
  /** End-of-sequence token and its id, when the tokenizer has one. */
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  /** Beginning-of-sequence token and its id, when the tokenizer has one. */
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  /** Padding id, when the tokenizer has one. */
  readonly padTokenId: number | null;
  /** Token ids of `text`. Special tokens written in the text are recognised as single ids. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of `ids`. */
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** Id of one token string (special or regular), or undefined. */
  tokenToId(token: string): number | undefined;
}
