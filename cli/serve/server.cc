// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The HTTP plumbing of `dreamdb serve` (spec/30-http-api.md): method and token checks,
// JSON errors for everything (including the library's own 4xx), the static dashboard
// files, /metrics, and backend request counters. The endpoints are in api.cc.
#include "cli/serve/server.h"

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <type_traits>

#include "cli/cli.h"
#include "cli/serve/internal.h"
#include "dreamdb/store_stats.h"

namespace dreamdb::serve {

// ---- Errors ----

ApiError ErrorFromStatus(const Status& status, std::string param) {
  static constexpr std::array<int, 11> kHttp = {200, 400, 404, 409, 412, 422,
                                                503, 500, 501, 403, 500};
  const int code = static_cast<int>(status.code());
  const int http = code >= 0 && code < static_cast<int>(kHttp.size()) ? kHttp[code] : 500;
  return ApiError{http, std::string(StatusCodeName(status.code())), status.message(),
                  std::move(param)};
}

ApiError ParamError(std::string_view name, std::string_view message) {
  return ApiError{400, "invalid_argument",
                  "parameter '" + std::string(name) + "': " + std::string(message),
                  std::string(name)};
}

void SendError(httplib::Response& res, const ApiError& e) {
  cli::JsonObject o;
  o.Add("code", e.code).Add("status", e.status).Add("message", e.message);
  if (!e.param.empty()) o.Add("param", e.param);
  res.status = e.status;
  res.set_content(cli::JsonObject().AddRaw("error", o.Finish()).Finish(),
                  "application/json; charset=utf-8");
}

namespace {

// ---- Backend request counters (/metrics: dreamdb_store_*) ----

enum Op : size_t {
  kGet,
  kGetRange,
  kHead,
  kList,
  kPut,
  kDelete,
  kRefRead,
  kRefList,
  kRefWrite,
  kOps
};
constexpr std::array<const char*, kOps> kOpNames = {
    "get", "get_range", "head", "list", "put", "delete", "ref_read", "ref_list", "ref_write"};

struct StoreCounters {
  std::array<std::atomic<uint64_t>, kOps> requests{};
  std::array<std::atomic<uint64_t>, kOps> errors{};
  std::atomic<uint64_t> read_bytes{0};
  void Count(Op op, const Status& s) {
    requests[op].fetch_add(1, std::memory_order_relaxed);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      errors[op].fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Runs one backend call and counts it (and the bytes of a read).
  template <typename F>
  auto Call(Op op, F&& call) -> decltype(call()) {
    auto r = call();
    if constexpr (std::is_same_v<decltype(r), Status>) {
      Count(op, r);
    } else {
      Count(op, r.status());
      if constexpr (std::is_same_v<decltype(r), Result<Bytes>>) {
        if (r.ok()) read_bytes.fetch_add(r->size(), std::memory_order_relaxed);
      }
    }
    return r;
  }
};

// Forwards every call to the real backend (owned by `owner`) and counts it.
class CountingObjects : public ObjectBackend {
 public:
  CountingObjects(std::shared_ptr<Store> owner, StoreCounters* c)
      : owner_(std::move(owner)), b_(owner_->object_backend()), c_(c) {}
  Status Put(const ObjectId& id, ByteView data) override {
    return c_->Call(kPut, [&] { return b_.Put(id, data); });
  }
  Result<Bytes> Get(const ObjectId& id) override {
    return c_->Call(kGet, [&] { return b_.Get(id); });
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    return c_->Call(kGetRange, [&] { return b_.GetRange(id, offset, length); });
  }
  Result<ObjectInfo> Head(const ObjectId& id) override {
    return c_->Call(kHead, [&] { return b_.Head(id); });
  }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return c_->Call(kList, [&] { return b_.List(shard_prefix, visit); });
  }
  Status Delete(const ObjectId& id) override {
    return c_->Call(kDelete, [&] { return b_.Delete(id); });
  }

 private:
  std::shared_ptr<Store> owner_;
  ObjectBackend& b_;
  StoreCounters* c_;
};

class CountingRefs : public RefBackend {
 public:
  CountingRefs(std::shared_ptr<Store> owner, StoreCounters* c)
      : owner_(std::move(owner)), b_(owner_->ref_backend()), c_(c) {}
  Result<RefValue> Read(std::string_view name) override {
    return c_->Call(kRefRead, [&] { return b_.Read(name); });
  }
  Status Create(std::string_view name, const ObjectId& target) override {
    return c_->Call(kRefWrite, [&] { return b_.Create(name, target); });
  }
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override {
    return c_->Call(kRefWrite, [&] { return b_.CompareAndSwap(name, expected, desired); });
  }
  Status Delete(std::string_view name, const ObjectId& expected) override {
    return c_->Call(kRefWrite, [&] { return b_.Delete(name, expected); });
  }
  Status List(std::string_view prefix, const RefVisitor& visit) override {
    return c_->Call(kRefList, [&] { return b_.List(prefix, visit); });
  }

