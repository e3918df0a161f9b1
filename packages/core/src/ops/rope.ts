import { record } from '../autograd/node.js';
import { sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch1 } from './dispatch.js';

/**
 * Llama 3 frequency scaling (Hugging Face `rope_type: "llama3"`): long wavelengths are divided
 * by `factor`, short ones kept, and those in between interpolated smoothly.
 */
export interface Llama3RopeScaling {
  type: 'llama3';
  /** `factor` (8 for Llama 3.1). */
  factor: number;
  /** `low_freq_factor` (1 for Llama 3.1). */
  lowFreqFactor: number;
  /** `high_freq_factor` (4 for Llama 3.1). */
  highFreqFactor: number;
  /** `original_max_position_embeddings` (8192 for Llama 3.1). */
  originalMaxPositionEmbeddings: number;
}

/** Linear position interpolation (Hugging Face `rope_type: "linear"`): every frequency divided by `factor`. */
export interface LinearRopeScaling {
  type: 'linear';
  factor: number;
}

/** Frequency scaling of rotary embeddings. */
export type RopeScaling = Llama3RopeScaling | LinearRopeScaling;

/** Options of `rope`. */
export interface RopeOptions {
  /** Base of the frequencies, `rope_theta` (default 10000). */
  theta?: number;
  /** Optional frequency scaling (`rope_scaling`). */
  scaling?: RopeScaling;
}

const f32 = Math.fround;

function checkPositive(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new Error(`ropeInvFreq: ${what} must be a finite number > 0, got ${v}`);
  }
  return v;
}

/**
 * The rotary inverse frequencies `1 / theta^(2i / headDim)`, i < headDim / 2, computed as Hugging
 * Face computes them (float32 operations, then the optional scaling), so angles match bit for bit
 * in the common case. Values are float32 numbers held in a Float64Array.
 *
 * @param headDim even head dimension D
 * @param theta base (`rope_theta`)
 * @param scaling optional `rope_scaling` (llama3 or linear)
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`ropeInvFreq: head dim must be a positive even integer, got ${headDim}`);
  }
  checkPositive('theta', theta);
  const half = headDim / 2;
  const inv = new Float64Array(half);
  const base = f32(theta);
  for (let i = 0; i < half; i++) {
    // 1.0 / (base ** (arange(0, dim, 2).float() / dim)); `1.0 / t` is reciprocal(t) * 1.0 in PyTorch.
    inv[i] = f32(1 / f32(base ** f32((2 * i) / headDim)));
  }
  if (!scaling) return inv;
  if (scaling.type === 'linear') {
    const factor = f32(checkPositive('scaling.factor', scaling.factor));
    for (let i = 0; i < half; i++) inv[i] = f32(inv[i]! / factor);
    return inv;
  }
  if (scaling.type !== 'llama3') {
    throw new Error(
      `ropeInvFreq: unsupported scaling type '${(scaling as { type: string }).type}'; supported: 'llama3', 'linear'`,
    );
  }
  const factor = checkPositive('scaling.factor', scaling.factor);
  const low = checkPositive('scaling.lowFreqFactor', scaling.lowFreqFactor);
  const high = checkPositive('scaling.highFreqFactor', scaling.highFreqFactor);
  const old = checkPositive('scaling.originalMaxPositionEmbeddings', scaling.originalMaxPositionEmbeddings);
  if (!(high > low)) {
    throw new Error(
      `ropeInvFreq: scaling.highFreqFactor (${high}) must be greater than scaling.lowFreqFactor (${low})`,
    );
  }
  // Hugging Face's _compute_llama3_parameters, each float32 tensor op rounded as PyTorch rounds it.
  const lowFreqWavelen = f32(old / low);
  const highFreqWavelen = f32(old / high);
  const twoPi = f32(2 * Math.PI);
  const factor32 = f32(factor);
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = f32(f32(1 / f) * twoPi); // 2 * math.pi / inv_freq
    const scaled = wavelen > lowFreqWavelen ? f32(f / factor32) : f;
    const smooth = f32(f32(f32(f32(1 / wavelen) * f32(old)) - f32(low)) / f32(high - low));
    const smoothed = f32(f32(f32(f32(1 - smooth) * scaled) / factor32) + f32(smooth * scaled));
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    inv[i] = isMedium ? smoothed : scaled;
  }
  return inv;
}

/**
 * Rotary position embedding in Hugging Face's rotate-half layout:
 * `out = x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x2, x1)`,
 * `emb = cat(freqs, freqs)`, `freqs = positions * ropeInvFreq(D, theta, scaling)`; cos and sin are
 * computed in float32 and cast to x's dtype, as `LlamaRotaryEmbedding` does.
 *
 * Fused: kernels `rope` and `ropeBackward` (the inverse rotation), both with attrs `{ invFreq }`.
 * Differentiable with respect to x.
 *
 * @param x [..., H, D], e.g. [B, S, H, D] or packed [T, H, D]; D even
 * @param positions int32 of shape x.shape[:-2] (e.g. [B, S] or [T]; packed sequences restart at 0)
 * @param opts `theta` (default 10000) and optional `scaling`
 */
export function rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
  if (!x.isFloatingPoint) throw new Error(`rope: x must be a float tensor, got ${x.dtype} ${JSON.stringify(x.shape)}`);
  if (x.ndim < 2) throw new Error(`rope: x must be [..., heads, headDim], got shape ${JSON.stringify(x.shape)}`);
  const d = x.shape[x.ndim - 1]!;
  if (d === 0 || d % 2 !== 0)
    throw new Error(`rope: head dim (last dim of x ${JSON.stringify(x.shape)}) must be even and > 0`);
  if (positions.dtype !== 'int32') {
    throw new Error(`rope: positions must be int32, got ${positions.dtype} ${JSON.stringify(positions.shape)}`);
  }
  const batch = x.shape.slice(0, -2);
  if (!sameShape(positions.shape, batch)) {
    throw new Error(
      `rope: positions of shape ${JSON.stringify(positions.shape)} must have the shape of x ${JSON.stringify(x.shape)} ` +
        `without its last two dims (${JSON.stringify(batch)})`,
    );
  }
  const invFreq = ropeInvFreq(d, opts.theta ?? 10000, opts.scaling);
  const y = dispatch1('rope', [x, positions], { invFreq });
  record(
    'rope',
    [x, positions],
    [y],
    ([gy], [pos]) => [gy ? dispatch1('ropeBackward', [gy, pos!], { invFreq }) : null, null],
    [positions],
  );
  return y;
}
