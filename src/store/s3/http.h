// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The HTTP layer of the s3:// backend (spec/05-backend.md §9.6): libcurl with a bounded
// pool of reusable easy handles (keep-alive connections), timeouts, and a retry policy
// with exponential backoff and full jitter; and a small XML reader over expat for S3's
// answers.
//
// Thread safety: HttpClient is thread-safe (each request borrows its own handle);
// XmlNode is a value type.

#ifndef DREAMDB_SRC_STORE_S3_HTTP_H_
#define DREAMDB_SRC_STORE_S3_HTTP_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/status.h"
#include "src/store/s3/sigv4.h"

namespace dreamdb::s3 {

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;     // scheme://host[:port]/encoded-path?query
  HeaderList headers;  // sent as given (Host included)
  std::string_view body;
};

struct HttpResponse {
  long status = 0;     // NOLINT(google-runtime-int): libcurl's type
  HeaderList headers;  // names lowercased
  std::string body;
  // The first header named `name` (lowercase), or "".
  std::string Header(std::string_view name) const;
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10000};
  // A transfer slower than 1 byte/s for this long is a timeout.
  std::chrono::seconds stall_timeout{30};
  size_t max_idle_handles = 64;  // reads run up to 32 requests at once
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One attempt. kUnavailable when no HTTP answer arrived (connection refused, reset,
  // timeout): the request may or may not have reached the server.
  Result<HttpResponse> Perform(const HttpRequest& request);

 private:
  void* Acquire();
  void Release(void* handle);

  const HttpOptions options_;
  std::mutex mu_;
  std::vector<void*> idle_;  // CURL* easy handles; guarded by mu_
};

// The retry policy of spec/05-backend.md §9.6.3.
struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds base{50};
  std::chrono::milliseconds cap{5000};
  std::chrono::milliseconds budget{60000};
  // The sleep before attempt `attempt` (1-based retry count): uniform in
  // [0, min(cap, base * 2^attempt)).
  std::chrono::milliseconds Backoff(int attempt) const;
};

// True for answers worth retrying: 500, 502, 503 (SlowDown), 504, 429.
bool IsRetryableStatus(long status);  // NOLINT(google-runtime-int)

// A parsed XML element: its name (without namespace), its text and its children.
struct XmlNode {
  std::string name;
  std::string text;
  std::vector<XmlNode> children;
  // The first child named `child`, or nullptr.
  const XmlNode* Child(std::string_view child) const;
  // The text of the first child named `child`, or "".
  std::string ChildText(std::string_view child) const;
};

// Parses an XML document; kIoError for malformed XML.
Result<XmlNode> ParseXml(std::string_view xml);

}  // namespace dreamdb::s3

#endif  // DREAMDB_SRC_STORE_S3_HTTP_H_
