// In-place and conversion kernels the engine, creation functions and optimizers rely on.
import type { DType } from '../../dtype.js';
import type { Registry } from '../../registry.js';
import { sameShape } from '../../shape.js';
import type { Tensor } from '../../tensor.js';
import { output, read, store } from './util.js';

function checkSame(op: string, dst: Tensor, src: Tensor): void {
  if (!sameShape(dst.shape, src.shape) && src.numel !== 1) {
    throw new Error(`${op}: shapes ${JSON.stringify(dst.shape)} and ${JSON.stringify(src.shape)} differ`);
  }
}

/** Register `cast`, `copy_`, `add_`, `mul_`, `fill_` on the CPU backend. */
export function registerInplaceKernels(r: Registry, source: string): void {
  const k = (op: string, fn: (inputs: Tensor[], attrs: any) => Tensor | Tensor[]) =>
    r.registerKernel('cpu', op, fn, { priority: 0, source });

  k('cast', ([x], { dtype }: { dtype: DType }) => {
    const o = output(x!.shape, dtype);
    o.data.set(read(x!));
    return o.done();
  });
  k('copy_', ([dst, src]) => {
    checkSame('copy_', dst!, src!);
    if (dst!.dtype === src!.dtype && src!.numel === dst!.numel) dst!.raw().set(src!.raw() as never);
    else store(src!.numel === 1 ? new Float64Array(dst!.numel).fill(read(src!)[0]!) : read(src!), dst!);
    return dst!;
  });
  k('add_', ([dst, src], { alpha = 1 }: { alpha?: number }) => {
    checkSame('add_', dst!, src!);
    const s = read(src!);
    const at = (i: number) => (s.length === 1 ? s[0]! : s[i]!);
    if (dst!.dtype === 'float32' || dst!.dtype === 'float64') {
      const d = dst!.raw() as Float32Array | Float64Array;
      for (let i = 0; i < d.length; i++) d[i] = d[i]! + alpha * at(i);
    } else {
      const d = Float64Array.from(read(dst!));
      for (let i = 0; i < d.length; i++) d[i] = d[i]! + alpha * at(i);
      store(d, dst!);
    }
    return dst!;
  });
  k('mul_', ([dst], { value }: { value: number }) => {
    const d = read(dst!);
    const out = new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = d[i]! * value;
    store(out, dst!);
    return dst!;
  });
  k('fill_', ([dst], { value }: { value: number }) => {
    const raw = dst!.raw();
    if (dst!.dtype === 'float32' || dst!.dtype === 'float64' || dst!.dtype === 'int32') raw.fill(value);
    else store(new Float64Array(dst!.numel).fill(value), dst!);
    return dst!;
  });
}
