// Parameter initialisation (torch.nn.init) on the counter-based RNG. Every init is recorded,
// so the very same values can be regenerated later for any element range: a model built on
// `meta` can be materialised shard by shard (FSDP) and equal a single-process init.

import { dispatch1 } from '../ops/dispatch.js';
import { fillNormal, fillUniform, type RandomDraw, replayDraw } from '../rng/fill.js';
import type { Generator } from '../rng/generator.js';
import type { Tensor } from '../tensor.js';

/** How a tensor was initialised: a random draw, or a constant. */
export type InitRecord = { kind: 'random'; draw: RandomDraw } | { kind: 'constant'; value: number };

const records = new WeakMap<Tensor, InitRecord>();

/** Options shared by the random initialisers. */
export interface InitOptions {
  /** Generator (stream) to draw from; defaults to the global default generator. */
  generator?: Generator;
}

/** The recorded initialisation of `t`, if it was made by one of these functions. */
export function initRecordOf(t: Tensor): InitRecord | undefined {
  return records.get(t);
}

/**
 * Write elements `[offset, offset + target.numel)` of `param`'s recorded initialisation into
 * `target` (default: `param` itself, whole). Returns false when `param` has no record.
 */
export function replayInit(param: Tensor, target: Tensor = param, offset = 0): boolean {
  const rec = records.get(param);
  if (!rec) return false;
  if (rec.kind === 'random') replayDraw(rec.draw, target, offset);
  else {
    if (offset < 0 || offset + target.numel > param.numel) {
      throw new Error(`replayInit: elements [${offset}, ${offset + target.numel}) outside ${param.numel}`);
    }
    if (target.device !== 'meta' && target.numel) dispatch1('fill_', [target], { value: rec.value });
  }
  return true;
}

/** Fill with U(low, high); on `meta` only the generator's counter range is reserved. */
export function uniform_(t: Tensor, low = 0, high = 1, opts: InitOptions = {}): Tensor {
  records.set(t, { kind: 'random', draw: fillUniform(t, { low, high, generator: opts.generator }) });
  return t;
}

/** Fill with N(mean, std^2). */
export function normal_(t: Tensor, mean = 0, std = 1, opts: InitOptions = {}): Tensor {
  records.set(t, { kind: 'random', draw: fillNormal(t, { mean, std, generator: opts.generator }) });
  return t;
}

/** Fill with `value`. */
export function constant_(t: Tensor, value: number): Tensor {
  records.set(t, { kind: 'constant', value });
  if (t.device !== 'meta' && t.numel) dispatch1('fill_', [t], { value });
  return t;
}

/** Fill with zeros. */
export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

/** Fill with ones. */
export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** `fan_in` and `fan_out` of a weight shaped `[out, in, ...receptive field]` (torch's rule). */
export function fanInAndFanOut(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new Error(
      `fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions, got ${JSON.stringify(shape)}`,
    );
  }
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** `torch.nn.init.calculate_gain` for the common nonlinearities. */
export function calculateGain(nonlinearity: string, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
    case 'conv1d':
    case 'conv2d':
    case 'conv3d':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      throw new Error(`calculateGain: unsupported nonlinearity '${nonlinearity}'`);
  }
}

/** Options of the Kaiming initialisers. */
export interface KaimingOptions extends InitOptions {
  /** Negative slope of the rectifier after this layer (leaky_relu); default 0. */
  a?: number;
  /** Preserve the variance in the forward (`fanIn`) or backward (`fanOut`) pass. */
  mode?: 'fanIn' | 'fanOut';
  /** Default 'leaky_relu'. */
  nonlinearity?: string;
}

/** `torch.nn.init.kaiming_uniform_`: U(-b, b) with b = gain * sqrt(3 / fan). */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fanInAndFanOut(t.shape);
  const fan = (opts.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  const bound = fan > 0 ? Math.sqrt(3) * (gain / Math.sqrt(fan)) : 0;
  return uniform_(t, -bound, bound, opts);
}

/** `torch.nn.init.kaiming_normal_`: N(0, (gain / sqrt(fan))^2). */
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fanInAndFanOut(t.shape);
  const fan = (opts.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return normal_(t, 0, fan > 0 ? gain / Math.sqrt(fan) : 0, opts);
}

/** `torch.nn.init.xavier_uniform_`. */
export function xavierUniform_(t: Tensor, gain = 1, opts: InitOptions = {}): Tensor {
  const { fanIn, fanOut } = fanInAndFanOut(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, opts);
}

/** `torch.nn.init.xavier_normal_`. */
export function xavierNormal_(t: Tensor, gain = 1, opts: InitOptions = {}): Tensor {
  const { fanIn, fanOut } = fanInAndFanOut(t.shape);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), opts);
}
