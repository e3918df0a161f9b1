// Token embedding lookup with a deterministic backward.
import { record } from '../autograd/node.js';
import type { Tensor } from '../tensor.js';
import { dispatch1 } from './dispatch.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

/**
 * Rows of `weight` (`[V, H]`) at `ids` (int32, any shape): the result is `[...ids.shape, H]`
 * (`torch.nn.functional.embedding`). An id outside `[0, V)` is an error naming the id and the
 * vocabulary size. Differentiable in `weight`: the gradient scatter-adds the output gradient
 * rows into a `[V, H]` zero tensor in a fixed order (`embeddingBackward` kernel), so repeated
 * ids give bit-identical results run to run.
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.dtype !== 'int32') throw new Error(`embedding: ids must be int32, got ${ids.dtype} ${fmt(ids.shape)}`);
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D [vocab, hidden], got ${fmt(weight.shape)}`);
  const out = dispatch1('embedding', [ids, weight]);
  const numEmbeddings = weight.shape[0]!;
  record(
    'embedding',
    [ids, weight],
    [out],
    ([g], [savedIds]) => [null, g ? dispatch1('embeddingBackward', [savedIds!, g], { numEmbeddings }) : null],
    [ids],
  );
  return out;
}
