// BLIS-style packed fp32 GEMM on our own pool: op(A) [M,K] x op(B) [K,N] -> C [M,N] (row-major), C = beta*C + A*B.
// Loops (BLIS order, gemm_loops.h): jc (NC columns) > pc (KC depth: B block packed once, shared by all threads) >
// row/column tasks (each packs its own A block, MC x KC) > jr (NR-wide B micro-panel) > ir (MR rows).
// Micro-kernel: MR x NR register tile, NR = 2 vectors (AVX2+FMA: 6x16; AVX-512: 6x32), chosen at run time with
// __builtin_cpu_supports. Transposes are absorbed by the packing routines, so all four transA/transB cases and any
// beta share one kernel. Without AVX2+FMA the caller falls back to OpenBLAS. The AVX-512 variant is compiled but has
// not been run (no AVX-512 machine was available); its 6x32 tiling runs on emulated lanes (Emu16) in the tests, bit for
// bit equal to the AVX2 kernel. OMNITRAIN_GEMM_ISA=avx2 pins the AVX2 kernel.
// blas.cc picks it for K <= 1536, where it measured 1.0-1.2x OpenBLAS (PyTorch's GEMM) on a 2-core EPYC (Zen 3);
// deeper K stays on OpenBLAS (K = 2048: 0.93-1.07x, not ahead).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "gemm.h"
#include "gemm_loops.h"
#include "pool.h"

namespace ot {
namespace {

constexpr int MR = 6;
// Blocking, measured on 1024^3, 2048^3 and the training step's shapes (2-core EPYC; bench/results/cpu-gemm-*.md):
// - depth blocks as deep as 1024 (equal blocks): every pass over C costs more than the deeper B micro-panel, which
//   then streams from L2 instead of sitting in L1;
// - a B block (kc x nc) of at most 1M floats (4 MiB), so that it stays in L3 while every row task streams it: at
//   2048^3, kc 1024 x nc 2048 (8 MiB) ran at 0.77x of OpenBLAS;
// - an A block (mc x kc) of ~192 KiB in L2: mc = 48 rows at kc = 1024.
// OMNITRAIN_GEMM_KC / _ABLOCK / _BBLOCK (floats) override them, for experiments.
struct Blocking {
  int kcMax, mcMax, ncMax;
};
int envInt(const char* name) {
  const char* e = std::getenv(name);
  return e ? std::atoi(e) : 0;
}
Blocking blocking(int K) {
  static const int kcEnv = envInt("OMNITRAIN_GEMM_KC"), aEnv = envInt("OMNITRAIN_GEMM_ABLOCK"),
                   bEnv = envInt("OMNITRAIN_GEMM_BBLOCK");
  const int kcMax = kcEnv > 0 ? (kcEnv + 7) / 8 * 8 : 1024;
  const int kc = gemmDepthStep(K, kcMax);
  const int aBlock = aEnv > 0 ? aEnv : 48 * 1024, bBlock = bEnv > 0 ? bEnv : 1024 * 1024;
  return {kcMax, std::max(MR, std::min(aEnv > 0 ? 1536 : 144, aBlock / kc / MR * MR)), std::max(16, bBlock / kc)};
}

thread_local PackBuffer<float> tlsA, tlsB;  // per calling thread (nested calls inside pool tasks get their own)

struct Args {
  const float* A;
  const float* B;
  float* C;
  int M, N, K, lda, ldb, ldc;
  bool ta, tb;
  float beta;
};

// Packing runs on every CPU that gets here (AVX2+FMA at least), so it uses AVX2 for whole panels: measured on
// 1024^3, scalar packing was ~10% of a single-threaded GEMM (the sources stream from memory; the strided scalar
// stores were the rest).
#define OT_AVX2 __attribute__((target("avx2,fma")))

// In-register 8x8 transpose: r[i] lane j -> r[j] lane i.
OT_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// Stores lanes 0..5 of v (a 6-row k-slice of an A panel). Two plain stores: masked moves are slow on AMD cores.
OT_AVX2 inline void store6(float* d, __m256 v) {
  _mm_storeu_ps(d, _mm256_castps256_ps128(v));
  _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(v, 1));
}

// A full MR(=6)-row panel of A (not transposed: 6 rows of contiguous k) -> k-major d[k*6 + r].
OT_AVX2 void packA6Rows(const float* a, long lda, int kc, float* d) {
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
    for (int i = 0; i < MR; i++) r[i] = _mm256_loadu_ps(a + i * lda + k);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8(r);
    // 8-wide stores 6 apart: each overwrites the previous one's 2 spare lanes; the last stores 6 (panel end).
    for (int j = 0; j < 7; j++) _mm256_storeu_ps(d + (k + j) * MR, r[j]);
    store6(d + (k + 7) * MR, r[7]);
  }
  for (; k < kc; k++)
    for (int i = 0; i < MR; i++) d[k * MR + i] = a[i * lda + k];
}

