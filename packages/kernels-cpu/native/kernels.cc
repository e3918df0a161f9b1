#include "kernels.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"

extern "C" void openblas_set_num_threads(int);

namespace ot {

const char* isaName() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "avx512-bf16";
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2-fma";
  return "scalar";
}

void blasThreads(int n) { openblas_set_num_threads(n); }

// GEMM. Default: OpenBLAS on our own pool, one output panel per thread (rows, or columns when N > M; multiples of
// 16), each a single-threaded cblas_sgemm: measured against PyTorch (OpenBLAS's own threads) this is 1.0-1.1x where
// 2*T smaller panels were 0.90-0.98x (each panel re-packs the shared operand) and OpenBLAS's own threading (which
// spin-waits against our pool) is PyTorch's number by construction. OMNITRAIN_GEMM=packed (or setGemmImpl(1))
// selects our BLIS-style packed SIMD GEMM (gemm.cc) instead: correct for every form, faster on some shapes with
// K <= 512, slower on large K (see bench/results/cpu-gemm-*.md).
static std::atomic<int> gGemmImpl{-1};
int gemmImpl() {
  int v = gGemmImpl.load();
  if (v < 0) {
    const char* e = std::getenv("OMNITRAIN_GEMM");
    v = e && std::strcmp(e, "packed") == 0 ? 1 : 0;
    gGemmImpl.store(v);
  }
  return v;
}
void setGemmImpl(int impl) { gGemmImpl.store(impl == 1 ? 1 : 0); }

static void gemm1(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta,
                  int lda, int ldb, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
              lda, B, ldb, beta, C, ldc);
}

void gemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0) std::memset(C, 0, sizeof(float) * (size_t)M * N);
    else if (beta != 1)
      for (size_t i = 0; i < (size_t)M * N; i++) C[i] *= beta;
    return;
  }
  if (gemmImpl() == 1 && M >= 4 && N >= 4 && packedGemm(A, B, C, M, N, K, transA, transB, beta)) return;
  int lda = transA ? M : K, ldb = transB ? K : N;
  int T = numThreads();
  double flops = 2.0 * M * N * K;
  if (T == 1 || flops < 2e6) {
    gemm1(A, B, C, M, N, K, transA, transB, beta, lda, ldb, N);
    return;
  }
  // One panel per thread along the larger output dimension (multiples of 16); OMNITRAIN_GEMM_PANELS=k gives k per
  // thread (dynamically scheduled: more robust when other processes take cores, but each panel re-packs B).
  static const int perThread = [] {
    const char* e = std::getenv("OMNITRAIN_GEMM_PANELS");
    int k = e ? std::atoi(e) : 1;
    return k >= 1 && k <= 16 ? k : 1;
  }();
  bool byRows = M >= N;
  int dim = byRows ? M : N;
  long parts = std::min<long>((long)T * perThread, std::max(1, dim / 16));
  int step = ((dim + parts - 1) / parts + 15) / 16 * 16;
  parts = (dim + step - 1) / step;
  parallelFor(parts, [&](long p, int) {
    int a = (int)p * step, len = std::min(step, dim - a);
    if (len <= 0) return;
    if (byRows) {
      const float* Ap = transA ? A + a : A + (long)a * lda;
      gemm1(Ap, B, C + (long)a * N, len, N, K, transA, transB, beta, lda, ldb, N);
    } else {
      const float* Bp = transB ? B + (long)a * ldb : B + a;
      gemm1(A, Bp, C + a, M, len, K, transA, transB, beta, lda, ldb, N);
    }
  });
}

OT_CLONES static void rmsRow(const float* x, const float* w, float* y, float* rstd, int d, float eps) {
  float ss = laneSum(d, [&](long j) { return x[j] * x[j]; });
  float rs = (float)(1.0 / std::sqrt((double)ss / d + eps));
  *rstd = rs;
  for (int j = 0; j < d; j++) y[j] = w[j] * (x[j] * rs);
}

void rmsNormFwd(const float* x, const float* w, float* y, float* rstd, long rows, int d, float eps) {
  parallelChunks(rows, std::max(1L, 4096L / std::max(1, d)), [&](long a, long b) {
    for (long r = a; r < b; r++) rmsRow(x + r * d, w, y + r * d, rstd + r, d, eps);
  });
}

