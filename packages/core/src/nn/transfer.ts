// Moving and casting tensors between devices and dtypes, and copying values across devices.
// Device-to-device copies go through host bytes (backends only promise readBytes/writeBytes).

import { noGrad } from '../autograd/grad-mode.js';
import { writeValues } from '../creation.js';
import { normalizeDevice } from '../device.js';
import type { DType } from '../dtype.js';
import { dispatch1 } from '../ops/dispatch.js';
import { sameShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { copyBytes } from '../transfer.js';

/** `t` as a new tensor on `device` with `dtype` (or null when it already is both). */
export function transferred(t: Tensor, device: string, dtype: DType): Tensor | null {
  const dev = normalizeDevice(device);
  if (dev === t.device && dtype === t.dtype) return null;
  if (dev === 'meta') return Tensor.empty(t.shape, dtype, 'meta');
  if (t.device === 'meta') {
    throw new Error(
      `cannot move meta tensor ${JSON.stringify(t.shape)} to '${dev}': it has no data; use module.toEmpty('${dev}') or materialize('${dev}')`,
    );
  }
  const cast = dtype === t.dtype ? t : dispatch1('cast', [t], { dtype });
  if (dev === t.device) return cast;
  try {
    const out = Tensor.empty(cast.shape, dtype, dev);
    copyBytes(out, cast);
    return out;
  } finally {
    if (cast !== t) cast.dispose();
  }
}

/** Copy the values of `src` into `dst` (same number of elements), converting dtype and crossing devices. */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.device === 'meta') return;
  if (src.numel !== dst.numel) throw new Error(`copy: ${src.numel} values into a tensor of ${dst.numel}`);
  if (src.device === dst.device) {
    if (sameShape(src.shape, dst.shape)) dispatch1('copy_', [dst, src]);
    else {
      const view = noGrad(() => src.reshape(dst.shape));
      try {
        dispatch1('copy_', [dst, view]);
      } finally {
        view.dispose();
      }
    }
    return;
  }
  if (dst.dtype === src.dtype) {
    copyBytes(dst, src);
  } else {
    writeValues(dst, src.toTypedArray());
  }
}
