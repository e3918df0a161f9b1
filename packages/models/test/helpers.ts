import { join } from 'node:path';
import { openSafetensors } from '@omnitrain/checkpoint';
import type { Tensor } from '@omnitrain/core';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const FIXTURE_NAMES = [
  'llama-base',
  'llama-odd',
  'qwen2-base',
  'qwen2-odd',
  'qwen3-base',
  'qwen3-odd',
  'qwen3_moe-base',
  'qwen3_moe-odd',
] as const;

/** Every tensor of a fixture's reference.safetensors (caller disposes). */
export function loadReference(name: string): Record<string, Tensor> {
  const f = openSafetensors(join(FIXTURES, name, 'reference.safetensors'));
  try {
    return f.readAll();
  } finally {
    f.close();
  }
}

/** max |a - b| / max |b| (norm-wise relative error). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths ${a.length} and ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}
