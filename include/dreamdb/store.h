// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The backend: a store of immutable content-addressed objects plus refs, small mutable
// pointers moved only by compare-and-swap (spec/05-backend.md, spec/06-refs.md).
//
// `Store` is the only type code above the storage layer uses. It never sees object
// kinds: it moves bytes and refs. A backend implements `ObjectBackend` and `RefBackend`;
// `Store` adds the rules every backend shares (hash verification, ref-name validation,
// snapshot immutability, "a ref never points at a missing object"), so a backend cannot
// get them wrong.
//
// Thread safety: Store, ObjectBackend and RefBackend are thread-safe: any method may be
// called concurrently from any thread. Backends that claim cross-process safety (file://,
// s3://) keep the compare-and-swap guarantees between processes too.

#ifndef DREAMDB_STORE_H_
#define DREAMDB_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"

namespace dreamdb {

struct ObjectInfo {
  ObjectId id;
  uint64_t size_bytes = 0;
  // When the object was last stored: its first Put or any later Put of the same bytes
  // (a Put of an existing object refreshes it). GC's grace period counts from here
  // (spec/06-refs.md §6). Unix time in milliseconds; 0 when the backend cannot tell.
  int64_t modified_unix_ms = 0;
};

// Bytes [offset, offset+length) of an object, as one range of a multi-range read.
struct ObjectRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The current value of a ref.
struct RefValue {
  std::string name;
  ObjectId target;
};

// What a store asked of its storage (spec/05-backend.md §11). For s3:// a request is one
// HTTP attempt (a retried request counts once per attempt, and once in `retries`); for
// file:// and memory:// it is one call of a Store method that reaches the backend, with
// its status mapped to a class (OK 2xx; not found, exists, conflict, bad input 4xx;
// no answer (unavailable) kNoAnswer; other errors 5xx). A plain value.
struct StoreStats {
  enum Verb : int { kGet, kHead, kPut, kPost, kDelete, kList, kVerbCount };
  enum Class : int { k2xx, k3xx, k4xx, k5xx, kNoAnswer, kClassCount };
  // requests[verb][class]. A ListObjectsV2 page counts as kList, a multipart step as kPost
  // or kPut.
  std::array<std::array<uint64_t, kClassCount>, kVerbCount> requests{};
  uint64_t retries = 0;       // attempts after the first (backoff, then resend)
  uint64_t bytes_in = 0;      // body bytes received
  uint64_t bytes_out = 0;     // body bytes sent
  uint64_t in_flight_ns = 0;  // summed wall time of the requests (overlapping ones add up)
  // The local object cache (StoreOptions::cache_dir); all 0 without one.
  uint64_t cache_hits = 0;           // reads answered from the cache
  uint64_t cache_misses = 0;         // reads that went to the store
  uint64_t cache_bytes_read = 0;     // bytes answered from the cache
  uint64_t cache_bytes_written = 0;  // bytes added to the cache
  uint64_t cache_corrupt = 0;        // cache files that failed verification (refetched)
  uint64_t cache_evictions = 0;      // files this process evicted

  uint64_t TotalRequests() const;
  static const char* VerbName(int verb);    // "GET", "HEAD", "PUT", "POST", "DELETE", "LIST"
  static const char* ClassName(int klass);  // "2xx", "3xx", "4xx", "5xx", "none"
};

// Called once per listed entry, in ascending key order. Return false to stop early.
using ObjectVisitor = std::function<bool(const ObjectInfo&)>;
using RefVisitor = std::function<bool(const RefValue&)>;

// ---- Backend interfaces (implemented by memory://, file://, s3://, test wrappers) ----

class ObjectBackend {
 public:
  virtual ~ObjectBackend() = default;

