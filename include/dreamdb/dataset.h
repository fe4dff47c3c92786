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
};

struct ScanOptions {
  std::vector<std::string> fields;  // empty = all fields
  uint64_t start = 0;               // first anchor (inclusive)
  uint64_t end = UINT64_MAX;        // last anchor (exclusive)
  uint64_t batch_rows = 8192;
  uint64_t limit = UINT64_MAX;  // stop after this many records
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
};
Result<VerifyReport> Verify(Store& store, std::string_view name = {},
                            const std::function<void(uint64_t)>& progress = {});

}  // namespace dreamdb

#endif  // DREAMDB_DATASET_H_
