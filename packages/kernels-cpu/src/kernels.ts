// The table of native kernels by op name (the wrappers live in matmul.ts, norms.ts, fused.ts, loss.ts,
// attention.ts, elementwise.ts and movement.ts) and their registration over core's reference kernels. Each kernel
// handles the dtype/shape/attribute combinations it supports natively and otherwise calls the next kernel
// registered for the op (core's reference), so nothing fails that worked before.
import { type DType, type Kernel, promoteTypes, type Registry, type Tensor } from '@omnitrain/core';
import { attention, attentionBackward } from './attention.js';
import { type NativeKernel, withBf16 } from './bf16.js';
import {
  BACKWARD_OPS,
  BINARY_OPS,
  binary,
  cast,
  logsumexp,
  REDUCE_OPS,
  reduce,
  softmaxBackward,
  sumTo,
  UNARY_OPS,
  unary,
  unaryBackward,
  where,
} from './elementwise.js';
import {
  adamwStep,
  addInplace,
  embedding,
  embeddingBackward,
  mulInplace,
  rope,
  softmax,
  swiglu,
  swigluBackward,
} from './fused.js';
import { crossEntropy, crossEntropyBackward, flce, flceBackward } from './loss.js';
import { groupedMatmul, groupedMatmulBackward, matmul } from './matmul.js';
import { MOVEMENT_KERNELS } from './movement.js';
import { native } from './native.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, rmsNormBackwardBf16, rmsNormBf16 } from './norms.js';

/** `source` of every kernel this package registers. */
export const KERNEL_SOURCE = '@omnitrain/kernels-cpu native';
/** Priority of the native kernels (core's reference kernels are at 0). */
export const KERNEL_PRIORITY = 10;

/** The best kernel for `op` on cpu below ours (core's reference): never one of ours or a wrapper above. */
function fallback(r: Registry, op: string): Kernel {
  const e = r.kernels('cpu', op).find((k) => k.source !== KERNEL_SOURCE && k.priority < KERNEL_PRIORITY);
  if (!e) throw new Error(`kernels-cpu: no fallback kernel for '${op}' on cpu`);
  return e.kernel;
}

const F: DType = 'float32';
const dtypeOf = (t: Tensor | undefined): DType => t?.dtype ?? F;
/** Output dtypes when the op returns optional outputs: the present ones in order. */
const present = (...outs: [boolean, DType][]) => outs.filter(([on]) => on).map(([, d]) => d);

/**
 * The fused and in-place kernels, float32 natively, extended to bfloat16 operands by {@link withBf16}: for each op
 * the dtypes of its outputs as core's reference makes them (bfloat16 results rounded once; saved statistics such as
 * rstd, mean and lse, and gradients of float32 operands, stay float32), or the inputs it updates in place.
 */
const FUSED: Readonly<Record<string, NativeKernel>> = {
  matmul: withBf16(matmul, { outputs: ([a]) => [dtypeOf(a)] }),
  // bfloat16 x: rmsNormBf16 (the reference's intermediate rounding); float32 x with a bfloat16 weight: widened.
  rmsNorm: withBf16((n, ins, a) => rmsNormBf16(n, ins, a) ?? rmsNorm(n, ins, a), {
    outputs: ([x, w]) => [promoteTypes(dtypeOf(x), dtypeOf(w)), F],
  }),
  rmsNormBackward: withBf16((n, ins, a) => rmsNormBackwardBf16(n, ins, a) ?? rmsNormBackward(n, ins, a), {
    outputs: ([, x, w]) => [dtypeOf(x), dtypeOf(w)],
  }),
  layerNorm: withBf16(layerNorm, { outputs: ([x]) => [dtypeOf(x), F, F] }),
  layerNormBackward: withBf16(layerNormBackward, {
    outputs: (ins, { hasWeight, hasBias }) =>
      present([true, dtypeOf(ins[1])], [!!hasWeight, dtypeOf(ins[4])], [!!hasBias, dtypeOf(ins[1])]),
  }),
  swiglu: withBf16(swiglu, { outputs: ([g]) => [dtypeOf(g)] }),
  swigluBackward: withBf16(swigluBackward, { outputs: ([, g, u]) => [dtypeOf(g), dtypeOf(u)] }),
  rope: rope(1),
  ropeBackward: rope(-1),
  add_: withBf16(addInplace, { inplace: [0] }),
  mul_: withBf16(mulInplace, { inplace: [0] }),
  adamwStep: withBf16(adamwStep, { inplace: [0, 2, 3, 4] }),
  embedding,
  embeddingBackward: withBf16(embeddingBackward, { outputs: ([, g]) => [dtypeOf(g)] }),
  crossEntropy: withBf16(crossEntropy, { outputs: ([x]) => [dtypeOf(x), F] }),
  crossEntropyBackward: withBf16(crossEntropyBackward, { outputs: ([x]) => [dtypeOf(x)] }),
  fusedLinearCrossEntropy: withBf16(flce, { outputs: ([h]) => [dtypeOf(h), F] }),
  fusedLinearCrossEntropyBackward: withBf16(flceBackward, {
    outputs: ([h, w], a) => present([a.needHidden ?? true, dtypeOf(h)], [a.needWeight ?? true, dtypeOf(w)]),
  }),
  groupedMatmul: withBf16(groupedMatmul, { outputs: ([x]) => [dtypeOf(x)] }),
  groupedMatmulBackward: withBf16(groupedMatmulBackward, { outputs: ([, x, w]) => [dtypeOf(x), dtypeOf(w)] }),
  attention: withBf16(attention, { outputs: ([q]) => [dtypeOf(q), F] }),
  attentionBackward: withBf16(attentionBackward, {
    unused: [3],
    outputs: ([q, k, v]) => [dtypeOf(q), dtypeOf(k), dtypeOf(v)],
  }),
  softmax: withBf16(softmax(false), { outputs: ([x]) => [dtypeOf(x)] }),
  logSoftmax: withBf16(softmax(true), { outputs: ([x]) => [dtypeOf(x)] }),
};

/** Every native kernel by op name (same names, inputs, attrs and outputs as core's reference kernels). */
export const NATIVE_KERNELS: Readonly<Record<string, NativeKernel>> = {
  ...FUSED,
  softmaxBackward: softmaxBackward(false),
  logSoftmaxBackward: softmaxBackward(true),
  logsumexp,
  where,
  cast,
  ...Object.fromEntries(Object.keys(BINARY_OPS).map((op) => [op, binary(op)])),
  ...Object.fromEntries(Object.keys(UNARY_OPS).map((op) => [op, unary(op)])),
  ...Object.fromEntries(Object.keys(BACKWARD_OPS).map((op) => [op, unaryBackward(op)])),
  ...Object.fromEntries(Object.keys(REDUCE_OPS).map((op) => [op, reduce(op)])),
  sumTo,
  ...MOVEMENT_KERNELS,
};

/** Register every native kernel on `cpu` at {@link KERNEL_PRIORITY}; each falls back to the next kernel. */
export function registerNativeKernels(r: Registry): void {
  for (const [op, impl] of Object.entries(NATIVE_KERNELS)) {
    let next: Kernel | null = null;
    const kernel: Kernel = (inputs, attrs) => {
      const n = native();
      const out = n ? impl(n, inputs, attrs ?? {}) : null;
      if (out) return out;
      next ??= fallback(r, op);
      return next(inputs, attrs);
    };
    r.registerKernel('cpu', op, kernel, { priority: KERNEL_PRIORITY, source: KERNEL_SOURCE });
  }
}
