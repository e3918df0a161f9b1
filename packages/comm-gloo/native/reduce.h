// Element-wise reduction functions for Gloo (signature c = a op b, c may alias a or b),
// including bfloat16 stored as uint16 bit patterns, rounded like PyTorch's c10::BFloat16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

namespace omnitrain {

enum class DType { F32 = 0, BF16 = 1, I32 = 2, F64 = 3, F16 = 4, U8 = 5 };
enum class ReduceOp { Sum = 0, Avg = 1, Max = 2, Min = 3 };

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

inline size_t elementSize(DType d) {
  switch (d) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: return 8;
    case DType::BF16: case DType::F16: return 2;
    case DType::U8: return 1;
  }
  return 1;
}

inline float bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// c10::detail::round_to_nearest_even: NaN -> 0x7FC0, otherwise round half to even.
inline uint16_t floatToBf16(float f) {
  if (f != f) return 0x7FC0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t bias = ((u >> 16) & 1) + 0x7FFF;
  return static_cast<uint16_t>((u + bias) >> 16);
}

template <typename T>
void sumFn(void* c, const void* a, const void* b, size_t n) {
  T* C = static_cast<T*>(c);
  const T* A = static_cast<const T*>(a);
  const T* B = static_cast<const T*>(b);
  for (size_t i = 0; i < n; i++) C[i] = A[i] + B[i];
}
// std::max / std::min semantics, as gloo::max / gloo::min (what torch.distributed uses on Gloo).
template <typename T>
void maxFn(void* c, const void* a, const void* b, size_t n) {
  T* C = static_cast<T*>(c);
  const T* A = static_cast<const T*>(a);
  const T* B = static_cast<const T*>(b);
  for (size_t i = 0; i < n; i++) C[i] = (A[i] < B[i]) ? B[i] : A[i];
}
template <typename T>
void minFn(void* c, const void* a, const void* b, size_t n) {
  T* C = static_cast<T*>(c);
  const T* A = static_cast<const T*>(a);
  const T* B = static_cast<const T*>(b);
  for (size_t i = 0; i < n; i++) C[i] = (B[i] < A[i]) ? B[i] : A[i];
}
// int32 sums wrap around (two's complement) like PyTorch's int tensors instead of being UB.
inline void sumI32(void* c, const void* a, const void* b, size_t n) {
  int32_t* C = static_cast<int32_t*>(c);
  const int32_t* A = static_cast<const int32_t*>(a);
  const int32_t* B = static_cast<const int32_t*>(b);
  for (size_t i = 0; i < n; i++) {
    C[i] = static_cast<int32_t>(static_cast<uint32_t>(A[i]) + static_cast<uint32_t>(B[i]));
  }
}
inline void sumBf16(void* c, const void* a, const void* b, size_t n) {
  uint16_t* C = static_cast<uint16_t*>(c);
  const uint16_t* A = static_cast<const uint16_t*>(a);
  const uint16_t* B = static_cast<const uint16_t*>(b);
  for (size_t i = 0; i < n; i++) C[i] = floatToBf16(bf16ToFloat(A[i]) + bf16ToFloat(B[i]));
}
inline void maxBf16(void* c, const void* a, const void* b, size_t n) {
  uint16_t* C = static_cast<uint16_t*>(c);
  const uint16_t* A = static_cast<const uint16_t*>(a);
  const uint16_t* B = static_cast<const uint16_t*>(b);
  for (size_t i = 0; i < n; i++) C[i] = (bf16ToFloat(A[i]) < bf16ToFloat(B[i])) ? B[i] : A[i];
}
inline void minBf16(void* c, const void* a, const void* b, size_t n) {
  uint16_t* C = static_cast<uint16_t*>(c);
  const uint16_t* A = static_cast<const uint16_t*>(a);
  const uint16_t* B = static_cast<const uint16_t*>(b);
  for (size_t i = 0; i < n; i++) C[i] = (bf16ToFloat(B[i]) < bf16ToFloat(A[i])) ? B[i] : A[i];
}

// The reducer for (dtype, op); avg reduces with sum and divides afterwards (divideBy).
inline ReduceFn reducerFor(DType d, ReduceOp op) {
  bool mx = op == ReduceOp::Max, mn = op == ReduceOp::Min;
  switch (d) {
    case DType::F32: return mx ? maxFn<float> : mn ? minFn<float> : sumFn<float>;
    case DType::F64: return mx ? maxFn<double> : mn ? minFn<double> : sumFn<double>;
    case DType::I32: return mx ? maxFn<int32_t> : mn ? minFn<int32_t> : sumI32;
    case DType::BF16: return mx ? maxBf16 : mn ? minBf16 : sumBf16;
    default: return nullptr;
  }
}

// In place x /= n (avg): floats divide, bf16 divides in float and rounds, int32 truncates toward zero.
inline void divideBy(DType d, void* p, size_t count, int n) {
  switch (d) {
    case DType::F32: { float* x = static_cast<float*>(p); for (size_t i = 0; i < count; i++) x[i] /= static_cast<float>(n); break; }
    case DType::F64: { double* x = static_cast<double*>(p); for (size_t i = 0; i < count; i++) x[i] /= n; break; }
    case DType::I32: { int32_t* x = static_cast<int32_t*>(p); for (size_t i = 0; i < count; i++) x[i] /= n; break; }
    case DType::BF16: {
      uint16_t* x = static_cast<uint16_t*>(p);
      for (size_t i = 0; i < count; i++) x[i] = floatToBf16(bf16ToFloat(x[i]) / static_cast<float>(n));
      break;
    }
    default: break;
  }
}

}  // namespace omnitrain
