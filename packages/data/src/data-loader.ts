import { type Device, dispose, Generator, type GeneratorState, type Tensor, tensor } from '@omnitrain/core';
import { ChatTemplate } from './chat-template.js';
import { firstFit, type HostBatch, packBatch, type TokenizedSample } from './packing.js';
import type { Sample } from './sample.js';
import { type BadRecord, type BadRecordPolicy, DataSource, type SourceSpec, type SourceState } from './source.js';
import type { TextTokenizer } from './tokenizer.js';

/** Options of {@link PackedDataLoader}. */
export interface DataLoaderOptions {
  /** One or more sources; with several, each buffer refill draws a source with probability weight / sum of weights. */
  sources: SourceSpec[];
  tokenizer: TextTokenizer;
  /** Chat template for chat samples (a template text or a {@link ChatTemplate}); default the tokenizer's `chatTemplate`. */
  chatTemplate?: string | ChatTemplate;
  /** Tokens per micro-batch (before padding). */
  tokenBudget: number;
  /** Samples kept in the packing buffer; first-fit chooses among them. Default 64. */
  bufferSize?: number;
  /** Pad each batch to a multiple of this many tokens (sequence parallel). Default 1 (no padding). */
  padToMultiple?: number;
  /** Id used for padding. Default the tokenizer's pad id, else its EOS id, else 0. */
  padTokenId?: number;
  /**
   * Samples longer than the budget: 'truncate' (keep the first `tokenBudget` tokens), 'skip', or
   * 'split' (cut into consecutive pieces of at most `tokenBudget` tokens, each packed as a sample
   * of its own: positions restart and no label crosses a piece boundary; the pieces of one sample
   * may land in different batches). Default 'truncate'. All three are counted.
   */
  oversize?: 'truncate' | 'skip' | 'split';
  /** Append the EOS token to text samples. Default true when the tokenizer has one. */
  appendEos?: boolean;
  /** Data-parallel rank and world size (record-level sharding). Default 0 of 1. */
  rank?: number;
  worldSize?: number;
  /** Seed of the mixing RNG (core's counter-based {@link Generator}). Default 0. */
  seed?: number;
  /** Bad records: 'skip' and count (default) or 'throw'. */
  onBadRecord?: BadRecordPolicy;
  /** Device of the batch tensors. Default 'cpu'. */
  device?: Device;
}

/** Counters of a loader (part of its state). */
export interface DataLoaderStats {
  batches: number;
  samples: number;
  tokens: number;
  truncated: number;
  skippedOversize: number;
  /** Samples split into pieces (`oversize: 'split'`); each piece counts once in `samples`. */
  split: number;
  /** Records skipped as bad, with file and line/row (first 1000 kept; `badRecordCount` counts all). */
  badRecords: BadRecord[];
  badRecordCount: number;
}

/** Everything needed to resume: source positions, buffered samples, RNG and counters (plain JSON). */
export interface DataLoaderState {
  version: 1;
  rank: number;
  worldSize: number;
  sources: SourceState[];
  buffer: TokenizedSample[];
  rng: GeneratorState;
  stats: DataLoaderStats;
}

/**
 * One micro-batch as core tensors plus plain metadata. The caller owns the four tensors and must
 * dispose them (`disposeBatch(batch)`, or `dispose([...])`/`tidy`) when the step is done.
 */
export interface Batch extends Omit<HostBatch, 'inputIds' | 'labels' | 'positions' | 'cuSeqlens'> {
  /** int32 [T] */
  inputIds: Tensor;
  /** int32 [T], next-token targets, -100 where no loss. */
  labels: Tensor;
  /** int32 [T] */
  positions: Tensor;
  /** int32 [n+1] */
  cuSeqlens: Tensor;
  /** 0-based index of this batch on this rank. */
  index: number;
}

/** Dispose the tensors of a {@link Batch}. */
export function disposeBatch(b: Batch): void {
  dispose([b.inputIds, b.labels, b.positions, b.cuSeqlens]);
}

const MAX_BAD_KEPT = 1000;

/**
 * The streaming, resumable data pipeline: sources → samples → tokens → packed micro-batches.
 *
 * Refill: while the buffer has fewer than `bufferSize` samples, draw a source (weighted, seeded
 * RNG), read its next sample of this rank's shard, tokenize it (oversize: truncate, skip or split
 * into budget-sized pieces). Pack: greedy first-fit over the buffer in order up to `tokenBudget`.
 * A sample is never split or dropped unless it exceeds the budget. `state()` / `restore()` resume exactly.
 */
