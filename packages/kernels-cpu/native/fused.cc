// Elementwise fused kernels: swiglu, rope, add / add_ / mul_, the AdamW step, embedding forward and backward.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {

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

}  // namespace ot
