// Attention on [tokens, heads, dim] rows: query blocks of BQ rows (of several heads of one GQA group, stacked).
// Forward, flash-style: a query block meets the keys it can see in blocks of at most keyBlock, one SGEMM each for
// the scores (masked exactly) and for P·V, with an online softmax in between (running row max and sum; the output
// rescaled when the max grows), so its scores never exceed [gs*BQ, keyBlock] whatever the sequence length. Backward
// recomputes P from the saved logsumexp, a query block against all its visible keys at once. Tasks are (segment,
// head stack, block) forward and (segment, kv head) backward, so that dK/dV of a kv head (shared by its group) are
// written by one worker; with too few of those to keep every thread busy, a kv head's query blocks are split over
// several tasks whose private dK/dV are summed afterwards.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {
static const int BQ = 64;
// Keys per block of the forward's online softmax. 2048: the bench (S 1024) and the training step (S 512) see their
// keys in one block, as one SGEMM each; setAttentionKeyBlock changes it (tests run many small blocks).
static std::atomic<int> gKeyBlock{2048};
void setAttentionKeyBlock(int keys) { gKeyBlock.store(keys > 0 ? keys : 2048); }

// One key block [j0, j0+nb) of the online softmax, for `rows` query rows (row r is query i0+r): S holds the scaled
// scores; each row's visible keys (a prefix: causal mask and segment end) are replaced by exp(s - m'), the rest by
// 0, where m' = max(m, the block's max); l = l * alpha + the block's sum, and alpha = exp(m - m') is the factor by
// which the row's output so far must be scaled (0 before the row's first visible key).
OT_CLONES static void onlineSoftmaxBlock(float* S, int rows, int nb, int i0, int j0, bool causal, int sk, float* m,
                                         float* l, float* alpha) {
  for (int r = 0; r < rows; r++) {
    float* s = S + (long)r * nb;
    const int valid = std::max(0, std::min(nb, (causal ? std::min(i0 + r + 1, sk) : sk) - j0));
    if (valid == 0) {
      alpha[r] = 1.0f;
      for (int j = 0; j < nb; j++) s[j] = 0;
      continue;
    }
    const float mNew = std::max(m[r], laneMax(s, valid));
    alpha[r] = m[r] == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m[r] - mNew);
    const float sum = laneSumExp<true>(s, valid, mNew);
    for (int j = valid; j < nb; j++) s[j] = 0;
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mNew;
  }
}

// Heads stacked per task: the query heads of one GQA group share K and V, so `gs` of them run as one
// [gs*rows, n] product instead of gs products of [rows, n] (single-threaded OpenBLAS reaches ~45 GFLOP/s at 64 rows
// and ~60 at 256 on a Zen 3 core). gs divides the group and keeps the per-worker scores within a budget.
static int stackedHeads(int group, int maxSk) {
  const long budget = 1L << 21;  // floats of scores per worker (8 MiB)
  const long perHead = (long)BQ * std::max(1, maxSk);
  int gs = (int)std::max(1L, std::min<long>(group, budget / perHead));
  while (group % gs) gs--;
  return gs;
}

// Rows [i0, i0+rows) of heads [h0, h0+gs) of x ([tokens, heads, d], row stride hq*d) <-> dense [gs*rows, d].
static void packRows(const float* x, int hq, int d, int h0, int gs, int rows, float* dst) {
  for (int g = 0; g < gs; g++)
    for (int r = 0; r < rows; r++)
      std::memcpy(dst + ((long)g * rows + r) * d, x + ((long)r * hq + h0 + g) * d, sizeof(float) * d);
}
static void unpackRows(const float* src, int hq, int d, int h0, int gs, int rows, float* x) {
  for (int g = 0; g < gs; g++)
    for (int r = 0; r < rows; r++)
      std::memcpy(x + ((long)r * hq + h0 + g) * d, src + ((long)g * rows + r) * d, sizeof(float) * d);
}

