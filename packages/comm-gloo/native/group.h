// One Gloo process group: a rendezvous through the TCP store (under the group's prefix), a Gloo
// context over TCP, and a worker thread that runs the group's operations in issue order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gloo/rendezvous/context.h>
#include <gloo/transport/device.h>
#include <gloo/transport/unbound_buffer.h>

#include "reduce.h"

namespace omnitrain {

// Completion state of one issued operation, shared by the worker thread and the JS Work handle.
struct WorkState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::atomic<bool> completed{false};
  std::string error;
  std::string what;  // e.g. "allReduce(sum, float32, 1024 elements)"

  void finish(std::string err) {
    {
      std::lock_guard<std::mutex> lock(mu);
      error = std::move(err);
      done = true;
    }
    completed.store(true);
    cv.notify_all();
  }
  // Returns false if it did not finish within `timeout`. Polls for up to `spin` first: on an
  // otherwise idle (virtual) CPU a futex wake-up can cost milliseconds, more than a small collective.
  bool wait(std::chrono::milliseconds timeout, std::chrono::microseconds spin = std::chrono::microseconds(0)) {
    if (spin.count() > 0) {
      auto until = std::chrono::steady_clock::now() + spin;
      while (!completed.load(std::memory_order_acquire)) {
        if (std::chrono::steady_clock::now() >= until) break;
        std::this_thread::yield();
      }
    }
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return done; });
  }
};

struct GroupConfig {
  std::string host;
  int port = 0;
  std::string secret;
  std::string prefix;
  std::string name;
  int rank = 0;
  int size = 1;
  std::vector<int> ranks;
  std::chrono::milliseconds timeout{30000};
  std::string bindHost;   // address this rank listens on ("" = choose)
  std::string iface;      // or a network interface name
  bool rsViaAllreduce = false;  // reduceScatter as allreduce + slice (for measurements)
  size_t segmentBytes = 1 << 20;  // reduceScatter ring segment (a multiple of 8)
  std::chrono::microseconds spin{0};  // Work.wait() polls this long before blocking
};

class Group {
 public:
  explicit Group(const GroupConfig& cfg);  // rendezvous; throws on failure
  ~Group();

  std::shared_ptr<WorkState> allReduce(void* p, size_t count, DType d, ReduceOp op);
  std::shared_ptr<WorkState> allGather(void* out, const void* in, std::vector<size_t> bytesPerRank, bool even);
  std::shared_ptr<WorkState> reduceScatter(void* out, const void* in, std::vector<size_t> countsPerRank, DType d,
                                           ReduceOp op);
  std::shared_ptr<WorkState> allToAll(void* out, const void* in, std::vector<int64_t> outBytes,
                                      std::vector<int64_t> inBytes, bool even);
  std::shared_ptr<WorkState> broadcast(void* p, size_t bytes, int root);
  std::shared_ptr<WorkState> barrier();
  std::shared_ptr<WorkState> send(void* p, size_t bytes, int dst, uint32_t tag);
  std::shared_ptr<WorkState> recv(void* p, size_t bytes, int src, uint32_t tag);

  // Finish queued work, stop the threads and close the connections.
  void destroy();
  const GroupConfig& config() const { return cfg_; }
  std::chrono::milliseconds timeout() const { return cfg_.timeout; }
  std::string describe() const;  // "gloo group 'world' (rank 1 of 4, global ranks [0, 1, 2, 3])"

 private:
  struct Op {
    std::string what;
    std::string peers;  // who the op talks to, for error messages
    std::function<void(uint32_t tag)> run;
    std::shared_ptr<WorkState> work;
    bool collective = true;
  };
  struct Pending {  // a posted send/recv the p2p thread waits on
    std::unique_ptr<gloo::transport::UnboundBuffer> buf;
    bool isSend;
    std::shared_ptr<WorkState> work;
    std::string what, peers;
    std::chrono::steady_clock::time_point deadline;
  };

  std::shared_ptr<WorkState> enqueue(std::string what, std::string peers, std::function<void(uint32_t)> run,
                                     bool collective = true, std::shared_ptr<WorkState> work = nullptr);
  std::shared_ptr<WorkState> postP2P(void* p, size_t bytes, int peer, uint32_t tag, bool isSend);
  void workerLoop();
  void p2pLoop();
  std::string failure(const std::string& what, const std::string& peers, const std::string& why) const;
  std::string allPeers() const;
  void ringReduceScatter(uint32_t tag, void* out, const void* in, const std::vector<size_t>& counts, DType d,
                         ReduceFn fn);

  GroupConfig cfg_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> ctx_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  std::thread worker_;
  uint32_t nextTag_ = 1;     // worker thread only
  std::string brokenBy_;     // worker thread only: first collective failure
  // reduceScatter scratch (worker thread only): receive and partial-sum rings of segments.
  std::unique_ptr<char[]> scratch_;
  std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> recvRing_, accRing_;

  std::mutex pmu_;
  std::condition_variable pcv_;
  std::deque<Pending> pending_;
  bool pstopping_ = false;
  std::thread p2p_;
  bool destroyed_ = false;
};

}  // namespace omnitrain
