// A counter-based random generator: Philox4x32-10 keyed by the seed, with a 128-bit counter
// made of (block position, stream id). Nothing is sequential: block b of stream s under seed k
// is philox(counter = [b, s], key = k), so any element of any fill can be computed on its own.

import { philox4x32 } from './philox.js';

const TWO32 = 2 ** 32;

/** A seed: a non-negative integer (number up to 2^53, or bigint up to 2^64; negatives wrap mod 2^64 like PyTorch). */
export type Seed = number | bigint;

/** Serializable generator state: the seed and the block position of every stream that was used. */
export interface GeneratorState {
  /** The seed as a decimal string (uint64). */
  seed: string;
  /** Block position per stream name ('' is the default stream). */
  offsets: Record<string, number>;
}

function toU64(seed: Seed): bigint {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
    throw new Error(`manualSeed: seed must be an integer (number up to 2^53 or a bigint), got ${seed}`);
  }
  return BigInt.asUintN(64, BigInt(seed));
}

/** 64-bit FNV-1a hash of a stream name, as [lo, hi] uint32 words ('' is stream 0). */
export function streamId(name: string): [number, number] {
  if (name === '') return [0, 0];
  let h = 0xcbf29ce484222325n;
  const bytes = new TextEncoder().encode(name);
  for (const b of bytes) {
    h ^= BigInt(b);
    h = BigInt.asUintN(64, h * 0x100000001b3n);
  }
  return [Number(h & 0xffffffffn), Number(h >> 32n)];
}

/**
 * Where random values come from: a seed, a named stream and a block position. Element `i` of a
 * fill that starts at block position `p` uses Philox block `p + floor(i / 4)` of that stream,
 * so it depends only on (seed, stream, p, i) — never on how the tensor is split or which
 * device makes it. Every fill of `n` elements advances the position by `ceil(n / 4)` blocks.
 *
 * `stream(name)` returns a generator sharing this seed with its own position, e.g. one stream
 * for parameter init and one for data shuffling, so that using one never shifts the other.
 */
export class Generator {
  private seedValue: bigint = 0n;
  private keyLo = 0;
  private keyHi = 0;
  private position = 0;
  private readonly streams = new Map<string, Generator>();
  /** The stream's 64-bit id, as two uint32 words. */
  private readonly idLo: number;
  private readonly idHi: number;

  constructor(
    seed: Seed = 0,
    /** Stream name; '' is the default stream. */
    readonly streamName = '',
    private readonly root: Generator | null = null,
  ) {
    [this.idLo, this.idHi] = streamId(streamName);
    if (!root) this.setSeed(seed);
  }

  /** Reseed: every stream of this generator restarts at block position 0. Returns `this`. */
  manualSeed(seed: Seed): this {
    const r = this.root ?? this;
    r.setSeed(seed);
    r.position = 0;
    for (const s of r.streams.values()) s.position = 0;
    return this;
  }

  /** The seed as an unsigned 64-bit integer. */
  initialSeed(): bigint {
    return (this.root ?? this).seedValue;
  }

  /** The generator of stream `name` (same seed, own position). Cached: the same object each time. */
  stream(name: string): Generator {
    const r = this.root ?? this;
    if (name === '') return r;
    let s = r.streams.get(name);
    if (!s) {
      s = new Generator(0, name, r);
      r.streams.set(name, s);
    }
    return s;
  }

  /** Current block position (each block gives 4 values). */
  get offset(): number {
    return this.position;
  }

  set offset(blocks: number) {
    if (!Number.isSafeInteger(blocks) || blocks < 0)
      throw new Error(`Generator.offset: invalid block position ${blocks}`);
    this.position = blocks;
  }

  /** Reserve the blocks for a fill of `numel` elements: returns the starting block and advances. */
  reserve(numel: number): number {
    if (!Number.isSafeInteger(numel) || numel < 0) throw new Error(`Generator.reserve: invalid element count ${numel}`);
    const start = this.position;
    this.position += Math.ceil(numel / 4);
    return start;
  }

  /** The 4 uint32 words of block `block` of this stream into `out[at..at+3]`. */
  block(block: number, out: Uint32Array, at = 0): void {
    const r = this.root ?? this;
    philox4x32(block % TWO32, Math.floor(block / TWO32), this.idLo, this.idHi, r.keyLo, r.keyHi, out, at);
  }

  /** `count` raw uint32 values (advances by `ceil(count / 4)` blocks). */
  uint32(count: number): Uint32Array {
    const start = this.reserve(count);
    const out = new Uint32Array(Math.ceil(count / 4) * 4);
    for (let b = 0; b < out.length / 4; b++) this.block(start + b, out, 4 * b);
    return out.subarray(0, count);
  }

  /** Seed and stream positions (plain JSON), for checkpoints. */
  getState(): GeneratorState {
    const r = this.root ?? this;
    const offsets: Record<string, number> = { '': r.position };
    for (const [name, s] of r.streams) offsets[name] = s.position;
    return { seed: r.seedValue.toString(), offsets };
  }

  /** Restore what `getState` returned; streams it does not name restart at 0. */
  setState(state: GeneratorState): void {
    const r = this.root ?? this;
    r.setSeed(BigInt(state.seed));
    r.position = state.offsets[''] ?? 0;
    for (const s of r.streams.values()) s.position = 0;
    for (const [name, pos] of Object.entries(state.offsets)) if (name !== '') r.stream(name).offset = pos;
  }

  /** @internal Key words of the seed. */
  keyWords(): [number, number] {
    const r = this.root ?? this;
    return [r.keyLo, r.keyHi];
  }

  /** @internal Id words of this stream. */
  streamWords(): [number, number] {
    return [this.idLo, this.idHi];
  }

  private setSeed(seed: Seed): void {
    const s = toU64(seed);
    this.seedValue = s;
    this.keyLo = Number(s & 0xffffffffn);
    this.keyHi = Number(s >> 32n);
  }
}

const DEFAULT_KEY = Symbol.for('omnitrain.defaultGenerator');

/** The process-wide default generator (seed 0 until `manualSeed`), shared across copies of core. */
export function defaultGenerator(): Generator {
  const g = globalThis as unknown as Record<symbol, Generator | undefined>;
  let gen = g[DEFAULT_KEY];
  if (!gen) {
    gen = new Generator(0);
    g[DEFAULT_KEY] = gen;
  }
  return gen;
}

/** Seed the default generator (all its streams restart). Returns it. */
export function manualSeed(seed: Seed): Generator {
  return defaultGenerator().manualSeed(seed);
}
