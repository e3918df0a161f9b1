// bfloat16 for the float32 native kernels: bfloat16 inputs are widened to float32 with the addon's cast, the
// float32 kernel runs, and each output the reference makes in bfloat16 is rounded once (castToBf16). This is the
// reference's own recipe (compute in float32 from the bfloat16 values, one rounding per bfloat16 output), so the
// float32 kernels need no bfloat16 code of their own.
import { type DType, Tensor } from '@omnitrain/core';
import type { NativeAddon } from './native.js';

/** A native kernel: the op's output(s), or `null` to leave the call to the next kernel (core's reference). */
export type NativeKernel = (n: NativeAddon, inputs: Tensor[], attrs: any) => Tensor | Tensor[] | null;

/** How an op's bfloat16 inputs and outputs map onto its float32 kernel. */
export interface Bf16Spec {
  /**
   * dtype of each output as the reference makes it, from the original (unwidened) inputs and attrs; outputs listed
   * as 'bfloat16' are rounded, the others (saved statistics, float32 gradients of float32 weights) stay float32.
   */
  outputs?: (inputs: readonly Tensor[], attrs: any) => readonly DType[];
  /**
   * In-place ops: indices of the inputs the kernel updates. Each bfloat16 one is widened, updated in float32 and
   * rounded back into its own storage; the op returns `inputs[inplace[0]]`.
   */
  inplace?: readonly number[];
  /** Inputs the float32 kernel does not read (passed on as they are, not widened). */
  unused?: readonly number[];
}

const isBf16 = (t: Tensor | undefined): t is Tensor => t !== undefined && t.dtype === 'bfloat16';

/** A float32 copy of a bfloat16 tensor (the caller disposes it). */
export function widenBf16(n: NativeAddon, t: Tensor): Tensor {
  const w = Tensor.uninitialized(t.shape, 'float32', 'cpu');
  n.castFromBf16(t.raw() as Uint16Array, w.raw() as Float32Array, t.numel);
  return w;
}

/** `t` (float32) rounded to a new bfloat16 tensor (written whole, so not zero-filled first); `t` is disposed. */
export function narrowToBf16(n: NativeAddon, t: Tensor): Tensor {
  const y = Tensor.uninitialized(t.shape, 'bfloat16', 'cpu');
  n.castToBf16(t.raw() as Float32Array, y.raw() as Uint16Array, t.numel);
  t.dispose();
  return y;
}

/**
 * `kernel` extended to bfloat16 operands (alone or mixed with float32): when the kernel itself declines a call
 * with a bfloat16 input, the bfloat16 inputs are widened to float32 temporaries, the kernel runs on them, and the
 * outputs are rounded to bfloat16 where `spec` says the reference makes bfloat16 (or written back into the
 * bfloat16 inputs of in-place ops). Temporaries are disposed whatever happens.
 */
export function withBf16(kernel: NativeKernel, spec: Bf16Spec): NativeKernel {
  return (n, inputs, attrs) => {
    const direct = kernel(n, inputs, attrs);
    if (direct || !inputs.some(isBf16)) return direct;
    const temps: Tensor[] = [];
    const wide = inputs.map((t, i) => {
      if (!isBf16(t) || spec.unused?.includes(i)) return t;
      const w = widenBf16(n, t);
      temps.push(w);
      return w;
    });
    try {
      const out = kernel(n, wide, attrs);
      if (!out) return null;
      if (spec.inplace) {
        for (const i of spec.inplace) {
          const t = inputs[i];
          if (isBf16(t)) n.castToBf16(wide[i]!.raw() as Float32Array, t.raw() as Uint16Array, t.numel);
        }
        return inputs[spec.inplace[0]!]!;
      }
      const dtypes = spec.outputs?.(inputs, attrs) ?? [];
      const list = [out].flat();
      const res = list.map((t, i) => (dtypes[i] === 'bfloat16' && t.dtype === 'float32' ? narrowToBf16(n, t) : t));
      return Array.isArray(out) ? res : res[0]!;
    } finally {
      for (const t of temps) t.dispose();
    }
  };
}
