#include "pool.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace ot {
namespace {
thread_local bool tlsInRegion = false;  // inside a task: nested parallelFor runs serially
struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::mutex busy;  // one parallel region at a time; nested or concurrent callers run serially
  std::condition_variable cv, done;
  const std::function<void(long, int)>* job = nullptr;
  long n = 0;
  std::atomic<long> next{0};
  int active = 0;
  unsigned long generation = 0;
  bool stop = false;
  int size = 1;

  void run(int worker) {
    for (;;) {
      long t = next.fetch_add(1);
      if (t >= n) break;
      (*job)(t, worker);
    }
  }
  void loop(int worker) {
    tlsInRegion = true;
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      run(worker);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (--active == 0) done.notify_one();
      }
    }
  }
  void resize(int k) {
    if (k < 1) k = 1;
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
    size = k;
    for (int i = 1; i < k; i++) workers.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
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

void parallelFor(long n, const std::function<void(long, int)>& fn) {
  Pool& p = pool();
  if (n <= 0) return;
  if (tlsInRegion || p.size == 1 || n == 1) {
    for (long t = 0; t < n; t++) fn(t, 0);
    return;
  }
  std::unique_lock<std::mutex> region(p.busy, std::try_to_lock);
  if (!region.owns_lock()) {  // another JS thread holds the pool
    for (long t = 0; t < n; t++) fn(t, 0);
    return;
  }
  struct Flag {
    Flag() { tlsInRegion = true; }
    ~Flag() { tlsInRegion = false; }
  } flag;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.job = &fn;
    p.n = n;
    p.next.store(0);
    p.active = p.size - 1;
    p.generation++;
  }
  p.cv.notify_all();
  p.run(0);
  std::unique_lock<std::mutex> lk(p.mu);
  p.done.wait(lk, [&] { return p.active == 0; });
}
}  // namespace ot
