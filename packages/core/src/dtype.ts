/** Element types a tensor can hold. `float64` exists on CPU for gradient checks. */
export type DType = 'float32' | 'bfloat16' | 'float16' | 'float64' | 'int32' | 'uint8' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'bfloat16', 'float16', 'float64', 'int32', 'uint8', 'bool'];

const ITEM_SIZE: Record<DType, number> = {
  float32: 4,
  bfloat16: 2,
  float16: 2,
  float64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

/** True for dtypes that carry gradients. */
export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16' || dtype === 'float64';
}

/** Throws a clear error unless `name` is a known dtype. */
export function checkDType(name: string, where = 'dtype'): DType {
  if (!(DTYPES as readonly string[]).includes(name)) {
    throw new Error(`${where}: unknown dtype '${name}'; known: ${DTYPES.join(', ')}`);
  }
  return name as DType;
}

/** Typed array holding the raw storage of a dtype (halves as their 16-bit patterns). */
export type RawArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/** View `length` elements of `dtype` over `buffer` starting at element `offset`. */
export function rawView(buffer: ArrayBuffer, dtype: DType, offset: number, length: number): RawArray {
  const byteOffset = offset * ITEM_SIZE[dtype];
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, byteOffset, length);
    case 'float64':
      return new Float64Array(buffer, byteOffset, length);
    case 'int32':
      return new Int32Array(buffer, byteOffset, length);
    case 'bfloat16':
    case 'float16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer, byteOffset, length);
  }
}

/** The dtype that two operands promote to (PyTorch's rules for the dtypes we have). */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  const rank = (d: DType) => ({ bool: 0, uint8: 1, int32: 2, bfloat16: 3, float16: 3, float32: 4, float64: 5 })[d];
  if ((a === 'bfloat16' && b === 'float16') || (a === 'float16' && b === 'bfloat16')) return 'float32';
  return rank(a) >= rank(b) ? a : b;
}
