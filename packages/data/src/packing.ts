import type { MediaRef, SampleOrigin } from './sample.js';

/** A tokenized sample waiting in the packing buffer (plain JSON, part of the iterator state). */
export interface TokenizedSample {
  ids: number[];
  /** 1 where the token is a target (loss is taken when predicting it), 0 elsewhere. */
  trainable: number[];
  media: MediaRef[];
  origin: SampleOrigin;
  /** True when the sample was cut to the token budget. */
  truncated?: boolean;
  /** Set on the pieces of a sample split to the token budget (`oversize: 'split'`): piece `index` of `count`. */
  piece?: { index: number; count: number };
}

/** A packed micro-batch as host arrays (see {@link packBatch}). */
export interface HostBatch {
  /** Token ids [T]. */
  inputIds: Int32Array;
  /** Next-token targets [T]: `labels[t] = inputIds[t+1]` when t+1 is in the same sample and trainable, else -100. */
  labels: Int32Array;
  /** Position of each token inside its sample [T] (restarts at 0 for each sample). */
  positions: Int32Array;
  /** Sample boundaries [n+1]: sample i is tokens cuSeqlens[i]..cuSeqlens[i+1]; padding, if any, is the last segment. */
  cuSeqlens: Int32Array;
  /** Per-sample metadata, in packing order (padding has no entry). */
  samples: Array<{
    origin: SampleOrigin;
    length: number;
    media: MediaRef[];
    truncated: boolean;
    /** Piece `index` of `count` of a sample split to the token budget. */
    piece?: { index: number; count: number };
  }>;
  /** Real tokens (without padding). */
  numTokens: number;
  /** Padding tokens at the end. */
  numPadding: number;
  /** Longest segment (padding included). */
  maxSeqlen: number;
}

/** Label of positions that carry no loss. */
export const IGNORE_INDEX = -100;

/**
 * Greedy first-fit: walk the buffer in order and take every sample that still fits in `budget`.
 * Returns the indices taken (the first sample always fits when every sample is <= budget).
 */
export function firstFit(lengths: readonly number[], budget: number): number[] {
  const taken: number[] = [];
  let left = budget;
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i] as number;
    if (n <= left) {
      taken.push(i);
      left -= n;
      if (left === 0) break;
    }
  }
  return taken;
}

/**
 * Concatenate samples into one packed sequence: positions restart per sample, `cuSeqlens` mark
 * the boundaries, labels are the next token inside a sample and -100 across boundaries and on
 * non-trainable targets. With `padToMultiple`, padding (`padId`, labels -100, positions
 * 0..p-1) is appended as one more segment so that T is a multiple of it.
 */
export function packBatch(
  samples: readonly TokenizedSample[],
  opts: { padToMultiple?: number; padId?: number } = {},
): HostBatch {
  let total = 0;
  for (const s of samples) total += s.ids.length;
  const m = opts.padToMultiple ?? 1;
  const T = Math.ceil(total / m) * m;
  const pad = T - total;
  const inputIds = new Int32Array(T);
  const labels = new Int32Array(T).fill(IGNORE_INDEX);
  const positions = new Int32Array(T);
  const cuSeqlens = new Int32Array(samples.length + 1 + (pad > 0 ? 1 : 0));
  let at = 0;
  let maxSeqlen = 0;
  samples.forEach((s, k) => {
    const n = s.ids.length;
    for (let i = 0; i < n; i++) {
      inputIds[at + i] = s.ids[i] as number;
      positions[at + i] = i;
      if (i + 1 < n && s.trainable[i + 1]) labels[at + i] = s.ids[i + 1] as number;
    }
    at += n;
    cuSeqlens[k + 1] = at;
    if (n > maxSeqlen) maxSeqlen = n;
  });
  if (pad > 0) {
    inputIds.fill(opts.padId ?? 0, at);
    for (let i = 0; i < pad; i++) positions[at + i] = i;
    cuSeqlens[samples.length + 1] = T;
    if (pad > maxSeqlen) maxSeqlen = pad;
  }
  return {
    inputIds,
    labels,
    positions,
    cuSeqlens,
    samples: samples.map((s) => ({
      origin: s.origin,
      length: s.ids.length,
      media: s.media,
      truncated: !!s.truncated,
      ...(s.piece ? { piece: { ...s.piece } } : {}),
    })),
    numTokens: total,
    numPadding: pad,
    maxSeqlen,
  };
}