// A full 6-row panel of A^T (A stored [K, M]: each k's 6 rows are contiguous) -> d[k*6 + r].
OT_AVX2 void packA6Cols(const float* a, long lda, int kc, float* d) {
  for (int k = 0; k < kc; k++) {
    const float* s = a + k * lda;
    _mm_storeu_ps(d + k * MR, _mm_loadu_ps(s));
    _mm_storel_pi(reinterpret_cast<__m64*>(d + k * MR + 4), _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(s + 4)));
  }
}

// A full NR-column panel of B (NR = 16 or 32; not transposed: each k's NR columns are contiguous) -> d[k*NR + c].
template <int NR>
OT_AVX2 void packBRows(const float* b, long ldb, int kc, float* d) {
  for (int k = 0; k < kc; k++)
    for (int v = 0; v < NR; v += 8) _mm256_store_ps(d + k * NR + v, _mm256_loadu_ps(b + k * ldb + v));
}

// A full NR-column panel of B^T (B stored [N, K]: NR rows of contiguous k) -> d[k*NR + c], 8x8 transposes.
template <int NR>
OT_AVX2 void packBCols(const float* b, long ldb, int kc, float* d) {
  int k = 0;
  for (; k + 8 <= kc; k += 8)
    for (int h = 0; h < NR; h += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(b + (h + i) * ldb + k);
      transpose8(r);
      for (int j = 0; j < 8; j++) _mm256_store_ps(d + (k + j) * NR + h, r[j]);
    }
  for (; k < kc; k++)
    for (int c = 0; c < NR; c++) d[k * NR + c] = b[c * ldb + k];
}

// op(A) rows [i0, i0+mc), depth [p0, p0+kc) -> MR-row panels, k-major: dst[panel*MR*kc + k*MR + r] (zero padded).
void packA(const Args& g, int i0, int mc, int p0, int kc, float* dst) {
  int ir = 0;
  if (g.ta) {
    // Whole panels of A^T, 8 k at a time across all of them: each k's mc floats are then read in order, where
    // panel by panel every k read 24 bytes of a new line lda away (as packB).
    const int whole = mc / MR * MR;
    for (int k0 = 0; k0 < kc; k0 += 8)
      for (int r = 0; r < whole; r += MR)
        packA6Cols(g.A + (long)(p0 + k0) * g.lda + i0 + r, g.lda, std::min(8, kc - k0),
                   dst + (long)r * kc + (long)k0 * MR);
    ir = whole;
  }
  for (; ir < mc; ir += MR) {
    int mr = std::min(MR, mc - ir);
    float* d = dst + (long)ir * kc;
    if (mr == MR) {  // a whole panel of A (not transposed)
      packA6Rows(g.A + (long)(i0 + ir) * g.lda + p0, g.lda, kc, d);
      continue;
    }
    if (!g.ta) {
      for (int r = 0; r < mr; r++) {
        const float* a = g.A + (long)(i0 + ir + r) * g.lda + p0;
        for (int k = 0; k < kc; k++) d[k * MR + r] = a[k];
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const float* a = g.A + (long)(p0 + k) * g.lda + i0 + ir;
        for (int r = 0; r < mr; r++) d[k * MR + r] = a[r];
      }
    }
    for (int k = 0; k < kc; k++)
      for (int r = mr; r < MR; r++) d[k * MR + r] = 0.0f;
  }
}

