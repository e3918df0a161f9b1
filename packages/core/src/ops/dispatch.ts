import { getRegistry } from '../registry.js';
import type { Tensor } from '../tensor.js';

/**
 * Run the best kernel registered for `op` on the inputs' device. All inputs must be on one
 * device; `device` overrides the device when there are no tensor inputs (factories).
 */
export function dispatch(op: string, inputs: readonly Tensor[], attrs: object = {}, device?: string): Tensor[] {
  const dev = device ?? inputs[0]?.device;
  if (dev === undefined) throw new Error(`${op}: no tensor inputs and no device given`);
  for (const t of inputs) {
    if (t.isDisposed) throw new Error(`${op}: input tensor #${t.id} ${JSON.stringify(t.shape)} was already disposed`);
    if (t.device !== dev) {
      throw new Error(`${op}: inputs are on different devices ('${dev}' and '${t.device}'); move them with .to()`);
    }
  }
  const out = getRegistry().kernel(op, dev)(inputs as Tensor[], attrs);
  return Array.isArray(out) ? out : [out];
}

/** `dispatch` for ops with exactly one output. */
export function dispatch1(op: string, inputs: readonly Tensor[], attrs: object = {}, device?: string): Tensor {
  return dispatch(op, inputs, attrs, device)[0]!;
}
