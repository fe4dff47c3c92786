// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sharded jobs (spec/14-semantics.md §19): M shards write objects in parallel, each on
// its own work branch with anchors reserved through the store, and one commit publishes
// them all in one compare-and-swap. Re-running a shard or the commit changes nothing.
//
// Thread safety: the free functions are thread-safe (they coordinate through the
// store's refs, also across processes). A ShardRun is used by one thread at a time.

#ifndef DREAMDB_JOBS_H_
#define DREAMDB_JOBS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/object_id.h"
#include "dreamdb/search.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

inline constexpr uint32_t kMaxShards = 65536;

// Which shard this process is, and of how many (spec/14 §19.8).
struct ShardIndex {
  uint32_t shard = 0;
  uint32_t of = 1;
  std::string source;  // where the values came from, for messages
};

// Looks up an environment variable (nullopt when unset). Default: std::getenv.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// The shard index from `--shard`/`--of` values (nullopt = not given), else from Slurm
// array or Kubernetes Indexed Job variables. kNotFound when neither gives one;
// kInvalidArgument naming the variable or flag when they are malformed or inconsistent.
Result<ShardIndex> ResolveShardIndex(const std::optional<std::string>& shard_flag,
                                     const std::optional<std::string>& of_flag,
                                     const EnvLookup& env = {});

// 1..64 bytes of A-Z a-z 0-9 . _ -, not starting with '.'.
Status ValidateJobId(std::string_view job);

// The byte range [begin, end) of a file of `size` bytes whose lines shard `shard` of `of`
// owns: the lines whose first byte lies in it (spec/14 §19.7).
struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;
};
ByteRange ShardByteRange(uint64_t size, uint32_t shard, uint32_t of);

// The allocator object (spec/14 §19.3).
Result<Bytes> EncodeAnchorAllocator(uint64_t next);
Result<uint64_t> DecodeAnchorAllocator(ByteView bytes);

// Reserves `n` anchors of dataset `dataset`, all >= `floor`, disjoint from every other
// reservation (spec/14 §19.4). Returns the first; the range is [first, first + n).
Result<uint64_t> ReserveAnchors(Store& store, std::string_view dataset, uint64_t n, uint64_t floor);

// ReserveAnchors when the dataset has an allocator (some job reserved anchors), nullopt
// when it has none or the anchor space above `floor` is exhausted (the caller then
// assigns anchors as spec/14 §2.3 says). Automatic appends call it.
Result<std::optional<uint64_t>> ReserveAnchorsIfAllocated(Store& store, std::string_view dataset,
                                                          uint64_t n, uint64_t floor);

// One run of one shard (spec/14 §19.5).
class ShardRun {
 public:
  // Steps 1-3: done() when the shard's result exists already; otherwise the work branch
  // is at the job's base and dataset() writes to it.
  static Result<std::unique_ptr<ShardRun>> Begin(std::shared_ptr<Store> store,
                                                 std::string_view dataset, std::string_view job,
                                                 std::string_view branch, const ShardIndex& index);
  ~ShardRun();
  ShardRun(const ShardRun&) = delete;
  ShardRun& operator=(const ShardRun&) = delete;

  bool done() const { return done_; }
  // The result manifest (when done(), or after Finish()).
  const ObjectId& result() const { return result_; }
  const ObjectId& base() const { return base_; }
  // The work branch's handle; null when done(). Other handles on work_branch() may
  // write too: Finish() publishes the branch's head in the store.
  Dataset* dataset() { return work_.get(); }
  const std::string& work_branch() const { return work_branch_; }
  // Reserves n anchors above the base's next_anchor for the next batch.
  Result<uint64_t> Reserve(uint64_t n);
  // Step 5: publishes the result ref and deletes the work branch.
  Status Finish();

 private:
  ShardRun() = default;
  std::shared_ptr<Store> store_;
  std::string dataset_;
  std::string job_;
  ShardIndex index_;
  ObjectId base_;
  uint64_t floor_ = 0;
  bool done_ = false;
  ObjectId result_;
  std::string work_branch_;
  std::unique_ptr<Dataset> work_;
};

struct JobStatus {
  std::string branch;  // the target branch
  uint32_t of = 0;     // shards
  ObjectId base;
  std::vector<uint32_t> finished;  // shards whose result exists, ascending
  std::optional<ObjectId> committed;
  // Index-build jobs (§19.10): the train stage's job-state manifest (naming the trained
  // index object); nullopt for other jobs.
  std::optional<ObjectId> trained;
};
// The job's plan, finished shards and commit; kNotFound when no shard has run.
Result<JobStatus> ReadJobStatus(Store& store, std::string_view dataset, std::string_view job);

