import { record } from './autograd/node.js';
import { normalizeDevice } from './device.js';
import { itemSize } from './dtype.js';
import { Tensor } from './tensor.js';

/**
 * Copy `t` to another device (differentiable: the gradient is copied back). To `meta` keeps
 * only the shape; from `meta` there is nothing to copy, so it is an error.
 */
export function toDevice(t: Tensor, device: string): Tensor {
  const dev = normalizeDevice(device);
  if (dev === t.device) return t;
  const out = Tensor.empty(t.shape, t.dtype, dev);
  if (dev !== 'meta') {
    if (t.device === 'meta') {
      out.dispose();
      throw new Error(
        `cannot copy a meta tensor ${JSON.stringify(t.shape)} to '${dev}': it has no data (initialise it instead)`,
      );
    }
    copyBytes(out, t);
  }
  const from = t.device;
  record('toDevice', [t], [out], ([g]) => [g ? toDevice(g, from) : null]);
  return out;
}

/**
 * Copy the bytes of `src` into `dst` (same dtype and element count), across devices through
 * host memory: backends only promise readBytes/writeBytes. Not recorded by autograd.
 */
export function copyBytes(dst: Tensor, src: Tensor): void {
  if (dst.dtype !== src.dtype || dst.numel !== src.numel) {
    throw new Error(`copyBytes: ${src} into ${dst}: dtype and element count must match`);
  }
  const size = itemSize(src.dtype);
  src.storage.backend.synchronize();
  const bytes = src.storage.backend.readBytes(src.storage, src.offset * size, src.numel * size);
  dst.storage.backend.writeBytes(dst.storage, dst.offset * size, bytes);
}
