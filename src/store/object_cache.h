// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// A local cache of immutable objects in front of a remote ObjectBackend (s3://),
// spec/05-backend.md §12.
//
//   DIR/dreamdb-cache-1/objects/<xx>/<id-text>   a whole object, as the store holds it
//   DIR/dreamdb-cache-1/tmp/<id-text>.<pid>.<n>  a file being written, renamed into place
//   DIR/dreamdb-cache-1/evict.lock               flock()ed by the process evicting
//
// Design notes:
//   Invariants:
//     1. A file under objects/ is complete: it appears only by rename() of a fully written
//        temp file. It may still be damaged later (disk, a user), so
//     2. no byte leaves the cache unverified: a whole-object read hashes what it read; a
//        range read is served only from a file this process hashed whole since it last
//        changed (same device, inode and size), and a file that fails is deleted and the
//        object fetched again.
//     3. Only objects are cached, never refs, and Head/List/Put/Delete always go to the
//        store: the cache can answer "what are these bytes", never "does it exist" or
//        "where does a ref point". Content addressing makes a cached object valid forever.
//   Size: after adding max_bytes/8 bytes (or on its first addition) a process scans the
//   cache under a non-blocking flock (skipped when another process is scanning) and
//   deletes the least recently used files (by mtime, refreshed on a hit at most once a
//   minute) until the total is at most 7/8 of max_bytes. Concurrent readers tolerate a
//   file vanishing (a miss) or being replaced (re-verified); an open file stays readable
//   after its unlink.
//
// Thread safety: thread-safe, and safe for any number of processes sharing DIR.

#ifndef DREAMDB_SRC_STORE_OBJECT_CACHE_H_
#define DREAMDB_SRC_STORE_OBJECT_CACHE_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "dreamdb/store.h"
#include "dreamdb/store_stats.h"  // ObjectCacheUsage
#include "src/store/stats.h"

namespace dreamdb {

struct ObjectCacheOptions {
  std::string dir;
  uint64_t max_bytes = uint64_t{1} << 30;
};

class CachingObjectBackend final : public ObjectBackend {
 public:
  // Creates DIR's layout if missing. kInvalidArgument for max_bytes == 0; kIoError naming
  // the directory when it cannot be created. Counts into `counters` (never null).
  static Result<std::shared_ptr<CachingObjectBackend>> Open(
      std::shared_ptr<ObjectBackend> inner, ObjectCacheOptions options,
      std::shared_ptr<RequestCounters> counters);
  // Files and bytes in the cache at `dir` (0 when it has none).
  static Result<ObjectCacheUsage> Usage(const std::string& dir);

  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Status PutUnsynced(const ObjectId& id, ByteView data) override {
    return inner_->PutUnsynced(id, data);
  }
  Status Sync() override { return inner_->Sync(); }
  Result<Bytes> Get(const ObjectId& id) override;
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override;
  // GetRange per range: the first caches the object and the rest read the cache; once the
  // object is known too big to cache, the store's own multi-range read for the rest (a
  // miss per range).
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                       std::span<const ObjectRange> ranges) override;
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return inner_->List(shard_prefix, visit);
  }
  Status Delete(const ObjectId& id) override;
  std::optional<StoreStats> Stats() const override { return counters_->Snapshot(); }

  // Scans the cache and evicts down to 7/8 of max_bytes (see the design notes); returns
  // the usage left. Runs on its own after enough additions; public for tests. While
  // another process evicts, returns at once (empty usage) unless `wait`.
  Result<ObjectCacheUsage> Evict(bool wait = false);

 private:
  struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t size = 0;
  };
  CachingObjectBackend(std::shared_ptr<ObjectBackend> inner, ObjectCacheOptions options,
                       std::shared_ptr<RequestCounters> counters, std::string root);
  std::string PathOf(const ObjectId& id) const;
  // The whole cached object, verified; nullopt on a miss or a damaged file (deleted).
  std::optional<Bytes> ReadCached(const ObjectId& id);
  // Fetches the whole object from the store, verifies it and adds it to the cache.
  Result<Bytes> Fetch(const ObjectId& id);
  void Insert(const ObjectId& id, ByteView data);

  const std::shared_ptr<ObjectBackend> inner_;
  const ObjectCacheOptions options_;
  const std::shared_ptr<RequestCounters> counters_;
  const std::string root_;  // DIR/dreamdb-cache-1
  std::atomic<uint64_t> added_since_scan_{0};
  std::atomic<bool> scanned_{false};
  std::atomic<uint64_t> temp_counter_{0};
  std::mutex mu_;
  std::unordered_map<ObjectId, FileIdentity> verified_;  // guarded by mu_
  std::unordered_map<ObjectId, uint64_t> too_big_;       // guarded by mu_: id -> size
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_OBJECT_CACHE_H_
