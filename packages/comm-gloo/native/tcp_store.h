// A gloo::rendezvous::Store that speaks omnitrain's TCP store wire protocol
// (see .notes/DISTRIBUTED-SPEC.md / core's StoreOp): AUTH first, then SET/GET/ADD/CHECK/WAIT.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <gloo/rendezvous/store.h>

namespace omnitrain {

class TcpStore : public gloo::rendezvous::Store {
 public:
  // Connects (retrying until `timeout` while the server is not up yet) and authenticates.
  TcpStore(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout);
  ~TcpStore() override;

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;
  int64_t add(const std::string& key, int64_t delta);
  bool check(const std::string& key);

 private:
  struct Response {
    uint8_t status;
    std::vector<char> data;
  };
  Response request(uint8_t op, const std::string& key, const std::vector<char>& value, uint32_t timeoutMs);
  [[noreturn]] void fail(const std::string& what) const;
  void sendAll(const char* p, size_t n);
  void recvAll(char* p, size_t n);

  std::string host_;
  int port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::mutex mu_;
};

}  // namespace omnitrain