// op(B) depth [p0, p0+kc), columns [j0+ja, j0+jb) -> NR-column panels: dst[(j/NR)*NR*kc + k*NR + c] (zero padded).
template <int NR>
void packB(const Args& g, int p0, int kc, int j0, int ja, int jb, float* dst) {
  int jr = ja;
  if (!g.tb) {
    // Whole panels (the packed buffer is 64-byte aligned and NR*4 a multiple of 64), 8 k at a time across all of
    // them: B's rows are then read in order, where panel by panel every row was a new line 4 KiB (ldb) away;
    // measured 1.5-2x faster (1024 x 1024, one thread).
    const int whole = ja + (jb - ja) / NR * NR;
    for (int k0 = 0; k0 < kc; k0 += 8)
      for (int j = ja; j < whole; j += NR)
        packBRows<NR>(g.B + (long)(p0 + k0) * g.ldb + j0 + j, g.ldb, std::min(8, kc - k0),
                      dst + (long)j * kc + (long)k0 * NR);
    jr = whole;
  }
  for (; jr < jb; jr += NR) {
    int nr = std::min(NR, jb - jr);
    float* d = dst + (long)jr * kc;
    if (nr == NR) {  // a whole panel of B^T
      packBCols<NR>(g.B + (long)(j0 + jr) * g.ldb + p0, g.ldb, kc, d);
      continue;
    }
    if (!g.tb) {
      for (int k = 0; k < kc; k++) {
        const float* b = g.B + (long)(p0 + k) * g.ldb + j0 + jr;
        float* o = d + k * NR;
        int c = 0;
        for (; c < nr; c++) o[c] = b[c];
        for (; c < NR; c++) o[c] = 0.0f;
      }
    } else {
      for (int c = 0; c < nr; c++) {
        const float* b = g.B + (long)(j0 + jr + c) * g.ldb + p0;
        for (int k = 0; k < kc; k++) d[k * NR + c] = b[k];
      }
      for (int c = nr; c < NR; c++)
        for (int k = 0; k < kc; k++) d[k * NR + c] = 0.0f;
    }
  }
}

// Vector abstractions: one micro-kernel template for both ISAs.
struct Avx2 {
  static constexpr int W = 8;
  using V = __m256;
  __attribute__((target("avx2,fma"))) static inline V zero() { return _mm256_setzero_ps(); }
  __attribute__((target("avx2,fma"))) static inline V load(const float* p) { return _mm256_load_ps(p); }
  __attribute__((target("avx2,fma"))) static inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
  __attribute__((target("avx2,fma"))) static inline V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  __attribute__((target("avx2,fma"))) static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  __attribute__((target("avx2,fma"))) static inline V set1(float x) { return _mm256_set1_ps(x); }
  __attribute__((target("avx2,fma"))) static inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
};
#if defined(__GNUC__) && !defined(OT_NO_AVX512)
#define OT_HAVE_AVX512 1
struct Avx512 {
  static constexpr int W = 16;
  using V = __m512;
  __attribute__((target("avx512f"))) static inline V zero() { return _mm512_setzero_ps(); }
  __attribute__((target("avx512f"))) static inline V load(const float* p) { return _mm512_load_ps(p); }
  __attribute__((target("avx512f"))) static inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
  __attribute__((target("avx512f"))) static inline V bcast(const float* p) { return _mm512_set1_ps(*p); }
  __attribute__((target("avx512f"))) static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  __attribute__((target("avx512f"))) static inline V set1(float x) { return _mm512_set1_ps(x); }
  __attribute__((target("avx512f"))) static inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
};
#endif
// Sixteen lanes in plain C++, each FMA one fmaf (rounded once, as vfmadd is): the AVX-512 build's 6x32 tile, its
// 32-wide B panels, their packing and the prefetch offsets, run on any AVX2 machine, so that this logic is tested
// where no AVX-512 CPU is (setPackedGemmIsa(3)). Only the thin Avx512 wrappers above stay unrun there.
struct Emu16 {
  static constexpr int W = 16;
  struct V {
    float x[16];
  };
  OT_AVX2 static inline V set1(float f) {
    V v;
    for (int i = 0; i < W; i++) v.x[i] = f;
    return v;
  }
  OT_AVX2 static inline V zero() { return set1(0.0f); }
  OT_AVX2 static inline V loadu(const float* p) {
    V v;
    std::memcpy(v.x, p, sizeof v.x);
    return v;
  }
  OT_AVX2 static inline V load(const float* p) { return loadu(p); }
  OT_AVX2 static inline V bcast(const float* p) { return set1(*p); }
  OT_AVX2 static inline V fma(V a, V b, V c) {
    for (int i = 0; i < W; i++) c.x[i] = __builtin_fmaf(a.x[i], b.x[i], c.x[i]);
    return c;
  }
  OT_AVX2 static inline void storeu(float* p, V v) { std::memcpy(p, v.x, sizeof v.x); }
};

