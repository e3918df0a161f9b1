// Elementwise, reduction and cast kernels (float32; see ops.cc). Op codes are shared with src/kernels.ts.
#pragma once
#include <cstdint>

namespace ot {
enum BinOp { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN, CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };
enum UnOp {
  U_NEG,
  U_ABS,
  U_SQUARE,
  U_RELU,
  U_EXP,
  U_LOG,
  U_SQRT,
  U_RSQRT,
  U_TANH,
  U_SIGMOID,
  U_SILU,
  U_GELU_ERF,
  U_GELU_TANH,
  U_POW,
  U_CLAMP
};
enum BwOp { B_TANH, B_SIGMOID, B_SILU, B_GELU_ERF, B_GELU_TANH };
enum RedOp { R_SUM, R_MEAN, R_MAX, R_MIN };

// y (float32, or uint8 for comparisons) [n] = a op b; aLen/bLen are n, `inner` (a row repeated) or 1 (a scalar).
void binary(int op, const float* a, long aLen, const float* b, long bLen, void* y, long n, long inner);
// y = f(x); p, q: pow exponent, clamp bounds.
void unary(int op, const float* x, float* y, long n, float p, float q);
// y = g * f'(t) (t: the saved output for tanh/sigmoid, the input otherwise).
void unaryBackward(int op, const float* g, const float* t, float* y, long n);
// x as [outer, red, inner] -> out [outer, inner] (sum/mean in double; max/min: first extreme, NaN wins, idx).
void reduce(int op, const float* x, float* out, int32_t* idx, long outer, long red, long inner);
void castF32ToF16(const float* x, uint16_t* y, long n);
void castF16ToF32(const uint16_t* x, float* y, long n);
void castF64ToF32(const double* x, float* y, long n);
void castF32ToF64(const float* x, double* y, long n);
}  // namespace ot
