// Autoregressive generation with a KV cache: greedy, temperature, top-k, top-p, stop tokens,
// batched prompts of different lengths (left padding, per-sequence positions, attention mask).
import { Generator, noGrad, type Tensor, tensor, tidy } from '@omnitrain/core';
import type { LayerCache } from './attention.js';
import type { CausalLM } from './model.js';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** New tokens per prompt at most (default 32). */
  maxNewTokens?: number;
  /** 0 (default) = greedy; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Sample only among the k most likely tokens (0 = all; default 0). */
  topK?: number;
  /** Nucleus sampling: the smallest set of most likely tokens whose probability reaches p (default 1 = all). */
  topP?: number;
  /** A sequence ends after producing one of these (it is included in the output). */
  stopTokens?: readonly number[];
  /** Id fed at padding positions (never attended to; default 0). */
  padTokenId?: number;
  /** Sampling seed (default 0), or a generator. */
  seed?: number;
  generator?: Generator;
  /** Keep keys and values between steps (default true); false recomputes the whole sequence each step. */
  useCache?: boolean;
  /** Called with the last-position logits [B x V] of each step (tests, logging). */
  onLogits?: (logits: Float32Array, step: number) => void;
}

/** Pick the next token from one row of logits. */
export function sampleToken(row: Float32Array, opts: GenerateOptions, gen: Generator): number {
  const temperature = opts.temperature ?? 0;
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
    return best;
  }
  let idx = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
  const k = opts.topK ?? 0;
  if (k > 0 && k < idx.length) idx = idx.slice(0, k);
  const max = row[idx[0]!]!;
  let probs = idx.map((i) => Math.exp((row[i]! - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length) {
      acc += probs[keep]!;
      keep++;
      if (acc >= topP) break;
    }
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  const u = gen.uint32(1)[0]! / 2 ** 32;
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i]!;
    if (u < acc) return idx[i]!;
  }
  return idx[idx.length - 1]!;
}

/**
 * Continue each prompt (token ids) with up to `maxNewTokens` tokens. Prompts of different
 * lengths run as one batch: left-padded, each with its own positions (0 at its first real
 * token) and a mask that hides the padding. With the cache (default) the prompt is run once and
 * each step feeds one token per sequence. Returns the new tokens of each prompt (ending with the
 * stop token when one was produced).
 */
export function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): number[][] {
  const maxNew = opts.maxNewTokens ?? 32;
  const vocab = model.config.vocabSize;
  if (prompts.length === 0) throw new Error('generate: expected a non-empty list of prompts');
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new Error(`generate: prompt ${b} is empty`);
    const bad = p.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new Error(`generate: prompt ${b} has token ${bad} outside [0, ${vocab})`);
  });
  if (!Number.isInteger(maxNew) || maxNew < 0)
    throw new Error(`generate: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  const pad = opts.padTokenId ?? 0;
  const stops = new Set(opts.stopTokens ?? []);
  const gen = opts.generator ?? new Generator(opts.seed ?? 0);
  const useCache = opts.useCache ?? true;
  const device = model.outputWeight.device;
  const B = prompts.length;
  const P = Math.max(...prompts.map((p) => p.length));
  const pads = prompts.map((p) => P - p.length);
  const seqs = prompts.map((p) => [...p]);
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const cache: LayerCache[] | undefined = useCache
    ? Array.from({ length: model.config.numHiddenLayers }, () => ({ k: null, v: null }))
    : undefined;
  const int = (data: Int32Array, shape: number[]) => tensor(data, { dtype: 'int32', shape, device });
  try {
    for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
      const n = P + step; // padded length of every sequence so far
      const full = !useCache || step === 0;
      const sq = full ? n : 1;
      const logits = noGrad(() =>
        tidy(() => {
          const ids = new Int32Array(B * sq);
          const pos = new Int32Array(B * sq);
          const mask = new Float32Array(B * sq * n).fill(Number.NEGATIVE_INFINITY);
          for (let b = 0; b < B; b++) {
            for (let r = 0; r < sq; r++) {
              const t = n - sq + r; // padded index of this query
              ids[b * sq + r] = t < pads[b]! ? pad : seqs[b]![t - pads[b]!]!;
              pos[b * sq + r] = Math.max(0, t - pads[b]!);
              for (let j = 0; j <= t; j++) if (j >= pads[b]! || j === t) mask[(b * sq + r) * n + j] = 0;
            }
          }
          const res = model.call(int(ids, [B, sq]), {
            positions: int(pos, [B, sq]),
            mask: tensor(mask, { shape: [B, 1, sq, n], device }),
            cache,
            logitsToKeep: 1,
          });
          const l = res.logits as Tensor;
          return Float32Array.from(l.toTypedArray());
        }),
      );
      opts.onLogits?.(logits, step);
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          seqs[b]!.push(pad);
          continue;
        }
        const tok = sampleToken(logits.subarray(b * vocab, (b + 1) * vocab), opts, gen);
        seqs[b]!.push(tok);
        out[b]!.push(tok);
        if (stops.has(tok)) done[b] = true;
      }
    }
  } finally {
    for (const c of cache ?? []) {
      c.k?.dispose();
      c.v?.dispose();
    }
  }
  return out;
}
