// Packed bfloat16 GEMM, float32 accumulation, one float32 result per element (the caller rounds once).
//
// Loops and threading follow gemm.cc (BLIS order: jc > pc > row/column tasks on the pool > jr > ir), in k-pairs:
// the depth is cut into blocks of an even number of k (<= 2*KCP), each packed as k-pairs, the 32-bit unit that
// vdpbf16ps multiplies (two bfloat16 of consecutive k: the even k in the low half, the odd k in the high half; an
// odd K leaves the high half of the last pair zero).
//
// Packed layouts (uint32 k-pairs; q = pair index within a depth block of kc k, kp = ceil(kc / 2) pairs):
//   A block (MC x kc, one per task): MR-row panels, pair-major:
//     Ap[(i / MR) * MR * kp + q * MR + (i % MR)] = A(i, 2q) | A(i, 2q + 1) << 16   (rows past M: 0)
//   B block (kc x NC, shared by the tasks): NR-column panels, pair-major, the layout of a zmm operand of vdpbf16ps:
//     Bp[(j / NR) * NR * kp + q * NR + (j % NR)] = B(2q, j) | B(2q + 1, j) << 16   (columns past N: 0)
// Micro-kernel (MR x NR = 8 x 32 of C in 16 zmm accumulators): per pair q, two 64-byte loads of B, and per row the
// row's pair broadcast (_mm512_set1_epi32) into two vdpbf16ps. Accumulators start from C on every depth block
// after the first, so each element is one chain over k in order, whatever the blocking and threading:
//   for q = 0 .. ceil(K/2)-1:  acc = fma(A(i,2q+1), B(2q+1,j), acc);  acc = fma(A(i,2q), B(2q,j), acc)
// (the order of the SDM's VDPBF16PS pseudocode; float32 FMA, round to nearest even, bfloat16 denormal inputs read
// as zero, denormal results flushed to zero). Products of two bfloat16 are exact in float32.
//
// Kernels: mode 0 runs the vdpbf16ps kernel, compiled with target("avx512f,avx512bf16") and entered only when
// __builtin_cpu_supports("avx512bf16") (which libgcc reports only where the OS saves zmm state); mode 1 runs
// kernelEmu, plain C++ computing that same chain per lane, on the same packed blocks through the same loops: the
// packing, indexing and edge logic are tested on any x86-64, and on an AVX-512 BF16 machine the two kernels are
// compared (test/gemm-bf16.test.ts).
#include "gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "gemm_loops.h"
#include "pool.h"