void attentionFwd(const float* q, const float* k, const float* v, float* o, float* lse, const int32_t* seg, int nseg,
                  int hq, int hkv, int d, float scale, bool causal) {
  const int group = hq / hkv;
  int maxSk = 0;
  for (int s = 0; s < nseg; s++) maxSk = std::max(maxSk, seg[s * 4 + 3]);
  const int KB = std::min(gKeyBlock.load(), std::max(1, maxSk));
  const int gs = stackedHeads(group, KB);
  struct Task { int s, h0, b; };
  std::vector<Task> tasks;
  for (int s = 0; s < nseg; s++) {
    int sq = seg[s * 4 + 2];
    for (int h0 = 0; h0 < hq; h0 += gs)
      for (int b = 0; b * BQ < sq; b++) tasks.push_back({s, h0, b});
  }
  // Largest (latest) causal blocks first for balance.
  if (causal) std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.b > b.b; });
  const int T = numThreads();
  const size_t sPer = (size_t)gs * BQ * KB, rPer = (size_t)gs * BQ * d, per = sPer + 2 * rPer + 3 * gs * BQ;
  std::vector<float> scratch((size_t)T * per);
  parallelFor((long)tasks.size(), [&](long t, int worker) {
    const Task& tk = tasks[t];
    int q0 = seg[tk.s * 4], k0 = seg[tk.s * 4 + 1], sq = seg[tk.s * 4 + 2], sk = seg[tk.s * 4 + 3];
    int i0 = tk.b * BQ, rows = std::min(BQ, sq - i0);
    int n = causal ? std::min(i0 + rows, sk) : sk;
    int hk = tk.h0 / group, m = gs * rows;
    float* S = scratch.data() + (size_t)worker * per;
    float* Qs = S + sPer;
    float* Os = Qs + rPer;
    float* rowMax = Os + rPer;  // the online softmax's running max, sum and rescale factor per stacked row
    float* rowSum = rowMax + gs * BQ;
    float* alpha = rowSum + gs * BQ;
    const float* K = k + ((long)k0 * hkv + hk) * d;
    const float* V = v + ((long)k0 * hkv + hk) * d;
    float* O = o + (long)(q0 + i0) * hq * d;
    if (n <= 0) {  // no keys: zero output, logsumexp -inf
      for (int g = 0; g < gs; g++)
        for (int r = 0; r < rows; r++) {
          std::memset(O + ((long)r * hq + tk.h0 + g) * d, 0, sizeof(float) * d);
          lse[(long)(q0 + i0 + r) * hq + tk.h0 + g] = -std::numeric_limits<float>::infinity();
        }
      return;
    }
    packRows(q + (long)(q0 + i0) * hq * d, hq, d, tk.h0, gs, rows, Qs);
    std::fill(rowMax, rowMax + m, -std::numeric_limits<float>::infinity());
    std::fill(rowSum, rowSum + m, 0.0f);
    for (int j0 = 0; j0 < n; j0 += KB) {
      const int nb = std::min(KB, n - j0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, d, scale, Qs, d, K + (long)j0 * hkv * d, hkv * d,
                  0.0f, S, nb);
      for (int g = 0; g < gs; g++)
        onlineSoftmaxBlock(S + (long)g * rows * nb, rows, nb, i0, j0, causal, sk, rowMax + g * rows,
                           rowSum + g * rows, alpha + g * rows);
      if (j0 > 0)
        for (int r = 0; r < m; r++)
          for (int e = 0; e < d; e++) Os[(long)r * d + e] *= alpha[r];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, nb, 1.0f, S, nb, V + (long)j0 * hkv * d, hkv * d,
                  j0 > 0 ? 1.0f : 0.0f, Os, d);
    }
    // Every row saw at least one key (n > 0: causal rows see key 0, others all sk), so rowSum > 0.
    for (int r = 0; r < m; r++) {
      const float inv = 1.0f / rowSum[r];
      for (int e = 0; e < d; e++) Os[(long)r * d + e] *= inv;
    }
    unpackRows(Os, hq, d, tk.h0, gs, rows, O);
    for (int g = 0; g < gs; g++)
      for (int r = 0; r < rows; r++)
        lse[(long)(q0 + i0 + r) * hq + tk.h0 + g] = rowMax[g * rows + r] + std::log(rowSum[g * rows + r]);
  });
}

OT_CLONES static void probsAndGrad(float* P, float* dP, int rows, int n, int i0, bool causal, int sk, const float* L,
                                   float scale) {
  for (int r = 0; r < rows; r++) {
    float* p = P + (long)r * n;
    float* dp = dP + (long)r * n;
    int valid = causal ? std::min(i0 + r + 1, sk) : sk;
    if (valid > n) valid = n;
    float delta = laneExpDot(p, dp, valid, L[r]);
    for (int j = 0; j < valid; j++) dp[j] = p[j] * (dp[j] - delta) * scale;
    for (int j = valid; j < n; j++) p[j] = dp[j] = 0;
  }
}

