#include "group.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include "tcp_store.h"

namespace omnitrain {

namespace {
constexpr uint64_t kReduceScatterPrefix = 0x20;
constexpr uint64_t kP2PPrefix = 0x21;
constexpr size_t kWindow = 8;

bool isLoopback(const std::string& h) {
  return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

const char* opName(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}
const char* dtypeName(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::I32: return "int32";
    case DType::F64: return "float64";
    case DType::F16: return "float16";
    case DType::U8: return "uint8";
  }
  return "?";
}

std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}
}  // namespace

Group::Group(const GroupConfig& cfg) : cfg_(cfg) {
  if (cfg_.ranks.empty()) {
    for (int i = 0; i < cfg_.size; i++) cfg_.ranks.push_back(i);
  }
  try {
    gloo::transport::tcp::attr attr;
    if (!cfg_.iface.empty()) {
      attr.iface = cfg_.iface;
    } else if (!cfg_.bindHost.empty()) {
      attr.hostname = cfg_.bindHost;
    } else if (isLoopback(cfg_.host)) {
      attr.hostname = "127.0.0.1";
    } else {
      char buf[256] = {0};
      gethostname(buf, sizeof(buf) - 1);
      attr.hostname = buf;
    }
    device_ = gloo::transport::tcp::CreateDevice(attr);
    TcpStore store(cfg_.host, cfg_.port, cfg_.secret, cfg_.timeout);
    gloo::rendezvous::PrefixStore prefixed(cfg_.prefix, store);
    ctx_ = std::make_shared<gloo::rendezvous::Context>(cfg_.rank, cfg_.size);
    ctx_->setTimeout(cfg_.timeout);
    ctx_->connectFullMesh(prefixed, device_);
  } catch (const std::exception& e) {
    ctx_.reset();
    device_.reset();
    throw std::runtime_error(describe() + ": rendezvous failed (store " + cfg_.host + ":" +
                             std::to_string(cfg_.port) + ", prefix '" + cfg_.prefix + "', peers " + allPeers() +
                             "): " + e.what());
  }
  worker_ = std::thread([this] { workerLoop(); });
  p2p_ = std::thread([this] { p2pLoop(); });
}

Group::~Group() { destroy(); }

std::string Group::describe() const {
  std::ostringstream s;
  s << "gloo group '" << cfg_.name << "' (rank " << cfg_.rank << " of " << cfg_.size << ", global ranks [";
  for (size_t i = 0; i < cfg_.ranks.size(); i++) s << (i ? ", " : "") << cfg_.ranks[i];
  s << "])";
  return s.str();
}

std::string Group::allPeers() const {
  std::ostringstream s;
  s << "group ranks [";
  bool first = true;
  for (int i = 0; i < cfg_.size; i++) {
    if (i == cfg_.rank) continue;
    s << (first ? "" : ", ") << i;
    if (static_cast<size_t>(i) < cfg_.ranks.size()) s << " (global " << cfg_.ranks[i] << ")";
    first = false;
  }
  s << "]";
  return s.str();
}

std::string Group::failure(const std::string& what, const std::string& peers, const std::string& why) const {
  return describe() + ": " + what + " with " + peers + " failed (timeout " + std::to_string(cfg_.timeout.count()) +
         " ms): " + why;
}

void Group::destroy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (destroyed_) return;
    destroyed_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  {
    std::lock_guard<std::mutex> lock(pmu_);
    pstopping_ = true;
  }
  pcv_.notify_all();
  if (p2p_.joinable()) p2p_.join();
  recvRing_.clear();
  accRing_.clear();
  if (ctx_) {
    try {
      ctx_->closeConnections();
    } catch (...) {
    }
  }
  ctx_.reset();
  device_.reset();
}

std::shared_ptr<WorkState> Group::enqueue(std::string what, std::string peers, std::function<void(uint32_t)> run,
                                          bool collective, std::shared_ptr<WorkState> work) {
  if (!work) work = std::make_shared<WorkState>();
  work->what = what;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw std::runtime_error(describe() + ": " + what + " issued after destroy()");
    queue_.push_back(Op{std::move(what), std::move(peers), std::move(run), work, collective});
  }
  cv_.notify_one();
  return work;
}

