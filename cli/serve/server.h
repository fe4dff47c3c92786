// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// `dreamdb serve`: a read-only HTTP server over one store (spec/30-http-api.md). A thin
// layer: every endpoint calls the public API in include/dreamdb/ and renders JSON; the
// HTTP protocol itself is cpp-httplib's (spec/30 §1.3 says why that library).
//
// Thread safety: Server's methods may be called from any thread; Stop() may be called
// while Run() blocks in another. Requests are handled concurrently on a pool of
// `threads` threads; they share the Store (thread-safe), a mutex-guarded cache of
// read-only Dataset handles (themselves thread-safe), a mutex-guarded cost cache and the
// metrics (atomics and a mutex).

#ifndef DREAMDB_CLI_SERVE_SERVER_H_
#define DREAMDB_CLI_SERVE_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb::serve {

struct ServeOptions {
  std::string bind = "127.0.0.1";
  int port = 8470;           // 0: any free port (Bind() returns it)
  std::string token;         // empty: no token required (loopback only; spec/30 §4)
  std::string web_root;      // empty: no dashboard (a placeholder page at /)
  int threads = 4;           // request threads, 1..64
  uint64_t max_page = 1000;  // largest `limit` accepted
  uint64_t cost_max_objects = 2'000'000;
  std::string version;  // reported by /api/v1/health
};

// True for 127.0.0.0/8, ::1 and "localhost": addresses only this machine can reach.
bool IsLoopbackAddress(const std::string& address);

// Validates a token read from --token-file (surrounding whitespace already removed):
// 16..1024 printable ASCII bytes without spaces (spec/30 §1.1).
Status ValidateToken(const std::string& token);

class Server {
 public:
  // `store` is wrapped so that its backend requests are counted for /metrics.
  static Result<std::unique_ptr<Server>> Create(std::shared_ptr<Store> store,
                                                const ServeOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  // kInvalidArgument for an option out of range; kUnavailable when the address cannot be
  // bound (in use, not an address of this machine).
  Result<int> Bind();
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  Status Run();
  // Stops accepting and makes Run() return once requests in flight are answered.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dreamdb::serve

#endif  // DREAMDB_CLI_SERVE_SERVER_H_
