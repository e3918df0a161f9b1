// Native float32 kernels, defined by family: blas.cc (the GEMM entry), norms.cc, fused.cc, loss.cc, casts.cc (and
// the FMA peak), attention.cc. SIMD via GCC target_clones (AVX-512, AVX2+FMA, scalar); threads via pool.h.
#pragma once
#include <cstdint>

namespace ot {
const char* isaName();
void gemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta);
// GEMM implementation: 0 = OpenBLAS panels on our pool, 1 = our packed SIMD GEMM (gemm.cc), 2 = automatic
// (default): packed for K <= kPackedGemmMaxK, else OpenBLAS panels (blas.cc says why).
constexpr int kPackedGemmMaxK = 1536;
int gemmImpl();
void setGemmImpl(int impl);
void rmsNormFwd(const float* x, const float* w, float* y, float* rstd, long rows, int d, float eps);
void rmsNormBwd(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw, long rows, int d);
void layerNormFwd(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, long rows, int d,
                  float eps);
void layerNormBwd(const float* gy, const float* x, const float* mean, const float* rstd, const float* w, float* gx,
                  float* gw, float* gb, long rows, int d);
void swigluFwd(const float* g, const float* u, float* y, long n);
void swigluBwd(const float* dy, const float* g, const float* u, float* gg, float* gu, long n);
// cosSinBf16: cos and sin rounded to bfloat16 before use (Hugging Face's cos.to(x.dtype) for bfloat16 x).
void rope(const float* x, const int32_t* pos, const float* invFreq, float* y, long rows, int h, int d, float sign,
          bool cosSinBf16);
void add(const float* a, const float* b, float* y, long n);
void addInplace(float* d, const float* s, float alpha, long n, bool scalarSrc);
void mulInplace(float* d, float v, long n);
void adamw(float* p, const float* g, float* m, float* v, long n, double lr, double b1, double b2, double eps, double wd,
           double step, bool maximize);
void embeddingFwd(const int32_t* ids, const float* w, float* out, long n, int hidden);
void embeddingBwd(const int32_t* ids, const float* g, float* dw, long n, int hidden, long vocab);
// Cross entropy: lse per row; rowLoss (double) per row (0 for ignored). Returns the active-row count.
long ceFwd(const float* logits, const int32_t* labels, float* lse, double* rowLoss, long n, long V, int ignoreIndex);
void ceBwd(const float* logits, const int32_t* labels, const float* lse, const double* scales, float* out, long n, long V);
long flceFwd(const float* h, const float* w, const int32_t* labels, float* lse, double* rowLoss, long n, int dim, long V,
             int ignoreIndex, long chunk);
void flceBwd(const float* h, const float* w, const int32_t* labels, const float* lse, const double* scales, float* gh,
             float* gw, long n, int dim, long V, long chunk);
void softmaxFwd(const float* x, float* y, long rows, long d, bool log);
void castF32ToBf16(const float* x, uint16_t* y, long n);
void castBf16ToF32(const uint16_t* x, float* y, long n);
double fmaPeak(int threads, double seconds);
void attentionFwd(const float* q, const float* k, const float* v, float* o, float* lse, const int32_t* seg, int nseg,
                  int hq, int hkv, int d, float scale, bool causal);
// Keys per block of attentionFwd's online softmax (default 2048; <= 0 restores it).
void setAttentionKeyBlock(int keys);
void attentionBwd(const float* q, const float* k, const float* v, const float* lse, const float* go, float* dq, float* dk,
                  float* dv, const int32_t* seg, int nseg, int hq, int hkv, int d, float scale, bool causal);
// Run BLAS single-threaded inside our own parallel regions.
void blasThreads(int n);
}  // namespace ot
