import { record } from '../autograd/node.js';
import { sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { dispatch, dispatch1 } from './dispatch.js';

function checkFloat(op: string, name: string, t: Tensor): void {
  if (!t.isFloatingPoint)
    throw new Error(`${op}: ${name} must be a float tensor, got ${t.dtype} ${JSON.stringify(t.shape)}`);
}

/**
 * SwiGLU activation `silu(gate) * up` (the MLP of Llama/Qwen: `down(swiglu(gateProj(x), upProj(x)))`),
 * fused: kernels `swiglu` and `swigluBackward` (→ `[ggate, gup]`), computed in float32 (float64 for
 * float64) and rounded once at the output.
 *
 * @param gate pre-activation, any shape
 * @param up same shape and dtype as `gate`
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  checkFloat('swiglu', 'gate', gate);
  checkFloat('swiglu', 'up', up);
  if (!sameShape(gate.shape, up.shape)) {
    throw new Error(
      `swiglu: gate of shape ${JSON.stringify(gate.shape)} and up of shape ${JSON.stringify(up.shape)} must have the same shape`,
    );
  }
  if (gate.dtype !== up.dtype) {
    throw new Error(`swiglu: gate has dtype ${gate.dtype} but up has ${up.dtype}; cast one of them`);
  }
  const y = dispatch1('swiglu', [gate, up]);
  record(
    'swiglu',
    [gate, up],
    [y],
    ([gy], [gs, us]) => {
      if (!gy) return [null, null];
      const [gg, gu] = dispatch('swigluBackward', [gy, gs!, us!]);
      return [gg!, gu!];
    },
    [gate, up],
  );
  return y;
}
