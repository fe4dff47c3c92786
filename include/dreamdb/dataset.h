// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Dataset: a versioned collection of records in a Store (spec/13-manifests.md,
// spec/14-semantics.md).
//
// A Dataset object is a handle on one ref (a branch, writable) or one manifest (a
// snapshot or a manifest id, read-only). Writes commit one manifest each and move the
// branch by compare-and-swap, rebasing automatically when another writer moved it first.
//
// Thread safety: a Dataset is thread-safe; concurrent AppendMany calls on one handle are
// serialized internally, and handles in other threads or processes on the same branch
// are reconciled by compare-and-swap + rebase. Readers (iterators) hold an immutable
// manifest and never see later commits.

#ifndef DREAMDB_DATASET_H_
#define DREAMDB_DATASET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "dreamdb/search.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

class DatasetImpl;

struct CommitOptions {
  std::string message;
  std::string writer;  // default: "<user>@<host>:<pid>"
};

struct CommitInfo {
  ObjectId manifest;
  std::vector<ObjectId> parents;
  std::string writer;
  std::string message;
  uint64_t time_ns = 0;
  uint64_t count = 0;               // live records after the commit
  uint64_t added = 0;               // new anchors
  uint64_t replaced = 0;            // existing anchors whose fields were replaced
  uint64_t deleted = 0;             // anchors tombstoned
  std::vector<std::string> fields;  // fields written
  uint32_t schema_version = 0;
  uint32_t attempts = 1;  // compare-and-swap attempts this commit took (1 = no rebase)
  uint64_t objects_written = 0;
  // History(): GC's retention cut the history before this version (spec/06-refs.md §6.10):
  // its parents are not visited (they may be gone).
  bool history_pruned = false;
};

// How a merge resolves a conflict (spec/14-semantics.md §16.6).
enum class MergePolicy : uint8_t {
  kFail,    // no commit; kConflict naming the conflicts (the default)
  kOurs,    // keep the target branch's side
  kTheirs,  // take the source's side (with several sources, the later one)
};

// Parses a policy's name ("fail", "ours", "theirs"); kInvalidArgument naming the value
// otherwise.
Result<MergePolicy> ParseMergePolicy(std::string_view name);

struct MergeOptions {
  MergePolicy policy = MergePolicy::kFail;
  bool no_ff = false;   // write a merge manifest even when a fast-forward is possible
  std::string message;  // default: "merge <sources> into <branch>"
  std::string writer;   // default: "<user>@<host>:<pid>"
};

// What a merge did (optional output of Dataset::Merge / MergeMany).
struct MergeReport {
  bool up_to_date = false;        // every source was already merged: nothing landed
  bool fast_forward = false;      // the branch moved to the source's manifest
  std::vector<ObjectId> sources;  // resolved source manifests, in the order given
  // Per merged source: its best common ancestors (several in a criss-cross; they are
  // merged into a virtual base first).
  std::vector<std::vector<ObjectId>> merge_bases;
  uint64_t conflicts = 0;  // conflicts found (resolved by the policy, or failed)
  std::vector<std::string> conflict_descriptions;  // the first few, for people
  // Spatial indexes (spec/14 §16.8): fields whose index took the vectors the merge added
  // or replaced, and fields whose index was left out because the merged schema no longer
  // has them as embeddings.
  std::vector<std::string> indexes_updated;
  std::vector<std::string> indexes_dropped;
};

// Compaction (spec/14-semantics.md §18).
struct CompactOptions {
  std::string message;  // default: "compact"
  std::string writer;   // default: "<user>@<host>:<pid>"
  // Whole compactions tried: a concurrent commit that moves the branch while one runs makes
  // it start again from the new head (the segments already written are reused when their
  // bytes come out equal); after the last attempt kConflict.
  uint32_t max_attempts = 3;
  // Called now and then with a phase ("read", "write", "index", "commit") and a count
  // (records, or segments and pages written). Called last with "commit" just before the
  // compare-and-swap.
  std::function<void(std::string_view phase, uint64_t done)> progress;
};

