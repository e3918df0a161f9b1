// Reference CPU kernels of rotary position embedding (Hugging Face rotate-half layout).
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { output, read, readInt } from '../util.js';
import { roundToDType } from './rms-norm.js';

interface RopeAttrs {
  /** Inverse frequencies, headDim / 2 of them (float32 values, as `ropeInvFreq` makes them). */
  invFreq: ArrayLike<number>;
}

/**
 * Rotate every head vector of `x` [..., H, D] by the angles of its row's position.
 * cos/sin are made as Hugging Face makes them: angle = float32(pos * invFreq), cos and sin in
 * float32, then cast to x's dtype. `sign` = 1 rotates forward, -1 applies the inverse
 * (transposed) rotation used by the gradient.
 */
function rotate(x: Tensor, positions: Tensor, invFreq: ArrayLike<number>, sign: 1 | -1, where: string): Tensor {
  const d = x.shape[x.shape.length - 1]!;
  const h = x.shape[x.shape.length - 2]!;
  const half = d / 2;
  if (invFreq.length !== half) {
    throw new Error(`${where}: ${invFreq.length} inverse frequencies for head dim ${d} (expected ${half})`);
  }
  const pos = readInt(positions, where);
  const xs = read(x);
  const y = output(x.shape, x.dtype);
  const yd = y.data;
  const round = roundToDType(x.dtype);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const rows = pos.length;
  for (let r = 0; r < rows; r++) {
    const p = Math.fround(pos[r]!);
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(p * invFreq[j]!);
      cos[j] = round(Math.fround(Math.cos(angle)));
      sin[j] = sign * round(Math.fround(Math.sin(angle)));
    }
    for (let k = 0, o = r * h * d; k < h; k++, o += d) {
      for (let j = 0; j < half; j++) {
        const x1 = xs[o + j]!;
        const x2 = xs[o + j + half]!;
        // out = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1)
        yd[o + j] = x1 * cos[j]! - x2 * sin[j]!;
        yd[o + j + half] = x2 * cos[j]! + x1 * sin[j]!;
      }
    }
  }
  return y.done();
}

/**
 * Register `rope` and `ropeBackward`.
 *
 * - `rope([x, positions], { invFreq })` → x rotated; x [..., H, D], positions int32 shaped x.shape[:-2].
 * - `ropeBackward([gy, positions], { invFreq })` → gx (the inverse rotation of gy).
 */
export function registerRopeKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'rope',
    ([x, positions]: Tensor[], { invFreq }: RopeAttrs) => rotate(x!, positions!, invFreq, 1, 'rope'),
    { priority: 0, source },
  );
  r.registerKernel(
    'cpu',
    'ropeBackward',
    ([gy, positions]: Tensor[], { invFreq }: RopeAttrs) => rotate(gy!, positions!, invFreq, -1, 'ropeBackward'),
    { priority: 0, source },
  );
}
