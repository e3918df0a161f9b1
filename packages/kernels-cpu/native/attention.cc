// Attention on [tokens, heads, dim] rows: query blocks of BQ rows, each block's scores against the keys it can
// see computed with one SGEMM (masked exactly), softmax per row, then P·V with one SGEMM. Backward recomputes P
// from the saved logsumexp. Tasks are (segment, head, block) forward and (segment, kv head) backward, so that
// dK/dV of a kv head (shared by its GQA group) are written by one worker.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {
static const int BQ = 64;

OT_CLONES static void softmaxRows(float* S, int ld, int rows, int n, int i0, bool causal, int sk, float* lse) {
  for (int r = 0; r < rows; r++) {
    float* s = S + (long)r * ld;
    int valid = causal ? std::min(i0 + r + 1, sk) : sk;
    if (valid > n) valid = n;
    if (valid <= 0) {
      lse[r] = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < n; j++) s[j] = 0;
      continue;
    }
    float m = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < valid; j++) m = s[j] > m ? s[j] : m;
    float sum = 0;
    for (int j = 0; j < valid; j++) {
      float e = fexp(s[j] - m);
      s[j] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < valid; j++) s[j] *= inv;
    for (int j = valid; j < n; j++) s[j] = 0;
    lse[r] = m + std::log(sum);
  }
}

void attentionFwd(const float* q, const float* k, const float* v, float* o, float* lse, const int32_t* seg, int nseg,
                  int hq, int hkv, int d, float scale, bool causal) {
  int group = hq / hkv;
  struct Task { int s, h, b; };
  std::vector<Task> tasks;
  int maxSk = 0;
  for (int s = 0; s < nseg; s++) {
    int sq = seg[s * 4 + 2];
    maxSk = std::max(maxSk, seg[s * 4 + 3]);
    for (int h = 0; h < hq; h++)
      for (int b = 0; b * BQ < sq; b++) tasks.push_back({s, h, b});
  }
  // Largest (latest) causal blocks first for balance.
  if (causal) std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.b > b.b; });
  int T = numThreads();
  std::vector<float> scratch((size_t)T * BQ * std::max(1, maxSk));
  parallelFor((long)tasks.size(), [&](long t, int worker) {
    const Task& tk = tasks[t];
    int q0 = seg[tk.s * 4], k0 = seg[tk.s * 4 + 1], sq = seg[tk.s * 4 + 2], sk = seg[tk.s * 4 + 3];
    int i0 = tk.b * BQ, rows = std::min(BQ, sq - i0);
    int n = causal ? std::min(i0 + rows, sk) : sk;
    int hk = tk.h / group;
    float* S = scratch.data() + (size_t)worker * BQ * std::max(1, maxSk);
    const float* Q = q + ((long)(q0 + i0) * hq + tk.h) * d;
    const float* K = k + ((long)k0 * hkv + hk) * d;
    const float* V = v + ((long)k0 * hkv + hk) * d;
    float* O = o + ((long)(q0 + i0) * hq + tk.h) * d;
    float L[BQ];
    if (n > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, Q, hq * d, K, hkv * d, 0.0f, S, n);
    softmaxRows(S, n, rows, n, i0, causal, sk, L);
    if (n > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, 1.0f, S, n, V, hkv * d, 0.0f, O, hq * d);
    else
      for (int r = 0; r < rows; r++) std::memset(O + (long)r * hq * d, 0, sizeof(float) * d);
    for (int r = 0; r < rows; r++) lse[(long)(q0 + i0 + r) * hq + tk.h] = L[r];
  });
}

OT_CLONES static void probsAndGrad(float* P, float* dP, int rows, int n, int i0, bool causal, int sk, const float* L,
                                   float scale) {
  for (int r = 0; r < rows; r++) {
    float* p = P + (long)r * n;
    float* dp = dP + (long)r * n;
    int valid = causal ? std::min(i0 + r + 1, sk) : sk;
    if (valid > n) valid = n;
    float l = L[r];
    float delta = 0;
    for (int j = 0; j < valid; j++) {
      float e = fexp(p[j] - l);
      p[j] = e;
      delta += e * dp[j];
    }
    for (int j = 0; j < valid; j++) dp[j] = p[j] * (dp[j] - delta) * scale;
    for (int j = valid; j < n; j++) p[j] = dp[j] = 0;
  }
}

void attentionBwd(const float* q, const float* k, const float* v, const float* lse, const float* go, float* dq, float* dk,
                  float* dv, const int32_t* seg, int nseg, int hq, int hkv, int d, float scale, bool causal) {
  int group = hq / hkv;
  int maxSk = 0;
  for (int s = 0; s < nseg; s++) maxSk = std::max(maxSk, seg[s * 4 + 3]);
  int T = numThreads();
  size_t per = (size_t)BQ * std::max(1, maxSk);
  std::vector<float> scratch((size_t)T * per * 2);
  parallelFor((long)nseg * hkv, [&](long t, int worker) {
    int s = (int)(t / hkv), hk = (int)(t % hkv);
    int q0 = seg[s * 4], k0 = seg[s * 4 + 1], sq = seg[s * 4 + 2], sk = seg[s * 4 + 3];
    float* P = scratch.data() + (size_t)worker * per * 2;
    float* dP = P + per;
    const float* K = k + ((long)k0 * hkv + hk) * d;
    const float* V = v + ((long)k0 * hkv + hk) * d;
    float* dK = dk + ((long)k0 * hkv + hk) * d;
    float* dV = dv + ((long)k0 * hkv + hk) * d;
    for (int j = 0; j < sk; j++) {
      std::memset(dK + (long)j * hkv * d, 0, sizeof(float) * d);
      std::memset(dV + (long)j * hkv * d, 0, sizeof(float) * d);
    }
    for (int g = 0; g < group; g++) {
      int h = hk * group + g;
      for (int i0 = 0; i0 < sq; i0 += BQ) {
        int rows = std::min(BQ, sq - i0);
        int n = causal ? std::min(i0 + rows, sk) : sk;
        const float* Q = q + ((long)(q0 + i0) * hq + h) * d;
        const float* GO = go + ((long)(q0 + i0) * hq + h) * d;
        float* DQ = dq + ((long)(q0 + i0) * hq + h) * d;
        if (n <= 0) {
          for (int r = 0; r < rows; r++) std::memset(DQ + (long)r * hq * d, 0, sizeof(float) * d);
          continue;
        }
        float L[BQ];
        for (int r = 0; r < rows; r++) L[r] = lse[(long)(q0 + i0 + r) * hq + h];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, scale, Q, hq * d, K, hkv * d, 0.0f, P, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, 1.0f, GO, hq * d, V, hkv * d, 0.0f, dP, n);
        probsAndGrad(P, dP, rows, n, i0, causal, sk, L, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, n, 1.0f, dP, n, K, hkv * d, 0.0f, DQ, hq * d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, 1.0f, dP, n, Q, hq * d, 1.0f, dK, hkv * d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, rows, 1.0f, P, n, GO, hq * d, 1.0f, dV, hkv * d);
      }
    }
  });
}
}  // namespace ot