struct JobCommitReport {
  bool already_committed = false;  // the job was committed before: nothing landed
  std::string branch;
  uint32_t shards = 0;
  ObjectId manifest;  // the branch head holding the job
  // Records the shards added: the sum over shards of (result count - base count). Zero
  // when the job was committed before.
  uint64_t added = 0;
  CommitInfo info;  // of the merge (attempts 0 when nothing landed)
  // Index-build jobs (§19.10): the field and the index object published; empty otherwise.
  std::string field;
  std::optional<ObjectId> index;
};
// Publishes every shard of the job in one commit on its branch (spec/14 §19.6).
Result<JobCommitReport> CommitJob(std::shared_ptr<Store> store, std::string_view dataset,
                                  std::string_view job, const CommitOptions& options = {});

struct JobRemoveReport {
  bool committed = false;      // the job had been committed
  uint64_t refs = 0;           // job refs deleted (plan, shard results, committed)
  uint64_t work_branches = 0;  // work branches deleted (left by shards that did not finish)
};
// Deletes job `job`'s refs and work branches (spec/14 §19.9); GC then reclaims the objects
// only they reached. A job not committed is kInvalidArgument unless `abandon` (its
// shards' records are then dropped); kNotFound when the job has no refs. Deleting refs
// only: what a commit published stays on its branch.
Result<JobRemoveReport> RemoveJob(Store& store, std::string_view dataset, std::string_view job,
                                  bool abandon);

// ---------------------------------------------------------------------------------------
// Sharded index build (spec/14 §19.10, spec/21 §8.8): a train stage, M shards, one commit.
// The index published equals the one Dataset::BuildIndex builds on the job's base with the
// same options (the same object ids while every cell's codes fit one bucket).

struct IndexJobReport {
  bool already_done = false;  // the stage had run before: nothing was written
  std::string field;
  std::string branch;  // the target branch
  uint32_t of = 0;     // shards
  ObjectId base;       // the manifest the index is built on
  // train: the trained index object (no entries); shard: the shard's index object;
  // commit: the index object published.
  ObjectId index;
  uint32_t cells = 0;
  uint64_t entries = 0;
  uint64_t buckets = 0;
  uint64_t start = 0;  // shard: its anchors [start, end)
  uint64_t end = 0;
  ObjectId manifest;  // commit: the branch head holding the index
  CommitInfo info;    // commit: of the commit (attempts 0 when nothing landed)
};

// The options `index rebuild` uses for `field` on branch `branch`: the stored index's
// algorithm, metric, bits, quantizer and seed (Dataset::RebuildIndex). kNotFound when the
// field has no index.
Result<BuildIndexOptions> StoredIndexOptions(std::shared_ptr<Store> store, std::string_view dataset,
                                             std::string_view branch, std::string_view field);

// Stage 1: plans job `job` on branch `branch`'s head with `of` shards, trains the model
// on the base exactly as Dataset::BuildIndex does and records the trained index object.
// Deterministic: a second run writes nothing (already_done).
Result<IndexJobReport> TrainIndexJob(std::shared_ptr<Store> store, std::string_view dataset,
                                     std::string_view job, std::string_view branch,
                                     std::string_view field, uint32_t of,
                                     const BuildIndexOptions& options,
                                     const BuildProgress& progress = {});

// Stage 2: shard index.shard assigns and encodes the base's values in its anchor range
// and records its buckets. options: chunk_rows, flush_bytes and threads only.
Result<IndexJobReport> RunIndexShard(std::shared_ptr<Store> store, std::string_view dataset,
                                     std::string_view job, const ShardIndex& index,
                                     const BuildIndexOptions& options = {},
                                     const BuildProgress& progress = {});

// Stage 3: merges the shards' buckets per cell, calibrates and publishes the index on the
// branch in one commit. options: calibrate, calibration_queries and threads only.
Result<IndexJobReport> CommitIndexJob(std::shared_ptr<Store> store, std::string_view dataset,
                                      std::string_view job, const BuildIndexOptions& options = {},
                                      const CommitOptions& commit = {},
                                      const BuildProgress& progress = {});

}  // namespace dreamdb

#endif  // DREAMDB_JOBS_H_
