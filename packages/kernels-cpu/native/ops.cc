// Elementwise (binary, unary, activation backward), reductions and casts, float32 (bf16/f16 callers convert at
// the edges). Binary ops: y[r*inner + j] = a[.] op b[.], each operand a full array, one row of `inner` values
// repeated (trailing broadcast) or a scalar. Reductions over contiguous dims: x viewed as [outer, red, inner].
#include "ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace ot {
namespace {

template <int OP>
OT_INLINE float bop(float a, float b) {
  if constexpr (OP == BIN_ADD) return a + b;
  if constexpr (OP == BIN_SUB) return a - b;
  if constexpr (OP == BIN_MUL) return a * b;
  if constexpr (OP == BIN_DIV) return a / b;
  if constexpr (OP == BIN_MAX) return (a > b || a != a) ? a : b;
  if constexpr (OP == BIN_MIN) return (a < b || a != a) ? a : b;
  return 0;
}
template <int OP>
OT_INLINE uint8_t cop(float a, float b) {
  if constexpr (OP == CMP_EQ) return a == b;
  if constexpr (OP == CMP_NE) return a != b;
  if constexpr (OP == CMP_LT) return a < b;
  if constexpr (OP == CMP_LE) return a <= b;
  if constexpr (OP == CMP_GT) return a > b;
  if constexpr (OP == CMP_GE) return a >= b;
  return 0;
}
// sa/sb: 1 = a vector of `n`, 0 = a scalar.
template <int OP>
OT_INLINE void binRow(const float* a, int sa, const float* b, int sb, float* y, long n) {
  if (sa && sb)
    for (long i = 0; i < n; i++) y[i] = bop<OP>(a[i], b[i]);
  else if (sa) {
    float s = b[0];
    for (long i = 0; i < n; i++) y[i] = bop<OP>(a[i], s);
  } else {
    float s = a[0];
    for (long i = 0; i < n; i++) y[i] = bop<OP>(s, b[i]);
  }
}
template <int OP>
OT_INLINE void cmpRow(const float* a, int sa, const float* b, int sb, uint8_t* y, long n) {
  if (sa && sb)
    for (long i = 0; i < n; i++) y[i] = cop<OP>(a[i], b[i]);
  else if (sa) {
    float s = b[0];
    for (long i = 0; i < n; i++) y[i] = cop<OP>(a[i], s);
  } else {
    float s = a[0];
    for (long i = 0; i < n; i++) y[i] = cop<OP>(s, b[i]);
  }
}

OT_CLONES void binDispatch(int op, const float* a, int sa, const float* b, int sb, void* y, long n) {
  float* yf = static_cast<float*>(y);
  uint8_t* yb = static_cast<uint8_t*>(y);
  switch (op) {
    case BIN_ADD: binRow<BIN_ADD>(a, sa, b, sb, yf, n); break;
    case BIN_SUB: binRow<BIN_SUB>(a, sa, b, sb, yf, n); break;
    case BIN_MUL: binRow<BIN_MUL>(a, sa, b, sb, yf, n); break;
    case BIN_DIV: binRow<BIN_DIV>(a, sa, b, sb, yf, n); break;
    case BIN_MAX: binRow<BIN_MAX>(a, sa, b, sb, yf, n); break;
    case BIN_MIN: binRow<BIN_MIN>(a, sa, b, sb, yf, n); break;
    case CMP_EQ: cmpRow<CMP_EQ>(a, sa, b, sb, yb, n); break;
    case CMP_NE: cmpRow<CMP_NE>(a, sa, b, sb, yb, n); break;
    case CMP_LT: cmpRow<CMP_LT>(a, sa, b, sb, yb, n); break;
    case CMP_LE: cmpRow<CMP_LE>(a, sa, b, sb, yb, n); break;
    case CMP_GT: cmpRow<CMP_GT>(a, sa, b, sb, yb, n); break;
    case CMP_GE: cmpRow<CMP_GE>(a, sa, b, sb, yb, n); break;
  }
}

OT_INLINE float sigm(float x) { return 1.0f / (1.0f + fexp(-x)); }
constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kGeluBeta = 0.79788456080286536f;  // sqrt(2/pi)
constexpr float kGeluKappa = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// Vectorizable unary ops (no libm calls).
template <int OP>
OT_INLINE float uop(float x, float p, float q) {
  if constexpr (OP == U_NEG) return -x;
  if constexpr (OP == U_ABS) return std::fabs(x);
  if constexpr (OP == U_SQUARE) return x * x;
  if constexpr (OP == U_RELU) return (x > 0 || x != x) ? x : 0.0f;
  if constexpr (OP == U_EXP) return fexp(x);
  if constexpr (OP == U_SQRT) return std::sqrt(x);
  if constexpr (OP == U_RSQRT) return 1.0f / std::sqrt(x);
  if constexpr (OP == U_SIGMOID) return sigm(x);
  if constexpr (OP == U_SILU) return x * sigm(x);
  if constexpr (OP == U_GELU_TANH) return x * sigm(2.0f * kGeluBeta * (x + kGeluKappa * x * x * x));
  if constexpr (OP == U_CLAMP) {
    float y = x < p ? p : x;
    return y > q ? q : y;
  }
  (void)p;
  (void)q;
  return x;
}
template <int OP>
OT_INLINE void unRow(const float* x, float* y, long n, float p, float q) {
  for (long i = 0; i < n; i++) y[i] = uop<OP>(x[i], p, q);
}
OT_CLONES void unDispatch(int op, const float* x, float* y, long n, float p, float q) {
  switch (op) {
    case U_NEG: unRow<U_NEG>(x, y, n, p, q); break;
    case U_ABS: unRow<U_ABS>(x, y, n, p, q); break;
    case U_SQUARE: unRow<U_SQUARE>(x, y, n, p, q); break;
    case U_RELU: unRow<U_RELU>(x, y, n, p, q); break;
    case U_EXP: unRow<U_EXP>(x, y, n, p, q); break;
    case U_SQRT: unRow<U_SQRT>(x, y, n, p, q); break;
    case U_RSQRT: unRow<U_RSQRT>(x, y, n, p, q); break;
    case U_SIGMOID: unRow<U_SIGMOID>(x, y, n, p, q); break;
    case U_SILU: unRow<U_SILU>(x, y, n, p, q); break;
    case U_GELU_TANH: unRow<U_GELU_TANH>(x, y, n, p, q); break;
    case U_CLAMP: unRow<U_CLAMP>(x, y, n, p, q); break;
    // libm (scalar) ops: accuracy first.
    case U_LOG:
      for (long i = 0; i < n; i++) y[i] = std::log(x[i]);
      break;
    case U_TANH:
      for (long i = 0; i < n; i++) y[i] = std::tanh(x[i]);
      break;
    case U_GELU_ERF:
      for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kSqrt1_2));
      break;
    case U_POW:
      if (p == 2.0f)
        for (long i = 0; i < n; i++) y[i] = x[i] * x[i];
      else if (p == 0.5f)
        for (long i = 0; i < n; i++) y[i] = std::sqrt(x[i]);
      else
        for (long i = 0; i < n; i++) y[i] = (float)std::pow((double)x[i], (double)p);
      break;
  }
}

