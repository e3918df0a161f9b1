// Packed fp32 GEMM with SIMD micro-kernels (see gemm.cc).
#pragma once

namespace ot {
// C[M,N] = beta*C + op(A) op(B), row-major, contiguous (lda = transA ? M : K, ldb = transB ? K : N, ldc = N).
// Returns false (and does nothing) when the CPU has no AVX2+FMA: the caller then uses BLAS.
bool packedGemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta);
// "avx512 6x32", "avx2-fma 6x16" or "none".
const char* packedGemmIsa();
}  // namespace ot