// What a compaction did (optional output of Dataset::Compact).
struct CompactReport {
  bool changed = false;  // false: the head was already compact; nothing landed
  uint64_t records = 0;
  uint32_t attempts = 0;
  // Distinct segments and anchor-index pages the head reaches, and the segments' bytes,
  // before and after.
  uint64_t segments_before = 0, segments_after = 0;
  uint64_t segment_bytes_before = 0, segment_bytes_after = 0;
  uint64_t pages_before = 0, pages_after = 0;
  uint64_t spatial_indexes = 0;  // spatial indexes whose entries were carried over
};

struct ScanOptions {
  std::vector<std::string> fields;  // empty = all fields
  uint64_t start = 0;               // first anchor (inclusive)
  uint64_t end = UINT64_MAX;        // last anchor (exclusive)
  uint64_t batch_rows = 8192;
  uint64_t limit = UINT64_MAX;  // stop after this many records
  // Anchors only: batches carry no columns and the scan reads only the anchor index
  // pages, never a segment byte (listing the records costs O(index), not O(data)).
  // `fields` must then be empty.
  bool anchors_only = false;
};

// A stream of record batches in ascending anchor order. Memory is bounded by the batch
// size and the dataset cache, whatever the dataset size.
class BatchReader {
 public:
  virtual ~BatchReader() = default;
  // Next batch; nullopt at the end.
  virtual Result<std::optional<Batch>> Next() = 0;
  virtual const Schema& schema() const = 0;  // the projected schema
};

// Consecutive records (in anchor order) that one reader scans together: see
// Dataset::ReadUnits.
struct ReadUnit {
  uint64_t first = 0;    // first anchor (inclusive)
  uint64_t last = 0;     // last anchor (inclusive)
  uint64_t records = 0;  // live records in [first, last]
};

struct ReadStats {
  uint64_t requests = 0;       // backend get/range calls
  uint64_t bytes_fetched = 0;  // bytes returned by the backend
  uint64_t cache_hits = 0;
};

struct DiffEntry {
  enum class Kind : uint8_t { kAdded, kRemoved, kChanged };
  uint64_t anchor;
  Kind kind;
  std::vector<std::string> fields;  // kChanged: fields whose value location differs
};

class Dataset {
 public:
  // Creates a dataset named `name` with branch "main". kAlreadyExists if it exists.
  static Result<std::unique_ptr<Dataset>> Create(std::shared_ptr<Store> store,
                                                 std::string_view name, const Schema& schema,
                                                 const CommitOptions& options = {});
  // Opens branch `branch` (default main) for reading and writing.
  static Result<std::unique_ptr<Dataset>> Open(std::shared_ptr<Store> store, std::string_view name,
                                               std::string_view branch = "main");
  // Opens read-only at a snapshot label, a branch name ("branch:NAME" or a plain name that
  // is not a snapshot), or a manifest id (text form).
  static Result<std::unique_ptr<Dataset>> OpenAt(std::shared_ptr<Store> store,
                                                 std::string_view name, std::string_view at);

  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& name() const;
  // The branch this handle writes to; empty when read-only.
  const std::string& branch() const;
  bool read_only() const;
  // The manifest this handle currently reads (advanced by its own commits and Refresh()).
  ObjectId head() const;
  Schema schema() const;
  uint64_t Count() const;
  // Re-reads the branch head (read-only handles: no-op).
  Status Refresh();