// The k step at which the micro-kernel prefetches its C tile again (the end of its B-prefetching loop).
inline int lateStep(int kc) { return kc > 48 ? kc - 32 : kc; }

// Prefetch (for writing) the lines of this tile's MR rows of C.
#define OT_PREFETCH_C_TILE                                                                                    \
  for (int r = 0; r < MR; r++) {                                                                            \
    __builtin_prefetch(C + (long)r * ldc, 1, 3);                                                            \
    __builtin_prefetch(C + (long)r * ldc + 2 * W - 1, 1, 3);                                                \
  }

// One k step of the tile: two vectors of B, MR broadcasts of A, 2*MR FMAs.
#define OT_KERNEL_STEP                                                                                        \
    V b0 = S::load(b), b1 = S::load(b + W);                                                                 \
    V x = S::bcast(a + 0);                                                                                  \
    c00 = S::fma(x, b0, c00);                                                                               \
    c01 = S::fma(x, b1, c01);                                                                               \
    x = S::bcast(a + 1);                                                                                    \
    c10 = S::fma(x, b0, c10);                                                                               \
    c11 = S::fma(x, b1, c11);                                                                               \
    x = S::bcast(a + 2);                                                                                    \
    c20 = S::fma(x, b0, c20);                                                                               \
    c21 = S::fma(x, b1, c21);                                                                               \
    x = S::bcast(a + 3);                                                                                    \
    c30 = S::fma(x, b0, c30);                                                                               \
    c31 = S::fma(x, b1, c31);                                                                               \
    x = S::bcast(a + 4);                                                                                    \
    c40 = S::fma(x, b0, c40);                                                                               \
    c41 = S::fma(x, b1, c41);                                                                               \
    x = S::bcast(a + 5);                                                                                    \
    c50 = S::fma(x, b0, c50);                                                                               \
    c51 = S::fma(x, b1, c51);                                                                               \
    a += MR;                                                                                                \
    b += 2 * W;

// C[MR x 2W] (ldc) = beta*C + a(packed MR x kc) * b(packed kc x 2W). beta == 0 never reads C. Meanwhile it
// prefetches pfLines lines from pf every 8 steps (pfLines 0: none).
#define OT_KERNEL_BODY                                                                                      \
  using V = typename S::V;                                                                                  \
  constexpr int W = S::W;                                                                                   \
  V c00 = S::zero(), c01 = S::zero(), c10 = S::zero(), c11 = S::zero(), c20 = S::zero(), c21 = S::zero();   \
  V c30 = S::zero(), c31 = S::zero(), c40 = S::zero(), c41 = S::zero(), c50 = S::zero(), c51 = S::zero();   \
  OT_PREFETCH_C_TILE                                                                                        \
  /* C's lines, fetched at the start, may be evicted by the A/B streams (a power-of-two ldc maps a tile's rows   \
     to one L1 set): fetch them again 32 steps before the end, so the final loads/stores of C hit L1. Two loops, \
     so that the innermost one carries no test for that step. */                                              \
  const int kLate = lateStep(kc);                                                                           \
  int k = 0;                                                                                                \
  /* Every 8 steps, prefetch pfLines lines of the next B micro-panel into L2 (see macro()). */             \
  for (; k + 8 <= kLate; k += 8) {                                                                          \
    for (int q = 0; q < pfLines; q++, pf += 16) __builtin_prefetch(pf, 0, 2);                               \
    for (int u = 0; u < 8; u++) {                                                                           \
      OT_KERNEL_STEP                                                                                        \
    }                                                                                                       \
  }                                                                                                         \
  for (; k < kLate; k++) {                                                                                  \
    OT_KERNEL_STEP                                                                                          \
  }                                                                                                         \
  if (kLate < kc) OT_PREFETCH_C_TILE                                                                        \
  for (; k < kc; k++) {                                                                                     \
    OT_KERNEL_STEP                                                                                          \
  }                                                                                                         \
  V acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};                  \
  if (beta == 0.0f) {                                                                                       \
    for (int r = 0; r < MR; r++) {                                                                          \
      S::storeu(C + (long)r * ldc, acc[r][0]);                                                              \
      S::storeu(C + (long)r * ldc + W, acc[r][1]);                                                          \
    }                                                                                                       \
  } else if (beta == 1.0f) {                                                                                \
    for (int r = 0; r < MR; r++) {                                                                          \
      float* cr = C + (long)r * ldc;                                                                        \
      S::storeu(cr, S::fma(S::set1(1.0f), S::loadu(cr), acc[r][0]));                                       \
      S::storeu(cr + W, S::fma(S::set1(1.0f), S::loadu(cr + W), acc[r][1]));                               \
    }                                                                                                       \
  } else {                                                                                                  \
    V bv = S::set1(beta);                                                                                   \
    for (int r = 0; r < MR; r++) {                                                                          \
      float* cr = C + (long)r * ldc;                                                                        \
      S::storeu(cr, S::fma(bv, S::loadu(cr), acc[r][0]));                                                   \
      S::storeu(cr + W, S::fma(bv, S::loadu(cr + W), acc[r][1]));                                           \
    }                                                                                                       \
  }

