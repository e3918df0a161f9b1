// A fixed thread pool: parallelFor(n, fn) runs fn(task, worker) for task in [0, n), dynamically scheduled.
#pragma once
#include <functional>

namespace ot {
void setThreads(int n);
int numThreads();
void parallelFor(long n, const std::function<void(long task, int worker)>& fn);
}  // namespace ot
