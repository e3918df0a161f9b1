// Helpers shared by the reference CPU kernels: typed-array access in a compute precision.
import type { DType } from '../../dtype.js';
import { toBFloat16Array, toFloat16Array } from '../../half.js';
import { Tensor } from '../../tensor.js';

/** Arrays the reference kernels compute in: float64 for float64/int32, float32 otherwise. */
export type ComputeArray = Float32Array | Float64Array;

/** True when `dtype` computes in float64 on the reference backend. */
export function computesInFloat64(dtype: DType): boolean {
  return dtype === 'float64' || dtype === 'int32';
}

/**
 * Values of a CPU tensor in its compute precision: a zero-copy view for float32/float64,
 * a converted copy for the other dtypes. Do not write through it.
 */
export function read(t: Tensor): ComputeArray {
  const raw = t.raw();
  if (t.dtype === 'float32' || t.dtype === 'float64') return raw as ComputeArray;
  const d = t.toTypedArray();
  return computesInFloat64(t.dtype) ? Float64Array.from(d) : d instanceof Float32Array ? d : Float32Array.from(d);
}

/** Values of an int32 CPU tensor (zero-copy), e.g. indices and ids. */
export function readInt(t: Tensor, where: string): Int32Array {
  if (t.dtype !== 'int32') throw new Error(`${where}: expected an int32 tensor, got ${t.dtype}`);
  return t.raw() as Int32Array;
}

/** An output under construction: write `data`, then call `done()` to get the tensor. */
export interface Output {
  readonly tensor: Tensor;
  /** Compute-precision buffer; for float32/float64 it *is* the tensor's storage. */
  readonly data: ComputeArray;
  /** Store `data` into the tensor (rounding for halves) and return it. */
  done(): Tensor;
}

/** Allocate a CPU output of `shape`/`dtype` with a compute-precision buffer. */
export function output(shape: readonly number[], dtype: DType): Output {
  const tensor = Tensor.empty(shape, dtype, 'cpu');
  const raw = tensor.raw();
  const direct = dtype === 'float32' || dtype === 'float64';
  const data: ComputeArray = direct
    ? (raw as ComputeArray)
    : computesInFloat64(dtype)
      ? new Float64Array(raw.length)
      : new Float32Array(raw.length);
  return {
    tensor,
    data,
    done() {
      if (!direct) store(data, tensor);
      return tensor;
    },
  };
}

/** Write compute-precision values into a CPU tensor's storage, converting to its dtype. */
export function store(src: ArrayLike<number>, dst: Tensor): void {
  const raw = dst.raw();
  switch (dst.dtype) {
    case 'bfloat16':
      toBFloat16Array(src, raw as Uint16Array);
      return;
    case 'float16':
      toFloat16Array(src, raw as Uint16Array);
      return;
    case 'int32':
      for (let i = 0; i < src.length; i++) raw[i] = Math.trunc(src[i]!);
      return;
    case 'bool':
      for (let i = 0; i < src.length; i++) raw[i] = src[i] !== 0 ? 1 : 0; // NaN is true, as in PyTorch
      return;
    default:
      (raw as Float32Array).set(src);
  }
}
