import type { DType } from '@omnitrain/core';

/** Element types of the safetensors format that this package reads and writes. */
export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'F8_E4M3'
  | 'F8_E5M2';

interface DTypeInfo {
  /** Bytes per element. */
  size: number;
  /** The core dtype a tensor of this type is read as by default. */
  core: DType;
  /** True when the bytes are the core dtype's storage as is (no conversion). */
  native: boolean;
}

const TABLE: Record<SafetensorsDType, DTypeInfo> = {
  F64: { size: 8, core: 'float64', native: true },
  F32: { size: 4, core: 'float32', native: true },
  F16: { size: 2, core: 'float16', native: true },
  BF16: { size: 2, core: 'bfloat16', native: true },
  I64: { size: 8, core: 'int32', native: false },
  I32: { size: 4, core: 'int32', native: true },
  I16: { size: 2, core: 'int32', native: false },
  I8: { size: 1, core: 'int32', native: false },
  U64: { size: 8, core: 'int32', native: false },
  U32: { size: 4, core: 'int32', native: false },
  U16: { size: 2, core: 'int32', native: false },
  U8: { size: 1, core: 'uint8', native: true },
  BOOL: { size: 1, core: 'bool', native: true },
  F8_E4M3: { size: 1, core: 'float32', native: false },
  F8_E5M2: { size: 1, core: 'float32', native: false },
};

/** Every safetensors dtype this package understands. */
export const SAFETENSORS_DTYPES = Object.keys(TABLE) as SafetensorsDType[];

/** True when `name` is a safetensors dtype this package understands. */
export function isSafetensorsDType(name: unknown): name is SafetensorsDType {
  return typeof name === 'string' && Object.hasOwn(TABLE, name);
}

/** Bytes per element of a safetensors dtype. */
export function safetensorsItemSize(dtype: SafetensorsDType): number {
  return TABLE[dtype].size;
}

/**
 * The core dtype a tensor stored as `dtype` is read as when no dtype is asked for: the same type
 * where core has it; int32 for the other integer types (values are range-checked); float32 for
 * the float8 types.
 */
export function coreDTypeOf(dtype: SafetensorsDType): DType {
  return TABLE[dtype].core;
}

/** True when the stored bytes are already the core dtype's storage (read without conversion). */
export function isNativeDType(dtype: SafetensorsDType): boolean {
  return TABLE[dtype].native;
}

const FROM_CORE: Record<DType, SafetensorsDType> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

/** The safetensors dtype a core tensor of `dtype` is written as. */
export function safetensorsDTypeOf(dtype: DType): SafetensorsDType {
  return FROM_CORE[dtype];
}

function e4m3(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 3) & 0xf;
  const man = b & 7;
  if (exp === 15 && man === 7) return Number.NaN;
  if (exp === 0) return sign * man * 2 ** -9;
  return sign * (1 + man / 8) * 2 ** (exp - 7);
}

function e5m2(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 2) & 0x1f;
  const man = b & 3;
  if (exp === 31) return man ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  if (exp === 0) return sign * man * 2 ** -16;
  return sign * (1 + man / 4) * 2 ** (exp - 15);
}

/**
 * Decode stored bytes of a non-native dtype into the host array of its default core dtype
 * (Int32Array or Float32Array). Integers that do not fit int32 are an error naming `where`
 * and the element.
 */
export function decodeNonNative(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  where: string,
  firstElement = 0,
): Int32Array | Float32Array {
  const size = TABLE[dtype].size;
  const n = bytes.byteLength / size;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tooBig = (i: number, v: bigint | number): never => {
    throw new Error(
      `${where}: element ${firstElement + i} = ${v} of a ${dtype} tensor does not fit int32 ` +
        '(core has no 64-bit integers; read the raw bytes with readBytes instead)',
    );
  };
  switch (dtype) {
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const out = new Float32Array(n);
      const f = dtype === 'F8_E4M3' ? e4m3 : e5m2;
      for (let i = 0; i < n; i++) out[i] = f(bytes[i]!);
      return out;
    }
    default: {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const at = i * size;
        switch (dtype) {
          case 'I64': {
            const v = view.getBigInt64(at, true);
            if (v < -2147483648n || v > 2147483647n) tooBig(i, v);
            out[i] = Number(v);
            break;
          }
          case 'U64': {
            const v = view.getBigUint64(at, true);
            if (v > 2147483647n) tooBig(i, v);
            out[i] = Number(v);
            break;
          }
          case 'U32': {
            const v = view.getUint32(at, true);
            if (v > 2147483647) tooBig(i, v);
            out[i] = v;
            break;
          }
          case 'I16':
            out[i] = view.getInt16(at, true);
            break;
          case 'U16':
            out[i] = view.getUint16(at, true);
            break;
          case 'I8':
            out[i] = view.getInt8(at);
            break;
          default:
            throw new Error(`${where}: no conversion for dtype ${dtype}`);
        }
      }
      return out;
    }
  }
}
