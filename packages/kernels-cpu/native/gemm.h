// Packed fp32 GEMM with SIMD micro-kernels (see gemm.cc).
#pragma once

namespace ot {
// C[M,N] = beta*C + op(A) op(B), row-major, contiguous (lda = transA ? M : K, ldb = transB ? K : N, ldc = N).
// Returns false (and does nothing) when the CPU has no AVX2+FMA: the caller then uses BLAS.
bool packedGemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta);
// "avx512 6x32", "avx2-fma 6x16", "emulated 6x32 (...)" or "none".
const char* packedGemmIsa();
// Pins the packed GEMM's kernel: 0 = the best this CPU has (default), 1 = AVX2 6x16, 2 = AVX-512 6x32, 3 = the
// AVX-512 kernel's 6x32 tile on 16 emulated C++ lanes (any AVX2 CPU; for tests). False, changing nothing, when the
// CPU cannot run it.
bool setPackedGemmIsa(int level);
}  // namespace ot