  // Writes.
  Result<CommitInfo> AppendMany(const Batch& batch, const CommitOptions& options = {});
  Result<CommitInfo> Delete(const std::vector<uint64_t>& anchors,
                            const CommitOptions& options = {});
  // Adds a field (optional) with values for existing anchors (a "layer").
  Result<CommitInfo> AddLayer(const FieldSpec& field, const std::vector<uint64_t>& anchors,
                              const Column& values, const CommitOptions& options = {});
  Result<CommitInfo> EvolveSchema(const Schema& next, const CommitOptions& options = {});
  Result<CommitInfo> SetMeta(const std::map<std::string, std::string>& meta,
                             const CommitOptions& options = {});
  std::map<std::string, std::string> Meta() const;
  // Merges `source` (a branch name, "branch:NAME", a snapshot label or a manifest id, as
  // OpenAt resolves it) into this handle's branch (spec/14-semantics.md §16): a
  // fast-forward when the branch head is an ancestor of the source (unless no_ff), else
  // one merge manifest with parents [head, source], the three-way union by anchor of both
  // sides' changes since their best common ancestor. kConflict naming up to 10 conflicts
  // under MergePolicy::kFail; schema type clashes are kConflict under every policy. A
  // source already merged changes nothing (the result names the unchanged head,
  // attempts 0). Commits like every write (compare-and-swap + rebase: a concurrent
  // commit on the branch re-runs the merge). Costs O(changed anchors x height) pages.
  Result<CommitInfo> Merge(std::string_view source, const MergeOptions& options = {},
                           MergeReport* report = nullptr);
  // Merges several sources at once into one octopus manifest with parents
  // [head, sources...] (sources already merged, or ancestors of another source, are left
  // out). Sources are applied in order; under kTheirs a later source wins a conflict
  // with an earlier one.
  Result<CommitInfo> MergeMany(const std::vector<std::string>& sources,
                               const MergeOptions& options = {}, MergeReport* report = nullptr);

  // Rewrites the head's records into few large segments and a fresh, full anchor index
  // in one commit whose content is the head's (same anchors, values, order, tombstones,
  // schema, meta and counters; spec/14-semantics.md §18): values of deleted and replaced
  // records and of dropped fields are no longer reached, spatial indexes carry their codes
  // over to the new locations. Older versions stay readable until GC removes what only
  // they reach. A head that is already compact lands nothing (report->changed false, the
  // result names the head, attempts 0). A branch handle only.
  Result<CommitInfo> Compact(const CompactOptions& options = {}, CompactReport* report = nullptr);

  // Refs.
  Status Snapshot(std::string_view label);     // of head(); kAlreadyExists if taken
  Status Branch(std::string_view new_branch);  // from head(); kAlreadyExists if taken

  // Reads.
  Result<std::unique_ptr<BatchReader>> Scan(const ScanOptions& options = {}) const;
  // Records whose anchor is a time in [since_ns, until_ns) (anchors as nanoseconds since
  // the Unix epoch), in time order: "the data of the last 24 hours" without a full scan.
  // Costs O(log N + records returned).
  Result<std::unique_ptr<BatchReader>> TimeAnchorIter(uint64_t since_ns, uint64_t until_ns,
                                                      const std::vector<std::string>& fields = {},
                                                      uint64_t batch_rows = 8192) const;
  // Splits head()'s records into units of consecutive records for parallel readers
  // (DataLoader workers, ranks) that each scan whole units. A unit ends where the values
  // of one of `fields` (all when empty) move to another segment once the unit holds at
  // least `min_records` records, and at `max_records` records at the latest. A scan
  // reads whole segments, so readers that scan whole units read each segment once unless
  // a segment holds more than `max_records` of them. Reads only anchor-index pages, never
  // a segment; O(index pages) time and O(units) memory. kInvalidArgument for an unknown
  // field, min_records 0 or max_records < min_records.
  Result<std::vector<ReadUnit>> ReadUnits(const std::vector<std::string>& fields,
                                          uint64_t min_records = 1,
                                          uint64_t max_records = UINT64_MAX) const;
  // Values of `fields` for `anchors`, in the order given; a missing or deleted anchor is
  // kNotFound naming it unless `allow_missing` (then its row is all null and
  // `found[i]` is false).
  Result<Batch> Take(const std::vector<uint64_t>& anchors, const std::vector<std::string>& fields,
                     bool allow_missing = false, std::vector<bool>* found = nullptr) const;
  // History from head() following first parents (then others), newest first.
  Status History(const std::function<bool(const CommitInfo&)>& visit, uint64_t limit = 0) const;
  // Differences from this dataset's head to `other` manifest.
  Status Diff(const ObjectId& other, const std::function<bool(const DiffEntry&)>& visit) const;
  ReadStats read_stats() const;

