// The basic layers: Linear, Embedding, RMSNorm, LayerNorm. Initialised like PyTorch, on the
// counter-based RNG (so the same seed gives the same weights on any device or sharding).

import { empty, type TensorOptions } from '../creation.js';
import type { DType } from '../dtype.js';
import { embedding } from '../ops/embedding.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/matmul.js';
import { rmsNorm } from '../ops/rms-norm.js';
import type { Generator } from '../rng/generator.js';
import type { Tensor } from '../tensor.js';
import * as init from './init.js';
import { Module } from './module.js';
import { type Parameter, parameter } from './parameter.js';

/** Where a layer's parameters are made. */
export interface LayerOptions {
  /** Parameter dtype (default float32). */
  dtype?: DType;
  /** Device (default cpu; `meta` only reserves the RNG range, see `Module.materialize`). */
  device?: string;
  /** Generator for the random init (default: the global default generator). */
  generator?: Generator;
}

function param(shape: number[], opts: LayerOptions): Parameter {
  const t: TensorOptions = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' };
  return parameter(empty(shape, t));
}

function checkSize(where: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new Error(`${where}: ${name} must be a non-negative integer, got ${v}`);
}

/**
 * `y = x W^T + b` (`torch.nn.Linear`): `weight` [out, in] from kaiming-uniform with a = √5
 * (i.e. U(-1/√in, 1/√in)), `bias` [out] from U(-1/√in, 1/√in).
 */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LayerOptions & { bias?: boolean } = {},
  ) {
    super();
    checkSize('Linear', 'inFeatures', inFeatures);
    checkSize('Linear', 'outFeatures', outFeatures);
    this.weight = param([outFeatures, inFeatures], opts);
    this.bias = (opts.bias ?? true) ? param([outFeatures], opts) : null;
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5), generator: opts.generator });
    if (this.bias) {
      const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
      init.uniform_(this.bias, -bound, bound, { generator: opts.generator });
    }
  }

  override forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Lookup table `weight` [num, dim] from N(0, 1) (`torch.nn.Embedding`). `forward(ids: int32)`. */
export class Embedding extends Module {
  weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: LayerOptions = {},
  ) {
    super();
    checkSize('Embedding', 'numEmbeddings', numEmbeddings);
    checkSize('Embedding', 'embeddingDim', embeddingDim);
    this.weight = param([numEmbeddings, embeddingDim], opts);
    init.normal_(this.weight, 0, 1, { generator: opts.generator });
  }

  override forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

/** Root-mean-square norm over the last dimension (Hugging Face's LlamaRMSNorm); `weight` = ones. */
export class RMSNorm extends Module {
  weight: Parameter;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    opts: LayerOptions = {},
  ) {
    super();
    checkSize('RMSNorm', 'dim', dim);
    this.weight = init.ones_(param([dim], opts)) as Parameter;
  }

  override forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Layer norm over the last dimension (`torch.nn.LayerNorm(dim, eps, bias=...)`): weight ones, bias zeros. */
export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    opts: LayerOptions & { bias?: boolean; elementwiseAffine?: boolean } = {},
  ) {
    super();
    checkSize('LayerNorm', 'dim', dim);
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? (init.ones_(param([dim], opts)) as Parameter) : null;
    this.bias = affine && (opts.bias ?? true) ? (init.zeros_(param([dim], opts)) as Parameter) : null;
  }

  override forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
