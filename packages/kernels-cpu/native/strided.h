// A threaded walk over a row-major index space whose operands are read or written at their own element strides:
// the general-broadcast binary ops and `where` (extra.cc) and the data-movement kernels (movement.cc) share it.
#pragma once
#include <algorithm>

#include "pool.h"

namespace ot {

/** Most dims a strided walk takes (callers merge contiguous dims first). */
constexpr int kMaxDims = 16;

// Walk the output [0, total) in parallel chunks of flat indices; `run(o, off, len)` gets each run of the last dim
// (or the part of it inside the chunk) with the K operands' element offsets at its start.
template <int K, class F>
void stridedRuns(const long* shape, int nd, const long* const* st, long grain, F&& run) {
  long total = 1;
  for (int d = 0; d < nd; d++) total *= shape[d];
  if (total == 0) return;
  if (nd == 0) {
    long off[K] = {};
    run(0L, off, 1L);
    return;
  }
  const long inner = shape[nd - 1];
  parallelChunks(total, grain, [&](long s, long e) {
    long idx[kMaxDims];
    long off[K];
    long rem = s;
    for (int d = nd - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    for (int k = 0; k < K; k++) {
      off[k] = 0;
      for (int d = 0; d < nd; d++) off[k] += idx[d] * st[k][d];
    }
    long o = s;
    while (o < e) {
      long len = std::min(inner - idx[nd - 1], e - o);
      run(o, off, len);
      o += len;
      idx[nd - 1] += len;
      for (int k = 0; k < K; k++) off[k] += len * st[k][nd - 1];
      if (idx[nd - 1] < inner) continue;
      idx[nd - 1] = 0;
      for (int k = 0; k < K; k++) off[k] -= inner * st[k][nd - 1];
      for (int d = nd - 2; d >= 0; d--) {
        idx[d]++;
        for (int k = 0; k < K; k++) off[k] += st[k][d];
        if (idx[d] < shape[d]) break;
        for (int k = 0; k < K; k++) off[k] -= shape[d] * st[k][d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace ot
