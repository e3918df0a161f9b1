// Character-level data: a vocabulary of the characters in the text, and random windows.
import { readFileSync } from 'node:fs';
import { Generator, type Tensor, tensor } from '@omnitrain/core';

export interface CharData {
  chars: string[];
  train: Int32Array;
  val: Int32Array;
  encode(s: string): number[];
  decode(ids: ArrayLike<number>): string;
}

/** Read `path`, build the character vocabulary and split 90/10 into train/validation. */
export function loadChars(path: string): CharData {
  const text = readFileSync(path, 'utf8');
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const all = Int32Array.from(text, (c) => index.get(c)!);
  const cut = Math.floor(all.length * 0.9);
  return {
    chars,
    train: all.subarray(0, cut),
    val: all.subarray(cut),
    encode: (s) => [...s].map((c) => index.get(c) ?? 0),
    decode: (ids) => Array.from(ids, (i) => chars[i] ?? '?').join(''),
  };
}

/** `batch` random windows of `seq + 1` characters: inputs, next-character labels, positions. */
export function sampleBatch(
  data: Int32Array,
  batch: number,
  seq: number,
  gen: Generator,
): { ids: Tensor; labels: Tensor; positions: Tensor } {
  const ids = new Int32Array(batch * seq);
  const labels = new Int32Array(batch * seq);
  const positions = new Int32Array(batch * seq);
  const starts = gen.uint32(batch);
  for (let b = 0; b < batch; b++) {
    const start = starts[b]! % (data.length - seq - 1);
    for (let t = 0; t < seq; t++) {
      ids[b * seq + t] = data[start + t]!;
      labels[b * seq + t] = data[start + t + 1]!;
      positions[b * seq + t] = t;
    }
  }
  const opts = { dtype: 'int32' as const, shape: [batch, seq] };
  return { ids: tensor(ids, opts), labels: tensor(labels, opts), positions: tensor(positions, opts) };
}

export { Generator };
