// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Store: the rules every backend shares (spec/05-backend.md §1.2, §5; spec/06-refs.md §3-§5).
// Backends move bytes; this file verifies hashes, validates ref names, keeps snapshots
// immutable and refuses refs to missing objects, so no backend can get those wrong.

#include "dreamdb/store.h"

#include <chrono>
#include <map>
#include <mutex>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "src/base/encoding.h"
#include "src/store/local/file_backend.h"
#include "src/store/memory/memory_backend.h"
#include "src/store/object_cache.h"
#include "src/store/put_journal.h"
#include "src/store/s3/s3_backend.h"
#include "src/store/stats.h"
#include "src/store/uri.h"

namespace dreamdb {
namespace {

Status MissingTarget(const ObjectId& id) {
  return NotFound("target object " + id.ToString() + " is not in the store");
}

Status ValidateShardPrefix(std::string_view prefix) {
  bool ok = prefix.size() <= 2;
  for (char c : prefix) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) {
    return InvalidArgument("object shard prefix " + Quote(prefix) +
                           " must be 0 to 2 lowercase hex digits");
  }
  return Status::Ok();
}

Status ValidateRefPrefix(std::string_view prefix) {
  if (prefix.size() > 255) {
    return InvalidArgument("ref prefix " + Quote(prefix) + " is longer than 255 bytes");
  }
  for (unsigned char c : prefix) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) {
      return InvalidArgument("ref prefix " + Quote(prefix) +
                             " may only use A-Z a-z 0-9 . _ - and '/'");
    }
  }
  return Status::Ok();
}

// One FileBackend per root per process: each caches up to 259 directory descriptors, so
// a process opening the same store many times must not multiply them. Entries expire
// with the last Store using them.
Result<std::shared_ptr<FileBackend>> SharedFileBackend(const std::string& root,
                                                       StoreOpenMode mode) {
  static std::mutex mu;
  static auto* open_roots = new std::map<std::string, std::weak_ptr<FileBackend>>();  // mu
  std::lock_guard lock(mu);
  std::weak_ptr<FileBackend>& slot = (*open_roots)[root];
  if (auto backend = slot.lock()) return backend;
  FileBackendOptions file_options;
  file_options.must_exist = mode == StoreOpenMode::kMustExist;
  auto opened = FileBackend::Open(root, std::move(file_options));
  if (!opened.ok()) {
    open_roots->erase(root);  // a refused open leaves no entry behind
    return opened.status();
  }
  std::shared_ptr<FileBackend> backend = std::move(opened).value();
  slot = backend;
  return backend;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(std::string_view uri, const StoreOptions& options) {
  ASSIGN_OR_RETURN(StoreUri parsed, ParseStoreUri(uri));
  switch (parsed.scheme) {
    case StoreUri::Scheme::kMemory: {
      MemoryBackends b = parsed.memory_name.empty() ? NewMemoryBackends()
                                                    : SharedMemoryBackends(parsed.memory_name);
      return FromBackends(parsed.canonical, b.objects, b.refs, options);
    }
    case StoreUri::Scheme::kFile: {
      auto backend = SharedFileBackend(parsed.path, options.open_mode);
      if (!backend.ok()) {
        // "no DreamDB store at '/abs/path'" names the location already.
        if (backend.status().code() == StatusCode::kNotFound) return backend.status();
        return backend.status().WithContext("store " + Quote(RedactStoreUri(uri), 200));
      }
      return FromBackends(parsed.canonical, *backend, *backend, options);
    }
    case StoreUri::Scheme::kS3: {
      // Messages quote the URI without its query (spec/05-backend.md §9.1.3).
      const std::string shown = "store " + Quote(S3UriForMessages(uri), 200);
      auto s3_options = s3::OptionsFromUri(parsed);
      if (!s3_options.ok()) return s3_options.status().WithContext(shown);
      s3_options->must_exist = options.open_mode == StoreOpenMode::kMustExist;
      auto counters = std::make_shared<RequestCounters>();
      s3_options->counters = counters;
      auto backend = s3::S3Backend::Open(*std::move(s3_options));
      if (!backend.ok()) {
        // "no DreamDB store at 's3://bucket/prefix'" and "bucket 'b' does not exist" name
        // the location already.
        if (backend.status().code() == StatusCode::kNotFound) return backend.status();
        return backend.status().WithContext(shown);
      }
      std::shared_ptr<ObjectBackend> objects = *backend;
      if (!options.cache_dir.empty()) {
        ObjectCacheOptions cache;
        cache.dir = options.cache_dir;
        cache.max_bytes = options.cache_size_bytes;
        auto cached = CachingObjectBackend::Open(*backend, std::move(cache), counters);
        if (!cached.ok()) return cached.status().WithContext(shown);
        objects = *std::move(cached);
      }
      return FromBackends(parsed.canonical, std::move(objects), *backend, options);
    }
  }
  return Internal("store URI " + Quote(RedactStoreUri(uri), 200) + ": unknown scheme");
}

std::unique_ptr<Store> Store::FromBackends(std::string_view uri,
                                           std::shared_ptr<ObjectBackend> objects,
                                           std::shared_ptr<RefBackend> refs,
                                           const StoreOptions& options) {
  return std::unique_ptr<Store>(new Store(uri, std::move(objects), std::move(refs), options));
}

Store::Store(std::string_view uri, std::shared_ptr<ObjectBackend> objects,
             std::shared_ptr<RefBackend> refs, const StoreOptions& options)
    : uri_(RedactStoreUri(uri)),
      objects_(std::move(objects)),
      refs_(std::move(refs)),
      options_(options),
      calls_(objects_->Stats() ? nullptr : std::make_shared<RequestCounters>()) {}

Store::~Store() = default;

StoreStats Store::stats() const {
  if (calls_) return calls_->Snapshot();
  return objects_->Stats().value_or(StoreStats{});
}

namespace {
Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}
}  // namespace