namespace ot {
namespace {

constexpr int MR = 8;   // rows of a micro-tile
constexpr int NR = 32;  // columns of a micro-tile: two zmm of float32
#ifndef OT_GEMM_BF16_KCP
#define OT_GEMM_BF16_KCP 192
#endif
#ifndef OT_GEMM_BF16_MC
#define OT_GEMM_BF16_MC 144
#endif
constexpr int KCP = OT_GEMM_BF16_KCP;  // k-pairs per depth block (384 k): B micro-panel 32 x 192 x 4 B = 24 KiB (L1)
constexpr int MCMAX = OT_GEMM_BF16_MC;  // multiple of MR: A block 144 x 192 x 4 B = 108 KiB (L2)
static_assert(MCMAX % MR == 0, "MC must be a multiple of MR");

thread_local PackBuffer<uint32_t> tlsA, tlsB;  // per calling thread (pool workers each have their own A block)

struct Args {
  const uint16_t* A;
  const uint16_t* B;
  float* C;
  int M, N, K, lda, ldb, ldc;
  bool ta, tb;
};

inline uint32_t pairOf(uint16_t even, uint16_t odd) { return (uint32_t)even | ((uint32_t)odd << 16); }

// op(A) rows [i0, i0+mc), depth [p0, p0+kc) (p0 even) -> MR-row panels of k-pairs (layout above).
void packA(const Args& g, int i0, int mc, int p0, int kc, uint32_t* dst) {
  const int kp = (kc + 1) / 2, kf = kc / 2;  // pairs, full pairs
  for (int ir = 0; ir < mc; ir += MR) {
    const int mr = std::min(MR, mc - ir);
    uint32_t* d = dst + (long)ir * kp;
    if (!g.ta) {
      for (int r = 0; r < mr; r++) {
        const uint16_t* a = g.A + (long)(i0 + ir + r) * g.lda + p0;
        for (int q = 0; q < kf; q++) d[q * MR + r] = pairOf(a[2 * q], a[2 * q + 1]);
        if (kc & 1) d[kf * MR + r] = a[kc - 1];
      }
    } else {
      for (int q = 0; q < kf; q++) {
        const uint16_t* a0 = g.A + (long)(p0 + 2 * q) * g.lda + i0 + ir;
        const uint16_t* a1 = a0 + g.lda;
        for (int r = 0; r < mr; r++) d[q * MR + r] = pairOf(a0[r], a1[r]);
      }
      if (kc & 1) {
        const uint16_t* a0 = g.A + (long)(p0 + kc - 1) * g.lda + i0 + ir;
        for (int r = 0; r < mr; r++) d[kf * MR + r] = a0[r];
      }
    }
    if (mr < MR)
      for (int q = 0; q < kp; q++)
        for (int r = mr; r < MR; r++) d[q * MR + r] = 0;
  }
}

// op(B) depth [p0, p0+kc) (p0 even), columns [j0+ja, j0+jb) -> NR-column panels of k-pairs (layout above).
void packB(const Args& g, int p0, int kc, int j0, int ja, int jb, uint32_t* dst) {
  const int kp = (kc + 1) / 2, kf = kc / 2;
  for (int jr = ja; jr < jb; jr += NR) {
    const int nr = std::min(NR, jb - jr);
    uint32_t* d = dst + (long)jr * kp;
    if (!g.tb) {
      for (int q = 0; q < kp; q++) {
        const uint16_t* b0 = g.B + (long)(p0 + 2 * q) * g.ldb + j0 + jr;
        uint32_t* o = d + q * NR;
        int c = 0;
        if (q < kf) {
          const uint16_t* b1 = b0 + g.ldb;
          for (; c < nr; c++) o[c] = pairOf(b0[c], b1[c]);
        } else {
          for (; c < nr; c++) o[c] = b0[c];
        }
        for (; c < NR; c++) o[c] = 0;
      }
    } else {
      for (int c = 0; c < nr; c++) {
        const uint16_t* b = g.B + (long)(j0 + jr + c) * g.ldb + p0;
        for (int q = 0; q < kf; q++) d[q * NR + c] = pairOf(b[2 * q], b[2 * q + 1]);
        if (kc & 1) d[kf * NR + c] = b[kc - 1];
      }
      for (int q = 0; q < kp; q++)
        for (int c = nr; c < NR; c++) d[q * NR + c] = 0;
    }
  }
}

// Micro-kernel: C[MR x NR] (row stride ldc) = (accumulate ? C : 0) + a (MR-row panel, kp pairs) . b (NR panel).
using KernelFn = void (*)(int kp, const uint32_t* a, const uint32_t* b, float* C, long ldc, bool accumulate);

#if defined(__GNUC__) && !defined(OT_NO_AVX512)
#define OT_HAVE_AVX512_BF16 1
__attribute__((target("avx512f,avx512bf16"))) void kernelHw(int kp, const uint32_t* a, const uint32_t* b, float* C,
                                                              long ldc, bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    c0[r] = accumulate ? _mm512_loadu_ps(C + r * ldc) : _mm512_setzero_ps();
    c1[r] = accumulate ? _mm512_loadu_ps(C + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int q = 0; q < kp; q++) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r]);
      c0[r] = _mm512_dpbf16_ps(c0[r], x, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], x, b1);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(C + r * ldc, c0[r]);
    _mm512_storeu_ps(C + r * ldc + 16, c1[r]);
  }
}
#endif

// vdpbf16ps arithmetic on scalars: a bfloat16 denormal reads as a signed zero (DAZ) ...
inline float bf16In(uint32_t h) {
  const uint32_t u = (h & 0x7f80u) ? (h & 0xffffu) << 16 : (h & 0x8000u) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// ... and every FMA result that is denormal becomes a signed zero (FTZ).
inline float ftz(float x) { return std::fabs(x) < FLT_MIN ? std::copysign(0.0f, x) : x; }

}  // namespace