OT_CLONES static void rmsBwdRow(const float* gy, const float* x, const float* w, float rs, float* gx, float* gwAcc, int d) {
  float dot = laneSum(d, [&](long j) { return (gy[j] * w[j]) * (x[j] * rs); });
  for (int j = 0; j < d; j++) gwAcc[j] += gy[j] * (x[j] * rs);
  float c = dot / d;
  for (int j = 0; j < d; j++) gx[j] = rs * (gy[j] * w[j] - x[j] * rs * c);
}

void rmsNormBwd(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw, long rows,
                int d) {
  int T = numThreads();
  long parts = std::max(1L, std::min((long)T, rows));
  std::vector<float> acc((size_t)parts * d, 0.0f);
  long step = (rows + parts - 1) / parts;
  parallelFor(parts, [&](long t, int) {
    long a = t * step, b = std::min(rows, a + step);
    float* g = acc.data() + t * d;
    for (long r = a; r < b; r++) rmsBwdRow(gy + r * d, x + r * d, w, rstd[r], gx + r * d, g, d);
  });
  for (int j = 0; j < d; j++) {
    float s = 0;
    for (long t = 0; t < parts; t++) s += acc[t * d + j];
    gw[j] = s;
  }
}

OT_CLONES static void lnRow(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int d,
                            float eps) {
  float mu = laneSum(d, [&](long j) { return x[j]; }) / d;
  float v = laneSum(d, [&](long j) { return (x[j] - mu) * (x[j] - mu); });
  float rs = (float)(1.0 / std::sqrt((double)v / d + eps));
  *mean = mu;
  *rstd = rs;
  if (w && b)
    for (int j = 0; j < d; j++) y[j] = (x[j] - mu) * rs * w[j] + b[j];
  else if (w)
    for (int j = 0; j < d; j++) y[j] = (x[j] - mu) * rs * w[j];
  else if (b)
    for (int j = 0; j < d; j++) y[j] = (x[j] - mu) * rs + b[j];
  else
    for (int j = 0; j < d; j++) y[j] = (x[j] - mu) * rs;
}
void layerNormFwd(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, long rows, int d,
                  float eps) {
  parallelChunks(rows, std::max(1L, 4096L / std::max(1, d)), [&](long a, long e) {
    for (long r = a; r < e; r++) lnRow(x + r * d, w, b, y + r * d, mean + r, rstd + r, d, eps);
  });
}
OT_CLONES static void lnBwdRow(const float* gy, const float* x, float m, float rs, const float* w, float* gx, float* gw,
                               float* gb, int d) {
  auto gh = [&](long j) { return w ? gy[j] * w[j] : gy[j]; };
  float sumG = laneSum(d, gh);
  float sumGX = laneSum(d, [&](long j) { return gh(j) * ((x[j] - m) * rs); });
  if (gw)
    for (int j = 0; j < d; j++) gw[j] += gy[j] * ((x[j] - m) * rs);
  if (gb)
    for (int j = 0; j < d; j++) gb[j] += gy[j];
  float a = sumG / d, b = sumGX / d;
  for (int j = 0; j < d; j++) {
    float gh = w ? gy[j] * w[j] : gy[j];
    gx[j] = rs * (gh - a - (x[j] - m) * rs * b);
  }
}
void layerNormBwd(const float* gy, const float* x, const float* mean, const float* rstd, const float* w, float* gx,
                  float* gw, float* gb, long rows, int d) {
  long parts = std::max(1L, std::min((long)numThreads(), rows));
  std::vector<float> acc((size_t)parts * d * 2, 0.0f);
  long step = (rows + parts - 1) / parts;
  parallelFor(parts, [&](long t, int) {
    long a = t * step, e = std::min(rows, a + step);
    float* aw = gw ? acc.data() + t * d * 2 : nullptr;
    float* ab = gb ? acc.data() + t * d * 2 + d : nullptr;
    for (long r = a; r < e; r++) lnBwdRow(gy + r * d, x + r * d, mean[r], rstd[r], w, gx + r * d, aw, ab, d);
  });
  for (int j = 0; j < d; j++) {
    float sw = 0, sb = 0;
    for (long t = 0; t < parts; t++) {
      sw += acc[t * d * 2 + j];
      sb += acc[t * d * 2 + d + j];
    }
    if (gw) gw[j] = sw;
    if (gb) gb[j] = sb;
  }
}

