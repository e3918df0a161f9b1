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
    const size = itemSize(t.dtype);
    t.storage.backend.synchronize();
    const bytes = t.storage.backend.readBytes(t.storage, t.offset * size, t.numel * size);
    out.storage.backend.writeBytes(out.storage, 0, bytes);
  }
  const from = t.device;
  record('toDevice', [t], [out], ([g]) => [g ? toDevice(g, from) : null]);
  return out;
}