template <int OP>
OT_INLINE float bwop(float g, float t) {
  if constexpr (OP == B_TANH) return g * (1.0f - t * t);
  if constexpr (OP == B_SIGMOID) return g * (1.0f - t) * t;
  if constexpr (OP == B_SILU) {
    float s = sigm(t);
    return g * s * (1.0f + t * (1.0f - s));
  }
  if constexpr (OP == B_GELU_TANH) {
    float x2 = t * t;
    float th = 2.0f * sigm(2.0f * kGeluBeta * (t + kGeluKappa * x2 * t)) - 1.0f;
    return g * (0.5f * (1.0f + th) + 0.5f * t * (1.0f - th * th) * kGeluBeta * (1.0f + 3.0f * kGeluKappa * x2));
  }
  return g;
}
template <int OP>
OT_INLINE void bwRow(const float* g, const float* t, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = bwop<OP>(g[i], t[i]);
}
OT_CLONES void bwDispatch(int op, const float* g, const float* t, float* y, long n) {
  switch (op) {
    case B_TANH: bwRow<B_TANH>(g, t, y, n); break;
    case B_SIGMOID: bwRow<B_SIGMOID>(g, t, y, n); break;
    case B_SILU: bwRow<B_SILU>(g, t, y, n); break;
    case B_GELU_TANH: bwRow<B_GELU_TANH>(g, t, y, n); break;
    case B_GELU_ERF:
      for (long i = 0; i < n; i++) {
        float x = t[i];
        y[i] = g[i] * (0.5f * (1.0f + std::erf(x * kSqrt1_2)) + x * kInvSqrt2Pi * fexp(-0.5f * x * x));
      }
      break;
  }
}

