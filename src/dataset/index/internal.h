// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// What the files of the spatial-index operations (src/dataset/index/: field values,
// search, graph search, append, verify, build) share: fetching a field's values, loading
// spatial objects through the handle's cache, and the search context and candidates
// (spec/21-spatial-index.md). Internal to src/dataset; the public API is dreamdb/search.h
// and src/dataset/vector_index.h.
//
// Thread safety: functions are safe to call concurrently on one DatasetImpl (its caches
// are thread-safe); the structs are plain values owned by one call.

#ifndef DREAMDB_SRC_DATASET_INDEX_INTERNAL_H_
#define DREAMDB_SRC_DATASET_INDEX_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "dreamdb/search.h"
#include "dreamdb/status.h"
#include "src/btree/btree.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/vector_index.h"
#include "src/index/ivf.h"
#include "src/index/metric.h"

namespace dreamdb::vindex {

using vector::Metric;
using vector::ScoreOf;

// ---------------------------------------------------------------------------------------
// Field values and spatial objects (field_values.cc)

// Values of one field for sorted unique anchors: per anchor, a column and row (or none).
struct FieldValues {
  std::vector<std::shared_ptr<const Column>> columns;
  std::vector<int32_t> col;  // per anchor: index into columns, -1 = no value
  std::vector<uint64_t> row;
  bool Has(size_t i) const { return col[i] >= 0 && columns[col[i]]->IsValid(row[i]); }
  const Column& ColumnOf(size_t i) const { return *columns[col[i]]; }
};

template <typename T>
Result<std::shared_ptr<const T>> Load(const DatasetImpl& impl, const ObjectId& id,
                                      const std::function<Result<T>(ByteView)>& decode,
                                      const std::function<uint64_t(const T&)>& size,
                                      std::string_view what, bool count) {
  if (auto hit = impl.vectors()->Get<T>(id)) {
    if (count) impl.CountHit();
    return hit;
  }
  auto bytes = impl.store().Get(id);
  if (!bytes.ok()) return bytes.status().WithContext(std::string(what) + " " + id.ToString());
  if (count) impl.CountFetch(bytes->size());
  auto v = decode(*bytes);
  if (!v.ok()) return v.status().WithContext(std::string(what) + " " + id.ToString());
  auto shared = std::make_shared<const T>(std::move(*v));
  impl.vectors()->Insert(id, shared, size(*shared) + 64);
  return std::shared_ptr<const T>(shared);
}

// Visits every (anchor, location, vector) of `field` in [start, end) of a version, in
// anchor order, a leaf at a time. Segments are fetched whole and kept while in use.
using VectorVisitor =
    std::function<Status(size_t n, const uint64_t* anchors, const ObjectId* const* segs,
                         const uint32_t* rows, const float* const* vecs)>;

using ModelPtr = std::shared_ptr<const vector::IvfModel>;

// The exact distance of x to q under `metric` (q_norm2 = |q|^2; spec/21 §7.1).
float Distance(Metric metric, const float* q, float q_norm2, const float* x, size_t dim);

// A reader of segment `id` of `spec`: from the handle's kept header, else opened (on an
// object store with a first request sized for min_rows rows: the whole object when
// small) and its header kept.
Result<columnar::SegmentReader> OpenSegment(const DatasetImpl& impl, const FieldSpec& spec,
                                            const ObjectId& id, uint64_t min_rows);

// A segment of a field seen in the anchor index: its id, location tag (SegmentTag) and
// the highest row seen there + 1.
struct SegmentHint {
  ObjectId id;
  uint64_t tag = 0;
  uint32_t rows = 0;
};
// Leaves read by SampleFieldSegments, at most; segments it names, at most.
inline constexpr size_t kSampledLeaves = 8;
inline constexpr size_t kHintedSegments = 8;
// On an object store, the segments of `spec` that a few anchor-index leaves (evenly
// spread, read together) name: where a one-shot search's re-rank vectors most likely
// are, so their headers can be read with the buckets and the vectors with the
// candidates' leaves (spec/21 §7.10). Empty on a local store, for a tree of another
// height, when the leaves name more than kHintedSegments segments, or when a read fails
// (a hint only: the search reads what it needs anyway and reports errors itself).
std::vector<SegmentHint> SampleFieldSegments(const DatasetImpl& impl, const Version& v,
                                             const FieldSpec& spec);
// Opens (and keeps the headers of) the hinted segments not yet held, at once; errors are
// left for the reads that need them.
void PrefetchSegmentHeaders(const DatasetImpl& impl, const FieldSpec& spec,
                            const std::vector<SegmentHint>& segments);

// Rows of one segment: whole (cached) when at least half its rows are needed, else the
// checksum blocks of those rows; the bool says whether the column holds every row.
Result<std::pair<std::shared_ptr<const Column>, bool>> FetchSegmentRows(
    const DatasetImpl& impl, const FieldSpec& spec, const ObjectId& id,
    const std::vector<uint32_t>& rows);

// The values of `spec` at the entries' locations (entries of sorted unique anchors).
Result<FieldValues> FetchField(const DatasetImpl& impl,
                               const std::vector<std::optional<btree::Entry>>& entries,
                               const FieldSpec& spec);

Status WalkVectors(const DatasetImpl& impl, const Version& v, const FieldSpec& spec, uint64_t start,
                   uint64_t end, const VectorVisitor& visit);

Result<std::shared_ptr<const IndexObject>> LoadIndex(const DatasetImpl& impl, const ObjectId& id);
Result<std::shared_ptr<const DirPage>> LoadPage(const DatasetImpl& impl, const ObjectId& id);
Result<Metric> MetricOf(std::string_view name);
Result<ModelPtr> LoadModel(const DatasetImpl& impl, const ObjectId& id);

// Loads the directory pages `which` (indexes into ix.pages) into the handle's cache, the
// ones not cached at once.
Status PrefetchPages(const DatasetImpl& impl, const IndexObject& ix,
                     const std::vector<uint32_t>& which);
// The bucket ids of `cells` (any order) in an index: one directory page per page touched,
// the missing ones fetched together.
Result<std::vector<std::vector<ObjectId>>> BucketsOf(const DatasetImpl& impl, const IndexObject& ix,
                                                     const std::vector<uint32_t>& cells);
// Per cell, how many buckets the directory lists (0: the cell is empty).
Result<std::vector<uint32_t>> CellBucketCounts(const DatasetImpl& impl, const IndexObject& ix);
// A bucket's codes hold one vector per entry (scans index the entries by code position).
Status CheckBucketCodes(const vector::IvfModel& model, const Bucket& b, const ObjectId& id);
// Buckets through the cache; the ones not cached fetched in parallel.
Result<std::vector<std::shared_ptr<const Bucket>>> FetchBuckets(const DatasetImpl& impl,
                                                                const std::vector<ObjectId>& ids);

// ---------------------------------------------------------------------------------------
// Search (search.cc, graph_search.cc)

struct Cand {
  uint64_t handle = 0;  // exact: the anchor; IVF: (bucket << 32) | entry
  uint64_t anchor = 0;
  float distance = 0;
  float score = 0;
};

struct SearchContext {
  const DatasetImpl* impl = nullptr;
  const Version* version = nullptr;
  const FieldSpec* spec = nullptr;
  Metric metric = Metric::kCosine;
  const SearchOptions* options = nullptr;
  std::vector<const FieldSpec*> filter_specs;  // per options->where
  // The id of the spatial index object searched, when it is stored (a search through the
  // dataset); null while a build calibrates an index not yet stored. Keys the warm state
  // a graph search keeps between queries (GraphSearchOne).
  const ObjectId* index_id = nullptr;
  // A one-shot search on an object store: where the re-rank's vectors most likely are
  // (SampleFieldSegments); empty otherwise.
  std::vector<SegmentHint> segment_hints;
};

// The entries of one bucket or node page (borrowed), named by its object id.
struct EntryList {
  ObjectId id;
  const std::vector<uint64_t>* anchors = nullptr;
  const std::vector<uint64_t>* seg_tags = nullptr;
  const std::vector<uint32_t>* rows = nullptr;
};

// Keeps the candidates (best first) that pass the scalar filters; at most k.
Result<std::vector<Cand>> ApplyFilters(const SearchContext& ctx, const std::vector<Cand>& cands,
                                       size_t k, std::vector<uint64_t>* rejected_handles);
// Brute force over every stored vector in the range, for all queries at once.
Status ExactSearch(const SearchContext& ctx, const float* queries, size_t nq, size_t dim,
                   std::vector<std::vector<Cand>>* results, uint64_t* scanned);
// The LiveEntries of each list in this version (spec/21 §7.10), cached.
Result<std::vector<std::shared_ptr<const LiveEntries>>> LoadLive(
    const SearchContext& ctx, const std::vector<EntryList>& lists);
// The stored vectors at `keys`, through the row cache; null where the value is null.
Result<std::vector<std::shared_ptr<const std::vector<float>>>> LoadRows(
    const SearchContext& ctx, const std::vector<RowKey>& keys);
// Exact distances of re-rank candidates, each an entry of a LiveEntries (+inf when not
// live, null or not finite).
Status LiveDistances(const SearchContext& ctx, const vector::IvfModel& model, const float* q,
                     const std::vector<std::pair<const LiveEntries*, size_t>>& cands, float* out);
// Exact distances of bucket handles ((bucket << 32) | entry); candidates of buckets
// without LiveEntries are located, and the stale ones added to `stale`.
Status BucketDistances(const SearchContext& ctx, const vector::IvfModel& model, const float* q,
                       const std::vector<std::shared_ptr<const Bucket>>& buckets,
                       const std::vector<std::shared_ptr<const LiveEntries>>& states,
                       const uint64_t* ids, size_t n, float* out,
                       std::unordered_set<uint64_t>* stale);
// Candidates (best first) without repeated anchors.
std::vector<Cand> Dedup(const std::vector<Cand>& cands);
// The cache key of a warm handle's table by position (spec/21 §7.10) of kind `kind` for the
// index ctx.index_id (not null) in ctx's version.
ObjectId WarmStateKey(std::string_view kind, const SearchContext& ctx);
// One query through an IVF/IMI/LSH index (spec/21 §7.2).
Result<std::vector<Cand>> IvfSearchOne(const SearchContext& ctx, const vector::IvfModel& model,
                                       const IndexObject& ix, const float* q, uint32_t nprobe,
                                       const uint32_t* cell_sizes, uint64_t* scanned);
// One query through a graph index (spec/21 §7.8).
Result<std::vector<Cand>> GraphSearchOne(const SearchContext& ctx, const vector::IvfModel& model,
                                         const IndexObject& ix, const float* q, uint64_t* scanned);

// ---------------------------------------------------------------------------------------
// Append and merge (append.cc), build (build.cc)

Status IndexMerged(DatasetImpl& impl, const btree::IndexRef& merged,
                   const std::map<std::string, std::vector<uint64_t>>& changed,
                   dataset::Manifest* m, uint64_t* objects_written,
                   std::vector<std::string>* updated);

// ---------------------------------------------------------------------------------------
// Calibration and recall measurement (build.cc; spec/21 §8.5)

// A graph's calibration sample is held out of the graph and stored in its tail: a
// sample vector that were a node would lead the walk to its neighbours along its own
// edges and overstate recall (12k Gaussian 32-d: ef 15 reaches 0.95 on such a sample,
// fresh queries need 48). Held out, the sample vectors are queries the graph has not seen.
struct HeldOut {
  std::vector<uint64_t> anchors;
  std::vector<float> vectors;
};

// Query vectors taken from the indexed values, each with its exact 10 nearest other
// records in the version (a vector's own record is left out of every answer: it would
// match itself).
struct RecallSample {
  std::vector<uint64_t> self;                // per query: its own record
  std::vector<float> queries;                // row-major, dim floats each
  std::vector<std::vector<uint64_t>> truth;  // per query: the 10 nearest others, sorted
  uint64_t relevant = 0;                     // sum of truth sizes
  // The first 10 of `cands` (best first) other than query q's own record.
  std::vector<uint64_t> Others(const std::vector<Cand>& cands, size_t q) const;
};

// The sample of spec/21 §8.5 step 1-2: every ⌊values / nq⌋-th finite (cosine: non-zero)
// value of `spec` in anchor order, at most nq of them, or `held` when given; the truth by
// brute force over `version`.
Result<RecallSample> SampleRecall(const DatasetImpl& impl, const Version& version,
                                  const FieldSpec& spec, Metric metric, uint64_t values,
                                  uint64_t nq, const HeldOut* held, uint32_t threads);

// recall@10 over the sample (units of 10^-4) of `ix` searched with `setting` (ivf, imi,
// lsh: cells probed; graph: beam width). `cell_sizes`: as IvfSearchOne takes it.
Result<uint32_t> SampleRecallAt(const DatasetImpl& impl, const Version& version,
                                const FieldSpec& spec, const vector::IvfModel& model,
                                const IndexObject& ix, const RecallSample& sample, uint32_t setting,
                                const uint32_t* cell_sizes, uint32_t threads);

// Calibration (spec/21 §8.5): recall@k of `ix` (its objects already put) against brute
// force over `version`, on a sample of the vectors it indexes, per setting; stores the
// curve and the setting reaching 0.95 in ix->calibration. `held`: the graph's held-out
// sample (graph indexes; null otherwise).
Status Calibrate(const DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                 const BuildIndexOptions& options, IndexObject* ix, const HeldOut* held);

// Commits a built index object (spec/21 §8.1 step 6), rebasing onto a moved branch (§8.2).
Result<CommitInfo> CommitBuiltIndex(DatasetImpl& impl,
                                    const std::shared_ptr<const Version>& version,
                                    const FieldSpec& spec, const ObjectId& ix_id, uint64_t objects,
                                    const BuildProgress& progress, const CommitOptions& commit);

// ---------------------------------------------------------------------------------------
// The stages of an ivf/imi/lsh build (build.cc; spec/21 §8.1), shared by Dataset::BuildIndex
// and the sharded build (index_job.cc, spec/21 §8.8).

// A build's options resolved against the field's declared index.
struct BuildSettings {
  Metric metric = Metric::kCosine;
  uint32_t bits = 0;
  std::string algorithm_name;
  vector::IvfParams::Algorithm algorithm = vector::IvfParams::Algorithm::kIvf;
  vector::IvfParams::Quantizer quantizer = vector::IvfParams::Quantizer::kRaBitQ;
  bool graph = false;
};
Result<BuildSettings> ResolveBuildSettings(const FieldSpec& spec, const BuildIndexOptions& options,
                                           std::string_view op);

// Steps 1-2: the seeded reservoir sample of every value in anchor order, the trained model
// (put, and cached), and the index object's settings (no pages, entries or buckets yet).
struct TrainedIndex {
  ModelPtr model;
  IndexObject ix;
  uint64_t values = 0;  // the values sampled from (finite; cosine: non-zero)
};
Result<TrainedIndex> TrainIvf(DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                              const BuildIndexOptions& options, const BuildSettings& settings,
                              const BuildProgress& progress);

// Steps 3-4 over the anchors [start, end): assigns and encodes chunk by chunk in anchor
// order; puts one bucket per cell with entries (more when options.flush_bytes is reached),
// appended to (*dir)[cell]; adds to ix->entries, ix->buckets and *objects. `total` is
// the progress total.
Status AssignRange(DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                   const vector::IvfModel& model, const BuildIndexOptions& options, uint64_t start,
                   uint64_t end, uint64_t total, IndexObject* ix,
                   std::vector<std::vector<ObjectId>>* dir, uint64_t* objects,
                   const BuildProgress& progress);

// Step 5: puts the directory pages of `dir` (one list per cell) and sets ix->pages.
Status PutDirPages(DatasetImpl& impl, std::vector<std::vector<ObjectId>> dir, IndexObject* ix,
                   uint64_t* objects);

// Steps 6-7: calibrates `ix` against `version`, puts it and commits it (CommitBuiltIndex).
Result<CommitInfo> FinishIndex(DatasetImpl& impl, const std::shared_ptr<const Version>& version,
                               const FieldSpec& spec, const BuildIndexOptions& options,
                               IndexObject ix, uint64_t objects, const BuildProgress& progress,
                               const CommitOptions& commit);

// ---------------------------------------------------------------------------------------
// Maintenance measurements (maintain.cc; spec/21 §8.6)

// Entries per cell (live or stale) of an ivf/imi/lsh index, from its buckets (fetched a
// directory page of cells at a time).
Result<std::vector<uint64_t>> CellEntries(const DatasetImpl& impl, const IndexObject& ix);
// Fills info's cell-balance fields.
Status MeasureBalance(const DatasetImpl& impl, const IndexObject& ix, IndexInfo* info);
// Fills info's recall-drift fields: `queries` sample queries at the default setting.
Status MeasureDrift(const DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                    const IndexObject& ix, uint32_t queries, IndexInfo* info);

// The options `index rebuild` builds `field` with (spec/21 §8.6): the stored index's
// settings and seed; kNotFound when the field has no index.
Result<BuildIndexOptions> RebuildOptions(const DatasetImpl& impl, const Version& version,
                                         std::string_view field);

// The embedding field `field` of a schema, or an error naming `op` and the field.
Result<const FieldSpec*> EmbeddingField(const Schema& schema, std::string_view field,
                                        std::string_view op);

}  // namespace dreamdb::vindex

#endif  // DREAMDB_SRC_DATASET_INDEX_INTERNAL_H_