void Group::workerLoop() {
  while (true) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = std::move(queue_.front());
      queue_.pop_front();
    }
    if (!brokenBy_.empty()) {
      op.work->finish(describe() + ": " + op.what + " not run: the group is unusable after an earlier failure (" +
                      brokenBy_ + ")");
      continue;
    }
    uint32_t tag = op.collective ? nextTag_++ : 0;
    try {
      op.run(tag);
      if (op.collective) op.work->finish("");
    } catch (const std::exception& e) {
      std::string msg = failure(op.what, op.peers, e.what());
      if (op.collective) brokenBy_ = op.what + " failed: " + e.what();
      op.work->finish(msg);
    }
  }
}

void Group::p2pLoop() {
  while (true) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(pmu_);
      pcv_.wait(lock, [&] { return pstopping_ || !pending_.empty(); });
      if (pending_.empty()) return;
      p = std::move(pending_.front());
      pending_.pop_front();
    }
    try {
      bool ok = p.isSend ? p.buf->waitSend(remaining(p.deadline)) : p.buf->waitRecv(remaining(p.deadline));
      p.work->finish(ok ? "" : failure(p.what, p.peers, "aborted"));
    } catch (const std::exception& e) {
      p.work->finish(failure(p.what, p.peers, e.what()));
    }
  }
}

std::shared_ptr<WorkState> Group::allReduce(void* p, size_t count, DType d, ReduceOp op) {
  ReduceFn fn = reducerFor(d, op);
  if (!fn) throw std::runtime_error(describe() + ": allReduce: dtype " + dtypeName(d) + " is not supported");
  std::string what = std::string("allReduce(") + opName(op) + ", " + dtypeName(d) + ", " + std::to_string(count) +
                     " elements)";
  return enqueue(what, allPeers(), [this, p, count, d, op, fn](uint32_t tag) {
    if (count == 0 || cfg_.size == 1) {
      return;
    }
    gloo::AllreduceOptions o(ctx_);
    size_t es = elementSize(d);
    switch (es) {
      case 2: o.setOutput(static_cast<uint16_t*>(p), count); break;
      case 4: o.setOutput(static_cast<uint32_t*>(p), count); break;
      case 8: o.setOutput(static_cast<uint64_t*>(p), count); break;
      default: throw std::runtime_error("bad element size");
    }
    o.setReduceFunction(fn);
    o.setTag(tag);
    o.setTimeout(cfg_.timeout);
    gloo::allreduce(o);
    if (op == ReduceOp::Avg) divideBy(d, p, count, cfg_.size);
  });
}

std::shared_ptr<WorkState> Group::allGather(void* out, const void* in, std::vector<size_t> bytesPerRank, bool even) {
  size_t total = 0;
  for (auto b : bytesPerRank) total += b;
  std::string what = "allGather(" + std::to_string(total) + " bytes" + (even ? "" : ", uneven") + ")";
  return enqueue(what, allPeers(), [this, out, in, bytesPerRank, even, total](uint32_t tag) {
    size_t mine = bytesPerRank[cfg_.rank];
    if (cfg_.size == 1) {
      if (mine) std::memmove(out, in, mine);
      return;
    }
    if (total == 0) return;
    if (even) {
      gloo::AllgatherOptions o(ctx_);
      o.setInput(static_cast<uint8_t*>(const_cast<void*>(in)), mine);
      o.setOutput(static_cast<uint8_t*>(out), total);
      o.setTag(tag);
      o.setTimeout(cfg_.timeout);
      gloo::allgather(o);
    } else {
      gloo::AllgathervOptions o(ctx_);
      o.setInput(static_cast<uint8_t*>(const_cast<void*>(in)), mine);
      o.setOutput(static_cast<uint8_t*>(out), bytesPerRank);
      o.setTag(tag);
      o.setTimeout(cfg_.timeout);
      gloo::allgatherv(o);
    }
  });
}

