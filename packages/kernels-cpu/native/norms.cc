// rmsNorm and layerNorm, forward and backward (float32 rows; weight/bias gradients summed per thread, then added).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {

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

}  // namespace ot