// The emulation kernel: what vdpbf16ps computes per lane, with scalar float32 FMAs (target clones only let the
// compiler use wider registers and the fma instruction; the arithmetic per element is the same in every clone).
__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void gemmBf16KernelEmu(int kp, const uint32_t* a,
                                                                                       const uint32_t* b, float* C,
                                                                                       long ldc, bool accumulate) {
  alignas(64) float c[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j++) c[r][j] = accumulate ? C[r * ldc + j] : 0.0f;
  alignas(64) float be[NR], bo[NR];
  for (int q = 0; q < kp; q++) {
    for (int j = 0; j < NR; j++) {
      be[j] = bf16In(b[j] & 0xffffu);
      bo[j] = bf16In(b[j] >> 16);
    }
    for (int r = 0; r < MR; r++) {
      const float ae = bf16In(a[r] & 0xffffu), ao = bf16In(a[r] >> 16);
      for (int j = 0; j < NR; j++) {
        float t = ftz(std::fma(ao, bo[j], c[r][j]));  // odd k first (SDM order)
        c[r][j] = ftz(std::fma(ae, be[j], t));
      }
    }
    a += MR;
    b += NR;
  }
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j++) C[r * ldc + j] = c[r][j];
}

namespace {

// One MC x (columns [ja, jb) of the packed B block) block: jr over NR micro-panels, ir over MR rows. Partial tiles
// go through a full-size scratch tile (holding C's values when accumulating).
void macro(const Args& g, KernelFn kern, const uint32_t* Ap, const uint32_t* Bp, int i0, int mc, int j0, int ja,
           int jb, int kp, bool accumulate) {
  alignas(64) float tmp[MR * NR];
  for (int jr = ja; jr < jb; jr += NR) {
    const int nr = std::min(NR, jb - jr);
    const uint32_t* bp = Bp + (long)jr * kp;
    for (int ir = 0; ir < mc; ir += MR) {
      const int mr = std::min(MR, mc - ir);
      const uint32_t* ap = Ap + (long)ir * kp;
      float* c = g.C + (long)(i0 + ir) * g.ldc + j0 + jr;
      if (mr == MR && nr == NR) {
        kern(kp, ap, bp, c, g.ldc, accumulate);
        continue;
      }
      if (accumulate) {
        std::memset(tmp, 0, sizeof tmp);
        for (int r = 0; r < mr; r++) std::memcpy(tmp + r * NR, c + (long)r * g.ldc, sizeof(float) * nr);
      }
      kern(kp, ap, bp, tmp, NR, accumulate);
      for (int r = 0; r < mr; r++) std::memcpy(c + (long)r * g.ldc, tmp + r * NR, sizeof(float) * nr);
    }
  }
}

void run(const Args& g, KernelFn kern) {
  // Depth blocks of a multiple of 8 k (so even: a pair never straddles two blocks), <= 2*KCP.
  const size_t bSize = (size_t)KCP * gemmColumnBlock(g.N, NR);
  uint32_t* B0 = tlsB.get(2 * bSize);
  uint32_t* Bp[2] = {B0, B0 + bSize};
  packedGemmLoops(
      g.M, g.N, g.K, MR, NR, MCMAX, 2 * KCP, 4096,
      [&](int buf, int p0, int kc, int j0, int ja, int jb) { packB(g, p0, kc, j0, ja, jb, Bp[buf]); },
      [&](int buf, int i0, int m, int p0, int kc, int j0, int ja, int jb) {
        uint32_t* Ap = tlsA.get((size_t)MCMAX * KCP);
        packA(g, i0, m, p0, kc, Ap);
        macro(g, kern, Ap, Bp[buf], i0, m, j0, ja, jb, (kc + 1) / 2, p0 > 0);
      });
}

bool hardwareAvailable() {
#ifdef OT_HAVE_AVX512_BF16
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
#else
  return false;
#endif
}

std::atomic<long> gRuns[2];

}  // namespace

const char* gemmBf16Isa() { return hardwareAvailable() ? "avx512-bf16" : "none"; }

double gemmBf16Runs(int kernel) { return kernel == 0 || kernel == 1 ? (double)gRuns[kernel].load() : 0.0; }

bool gemmBf16(const uint16_t* A, const uint16_t* B, float* C, int M, int N, int K, bool transA, bool transB, int mode) {
  KernelFn kern = nullptr;
#ifdef OT_HAVE_AVX512_BF16
  if (mode == 0 && hardwareAvailable()) kern = kernelHw;
#endif
  if (mode == 1) kern = gemmBf16KernelEmu;
  if (!kern) return false;
  gRuns[mode].fetch_add(1, std::memory_order_relaxed);
  if (M <= 0 || N <= 0) return true;
  if (K <= 0) {
    std::memset(C, 0, sizeof(float) * (size_t)M * N);
    return true;
  }
  Args g{A, B, C, M, N, K, transA ? M : K, transB ? K : N, N, transA, transB};
  run(g, kern);
  return true;
}

}  // namespace ot