 private:
  std::shared_ptr<Store> owner_;
  RefBackend& b_;
  StoreCounters* c_;
};

// ---- Request metrics (/metrics: dreamdb_http_*) ----

constexpr std::array<double, 8> kBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

class HttpMetrics {
 public:
  void Observe(std::string_view endpoint, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[{std::string(endpoint), status}];
    Histogram& h = latency_[std::string(endpoint)];
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  std::string Render(const StoreCounters& store) const {
    std::ostringstream out;
    out << "# HELP dreamdb_http_requests_total HTTP requests answered, by endpoint and status.\n"
           "# TYPE dreamdb_http_requests_total counter\n";
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : counts_) {
      out << "dreamdb_http_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second
          << "\"} " << n << "\n";
    }
    out << "# HELP dreamdb_http_request_duration_seconds Request latency by endpoint.\n"
           "# TYPE dreamdb_http_request_duration_seconds histogram\n";
    for (const auto& [endpoint, h] : latency_) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out << "dreamdb_http_request_duration_seconds_bucket{endpoint=\"" << endpoint << "\",le=\""
            << kBuckets[i] << "\"} " << h.buckets[i] << "\n";
      }
      out << "dreamdb_http_request_duration_seconds_bucket{endpoint=\"" << endpoint
          << "\",le=\"+Inf\"} " << h.count << "\n";
      out << "dreamdb_http_request_duration_seconds_sum{endpoint=\"" << endpoint << "\"} " << h.sum
          << "\n";
      out << "dreamdb_http_request_duration_seconds_count{endpoint=\"" << endpoint << "\"} "
          << h.count << "\n";
    }
    out << "# HELP dreamdb_store_requests_total Backend requests made by the server, by "
           "operation.\n# TYPE dreamdb_store_requests_total counter\n";
    for (size_t i = 0; i < kOps; ++i) {
      out << "dreamdb_store_requests_total{op=\"" << kOpNames[i] << "\"} "
          << store.requests[i].load() << "\n";
    }
    out << "# HELP dreamdb_store_read_bytes_total Bytes returned by the backend.\n"
           "# TYPE dreamdb_store_read_bytes_total counter\n"
           "dreamdb_store_read_bytes_total "
        << store.read_bytes.load() << "\n";
    out << "# HELP dreamdb_store_errors_total Backend requests that failed, by operation.\n"
           "# TYPE dreamdb_store_errors_total counter\n";
    for (size_t i = 0; i < kOps; ++i) {
      out << "dreamdb_store_errors_total{op=\"" << kOpNames[i] << "\"} " << store.errors[i].load()
          << "\n";
    }
    return out.str();
  }

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;
  std::map<std::string, Histogram> latency_;
};

// ---- Paths ----

// Splits a decoded path into segments ("/a/b/" -> {"a", "b"}).
std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// What the raw request target must not hold in its path (spec/30 §2.2, §3.14): encoded
// '/', '\', NUL, and raw backslashes.
bool HostilePath(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  std::string lower;
  for (char c : path) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("%2f") != std::string::npos || lower.find("%5c") != std::string::npos ||
         lower.find("%00") != std::string::npos || lower.find('\\') != std::string::npos;
}

bool BadSegment(const std::string& s) {
  if (s == "." || s == "..") return true;
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\';
  });
}

std::string_view ContentTypeFor(const std::filesystem::path& p) {
  static const std::map<std::string, std::string_view> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".woff", "font/woff"},
      {".wasm", "application/wasm"},
      {".txt", "text/plain; charset=utf-8"},
  };
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? std::string_view("application/octet-stream") : it->second;
}

constexpr const char* kNoDashboard =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>DreamDB</title></head><body>"
    "<h1>DreamDB</h1><p>The dashboard is not built (no web root). Build it with "
    "<code>npm --prefix web run build</code> or pass <code>--web-root DIR</code>.</p>"
    "<p>The JSON API is served: <a href=\"/api/v1/health\">/api/v1/health</a>, "
    "<a href=\"/api/v1/datasets\">/api/v1/datasets</a>.</p></body></html>";

// Constant-time comparison of the presented token with the expected one.
bool TokenMatches(std::string_view presented, std::string_view expected) {
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i]) ^
            static_cast<unsigned char>(i < presented.size() ? presented[i] : 0);
  }
  return diff == 0;
}

thread_local std::chrono::steady_clock::time_point t_request_start;