  // Vector search (spec/21-spatial-index.md; option and result types in dreamdb/search.h).
  // Trains the spatial index of embedding field `field` on a sample of head(), assigns
  // every record, and commits a manifest that points at it (a branch handle only).
  Result<CommitInfo> BuildIndex(std::string_view field, const BuildIndexOptions& options = {},
                                const BuildProgress& progress = {},
                                const CommitOptions& commit = {});
  // The state of `field`'s index in head(): built or not, cells, entries, stale entries.
  Result<IndexInfo> IndexStatus(std::string_view field) const;
  // The same, plus cell balance and recall drift as `options` asks (spec/21 §8.6).
  Result<IndexInfo> IndexStatus(std::string_view field, const IndexStatusOptions& options) const;
  // Retrains `field`'s index from scratch with its stored settings (algorithm, metric, bits,
  // quantizer, seed, graph degree; cells as the schema declares, else the default for the
  // current size) and commits it as BuildIndex does. kNotFound when no index is built.
  Result<CommitInfo> RebuildIndex(std::string_view field, const BuildProgress& progress = {},
                                  const CommitOptions& commit = {});
  // One maintenance step of `field`'s ivf index (spec/21 §8.7): splits overfull cells,
  // merges tiny ones into their nearest neighbours, re-encodes the entries of the touched
  // cells only (other cells' buckets are reused), recalibrates and commits. A balanced
  // index lands nothing (report->changed false, the result names the head, attempts 0).
  Result<CommitInfo> StepIndex(std::string_view field, const StepIndexOptions& options = {},
                               StepIndexReport* report = nullptr,
                               const BuildProgress& progress = {},
                               const CommitOptions& commit = {});
  // The k nearest records of each of `nq` queries (row-major nq x dim) in head(): through
  // the field's index when built (and !options.exact), else by brute force.
  Result<SearchResults> Search(std::string_view field, const float* queries, size_t nq, size_t dim,
                               const SearchOptions& options = {}) const;

 private:
  explicit Dataset(std::unique_ptr<DatasetImpl> impl);
  std::unique_ptr<DatasetImpl> impl_;
};

// Lists dataset names in the store (those with a branches/main ref or any branch).
Status ListDatasets(Store& store, const std::function<bool(std::string_view)>& visit);
// Checks every object reachable from every ref of every dataset (or of `name` only) is
// present and intact. Calls `progress(objects_checked)` now and then.
struct VerifyReport {
  uint64_t refs = 0;
  uint64_t objects = 0;
  uint64_t bytes = 0;
  std::vector<std::string> problems;  // empty when healthy
  // Sharded (VerifyShard.of > 1): the distinct segments left to other shards, and a
  // digest of the refs walked with their targets (shards that agree on it checked the
  // same state of the store).
  uint64_t segments_skipped = 0;
  ObjectId roots;
  // Versions whose values of a field were reclaimed by per-field retention (spec/06-refs.md
  // §6.12): not problems. A version is listed when the walk found a segment of the field
  // missing through it (a page several such versions share is walked under the first).
  struct RetainedWithout {
    ObjectId manifest;
    std::string field;
  };
  std::vector<RetainedWithout> retained_without;
};
Result<VerifyReport> Verify(Store& store, std::string_view name = {},
                            const std::function<void(uint64_t)>& progress = {});
// One shard of a verify (spec/14 §12.6): every shard walks every manifest and index page;
// shard N of M fetches and decodes the segments whose id's first 4 digest bytes, as a
// big-endian number x, have ⌊x·M / 2^32⌋ = N, and shard 0 checks the spatial indexes.
struct VerifyShard {
  uint32_t shard = 0;
  uint32_t of = 1;
};
Result<VerifyReport> Verify(Store& store, std::string_view name,
                            const std::function<void(uint64_t)>& progress,
                            const VerifyShard& shard);

}  // namespace dreamdb

#endif  // DREAMDB_DATASET_H_
