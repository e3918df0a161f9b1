// Packed bfloat16 GEMM with float32 accumulation: AVX-512 BF16 (vdpbf16ps) micro-kernel, or a scalar emulation of
// that instruction through the same packing (see gemm_bf16.cc).
#pragma once
#include <cstdint>

namespace ot {
// C[M,N] = op(A) op(B) in float32 (C is overwritten), A and B bfloat16 bit patterns, row-major and contiguous
// (lda = transA ? M : K, ldb = transB ? K : N, ldc = N). mode 0: the AVX-512 BF16 kernel when this CPU has it,
// otherwise returns false without touching C (the caller widens to float32); mode 1: the scalar emulation of
// vdpbf16ps (any x86-64; for tests); any other mode returns false.
bool gemmBf16(const uint16_t* A, const uint16_t* B, float* C, int M, int N, int K, bool transA, bool transB, int mode);
// "avx512-bf16" when the hardware kernel can run on this CPU, otherwise "none".
const char* gemmBf16Isa();
// How many GEMMs (one per batch entry) each kernel has run in this process: kernel 0 hardware, 1 emulation.
double gemmBf16Runs(int kernel);
}  // namespace ot