Result<std::vector<Bytes>> ObjectBackend::GetRanges(const ObjectId& id,
                                                    std::span<const ObjectRange> ranges) {
  std::vector<Bytes> out;
  out.reserve(ranges.size());
  for (const ObjectRange& r : ranges) {
    ASSIGN_OR_RETURN(Bytes bytes, GetRange(id, r.offset, r.length));
    out.push_back(std::move(bytes));
  }
  return out;
}

template <typename F>
auto Store::Counted(int verb, F&& call) -> decltype(call()) {
  if (!calls_) return call();
  const auto start = std::chrono::steady_clock::now();
  auto result = call();
  uint64_t bytes_in = 0;
  if constexpr (std::is_same_v<decltype(result), Result<Bytes>>) {
    if (result.ok()) bytes_in = result->size();
  } else if constexpr (std::is_same_v<decltype(result), Result<std::vector<Bytes>>>) {
    if (result.ok()) {
      for (const Bytes& b : *result) bytes_in += b.size();
    }
  }
  calls_->Record(verb, ClassOfStatus(StatusOf(result)), bytes_in, 0,
                 std::chrono::steady_clock::now() - start);
  return result;
}

// ---- Objects ----

// A put, recorded in the thread's PutJournal (src/store/put_journal.h) when one is
// installed: created when the object was absent just before the put.
Status Store::PutJournaled(const ObjectId& id, ByteView data) {
  PutJournal* journal = PutJournal::Current();
  auto put = [&] {
    const auto start = std::chrono::steady_clock::now();
    Status st = objects_->PutUnsynced(id, data);
    if (calls_) {
      calls_->Record(StoreStats::kPut, ClassOfStatus(st), 0, data.size(),
                     std::chrono::steady_clock::now() - start);
    }
    return st;
  };
  auto head = [&] { return Counted(StoreStats::kHead, [&] { return objects_->Head(id); }); };
  if (journal == nullptr) return put();
  auto before = head();
  if (!before.ok() && before.status().code() != StatusCode::kNotFound) return before.status();
  RETURN_IF_ERROR(put());
  if (before.ok()) {
    journal->RecordExisting(id);
    return Status::Ok();
  }
  auto after = head();
  // Unknown modified time: recorded as 0, which no cleanup will match (it keeps the object).
  journal->RecordCreated({id, data.size(), after.ok() ? after->modified_unix_ms : 0});
  return Status::Ok();
}

Result<ObjectId> Store::Put(ByteView data) {
  ObjectId id = ObjectId::Of(data);
  RETURN_IF_ERROR(PutJournaled(id, data));
  return id;
}

