// Helpers shared by the native kernel wrappers: dtype guards, views of a tensor's own storage, float32 outputs,
// and the float32 <-> bfloat16 edges of the generic kernels.
import { bfloat16BitsToFloat, type DType, floatToBFloat16Bits, Tensor } from '@omnitrain/core';
import type { NativeAddon } from './native.js';

export type F32 = Float32Array;

export const f32 = (t: Tensor | undefined): t is Tensor => t !== undefined && t.dtype === 'float32';
export const i32 = (t: Tensor | undefined): t is Tensor => t !== undefined && t.dtype === 'int32';
export const raw = (t: Tensor) => t.raw() as F32;
export const ints = (t: Tensor) => t.raw() as Int32Array;
export const empty = (shape: readonly number[]) => Tensor.empty(shape, 'float32', 'cpu');
/** A float32 output the kernel writes whole (GEMM with beta 0): no zero-fill of a reused buffer. */
export const uninitialized = (shape: readonly number[]) => Tensor.uninitialized(shape, 'float32', 'cpu');

/** float32 values of a bfloat16 tensor (a converted copy). */
function bf16Values(n: NativeAddon, t: Tensor): F32 {
  const out = new Float32Array(t.numel);
  n.castFromBf16(t.raw() as Uint16Array, out, t.numel);
  return out;
}

/** Element types the generic kernels handle: float32 directly, bfloat16 through float32. */
export const floatLike = (t: Tensor | undefined): t is Tensor =>
  t !== undefined && (t.dtype === 'float32' || t.dtype === 'bfloat16');

/** float32 values of a float32 (zero-copy) or bfloat16 (converted copy) tensor. */
export function valuesF32(n: NativeAddon, t: Tensor): F32 {
  return t.dtype === 'float32' ? raw(t) : bf16Values(n, t);
}

/** A tensor of `dtype` from float32 results (`v` becomes the storage for float32, is rounded for bfloat16). */
export function fromF32(n: NativeAddon, shape: readonly number[], dtype: DType, fill: (out: F32) => void): Tensor {
  const y = Tensor.empty(shape, dtype, 'cpu');
  if (dtype === 'float32') {
    fill(raw(y));
    return y;
  }
  const tmp = new Float32Array(y.numel);
  fill(tmp);
  n.castToBf16(tmp, y.raw() as Uint16Array, y.numel);
  return y;
}

/** A number rounded to the value set of `dtype`, as the reference rounds scalars and clamp bounds. */
export function roundTo(v: number, dtype: DType): number {
  return dtype === 'float32' ? Math.fround(v) : bfloat16BitsToFloat(floatToBFloat16Bits(v));
}
