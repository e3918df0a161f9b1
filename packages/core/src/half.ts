// Bit-exact float32 <-> bfloat16 / float16 conversion, rounding as PyTorch (c10) does:
// round-to-nearest-even, NaN and Inf preserved.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits of `x` (after rounding `x` to float32). */
export function floatBits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** The float32 whose bits are `bits`. */
export function bitsToFloat(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/**
 * float32 -> bfloat16 bits. NaN becomes 0xFFFF: that is what PyTorch's (vectorised) CPU tensor
 * conversion produces for every NaN, which is what `tensor.to(torch.bfloat16)` users see.
 */
export function floatToBFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0xffff;
  const u = floatBits(x);
  const bias = ((u >>> 16) & 1) + 0x7fff;
  return ((u + bias) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float32 value (exact). */
export function bfloat16BitsToFloat(h: number): number {
  return bitsToFloat((h & 0xffff) << 16);
}

const SCALE_TO_INF = bitsToFloat(0x77800000); // 2^112
const SCALE_TO_ZERO = bitsToFloat(0x08800000); // 2^-110

/** float32 -> float16 bits (the FP16 library's fp16_ieee_from_fp32_value, used by c10::Half). */
export function floatToFloat16Bits(x: number): number {
  const w = floatBits(x);
  const shl1 = (w << 1) >>> 0;
  const sign = w & 0x80000000;
  let base = Math.fround(Math.fround(Math.abs(Math.fround(x)) * SCALE_TO_INF) * SCALE_TO_ZERO);
  let bias = shl1 & 0xff000000;
  if (bias >>> 0 < 0x71000000) bias = 0x71000000;
  base = Math.fround(bitsToFloat(((bias >>> 1) + 0x07800000) >>> 0) + base);
  const bits = floatBits(base);
  const expBits = (bits >>> 13) & 0x7c00;
  const mantissaBits = bits & 0x0fff;
  const nonsign = expBits + mantissaBits;
  return ((sign >>> 16) | (shl1 > 0xff000000 ? 0x7e00 : nonsign)) & 0xffff;
}

/** float16 bits -> float32 value (exact). */
export function float16BitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** Convert a whole array of float32 values to bfloat16 bits. */
export function toBFloat16Array(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (src instanceof Float32Array) {
    // Fast path: integer rounding on the float32 bit patterns, no per-element float conversion.
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < bits.length; i++) {
      const u = bits[i]!;
      dst[i] = (u & 0x7fffffff) > 0x7f800000 ? 0xffff : ((u + (((u >>> 16) & 1) + 0x7fff)) >>> 16) & 0xffff;
    }
    return dst;
  }
  for (let i = 0; i < src.length; i++) dst[i] = floatToBFloat16Bits(src[i]!);
  return dst;
}

/** Convert a whole array of float32 values to float16 bits. */
export function toFloat16Array(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = floatToFloat16Bits(src[i]!);
  return dst;
}

/** Widen bfloat16 bits to float32. */
export function fromBFloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}

/** Widen float16 bits to float32. */
export function fromFloat16Array(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = float16BitsToFloat(src[i]!);
  return dst;
}