OT_CLONES static void swigluRange(const float* g, const float* u, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = g[i] / (1.0f + fexp(-g[i])) * u[i];
}
void swigluFwd(const float* g, const float* u, float* y, long n) {
  parallelChunks(n, 16384, [&](long a, long b) { swigluRange(g + a, u + a, y + a, b - a); });
}
OT_CLONES static void swigluBwdRange(const float* dy, const float* g, const float* u, float* gg, float* gu, long n) {
  for (long i = 0; i < n; i++) {
    float x = g[i];
    float s = 1.0f / (1.0f + fexp(-x));
    gu[i] = dy[i] * x * s;
    gg[i] = dy[i] * u[i] * s * (1.0f + x * (1.0f - s));
  }
}
void swigluBwd(const float* dy, const float* g, const float* u, float* gg, float* gu, long n) {
  parallelChunks(n, 16384, [&](long a, long b) { swigluBwdRange(dy + a, g + a, u + a, gg + a, gu + a, b - a); });
}

OT_CLONES static void ropeRow(const float* x, float* y, const float* c, const float* s, int h, int d) {
  int half = d / 2;
  for (int k = 0; k < h; k++) {
    const float* xo = x + k * d;
    float* yo = y + k * d;
    for (int j = 0; j < half; j++) {
      float x1 = xo[j], x2 = xo[j + half];
      yo[j] = x1 * c[j] - x2 * s[j];
      yo[j + half] = x2 * c[j] + x1 * s[j];
    }
  }
}
// A finite float rounded to the nearest bfloat16 (ties to even), as a float.
static inline float roundToBf16(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  b = ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) << 16;
  std::memcpy(&v, &b, 4);
  return v;
}
void rope(const float* x, const int32_t* pos, const float* invFreq, float* y, long rows, int h, int d, float sign,
          bool cosSinBf16) {
  int half = d / 2;
  parallelChunks(rows, 8, [&](long a, long b) {
    std::vector<float> c(half), s(half);
    for (long r = a; r < b; r++) {
      float p = (float)pos[r];
      for (int j = 0; j < half; j++) {
        float ang = p * invFreq[j];
        float cv = std::cos(ang), sv = std::sin(ang);
        if (cosSinBf16) {
          cv = roundToBf16(cv);
          sv = roundToBf16(sv);
        }
        c[j] = cv;
        s[j] = sign * sv;
      }
      ropeRow(x + r * h * d, y + r * h * d, c.data(), s.data(), h, d);
    }
  });
}

OT_CLONES static void addRange(const float* a, const float* b, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}
void add(const float* a, const float* b, float* y, long n) {
  parallelChunks(n, 32768, [&](long s, long e) { addRange(a + s, b + s, y + s, e - s); });
}
OT_CLONES static void axpyRange(float* d, const float* s, float alpha, long n) {
  for (long i = 0; i < n; i++) d[i] = d[i] + alpha * s[i];
}
OT_CLONES static void addScalarRange(float* d, float v, long n) {
  for (long i = 0; i < n; i++) d[i] = d[i] + v;
}
void addInplace(float* d, const float* s, float alpha, long n, bool scalarSrc) {
  if (scalarSrc) {
    float v = alpha * s[0];
    parallelChunks(n, 32768, [&](long a, long b) { addScalarRange(d + a, v, b - a); });
  } else {
    parallelChunks(n, 32768, [&](long a, long b) { axpyRange(d + a, s + a, alpha, b - a); });
  }
}
OT_CLONES static void scaleRange(float* d, float v, long n) {
  for (long i = 0; i < n; i++) d[i] *= v;
}
void mulInplace(float* d, float v, long n) {
  parallelChunks(n, 32768, [&](long a, long b) { scaleRange(d + a, v, b - a); });
}

