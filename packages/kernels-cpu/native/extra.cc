// General-broadcast binary ops and `where` (a stride-based walk over the output: runs of the last dim, each run a
// vectorized row), softmax/logSoftmax backward and logsumexp (float32 data, double sums).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "pool.h"
#include "simd.h"
#include "strided.h"

namespace ot {
namespace {

// y[j] = c[j*sc] ? a[j*sa] : b[j*sb] with each stride 0 or 1.
OT_CLONES void whereRow(const uint8_t* c, int sc, const uint32_t* a, int sa, const uint32_t* b, int sb, uint32_t* y,
                        long n) {
  if (sc && sa && sb) {
    for (long j = 0; j < n; j++) y[j] = c[j] ? a[j] : b[j];
  } else if (sc) {
    for (long j = 0; j < n; j++) y[j] = c[j] ? a[j * sa] : b[j * sb];
  } else {
    const uint32_t* src = c[0] ? a : b;
    const int s = c[0] ? sa : sb;
    if (s)
      for (long j = 0; j < n; j++) y[j] = src[j];
    else
      for (long j = 0; j < n; j++) y[j] = src[0];
  }
}

// sum(g * y) (or sum(g)) over n contiguous values, in double with 8 independent lanes.
template <bool LOG>
OT_INLINE double dotRow(const float* g, const float* y, long n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += LOG ? (double)g[i + l] : (double)g[i + l] * (double)y[i + l];
  double s = 0;
  for (; i < n; i++) s += LOG ? (double)g[i] : (double)g[i] * (double)y[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s;
}
// dx = y * (g - s) (or g - exp(y) * s) over n values; `s` is per value (stride ss: 0 = one sum, 1 = per column).
template <bool LOG>
OT_INLINE void gradRow(const float* g, const float* y, const double* s, int ss, float* dx, long n) {
  for (long j = 0; j < n; j++) {
    double sj = s[j * ss];
    dx[j] = LOG ? (float)((double)g[j] - (double)fexp(y[j]) * sj) : (float)((double)y[j] * ((double)g[j] - sj));
  }
}
OT_CLONES void smBwdRows(const float* g, const float* y, float* dx, long rows, long d, bool log) {
  for (long r = 0; r < rows; r++) {
    const long o = r * d;
    double s = log ? dotRow<true>(g + o, y + o, d) : dotRow<false>(g + o, y + o, d);
    if (log)
      gradRow<true>(g + o, y + o, &s, 0, dx + o, d);
    else
      gradRow<false>(g + o, y + o, &s, 0, dx + o, d);
  }
}
// Columns [c0, c1) of one [size, inner] slice.
OT_CLONES void smBwdCols(const float* g, const float* y, float* dx, long size, long inner, long c0, long c1, bool log,
                         double* acc) {
  const long w = c1 - c0;
  for (long c = 0; c < w; c++) acc[c] = 0;
  for (long j = 0; j < size; j++) {
    const float* gj = g + j * inner + c0;
    const float* yj = y + j * inner + c0;
    if (log)
      for (long c = 0; c < w; c++) acc[c] += (double)gj[c];
    else
      for (long c = 0; c < w; c++) acc[c] += (double)gj[c] * (double)yj[c];
  }
  for (long j = 0; j < size; j++) {
    const long o = j * inner + c0;
    if (log)
      gradRow<true>(g + o, y + o, acc, 1, dx + o, w);
    else
      gradRow<false>(g + o, y + o, acc, 1, dx + o, w);
  }
}

// Max of n values, NaN wins (once NaN, nothing compares greater).
OT_CLONES float maxRow(const float* x, long n) {
  float m = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (long i = 0; i < n; i++) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  return nan ? std::numeric_limits<float>::quiet_NaN() : m;
}
OT_CLONES double sumExpRow(const float* x, long n, float m) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += (double)fexp(x[i + l] - m);
  double s = 0;
  for (; i < n; i++) s += (double)fexp(x[i] - m);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s;
}
// The result for a max that is not finite (NaN, +inf, or -inf: every value -inf), as the reference gets it.
OT_INLINE bool special(float m, float* out) {
  if (std::isfinite(m)) return false;
  *out = m;
  return true;
}
OT_INLINE float finish(double s, float m) { return (float)(std::log(s) + (double)m); }

OT_CLONES void lseCols(const float* x, float* out, long red, long inner, long c0, long c1, float* m, double* acc) {
  const long w = c1 - c0;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (long c = 0; c < w; c++) {
    m[c] = ninf;
    acc[c] = 0;
  }
  for (long r = 0; r < red; r++) {
    const float* xr = x + r * inner + c0;
    for (long c = 0; c < w; c++) m[c] = (xr[c] > m[c] || xr[c] != xr[c]) && m[c] == m[c] ? xr[c] : m[c];
  }
  for (long r = 0; r < red; r++) {
    const float* xr = x + r * inner + c0;
    for (long c = 0; c < w; c++) acc[c] += (double)fexp(xr[c] - m[c]);
  }
  for (long c = 0; c < w; c++)
    if (!special(m[c], out + c0 + c)) out[c0 + c] = finish(acc[c], m[c]);
}

}  // namespace

void binaryBroadcast(int op, const float* a, const long* sa, const float* b, const long* sb, void* y,
                     const long* shape, int nd) {
  if (nd > kMaxDims) return;
  const bool cmp = op >= CMP_EQ;
  const long* st[2] = {sa, sb};
  const int ia = nd > 0 && sa[nd - 1] != 0, ib = nd > 0 && sb[nd - 1] != 0;
  stridedRuns<2>(shape, nd, st, 32768, [&](long o, const long* off, long len) {
    void* yo = cmp ? (void*)(static_cast<uint8_t*>(y) + o) : (void*)(static_cast<float*>(y) + o);
    binaryRow(op, a + off[0], ia, b + off[1], ib, yo, len);
  });
}

void whereBroadcast(const uint8_t* c, const long* sc, const uint32_t* a, const long* sa, const uint32_t* b,
                    const long* sb, uint32_t* y, const long* shape, int nd) {
  if (nd > kMaxDims) return;
  const long* st[3] = {sc, sa, sb};
  const int ic = nd > 0 && sc[nd - 1] != 0, ia = nd > 0 && sa[nd - 1] != 0, ib = nd > 0 && sb[nd - 1] != 0;
  stridedRuns<3>(shape, nd, st, 32768, [&](long o, const long* off, long len) {
    whereRow(c + off[0], ic, a + off[1], ia, b + off[2], ib, y + o, len);
  });
}

void softmaxBackward(const float* g, const float* y, float* dx, long outer, long size, long inner, bool log) {
  if (inner == 1) {
    parallelChunks(outer, std::max(1L, 16384 / std::max(1L, size)), [&](long s, long e) {
      smBwdRows(g + s * size, y + s * size, dx + s * size, e - s, size, log);
    });
    return;
  }
  parallelColumnTiles(outer, inner, std::min(inner, 256L), [&](long o, long c0, long c1) {
    std::vector<double> acc(c1 - c0);
    const long base = o * size * inner;
    smBwdCols(g + base, y + base, dx + base, size, inner, c0, c1, log, acc.data());
  });
}

void logsumexp(const float* x, float* out, long outer, long red, long inner) {
  if (inner == 1 && outer < (long)numThreads() && red >= 65536) {
    // Few long rows: each row split over the pool (fixed partition, partial sums combined in order).
    const long parts = std::min((long)numThreads() * 4, red / 16384);
    const long step = (red + parts - 1) / parts;
    std::vector<float> pm(parts);
    std::vector<double> ps(parts);
    for (long r = 0; r < outer; r++) {
      const float* xr = x + r * red;
      parallelFor(parts, [&](long t, int) {
        long a = t * step, b = std::min(red, a + step);
        pm[t] = a < b ? maxRow(xr + a, b - a) : -std::numeric_limits<float>::infinity();
      });
      float m = pm[0];
      for (long t = 1; t < parts; t++) m = (pm[t] > m || pm[t] != pm[t]) && m == m ? pm[t] : m;
      if (special(m, out + r)) continue;
      parallelFor(parts, [&](long t, int) {
        long a = t * step, b = std::min(red, a + step);
        ps[t] = a < b ? sumExpRow(xr + a, b - a, m) : 0.0;
      });
      double s = 0;
      for (double v : ps) s += v;
      out[r] = finish(s, m);
    }
    return;
  }
  if (inner == 1) {
    parallelChunks(outer, std::max(1L, 16384 / std::max(1L, red)), [&](long s, long e) {
      for (long r = s; r < e; r++) {
        const float* xr = x + r * red;
        float m = maxRow(xr, red);
        if (!special(m, out + r)) out[r] = finish(sumExpRow(xr, red, m), m);
      }
    });
    return;
  }
  parallelColumnTiles(outer, inner, std::min(inner, 256L), [&](long o, long c0, long c1) {
    std::vector<float> m(c1 - c0);
    std::vector<double> acc(c1 - c0);
    lseCols(x + o * red * inner, out + o * inner, red, inner, c0, c1, m.data(), acc.data());
  });
}

}  // namespace ot