constexpr size_t kMaxHeaders = 128;

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  if (address == "localhost" || address == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, address.c_str(), &a) == 1) {
    return (ntohl(a.s_addr) >> 24) == 127;
  }
  return false;
}

Status ValidateToken(const std::string& token) {
  if (token.size() < 16 || token.size() > 1024) {
    return InvalidArgument("the token must be 16..1024 bytes long (it is " +
                           std::to_string(token.size()) + ")");
  }
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument("the token may hold only printable ASCII without spaces");
    }
  }
  return Status::Ok();
}

struct Server::Impl {
  StoreCounters counters;
  std::shared_ptr<Store> store;  // the store served, for its storage requests on /metrics
  std::unique_ptr<Context> ctx;
  HttpMetrics metrics;
  httplib::Server http;
  std::filesystem::path web_root;  // canonical; empty when none

  std::string_view Endpoint(const httplib::Request& req) const {
    if (req.path == "/metrics") return "metrics";
    if (req.path.starts_with("/api/")) {
      auto s = Segments(req.path);
      if (s.size() >= 2 && s[1] == "v1") return EndpointName({s.begin() + 2, s.end()});
      return "unknown";
    }
    return "static";
  }

  // Token and method checks before any handler (spec/30 §1.2, §4).
  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req, httplib::Response& res) {
    t_request_start = std::chrono::steady_clock::now();
    if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
      res.set_header("Allow", "GET, HEAD, POST");
      SendError(res, ApiError{405, "method_not_allowed",
                              "method " + cli::Printable(req.method) +
                                  " is not allowed: the server is read-only",
                              ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    // cpp-httplib 0.11 bounds a body only by its Content-Length: a chunked body or one
    // read until the connection closes could grow without limit, so neither is accepted
    // (spec/30 §5.3). Checked here, before the library reads any body byte.
    if (req.method == "POST" &&
        (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length"))) {
      SendError(res,
                ApiError{411, "length_required",
                         "a POST body needs a Content-Length (chunked bodies are refused)", ""});
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.headers.size() > kMaxHeaders) {
      SendError(res, ApiError{431, "too_many_headers",
                              "more than " + std::to_string(kMaxHeaders) + " header lines", ""});
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (HostilePath(req.target)) {
      SendError(res, ApiError{400, "invalid_argument", "the path holds an encoded '/', '\\' or NUL",
                              "path"});
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool guarded =
        (req.path.starts_with("/api/") && req.path != "/api/v1/health") || req.path == "/metrics";
    if (guarded && !ctx->options.token.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.empty() || !auth.starts_with("Bearer ")) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"dreamdb\"");
        SendError(res, ApiError{401, "unauthorized",
                                "this server needs 'Authorization: Bearer <token>'", ""});
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!TokenMatches(std::string_view(auth).substr(7), ctx->options.token)) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"dreamdb\", error=\"invalid_token\"");
        SendError(res, ApiError{401, "unauthorized", "the bearer token is wrong", ""});
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void Dispatch(const httplib::Request& req, httplib::Response& res) {
    Reply reply;
    try {
      reply = Route(req, res);
    } catch (const std::exception& e) {
      reply = ApiError{500, "internal", std::string("unexpected exception: ") + e.what(), ""};
    }
    if (reply) SendError(res, *reply);
  }

  Reply Route(const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/metrics") {
      if (req.method == "POST") {
        return ApiError{405, "method_not_allowed", "POST is only accepted by search", ""};
      }
      res.status = 200;
      res.set_content(metrics.Render(counters) + StoreStatsPrometheus(store->stats()),
                      "text/plain; version=0.0.4; charset=utf-8");
      return std::nullopt;
    }
    std::vector<std::string> segs = Segments(req.path);
    for (const auto& s : segs) {
      if (BadSegment(s)) {
        return ApiError{400, "invalid_argument", "the path holds a '..', '.' or control byte",
                        "path"};
      }
    }
    if (!segs.empty() && segs[0] == "api") {
      if (segs.size() < 2 || segs[1] != "v1") {
        return ApiError{404, "not_found", "the API lives under /api/v1", ""};
      }
      return HandleApi(*ctx, req, res, {segs.begin() + 2, segs.end()});
    }
    if (req.method == "POST") {
      return ApiError{405, "method_not_allowed", "POST is only accepted by search", ""};
    }
    return Static(segs, res);
  }

  // A file of the web root (spec/30 §3.14).
  Reply Static(const std::vector<std::string>& segs, httplib::Response& res) {
    namespace fs = std::filesystem;
    res.set_header("X-Content-Type-Options", "nosniff");
    if (web_root.empty()) {
      if (!segs.empty()) return ApiError{404, "not_found", "no such file (no web root)", ""};
      res.status = 200;
      res.set_content(kNoDashboard, "text/html; charset=utf-8");
      return std::nullopt;
    }
    fs::path rel;
    for (const auto& s : segs) rel /= s;
    const bool looks_like_route = segs.empty() || segs.back().find('.') == std::string::npos;
    std::error_code ec;
    fs::path file = fs::weakly_canonical(web_root / rel, ec);
    auto inside = [&](const fs::path& p) {
      auto [r, f] = std::mismatch(web_root.begin(), web_root.end(), p.begin(), p.end());
      return r == web_root.end();
    };
    if (ec || !inside(file) || !fs::is_regular_file(file, ec)) {
      if (!looks_like_route) {
        return ApiError{404, "not_found", "no such file in the web root", ""};
      }
      file = web_root / "index.html";
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) return ApiError{404, "not_found", "no such file in the web root", ""};
    std::ostringstream data;
    data << in.rdbuf();
    if (file.filename() == "index.html") res.set_header("Cache-Control", "no-cache");
    res.status = 200;
    res.set_content(data.str(), std::string(ContentTypeFor(file)));
    return std::nullopt;
  }

  void Log(const httplib::Request& req, const httplib::Response& res) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request_start).count();
    metrics.Observe(Endpoint(req), res.status, seconds);
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::Create(std::shared_ptr<Store> store,
                                               const ServeOptions& options) {
  if (options.threads < 1 || options.threads > 64) {
    return InvalidArgument("--threads must be 1..64");
  }
  if (options.max_page < 1 || options.max_page > 100000) {
    return InvalidArgument("--max-page must be 1..100000");
  }
  if (options.port < 0 || options.port > 65535) return InvalidArgument("--port must be 0..65535");
  if (!options.token.empty()) RETURN_IF_ERROR(ValidateToken(options.token));
  if (options.token.empty() && !IsLoopbackAddress(options.bind)) {
    return PermissionDenied("binding " + options.bind +
                            " (not a loopback address) needs --token-file");
  }
  auto impl = std::make_unique<Impl>();
  if (!options.web_root.empty()) {
    std::error_code ec;
    impl->web_root = std::filesystem::canonical(options.web_root, ec);
    if (ec || !std::filesystem::is_directory(impl->web_root)) {
      return NotFound("--web-root '" + options.web_root + "' is not a directory");
    }
  }
  const std::string uri = store->uri();
  impl->store = store;
  std::shared_ptr<Store> counted =
      Store::FromBackends(uri, std::make_shared<CountingObjects>(store, &impl->counters),
                          std::make_shared<CountingRefs>(store, &impl->counters));
  impl->ctx = std::make_unique<Context>(counted, options);
  Impl* p = impl.get();
  const int threads = options.threads;
  impl->http.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  impl->http.set_payload_max_length(size_t{1} << 20);
  impl->http.set_read_timeout(30, 0);
  impl->http.set_write_timeout(60, 0);
  impl->http.set_keep_alive_max_count(100);
  impl->http.set_pre_routing_handler(
      [p](const httplib::Request& req, httplib::Response& res) { return p->PreRoute(req, res); });
  impl->http.Get(
      ".*", [p](const httplib::Request& req, httplib::Response& res) { p->Dispatch(req, res); });
  impl->http.Post(
      ".*", [p](const httplib::Request& req, httplib::Response& res) { p->Dispatch(req, res); });
  // Errors the library answers itself (413, 400 on a malformed request, 404): JSON too.
  impl->http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int s = res.status;
    std::string code = s == 413 ? "too_large" : s == 404 ? "not_found" : "invalid_argument";
    std::string message = s == 413 ? "the request body is larger than 1 MiB"
                                   : "the request was refused (HTTP " + std::to_string(s) + ")";
    SendError(res, ApiError{s, code, message, ""});
  });
  impl->http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
        SendError(res, ApiError{500, "internal", "unexpected exception in a handler", ""});
      });
  impl->http.set_logger(
      [p](const httplib::Request& req, const httplib::Response& res) { p->Log(req, res); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<int> Server::Bind() {
  const ServeOptions& o = impl_->ctx->options;
  int port = o.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(o.bind);
    if (port < 0) return Unavailable("cannot bind " + o.bind + " on any port");
    return port;
  }
  if (!impl_->http.bind_to_port(o.bind, port)) {
    return Unavailable("cannot bind " + o.bind + ":" + std::to_string(port) +
                       " (in use, or not an address of this machine)");
  }
  return port;
}

Status Server::Run() {
  if (!impl_->http.listen_after_bind()) return Unavailable("the server stopped listening");
  return Status::Ok();
}

void Server::Stop() { impl_->http.stop(); }

}  // namespace dreamdb::serve
