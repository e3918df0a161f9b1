// The few ops the backward engine itself needs, dispatched so any backend can run backward.
import type { DType } from '../dtype.js';
import { dispatch1 } from '../ops/dispatch.js';
import type { Tensor } from '../tensor.js';
import { Tensor as TensorClass } from '../tensor.js';

/** `old + g` as a new tensor, or added into `old` when `inPlace`. */
export function accumulateInto(old: Tensor, g: Tensor, inPlace = false): Tensor {
  if (inPlace) return dispatch1('add_', [old, g]);
  return dispatch1('add', [old, g]);
}

/** A copy of `t` as `dtype` (always a new tensor when `copy`). */
export function castTo(t: Tensor, dtype: DType, copy = false): Tensor {
  if (t.dtype === dtype && !copy) return t;
  return dispatch1('cast', [t], { dtype });
}

/** Ones with the shape, dtype and device of `t`. */
export function onesLikeOf(t: Tensor): Tensor {
  const o = TensorClass.empty(t.shape, t.dtype, t.device);
  return dispatch1('fill_', [o], { value: 1 });
}

/** Sum a broadcast gradient back down to `shape`. */
export function sumToShape(g: Tensor, shape: readonly number[], where: string): Tensor {
  try {
    return dispatch1('sumTo', [g], { shape });
  } catch (e) {
    throw new Error(
      `autograd: gradient from '${where}' has shape ${JSON.stringify(g.shape)}, expected ${JSON.stringify(shape)}: ${(e as Error).message}`,
    );
  }
}
