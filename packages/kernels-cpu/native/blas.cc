// The GEMM entry point (OpenBLAS panels on our pool, or the packed GEMM of gemm.cc), BLAS threads and the ISA name.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "gemm.h"
#include "kernels.h"
#include "pool.h"

extern "C" void openblas_set_num_threads(int);

namespace ot {

const char* isaName() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "avx512-bf16";
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2-fma";
  return "scalar";
}

void blasThreads(int n) { openblas_set_num_threads(n); }

// GEMM implementations: 0 = OpenBLAS on our own pool, one output panel per thread (rows, or columns when N > M;
// multiples of 16), each a single-threaded cblas_sgemm; 1 = our BLIS-style packed SIMD GEMM (gemm.cc: one team
// region, B packed once and shared, depth blocks up to 1024); 2 (default) = packed where it measured faster than
// OpenBLAS (PyTorch's own GEMM) on this 2-core EPYC: K <= 1536 (1024^3 1.0-1.04x, the training step's K = 512
// and 1408 shapes 1.0-1.2x), panels for deeper K (K = 2048: packed 0.93-1.07x, not ahead). bench/results/cpu-gemm-*.md.
// OMNITRAIN_GEMM=packed|openblas pins one (setGemmImpl from JS).
static std::atomic<int> gGemmImpl{-1};
int gemmImpl() {
  int v = gGemmImpl.load();
  if (v < 0) {
    const char* e = std::getenv("OMNITRAIN_GEMM");
    v = !e ? 2 : std::strcmp(e, "packed") == 0 ? 1 : std::strcmp(e, "openblas") == 0 ? 0 : 2;
    gGemmImpl.store(v);
  }
  return v;
}
void setGemmImpl(int impl) { gGemmImpl.store(impl == 0 || impl == 1 ? impl : 2); }

static void gemm1(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta,
                  int lda, int ldb, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
              lda, B, ldb, beta, C, ldc);
}

void gemm(const float* A, const float* B, float* C, int M, int N, int K, bool transA, bool transB, float beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0) std::memset(C, 0, sizeof(float) * (size_t)M * N);
    else if (beta != 1)
      for (size_t i = 0; i < (size_t)M * N; i++) C[i] *= beta;
    return;
  }
  const int impl = gemmImpl();
  double flops = 2.0 * M * N * K;
  const bool packed = impl == 1 || (impl == 2 && K <= kPackedGemmMaxK && flops >= 2e6);
  if (packed && M >= 4 && N >= 4 && packedGemm(A, B, C, M, N, K, transA, transB, beta)) return;
  int lda = transA ? M : K, ldb = transB ? K : N;
  int T = numThreads();
  if (T == 1 || flops < 2e6) {
    gemm1(A, B, C, M, N, K, transA, transB, beta, lda, ldb, N);
    return;
  }
  // One panel per thread along the larger output dimension (multiples of 16); OMNITRAIN_GEMM_PANELS=k gives k per
  // thread (dynamically scheduled: more robust when other processes take cores, but each panel re-packs B).
  static const int perThread = [] {
    const char* e = std::getenv("OMNITRAIN_GEMM_PANELS");
    int k = e ? std::atoi(e) : 1;
    return k >= 1 && k <= 16 ? k : 1;
  }();
  bool byRows = M >= N;
  int dim = byRows ? M : N;
  long parts = std::min<long>((long)T * perThread, std::max(1, dim / 16));
  int step = ((dim + parts - 1) / parts + 15) / 16 * 16;
  parts = (dim + step - 1) / step;
  parallelFor(parts, [&](long p, int) {
    int a = (int)p * step, len = std::min(step, dim - a);
    if (len <= 0) return;
    if (byRows) {
      const float* Ap = transA ? A + a : A + (long)a * lda;
      gemm1(Ap, B, C + (long)a * N, len, N, K, transA, transB, beta, lda, ldb, N);
    } else {
      const float* Bp = transB ? B + (long)a * ldb : B + a;
      gemm1(A, Bp, C + a, M, len, K, transA, transB, beta, lda, ldb, N);
    }
  });
}

}  // namespace ot
