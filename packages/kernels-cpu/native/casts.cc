// float32 <-> bfloat16 casts (round to nearest even, NaN kept quiet) and the fp32 FMA peak microbenchmark.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace ot {

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
