// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The s3:// backend (spec/05-backend.md §9, spec/06-refs.md §9): objects and refs under a
// prefix of an S3 bucket, on AWS S3 or any S3-compatible server with conditional writes.
//
//   PREFIX/dreamdb-store            "dreamdb-store 1\n": the layout version
//   PREFIX/objects/<xx>/<id-text>   the object bytes
//   PREFIX/refs/<encoded-name>      the ref file of spec/06 §7.1 ('/' encoded as '~')
//   PREFIX/probe/<nonce>            conditional-write probes, deleted after use
//
// Design notes (refs):
//   Invariants:
//     1. A ref object changes only by a PUT with If-None-Match: * (create) or
//        If-Match: <the ETag read> (swap), or a DELETE with If-Match (delete), so the
//        server serialises changes: of concurrent writes from one ETag one wins.
//     2. Every ref write carries a fresh random nonce in its writer line; a write whose
//        outcome is unknown (lost response, 412 to a retry) is resolved by reading the ref
//        back and looking for that nonce.
//     3. No ref is written before the server is probed to refuse a second create-only
//        PUT (refs on a server that ignores conditions would lose updates).
//
// Thread safety: every method may be called concurrently from any thread and from any
// number of processes and machines sharing the bucket.

#ifndef DREAMDB_SRC_STORE_S3_S3_BACKEND_H_
#define DREAMDB_SRC_STORE_S3_S3_BACKEND_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "dreamdb/store.h"
#include "src/store/s3/http.h"
#include "src/store/s3/sigv4.h"
#include "src/store/stats.h"
#include "src/store/uri.h"

namespace dreamdb::s3 {

struct S3Options {
  std::string bucket;
  std::string prefix;    // without leading or trailing '/'; "" for the bucket's root
  std::string endpoint;  // "http(s)://host[:port]"
  std::string region;
  bool path_style = true;
  Credentials credentials;
  // Open an existing store only (StoreOpenMode::kMustExist, spec/05-backend.md §2.5): an
  // empty prefix is kNotFound and nothing is written.
  bool must_exist = false;
  // Objects of at least this many bytes are uploaded in parts of part_size bytes.
  uint64_t multipart_threshold = uint64_t{64} << 20;
  uint64_t part_size = uint64_t{16} << 20;
  RetryPolicy retry;
  HttpOptions http;
  // Where every request is counted (spec/05-backend.md §11); a fresh one when null.
  std::shared_ptr<RequestCounters> counters;
  // Test hook for fault injection, asked before each request with its method, key and
  // whether it carries a condition: kLoseAnswer sends the request and then reports that
  // no answer came (a lost response); kServerError answers 503 without sending.
  enum class Fault { kNone, kLoseAnswer, kServerError };
  std::function<Fault(const std::string& method, const std::string& key, bool conditional)>
      fault_hook;
};

// Resolves credentials (spec/05-backend.md §9.1.2): AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the profile's section of
// AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, else none (unsigned requests).
// kInvalidArgument when only one of the two variables is set. Never puts a secret in
// an error message.
Result<Credentials> ResolveCredentials(const std::string& profile);

// The options for a parsed s3:// URI, credentials included.
Result<S3Options> OptionsFromUri(const StoreUri& uri);

class S3Backend final : public ObjectBackend, public RefBackend {
 public:
  // Opens (and initialises, when the prefix is empty and `must_exist` is false) the store
  // (spec/05 §9.2.2).
  static Result<std::shared_ptr<S3Backend>> Open(S3Options options);
  ~S3Backend() override = default;
  S3Backend(const S3Backend&) = delete;
  S3Backend& operator=(const S3Backend&) = delete;

  // ObjectBackend.
  Status Put(const ObjectId& id, ByteView data) override;
  Result<Bytes> Get(const ObjectId& id) override;
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override;
  // A ranged GET per range, all in flight at once on the I/O pool (one round trip for
  // them); each counts as one request.
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                       std::span<const ObjectRange> ranges) override;
  Result<ObjectInfo> Head(const ObjectId& id) override;
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override;
  Status Delete(const ObjectId& id) override;
  // Every HTTP request made, ref requests included.
  std::optional<StoreStats> Stats() const override { return counters_->Snapshot(); }

  // RefBackend.
  Result<RefValue> Read(std::string_view name) override;
  Status Create(std::string_view name, const ObjectId& target) override;
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override;
  Status Delete(std::string_view name, const ObjectId& expected) override;
  Status List(std::string_view prefix, const RefVisitor& visit) override;

  // "s3://bucket/key" for messages.
  std::string Describe(std::string_view key) const;

 private:
  struct RefState {
    ObjectId target;
    std::string etag;
    std::string writer;
  };
  struct Probe {
    bool create_only = false;         // a second If-None-Match: * PUT got 412
    bool conditional_delete = false;  // DELETE with a wrong If-Match got 412
  };
  // The outcome of one conditional write.
  enum class Cond { kApplied, kPrecondition, kConcurrent, kMissing };

  explicit S3Backend(S3Options options);
  // Checks the store's marker, or writes it into an empty prefix (spec/05 §9.2.2): once
  // per store and process (InitOnce does it).
  Status Init();
  Status InitOnce(const std::string& marker_key);

  std::string Key(std::string_view relative) const;
  std::string ObjectKey(const ObjectId& id) const;
  std::string RefKey(std::string_view name) const;
  // Signs and sends one request for `key` (already prefixed; "" for the bucket).
  Result<HttpResponse> SendOnce(const std::string& method, const std::string& key,
                                const HeaderList& query, const HeaderList& headers,
                                std::string_view body);
  // SendOnce, retried per the policy on transport failures and retryable answers.
  Result<HttpResponse> Send(const std::string& method, const std::string& key,
                            const HeaderList& query, const HeaderList& headers,
                            std::string_view body);
  // The status for an unexpected answer (spec/05 §9.6.4).
  Status ErrorFor(const std::string& op, const std::string& key, const HttpResponse& r) const;
  Status PutMultipart(const std::string& key, ByteView data);
  // Pages through ListObjectsV2 for keys under `list_prefix` (already prefixed), calling
  // `visit` with each <Contents> element; stops early when it returns false.
  Status ListKeys(const std::string& list_prefix,
                  const std::function<bool(const XmlNode& contents)>& visit);

  Result<std::optional<RefState>> ReadRefState(std::string_view name);
  Result<Probe> ProbeOnce();
  // A conditional PUT or DELETE of a ref carrying `nonce` (spec/05 §9.4.6): resends on
  // lost responses after checking the ref does not already hold the nonce.
  Result<Cond> ConditionalWrite(std::string_view name, const std::string& method,
                                const HeaderList& condition, const std::string& body,
                                const std::string& nonce);

  const S3Options options_;
  std::string host_;      // the Host header
  std::string base_url_;  // scheme://host
  HttpClient http_;
  const std::shared_ptr<RequestCounters> counters_;

  std::mutex probe_mu_;
  std::optional<Probe> probe_;  // guarded by probe_mu_
};

}  // namespace dreamdb::s3

#endif  // DREAMDB_SRC_STORE_S3_S3_BACKEND_H_