export class PackedDataLoader implements AsyncIterable<Batch> {
  readonly sources: DataSource[];
  private readonly weights: number[];
  private readonly rng: Generator;
  private buffer: TokenizedSample[] = [];
  private readonly template: ChatTemplate | null;
  private readonly padId: number;
  private readonly badRecords: BadRecord[] = [];
  private counters = {
    batches: 0,
    samples: 0,
    tokens: 0,
    truncated: 0,
    skippedOversize: 0,
    split: 0,
    badRecordCount: 0,
  };

  constructor(private readonly opts: DataLoaderOptions) {
    const ov = opts.oversize ?? 'truncate';
    if (ov !== 'truncate' && ov !== 'skip' && ov !== 'split') {
      throw new Error(`PackedDataLoader: oversize must be 'truncate', 'skip' or 'split', got ${JSON.stringify(ov)}`);
    }
    if (!opts.sources || opts.sources.length === 0) throw new Error('PackedDataLoader: no sources given');
    if (!Number.isInteger(opts.tokenBudget) || opts.tokenBudget < 1) {
      throw new Error(`PackedDataLoader: tokenBudget must be a positive integer, got ${opts.tokenBudget}`);
    }
    const names = new Set<string>();
    this.sources = opts.sources.map((spec) => {
      const s = new DataSource(spec, {
        rank: opts.rank,
        worldSize: opts.worldSize,
        onBadRecord: opts.onBadRecord,
        badRecords: this.badRecords,
      });
      if (names.has(s.name))
        throw new Error(`PackedDataLoader: two sources are named "${s.name}"; give them distinct names`);
      names.add(s.name);
      return s;
    });
    this.weights = opts.sources.map((s, i) => {
      const w = s.weight ?? 1;
      if (!(w > 0) || !Number.isFinite(w))
        throw new Error(
          `PackedDataLoader: source ${i} ("${this.sources[i]?.name}") has weight ${w}; weights must be > 0`,
        );
      return w;
    });
    this.rng = new Generator(opts.seed ?? 0).stream('data-mixing');
    const t = opts.tokenizer as TextTokenizer & { chatTemplate?: string | null };
    const ct = opts.chatTemplate ?? t.chatTemplate ?? null;
    this.template =
      ct === null
        ? null
        : typeof ct === 'string'
          ? new ChatTemplate(ct, { bosToken: t.bosToken, eosToken: t.eosToken })
          : ct;
    this.padId = opts.padTokenId ?? t.padTokenId ?? t.eosTokenId ?? 0;
  }

  /** Counters so far (bad records with file and line/row). */
  get stats(): DataLoaderStats {
    return { ...this.counters, badRecords: [...this.badRecords] };
  }

  /** The next packed micro-batch as host arrays, or null when every source is finished and the buffer is empty. */
  async nextHost(): Promise<HostBatch | null> {
    await this.refill();
    if (this.buffer.length === 0) return null;
    const taken = firstFit(
      this.buffer.map((s) => s.ids.length),
      this.opts.tokenBudget,
    );
    const chosen = taken.map((i) => this.buffer[i] as TokenizedSample);
    const keep = new Set(taken);
    this.buffer = this.buffer.filter((_, i) => !keep.has(i));
    const b = packBatch(chosen, { padToMultiple: this.opts.padToMultiple, padId: this.padId });
    this.counters.batches++;
    this.counters.samples += chosen.length;
    this.counters.tokens += b.numTokens;
    return b;
  }