template <class S>
struct Kernel;
template <>
struct Kernel<Avx2> {
  __attribute__((target("avx2,fma"))) static void run(int kc, const float* a, const float* b, float* C, long ldc,
                                                     float beta, const float* pf, int pfLines) {
    using S = Avx2;
    OT_KERNEL_BODY
  }
};
#ifdef OT_HAVE_AVX512
template <>
struct Kernel<Avx512> {
  __attribute__((target("avx512f"))) static void run(int kc, const float* a, const float* b, float* C, long ldc,
                                                    float beta, const float* pf, int pfLines) {
    using S = Avx512;
    OT_KERNEL_BODY
  }
};
#endif

template <>
struct Kernel<Emu16> {
  OT_AVX2 static void run(int kc, const float* a, const float* b, float* C, long ldc, float beta, const float* pf,
                          int pfLines) {
    using S = Emu16;
    OT_KERNEL_BODY
  }
};

// One MC x (columns [ja, jb) of the packed B panel) block: jr over NR micro-panels, ir over MR rows.
// While the ir calls run on B micro-panel jr (from L2 after the first), they prefetch the next one from L3 into L2,
// each call its own share: without it, the first call on every panel waited on L3 (the panel, kc x NR, is 64 KiB
// at kc 1024, past L1), and the macro-kernels ran at 71-91% of the FMA peak instead of 82-93% (960x1024x1024, one
// thread; bench/results/cpu-gemm-2026-11-28-session6.md).
// After the last panel they prefetch the first again, which the thread's next row task usually starts on.
template <class S>
void macro(const Args& g, const float* Ap, const float* Bp, int i0, int mc, int j0, int ja, int jb, int kc,
           float beta) {
  constexpr int NR = 2 * S::W;
  alignas(64) float tmp[MR * NR];
  const int calls = (mc + MR - 1) / MR, slots = lateStep(kc) / 8;  // prefetch slots per kernel call
  const long panelLines = (long)kc * NR / 16;
  const long perSlot = slots ? (panelLines + (long)calls * slots - 1) / ((long)calls * slots) : 0;
  const int pfLines = (int)std::min<long>(4, perSlot);  // lines per slot, so that the calls cover the next panel
  for (int jr = ja; jr < jb; jr += NR) {
    int nr = std::min(NR, jb - jr);
    const float* bp = Bp + (long)jr * kc;
    const float* next = jr + NR < jb ? bp + (long)NR * kc : Bp + (long)ja * kc;
    for (int ir = 0; ir < mc; ir += MR) {
      const long pfFirst = (long)(ir / MR) * slots * pfLines;  // this call's first line of the next panel
      const int pfl = pfFirst < panelLines && jb - ja > NR ? pfLines : 0;
      const float* pf = next + pfFirst * 16;
      int mr = std::min(MR, mc - ir);
      const float* ap = Ap + (long)ir * kc;
      float* c = g.C + (long)(i0 + ir) * g.ldc + j0 + jr;
      if (ir + MR < mc) {
        // The next tile's rows of C: a whole kernel call ahead (its own prefetch alone can miss when C is in DRAM).
        const float* cn = c + (long)MR * g.ldc;
        for (int r = 0; r < MR; r++) {
          __builtin_prefetch(cn + (long)r * g.ldc, 1, 2);
          __builtin_prefetch(cn + (long)r * g.ldc + NR - 1, 1, 2);
        }
      }
      if (mr == MR && nr == NR) {
        Kernel<S>::run(kc, ap, bp, c, g.ldc, beta, pf, pfl);
      } else {
        Kernel<S>::run(kc, ap, bp, tmp, NR, 0.0f, pf, pfl);
        for (int r = 0; r < mr; r++) {
          float* cr = c + (long)r * g.ldc;
          const float* t = tmp + r * NR;
          // fmaf: one rounding, as the full tiles' FMA, so an element's bits do not depend on which tile it fell
          // in (the tiles differ between the 6x16 and 6x32 kernels).
          if (beta == 0.0f)
            for (int j = 0; j < nr; j++) cr[j] = t[j];
          else
            for (int j = 0; j < nr; j++) cr[j] = std::fma(beta, cr[j], t[j]);
        }
      }
    }
  }
}

