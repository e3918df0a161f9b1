// Cross-entropy and the fused linear + cross-entropy (logits in row chunks, one SGEMM each), and softmax rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {

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

}  // namespace ot
