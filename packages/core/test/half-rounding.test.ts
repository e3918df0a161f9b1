import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat,
  float16BitsToFloat,
  floatToBFloat16Bits,
  floatToFloat16Bits,
  fromBFloat16Array,
  fromFloat16Array,
  tensor,
  tidy,
  toBFloat16Array,
  toFloat16Array,
} from '../src/index.js';
import { readSafetensors } from './helpers/safetensors.js';

const file = readSafetensors(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'half.safetensors'));
const bytes = (k: string) => file.tensors.get(k)!.bytes;
const x = new Float32Array(bytes('x').slice().buffer);
const bf16 = new Uint16Array(bytes('bf16').slice().buffer);
const f16 = new Uint16Array(bytes('f16').slice().buffer);

function firstMismatch(got: Uint16Array, want: Uint16Array): string | null {
  const xb = new Uint32Array(x.buffer);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      return `#${i}: x=0x${xb[i]!.toString(16)} got 0x${got[i]!.toString(16)} want 0x${want[i]!.toString(16)}`;
    }
  }
  return null;
}

describe('float32 -> bf16/fp16 rounding matches PyTorch bit for bit', () => {
  it(`bfloat16 (${x.length} values: random bit patterns, ties, overflow, subnormals, NaN)`, () => {
    expect(firstMismatch(toBFloat16Array(x), bf16)).toBeNull();
  });

  it('float16', () => {
    expect(firstMismatch(toFloat16Array(x), f16)).toBeNull();
  });

  it('scalar conversions agree with the array ones', () => {
    for (let i = 0; i < 2000; i++) {
      if (Number.isNaN(x[i])) continue;
      expect(floatToBFloat16Bits(x[i]!)).toBe(bf16[i]);
      expect(floatToFloat16Bits(x[i]!)).toBe(f16[i]);
    }
  });

  it('widening back is exact, and Inf/NaN survive', () => {
    const wide = fromBFloat16Array(bf16);
    const wideH = fromFloat16Array(f16);
    for (let i = 0; i < bf16.length; i++) {
      const v = bfloat16BitsToFloat(bf16[i]!);
      expect(Object.is(wide[i], v) || (Number.isNaN(wide[i]) && Number.isNaN(v))).toBe(true);
      const h = float16BitsToFloat(f16[i]!);
      expect(Object.is(wideH[i], h) || (Number.isNaN(wideH[i]) && Number.isNaN(h))).toBe(true);
    }
    expect(bfloat16BitsToFloat(floatToBFloat16Bits(Number.POSITIVE_INFINITY))).toBe(Number.POSITIVE_INFINITY);
    expect(float16BitsToFloat(floatToFloat16Bits(Number.NEGATIVE_INFINITY))).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isNaN(float16BitsToFloat(floatToFloat16Bits(Number.NaN)))).toBe(true);
    expect(float16BitsToFloat(floatToFloat16Bits(65520))).toBe(Number.POSITIVE_INFINITY); // rounds up past max
    expect(float16BitsToFloat(floatToFloat16Bits(65519))).toBe(65504);
  });

  it('tensor() stores bf16 values rounded the same way', () => {
    tidy(() => {
      const t = tensor(x.subarray(0, 1000), { dtype: 'bfloat16' });
      expect(firstMismatch(t.raw() as Uint16Array, bf16.subarray(0, 1000))).toBeNull();
    });
  });
});
