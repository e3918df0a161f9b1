// The trainer's data: @omnitrain/data's PackedDataLoader, one per "lane". A step's global batch
// is `lanes` packed rows of `seqLen` tokens; row l always comes from lane l, and lane l reads
// the records with index % lanes == l. Which rank computes which lane only decides where the
// row is computed: the global batch of every step is the same at any data-parallel size, so a
// checkpoint saved by N ranks resumes on M ranks with exactly the batches an uninterrupted run
// would see (the lanes' iterator states travel in the checkpoint).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  ByteTokenizer,
  type DataLoaderState,
  HfTokenizer,
  PackedDataLoader,
  type TextTokenizer,
} from '@omnitrain/data';

/**
 * The tokenizer of a `data.tokenizer` setting: 'byte' ({@link ByteTokenizer}: UTF-8 bytes, then
 * `<|endoftext|>` = 256, `<|im_start|>`, `<|im_end|>`) or the path of a Hugging Face
 * tokenizer.json or of a folder holding one (with tokenizer_config.json beside it, if present).
 */
export function loadTokenizer(spec: string): TextTokenizer {
  if (spec === 'byte') return new ByteTokenizer();
  if (!existsSync(spec))
    throw new Error(`data.tokenizer: ${spec} does not exist (allowed: 'byte' or a tokenizer.json)`);
  const file = statSync(spec).isDirectory() ? join(spec, 'tokenizer.json') : spec;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`data.tokenizer: cannot read ${file}: ${(e as Error).message}`);
  }
  const cfgFile = join(dirname(file), 'tokenizer_config.json');
  const config = existsSync(cfgFile) ? JSON.parse(readFileSync(cfgFile, 'utf8')) : {};
  return new HfTokenizer(json as never, config, file);
}

/** Where one lane is: its epoch (passes over the data so far) and its loader's state. */
export interface LaneState {
  epoch: number;
  loader: DataLoaderState;
}

/** Options of {@link TrainData}. */
export interface TrainDataOptions {
  /** Files or folders (JSONL/Parquet). */
  path: string | string[];
  textField: string;
  tokenizer: TextTokenizer;
  /** Tokens of one packed row (the loader's token budget; rows are padded to it). */
  seqLen: number;
  /** Rows per step over all ranks (= lanes). */
  lanes: number;
  /** The lanes this rank computes: `[from, to)`. */
  from: number;
  to: number;
  seed: number;
  bufferSize: number;
  /** Samples longer than `seqLen`: 'truncate' (default), 'split' into pieces of at most `seqLen`, or 'skip'. */
  longSamples?: 'truncate' | 'split' | 'skip';
}

/** This rank's part of a step's batch: its rows concatenated as one packed sequence. */
export interface StepRows {
  /** int32 [T] token ids, T = rows × seqLen. */
  inputIds: Int32Array;
  /** int32 [T] next-token targets (-100: no loss: sample boundaries and padding). */
  targets: Int32Array;
  /** int32 [T] positions, restarting at 0 per sample. */
  positions: Int32Array;
  /** int32 [n + 1] sample boundaries over the whole T. */
  cuSeqlens: Int32Array;
  /** Tokens with a target (the loss is averaged over these, over all ranks). */
  targetCount: number;
  /** Real (non-padding) tokens. */
  tokens: number;
}

/**
 * The data of a training run, as {@link PackedDataLoader}s over lanes (see the file comment).
 * A lane that reaches the end of the data starts its next epoch (the same records, in order).
 */
export class TrainData {
  private readonly loaders = new Map<number, PackedDataLoader>();
  private readonly epochs = new Map<number, number>();

  constructor(private readonly opts: TrainDataOptions) {
    if (!(opts.from >= 0 && opts.to <= opts.lanes && opts.from < opts.to)) {
      throw new Error(`TrainData: lanes [${opts.from}, ${opts.to}) of ${opts.lanes} is not a valid range`);
    }
    for (let l = opts.from; l < opts.to; l++) this.open(l, 0);
  }

  private open(lane: number, epoch: number): PackedDataLoader {
    const o = this.opts;
    const loader = new PackedDataLoader({
      sources: [{ name: 'train', path: o.path, textField: o.textField, kind: 'text' }],
      tokenizer: o.tokenizer,
      tokenBudget: o.seqLen,
      padToMultiple: o.seqLen,
      bufferSize: o.bufferSize,
      oversize: o.longSamples ?? 'truncate',
      rank: lane,
      worldSize: o.lanes,
      seed: o.seed * 1_000_003 + epoch,
      onBadRecord: 'throw',
    });
    this.loaders.set(lane, loader);
    this.epochs.set(lane, epoch);
    return loader;
  }

  /** The epoch of each of this rank's lanes. */
  get laneEpochs(): Record<number, number> {
    return Object.fromEntries(this.epochs);
  }

  /** This rank's rows of the next step. */
  async next(): Promise<StepRows> {
    const o = this.opts;
    const rows = o.to - o.from;
    const T = rows * o.seqLen;
    const inputIds = new Int32Array(T);
    const targets = new Int32Array(T);
    const positions = new Int32Array(T);
    const cu: number[] = [0];
    let tokens = 0;
    for (let l = o.from; l < o.to; l++) {
      let b = await this.loaders.get(l)!.nextHost();
      if (!b) {
        const epoch = this.epochs.get(l)! + 1;
        await this.loaders.get(l)!.close();
        b = await this.open(l, epoch).nextHost();
        if (!b)
          throw new Error(`data ${JSON.stringify(o.path)}: lane ${l} of ${o.lanes} has no sample (too few records)`);
      }
      if (b.inputIds.length !== o.seqLen) {
        throw new Error(`TrainData: lane ${l} gave a row of ${b.inputIds.length} tokens, expected ${o.seqLen}`);
      }
      const at = (l - o.from) * o.seqLen;
      inputIds.set(b.inputIds, at);
      targets.set(b.labels, at);
      positions.set(b.positions, at);
      for (let i = 1; i < b.cuSeqlens.length; i++) cu.push(at + b.cuSeqlens[i]!);
      tokens += b.numTokens;
    }
    let targetCount = 0;
    for (let i = 0; i < T; i++) if (targets[i] !== -100) targetCount++;
    return { inputIds, targets, positions, cuSeqlens: Int32Array.from(cu), targetCount, tokens };
  }

  /** The state of this rank's lanes (plain JSON, keyed by lane). */
  state(): Record<string, LaneState> {
    const out: Record<string, LaneState> = {};
    for (const [l, loader] of this.loaders) out[l] = { epoch: this.epochs.get(l)!, loader: loader.state() };
    return out;
  }

  /** Restore this rank's lanes from the states saved by any number of ranks (merged by lane). */
  async restore(lanes: Record<string, LaneState>): Promise<void> {
    for (let l = this.opts.from; l < this.opts.to; l++) {
      const s = lanes[l];
      if (!s) {
        throw new Error(
          `TrainData.restore: the checkpoint has no state for data lane ${l} (it has lanes ${Object.keys(lanes).join(', ') || 'none'}; was train.global_batch changed?)`,
        );
      }
      await this.loaders.get(l)!.close();
      await this.open(l, s.epoch).restore(s.loader);
    }
  }

  /** Close the files. */
  async close(): Promise<void> {
    for (const l of this.loaders.values()) await l.close();
  }
}
