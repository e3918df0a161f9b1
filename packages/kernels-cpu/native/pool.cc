#include "pool.h"

#include <immintrin.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace ot {
namespace {
thread_local bool tlsInRegion = false;  // inside a task: nested parallelFor runs serially

// How long a thread spins before sleeping on a condition variable: a worker between two jobs, the caller waiting
// for the last worker. A futex wake-up costs 15-50 us on a VM; a training step issues thousands of parallel
// regions, most within microseconds of the previous one, so a short spin keeps the workers hot.
// OMNITRAIN_SPIN_US=0 turns spinning off.
long spinNanos() {
  static const long ns = [] {
    const char* e = std::getenv("OMNITRAIN_SPIN_US");
    long us = e ? std::atol(e) : 50;
    return (us < 0 ? 0 : us) * 1000;
  }();
  return ns;
}

// Spins (with pause) until done() or the spin budget runs out; true when done() held.
template <class Done>
bool spinUntil(Done&& done) {
  const long budget = spinNanos();
  if (budget == 0) return done();
  auto start = std::chrono::steady_clock::now();
  for (unsigned i = 1;; i++) {
    if (done()) return true;
    _mm_pause();
    if ((i & 255) == 0 && std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
                                  .count() > budget)
      return done();
  }
}

// Workers and the caller hand off through atomics and only fall back to the mutex/condition variables to sleep.
// Lost wake-ups are excluded Dekker-style: the publisher stores the flag it changed, then reads the sleeper count;
// a sleeper increments that count, then re-checks the flag under the mutex (all sequentially consistent).
struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::mutex busy;  // one parallel region at a time; nested or concurrent callers run serially
  std::condition_variable cv, done;
  const std::function<void(long, int)>* job = nullptr;
  long n = 0;
  std::atomic<long> next{0};
  std::atomic<int> active{0};
  std::atomic<unsigned long> generation{0};
  std::atomic<int> sleepers{0};
  std::atomic<bool> callerSleeping{false};
  std::atomic<bool> stop{false};
  int size = 1;

  void run(int worker) {
    for (;;) {
      long t = next.fetch_add(1);
      if (t >= n) break;
      (*job)(t, worker);
    }
  }
  // `seen`: the generation at creation (a worker that starts late must still take the first job).
  void loop(int worker, unsigned long seen) {
    tlsInRegion = true;
    for (;;) {
      auto fresh = [&] { return stop.load() || generation.load() != seen; };
      if (!spinUntil(fresh)) {
        std::unique_lock<std::mutex> lk(mu);
        sleepers.fetch_add(1);
        cv.wait(lk, fresh);
        sleepers.fetch_sub(1);
      }
      if (stop.load()) return;
      seen = generation.load();
      run(worker);
      if (active.fetch_sub(1) == 1 && callerSleeping.load()) {
        std::lock_guard<std::mutex> lk(mu);
        done.notify_one();
      }
    }
  }
  // Publishes the job (already stored in job/n/next/active) to the workers.
  void publish() {
    generation.fetch_add(1);
    if (sleepers.load() > 0) {
      std::lock_guard<std::mutex> lk(mu);
      cv.notify_all();
    }
  }
  void waitWorkers() {
    auto finished = [&] { return active.load() == 0; };
    if (spinUntil(finished)) return;
    std::unique_lock<std::mutex> lk(mu);
    callerSleeping.store(true);
    done.wait(lk, finished);
    callerSleeping.store(false);
  }
  void resize(int k) {
    if (k < 1) k = 1;
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop.store(false);
    size = k;
    const unsigned long g0 = generation.load();
    for (int i = 1; i < k; i++) workers.emplace_back([this, i, g0] { loop(i, g0); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& w : workers) w.detach();
  }
};
// CPUs this process may run on (its affinity mask: taskset, cpusets), not all the machine has: a pool wider than
// the mask would only time-slice. Falls back to hardware_concurrency where the mask cannot be read.
int usableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return (int)std::thread::hardware_concurrency();
}

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();
    int k = usableCpus();
    if (const char* e = std::getenv("OMNITRAIN_NUM_THREADS")) k = std::atoi(e);
    q->resize(k > 0 ? k : 1);
    return q;
  }();
  return *p;
}
}  // namespace

void setThreads(int n) { pool().resize(n); }
int numThreads() { return pool().size; }

namespace {
// Claims the pool for one region and runs fn(t, worker) for t in [0, n) on it; false (nothing run) when the pool is
// unavailable: one thread, a nested call, or another JS thread holding it.
bool runOnPool(Pool& p, long n, const std::function<void(long, int)>& fn) {
  if (tlsInRegion || p.size == 1) return false;
  std::unique_lock<std::mutex> region(p.busy, std::try_to_lock);
  if (!region.owns_lock()) return false;
  struct Flag {
    Flag() { tlsInRegion = true; }
    ~Flag() { tlsInRegion = false; }
  } flag;
  p.job = &fn;
  p.n = n;
  p.next.store(0);
  p.active.store(p.size - 1);
  p.publish();
  p.run(0);
  p.waitWorkers();
  return true;
}
}  // namespace

void parallelFor(long n, const std::function<void(long, int)>& fn) {
  if (n <= 0) return;
  if (n == 1 || !runOnPool(pool(), n, fn))
    for (long t = 0; t < n; t++) fn(t, 0);
}

void parallelTeam(const std::function<void(int rank, int size)>& fn) {
  Pool& p = pool();
  const int size = p.size;
  // Every pool thread takes exactly one rank: a rank can only finish once all have started (fn's barriers), so no
  // thread can take a second one.
  std::function<void(long, int)> rank = [&](long t, int) { fn((int)t, size); };
  if (!runOnPool(p, size, rank)) fn(0, 1);
}

void SpinBarrier::wait() {
  if (n <= 1) return;
  const int ph = phase.load(std::memory_order_acquire);
  if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
    count.store(0, std::memory_order_relaxed);
    phase.fetch_add(1, std::memory_order_release);
    return;
  }
  for (unsigned i = 1; phase.load(std::memory_order_acquire) == ph; i++) {
    _mm_pause();
    if ((i & 1023) == 0) sched_yield();  // a descheduled peer: give its core back
  }
}
}  // namespace ot
