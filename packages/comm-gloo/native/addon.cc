// N-API surface of the Gloo binding: class Group (one process group) and class Work (a handle).
// Buffers arrive as typed arrays over the tensors' own ArrayBuffers; the JS side keeps them
// referenced until the work completes.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>

#include "group.h"

namespace {

using omnitrain::DType;
using omnitrain::Group;
using omnitrain::GroupConfig;
using omnitrain::ReduceOp;
using omnitrain::WorkState;

// Set when the Node environment shuts down (process exit): groups are then leaked instead of
// joined, so that exiting never waits on a collective stuck with a dead peer.
std::atomic<bool> g_exiting{false};

struct Bytes {
  void* ptr;
  size_t len;
};

Bytes bytesOf(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a typed array");
  auto ta = v.As<Napi::TypedArray>();
  auto ab = ta.ArrayBuffer();
  return Bytes{static_cast<char*>(ab.Data()) + ta.ByteOffset(), ta.ByteLength()};
}

template <typename T>
std::vector<T> numbers(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of numbers");
  auto a = v.As<Napi::Array>();
  std::vector<T> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = static_cast<T>(a.Get(i).As<Napi::Number>().Int64Value());
  return out;
}

class WorkWrap : public Napi::ObjectWrap<WorkWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    auto f = DefineClass(env, "Work",
                         {InstanceMethod("wait", &WorkWrap::Wait), InstanceMethod("isCompleted", &WorkWrap::IsCompleted)});
    // Per environment (main thread and each worker thread that loads the addon).
    env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(f)));
    return f;
  }
  static Napi::Object New(Napi::Env env, std::shared_ptr<WorkState> s, std::chrono::milliseconds timeout,
                          std::chrono::microseconds spin) {
    auto obj = env.GetInstanceData<Napi::FunctionReference>()->New({});
    auto* w = Unwrap(obj);
    w->state_ = std::move(s);
    w->timeout_ = timeout;
    w->spin_ = spin;
    return obj;
  }
  explicit WorkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WorkWrap>(info) {}

 private:
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    // Gloo enforces the op timeout itself; this outer bound only guards against a wedged library.
    if (!state_->wait(timeout_ * 2 + std::chrono::seconds(10), spin_)) {
      throw Napi::Error::New(info.Env(), state_->what + " did not complete within " +
                                             std::to_string((timeout_ * 2).count()) + " ms");
    }
    if (!state_->error.empty()) throw Napi::Error::New(info.Env(), state_->error);
    return info.Env().Undefined();
  }
  Napi::Value IsCompleted(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), state_->completed.load());
  }
  std::shared_ptr<WorkState> state_;
  std::chrono::milliseconds timeout_{30000};
  std::chrono::microseconds spin_{0};
};

