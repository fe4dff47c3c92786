// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Internals of `dreamdb serve` shared by server.cc (HTTP plumbing: routing, token,
// static files, metrics) and api.cc (the JSON endpoints of spec/30-http-api.md §3).
//
// Thread safety: Context is shared by every request thread; its members are thread-safe
// (Store) or guarded by their own mutex (DatasetCache, the cost cache).

#ifndef DREAMDB_CLI_SERVE_INTERNAL_H_
#define DREAMDB_CLI_SERVE_INTERNAL_H_

#include <httplib.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/serve/server.h"
#include "dreamdb/cost.h"
#include "dreamdb/dataset.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb::serve {

// One error answer (spec/30 §5): HTTP status, stable code, message, and the parameter at
// fault (empty when none).
struct ApiError {
  int status = 500;
  std::string code;
  std::string message;
  std::string param;
};

// The answer of an endpoint: nullopt when the response was filled.
using Reply = std::optional<ApiError>;

// A DreamDB status as an error answer (spec/30 §5.2).
ApiError ErrorFromStatus(const Status& status, std::string param = {});
// 400 invalid_argument "parameter 'NAME': MESSAGE".
ApiError ParamError(std::string_view name, std::string_view message);
// Writes the JSON error body (and the status) into `res`.
void SendError(httplib::Response& res, const ApiError& error);

// Read-only Dataset handles at fixed manifests, shared by requests (a handle keeps its
// segment cache, so paging through one version reuses what earlier pages fetched).
class DatasetCache {
 public:
  explicit DatasetCache(std::shared_ptr<Store> store) : store_(std::move(store)) {}
  // Resolves `ref` (spec/30 §2.3; empty = "main") of `dataset` to a manifest and returns
  // a handle at that manifest.
  Result<std::shared_ptr<Dataset>> Open(const std::string& dataset, const std::string& ref);

 private:
  Result<ObjectId> Resolve(const std::string& dataset, const std::string& ref);
  std::shared_ptr<Store> store_;
  std::mutex mu_;
  std::map<std::string, std::pair<uint64_t, std::shared_ptr<Dataset>>> handles_;  // by key
  uint64_t clock_ = 0;
};

struct Context {
  std::shared_ptr<Store> store;
  ServeOptions options;
  DatasetCache datasets;
  // Storage cost answers by dataset, each with the (ref, manifest) pairs it was computed
  // for (spec/30 §3.12).
  std::mutex cost_mu;
  std::map<std::string, std::pair<std::vector<RefValue>, StorageCost>> cost_cache;

  Context(std::shared_ptr<Store> s, ServeOptions o)
      : store(s), options(std::move(o)), datasets(std::move(s)) {}
};

// The endpoint name of an /api/v1 path (for metrics labels; spec/30 §3.13), from the path
// segments after "/api/v1".
std::string_view EndpointName(const std::vector<std::string>& segments);

// Answers a request under /api/v1 (`segments`: the decoded path segments after it).
Reply HandleApi(Context& ctx, const httplib::Request& req, httplib::Response& res,
                const std::vector<std::string>& segments);

}  // namespace dreamdb::serve

#endif  // DREAMDB_CLI_SERVE_INTERNAL_H_
