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
// One run of a binary op (no threading): sa/sb 1 = a vector of n, 0 = a scalar.
void binaryRow(int op, const float* a, int sa, const float* b, int sb, void* y, long n);
// General broadcast (extra.cc): y over `shape` (nd dims, row-major), each operand read at its element strides
// (0 = broadcast dim; the last dim's strides are 0 or 1).
void binaryBroadcast(int op, const float* a, const long* sa, const float* b, const long* sb, void* y,
                     const long* shape, int nd);
// y = cond ? a : b over `shape`, operands at their strides as in binaryBroadcast (32-bit elements).
void whereBroadcast(const uint8_t* c, const long* sc, const uint32_t* a, const long* sa, const uint32_t* b,
                    const long* sb, uint32_t* y, const long* shape, int nd);
// Along dim of size `size` of x viewed as [outer, size, inner]: dx = y * (g - sum(g * y)) (softmax) or
// dx = g - exp(y) * sum(g) (logSoftmax); sums in double.
void softmaxBackward(const float* g, const float* y, float* dx, long outer, long size, long inner, bool log);
// out[outer, inner] = log(sum(exp(x - m))) + m over the `red` dim of x [outer, red, inner] (m: the max, NaN wins).
void logsumexp(const float* x, float* out, long outer, long red, long inner);
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
