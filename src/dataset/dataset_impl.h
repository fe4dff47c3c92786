// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The private state behind dreamdb::Dataset (include/dreamdb/dataset.h).
//
// Design notes — commits (spec/14-semantics.md §3)
//
// Definitions. The *head* of a branch is the manifest its ref points at. A *mutation* is
// what a caller asks for (append, delete, evolve, meta); *building* a mutation on a base
// manifest B produces a new manifest M with parents [B].
//
// Invariants.
//  1. Every object a manifest references is put (and durable) before the manifest is put,
//     and the manifest before the ref moves to it; so a ref never points at a missing
//     object, whatever instant a process dies at.
//  2. Segments are written once per mutation, before the first attempt; rebases reuse
//     them and redo only index pages and the manifest (O(batch/512 + height) objects).
//  3. A commit lands only through Store::UpdateRef(branch, B, M): of concurrent writers
//     from the same B exactly one wins; the others rebuild on the new head.
//  4. A mutation that cannot be rebuilt on the new head (its field was dropped, the schema
//     it evolved from changed) fails with kConflict naming why; nothing else conflicts —
//     appends and deletes of one anchor resolve newest-wins.
//
// States: Build(B) -> Put(M) -> UpdateRef(B->M) --ok--> landed
//                                 `--conflict--> Backoff -> ReadHead -> Build(B')
//
// Design notes — a failed commit removes its own new objects
//
// Definitions. A *mutation* runs under a PutJournal (src/store/put_journal.h). Its
// *own* objects are the segments it writes before committing (the values of its batch)
// and the manifests its attempts put; their puts are journaled: each is checked for
// existence first, and the journal records the ones the put *created* (absent just
// before) with the modified time the put gave them. Index pages are not journaled (see
// 4). A failure is *unpublished* when no ref swap of the mutation may have succeeded:
// every UpdateRef it made returned kConflict or was refused before writing (kNotFound,
// kInvalidArgument), and the branch does not point at any object the mutation created.
//
// Rule. When a mutation fails and the failure is unpublished, it deletes each own object
// it created whose modified time is still the one its own put set, newest first.
// Deleting needs no free space, so a full disk gets back what the failed commit's
// segments took, and a commit refused for bad input after writing its segments leaves
// them behind no more.
//
// Why this is safe.
//  1. Nothing references an object only this mutation created: the mutation's manifest was
//     never published (swap refused, or never tried), and other writers cannot name an
//     object they never put (content addressing: to reference X, a writer puts X first,
//     spec/06-refs.md §6.3).
//  2. A writer that puts the same bytes after this mutation's put refreshes the object's
//     modified time (spec/05-backend.md §3.1), which makes the check keep it.
//  3. Objects that existed before the mutation's put are never candidates (the journal
//     records them as existing), so a commit never deletes another commit's object it
//     deduplicated against.
//  4. Only objects no other writer is likely to produce are candidates. A segment holds
//     the batch's own values; a manifest names its writer, time and parents. Index pages
//     are different: two writers rebasing onto one head split the same leaf into
//     byte-identical halves, so a page this commit "created" may be one another writer
//     put a moment later and published (observed: deleting the pages of lost attempts
//     broke concurrent writers' manifests). Pages, and everything of attempts whose swap
//     lost before a later attempt landed, are left to GC.
// What remains: a second writer putting byte-identical segments (identical data, written
// at the same moment) in the same millisecond as this mutation's put, between its
// existence check and its put, or between the final check and the delete. If that writer
// publishes, verify reports the missing segment and writing the same data again restores
// it (the same bytes have the same id). Killed processes, lost attempts and index pages
// are GC's, whose grace period (spec/06-refs.md §6) has no such window.
//
// Thread safety: all mutable members are guarded by mu_ (the caches by their own locks). Commits to
// one branch from all handles of a process are serialized by a per-branch mutex (BranchMutex in
// dataset.cc), held across the attempt loop; mu_ is only taken briefly inside it.