template <class S>
void run(const Args& g) {
  constexpr int NR = 2 * S::W;
  const Blocking bl = blocking(g.K);
  const size_t bSize = (size_t)bl.kcMax * gemmColumnBlock(g.N, NR, bl.ncMax);
  float* B0 = tlsB.get(2 * bSize);
  float* Bp[2] = {B0, B0 + bSize};
  packedGemmLoops(
      g.M, g.N, g.K, MR, NR, bl.mcMax, bl.kcMax, bl.ncMax,
      [&](int buf, int p0, int kc, int j0, int ja, int jb) { packB<NR>(g, p0, kc, j0, ja, jb, Bp[buf]); },
      [&](int buf, int i0, int m, int p0, int kc, int j0, int ja, int jb) {
        float* Ap = tlsA.get((size_t)bl.mcMax * bl.kcMax);
        packA(g, i0, m, p0, kc, Ap);
        macro<S>(g, Ap, Bp[buf], i0, m, j0, ja, jb, kc, p0 == 0 ? g.beta : 1.0f);
      });
}

// 2: avx512f, 1: avx2+fma (or OMNITRAIN_GEMM_ISA=avx2 on an AVX-512 CPU), 0: neither (the caller uses OpenBLAS).
int detectedIsa() {
  static int level = [] {
    __builtin_cpu_init();
    const char* force = std::getenv("OMNITRAIN_GEMM_ISA");  // "avx2" pins the AVX2 kernel (testing)
#ifdef OT_HAVE_AVX512
    if (__builtin_cpu_supports("avx512f") && !(force && std::strcmp(force, "avx2") == 0)) return 2;
#endif
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
  }();
  return level;
}
std::atomic<int> gIsaOverride{0};  // setPackedGemmIsa: 0 = none, else the level to run (3: Emu16)
int isaLevel() {
  const int o = gIsaOverride.load(std::memory_order_relaxed);
  return o ? o : detectedIsa();
}

}  // namespace

bool setPackedGemmIsa(int level) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  bool ok = level == 0 || ((level == 1 || level == 3) && avx2);
#ifdef OT_HAVE_AVX512
  ok = ok || (level == 2 && __builtin_cpu_supports("avx512f"));
#endif
  if (ok) gIsaOverride.store(level);
  return ok;
}

const char* packedGemmIsa() {
  int l = isaLevel();
  return l == 3 ? "emulated 6x32 (16 C++ lanes, testing)" : l == 2 ? "avx512 6x32" : l == 1 ? "avx2-fma 6x16" : "none";
}

bool packedGemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta) {
  int level = isaLevel();
  if (level == 0) return false;
  Args g{A, B, C, M, N, K, transA ? M : K, transB ? K : N, N, transA, transB, beta};
  if (level == 3) {
    run<Emu16>(g);
    return true;
  }
#ifdef OT_HAVE_AVX512
  if (level == 2) {
    run<Avx512>(g);
    return true;
  }
#endif
  run<Avx2>(g);
  return true;
}

}  // namespace ot
