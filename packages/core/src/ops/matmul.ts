// Matrix products: matmul (torch.matmul semantics, with transpose flags), bmm and linear.
import { record } from '../autograd/node.js';
import { tidy } from '../memory.js';
import { broadcastShapes, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch1 } from './dispatch.js';
import { add } from './elementwise.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

/** Transpose flags of a matrix product. */
export interface MatmulOptions {
  /** Use the transpose of the last two dimensions of the first operand. */
  transA?: boolean;
  /** Use the transpose of the last two dimensions of the second operand. */
  transB?: boolean;
}

/** `g` summed down to `shape` (gradient of a broadcast batch). */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  return sameShape(g.shape, shape) ? g : dispatch1('sumTo', [g], { shape });
}

function describe(name: string, t: Tensor, trans: boolean): string {
  return `${name} ${fmt(t.shape)}${trans ? ' (transposed)' : ''}`;
}

/**
 * The batched product of operands with at least 2 dimensions each: `op(a) @ op(b)` with
 * `op` transposing the last two dimensions when the flag is set, batch dimensions broadcast.
 */
function batchedMatmul(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const ar = a.ndim;
  const br = b.ndim;
  const M = a.shape[transA ? ar - 1 : ar - 2]!;
  const K = a.shape[transA ? ar - 2 : ar - 1]!;
  const Kb = b.shape[transB ? br - 1 : br - 2]!;
  const N = b.shape[transB ? br - 2 : br - 1]!;
  if (K !== Kb) {
    throw new Error(
      `${op}: ${describe('a', a, transA)} and ${describe('b', b, transB)} cannot be multiplied ` +
        `([${M}, ${K}] @ [${Kb}, ${N}]: ${K} != ${Kb})`,
    );
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  let batch: number[];
  try {
    batch = broadcastShapes(batchA, batchB);
  } catch {
    throw new Error(
      `${op}: batch dimensions ${fmt(batchA)} of a ${fmt(a.shape)} and ${fmt(batchB)} of b ${fmt(b.shape)} do not broadcast`,
    );
  }
  const out = dispatch1('matmul', [a, b], { transA, transB });
  const aShape = a.shape;
  const bShape = b.shape;
  const needA = a.requiresGrad;
  const needB = b.requiresGrad;
  record(
    op,
    [a, b],
    [out],
    ([g], saved) => {
      if (!g) return [null, null];
      let i = 0;
      const sa = needB ? saved[i++] : undefined;
      const sb = needA ? saved[i++] : undefined;
      return tidy(() => {
        let ga: Tensor | null = null;
        let gb: Tensor | null = null;
        if (needA) {
          // d op(A) = G op(B)^T;  A = op(A)^T when transA.
          ga = !transA ? matmul(g, sb!, { transB: !transB }) : matmul(sb!, g, { transA: transB, transB: true });
          ga = reduceTo(ga, aShape);
        }
        if (needB) {
          if (bShape.length === 2 && batch.length > 0 && !transA) {
            // Shared 2-D weight (linear layers): fold the batch into the rows, no [batch, K, N] temporary.
            const a2 = sa!.reshape(-1, K);
            const g2 = g.reshape(-1, N);
            gb = !transB ? matmul(a2, g2, { transA: true }) : matmul(g2, a2, { transA: true });
          } else {
            // d op(B) = op(A)^T G;  B = op(B)^T when transB.
            gb = !transB ? matmul(sa!, g, { transA: !transA }) : matmul(g, sa!, { transA: true, transB: transA });
            gb = reduceTo(gb, bShape);
          }
        }
        return [ga, gb];
      });
    },
    [...(needB ? [a] : []), ...(needA ? [b] : [])],
  );
  return out;
}

/**
 * Matrix product with `torch.matmul` semantics: 1-D operands are treated as a row (first) or
 * column (second) vector and that dimension is removed from the result; batch dimensions
 * (all but the last two) broadcast. `transA` / `transB` use the transpose of the last two
 * dimensions of an operand (which must then be at least 2-D) without materialising it.
 * Differentiable in both operands; both must have the same dtype.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (a.ndim === 0 || b.ndim === 0) {
    throw new Error(`matmul: both operands need at least one dimension, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  if (a.dtype !== b.dtype) throw new Error(`matmul: a is ${a.dtype} but b is ${b.dtype}; cast one of them first`);
  if (a.dtype === 'bool') throw new Error('matmul: bool tensors cannot be multiplied');
  if (a.ndim === 1 && transA) throw new Error(`matmul: transA needs a matrix, a is 1-D ${fmt(a.shape)}`);
  if (b.ndim === 1 && transB) throw new Error(`matmul: transB needs a matrix, b is 1-D ${fmt(b.shape)}`);
  if (a.ndim >= 2 && b.ndim >= 2) return batchedMatmul('matmul', a, b, transA, transB);
  return tidy(() => {
    const a2 = a.ndim === 1 ? a.reshape(1, a.shape[0]!) : a;
    const b2 = b.ndim === 1 ? b.reshape(b.shape[0]!, 1) : b;
    const out = batchedMatmul('matmul', a2, b2, transA, transB);
    const shape = [...out.shape];
    if (b.ndim === 1) shape.pop();
    if (a.ndim === 1) shape.splice(shape.length - (b.ndim === 1 ? 1 : 2), 1);
    return out.reshape(shape);
  });
}

/**
 * Batched matrix product of two 3-D tensors with the same batch size (`torch.bmm`):
 * `[B, M, K] @ [B, K, N] -> [B, M, N]`, with optional transpose flags as in `matmul`.
 */
export function bmm(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  if (a.ndim !== 3 || b.ndim !== 3) {
    throw new Error(`bmm: both operands must be 3-D, got a ${fmt(a.shape)} and b ${fmt(b.shape)}`);
  }
  if (a.shape[0] !== b.shape[0]) {
    throw new Error(`bmm: batch sizes differ: a ${fmt(a.shape)} and b ${fmt(b.shape)}`);
  }
  if (a.dtype !== b.dtype) throw new Error(`bmm: a is ${a.dtype} but b is ${b.dtype}; cast one of them first`);
  return batchedMatmul('bmm', a, b, opts.transA ?? false, opts.transB ?? false);
}

/**
 * A fully connected layer, `x @ weight^T + bias` (`torch.nn.functional.linear`): `x` is
 * `[..., in]` (or 1-D `[in]`), `weight` `[out, in]`, `bias` `[out]`; the result is `[..., out]`.
 * The weight is used transposed in place (no copy). Differentiable in all three.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${fmt(weight.shape)}`);
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new Error(
      `linear: x ${fmt(x.shape)} does not end in the weight's input size ${weight.shape[1]} (weight ${fmt(weight.shape)})`,
    );
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new Error(`linear: bias ${fmt(bias.shape)} must be [${weight.shape[0]}] for weight ${fmt(weight.shape)}`);
  }
  if (!bias) return matmul(x, weight, { transB: true });
  return tidy(() => add(matmul(x, weight, { transB: true }), bias));
}