OT_CLONES static void adamwRange(float* p, const float* g, float* m, float* v, long n, float decay, float b1, float b2,
                                 float omb1, float omb2, float bc2sqrt, float eps, float stepSize, float sign) {
  for (long i = 0; i < n; i++) {
    float gi = sign * g[i];
    float pi = p[i] * decay;
    float mi = m[i] * b1 + omb1 * gi;
    float vi = v[i] * b2 + omb2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    float denom = std::sqrt(vi) / bc2sqrt + eps;
    p[i] = pi - stepSize * (mi / denom);
  }
}
void adamw(float* p, const float* g, float* m, float* v, long n, double lr, double b1, double b2, double eps, double wd,
           double step, bool maximize) {
  float decay = (float)(1 - lr * wd);
  float bc2sqrt = (float)std::sqrt(1 - std::pow(b2, step));
  float stepSize = (float)(lr / (1 - std::pow(b1, step)));
  parallelChunks(n, 32768, [&](long a, long b) {
    adamwRange(p + a, g + a, m + a, v + a, b - a, decay, (float)b1, (float)b2, (float)(1 - b1), (float)(1 - b2), bc2sqrt,
               (float)eps, stepSize, maximize ? -1.0f : 1.0f);
  });
}

void embeddingFwd(const int32_t* ids, const float* w, float* out, long n, int hidden) {
  parallelChunks(n, 16, [&](long a, long b) {
    for (long p = a; p < b; p++) std::memcpy(out + p * hidden, w + (long)ids[p] * hidden, sizeof(float) * hidden);
  });
}
void embeddingBwd(const int32_t* ids, const float* g, float* dw, long n, int hidden, long vocab) {
  std::memset(dw, 0, sizeof(float) * vocab * hidden);
  // Columns split across threads: every row is added in id order (deterministic, no races).
  long parts = std::max(1L, std::min((long)numThreads(), (long)hidden / 16));
  long step = (hidden + parts - 1) / parts;
  parallelFor(parts, [&](long t, int) {
    long a = t * step, b = std::min((long)hidden, a + step);
    for (long p = 0; p < n; p++) {
      float* d = dw + (long)ids[p] * hidden;
      const float* s = g + p * hidden;
      for (long j = a; j < b; j++) d[j] += s[j];
    }
  });
}

OT_CLONES static float rowMax(const float* x, long n) { return laneMax(x, n); }
OT_CLONES static float rowSumExp(const float* x, long n, float m) { return laneSumExp<false>(x, n, m); }
static float rowLse(const float* x, long n) {
  float m = rowMax(x, n);
  if (std::isinf(m)) return m;
  return m + std::log(rowSumExp(x, n, m));
}
OT_CLONES static void expScaleRow(const float* x, float* y, long n, float l, float sc) {
  for (long j = 0; j < n; j++) y[j] = fexp(x[j] - l) * sc;
}

long ceFwd(const float* logits, const int32_t* labels, float* lse, double* rowLoss, long n, long V, int ignoreIndex) {
  parallelChunks(n, 1, [&](long a, long b) {
    for (long i = a; i < b; i++) {
      float l = rowLse(logits + i * V, V);
      lse[i] = l;
      rowLoss[i] = labels[i] == ignoreIndex ? 0.0 : (double)l - logits[i * V + labels[i]];
    }
  });
  long c = 0;
  for (long i = 0; i < n; i++) c += labels[i] != ignoreIndex;
  return c;
}
void ceBwd(const float* logits, const int32_t* labels, const float* lse, const double* scales, float* out, long n,
           long V) {
  parallelChunks(n, 1, [&](long a, long b) {
    for (long i = a; i < b; i++) {
      float sc = (float)scales[i];
      if (sc == 0) {
        std::memset(out + i * V, 0, sizeof(float) * V);
        continue;
      }
      expScaleRow(logits + i * V, out + i * V, V, lse[i], sc);
      out[i * V + labels[i]] -= sc;
    }
  });
}

long flceFwd(const float* h, const float* w, const int32_t* labels, float* lse, double* rowLoss, long n, int dim, long V,
             int ignoreIndex, long chunk) {
  chunk = std::max(1L, std::min(chunk, n));
  std::vector<float> buf((size_t)chunk * V);
  long count = 0;
  for (long r0 = 0; r0 < n; r0 += chunk) {
    long m = std::min(chunk, n - r0);
    gemm(h + r0 * dim, w, buf.data(), (int)m, (int)V, dim, false, true, 0.0f);
    parallelChunks(m, 1, [&](long a, long b) {
      for (long i = a; i < b; i++) {
        long r = r0 + i;
        if (labels[r] == ignoreIndex) {
          rowLoss[r] = 0;
          lse[r] = 0;
          continue;
        }
        float l = rowLse(buf.data() + i * V, V);
        lse[r] = l;
        rowLoss[r] = (double)l - buf[i * V + labels[r]];
      }
    });
    for (long i = 0; i < m; i++) count += labels[r0 + i] != ignoreIndex;
  }
  return count;
}

