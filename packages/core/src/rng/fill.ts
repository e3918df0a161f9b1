// Random fills. Values are made on the host from Philox blocks and written to the tensor's
// device, so every backend (and every shard) gets the very same numbers.

import { empty, type TensorOptions, writeValues } from '../creation.js';
import type { DType } from '../dtype.js';
import { isFloating } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { defaultGenerator, type Generator } from './generator.js';

const INV32 = 2 ** -32;
const INV24 = 2 ** -24;
const TWO_PI = 2 * Math.PI;

/** A recorded random fill: enough to regenerate any element range of it later. */
export interface RandomDraw {
  /** `uniform` in [a, b), or `normal` with mean a and standard deviation b. */
  readonly distribution: 'uniform' | 'normal';
  readonly a: number;
  readonly b: number;
  /** The generator (stream) it came from; its seed is read when replaying. */
  readonly generator: Generator;
  /** Block position of element 0 of the logical tensor. */
  readonly startBlock: number;
  /** Elements of the whole logical tensor. */
  readonly logicalNumel: number;
  /** Element type the values were rounded to (uniform uses 24 random bits below float64). */
  readonly dtype: DType;
}

/** Where a fill writes inside a larger logical tensor (FSDP shards, tensor-parallel slices). */
export interface FillRange {
  /** Generator to draw from; defaults to the global default generator. */
  generator?: Generator;
  /** Index in the logical tensor of the target's first element (default 0). */
  offset?: number;
  /** Elements of the logical tensor (default: the target's own `numel`). */
  logicalNumel?: number;
}

/**
 * Compute elements `[start, start + count)` of `draw` into `out` (compute precision:
 * float64 values, rounded by the caller's store).
 */
export function drawValues(draw: RandomDraw, start: number, count: number, out: Float64Array | Float32Array): void {
  const words = new Uint32Array(4);
  const end = start + count;
  const { a, b, generator } = draw;
  const wide = draw.dtype === 'float64';
  let i = start;
  while (i < end) {
    const blk = Math.floor(i / 4);
    generator.block(draw.startBlock + blk, words);
    const first = blk * 4;
    const stop = Math.min(end, first + 4);
    if (draw.distribution === 'uniform') {
      for (let j = i; j < stop; j++) {
        const w = words[j - first]!;
        const u = wide ? w * INV32 : (w >>> 8) * INV24;
        out[j - start] = a + (b - a) * u;
      }
    } else {
      for (let j = i; j < stop; j++) {
        // Box-Muller on the pair of words (0,1) or (2,3): even element cos, odd element sin.
        const k = j - first;
        const p = k & 2;
        const u1 = (words[p]! + 1) * INV32; // (0, 1]
        const u2 = words[p + 1]! * INV32; // [0, 1)
        const r = Math.sqrt(-2 * Math.log(u1));
        const z = (k & 1) === 0 ? r * Math.cos(TWO_PI * u2) : r * Math.sin(TWO_PI * u2);
        out[j - start] = a + b * z;
      }
    }
    i = stop;
  }
}

/** Write elements `[offset, offset + target.numel)` of `draw` into `target` (any device; meta: nothing). */
export function replayDraw(draw: RandomDraw, target: Tensor, offset = 0): Tensor {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + target.numel > draw.logicalNumel) {
    throw new Error(
      `random fill: elements [${offset}, ${offset + target.numel}) are outside the logical tensor of ${draw.logicalNumel} elements`,
    );
  }
  if (target.device === 'meta' || target.numel === 0) return target;
  const values = target.dtype === 'float64' ? new Float64Array(target.numel) : new Float32Array(target.numel);
  drawValues(draw, offset, target.numel, values);
  return writeValues(target, values);
}

function fill(
  target: Tensor,
  distribution: 'uniform' | 'normal',
  a: number,
  b: number,
  range: FillRange,
  where: string,
): RandomDraw {
  if (!isFloating(target.dtype)) throw new Error(`${where}: target must be a float tensor, got ${target.dtype}`);
  if (!Number.isFinite(a) || !Number.isFinite(b))
    throw new Error(`${where}: parameters must be finite, got ${a}, ${b}`);
  if (distribution === 'uniform' && a > b) throw new Error(`${where}: low ${a} > high ${b}`);
  if (distribution === 'normal' && b < 0) throw new Error(`${where}: std must be >= 0, got ${b}`);
  const logicalNumel = range.logicalNumel ?? target.numel;
  const offset = range.offset ?? 0;
  if (!Number.isSafeInteger(logicalNumel) || logicalNumel < 0) {
    throw new Error(`${where}: invalid logicalNumel ${logicalNumel}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + target.numel > logicalNumel) {
    throw new Error(
      `${where}: target of ${target.numel} elements at offset ${offset} does not fit in the logical tensor of ${logicalNumel} elements`,
    );
  }
  const generator = range.generator ?? defaultGenerator();
  const draw: RandomDraw = {
    distribution,
    a,
    b,
    generator,
    startBlock: generator.reserve(logicalNumel),
    logicalNumel,
    dtype: target.dtype,
  };
  replayDraw(draw, target, offset);
  return draw;
}

/**
 * Fill `target` with uniform values in `[low, high)`. With `offset`/`logicalNumel`, `target`
 * receives exactly elements `[offset, offset + target.numel)` of a uniform fill of a logical
 * tensor of `logicalNumel` elements — identical to filling the whole tensor and slicing — and
 * the generator advances as for the whole tensor, so every rank stays in step.
 * Returns the draw, which `replayDraw` can regenerate any range of.
 */
export function fillUniform(target: Tensor, opts: FillRange & { low?: number; high?: number } = {}): RandomDraw {
  return fill(target, 'uniform', opts.low ?? 0, opts.high ?? 1, opts, 'fillUniform');
}

/**
 * Fill `target` with normal values (Box-Muller on pairs of Philox words, one pair per two
 * elements). Same `offset`/`logicalNumel` contract as `fillUniform`.
 */
export function fillNormal(target: Tensor, opts: FillRange & { mean?: number; std?: number } = {}): RandomDraw {
  return fill(target, 'normal', opts.mean ?? 0, opts.std ?? 1, opts, 'fillNormal');
}

/** Fill `t` in place with uniform values in `[low, high)`; returns `t`. */
export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  fillUniform(t, { low, high, generator });
  return t;
}

/** Fill `t` in place with normal values; returns `t`. */
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  fillNormal(t, { mean, std, generator });
  return t;
}

/** Options of the random factories. */
export interface RandomOptions extends TensorOptions {
  /** Generator to draw from; defaults to the global default generator. */
  generator?: Generator;
}

function made(shape: readonly number[], opts: RandomOptions, fn: (t: Tensor) => void): Tensor {
  const dtype = opts.dtype ?? 'float32';
  const t = empty(shape, { dtype, device: opts.device });
  fn(t);
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** A new tensor of uniform values in `[low, high)` (default [0, 1)). */
export function uniform(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  return made(shape, opts, (t) => fillUniform(t, opts));
}

/** A new tensor of normal values (default mean 0, std 1). */
export function normal(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  return made(shape, opts, (t) => fillNormal(t, opts));
}

/** Uniform values in [0, 1) (`torch.rand`). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return uniform(shape, { ...opts, low: 0, high: 1 });
}

/** Standard normal values (`torch.randn`). */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return normal(shape, { ...opts, mean: 0, std: 1 });
}
