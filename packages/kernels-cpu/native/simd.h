#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define OT_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#define OT_INLINE static inline __attribute__((always_inline))

namespace ot {
// expf to ~2 ulp (Cephes-style range reduction + degree-6 polynomial), written with plain arithmetic and
// selects (no libm calls) so that loops calling it vectorize in every target clone.
OT_INLINE float fexp(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.7f ? 88.7f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r) * r + r + 1.0f;
  int32_t e = (int32_t)n + 127;
  uint32_t bits = (uint32_t)e << 23;
  float s;
  std::memcpy(&s, &bits, 4);
  return p * s;
}

// Row reductions written with 8 independent lanes: without -ffast-math GCC keeps a single float accumulator
// (and with it every fexp) scalar, because reassociating the sum changes its rounding; 8 lanes let each target
// clone vectorize the loop. `x > m ? x : m` is exactly (v)maxps, so the max vectorizes as well (NaNs never win).
constexpr int kLanes = 8;

/** max of x[0, n) (-inf when n == 0). */
OT_INLINE float laneMax(const float* x, long n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; l++) acc[l] = -INFINITY;
  long j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  float m = -INFINITY;
  for (int l = 0; l < kLanes; l++) m = acc[l] > m ? acc[l] : m;
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

/** sum of exp(x[j] - m) over x[0, n); with STORE, x[j] is replaced by exp(x[j] - m) (T: float or const float). */
template <bool STORE, class T>
OT_INLINE float laneSumExp(T* x, long n, float m) {
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  long j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) {
      float e = fexp(x[j + l] - m);
      if constexpr (STORE) x[j + l] = e;
      acc[l] += e;
    }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; j++) {
    float e = fexp(x[j] - m);
    if constexpr (STORE) x[j] = e;
    s += e;
  }
  return s;
}

/** p[j] = exp(p[j] - l) in place; returns the sum of p[j] * g[j] over [0, n). */
OT_INLINE float laneExpDot(float* p, const float* g, long n, float l) {
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  long j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; k++) {
      float e = fexp(p[j + k] - l);
      p[j + k] = e;
      acc[k] += e * g[j + k];
    }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; j++) {
    float e = fexp(p[j] - l);
    p[j] = e;
    s += e * g[j];
  }
  return s;
}

/** Lane-wise sum of f(j) over [0, n) (f returns float; vectorizes like the reductions above). */
template <class F>
OT_INLINE float laneSum(long n, F&& f) {
  float acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  long j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += f(j + l);
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; j++) s += f(j);
  return s;
}
}  // namespace ot