// Sum of n floats in double, 8 independent lanes (vectorizes; deterministic order).
OT_CLONES double sumRow(const float* x, long n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l];
  double s = 0;
  for (; i < n; i++) s += (double)x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s;
}
OT_CLONES void addRowD(double* acc, const float* x, long n) {
  for (long i = 0; i < n; i++) acc[i] += (double)x[i];
}
// First extreme, NaN wins (the first NaN).
void extremeRow(const float* x, long n, long stride, bool isMax, float* v, int32_t* idx) {
  float best = x[0];
  long at = 0;
  if (best == best) {
    for (long j = 1; j < n; j++) {
      float u = x[j * stride];
      if (u != u) {
        best = u;
        at = j;
        break;
      }
      if (isMax ? u > best : u < best) {
        best = u;
        at = j;
      }
    }
  }
  *v = best;
  *idx = (int32_t)at;
}

// float16 <-> float32, bit-exact with c10/FP16 (fp16_ieee_from_fp32_value / fp16_ieee_to_fp32_value).
OT_INLINE uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
OT_INLINE float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
OT_INLINE uint16_t toHalf(float f) {
  const float scaleToInf = bitsf(0x77800000u), scaleToZero = bitsf(0x08800000u);
  float base = (std::fabs(f) * scaleToInf) * scaleToZero;
  uint32_t w = fbits(f), shl1 = w << 1, sign = w & 0x80000000u, bias = shl1 & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bitsf((bias >> 1) + 0x07800000u) + base;
  uint32_t bits = fbits(base);
  uint32_t nonsign = ((bits >> 13) & 0x00007c00u) + (bits & 0x00000fffu);
  return (uint16_t)((sign >> 16) | (shl1 > 0xff000000u ? 0x7e00u : nonsign));
}
OT_INLINE float fromHalf(uint16_t h) {
  uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
  const uint32_t expOffset = 0xe0u << 23;
  const float expScale = bitsf(0x7800000u);
  float normal = bitsf((two_w >> 4) + expOffset) * expScale;
  const uint32_t magicMask = 126u << 23;
  float denorm = bitsf((two_w >> 17) | magicMask) - 0.5f;
  uint32_t r = two_w < (1u << 27) ? fbits(denorm) : fbits(normal);
  return bitsf(sign | r);
}
OT_CLONES void toHalfRange(const float* x, uint16_t* y, long n) {
  for (long i = 0; i < n; i++) y[i] = toHalf(x[i]);
}
OT_CLONES void fromHalfRange(const uint16_t* x, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = fromHalf(x[i]);
}

}  // namespace

void binaryRow(int op, const float* a, int sa, const float* b, int sb, void* y, long n) {
  binDispatch(op, a, sa, b, sb, y, n);
}

