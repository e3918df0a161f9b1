#include "tcp_store.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <gloo/common/error.h>

namespace omnitrain {

namespace {
enum Op : uint8_t { AUTH = 1, SET = 2, GET = 3, ADD = 4, CHECK = 5, DELETE_ = 6, WAIT = 7 };
enum Status : uint8_t { OK = 0, TIMEOUT = 1, ERROR = 2, AUTH_FAILED = 3 };

void putU32(std::vector<char>& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t getU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

int connectOnce(const std::string& host, int port, std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    why = std::string("cannot resolve host: ") + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    why = strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}
}  // namespace

TcpStore::TcpStore(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout)
    : host_(host), port_(port), timeout_(timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string why = "no attempt";
  while (true) {
    fd_ = connectOnce(host, port, why);
    if (fd_ >= 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      fail("cannot connect within " + std::to_string(timeout.count()) + " ms: " + why);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto r = request(AUTH, secret, {}, 0);
  if (r.status == AUTH_FAILED) fail("the server refused this process's shared secret (AUTH_FAILED)");
  if (r.status != OK) fail("AUTH failed with status " + std::to_string(r.status));
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) close(fd_);
}

void TcpStore::fail(const std::string& what) const {
  throw gloo::IoException("TCP store " + host_ + ":" + std::to_string(port_) + ": " + what);
}

void TcpStore::sendAll(const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) fail(std::string("send failed: ") + strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void TcpStore::recvAll(char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::recv(fd_, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail("no response from the server (timed out)");
    if (k == 0) fail("the server closed the connection");
    if (k < 0) fail(std::string("recv failed: ") + strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

TcpStore::Response TcpStore::request(uint8_t op, const std::string& key, const std::vector<char>& value,
                                     uint32_t timeoutMs) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<char> b;
  b.reserve(13 + key.size() + value.size());
  b.push_back(static_cast<char>(op));
  putU32(b, static_cast<uint32_t>(key.size()));
  b.insert(b.end(), key.begin(), key.end());
  putU32(b, static_cast<uint32_t>(value.size()));
  b.insert(b.end(), value.begin(), value.end());
  putU32(b, timeoutMs);
  // The server answers within timeoutMs; allow a margin before declaring it dead.
  timeval tv{};
  uint64_t wait = static_cast<uint64_t>(timeoutMs) + 10000;
  tv.tv_sec = static_cast<time_t>(wait / 1000);
  tv.tv_usec = static_cast<suseconds_t>((wait % 1000) * 1000);
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sendAll(b.data(), b.size());
  char head[5];
  recvAll(head, 5);
  Response r;
  r.status = static_cast<uint8_t>(head[0]);
  r.data.resize(getU32(head + 1));
  if (!r.data.empty()) recvAll(r.data.data(), r.data.size());
  if (r.status == ERROR) fail("server error: " + std::string(r.data.begin(), r.data.end()));
  return r;
}

void TcpStore::set(const std::string& key, const std::vector<char>& data) {
  auto r = request(SET, key, data, 0);
  if (r.status != OK) fail("SET '" + key + "' failed with status " + std::to_string(r.status));
}

std::vector<char> TcpStore::get(const std::string& key) {
  auto r = request(GET, key, {}, static_cast<uint32_t>(timeout_.count()));
  if (r.status == TIMEOUT) {
    fail("timed out after " + std::to_string(timeout_.count()) + " ms waiting for key '" + key +
         "' (a peer did not join the rendezvous)");
  }
  if (r.status != OK) fail("GET '" + key + "' failed with status " + std::to_string(r.status));
  return r.data;
}

void TcpStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  auto t = timeout.count() > 0 ? timeout : timeout_;
  for (const auto& key : keys) {
    auto r = request(WAIT, key, {}, static_cast<uint32_t>(t.count()));
    if (r.status == TIMEOUT) {
      fail("timed out after " + std::to_string(t.count()) + " ms waiting for key '" + key +
           "' (a peer did not join the rendezvous)");
    }
    if (r.status != OK) fail("WAIT '" + key + "' failed with status " + std::to_string(r.status));
  }
}

int64_t TcpStore::add(const std::string& key, int64_t delta) {
  std::vector<char> v(8);
  for (int i = 0; i < 8; i++) v[i] = static_cast<char>((static_cast<uint64_t>(delta) >> (8 * i)) & 0xff);
  auto r = request(ADD, key, v, 0);
  if (r.status != OK || r.data.size() != 8) fail("ADD '" + key + "' failed");
  uint64_t out = 0;
  for (int i = 0; i < 8; i++) out |= static_cast<uint64_t>(static_cast<uint8_t>(r.data[i])) << (8 * i);
  return static_cast<int64_t>(out);
}

bool TcpStore::check(const std::string& key) {
  auto r = request(CHECK, key, {}, 0);
  return r.status == OK && !r.data.empty() && r.data[0] == 1;
}

}  // namespace omnitrain