std::shared_ptr<WorkState> Group::reduceScatter(void* out, const void* in, std::vector<size_t> counts, DType d,
                                                ReduceOp op) {
  ReduceFn fn = reducerFor(d, op);
  if (!fn) throw std::runtime_error(describe() + ": reduceScatter: dtype " + dtypeName(d) + " is not supported");
  size_t total = 0;
  for (auto c : counts) total += c;
  std::string what = std::string("reduceScatter(") + opName(op) + ", " + dtypeName(d) + ", " +
                     std::to_string(total) + " elements)";
  return enqueue(what, allPeers(), [this, out, in, counts, d, op, fn, total](uint32_t tag) {
    size_t es = elementSize(d);
    size_t off = 0;
    for (int i = 0; i < cfg_.rank; i++) off += counts[i];
    size_t mine = counts[cfg_.rank];
    if (cfg_.size == 1 || total == 0) {
      if (mine) std::memmove(out, static_cast<const char*>(in) + off * es, mine * es);
    } else if (cfg_.rsViaAllreduce) {
      std::vector<char> tmp(static_cast<const char*>(in), static_cast<const char*>(in) + total * es);
      gloo::AllreduceOptions o(ctx_);
      switch (es) {
        case 2: o.setOutput(reinterpret_cast<uint16_t*>(tmp.data()), total); break;
        case 4: o.setOutput(reinterpret_cast<uint32_t*>(tmp.data()), total); break;
        default: o.setOutput(reinterpret_cast<uint64_t*>(tmp.data()), total); break;
      }
      o.setReduceFunction(fn);
      o.setTag(tag);
      o.setTimeout(cfg_.timeout);
      gloo::allreduce(o);
      if (mine) std::memcpy(out, tmp.data() + off * es, mine * es);
    } else {
      ringReduceScatter(tag, out, in, counts, d, fn);
    }
    if (op == ReduceOp::Avg) divideBy(d, out, mine, cfg_.size);
  });
}

