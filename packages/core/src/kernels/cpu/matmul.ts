// Reference CPU matrix product. Operands are indexed in place (transpose flags never copy);
// float32 (and bf16/f16, computed in float32) accumulate in float32 like BLAS, float64 and
// int32 in float64; halves are rounded once at the end.
import type { Registry } from '../../registry.js';
import { batchOffsets, broadcastShapes } from '../../shape.js';
import type { Tensor } from '../../tensor.js';
import { type ComputeArray, output, read } from './util.js';

const fmt = (s: readonly number[]) => JSON.stringify(s);

/**
 * `C[cOff..] += op(A) @ op(B)` for one `M x K` by `K x N` product (C starts at zero).
 * Without transB the loop order is i-k-j: rows of B and C stream contiguously, four rows of C
 * at a time so each element of B read serves four of them. With transB each output is a dot
 * product of two rows contiguous in k (A strided when transA too), four columns at a time.
 * Every output element sums its K products in order k = 0..K-1. `f32` rounds the running sum
 * to float32 after every step (BLAS-like float32 accumulation); in the i-k-j loop C itself is
 * then a Float32Array, whose stores round.
 */
function gemm(
  A: ComputeArray,
  aOff: number,
  B: ComputeArray,
  bOff: number,
  C: ComputeArray,
  cOff: number,
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  f32: boolean,
): void {
  // Element (i, k) of op(A) is A[aOff + i * rowA + k * colA].
  const rowA = transA ? 1 : K;
  const colA = transA ? M : 1;
  if (!transB) {
    let i = 0;
    for (; i + 3 < M; i += 4) {
      const c0 = cOff + i * N;
      const c1 = c0 + N;
      const c2 = c1 + N;
      const c3 = c2 + N;
      const a0 = aOff + i * rowA;
      for (let k = 0; k < K; k++) {
        const ak = a0 + k * colA;
        const v0 = A[ak]!;
        const v1 = A[ak + rowA]!;
        const v2 = A[ak + 2 * rowA]!;
        const v3 = A[ak + 3 * rowA]!;
        const bk = bOff + k * N;
        for (let j = 0; j < N; j++) {
          const b = B[bk + j]!;
          C[c0 + j] += v0 * b;
          C[c1 + j] += v1 * b;
          C[c2 + j] += v2 * b;
          C[c3 + j] += v3 * b;
        }
      }
    }
    for (; i < M; i++) {
      const ci = cOff + i * N;
      for (let k = 0; k < K; k++) {
        const v = A[aOff + i * rowA + k * colA]!;
        const bk = bOff + k * N;
        for (let j = 0; j < N; j++) C[ci + j] += v * B[bk + j]!;
      }
    }
    return;
  }
  for (let i = 0; i < M; i++) {
    const ai = aOff + i * rowA;
    const ci = cOff + i * N;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const b0 = bOff + j * K;
      const b1 = b0 + K;
      const b2 = b1 + K;
      const b3 = b2 + K;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      if (f32) {
        for (let k = 0, p = ai; k < K; k++, p += colA) {
          const a = A[p]!;
          s0 = Math.fround(s0 + a * B[b0 + k]!);
          s1 = Math.fround(s1 + a * B[b1 + k]!);
          s2 = Math.fround(s2 + a * B[b2 + k]!);
          s3 = Math.fround(s3 + a * B[b3 + k]!);
        }
      } else {
        for (let k = 0, p = ai; k < K; k++, p += colA) {
          const a = A[p]!;
          s0 += a * B[b0 + k]!;
          s1 += a * B[b1 + k]!;
          s2 += a * B[b2 + k]!;
          s3 += a * B[b3 + k]!;
        }
      }
      C[ci + j] = s0;
      C[ci + j + 1] = s1;
      C[ci + j + 2] = s2;
      C[ci + j + 3] = s3;
    }
    for (; j < N; j++) {
      const bj = bOff + j * K;
      let s = 0;
      if (f32) for (let k = 0, p = ai; k < K; k++, p += colA) s = Math.fround(s + A[p]! * B[bj + k]!);
      else for (let k = 0, p = ai; k < K; k++, p += colA) s += A[p]! * B[bj + k]!;
      C[ci + j] = s;
    }
  }
}

/** Register `matmul` (batched, broadcasting, with transA/transB). */
export function registerMatmulKernels(r: Registry, source: string): void {
  r.registerKernel(
    'cpu',
    'matmul',
    ([a, b]: Tensor[], { transA = false, transB = false }: { transA?: boolean; transB?: boolean }) => {
      const ar = a!.ndim;
      const br = b!.ndim;
      if (ar < 2 || br < 2)
        throw new Error(`matmul kernel: operands must be at least 2-D, got ${fmt(a!.shape)} and ${fmt(b!.shape)}`);
      const M = a!.shape[transA ? ar - 1 : ar - 2]!;
      const K = a!.shape[transA ? ar - 2 : ar - 1]!;
      const Kb = b!.shape[transB ? br - 1 : br - 2]!;
      const N = b!.shape[transB ? br - 2 : br - 1]!;
      if (K !== Kb)
        throw new Error(`matmul kernel: inner sizes differ (${K} != ${Kb}) for ${fmt(a!.shape)} and ${fmt(b!.shape)}`);
      const batchA = a!.shape.slice(0, -2);
      const batchB = b!.shape.slice(0, -2);
      const batch = broadcastShapes(batchA, batchB, 'matmul');
      const o = output([...batch, M, N], a!.dtype);
      const A = read(a!);
      const B = read(b!);
      const f32 = o.data instanceof Float32Array;
      const offA = batchOffsets(batchA, batch, M * K);
      const offB = batchOffsets(batchB, batch, K * N);
      for (let p = 0; p < offA.length; p++)
        gemm(A, offA[p]!, B, offB[p]!, o.data, p * M * N, M, N, K, transA, transB, f32);
      return o.done();
    },
    { priority: 0, source },
  );
}