  // Stores `data` under `id`. REQUIRES: id == ObjectId::Of(data) (Store checks).
  // Idempotent: putting an existing object succeeds and changes nothing but its
  // modified time, which it refreshes. When this returns OK the object is durable
  // (survives a crash of this process and, for file://, of the machine).
  virtual Status Put(const ObjectId& id, ByteView data) = 0;
  // Like Put, but the object need only be durable once a later Sync() returns OK: lets a
  // writer that puts several objects pay for durability once (on file://, one fsync per
  // object and per directory, run together, instead of a directory fsync per object).
  // Readers in any process see it as soon as this returns.
  // Default: Put.
  virtual Status PutUnsynced(const ObjectId& id, ByteView data) { return Put(id, data); }
  // Makes every object put with PutUnsynced through this backend before the call durable.
  virtual Status Sync() { return Status::Ok(); }
  // The whole object, unverified (Store verifies). kNotFound if absent.
  virtual Result<Bytes> Get(const ObjectId& id) = 0;
  // Bytes [offset, offset+length) clipped to the object's end; unverified.
  // kNotFound if absent; kInvalidArgument if offset > size.
  virtual Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) = 0;
  // The ranges of one object, each exactly as GetRange gives it (clipped to the object's
  // end), in the order asked: ranges may come in any order, overlap, repeat or be empty.
  // Unverified. All or nothing: kNotFound if absent; kInvalidArgument, naming the range, if
  // any range starts past the object's end. Every range is read from the same stored
  // object (file://: one descriptor and one fstat for all of them).
  // Default: GetRange for each range in turn.
  virtual Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                               std::span<const ObjectRange> ranges);
  // Size of the object; kNotFound if absent.
  virtual Result<ObjectInfo> Head(const ObjectId& id) = 0;
  // Visits every object whose ShardPrefix() starts with `shard_prefix` ("" = all;
  // "a" = 16 shards; "ab" = one of 256), ordered by ShardPrefix(), then by text id
  // within a shard. Never holds the listing in memory at once.
  virtual Status List(std::string_view shard_prefix, const ObjectVisitor& visit) = 0;
  // Removes the object. Deleting an absent object succeeds (idempotent).
  virtual Status Delete(const ObjectId& id) = 0;
  // The requests this backend made to its storage so far, refs included when the same
  // object serves both (s3://), or nullopt when it does not count them (Store then
  // counts its own calls).
  virtual std::optional<StoreStats> Stats() const { return std::nullopt; }
};

class RefBackend {
 public:
  virtual ~RefBackend() = default;

  // REQUIRES for every method: `name` is valid (Store validates).
  // kNotFound if the ref does not exist.
  virtual Result<RefValue> Read(std::string_view name) = 0;
  // Creates the ref if it does not exist; kAlreadyExists otherwise. Atomic.
  virtual Status Create(std::string_view name, const ObjectId& target) = 0;
  // Sets the ref to `desired` if it currently points at `expected`; kConflict if it
  // points elsewhere; kNotFound if it does not exist. Atomic: of any number of
  // concurrent swaps from the same `expected`, at most one succeeds.
  virtual Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                                const ObjectId& desired) = 0;
  // Deletes the ref if it currently points at `expected`; kConflict otherwise;
  // kNotFound if absent.
  virtual Status Delete(std::string_view name, const ObjectId& expected) = 0;
  // Visits refs whose name starts with `prefix`, in ascending bytewise name order.
  virtual Status List(std::string_view prefix, const RefVisitor& visit) = 0;

  // objects.Sync(), then CompareAndSwap / Create: the ref moves only once every object
  // put through `objects` is durable (spec/05-backend.md §6.1a). A backend that is also
  // `objects` may overlap the two, e.g. make the new ref file durable in the same round of
  // fsyncs as the objects (file://, §8.4.4), as long as the ref itself changes only after
  // the objects are durable.
  virtual Status SyncThenCompareAndSwap(ObjectBackend& objects, std::string_view name,
                                        const ObjectId& expected, const ObjectId& desired) {
    Status st = objects.Sync();
    if (!st.ok()) return st;
    return CompareAndSwap(name, expected, desired);
  }
  virtual Status SyncThenCreate(ObjectBackend& objects, std::string_view name,
                                const ObjectId& target) {
    Status st = objects.Sync();
    if (!st.ok()) return st;
    return Create(name, target);
  }
};

// ---- Ref names (spec/06-refs.md) ----

// OK when `name` is a valid ref name; otherwise kInvalidArgument naming the rule broken.
Status ValidateRefName(std::string_view name);
// True when the ref is a snapshot: created once, never moved or deleted by Store.
bool IsSnapshotRef(std::string_view name);

// ---- Store ----

class RequestCounters;  // src/store/stats.h

// Whether Store::Open may create the store it names (spec/05-backend.md §2.5).
enum class StoreOpenMode {
  // Create the store if it does not exist yet (file://: the directory, its missing
  // ancestors and the layout; s3://: the marker under an empty prefix). For callers about to write:
  // creating a dataset, putting
  // objects.
  kCreateIfMissing,
  // Open an existing store only; never create or change anything on disk. A missing
  // store is kNotFound naming the location. For readers, so that a mistyped path is an
  // error instead of a new, empty store that answers every question with "nothing".
  kMustExist,
};

struct StoreOptions {
  // Verify the hash of every whole-object read (spec requires it; only benchmarks that
  // measure the raw backend turn it off).
  bool verify_reads = true;
  // The default creates, as Open always has; read-only tools pass kMustExist.
  StoreOpenMode open_mode = StoreOpenMode::kCreateIfMissing;
  // A local cache of immutable objects for a remote store (s3://; ignored for file:// and
  // memory://, which are local already): a directory shared by any number of processes,
  // bounded to cache_size_bytes (spec/05-backend.md §12). Empty: no cache.
  std::string cache_dir = {};
  uint64_t cache_size_bytes = uint64_t{1} << 30;
};