// Ring reduce-scatter over unbound buffers, pipelined in segments: at step s rank r sends its
// partial sum of chunk (r-s-1) to r+1 and receives chunk (r-s-2) from r-1; after n-1 steps it holds
// chunk r fully reduced. Each received segment is reduced and forwarded as soon as it arrives.
// Step 0 sends straight from the input; later steps go through two rings of kWindow segment
// buffers (receive, partial sums) kept by the group, so the scratch memory is 2 x kWindow segments
// whatever the tensor size, and each ring slot has at most one transfer in flight.
void Group::ringReduceScatter(uint32_t tag, void* out, const void* in, const std::vector<size_t>& counts, DType d,
                              ReduceFn fn) {
  const int n = cfg_.size, r = cfg_.rank;
  const int right = (r + 1) % n, left = (r - 1 + n) % n;
  const size_t es = elementSize(d);
  const size_t segBytes = cfg_.segmentBytes;
  const size_t seg = std::max<size_t>(1, segBytes / es);  // elements per segment
  std::vector<size_t> off(n + 1, 0);
  for (int i = 0; i < n; i++) off[i + 1] = off[i] + counts[i];
  auto deadline = std::chrono::steady_clock::now() + cfg_.timeout;
  auto slot = [&](int step) {
    return (kReduceScatterPrefix << 56) | (static_cast<uint64_t>(tag) << 20) | static_cast<uint64_t>(step);
  };
  auto chunkOf = [&](int k) { return ((k % n) + n) % n; };

  if (!scratch_) {
    scratch_.reset(new char[2 * kWindow * segBytes]);
    for (size_t k = 0; k < kWindow; k++) {
      recvRing_.push_back(ctx_->createUnboundBuffer(scratch_.get() + k * segBytes, segBytes));
      accRing_.push_back(ctx_->createUnboundBuffer(scratch_.get() + (kWindow + k) * segBytes, segBytes));
    }
  }
  auto inBuf = ctx_->createUnboundBuffer(const_cast<void*>(in), std::max<size_t>(1, off[n] * es));
  std::unique_ptr<gloo::transport::UnboundBuffer> outBuf;

  // Every chunk is cut into the same number m of segments (each at most segBytes), and segments are
  // processed segment-major: (j=0, every step), (j=1, every step), ... Then what a rank waits for
  // (data from its left, a free partial-sum slot from its right) always lies earlier in the other
  // rank's order, so the bounded windows cannot deadlock.
  size_t m = 1;
  for (int c = 0; c < n; c++) m = std::max(m, (counts[c] + seg - 1) / seg);
  auto piece = [&](size_t c, size_t j, size_t& begin, size_t& len) {
    size_t l = (counts[c] + m - 1) / m;
    begin = std::min(counts[c], j * l);
    len = std::min(counts[c], begin + l) - begin;
  };
  struct Seg {
    int step;
    size_t chunk, begin, len;
  };
  std::vector<Seg> segs;
  for (size_t j = 0; j < m; j++) {
    for (int s = 0; s < n - 1; s++) {
      size_t c = static_cast<size_t>(chunkOf(r - s - 2)), b, len;
      piece(c, j, b, len);
      if (len) segs.push_back({s, c, b, len});
    }
  }
  std::vector<bool> accBusy(kWindow, false);
  size_t inSends = 0;
  {
    size_t c = static_cast<size_t>(chunkOf(r - 1)), b, len;
    for (size_t j = 0; j < m; j++) {
      piece(c, j, b, len);
      if (!len) continue;
      inBuf->send(right, slot(0), (off[c] + b) * es, len * es);
      inSends++;
    }
  }
  auto postRecv = [&](size_t g) {
    const Seg& x = segs[g];
    recvRing_[g % kWindow]->recv(left, slot(x.step), 0, x.len * es);
  };
  for (size_t g = 0; g < segs.size() && g < kWindow; g++) postRecv(g);
  for (size_t g = 0; g < segs.size(); g++) {
    const Seg& x = segs[g];
    const size_t k = g % kWindow;
    const bool last = x.step == n - 2;
    if (!recvRing_[k]->waitRecv(remaining(deadline))) throw std::runtime_error("recv aborted");
    const char* mine = static_cast<const char*>(in) + (off[x.chunk] + x.begin) * es;
    const char* got = scratch_.get() + k * segBytes;
    if (last) {
      fn(static_cast<char*>(out) + x.begin * es, mine, got, x.len);
    } else {
      if (accBusy[k]) {
        if (!accRing_[k]->waitSend(remaining(deadline))) throw std::runtime_error("send aborted");
        accBusy[k] = false;
      }
      char* acc = scratch_.get() + (kWindow + k) * segBytes;
      fn(acc, mine, got, x.len);
      accRing_[k]->send(right, slot(x.step + 1), 0, x.len * es);
      accBusy[k] = true;
    }
    if (g + kWindow < segs.size()) postRecv(g + kWindow);
  }
  for (size_t k = 0; k < kWindow; k++) {
    if (accBusy[k] && !accRing_[k]->waitSend(remaining(deadline))) throw std::runtime_error("send aborted");
  }
  for (; inSends > 0; inSends--) {
    if (!inBuf->waitSend(remaining(deadline))) throw std::runtime_error("send aborted");
  }
}

std::shared_ptr<WorkState> Group::allToAll(void* out, const void* in, std::vector<int64_t> outBytes,
                                           std::vector<int64_t> inBytes, bool even) {
  int64_t tin = 0, tout = 0;
  for (auto b : inBytes) tin += b;
  for (auto b : outBytes) tout += b;
  std::string what = "allToAll(" + std::to_string(tin) + " bytes in, " + std::to_string(tout) + " bytes out" +
                     (even ? "" : ", uneven") + ")";
  return enqueue(what, allPeers(), [this, out, in, outBytes, inBytes, even, tin, tout](uint32_t tag) {
    if (cfg_.size == 1) {
      if (tin) std::memmove(out, in, static_cast<size_t>(tin));
      return;
    }
    if (even) {
      if (tin == 0) return;
      gloo::AlltoallOptions o(ctx_);
      o.setInput(static_cast<uint8_t*>(const_cast<void*>(in)), static_cast<size_t>(tin));
      o.setOutput(static_cast<uint8_t*>(out), static_cast<size_t>(tout));
      o.setTag(tag);
      o.setTimeout(cfg_.timeout);
      gloo::alltoall(o);
    } else {
      // Gloo wants non-null buffers even when this rank sends or receives nothing.
      char dummyIn = 0, dummyOut = 0;
      gloo::AlltoallvOptions o(ctx_);
      o.setInput(tin ? static_cast<uint8_t*>(const_cast<void*>(in)) : reinterpret_cast<uint8_t*>(&dummyIn), inBytes);
      o.setOutput(tout ? static_cast<uint8_t*>(out) : reinterpret_cast<uint8_t*>(&dummyOut), outBytes);
      o.setTag(tag);
      o.setTimeout(cfg_.timeout);
      gloo::alltoallv(o);
    }
  });
}