void binary(int op, const float* a, long aLen, const float* b, long bLen, void* y, long n, long inner) {
  // aLen/bLen: n (full), inner (one row repeated) or 1 (scalar).
  const bool cmp = op >= CMP_EQ;
  auto rowPtr = [&](const float* p, long len, long r) { return len == n ? p + r * inner : p; };
  if (aLen == n && bLen == n) inner = n;  // one long row
  if ((aLen == 1 || aLen == n) && (bLen == 1 || bLen == n)) inner = n;
  long rows = n / inner;
  if (rows == 1) {
    int sa = aLen != 1, sb = bLen != 1;
    parallelChunks(n, 32768, [&](long s, long e) {
      void* yo = cmp ? (void*)(static_cast<uint8_t*>(y) + s) : (void*)(static_cast<float*>(y) + s);
      binDispatch(op, sa ? a + s : a, sa, sb ? b + s : b, sb, yo, e - s);
    });
    return;
  }
  int sa = aLen != 1, sb = bLen != 1;
  parallelChunks(rows, std::max(1L, 32768 / std::max(1L, inner)), [&](long s, long e) {
    for (long r = s; r < e; r++) {
      void* yo = cmp ? (void*)(static_cast<uint8_t*>(y) + r * inner) : (void*)(static_cast<float*>(y) + r * inner);
      binDispatch(op, rowPtr(a, aLen, r), sa, rowPtr(b, bLen, r), sb, yo, inner);
    }
  });
}

void unary(int op, const float* x, float* y, long n, float p, float q) {
  parallelChunks(n, 16384, [&](long s, long e) { unDispatch(op, x + s, y + s, e - s, p, q); });
}

void unaryBackward(int op, const float* g, const float* t, float* y, long n) {
  parallelChunks(n, 16384, [&](long s, long e) { bwDispatch(op, g + s, t + s, y + s, e - s); });
}

void reduce(int op, const float* x, float* out, int32_t* idx, long outer, long red, long inner) {
  const bool ext = op == R_MAX || op == R_MIN;
  const bool isMax = op == R_MAX;
  const double scale = op == R_MEAN ? 1.0 / (double)red : 1.0;
  if (inner == 1 && outer == 1 && !ext) {  // full reduction: fixed partition, partial sums combined in order
    long parts = std::max(1L, std::min((long)numThreads() * 4, red / 65536));
    long step = (red + parts - 1) / parts;
    std::vector<double> part(parts, 0.0);
    parallelFor(parts, [&](long t, int) {
      long a = t * step, b = std::min(red, a + step);
      if (a < b) part[t] = sumRow(x + a, b - a);
    });
    double s = 0;
    for (double v : part) s += v;
    out[0] = (float)(s * scale);
    return;
  }
  if (inner == 1) {
    parallelChunks(outer, std::max(1L, 16384 / std::max(1L, red)), [&](long a, long b) {
      for (long r = a; r < b; r++) {
        if (ext)
          extremeRow(x + r * red, red, 1, isMax, out + r, idx + r);
        else
          out[r] = (float)(sumRow(x + r * red, red) * scale);
      }
    });
    return;
  }
  // inner > 1: columns of each outer slice; split over (outer, column chunks).
  const long colChunk = std::max(64L, inner / std::max(1L, (long)numThreads() * 4 / std::max(1L, outer) + 1));
  parallelColumnTiles(outer, inner, colChunk, [&](long o, long c0, long c1) {
    const float* xs = x + o * red * inner;
    if (ext) {
      for (long c = c0; c < c1; c++) extremeRow(xs + c, red, inner, isMax, out + o * inner + c, idx + o * inner + c);
      return;
    }
    std::vector<double> acc(c1 - c0, 0.0);
    for (long r = 0; r < red; r++) addRowD(acc.data(), xs + r * inner + c0, c1 - c0);
    for (long c = c0; c < c1; c++) out[o * inner + c] = (float)(acc[c - c0] * scale);
  });
}

void castF32ToF16(const float* x, uint16_t* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) { toHalfRange(x + a, y + a, b - a); });
}
void castF16ToF32(const uint16_t* x, float* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) { fromHalfRange(x + a, y + a, b - a); });
}
void castF64ToF32(const double* x, float* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) {
    for (long i = a; i < b; i++) y[i] = (float)x[i];
  });
}
void castF32ToF64(const float* x, double* y, long n) {
  parallelChunks(n, 32768, [&](long a, long b) {
    for (long i = a; i < b; i++) y[i] = (double)x[i];
  });
}

}  // namespace ot
