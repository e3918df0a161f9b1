// Reference CPU kernels of the fused SwiGLU activation: silu(gate) * up.
import type { Registry } from '../../../registry.js';
import type { Tensor } from '../../../tensor.js';
import { output, read } from '../util.js';

/**
 * Register `swiglu` and `swigluBackward` (computed in float32/float64, rounded once at the output).
 *
 * - `swiglu([gate, up])` → `silu(gate) * up`.
 * - `swigluBackward([gy, gate, up])` → `[ggate, gup]`.
 */
export function registerSwigluKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'swiglu',
    ([gate, up]: Tensor[]) => {
      const gs = read(gate!);
      const us = read(up!);
      const y = output(gate!.shape, gate!.dtype);
      const yd = y.data;
      for (let i = 0; i < gs.length; i++) {
        const g = gs[i]!;
        yd[i] = (g / (1 + Math.exp(-g))) * us[i]!;
      }
      return y.done();
    },
    { priority: 0, source },
  );

  r.registerKernel(
    'cpu',
    'swigluBackward',
    ([gy, gate, up]: Tensor[]) => {
      const dy = read(gy!);
      const gs = read(gate!);
      const us = read(up!);
      const gg = output(gate!.shape, gate!.dtype);
      const gu = output(up!.shape, up!.dtype);
      const ggd = gg.data;
      const gud = gu.data;
      for (let i = 0; i < gs.length; i++) {
        const g = gs[i]!;
        const s = 1 / (1 + Math.exp(-g));
        const d = dy[i]!;
        gud[i] = d * g * s;
        ggd[i] = d * us[i]! * s * (1 + g * (1 - s));
      }
      return [gg.done(), gu.done()];
    },
    { priority: 0, source },
  );
}
