// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Comparing refs (spec/14-semantics.md §15): several versions of one dataset side by side,
// as a stream of wide batches `anchor | field@ref_a | field@ref_b | ...`, plus summary
// statistics of every other ref against the first (the baseline).
//
// The comparison is a k-way merge-join of one projected, anchor-ordered scan per ref
// (an outer join: an anchor live in any ref gives a row; where a ref lacks the anchor,
// or the value is null, its cell is null). Memory is bounded by the batch size and the
// fixed-size median samples, whatever the dataset size.
//
// Thread safety: CompareRefs is thread-safe. A CompareReader is used by one thread at a
// time (it may move between threads); the datasets it reads are immutable versions.

#ifndef DREAMDB_COMPARE_H_
#define DREAMDB_COMPARE_H_

#include <cstdint>
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

struct CompareOptions {
  uint64_t start = 0;           // first anchor (inclusive)
  uint64_t end = UINT64_MAX;    // last anchor (exclusive)
  uint64_t batch_rows = 8192;   // rows per input scan batch and per output batch (at most)
  bool only_differing = false;  // emit only rows that differ (see spec §15.2)
  uint64_t limit = UINT64_MAX;  // emit at most this many rows
  // Summary statistics. When on, the reader reads the whole range even after `limit`
  // rows were emitted, so the summary always covers every anchor in [start, end).
  bool summary = true;
  // Differences kept per (field, ref pair) for the median: exact up to this many, then a
  // deterministic uniform reservoir of this size (the median is then approximate).
  uint64_t median_sample = 65536;
};

// Statistics of one field for one ref pair: ref `b` against the baseline `a` (ref 0).
struct CompareFieldStats {
  std::string field;
  FieldType type = FieldType::kInt64;
  size_t a = 0;            // index into CompareSummary::refs (always 0, the baseline)
  size_t b = 1;            // index into CompareSummary::refs
  uint64_t both = 0;       // anchors with a (non-null) value in both refs
  uint64_t only_a = 0;     // a value in ref a only (absent or null in b)
  uint64_t only_b = 0;     // a value in ref b only
  uint64_t differing = 0;  // of `both`, anchors whose values differ
  // (both - differing) / both: for every type, the share of equal values. nullopt when
  // both == 0.
  std::optional<double> agreement;
  // Numeric scalars (int64, float64, timestamp): statistics of d = b - a over the
  // `numeric_count` pairs whose difference is a finite number (NaN/inf values skipped).
  uint64_t numeric_count = 0;
  std::optional<double> mean_diff;
  std::optional<double> median_diff;
  std::optional<double> mean_abs_diff;
  bool median_approximate = false;  // more than median_sample differences: sampled
  // Embeddings: cosine similarity of the two vectors over `both` pairs (two zero vectors
  // count as 1, one zero vector as 0).
  std::optional<double> mean_cosine;
  std::optional<double> min_cosine;
};

struct CompareSummary {
  std::vector<std::string> refs;    // as given; refs[0] is the baseline
  std::vector<ObjectId> manifests;  // the manifest each ref resolved to
  std::vector<std::string> fields;  // compared fields, in order
  std::vector<uint64_t> present;    // per ref: anchors live in it (within the range)
  uint64_t anchors = 0;             // anchors live in at least one ref (within range)
  uint64_t differing = 0;           // of those, rows that differ (spec §15.2)
  uint64_t emitted = 0;             // rows returned by Next()
  bool complete = false;            // the whole range has been read
  // One entry per field (in `fields` order) and, within a field, per ref 1..n-1.
  std::vector<CompareFieldStats> stats;
};

// A stream of wide batches in ascending anchor order. Each batch has `anchors` and one
// column per (field, ref), fields outer and refs inner, named "<field>@<ref>" (the ref as
// given), all optional.
class CompareReader {
 public:
  virtual ~CompareReader() = default;
  // Next batch; nullopt at the end. With only_differing a batch may hold fewer rows than
  // batch_rows; it is never empty.
  virtual Result<std::optional<Batch>> Next() = 0;
  // The output columns (without the anchor), in batch order.
  virtual const std::vector<FieldSpec>& columns() const = 0;
  // Statistics of what has been read so far (complete once Next() returned nullopt).
  virtual CompareSummary Summary() const = 0;
  // Reads the rest of the range without building rows and returns the final summary.
  virtual Result<CompareSummary> Finish() = 0;
};

// Compares `fields` (empty: every field of any ref, in first-seen order) of dataset `name`
// across `refs` (snapshot labels, branches, "branch:NAME" or manifest ids; at least 2,
// distinct). Errors: kInvalidArgument for fewer than 2 refs, a repeated ref or field, a
// field no ref has, or a field whose type differs between refs; kNotFound naming a ref
// that does not resolve.
Result<std::unique_ptr<CompareReader>> CompareRefs(std::shared_ptr<Store> store,
                                                   std::string_view name,
                                                   const std::vector<std::string>& refs,
                                                   const std::vector<std::string>& fields,
                                                   const CompareOptions& options = {});

}  // namespace dreamdb

#endif  // DREAMDB_COMPARE_H_
