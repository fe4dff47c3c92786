// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §9 and spec/06-refs.md §9.
#include "src/store/s3/s3_backend.h"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/store/local/file_backend.h"

namespace dreamdb::s3 {
namespace {

constexpr std::string_view kMarker = "dreamdb-store 1\n";
constexpr int kMaxRounds = 8;  // 409 restarts and ETag races per ref operation (§9.4.6)

std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

std::string FreshNonce() {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1) {
    // No entropy: still unique per write within this process and time.
    static std::atomic<uint64_t> counter{0};
    std::string fallback = std::to_string(std::time(nullptr)) + "." + std::to_string(++counter);
    std::fill(std::begin(buf), std::end(buf), 0);
    std::copy_n(fallback.data(), std::min(fallback.size(), sizeof(buf)), buf);
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(buf), sizeof(buf)));
}

bool Is2xx(long status) { return status >= 200 && status < 300; }  // NOLINT(google-runtime-int)

int64_t ParseHttpDateMs(const std::string& date) {
  std::tm tm{};
  if (strptime(date.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

int64_t ParseIsoDateMs(const std::string& date) {
  std::tm tm{};
  const char* rest = strptime(date.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') {
    int64_t frac = 0;
    int digits = 0;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest) {
      if (digits < 3) frac = frac * 10 + (*rest - '0'), ++digits;
    }
    while (digits < 3) frac *= 10, ++digits;
    ms += frac;
  }
  return ms;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Status RefNotFound(std::string_view name) {
  return NotFound("ref " + Quote(name) + " does not exist");
}

Status RefConflict(std::string_view name, const ObjectId& actual, const ObjectId& expected) {
  return Conflict("ref " + Quote(name) + " is at " + actual.ToString() + ", not at the expected " +
                  expected.ToString());
}

// The [profile] section of an AWS credentials file.
Result<Credentials> FromCredentialsFile(const std::string& path, const std::string& profile) {
  std::ifstream in(path);
  if (!in) return Credentials{};
  std::string line;
  bool in_section = false;
  Credentials c;
  while (std::getline(in, line)) {
    auto trim = [](const std::string& s) {
      size_t a = s.find_first_not_of(" \t\r");
      size_t b = s.find_last_not_of(" \t\r");
      return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    };
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      in_section = line == "[" + profile + "]";
      continue;
    }
    if (!in_section) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") c.access_key_id = value;
    if (key == "aws_secret_access_key") c.secret_access_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  if (c.access_key_id.empty() != c.secret_access_key.empty()) {
    return InvalidArgument("profile " + Quote(profile) + " in " + Quote(path, 200) +
                           " sets only one of aws_access_key_id and aws_secret_access_key");
  }
  return c;
}

}  // namespace

Result<Credentials> ResolveCredentials(const std::string& profile) {
  std::string id = EnvOr("AWS_ACCESS_KEY_ID", "");
  std::string secret = EnvOr("AWS_SECRET_ACCESS_KEY", "");
  if (!id.empty() || !secret.empty()) {
    if (id.empty())
      return InvalidArgument("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    if (secret.empty()) {
      return InvalidArgument("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    return Credentials{id, secret, EnvOr("AWS_SESSION_TOKEN", "")};
  }
  std::string file = EnvOr("AWS_SHARED_CREDENTIALS_FILE", "");
  if (file.empty()) {
    std::string home = EnvOr("HOME", "");
    if (home.empty()) return Credentials{};
    file = home + "/.aws/credentials";
  }
  return FromCredentialsFile(file, profile);
}

Result<S3Options> OptionsFromUri(const StoreUri& uri) {
  S3Options o;
  o.bucket = uri.bucket;
  o.prefix = uri.prefix;
  o.endpoint = uri.endpoint;
  o.region = uri.region;
  o.path_style = uri.path_style;
  ASSIGN_OR_RETURN(o.credentials, ResolveCredentials(uri.profile));
  return o;
}

S3Backend::S3Backend(S3Options options)
    : options_(std::move(options)),
      http_(options_.http),
      counters_(options_.counters ? options_.counters : std::make_shared<RequestCounters>()) {
  size_t sep = options_.endpoint.find("://");
  std::string scheme = options_.endpoint.substr(0, sep);
  std::string host = options_.endpoint.substr(sep + 3);
  host_ = options_.path_style ? host : options_.bucket + "." + host;
  base_url_ = scheme + "://" + host_;
}

Result<std::shared_ptr<S3Backend>> S3Backend::Open(S3Options options) {
  std::shared_ptr<S3Backend> backend(new S3Backend(std::move(options)));
  RETURN_IF_ERROR(backend->Init());
  return backend;
}

std::string S3Backend::Key(std::string_view relative) const {
  return options_.prefix.empty() ? std::string(relative)
                                 : options_.prefix + "/" + std::string(relative);
}

std::string S3Backend::ObjectKey(const ObjectId& id) const {
  return Key("objects/" + id.ShardPrefix() + "/" + id.ToString());
}

std::string S3Backend::RefKey(std::string_view name) const {
  return Key("refs/" + FileBackend::EncodeRefName(name));
}

std::string S3Backend::Describe(std::string_view key) const {
  return "s3://" + options_.bucket + "/" + std::string(key);
}

Result<HttpResponse> S3Backend::SendOnce(const std::string& method, const std::string& key,
                                         const HeaderList& query, const HeaderList& headers,
                                         std::string_view body) {
  SigningInput in;
  in.method = method;
  in.host = host_;
  in.path =
      options_.path_style ? "/" + options_.bucket + (key.empty() ? "" : "/" + key) : "/" + key;
  in.query = query;
  in.headers = headers;
  in.payload_sha256 = Sha256Hex(body);
  in.region = options_.region;
  in.unix_seconds = static_cast<int64_t>(std::time(nullptr));
  SignedRequest signed_request = Sign(in, options_.credentials);
  HttpRequest request{method, base_url_ + signed_request.path_and_query,
                      std::move(signed_request.headers), body};
  int verb = method == "GET"      ? StoreStats::kGet
             : method == "HEAD"   ? StoreStats::kHead
             : method == "PUT"    ? StoreStats::kPut
             : method == "POST"   ? StoreStats::kPost
             : method == "DELETE" ? StoreStats::kDelete
                                  : StoreStats::kGet;
  if (method == "GET" && key.empty()) verb = StoreStats::kList;  // ListObjectsV2
  const auto start = std::chrono::steady_clock::now();
  auto count = [&](const Result<HttpResponse>& r) {
    counters_->Record(verb, r.ok() ? ClassOfHttpStatus(r->status) : StoreStats::kNoAnswer,
                      r.ok() ? r->body.size() : 0, body.size(),
                      std::chrono::steady_clock::now() - start);
  };
  if (options_.fault_hook) {
    bool conditional = false;
    for (const auto& [k, v] : headers) conditional = conditional || k.rfind("If-", 0) == 0;
    switch (options_.fault_hook(method, key, conditional)) {
      case S3Options::Fault::kNone:
        break;
      case S3Options::Fault::kLoseAnswer: {
        (void)http_.Perform(request);
        Result<HttpResponse> lost =
            Unavailable(method + " " + Describe(key) + ": no answer: injected loss");
        count(lost);
        return lost;
      }
      case S3Options::Fault::kServerError: {
        HttpResponse fake;
        fake.status = 503;
        fake.body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
        Result<HttpResponse> r = std::move(fake);
        count(r);
        return r;
      }
    }
  }
  Result<HttpResponse> r = http_.Perform(request);
  count(r);
  return r;
}

Result<HttpResponse> S3Backend::Send(const std::string& method, const std::string& key,
                                     const HeaderList& query, const HeaderList& headers,
                                     std::string_view body) {
  const auto deadline = std::chrono::steady_clock::now() + options_.retry.budget;
  Status last = Status::Ok();
  for (int attempt = 0; attempt < options_.retry.max_attempts; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(options_.retry.Backoff(attempt));
      if (std::chrono::steady_clock::now() > deadline) break;
      counters_->AddRetry();
    }
    auto r = SendOnce(method, key, query, headers, body);
    if (r.ok() && !IsRetryableStatus(r->status)) return r;
    last = r.ok() ? ErrorFor(method, key, *r) : r.status();
  }
  return Unavailable(method + " " + Describe(key) + ": gave up after retries: " + last.message());
}

Status S3Backend::ErrorFor(const std::string& op, const std::string& key,
                           const HttpResponse& r) const {
  std::string code;
  std::string message;
  if (!r.body.empty()) {
    auto xml = ParseXml(r.body);
    if (xml.ok()) {
      code = xml->ChildText("Code");
      message = xml->ChildText("Message");
    }
  }
  std::string what = op + " " + Describe(key) + ": HTTP " + std::to_string(r.status) +
                     (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message);
  if (code == "NoSuchBucket")
    return NotFound("bucket " + Quote(options_.bucket) + " does not exist (" + what + ")");
  if (r.status == 401 || r.status == 403) {
    return PermissionDenied(what +
                            (options_.credentials.empty()
                                 ? " (no credentials: set AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY or a profile in ~/.aws/credentials)"
                                 : ""));
  }
  if (r.status == 404) return NotFound(what);
  if (IsRetryableStatus(r.status)) return Unavailable(what);
  return IoError(what);
}

namespace {

// Stores whose marker this process has read or written (endpoint, bucket and prefix). The
// marker never changes once written (spec/05-backend.md §9.2.2), so a later open of the
// same store in this process (a handle per DataLoader worker, per search, per command)
// skips one round trip.
class VerifiedStores {
 public:
  bool Contains(const std::string& store) {
    std::lock_guard lock(mu_);
    return stores_.count(store) != 0;
  }
  void Add(const std::string& store) {
    std::lock_guard lock(mu_);
    stores_.insert(store);
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::string> stores_;  // guarded by mu_
};

VerifiedStores& Verified() {
  static auto* verified = new VerifiedStores();
  return *verified;
}

}  // namespace

Status S3Backend::Init() {
  const std::string marker_key = Key("dreamdb-store");
  const std::string identity = options_.endpoint + "\n" + options_.bucket + "\n" + marker_key;
  if (Verified().Contains(identity)) return Status::Ok();
  Status st = InitOnce(marker_key);
  if (st.ok()) Verified().Add(identity);
  return st;
}

Status S3Backend::InitOnce(const std::string& marker_key) {
  // Round k+1 reads the marker that round k's create-only PUT found (412: another opener,
  // or an earlier attempt of ours whose answer was lost) or met a conflict over (409).
  for (int round = 0; round < kMaxRounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(options_.retry.Backoff(round));
    ASSIGN_OR_RETURN(HttpResponse r, Send("GET", marker_key, {}, {}, ""));
    if (Is2xx(r.status)) {
      if (r.body == kMarker) return Status::Ok();
      std::string_view body = r.body;
      if (body.rfind("dreamdb-store ", 0) == 0 && body.size() > 15 && body.back() == '\n') {
        std::string_view version = body.substr(14, body.size() - 15);
        bool digits = !version.empty() && version.front() != '0' &&
                      std::all_of(version.begin(), version.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
        if (digits) {
          return Unsupported("store " + Describe(marker_key) + ": layout version " +
                             std::string(version) + "; this build supports version 1");
        }
      }
      return Corrupt("store marker " + Describe(marker_key) + " is malformed: " + Quote(body));
    }
    if (r.status != 404) return ErrorFor("GET", marker_key, r);
    Status missing = ErrorFor("GET", marker_key, r);
    if (missing.message().rfind("bucket ", 0) == 0) return missing;
    // Absent: the prefix must be empty (never write into an arbitrary prefix).
    std::string list_prefix = options_.prefix.empty() ? "" : options_.prefix + "/";
    ASSIGN_OR_RETURN(
        HttpResponse list,
        Send("GET", "", {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", list_prefix}}, {}, ""));
    if (!Is2xx(list.status)) return ErrorFor("LIST", list_prefix, list);
    ASSIGN_OR_RETURN(XmlNode doc, ParseXml(list.body));
    if (const XmlNode* contents = doc.Child("Contents")) {
      return InvalidArgument("s3://" + options_.bucket + "/" + options_.prefix +
                             " is not empty and has no dreamdb-store marker (found " +
                             Quote(contents->ChildText("Key"), 200) +
                             "); DreamDB never writes into an arbitrary prefix");
    }
    if (options_.must_exist) {
      return NotFound("no DreamDB store at " +
                      Quote("s3://" + options_.bucket + "/" + options_.prefix, 200) +
                      " (the prefix holds no key)");
    }
    ASSIGN_OR_RETURN(HttpResponse put,
                     Send("PUT", marker_key, {}, {{"If-None-Match", "*"}}, kMarker));
    if (Is2xx(put.status)) return Status::Ok();
    if (put.status != 412 && put.status != 409) return ErrorFor("PUT", marker_key, put);
    // Another opener won (412), or a conflicting write is in flight (409): read again.
  }
  return Unavailable("store " + Describe(marker_key) + ": the marker could not be read back");
}

// ---- Objects ----

Status S3Backend::Put(const ObjectId& id, ByteView data) {
  const std::string key = ObjectKey(id);
  if (data.size() >= options_.multipart_threshold) return PutMultipart(key, data);
  ASSIGN_OR_RETURN(HttpResponse r, Send("PUT", key, {}, {}, data));
  if (!Is2xx(r.status)) return ErrorFor("PUT", key, r);
  return Status::Ok();
}

Status S3Backend::PutMultipart(const std::string& key, ByteView data) {
  ASSIGN_OR_RETURN(HttpResponse init, Send("POST", key, {{"uploads", ""}}, {}, ""));
  if (!Is2xx(init.status)) return ErrorFor("CreateMultipartUpload", key, init);
  ASSIGN_OR_RETURN(XmlNode doc, ParseXml(init.body));
  const std::string upload_id = doc.ChildText("UploadId");
  if (upload_id.empty())
    return IoError("CreateMultipartUpload " + Describe(key) + ": no UploadId in the answer");
  auto upload = [&]() -> Status {
    std::string complete = "<CompleteMultipartUpload>";
    int part = 0;
    for (uint64_t off = 0; off < data.size(); off += options_.part_size) {
      ++part;
      ByteView chunk = data.substr(off, options_.part_size);
      ASSIGN_OR_RETURN(
          HttpResponse r,
          Send("PUT", key, {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}}, {},
               chunk));
      if (!Is2xx(r.status)) return ErrorFor("UploadPart " + std::to_string(part), key, r);
      complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" +
                  XmlEscape(r.Header("etag")) + "</ETag></Part>";
    }
    complete += "</CompleteMultipartUpload>";
    ASSIGN_OR_RETURN(HttpResponse done, Send("POST", key, {{"uploadId", upload_id}}, {}, complete));
    // CompleteMultipartUpload can fail with 200 and an Error document.
    bool error_doc = done.body.find("<Error>") != std::string::npos;
    if (!Is2xx(done.status) || error_doc) return ErrorFor("CompleteMultipartUpload", key, done);
    return Status::Ok();
  };
  Status st = upload();
  if (!st.ok()) {
    (void)Send("DELETE", key, {{"uploadId", upload_id}}, {}, "");  // abort, best effort
  }
  return st;
}

Result<Bytes> S3Backend::Get(const ObjectId& id) {
  const std::string key = ObjectKey(id);
  ASSIGN_OR_RETURN(HttpResponse r, Send("GET", key, {}, {}, ""));
  if (r.status == 404) return NotFound("object " + id.ToString() + " not found");
  if (!Is2xx(r.status)) return ErrorFor("GET", key, r);
  return std::move(r.body);
}

Result<std::vector<Bytes>> S3Backend::GetRanges(const ObjectId& id,
                                                std::span<const ObjectRange> ranges) {
  // As many in flight as a read keeps connections (the take's remote limit).
  constexpr size_t kRangesInFlight = 64;
  std::vector<std::optional<Result<Bytes>>> got(ranges.size());
  IoPool::ParallelFor(
      ranges.size(),
      [&](size_t i) { got[i].emplace(GetRange(id, ranges[i].offset, ranges[i].length)); },
      kRangesInFlight);
  std::vector<Bytes> out;
  out.reserve(ranges.size());
  for (auto& r : got) {
    if (!r->ok()) return r->status();
    out.push_back(std::move(*r).value());
  }
  return out;
}

Result<Bytes> S3Backend::GetRange(const ObjectId& id, uint64_t offset, uint64_t length) {
  auto from_head = [&]() -> Result<Bytes> {
    ASSIGN_OR_RETURN(ObjectInfo info, Head(id));
    if (offset > info.size_bytes) {
      return InvalidArgument("object " + id.ToString() + ": range offset " +
                             std::to_string(offset) + " is beyond its size " +
                             std::to_string(info.size_bytes));
    }
    return Bytes();
  };
  if (length == 0) return from_head();
  const std::string key = ObjectKey(id);
  // An end beyond any object is left open ("bytes=O-"): servers refuse huge numbers.
  const bool open_end = length - 1 > (uint64_t{1} << 62) - std::min(offset, uint64_t{1} << 62);
  const std::string range = "bytes=" + std::to_string(offset) + "-" +
                            (open_end ? "" : std::to_string(offset + length - 1));
  ASSIGN_OR_RETURN(HttpResponse r, Send("GET", key, {}, {{"Range", range}}, ""));
  if (r.status == 404) return NotFound("object " + id.ToString() + " not found");
  if (r.status == 416) return from_head();
  if (r.status == 200) {  // the server ignored the range
    if (offset > r.body.size()) return from_head();
    return r.body.substr(offset, length);
  }
  if (r.status != 206) return ErrorFor("GET", key, r);
  return std::move(r.body);
}

Result<ObjectInfo> S3Backend::Head(const ObjectId& id) {
  const std::string key = ObjectKey(id);
  ASSIGN_OR_RETURN(HttpResponse r, Send("HEAD", key, {}, {}, ""));
  if (r.status == 404) return NotFound("object " + id.ToString() + " not found");
  if (!Is2xx(r.status)) return ErrorFor("HEAD", key, r);
  ObjectInfo info;
  info.id = id;
  info.size_bytes = std::strtoull(r.Header("content-length").c_str(), nullptr, 10);
  info.modified_unix_ms = ParseHttpDateMs(r.Header("last-modified"));
  return info;
}

Status S3Backend::List(std::string_view shard_prefix, const ObjectVisitor& visit) {
  const std::string objects = Key("objects/");
  const std::string list_prefix = objects + std::string(shard_prefix);
  return ListKeys(list_prefix, [&](const XmlNode& c) {
    std::string key = c.ChildText("Key");
    if (key.rfind(objects, 0) != 0) return true;
    std::string_view rel = std::string_view(key).substr(objects.size());  // "xx/<id>"
    if (rel.size() != 3 + ObjectId::kTextSize || rel[2] != '/') return true;
    auto id = ObjectId::Parse(rel.substr(3));
    if (!id.ok() || id->ShardPrefix() != rel.substr(0, 2) || id->ToString() != rel.substr(3))
      return true;
    ObjectInfo info;
    info.id = *id;
    info.size_bytes = std::strtoull(c.ChildText("Size").c_str(), nullptr, 10);
    info.modified_unix_ms = ParseIsoDateMs(c.ChildText("LastModified"));
    return visit(info);
  });
}

Status S3Backend::ListKeys(const std::string& list_prefix,
                           const std::function<bool(const XmlNode& contents)>& visit) {
  std::string token;
  while (true) {
    HeaderList query{{"list-type", "2"}, {"max-keys", "1000"}, {"prefix", list_prefix}};
    if (!token.empty()) query.emplace_back("continuation-token", token);
    ASSIGN_OR_RETURN(HttpResponse r, Send("GET", "", query, {}, ""));
    if (!Is2xx(r.status)) return ErrorFor("LIST", list_prefix, r);
    ASSIGN_OR_RETURN(XmlNode doc, ParseXml(r.body));
    for (const XmlNode& c : doc.children) {
      if (c.name == "Contents" && !visit(c)) return Status::Ok();
    }
    token = doc.ChildText("NextContinuationToken");
    if (doc.ChildText("IsTruncated") != "true" || token.empty()) return Status::Ok();
  }
}

Status S3Backend::Delete(const ObjectId& id) {
  const std::string key = ObjectKey(id);
  ASSIGN_OR_RETURN(HttpResponse r, Send("DELETE", key, {}, {}, ""));
  if (!Is2xx(r.status) && r.status != 404) return ErrorFor("DELETE", key, r);
  return Status::Ok();
}

// ---- Refs ----

Result<std::optional<S3Backend::RefState>> S3Backend::ReadRefState(std::string_view name) {
  const std::string key = RefKey(name);
  ASSIGN_OR_RETURN(HttpResponse r, Send("GET", key, {}, {}, ""));
  if (r.status == 404) return std::optional<RefState>();
  if (!Is2xx(r.status)) return ErrorFor("GET", key, r);
  ASSIGN_OR_RETURN(ObjectId target, FileBackend::ParseRefFile(name, Describe(key), r.body));
  RefState state{target, r.Header("etag"), r.body.substr(r.body.size() - 33, 32)};
  if (state.etag.empty()) return IoError("GET " + Describe(key) + ": the answer has no ETag");
  return std::optional<RefState>(std::move(state));
}

Result<S3Backend::Probe> S3Backend::ProbeOnce() {
  std::lock_guard lock(probe_mu_);
  if (probe_) return *probe_;
  const std::string key = Key("probe/" + FreshNonce());
  // One probe request, sent again (after a backoff) while the server answers 409
  // ConditionalRequestConflict: a transient answer that says nothing about the server.
  auto send = [&](const std::string& method, const HeaderList& condition,
                  const std::string& body) -> Result<HttpResponse> {
    for (int round = 0;; ++round) {
      if (round > 0) std::this_thread::sleep_for(options_.retry.Backoff(round));
      ASSIGN_OR_RETURN(HttpResponse r, Send(method, key, {}, condition, body));
      if (r.status != 409 || round + 1 == kMaxRounds) return r;
    }
  };
  Probe probe;
  ASSIGN_OR_RETURN(HttpResponse first, send("PUT", {{"If-None-Match", "*"}}, "probe"));
  // The key is fresh (a nonce), so a 412 here is an earlier attempt of this PUT that
  // landed and whose answer was lost (Send retried it): the key exists, as wanted.
  if (!Is2xx(first.status) && first.status != 412) {
    return ErrorFor("PUT (conditional-write probe)", key, first);
  }
  ASSIGN_OR_RETURN(HttpResponse second, send("PUT", {{"If-None-Match", "*"}}, "probe"));
  probe.create_only = second.status == 412;
  ASSIGN_OR_RETURN(HttpResponse del,
                   send("DELETE", {{"If-Match", "\"dreamdb-probe-mismatch\""}}, ""));
  probe.conditional_delete = del.status == 412;
  if (!Is2xx(del.status)) (void)Send("DELETE", key, {}, {}, "");
  if (!probe.create_only && !Is2xx(second.status))
    return ErrorFor("PUT (conditional-write probe)", key, second);
  probe_ = probe;
  return probe;
}

Result<S3Backend::Cond> S3Backend::ConditionalWrite(std::string_view name,
                                                    const std::string& method,
                                                    const HeaderList& condition,
                                                    const std::string& body,
                                                    const std::string& nonce) {
  const std::string key = RefKey(name);
  const bool is_delete = method == "DELETE";
  // Whether the ref shows this write: our nonce (PUT) or no ref (DELETE).
  auto landed = [&](const std::optional<RefState>& state) {
    return is_delete ? !state.has_value() : state.has_value() && state->writer == nonce;
  };
  const auto deadline = std::chrono::steady_clock::now() + options_.retry.budget;
  bool uncertain = false;  // an earlier attempt may have been applied
  std::string last = "no attempt";
  for (int attempt = 0; attempt < options_.retry.max_attempts; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(options_.retry.Backoff(attempt));
      if (std::chrono::steady_clock::now() > deadline) break;
      counters_->AddRetry();
    }
    auto r = SendOnce(method, key, {}, condition, body);
    if (r.ok() && Is2xx(r->status)) return Cond::kApplied;
    if (r.ok() && r->status == 409) return Cond::kConcurrent;
    if (r.ok() && r->status == 404) return uncertain && is_delete ? Cond::kApplied : Cond::kMissing;
    if (r.ok() && r->status == 412) {
      ASSIGN_OR_RETURN(std::optional<RefState> state, ReadRefState(name));
      if (landed(state)) return Cond::kApplied;
      if (uncertain) {
        return Unavailable(method + " " + Describe(key) +
                           ": an earlier attempt's answer was lost and the ref has moved since; "
                           "the write may or may not have been applied");
      }
      return Cond::kPrecondition;
    }
    if (r.ok() && !IsRetryableStatus(r->status)) return ErrorFor(method, key, *r);
    // No answer or a 5xx: the write may have been applied. Read back before resending.
    uncertain = true;
    last = r.ok() ? ErrorFor(method, key, *r).message() : r.status().message();
    auto state = ReadRefState(name);
    if (state.ok() && landed(*state)) return Cond::kApplied;
  }
  return Unavailable(method + " " + Describe(key) + ": outcome unknown after retries: " + last);
}

Result<RefValue> S3Backend::Read(std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<RefState> state, ReadRefState(name));
  if (!state) return RefNotFound(name);
  return RefValue{std::string(name), state->target};
}

Status S3Backend::Create(std::string_view name, const ObjectId& target) {
  ASSIGN_OR_RETURN(Probe probe, ProbeOnce());
  if (!probe.create_only) {
    return Unsupported("the S3 server at " + options_.endpoint +
                       " ignores If-None-Match (a second create-only PUT succeeded), so refs "
                       "cannot be moved safely; use a server with conditional writes (AWS S3, "
                       "SeaweedFS, MinIO, Ceph RGW, Cloudflare R2)");
  }
  const std::string nonce = FreshNonce();
  const std::string body = FileBackend::FormatRefFile(target, nonce);
  for (int round = 0; round < kMaxRounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(options_.retry.Backoff(round));
    ASSIGN_OR_RETURN(Cond cond,
                     ConditionalWrite(name, "PUT", {{"If-None-Match", "*"}}, body, nonce));
    if (cond == Cond::kApplied) return Status::Ok();
    if (cond == Cond::kPrecondition) return AlreadyExists("ref " + Quote(name) + " already exists");
  }
  return Unavailable("create ref " + Quote(name) +
                     ": the server kept answering 409 (concurrent writes)");
}

Status S3Backend::CompareAndSwap(std::string_view name, const ObjectId& expected,
                                 const ObjectId& desired) {
  ASSIGN_OR_RETURN(Probe probe, ProbeOnce());
  if (!probe.create_only) {
    return Unsupported("the S3 server at " + options_.endpoint +
                       " ignores conditional writes (a second create-only PUT succeeded), so refs "
                       "cannot be moved safely; use a server with conditional writes (AWS S3, "
                       "SeaweedFS, MinIO, Ceph RGW, Cloudflare R2)");
  }
  for (int round = 0; round < kMaxRounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(options_.retry.Backoff(round));
    ASSIGN_OR_RETURN(std::optional<RefState> state, ReadRefState(name));
    if (!state) return RefNotFound(name);
    if (state->target != expected) return RefConflict(name, state->target, expected);
    const std::string nonce = FreshNonce();
    ASSIGN_OR_RETURN(Cond cond,
                     ConditionalWrite(name, "PUT", {{"If-Match", state->etag}},
                                      FileBackend::FormatRefFile(desired, nonce), nonce));
    if (cond == Cond::kApplied) return Status::Ok();
    if (cond == Cond::kMissing) return RefNotFound(name);
    if (cond == Cond::kPrecondition) {
      ASSIGN_OR_RETURN(std::optional<RefState> now, ReadRefState(name));
      if (!now) return RefNotFound(name);  // SeaweedFS: 412 for If-Match on a missing key
      if (now->target != expected) return RefConflict(name, now->target, expected);
      // Rewritten to the same target since our read: try again from the new ETag.
    }
  }
  return Unavailable("swap ref " + Quote(name) +
                     ": the server kept answering 409 (concurrent writes)");
}

Status S3Backend::Delete(std::string_view name, const ObjectId& expected) {
  ASSIGN_OR_RETURN(Probe probe, ProbeOnce());
  for (int round = 0; round < kMaxRounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(options_.retry.Backoff(round));
    ASSIGN_OR_RETURN(std::optional<RefState> state, ReadRefState(name));
    if (!state) return RefNotFound(name);
    if (state->target != expected) return RefConflict(name, state->target, expected);
    if (!probe.conditional_delete) {
      return Unsupported("the S3 server at " + options_.endpoint +
                         " ignores If-Match on DELETE, so ref " + Quote(name) +
                         " cannot be deleted safely");
    }
    ASSIGN_OR_RETURN(Cond cond,
                     ConditionalWrite(name, "DELETE", {{"If-Match", state->etag}}, "", ""));
    if (cond == Cond::kApplied || cond == Cond::kMissing) return Status::Ok();
    if (cond == Cond::kPrecondition) {
      ASSIGN_OR_RETURN(std::optional<RefState> now, ReadRefState(name));
      if (!now) return Status::Ok();
      if (now->target != expected) return RefConflict(name, now->target, expected);
    }
  }
  return Unavailable("delete ref " + Quote(name) +
                     ": the server kept answering 409 (concurrent writes)");
}

Status S3Backend::List(std::string_view prefix, const RefVisitor& visit) {
  const std::string refs = Key("refs/");
  const std::string list_prefix = refs + FileBackend::EncodeRefName(prefix);
  std::vector<std::string> names;
  RETURN_IF_ERROR(ListKeys(list_prefix, [&](const XmlNode& c) {
    std::string key = c.ChildText("Key");
    if (key.rfind(refs, 0) != 0) return true;
    auto name = FileBackend::DecodeRefName(std::string_view(key).substr(refs.size()));
    if (name && name->rfind(prefix, 0) == 0) names.push_back(std::move(*name));
    return true;
  }));
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(std::optional<RefState> state, ReadRefState(name));
    if (!state) continue;  // deleted since it was listed
    if (!visit(RefValue{name, state->target})) return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace dreamdb::s3
