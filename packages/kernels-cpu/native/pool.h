// A fixed thread pool: parallelFor(n, fn) runs fn(task, worker) for task in [0, n), dynamically scheduled.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>

namespace ot {
void setThreads(int n);
int numThreads();
void parallelFor(long n, const std::function<void(long task, int worker)>& fn);

// Runs fn(rank, size) once on each of `size` pool threads at the same time, so ranks may meet at a SpinBarrier.
// size is 1 (fn runs on the caller alone) when the pool has one thread, is busy, or the call is nested.
void parallelTeam(const std::function<void(int rank, int size)>& fn);

// A reusable barrier for the `n` ranks of one parallelTeam: spins (yielding now and then), never sleeps.
struct SpinBarrier {
  explicit SpinBarrier(int ranks) : n(ranks) {}
  void wait();
  int n;
  std::atomic<int> count{0};
  std::atomic<int> phase{0};
};

// Split `n` items into about 4 chunks per thread of at least `grain` items; f(begin, end) runs on the pool.
template <class F>
void parallelChunks(long n, long grain, F&& f) {
  long parts = std::max(1L, std::min((long)numThreads() * 4, n / std::max(1L, grain)));
  long step = (n + parts - 1) / parts;
  parallelFor(parts, [&](long t, int) {
    long a = t * step, b = std::min(n, a + step);
    if (a < b) f(a, b);
  });
}

// Tiles of `colChunk` columns of each of `outer` slices (a [outer, ., inner] layout) on the pool: f(o, c0, c1).
template <class F>
void parallelColumnTiles(long outer, long inner, long colChunk, F&& f) {
  const long nCol = (inner + colChunk - 1) / colChunk;
  parallelFor(outer * nCol, [&](long t, int) {
    const long o = t / nCol, c0 = (t % nCol) * colChunk;
    f(o, c0, std::min(inner, c0 + colChunk));
  });
}

// parallelFor, or a plain loop when T == 1 (small problems: waking the pool costs more than it saves).
template <class F>
void parallelOrSerial(int T, long n, F&& f) {
  if (T == 1)
    for (long t = 0; t < n; t++) f(t, 0);
  else
    parallelFor(n, f);
}

// A 64-byte aligned scratch buffer that only grows (packed GEMM operands; one per thread via thread_local).
template <class T>
struct PackBuffer {
  T* p = nullptr;
  size_t n = 0;
  T* get(size_t want) {
    if (want > n) {
      std::free(p);
      n = want;
      p = static_cast<T*>(std::aligned_alloc(64, (want * sizeof(T) + 63) / 64 * 64));
    }
    return p;
  }
  ~PackBuffer() { std::free(p); }
};
}  // namespace ot