void flceBwd(const float* h, const float* w, const int32_t* labels, const float* lse, const double* scales, float* gh,
             float* gw, long n, int dim, long V, long chunk) {
  chunk = std::max(1L, std::min(chunk, n));
  std::vector<float> buf((size_t)chunk * V);
  if (gw) std::memset(gw, 0, sizeof(float) * V * dim);
  for (long r0 = 0; r0 < n; r0 += chunk) {
    long m = std::min(chunk, n - r0);
    bool any = false;
    for (long i = 0; i < m; i++) any |= scales[r0 + i] != 0;
    if (!any) {
      if (gh) std::memset(gh + r0 * dim, 0, sizeof(float) * m * dim);
      continue;
    }
    gemm(h + r0 * dim, w, buf.data(), (int)m, (int)V, dim, false, true, 0.0f);
    parallelChunks(m, 1, [&](long a, long b) {
      for (long i = a; i < b; i++) {
        long r = r0 + i;
        float sc = (float)scales[r];
        float* row = buf.data() + i * V;
        if (sc == 0) {
          std::memset(row, 0, sizeof(float) * V);
          continue;
        }
        expScaleRow(row, row, V, lse[r], sc);
        row[labels[r]] -= sc;
      }
    });
    if (gh) gemm(buf.data(), w, gh + r0 * dim, (int)m, dim, (int)V, false, false, 0.0f);
    if (gw) gemm(buf.data(), h + r0 * dim, gw, (int)V, dim, (int)m, true, false, 1.0f);
  }
}

void softmaxFwd(const float* x, float* y, long rows, long d, bool log) {
  parallelChunks(rows, 1, [&](long a, long b) {
    for (long r = a; r < b; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      float m = rowMax(xr, d);
      float s = rowSumExp(xr, d, m);
      if (log) {
        float l = m + std::log(s);
        for (long j = 0; j < d; j++) yr[j] = xr[j] - l;
      } else {
        expScaleRow(xr, yr, d, m, 1.0f / s);
      }
    }
  });
}

OT_CLONES static void toBf16Range(const float* x, uint16_t* y, long n) {
  for (long i = 0; i < n; i++) {
    uint32_t b;
    std::memcpy(&b, &x[i], 4);
    uint32_t nan = (b & 0x7fffffffu) > 0x7f800000u;
    uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    y[i] = (uint16_t)(nan ? ((b >> 16) | 0x40u) : r);
  }
}
void castF32ToBf16(const float* x, uint16_t* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) { toBf16Range(x + a, y + a, b - a); });
}
OT_CLONES static void fromBf16Range(const uint16_t* x, float* y, long n) {
  for (long i = 0; i < n; i++) {
    uint32_t b = (uint32_t)x[i] << 16;
    std::memcpy(&y[i], &b, 4);
  }
}
void castBf16ToF32(const uint16_t* x, float* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) { fromBf16Range(x + a, y + a, b - a); });
}

// ---- FMA peak: independent FMA chains per core, widest ISA available.
__attribute__((target("avx2,fma"))) static double fmaLoopAvx2(long iters) {
  __m256 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
  for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0] > 1e30f ? 1.0 : 0.0;  // keep the result alive
}
__attribute__((target("avx512f"))) static double fmaLoopAvx512(long iters) {
  __m512 a[16];
  for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s) > 1e30f ? 1.0 : 0.0;
}

double fmaPeak(int threads, double seconds) {
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f");
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!avx512 && !avx2) return 0;
  const long iters = 2000000;
  const double flopsPerCall = avx512 ? iters * 16.0 * 16 * 2 : iters * 12.0 * 8 * 2;
  std::atomic<long> calls{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&] {
      double sink = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        sink += avx512 ? fmaLoopAvx512(iters) : fmaLoopAvx2(iters);
        calls.fetch_add(1);
      }
      if (sink > 1) calls.fetch_add(0);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return calls.load() * flopsPerCall / dt / 1e9;
}

}  // namespace ot
