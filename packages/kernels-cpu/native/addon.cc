// N-API bindings: every array argument is a typed-array view of a tensor's own storage (no copies).
#include <napi.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "gemm.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "movement.h"
#include "ops.h"
#include "pool.h"

namespace {
template <class T>
T* P(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}
// A fresh output buffer (not yet touched) of several MiB: ask for transparent huge pages on its 2 MiB-aligned
// interior, so the first write faults in 2 MiB at a time instead of 4 KiB (a fresh 4 MiB tensor otherwise costs
// ~1 ms of page faults, 7% of a 1024^3 GEMM). Only a hint: no effect where THP is off or the pages exist already.
void hugePageHint(void* p, size_t bytes) {
  const uintptr_t huge = 2u << 20;
  if (bytes < 2 * huge) return;
  uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (e > a) madvise((void*)a, e - a, MADV_HUGEPAGE);
}
double D(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
long L(const Napi::CallbackInfo& info, size_t i) { return (long)info[i].As<Napi::Number>().Int64Value(); }
bool B(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", ot::isaName());
  o.Set("threads", ot::numThreads());
  o.Set("blas", "openblas");
  const int impl = ot::gemmImpl();
  o.Set("gemm", impl == 1   ? std::string("packed ") + ot::packedGemmIsa()
                : impl == 0 ? std::string("openblas panels")
                            : std::string("packed ") + ot::packedGemmIsa() + " for K <= " +
                                  std::to_string(ot::kPackedGemmMaxK) + ", else openblas panels");
  o.Set("gemmBf16", ot::gemmBf16Isa());
  Napi::Object runs = Napi::Object::New(info.Env());
  runs.Set("hardware", ot::gemmBf16Runs(0));
  runs.Set("emulated", ot::gemmBf16Runs(1));
  o.Set("gemmBf16Runs", runs);
  return o;
}
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  ot::setThreads((int)L(info, 0));
  return info.Env().Undefined();
}
// gemm(A, B, C, M, N, K, transA, transB, offA: Float64Array, offB: Float64Array)  (element offsets per batch)
Napi::Value BlasThreads(const Napi::CallbackInfo& info) {
  ot::blasThreads((int)L(info, 0));
  return info.Env().Undefined();
}
Napi::Value SetGemmImpl(const Napi::CallbackInfo& info) {
  ot::setGemmImpl((int)L(info, 0));
  return info.Env().Undefined();
}
Napi::Value SetPackedGemmIsa(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ot::setPackedGemmIsa((int)L(info, 0)));
}
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const float* A = P<float>(info, 0);
  const float* Bm = P<float>(info, 1);
  float* C = P<float>(info, 2);
  int M = (int)L(info, 3), N = (int)L(info, 4), K = (int)L(info, 5);
  bool ta = B(info, 6), tb = B(info, 7);
  const double* oa = P<double>(info, 8);
  const double* ob = P<double>(info, 9);
  long batch = info[8].As<Napi::TypedArray>().ElementLength();
  float beta = info.Length() > 10 && info[10].IsNumber() ? (float)D(info, 10) : 0.0f;
  if (beta == 0.0f) hugePageHint(C, sizeof(float) * (size_t)batch * M * N);
  for (long p = 0; p < batch; p++)
    ot::gemm(A + (long)oa[p], Bm + (long)ob[p], C + p * (long)M * N, M, N, K, ta, tb, beta);
  return info.Env().Undefined();
}
// gemmBf16(A: Uint16Array, B: Uint16Array, C: Float32Array, M, N, K, transA, transB, offA, offB, mode) -> boolean:
// C[p] = op(A + offA[p]) op(B + offB[p]) in float32 for every batch entry p (offsets in elements, as gemm).
// false: this mode has no kernel here (mode 0 without AVX-512 BF16) and nothing was written.
Napi::Value GemmBf16(const Napi::CallbackInfo& info) {
  const uint16_t* A = P<uint16_t>(info, 0);
  const uint16_t* Bm = P<uint16_t>(info, 1);
  float* C = P<float>(info, 2);
  int M = (int)L(info, 3), N = (int)L(info, 4), K = (int)L(info, 5);
  bool ta = B(info, 6), tb = B(info, 7);
  const double* oa = P<double>(info, 8);
  const double* ob = P<double>(info, 9);
  long batch = info[8].As<Napi::TypedArray>().ElementLength();
  int mode = (int)L(info, 10);
  hugePageHint(C, sizeof(float) * (size_t)batch * M * N);
  for (long p = 0; p < batch; p++)
    if (!ot::gemmBf16(A + (long)oa[p], Bm + (long)ob[p], C + p * (long)M * N, M, N, K, ta, tb, mode))
      return Napi::Boolean::New(info.Env(), false);
  return Napi::Boolean::New(info.Env(), true);
}
Napi::Value RmsNormFwd(const Napi::CallbackInfo& info) {
  ot::rmsNormFwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), L(info, 4), (int)L(info, 5),
                 (float)D(info, 6));
  return info.Env().Undefined();
}
Napi::Value RmsNormBwd(const Napi::CallbackInfo& info) {
  ot::rmsNormBwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                 P<float>(info, 5), L(info, 6), (int)L(info, 7));
  return info.Env().Undefined();
}
Napi::Value LayerNormFwd(const Napi::CallbackInfo& info) {
  ot::layerNormFwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                   P<float>(info, 5), L(info, 6), (int)L(info, 7), (float)D(info, 8));
  return info.Env().Undefined();
}
Napi::Value LayerNormBwd(const Napi::CallbackInfo& info) {
  ot::layerNormBwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                   P<float>(info, 5), P<float>(info, 6), P<float>(info, 7), L(info, 8), (int)L(info, 9));
  return info.Env().Undefined();
}
Napi::Value SwigluFwd(const Napi::CallbackInfo& info) {
  ot::swigluFwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3));
  return info.Env().Undefined();
}
Napi::Value SwigluBwd(const Napi::CallbackInfo& info) {
  ot::swigluBwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                L(info, 5));
  return info.Env().Undefined();
}
Napi::Value Rope(const Napi::CallbackInfo& info) {
  ot::rope(P<float>(info, 0), P<int32_t>(info, 1), P<float>(info, 2), P<float>(info, 3), L(info, 4), (int)L(info, 5),
           (int)L(info, 6), (float)D(info, 7), info.Length() > 8 && B(info, 8));
  return info.Env().Undefined();
}
Napi::Value Add(const Napi::CallbackInfo& info) {
  ot::add(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3));
  return info.Env().Undefined();
}
Napi::Value AddInplace(const Napi::CallbackInfo& info) {
  ot::addInplace(P<float>(info, 0), P<float>(info, 1), (float)D(info, 2), L(info, 3), B(info, 4));
  return info.Env().Undefined();
}
Napi::Value MulInplace(const Napi::CallbackInfo& info) {
  ot::mulInplace(P<float>(info, 0), (float)D(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value Adamw(const Napi::CallbackInfo& info) {
  ot::adamw(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), L(info, 4), D(info, 5), D(info, 6),
            D(info, 7), D(info, 8), D(info, 9), D(info, 10), B(info, 11));
  return info.Env().Undefined();
}
Napi::Value EmbeddingFwd(const Napi::CallbackInfo& info) {
  ot::embeddingFwd(P<int32_t>(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3), (int)L(info, 4));
  return info.Env().Undefined();
}
Napi::Value EmbeddingBwd(const Napi::CallbackInfo& info) {
  ot::embeddingBwd(P<int32_t>(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3), (int)L(info, 4), L(info, 5));
  return info.Env().Undefined();
}
Napi::Value CeFwd(const Napi::CallbackInfo& info) {
  long c = ot::ceFwd(P<float>(info, 0), P<int32_t>(info, 1), P<float>(info, 2), P<double>(info, 3), L(info, 4),
                     L(info, 5), (int)L(info, 6));
  return Napi::Number::New(info.Env(), (double)c);
}
Napi::Value CeBwd(const Napi::CallbackInfo& info) {
  ot::ceBwd(P<float>(info, 0), P<int32_t>(info, 1), P<float>(info, 2), P<double>(info, 3), P<float>(info, 4), L(info, 5),
            L(info, 6));
  return info.Env().Undefined();
}
Napi::Value FlceFwd(const Napi::CallbackInfo& info) {
  long c = ot::flceFwd(P<float>(info, 0), P<float>(info, 1), P<int32_t>(info, 2), P<float>(info, 3), P<double>(info, 4),
                       L(info, 5), (int)L(info, 6), L(info, 7), (int)L(info, 8), L(info, 9));
  return Napi::Number::New(info.Env(), (double)c);
}
Napi::Value FlceBwd(const Napi::CallbackInfo& info) {
  ot::flceBwd(P<float>(info, 0), P<float>(info, 1), P<int32_t>(info, 2), P<float>(info, 3), P<double>(info, 4),
              P<float>(info, 5), P<float>(info, 6), L(info, 7), (int)L(info, 8), L(info, 9), L(info, 10));
  return info.Env().Undefined();
}
Napi::Value SoftmaxFwd(const Napi::CallbackInfo& info) {
  ot::softmaxFwd(P<float>(info, 0), P<float>(info, 1), L(info, 2), L(info, 3), B(info, 4));
  return info.Env().Undefined();
}
Napi::Value CastToBf16(const Napi::CallbackInfo& info) {
  ot::castF32ToBf16(P<float>(info, 0), P<uint16_t>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value CastFromBf16(const Napi::CallbackInfo& info) {
  ot::castBf16ToF32(P<uint16_t>(info, 0), P<float>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
// binary(op, a, aLen, b, bLen, y, n, inner)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  ot::binary((int)L(info, 0), P<float>(info, 1), L(info, 2), P<float>(info, 3), L(info, 4), P<void>(info, 5), L(info, 6),
             L(info, 7));
  return info.Env().Undefined();
}
// unary(op, x, y, n, p, q)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  ot::unary((int)L(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3), (float)D(info, 4), (float)D(info, 5));
  return info.Env().Undefined();
}
// unaryBackward(op, g, t, y, n)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  ot::unaryBackward((int)L(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), L(info, 4));
  return info.Env().Undefined();
}
// reduce(op, x, out, idx | null, outer, red, inner)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  ot::reduce((int)L(info, 0), P<float>(info, 1), P<float>(info, 2), P<int32_t>(info, 3), L(info, 4), L(info, 5),
             L(info, 6));
  return info.Env().Undefined();
}
// A Float64Array of integers as longs (shapes, strides).
std::vector<long> Longs(const Napi::CallbackInfo& info, size_t i) {
  Napi::Float64Array a = info[i].As<Napi::Float64Array>();
  std::vector<long> v(a.ElementLength());
  for (size_t k = 0; k < v.size(); k++) v[k] = (long)a[k];
  return v;
}
// binaryBroadcast(op, a, b, y, shape, strideA, strideB)  (Float64Array shape/strides, element units)
Napi::Value BinaryBroadcast(const Napi::CallbackInfo& info) {
  std::vector<long> shape = Longs(info, 4), sa = Longs(info, 5), sb = Longs(info, 6);
  ot::binaryBroadcast((int)L(info, 0), P<float>(info, 1), sa.data(), P<float>(info, 2), sb.data(), P<void>(info, 3),
                      shape.data(), (int)shape.size());
  return info.Env().Undefined();
}
// whereBroadcast(cond, a, b, y, shape, strideC, strideA, strideB)
Napi::Value WhereBroadcast(const Napi::CallbackInfo& info) {
  std::vector<long> shape = Longs(info, 4), sc = Longs(info, 5), sa = Longs(info, 6), sb = Longs(info, 7);
  ot::whereBroadcast(P<uint8_t>(info, 0), sc.data(), P<uint32_t>(info, 1), sa.data(), P<uint32_t>(info, 2), sb.data(),
                     P<uint32_t>(info, 3), shape.data(), (int)shape.size());
  return info.Env().Undefined();
}
// Element size of a typed-array argument (1, 2, 4 or 8).
int ElemSize(const Napi::CallbackInfo& info, size_t i) {
  switch (info[i].As<Napi::TypedArray>().TypedArrayType()) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    default: return 8;  // float64, bigint64, biguint64
  }
}
// stridedCopy(src, dst, shape, strides) -> boolean  (src and dst typed arrays of one element size)
Napi::Value StridedCopy(const Napi::CallbackInfo& info) {
  std::vector<long> shape = Longs(info, 2), st = Longs(info, 3);
  bool ok = ot::stridedCopy(P<void>(info, 0), P<void>(info, 1), ElemSize(info, 0), shape.data(), (int)shape.size(),
                            st.data());
  return Napi::Boolean::New(info.Env(), ok);
}
// catCopy(src, dst, outer, chunk, row, offset)  (chunk, row, offset in elements of src)
Napi::Value CatCopy(const Napi::CallbackInfo& info) {
  const long es = ElemSize(info, 0);
  ot::catCopy(P<void>(info, 0), P<void>(info, 1), L(info, 2), L(info, 3) * es, L(info, 4) * es, L(info, 5) * es);
  return info.Env().Undefined();
}
// indexSelect(src, idx, dst, outer, size, n, inner) -> -1 or the first out-of-range position
Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  long r = ot::indexSelect(P<void>(info, 0), P<int32_t>(info, 1), P<void>(info, 2), ElemSize(info, 0), L(info, 3),
                           L(info, 4), L(info, 5), L(info, 6));
  return Napi::Number::New(info.Env(), (double)r);
}
// gather(src, idx, dst, indexShape, baseStrides, dimStride, size) -> -1, the first out-of-range position, or -2
Napi::Value Gather(const Napi::CallbackInfo& info) {
  std::vector<long> shape = Longs(info, 3), st = Longs(info, 4);
  long r = ot::gather(P<void>(info, 0), P<int32_t>(info, 1), P<void>(info, 2), ElemSize(info, 0), shape.data(),
                      (int)shape.size(), st.data(), L(info, 5), L(info, 6));
  return Napi::Number::New(info.Env(), (double)r);
}
// scatterAdd(out, idx, src, indexShape, dim, xStrides, srcStrides, size) -> -1, the first bad position, or -2
// (out: Float32Array or Float64Array already holding x; src of the same type)
Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  std::vector<long> shape = Longs(info, 3), xs = Longs(info, 5), ss = Longs(info, 6);
  const int es = ElemSize(info, 0);
  if ((es != 4 && es != 8) || ElemSize(info, 2) != es) return Napi::Number::New(info.Env(), -2);
  long r = ot::scatterAdd(P<void>(info, 0), P<int32_t>(info, 1), P<void>(info, 2), es == 8, shape.data(),
                          (int)shape.size(), (int)L(info, 4), xs.data(), ss.data(), L(info, 7));
  return Napi::Number::New(info.Env(), (double)r);
}
// maskCount(mask) -> number of set bytes
Napi::Value MaskCount(const Napi::CallbackInfo& info) {
  const long n = (long)info[0].As<Napi::TypedArray>().ElementLength();
  return Napi::Number::New(info.Env(), (double)ot::maskCount(P<uint8_t>(info, 0), n));
}
// maskedSelect(x, mask, dst) -> boolean  (dst holds maskCount(mask) elements)
Napi::Value MaskedSelect(const Napi::CallbackInfo& info) {
  const long n = (long)info[1].As<Napi::TypedArray>().ElementLength();
  return Napi::Boolean::New(info.Env(),
                            ot::maskedSelect(P<void>(info, 0), P<uint8_t>(info, 1), P<void>(info, 2), ElemSize(info, 0), n));
}
// maskedScatter(x, mask, src, dst) -> -1, the mask's count when src is too short (nothing written), or -2
Napi::Value MaskedScatter(const Napi::CallbackInfo& info) {
  const long n = (long)info[1].As<Napi::TypedArray>().ElementLength();
  const long srcLen = (long)info[2].As<Napi::TypedArray>().ElementLength();
  long r = ot::maskedScatter(P<void>(info, 0), P<uint8_t>(info, 1), P<void>(info, 2), srcLen, P<void>(info, 3),
                             ElemSize(info, 0), n);
  return Napi::Number::New(info.Env(), (double)r);
}
// softmaxBackward(g, y, dx, outer, size, inner, log)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  ot::softmaxBackward(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), L(info, 3), L(info, 4), L(info, 5),
                      B(info, 6));
  return info.Env().Undefined();
}
// logsumexp(x, out, outer, red, inner)
Napi::Value Logsumexp(const Napi::CallbackInfo& info) {
  ot::logsumexp(P<float>(info, 0), P<float>(info, 1), L(info, 2), L(info, 3), L(info, 4));
  return info.Env().Undefined();
}
Napi::Value CastToF16(const Napi::CallbackInfo& info) {
  ot::castF32ToF16(P<float>(info, 0), P<uint16_t>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value CastFromF16(const Napi::CallbackInfo& info) {
  ot::castF16ToF32(P<uint16_t>(info, 0), P<float>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value CastF64ToF32(const Napi::CallbackInfo& info) {
  ot::castF64ToF32(P<double>(info, 0), P<float>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value CastF32ToF64(const Napi::CallbackInfo& info) {
  ot::castF32ToF64(P<float>(info, 0), P<double>(info, 1), L(info, 2));
  return info.Env().Undefined();
}
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ot::fmaPeak((int)L(info, 0), D(info, 1)));
}
// attentionFwd(q, k, v, o, lse, seg Int32Array [q0,k0,sq,sk]*, hq, hkv, d, scale, causal)
Napi::Value AttnFwd(const Napi::CallbackInfo& info) {
  int nseg = (int)(info[5].As<Napi::TypedArray>().ElementLength() / 4);
  ot::attentionFwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                   P<int32_t>(info, 5), nseg, (int)L(info, 6), (int)L(info, 7), (int)L(info, 8), (float)D(info, 9),
                   B(info, 10));
  return info.Env().Undefined();
}
Napi::Value SetAttentionKeyBlock(const Napi::CallbackInfo& info) {
  ot::setAttentionKeyBlock((int)L(info, 0));
  return info.Env().Undefined();
}
// attentionBwd(q, k, v, lse, gradOut, dq, dk, dv, seg, hq, hkv, d, scale, causal)
Napi::Value AttnBwd(const Napi::CallbackInfo& info) {
  int nseg = (int)(info[8].As<Napi::TypedArray>().ElementLength() / 4);
  ot::attentionBwd(P<float>(info, 0), P<float>(info, 1), P<float>(info, 2), P<float>(info, 3), P<float>(info, 4),
                   P<float>(info, 5), P<float>(info, 6), P<float>(info, 7), P<int32_t>(info, 8), nseg, (int)L(info, 9),
                   (int)L(info, 10), (int)L(info, 11), (float)D(info, 12), B(info, 13));
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ot::blasThreads(1);  // BLAS runs inside our pool's workers
#define FN(name, f) exports.Set(name, Napi::Function::New(env, f, name))
  FN("info", Info);
  FN("setThreads", SetThreads);
  FN("gemm", Gemm);
  FN("gemmBf16", GemmBf16);
  FN("blasThreads", BlasThreads);
  FN("setGemmImpl", SetGemmImpl);
  FN("setPackedGemmIsa", SetPackedGemmIsa);
  FN("rmsNormFwd", RmsNormFwd);
  FN("rmsNormBwd", RmsNormBwd);
  FN("layerNormFwd", LayerNormFwd);
  FN("layerNormBwd", LayerNormBwd);
  FN("swigluFwd", SwigluFwd);
  FN("swigluBwd", SwigluBwd);
  FN("rope", Rope);
  FN("add", Add);
  FN("addInplace", AddInplace);
  FN("mulInplace", MulInplace);
  FN("adamw", Adamw);
  FN("embeddingFwd", EmbeddingFwd);
  FN("embeddingBwd", EmbeddingBwd);
  FN("ceFwd", CeFwd);
  FN("ceBwd", CeBwd);
  FN("flceFwd", FlceFwd);
  FN("flceBwd", FlceBwd);
  FN("softmaxFwd", SoftmaxFwd);
  FN("castToBf16", CastToBf16);
  FN("castFromBf16", CastFromBf16);
  FN("fmaPeak", FmaPeak);
  FN("binary", Binary);
  FN("unary", Unary);
  FN("unaryBackward", UnaryBackward);
  FN("reduce", Reduce);
  FN("binaryBroadcast", BinaryBroadcast);
  FN("whereBroadcast", WhereBroadcast);
  FN("softmaxBackward", SoftmaxBackward);
  FN("logsumexp", Logsumexp);
  FN("castToF16", CastToF16);
  FN("castFromF16", CastFromF16);
  FN("castF64ToF32", CastF64ToF32);
  FN("castF32ToF64", CastF32ToF64);
  FN("attentionFwd", AttnFwd);
  FN("setAttentionKeyBlock", SetAttentionKeyBlock);
  FN("attentionBwd", AttnBwd);
  FN("stridedCopy", StridedCopy);
  FN("catCopy", CatCopy);
  FN("indexSelect", IndexSelect);
  FN("gather", Gather);
  FN("scatterAdd", ScatterAdd);
  FN("maskCount", MaskCount);
  FN("maskedSelect", MaskedSelect);
  FN("maskedScatter", MaskedScatter);
#undef FN
  return exports;
}
}  // namespace

NODE_API_MODULE(omnitrain_kernels_cpu, Init)