// A store URI made safe to print: the userinfo (anything between "://" and the last '@'
// of the authority, e.g. "KEY:SECRET@") becomes "***@", and the value of every query
// parameter whose name contains secret, token, passw, pwd, key, sig, credential or auth
// (ASCII case-insensitive, after percent-decoding the name) becomes "***"
// (spec/05-backend.md §2.6). In an s3:// URI every query value but those of the options
// endpoint, region, addressing and profile becomes "***", and a parameter without '='
// becomes "***" whole. Everything else is kept byte for byte, so the result still
// names the store. Every message, log line, repr and canonical URI that shows a store URI
// passes it through this function first. Pure; thread-safe.
std::string RedactStoreUri(std::string_view uri);

class Store {
 public:
  // Opens a store by URI: "memory://" (a fresh in-process store; "memory://NAME" shares
  // one store per NAME within the process), "file:///abs/path", a plain local path, or
  // "s3://bucket/prefix?endpoint=..." (spec/05-backend.md §9). With options.open_mode ==
  // kCreateIfMissing (the default) a missing file:// or s3:// store is created; with
  // kMustExist it is kNotFound ("no DreamDB store at '/abs/path' ...") and nothing is
  // created. memory:// stores have nothing to create: both modes open them.
  // kInvalidArgument for malformed URIs and unknown schemes, naming the scheme. Messages
  // quote the URI only through RedactStoreUri().
  static Result<std::unique_ptr<Store>> Open(std::string_view uri,
                                             const StoreOptions& options = {});
  // Wraps caller-provided backends (tests, fault injection). Takes ownership.
  static std::unique_ptr<Store> FromBackends(std::string_view uri,
                                             std::shared_ptr<ObjectBackend> objects,
                                             std::shared_ptr<RefBackend> refs,
                                             const StoreOptions& options = {});

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  // The canonical URI (spec/05-backend.md §2.4), redacted by RedactStoreUri().
  const std::string& uri() const { return uri_; }

  // Objects. Put is visible at once and durable before this Store moves any ref (Create/
  // UpdateRef sync first), or when Sync() returns: a ref can never survive a crash while
  // an object it reaches does not (spec/05-backend.md §3.4).
  Result<ObjectId> Put(ByteView data);
  // Makes every object put through this Store so far durable.
  Status Sync();
  // kCorrupt if `data` does not hash to `id`.
  Status PutWithId(const ObjectId& id, ByteView data);
  // kNotFound if absent; kCorrupt (naming the id) if the stored bytes do not hash to id.
  Result<Bytes> Get(const ObjectId& id);
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length);
  // Several ranges of one object in one call (ObjectBackend::GetRanges; unverified like
  // GetRange, spec/05-backend.md §3). An empty list reaches no backend and returns nothing.
  // Counted as one GET on file:// and memory:// (one call), as one GET per range on s3://
  // (one HTTP request each), spec/05-backend.md §11.2.
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id, std::span<const ObjectRange> ranges);
  Result<ObjectInfo> Head(const ObjectId& id);
  Result<bool> Contains(const ObjectId& id);
  Status ListObjects(std::string_view shard_prefix, const ObjectVisitor& visit);
  Status DeleteObject(const ObjectId& id);

  // Refs. Every method validates the name first (kInvalidArgument).
  Result<RefValue> ReadRef(std::string_view name);
  // kNotFound if `target` is not stored: a ref never points at a missing object.
  Status CreateRef(std::string_view name, const ObjectId& target);
  // kInvalidArgument for snapshot refs (they never move); kNotFound if `desired` is not
  // stored or the ref does not exist; kConflict if the ref is not at `expected`.
  Status UpdateRef(std::string_view name, const ObjectId& expected, const ObjectId& desired);
  // kInvalidArgument for snapshot refs unless `allow_snapshot`.
  Status DeleteRef(std::string_view name, const ObjectId& expected, bool allow_snapshot = false);
  Status ListRefs(std::string_view prefix, const RefVisitor& visit);

  // The requests this Store made to its storage so far (StoreStats); thread-safe.
  StoreStats stats() const;
  // The options it was opened with (the cache's directory and bound among them).
  const StoreOptions& options() const { return options_; }

  ObjectBackend& object_backend() { return *objects_; }
  RefBackend& ref_backend() { return *refs_; }

 private:
  Store(std::string_view uri, std::shared_ptr<ObjectBackend> objects,
        std::shared_ptr<RefBackend> refs, const StoreOptions& options);
  Status PutJournaled(const ObjectId& id, ByteView data);
  // Runs `call` (a backend call of verb `verb`) and, when the backend does not count its
  // own requests, records it in calls_.
  template <typename F>
  auto Counted(int verb, F&& call) -> decltype(call());

  const std::string uri_;
  const std::shared_ptr<ObjectBackend> objects_;
  const std::shared_ptr<RefBackend> refs_;
  const StoreOptions options_;
  // This Store's own count of backend calls; null when the backend counts (objects_->Stats()).
  const std::shared_ptr<RequestCounters> calls_;
};

}  // namespace dreamdb

#endif  // DREAMDB_STORE_H_
