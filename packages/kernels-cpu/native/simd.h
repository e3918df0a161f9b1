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
}  // namespace ot