Status Store::PutWithId(const ObjectId& id, ByteView data) {
  ObjectId actual = ObjectId::Of(data);
  if (actual != id) {
    return Corrupt("object " + id.ToString() + ": supplied bytes hash to " + actual.ToString());
  }
  return PutJournaled(id, data);
}

Status Store::Sync() { return objects_->Sync(); }

Result<Bytes> Store::Get(const ObjectId& id) {
  ASSIGN_OR_RETURN(Bytes data, Counted(StoreStats::kGet, [&] { return objects_->Get(id); }));
  if (options_.verify_reads) {
    ObjectId actual = ObjectId::Of(data);
    if (actual != id) {
      return Corrupt("object " + id.ToString() + " is corrupt: stored bytes hash to " +
                     actual.ToString());
    }
  }
  return data;
}

Result<Bytes> Store::GetRange(const ObjectId& id, uint64_t offset, uint64_t length) {
  // Unverified by design: formats read by range carry their own checksums (spec/05-backend.md
  // §5.3).
  return Counted(StoreStats::kGet, [&] { return objects_->GetRange(id, offset, length); });
}

Result<std::vector<Bytes>> Store::GetRanges(const ObjectId& id,
                                            std::span<const ObjectRange> ranges) {
  // Unverified like GetRange. One call reaching the backend: one GET on a backend that does
  // not count its own requests (spec/05-backend.md §11.2).
  if (ranges.empty()) return std::vector<Bytes>();
  return Counted(StoreStats::kGet, [&] { return objects_->GetRanges(id, ranges); });
}

Result<ObjectInfo> Store::Head(const ObjectId& id) {
  return Counted(StoreStats::kHead, [&] { return objects_->Head(id); });
}

Result<bool> Store::Contains(const ObjectId& id) {
  auto info = Head(id);
  if (info.ok()) return true;
  if (info.status().code() == StatusCode::kNotFound) return false;
  return info.status();
}

Status Store::ListObjects(std::string_view shard_prefix, const ObjectVisitor& visit) {
  RETURN_IF_ERROR(ValidateShardPrefix(shard_prefix));
  return Counted(StoreStats::kList, [&] { return objects_->List(shard_prefix, visit); });
}

Status Store::DeleteObject(const ObjectId& id) {
  return Counted(StoreStats::kDelete, [&] { return objects_->Delete(id); });
}

// ---- Refs ----

Result<RefValue> Store::ReadRef(std::string_view name) {
  RETURN_IF_ERROR(ValidateRefName(name));
  return Counted(StoreStats::kGet, [&] { return refs_->Read(name); });
}

Status Store::CreateRef(std::string_view name, const ObjectId& target) {
  RETURN_IF_ERROR(ValidateRefName(name));
  // A ref never points at a missing object. GC's grace period (spec/06-refs.md §6) covers the
  // window between this check and the create.
  auto info = Head(target);
  if (info.status().code() == StatusCode::kNotFound) return MissingTarget(target);
  RETURN_IF_ERROR(info.status());
  return Counted(StoreStats::kPut, [&] { return refs_->SyncThenCreate(*objects_, name, target); });
}

Status Store::UpdateRef(std::string_view name, const ObjectId& expected, const ObjectId& desired) {
  RETURN_IF_ERROR(ValidateRefName(name));
  if (IsSnapshotRef(name)) {
    return InvalidArgument("ref " + Quote(name) + " is a snapshot; snapshots never move");
  }
  auto info = Head(desired);
  if (info.status().code() == StatusCode::kNotFound) return MissingTarget(desired);
  RETURN_IF_ERROR(info.status());
  return Counted(StoreStats::kPut,
                 [&] { return refs_->SyncThenCompareAndSwap(*objects_, name, expected, desired); });
}

Status Store::DeleteRef(std::string_view name, const ObjectId& expected, bool allow_snapshot) {
  RETURN_IF_ERROR(ValidateRefName(name));
  if (IsSnapshotRef(name) && !allow_snapshot) {
    return InvalidArgument("ref " + Quote(name) +
                           " is a snapshot; deleting it needs allow_snapshot");
  }
  return Counted(StoreStats::kDelete, [&] { return refs_->Delete(name, expected); });
}

Status Store::ListRefs(std::string_view prefix, const RefVisitor& visit) {
  RETURN_IF_ERROR(ValidateRefPrefix(prefix));
  return Counted(StoreStats::kList, [&] { return refs_->List(prefix, visit); });
}

}  // namespace dreamdb
