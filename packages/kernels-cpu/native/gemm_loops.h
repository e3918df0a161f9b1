// The loop nest shared by the packed GEMMs (gemm.cc: float32; gemm_bf16.cc: bfloat16 k-pairs), in BLIS order:
// jc (column blocks of at most ncMax) > pc (depth blocks of equal size, a multiple of 8, at most kcMax: no short
// last block paying a full pass over C) > the B block packed by all ranks, a barrier, then (row block x column
// range) tasks taken dynamically, each packing its own A block and running its macro-kernel.
// One parallelTeam runs the whole nest: the ranks meet at one spin barrier per depth block (B is double-buffered, so
// packing block b+1 cannot overwrite what a slower rank still reads of block b) instead of two pool wake-ups, which
// cost 15-50 us each on a VM. About 4 row tasks per thread, of equal size and a multiple of the thread count
// (dynamic scheduling evens out a busy machine); few row blocks (small M) split columns too. Problems under 4 MFLOP
// stay on the calling thread.
#pragma once
#include <algorithm>
#include <atomic>

#include "pool.h"

namespace ot {

/** Widest column block (multiple of NR, at most maxCols): the whole N when it fits, as one B panel of kc x NC in L3. */
inline int gemmColumnBlock(int N, int NR, int maxCols = 4096) {
  return std::min(std::max(NR, (N + NR - 1) / NR * NR), std::max(NR, maxCols / NR * NR));
}

/** Depth of each block when K is split into equal blocks (a multiple of 8) of at most kcMax. */
inline int gemmDepthStep(int K, int kcMax) {
  const int kBlocks = (K + kcMax - 1) / kcMax;
  return std::min(kcMax, ((K + kBlocks - 1) / kBlocks + 7) / 8 * 8);
}

/**
 * packB(buf, p0, kc, j0, ja, jb): pack depth [p0, p0+kc) x columns [j0+ja, j0+jb) of B into B buffer `buf` (0 or 1);
 * task(buf, i0, m, p0, kc, j0, ja, jb): pack rows [i0, i0+m) of A for that depth block and multiply by columns
 * [ja, jb) of B buffer `buf`.
 */
template <class PackB, class Task>
void packedGemmLoops(int M, int N, int K, int MR, int NR, int mcMax, int kcMax, int ncMax, PackB&& packB,
                     Task&& task) {
  const int T = 2.0 * M * N * K < 4e6 ? 1 : numThreads();
  const int NC = gemmColumnBlock(N, NR, ncMax);
  const int mPanels = (M + MR - 1) / MR, maxPanelsPerTask = std::max(1, mcMax / MR);
  // Row tasks of near-equal size (whole MR panels, at most mcMax rows), a multiple of T where there are enough
  // panels: with 15 tasks on 2 threads one thread idles for a whole task at every depth block's barrier.
  int rowTasks = std::max(std::min(mPanels, 4 * T), (mPanels + maxPanelsPerTask - 1) / maxPanelsPerTask);
  rowTasks = std::min(mPanels, (rowTasks + T - 1) / T * T);
  const int kcStep = gemmDepthStep(K, kcMax);
  SpinBarrier barrier(T);
  std::atomic<long> nextTask[2];
  nextTask[0].store(0);
  nextTask[1].store(0);
  auto nest = [&](int rank, int size) {
    int block = 0;
    for (int j0 = 0; j0 < N; j0 += NC) {
      const int nc = std::min(NC, N - j0);
      const int nPanels = (nc + NR - 1) / NR;
      int colTasks = size == 1 ? 1 : std::max(1, std::min(nPanels, (4 * size + rowTasks - 1) / rowTasks));
      const int panelsPerCol = (nPanels + colTasks - 1) / colTasks;
      colTasks = (nPanels + panelsPerCol - 1) / panelsPerCol;
      const long tasks = (long)rowTasks * colTasks;
      for (int p0 = 0; p0 < K; p0 += kcStep, block++) {
        const int kc = std::min(kcStep, K - p0), buf = block & 1;
        const int pa = (int)((long)nPanels * rank / size), pb = (int)((long)nPanels * (rank + 1) / size);
        if (pa < pb) packB(buf, p0, kc, j0, pa * NR, std::min(nc, pb * NR));
        if (size > 1) barrier.wait();  // size is T, or 1 when the pool was busy or this call nested (then no peers)
        // Every rank is past its tasks of block-1, so the counter of block+1 (same slot) can be reset; ranks
        // reach block+1's tasks only after the next barrier, which rank 0 passes after this store.
        if (rank == 0) nextTask[buf ^ 1].store(0, std::memory_order_relaxed);
        for (long t; (t = nextTask[buf].fetch_add(1)) < tasks;) {
          const int ri = (int)(t / colTasks), ci = (int)(t % colTasks);
          const int i0 = (int)((long)mPanels * ri / rowTasks) * MR;
          const int m = std::min(M, (int)((long)mPanels * (ri + 1) / rowTasks) * MR) - i0;
          const int ja = ci * panelsPerCol * NR, jb = std::min(nc, ja + panelsPerCol * NR);
          if (m > 0 && ja < jb) task(buf, i0, m, p0, kc, j0, ja, jb);
        }
      }
    }
  };
  if (T == 1) nest(0, 1);
  else parallelTeam(nest);
}

}  // namespace ot
