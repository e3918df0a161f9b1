// The loop nest shared by the packed GEMMs (gemm.cc: float32; gemm_bf16.cc: bfloat16 k-pairs), in BLIS order:
// jc (column blocks of at most 4096) > pc (depth blocks of equal size, a multiple of 8, at most kcMax: no short
// last block paying a full pass over C) > on the pool: the B block packed in parallel, then (row block x column
// range) tasks, each packing its own A block and running its macro-kernel. About 4 row tasks per thread (dynamic
// scheduling evens out a busy machine); few row blocks (small M) split columns too, so every thread has work.
// Problems under 4 MFLOP stay on the calling thread (waking the pool costs more than it saves).
#pragma once
#include <algorithm>

#include "pool.h"

namespace ot {

/** Widest column block (multiple of NR): the whole N when it fits, as one B panel of kc x NC in L3. */
inline int gemmColumnBlock(int N, int NR) { return std::min(std::max(NR, (N + NR - 1) / NR * NR), 4096); }

/**
 * packB(p0, kc, j0, ja, jb): pack depth [p0, p0+kc) x columns [j0+ja, j0+jb) of B into the shared block;
 * task(i0, m, p0, kc, j0, ja, jb): pack rows [i0, i0+m) of A for that depth block and multiply by columns [ja, jb).
 */
template <class PackB, class Task>
void packedGemmLoops(int M, int N, int K, int MR, int NR, int mcMax, int kcMax, PackB&& packB, Task&& task) {
  const int T = 2.0 * M * N * K < 4e6 ? 1 : numThreads();
  const int NC = gemmColumnBlock(N, NR);
  const int mPanels = (M + MR - 1) / MR;
  int rowTasks = std::max(1, std::min(mPanels, 4 * T));
  int mc = (mPanels + rowTasks - 1) / rowTasks * MR;
  if (mc > mcMax) mc = mcMax;
  rowTasks = (M + mc - 1) / mc;
  const int kBlocks = (K + kcMax - 1) / kcMax;
  const int kcStep = std::min(kcMax, ((K + kBlocks - 1) / kBlocks + 7) / 8 * 8);
  for (int j0 = 0; j0 < N; j0 += NC) {
    const int nc = std::min(NC, N - j0);
    const int nPanels = (nc + NR - 1) / NR;
    int colTasks = T == 1 ? 1 : std::max(1, std::min(nPanels, (4 * T + rowTasks - 1) / rowTasks));
    const int panelsPerCol = (nPanels + colTasks - 1) / colTasks;
    colTasks = (nPanels + panelsPerCol - 1) / panelsPerCol;
    for (int p0 = 0; p0 < K; p0 += kcStep) {
      const int kc = std::min(kcStep, K - p0);
      const long bTasks = std::min<long>(nPanels, 4L * T);
      const int bStep = (nPanels + (int)bTasks - 1) / (int)bTasks;
      parallelOrSerial(T, bTasks, [&](long t, int) {
        const int pa = (int)t * bStep, pb = std::min(nPanels, pa + bStep);
        if (pa < pb) packB(p0, kc, j0, pa * NR, std::min(nc, pb * NR));
      });
      parallelOrSerial(T, (long)rowTasks * colTasks, [&](long t, int) {
        const int ri = (int)(t / colTasks), ci = (int)(t % colTasks);
        const int i0 = ri * mc, m = std::min(mc, M - i0);
        const int ja = ci * panelsPerCol * NR, jb = std::min(nc, ja + panelsPerCol * NR);
        if (m > 0 && ja < jb) task(i0, m, p0, kc, j0, ja, jb);
      });
    }
  }
}

}  // namespace ot