class GroupWrap : public Napi::ObjectWrap<GroupWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Group",
                       {
                           InstanceMethod("allReduce", &GroupWrap::AllReduce),
                           InstanceMethod("allGather", &GroupWrap::AllGather),
                           InstanceMethod("reduceScatter", &GroupWrap::ReduceScatter),
                           InstanceMethod("allToAll", &GroupWrap::AllToAll),
                           InstanceMethod("broadcast", &GroupWrap::Broadcast),
                           InstanceMethod("barrier", &GroupWrap::Barrier),
                           InstanceMethod("send", &GroupWrap::Send),
                           InstanceMethod("recv", &GroupWrap::Recv),
                           InstanceMethod("destroy", &GroupWrap::Destroy),
                       });
  }

  // new Group({ host, port, secret, prefix, name, rank, size, ranks, timeoutMs, bindHost?, iface?, rsViaAllreduce? })
  explicit GroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupWrap>(info) {
    auto env = info.Env();
    auto o = info[0].As<Napi::Object>();
    auto str = [&](const char* k) { return o.Has(k) && o.Get(k).IsString() ? o.Get(k).As<Napi::String>().Utf8Value() : std::string(); };
    GroupConfig c;
    c.host = str("host");
    c.port = o.Get("port").As<Napi::Number>().Int32Value();
    c.secret = str("secret");
    c.prefix = str("prefix");
    c.name = str("name");
    c.rank = o.Get("rank").As<Napi::Number>().Int32Value();
    c.size = o.Get("size").As<Napi::Number>().Int32Value();
    c.ranks = numbers<int>(o.Get("ranks"), "ranks");
    c.timeout = std::chrono::milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
    c.bindHost = str("bindHost");
    c.iface = str("iface");
    c.rsViaAllreduce = o.Has("rsViaAllreduce") && o.Get("rsViaAllreduce").ToBoolean().Value();
    if (o.Has("spinMicros") && o.Get("spinMicros").IsNumber()) {
      c.spin = std::chrono::microseconds(std::max<int64_t>(0, o.Get("spinMicros").As<Napi::Number>().Int64Value()));
    }
    if (o.Has("segmentBytes") && o.Get("segmentBytes").IsNumber()) {
      int64_t sb = o.Get("segmentBytes").As<Napi::Number>().Int64Value();
      if (sb >= 8) c.segmentBytes = static_cast<size_t>(sb / 8 * 8);
    }
    try {
      group_ = std::make_unique<Group>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }
  ~GroupWrap() override {
    if (!group_) return;
    if (g_exiting.load()) {
      (void)group_.release();  // the process is exiting: do not wait for in-flight collectives
      return;
    }
    group_->destroy();
  }

 private:
  Group& g(const Napi::CallbackInfo& info) {
    if (!group_) throw Napi::Error::New(info.Env(), "gloo group used after destroy()");
    return *group_;
  }
  template <typename F>
  Napi::Value issue(const Napi::CallbackInfo& info, F f) {
    auto& grp = g(info);
    std::shared_ptr<WorkState> w;
    try {
      w = f(grp);
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return WorkWrap::New(info.Env(), w, grp.timeout(), grp.config().spin);
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    auto b = bytesOf(info[0], "tensor");
    auto d = static_cast<DType>(info[1].As<Napi::Number>().Int32Value());
    auto op = static_cast<ReduceOp>(info[2].As<Napi::Number>().Int32Value());
    return issue(info, [&](Group& grp) { return grp.allReduce(b.ptr, b.len / omnitrain::elementSize(d), d, op); });
  }
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    auto out = bytesOf(info[0], "out");
    auto in = bytesOf(info[1], "input");
    auto per = numbers<size_t>(info[2], "bytesPerRank");
    bool even = info[3].ToBoolean().Value();
    return issue(info, [&](Group& grp) { return grp.allGather(out.ptr, in.ptr, per, even); });
  }
  Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
    auto out = bytesOf(info[0], "out");
    auto in = bytesOf(info[1], "input");
    auto counts = numbers<size_t>(info[2], "counts");
    auto d = static_cast<DType>(info[3].As<Napi::Number>().Int32Value());
    auto op = static_cast<ReduceOp>(info[4].As<Napi::Number>().Int32Value());
    return issue(info, [&](Group& grp) { return grp.reduceScatter(out.ptr, in.ptr, counts, d, op); });
  }
  Napi::Value AllToAll(const Napi::CallbackInfo& info) {
    auto out = bytesOf(info[0], "out");
    auto in = bytesOf(info[1], "input");
    auto outBytes = numbers<int64_t>(info[2], "outBytes");
    auto inBytes = numbers<int64_t>(info[3], "inBytes");
    bool even = info[4].ToBoolean().Value();
    return issue(info, [&](Group& grp) { return grp.allToAll(out.ptr, in.ptr, outBytes, inBytes, even); });
  }
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    auto b = bytesOf(info[0], "tensor");
    int root = info[1].As<Napi::Number>().Int32Value();
    return issue(info, [&](Group& grp) { return grp.broadcast(b.ptr, b.len, root); });
  }
  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return issue(info, [&](Group& grp) { return grp.barrier(); });
  }
  Napi::Value Send(const Napi::CallbackInfo& info) {
    auto b = bytesOf(info[0], "tensor");
    int peer = info[1].As<Napi::Number>().Int32Value();
    uint32_t tag = info[2].As<Napi::Number>().Uint32Value();
    return issue(info, [&](Group& grp) { return grp.send(b.ptr, b.len, peer, tag); });
  }
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    auto b = bytesOf(info[0], "tensor");
    int peer = info[1].As<Napi::Number>().Int32Value();
    uint32_t tag = info[2].As<Napi::Number>().Uint32Value();
    return issue(info, [&](Group& grp) { return grp.recv(b.ptr, b.len, peer, tag); });
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (group_) {
      group_->destroy();
      group_.reset();
    }
    return info.Env().Undefined();
  }

  std::unique_ptr<Group> group_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.AddCleanupHook([] { g_exiting.store(true); });
  exports.Set("Work", WorkWrap::Init(env));
  exports.Set("Group", GroupWrap::Init(env));
  exports.Set("glooVersion", Napi::String::New(env, "0.5.0 (Debian libgloo 2022-05-18)"));
  return exports;
}

}  // namespace

NODE_API_MODULE(omnitrain_comm_gloo, Init)
