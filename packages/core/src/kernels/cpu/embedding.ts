// Reference CPU embedding lookup and its deterministic backward.
import type { Registry } from '../../registry.js';
import { Tensor } from '../../tensor.js';
import { output, read, readInt } from './util.js';

function checkIds(ids: Int32Array, vocab: number, hidden: number): void {
  for (let p = 0; p < ids.length; p++) {
    const id = ids[p]!;
    if (id < 0 || id >= vocab) {
      throw new Error(
        `embedding: id ${id} at position ${p} is out of range for a vocabulary of ${vocab} (weight [${vocab}, ${hidden}])`,
      );
    }
  }
}

/** Register `embedding` and `embeddingBackward`. */
export function registerEmbeddingKernels(r: Registry, source: string): void {
  const k = (op: string, fn: (inputs: Tensor[], attrs: any) => Tensor | Tensor[]) =>
    r.registerKernel('cpu', op, fn, { priority: 0, source });

  // ([ids, weight]) -> [...ids.shape, H]: a raw row copy, exact for every dtype.
  k('embedding', ([ids, weight]) => {
    const [vocab, hidden] = weight!.shape as [number, number];
    const idx = readInt(ids!, 'embedding ids');
    checkIds(idx, vocab, hidden);
    const out = Tensor.empty([...ids!.shape, hidden], weight!.dtype, 'cpu');
    const dst = out.raw();
    const src = weight!.raw();
    for (let p = 0; p < idx.length; p++) {
      const from = idx[p]! * hidden;
      dst.set(src.subarray(from, from + hidden) as never, p * hidden);
    }
    return out;
  });

  // ([ids, grad [...ids.shape, H]], { numEmbeddings }) -> [V, H]: rows added in id order.
  k('embeddingBackward', ([ids, grad], { numEmbeddings }: { numEmbeddings: number }) => {
    const hidden = grad!.shape[grad!.ndim - 1]!;
    const idx = readInt(ids!, 'embeddingBackward ids');
    if (grad!.numel !== idx.length * hidden) {
      throw new Error(
        `embeddingBackward: gradient ${JSON.stringify(grad!.shape)} does not match ids ${JSON.stringify(ids!.shape)}`,
      );
    }
    checkIds(idx, numEmbeddings, hidden);
    const o = output([numEmbeddings, hidden], grad!.dtype);
    const dw = o.data;
    const g = read(grad!);
    for (let p = 0; p < idx.length; p++) {
      const row = idx[p]! * hidden;
      const from = p * hidden;
      for (let j = 0; j < hidden; j++) dw[row + j] += g[from + j]!;
    }
    return o.done();
  });
}