std::shared_ptr<WorkState> Group::broadcast(void* p, size_t bytes, int root) {
  std::string what = "broadcast(" + std::to_string(bytes) + " bytes, root " + std::to_string(root) + ")";
  std::string peers = cfg_.rank == root ? allPeers() : "root rank " + std::to_string(root);
  return enqueue(what, peers, [this, p, bytes, root](uint32_t tag) {
    if (cfg_.size == 1 || bytes == 0) return;
    gloo::BroadcastOptions o(ctx_);
    o.setOutput(static_cast<uint8_t*>(p), bytes);
    o.setRoot(root);
    o.setTag(tag);
    o.setTimeout(cfg_.timeout);
    gloo::broadcast(o);
  });
}

std::shared_ptr<WorkState> Group::barrier() {
  return enqueue("barrier()", allPeers(), [this](uint32_t tag) {
    if (cfg_.size == 1) return;
    gloo::BarrierOptions o(ctx_);
    o.setTag(tag);
    o.setTimeout(cfg_.timeout);
    gloo::barrier(o);
  });
}

std::shared_ptr<WorkState> Group::postP2P(void* p, size_t bytes, int peer, uint32_t tag, bool isSend) {
  if (peer < 0 || peer >= cfg_.size || peer == cfg_.rank) {
    throw std::runtime_error(describe() + ": " + (isSend ? "send" : "recv") + ": bad peer rank " +
                             std::to_string(peer));
  }
  std::string what = std::string(isSend ? "send(" : "recv(") + std::to_string(bytes) + " bytes, tag " +
                     std::to_string(tag) + ")";
  std::string peers = std::string(isSend ? "destination" : "source") + " group rank " + std::to_string(peer) +
                      " (global " + std::to_string(cfg_.ranks[peer]) + ")";
  auto work = std::make_shared<WorkState>();
  work->what = what;
  // Posted by the worker thread (so it follows earlier collectives in issue order); the p2p
  // thread waits for completion, so a send and a recv issued back to back cannot deadlock.
  return enqueue(
      what, peers,
      [this, p, bytes, peer, tag, isSend, what, peers, work](uint32_t) {
        static char dummy = 0;
        void* ptr = bytes ? p : &dummy;
        Pending pend;
        pend.buf = ctx_->createUnboundBuffer(ptr, std::max<size_t>(bytes, 1));
        uint64_t slot = (kP2PPrefix << 56) | static_cast<uint64_t>(tag);
        if (isSend) {
          pend.buf->send(peer, slot, 0, bytes);
        } else {
          pend.buf->recv(peer, slot, 0, bytes);
        }
        pend.isSend = isSend;
        pend.work = work;
        pend.what = what;
        pend.peers = peers;
        pend.deadline = std::chrono::steady_clock::now() + cfg_.timeout;
        {
          std::lock_guard<std::mutex> lock(pmu_);
          pending_.push_back(std::move(pend));
        }
        pcv_.notify_one();
      },
      false, work);
}

std::shared_ptr<WorkState> Group::send(void* p, size_t bytes, int dst, uint32_t tag) {
  return postP2P(p, bytes, dst, tag, true);
}

std::shared_ptr<WorkState> Group::recv(void* p, size_t bytes, int src, uint32_t tag) {
  return postP2P(p, bytes, src, tag, false);
}

}  // namespace omnitrain