  /** The next micro-batch as core tensors (the caller disposes them: {@link disposeBatch}), or null at the end. */
  async next(): Promise<Batch | null> {
    const index = this.counters.batches;
    const h = await this.nextHost();
    if (!h) return null;
    const device = this.opts.device ?? 'cpu';
    const t = (a: Int32Array) => tensor(a, { dtype: 'int32', shape: [a.length], device });
    return {
      ...h,
      inputIds: t(h.inputIds),
      labels: t(h.labels),
      positions: t(h.positions),
      cuSeqlens: t(h.cuSeqlens),
      index,
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    for (;;) {
      const b = await this.next();
      if (!b) return;
      yield b;
    }
  }

  /** The state to put in a checkpoint (plain JSON; `JSON.stringify` it). */
  state(): DataLoaderState {
    return structuredClone({
      version: 1 as const,
      rank: this.opts.rank ?? 0,
      worldSize: this.opts.worldSize ?? 1,
      sources: this.sources.map((s) => s.state()),
      buffer: this.buffer,
      rng: this.rng.getState(),
      stats: this.stats,
    });
  }

  /** Resume from {@link state}: the next batches are those an uninterrupted run would give. */
  async restore(state: DataLoaderState): Promise<void> {
    if (state.version !== 1) throw new Error(`PackedDataLoader.restore: unknown state version ${state.version}`);
    const rank = this.opts.rank ?? 0;
    const ws = this.opts.worldSize ?? 1;
    if (state.rank !== rank || state.worldSize !== ws) {
      throw new Error(
        `PackedDataLoader.restore: state is for rank ${state.rank} of ${state.worldSize}, this loader is rank ${rank} of ${ws}`,
      );
    }
    if (state.sources.length !== this.sources.length) {
      throw new Error(
        `PackedDataLoader.restore: state has ${state.sources.length} sources, this loader ${this.sources.length}`,
      );
    }
    for (let i = 0; i < this.sources.length; i++)
      await (this.sources[i] as DataSource).restore(state.sources[i] as SourceState);
    this.buffer = structuredClone(state.buffer);
    this.rng.setState(state.rng);
    const { badRecords, ...counters } = state.stats;
    this.badRecords.length = 0;
    this.badRecords.push(...badRecords);
    // states saved before the split counter existed lack it
    this.counters = { ...counters, split: counters.split ?? 0 };
  }

  /** Close the files the sources hold open. */
  async close(): Promise<void> {
    for (const s of this.sources) await s.close();
  }

  private live(): number[] {
    const out: number[] = [];
    this.sources.forEach((s, i) => {
      if (!s.done) out.push(i);
    });
    return out;
  }

  private pickSource(live: number[]): number {
    if (live.length === 1) return live[0] as number;
    let total = 0;
    for (const i of live) total += this.weights[i] as number;
    const u = ((this.rng.uint32(1)[0] as number) / 2 ** 32) * total;
    let acc = 0;
    for (const i of live) {
      acc += this.weights[i] as number;
      if (u < acc) return i;
    }
    return live[live.length - 1] as number;
  }

  private async refill(): Promise<void> {
    const size = this.opts.bufferSize ?? 64;
    while (this.buffer.length < size) {
      const live = this.live();
      if (live.length === 0) return;
      const src = this.sources[this.pickSource(live)] as DataSource;
      const before = this.badRecords.length;
      const sample = await src.next();
      this.counters.badRecordCount += this.badRecords.length - before;
      if (this.badRecords.length > MAX_BAD_KEPT) this.badRecords.splice(MAX_BAD_KEPT);
      if (!sample) continue;
      const tok = this.tokenize(sample);
      if (tok.ids.length === 0) continue;
      if (tok.ids.length > this.opts.tokenBudget) {
        const mode = this.opts.oversize ?? 'truncate';
        if (mode === 'skip') {
          this.counters.skippedOversize++;
          continue;
        }
        if (mode === 'split') {
          // All pieces go into the buffer at once: the buffer is part of the state, so a state
          // taken while some pieces are still waiting resumes exactly.
          const B = this.opts.tokenBudget;
          const count = Math.ceil(tok.ids.length / B);
          for (let k = 0; k < count; k++) {
            this.buffer.push({
              ids: tok.ids.slice(k * B, (k + 1) * B),
              trainable: tok.trainable.slice(k * B, (k + 1) * B),
              media: k === 0 ? tok.media : [],
              origin: tok.origin,
              piece: { index: k, count },
            });
          }
          this.counters.split++;
          continue;
        }
        tok.ids.length = this.opts.tokenBudget;
        tok.trainable.length = this.opts.tokenBudget;
        tok.truncated = true;
        this.counters.truncated++;
      }
      this.buffer.push(tok);
    }
  }

  private tokenize(s: Sample): TokenizedSample {
    const tk = this.opts.tokenizer;
    if (s.kind === 'text') {
      const ids = tk.encode(s.text);
      if ((this.opts.appendEos ?? true) && tk.eosTokenId !== null && ids.length > 0) ids.push(tk.eosTokenId);
      return { ids, trainable: new Array(ids.length).fill(1), media: s.media, origin: s.origin };
    }
    if (!this.template) {
      throw new Error(
        `PackedDataLoader: ${s.origin.file} has chat samples but no chat template was given (option chatTemplate, or a tokenizer with chat_template)`,
      );
    }
    const { ids, trainable } = this.template.tokenize(tk, s.messages);
    return { ids, trainable, media: s.media, origin: s.origin };
  }
}