#ifndef DREAMDB_SRC_DATASET_DATASET_IMPL_H_
#define DREAMDB_SRC_DATASET_DATASET_IMPL_H_

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dreamdb/dataset.h"
#include "src/base/lru_cache.h"
#include "src/base/store_scope.h"
#include "src/btree/btree.h"
#include "src/dataset/manifest.h"
#include "src/dataset/segment_cache.h"
#include "src/store/put_journal.h"

namespace dreamdb {

namespace vindex {
class ObjectCache;  // src/dataset/vector_index.h
}

// One loaded version of a dataset: a manifest and its decoded index references.
struct Version {
  ObjectId id;
  dataset::Manifest manifest;
  btree::IndexRef index;
  btree::IndexRef tombstones;
};

// Decoded manifests and the names their genesis objects give, both immutable and verified
// when read. Like the page and header caches, a view (scoped to one store) of one
// process-wide cache, so every handle of a store reuses what any of them read: a handle
// opened at a branch or snapshot another handle already loaded (a DataLoader worker, a
// reopen) reads neither the manifest nor its genesis again. A manifest is looked up here
// only when a ref names it (refs never name a missing object): a manifest asked for by id
// may have been removed by GC since, and must then be not_found, not a cached copy. A
// store without an identity of its own (see SharesCaches in dataset.cc) gets a private
// cache.
// Thread safety: all methods may be called concurrently.
class VersionCache {
 public:
  static constexpr uint64_t kSharedBytes = uint64_t{16} << 20;
  static constexpr uint64_t kPrivateBytes = uint64_t{4} << 20;
  using Versions = ByteLruCache<ScopedId, Version, ScopedIdHash>;
  using Names = ByteLruCache<ScopedId, std::string, ScopedIdHash>;

  static std::shared_ptr<VersionCache> ForStore(std::string_view store_identity);
  static std::shared_ptr<VersionCache> Private();

  std::shared_ptr<const Version> Get(const ObjectId& manifest) {
    return versions_->Get(ScopedId{scope_, manifest});
  }
  void Insert(const ObjectId& manifest, std::shared_ptr<const Version> v, uint64_t bytes) {
    versions_->Insert(ScopedId{scope_, manifest}, std::move(v), bytes);
  }
  // The dataset name of a genesis object read and decoded before, or null.
  std::shared_ptr<const std::string> GenesisName(const ObjectId& genesis) {
    return names_->Get(ScopedId{scope_, genesis});
  }
  void InsertGenesisName(const ObjectId& genesis, std::string name) {
    const uint64_t bytes = sizeof(std::string) + name.size() + 64;
    names_->Insert(ScopedId{scope_, genesis}, std::make_shared<const std::string>(std::move(name)),
                   bytes);
  }

  VersionCache(std::shared_ptr<Versions> versions, std::shared_ptr<Names> names, uint64_t scope)
      : versions_(std::move(versions)), names_(std::move(names)), scope_(scope) {}

 private:
  std::shared_ptr<Versions> versions_;
  std::shared_ptr<Names> names_;
  uint64_t scope_;
};

// True for stores whose range reads are system calls on local files or memory (reads
// are planned for few large requests only on the others).
inline bool IsLocalStore(const Store& store) {
  const std::string& uri = store.uri();
  return uri.rfind("file://", 0) == 0 || uri.rfind("memory://", 0) == 0;
}

class DatasetImpl {
 public:
  DatasetImpl(std::shared_ptr<Store> store, std::string name, std::string branch);

  Result<std::shared_ptr<const Version>> LoadVersion(const ObjectId& id) const;
  // LoadVersion of a manifest a ref was just read to name: may be answered by the
  // process-wide cache (VersionCache), since the ref proves the manifest is stored.
  Result<std::shared_ptr<const Version>> LoadVersionNamedByRef(const ObjectId& id) const;
  // True when `id` (a manifest made at `time_ns`) is `head` or one of its ancestors.
  Result<bool> IsAncestor(const ObjectId& id, uint64_t time_ns, const ObjectId& head) const;
  // Reads the branch ref and loads its manifest.
  Result<std::shared_ptr<const Version>> ReadHead() const;
  std::shared_ptr<const Version> current() const;
  void set_current(std::shared_ptr<const Version> v);

