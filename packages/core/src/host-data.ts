import type { DType, RawArray } from './dtype.js';
import { fromBFloat16Array, fromFloat16Array, toBFloat16Array, toFloat16Array } from './half.js';

/** Host array type users see for a dtype: halves widen to float32. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** Encode numbers as the raw storage representation of `dtype` (rounding as PyTorch does). */
export function encodeRaw(values: ArrayLike<number>, dtype: DType): RawArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int32':
      return Int32Array.from(values, (v) => Math.trunc(v));
    case 'uint8':
      return Uint8Array.from(values, (v) => Math.trunc(v) & 0xff);
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    case 'bfloat16':
      return toBFloat16Array(values);
    case 'float16':
      return toFloat16Array(values);
  }
}

/** Decode a raw storage array of `dtype` to the host array type (a copy for halves). */
export function decodeRaw(raw: RawArray, dtype: DType): HostArray {
  if (dtype === 'bfloat16') return fromBFloat16Array(raw as Uint16Array);
  if (dtype === 'float16') return fromFloat16Array(raw as Uint16Array);
  return raw as HostArray;
}

/** View raw bytes as a typed array of `dtype` (copies when unaligned). */
export function bytesAsRaw(bytes: Uint8Array, dtype: DType): RawArray {
  const size = { float32: 4, float64: 8, int32: 4, bfloat16: 2, float16: 2, uint8: 1, bool: 1 }[dtype];
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = b.byteLength / size;
  switch (dtype) {
    case 'float32':
      return new Float32Array(b.buffer, b.byteOffset, n);
    case 'float64':
      return new Float64Array(b.buffer, b.byteOffset, n);
    case 'int32':
      return new Int32Array(b.buffer, b.byteOffset, n);
    case 'bfloat16':
    case 'float16':
      return new Uint16Array(b.buffer, b.byteOffset, n);
    default:
      return new Uint8Array(b.buffer, b.byteOffset, n);
  }
}
