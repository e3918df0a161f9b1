// Parameter and Buffer: tensors a module owns. Both keep their identity when the module
// moves or casts them (`setData` swaps the storage underneath), so optimizers, hooks and
// strategies holding a reference see the new data.

import { isFloating } from '../dtype.js';
import { keep } from '../memory.js';
import { Tensor } from '../tensor.js';

/** Point `target` at `src`'s storage, shape, dtype and device; `target` keeps its identity. */
function swapData(target: Tensor, src: Tensor, where: string): void {
  if (target.requiresGrad && !isFloating(src.dtype)) {
    throw new Error(`${where}: a tensor that requires grad cannot hold ${src.dtype} data`);
  }
  target.adoptStorageOf(src, where);
}

/**
 * A module's trainable tensor: a leaf that requires grad (float dtypes) and is never freed by
 * `tidy` (dispose it with its module). It shares the storage of the tensor it is made from;
 * that tensor stays the caller's to dispose (`parameter(t)` takes it over instead).
 */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    super(data.storage.retain(), [...data.shape], data.dtype, data.device, data.offset);
    keep(this);
    if (requiresGrad) this.requiresGrad_(true);
  }

  /**
   * Replace the data (like PyTorch's `p.data = t`): this Parameter now views `t`'s storage,
   * shape, dtype and device; identity, `requiresGrad`, hooks and name are unchanged.
   * `t` stays the caller's to dispose. The gradient is left as it is.
   */
  setData(t: Tensor): this {
    swapData(this, t, 'Parameter.setData');
    return this;
  }
}

/** Make a Parameter from a freshly made tensor, disposing that temporary handle. */
export function parameter(t: Tensor, requiresGrad = true): Parameter {
  const p = new Parameter(t, requiresGrad);
  t.dispose();
  return p;
}

/**
 * A module's non-trainable tensor (running statistics, rotary tables...). `persistent`
 * buffers are part of `stateDict()`. Like Parameter it keeps its identity across `to()`.
 */
export class Buffer extends Tensor {
  /** Whether the buffer is saved in `stateDict()`. */
  readonly persistent: boolean;

  constructor(data: Tensor, opts: { persistent?: boolean } = {}) {
    super(data.storage.retain(), [...data.shape], data.dtype, data.device, data.offset);
    keep(this);
    this.persistent = opts.persistent ?? true;
  }

  /** Replace the data, keeping this Buffer's identity (see `Parameter.setData`). */
  setData(t: Tensor): this {
    swapData(this, t, 'Buffer.setData');
    return this;
  }
}

/** Make a Buffer from a freshly made tensor, disposing that temporary handle. */
export function buffer(t: Tensor, opts: { persistent?: boolean } = {}): Buffer {
  const b = new Buffer(t, opts);
  t.dispose();
  return b;
}