  // Builds a new manifest from a base version. `attempt` counts from 1.
  struct Built {
    dataset::Manifest manifest;
    uint64_t objects_written = 0;
    // Merges (spec/14-semantics.md §16): parents after the base, and a lower bound for
    // time_ns (one more than the newest parent's), so time grows along every parent edge.
    std::vector<ObjectId> extra_parents;
    uint64_t min_time_ns = 0;
    // Set: land this existing manifest (a fast-forward) instead of writing one; the
    // swap moves the branch from the base to it. `manifest` is then ignored.
    std::optional<ObjectId> fast_forward;
  };
  using BuildFn = std::function<Result<Built>(const Version& base, uint32_t attempt)>;
  // The commit loop (design notes above). Runs as a Mutation of its own unless it is
  // already inside one.
  Result<CommitInfo> Commit(const BuildFn& build, const CommitOptions& options);
  // Runs `work` (puts, then a Commit) under a PutJournal; if it fails, removes the objects
  // it created when the design notes' rule allows. Nested calls run `work` as is.
  Result<CommitInfo> Mutation(const std::function<Result<CommitInfo>()>& work);

  Store& store() const { return *store_; }
  VersionCache& versions() const { return *versions_; }
  btree::PageCache* pages() const { return pages_.get(); }
  dataset::SegmentCache* segments() const { return segments_.get(); }
  dataset::SegmentHeaderCache* headers() const { return headers_.get(); }
  // Spatial-index objects (models, directory pages, buckets): spec/21-spatial-index.md.
  vindex::ObjectCache* vectors() const { return vectors_.get(); }

  // Read statistics (requests and bytes fetched through this handle).
  void CountFetch(uint64_t bytes) const {
    requests_.fetch_add(1, std::memory_order_relaxed);
    bytes_fetched_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void CountHit() const { cache_hits_.fetch_add(1, std::memory_order_relaxed); }
  ReadStats stats() const {
    return ReadStats{requests_.load(), bytes_fetched_.load(), cache_hits_.load()};
  }

  const std::shared_ptr<Store> store_;
  const std::string name_;
  const std::string branch_;  // empty: read-only

 private:
  std::shared_ptr<btree::PageCache> pages_;
  std::shared_ptr<dataset::SegmentCache> segments_;
  std::shared_ptr<dataset::SegmentHeaderCache> headers_;
  std::shared_ptr<vindex::ObjectCache> vectors_;
  mutable std::mutex mu_;
  std::shared_ptr<const Version> current_;  // guarded by mu_
  // Recently loaded versions (manifests are immutable), bounded by encoded bytes: this
  // handle's, and the store's in this process (see VersionCache for when it is asked).
  static constexpr uint64_t kVersionCacheBytes = uint64_t{4} << 20;
  mutable ByteLruCache<ObjectId, Version> own_versions_{kVersionCacheBytes};
  std::shared_ptr<VersionCache> versions_;
  mutable std::atomic<uint64_t> requests_{0};
  mutable std::atomic<uint64_t> bytes_fetched_{0};
  mutable std::atomic<uint64_t> cache_hits_{0};

  Result<CommitInfo> CommitLoop(const BuildFn& build, const CommitOptions& options,
                                bool* maybe_published);
  // The cleanup of a failed mutation (design notes).
  void RemoveCreated(const PutJournal& journal, const Status& failure);
  void DeleteIfUnchanged(const std::vector<PutJournal::Created>& created,
                         const std::unordered_set<ObjectId>& keep);
};

CommitInfo InfoFromManifest(const ObjectId& id, const dataset::Manifest& m);
std::string DefaultWriter();
uint64_t NowNs();

// The error of reading segment `id` of a version: a segment the index names that does
// not decode as the schema declares its field is damaged data, so the decoders'
// invalid_argument (meant for callers passing the wrong declaration) becomes corrupt.
inline Status SegmentReadError(const Status& s, const ObjectId& id) {
  const Status out = s.code() == StatusCode::kInvalidArgument ? Corrupt(s.message()) : s;
  return out.WithContext("segment " + id.ToString());
}

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_DATASET_IMPL_H_