void attentionBwd(const float* q, const float* k, const float* v, const float* lse, const float* go, float* dq, float* dk,
                  float* dv, const int32_t* seg, int nseg, int hq, int hkv, int d, float scale, bool causal) {
  const int group = hq / hkv;
  int maxSk = 0;
  for (int s = 0; s < nseg; s++) maxSk = std::max(maxSk, seg[s * 4 + 3]);
  const int gs = stackedHeads(group, maxSk);
  const int T = numThreads();
  const size_t sPer = (size_t)gs * BQ * std::max(1, maxSk), rPer = (size_t)gs * BQ * d;
  const size_t per = 2 * sPer + 3 * rPer + gs * BQ;
  std::vector<float> scratch((size_t)T * per);
  // Tasks: (segment, kv head, part). dK/dV of a kv head sum over its whole group and every query block. With at
  // least ~4 (segment, kv head) pairs per thread one task owns a pair's dK/dV outright; with fewer (one long
  // sequence, few KV heads: otherwise most cores would idle) each pair's query blocks are dealt round-robin to
  // `parts` tasks that accumulate privately, and the partial sums are added afterwards, in part order.
  const long pairs = (long)nseg * hkv;
  int maxBlocks = 0;
  for (int s = 0; s < nseg; s++) maxBlocks = std::max(maxBlocks, (seg[s * 4 + 2] + BQ - 1) / BQ);
  int parts = 1;
  if (T > 1 && pairs < 4L * T && maxBlocks > 1) {
    parts = (int)std::min<long>(maxBlocks, (4L * T + pairs - 1) / pairs);
    const long budget = 1L << 25;  // floats of private dK/dV (128 MiB)
    while (parts > 1 && pairs * parts * 2L * maxSk * d > budget) parts--;
  }
  const size_t privPer = (size_t)2 * maxSk * d;
  std::vector<float> priv(parts > 1 ? (size_t)pairs * parts * privPer : 0);
  parallelFor(pairs * parts, [&](long t, int worker) {
    const long pair = t / parts;
    const int part = (int)(t % parts);
    int s = (int)(pair / hkv), hk = (int)(pair % hkv);
    int q0 = seg[s * 4], k0 = seg[s * 4 + 1], sq = seg[s * 4 + 2], sk = seg[s * 4 + 3];
    float* P = scratch.data() + (size_t)worker * per;
    float* dP = P + sPer;
    float* Qs = dP + sPer;
    float* GOs = Qs + rPer;
    float* dQs = GOs + rPer;
    float* L = dQs + rPer;
    const float* K = k + ((long)k0 * hkv + hk) * d;
    const float* V = v + ((long)k0 * hkv + hk) * d;
    float *dK, *dV;
    int ldkv;
    if (parts == 1) {
      dK = dk + ((long)k0 * hkv + hk) * d;
      dV = dv + ((long)k0 * hkv + hk) * d;
      ldkv = hkv * d;
    } else {
      dK = priv.data() + ((size_t)pair * parts + part) * privPer;
      dV = dK + (size_t)maxSk * d;
      ldkv = d;
    }
    for (int j = 0; j < sk; j++) {
      std::memset(dK + (long)j * ldkv, 0, sizeof(float) * d);
      std::memset(dV + (long)j * ldkv, 0, sizeof(float) * d);
    }
    for (int h0 = hk * group; h0 < (hk + 1) * group; h0 += gs) {
      for (int i0 = part * BQ; i0 < sq; i0 += parts * BQ) {
        int rows = std::min(BQ, sq - i0), m = gs * rows;
        int n = causal ? std::min(i0 + rows, sk) : sk;
        const long row0 = (long)(q0 + i0) * hq * d;
        if (n <= 0) {
          for (int g = 0; g < gs; g++)
            for (int r = 0; r < rows; r++) std::memset(dq + row0 + ((long)r * hq + h0 + g) * d, 0, sizeof(float) * d);
          continue;
        }
        for (int g = 0; g < gs; g++)
          for (int r = 0; r < rows; r++) L[g * rows + r] = lse[(long)(q0 + i0 + r) * hq + h0 + g];
        packRows(q + row0, hq, d, h0, gs, rows, Qs);
        packRows(go + row0, hq, d, h0, gs, rows, GOs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, scale, Qs, d, K, hkv * d, 0.0f, P, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, 1.0f, GOs, d, V, hkv * d, 0.0f, dP, n);
        for (int g = 0; g < gs; g++)
          probsAndGrad(P + (long)g * rows * n, dP + (long)g * rows * n, rows, n, i0, causal, sk, L + g * rows, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, n, 1.0f, dP, n, K, hkv * d, 0.0f, dQs, d);
        unpackRows(dQs, hq, d, h0, gs, rows, dq + row0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, m, 1.0f, dP, n, Qs, d, 1.0f, dK, ldkv);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, m, 1.0f, P, n, GOs, d, 1.0f, dV, ldkv);
      }
    }
  });
  if (parts == 1) return;
  // dK, dV = the parts' sums, key rows in chunks on the pool.
  const int chunks = 8;
  parallelFor(pairs * chunks, [&](long t, int) {
    const long pair = t / chunks;
    const int c = (int)(t % chunks), s = (int)(pair / hkv), hk = (int)(pair % hkv);
    const int k0 = seg[s * 4 + 1], sk = seg[s * 4 + 3];
    const int j0 = (int)((long)sk * c / chunks), j1 = (int)((long)sk * (c + 1) / chunks);
    const float* base = priv.data() + (size_t)pair * parts * privPer;
    for (int which = 0; which < 2; which++) {
      float* out = (which == 0 ? dk : dv) + ((long)k0 * hkv + hk) * d;
      const float* in = base + (size_t)which * maxSk * d;
      for (int j = j0; j < j1; j++) {
        float* o = out + (long)j * hkv * d;
        std::memcpy(o, in + (long)j * d, sizeof(float) * d);
        for (int p = 1; p < parts; p++) {
          const float* x = in + (size_t)p * privPer + (long)j * d;
          for (int e = 0; e < d; e++) o[e] += x[e];
        }
      }
    }
  });
}
}  // namespace ot
