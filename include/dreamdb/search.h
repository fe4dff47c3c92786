// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Vector search over a dataset's embedding fields (spec/21-spatial-index.md): the public
// option and result types of Dataset::Search, Dataset::BuildIndex and Dataset::IndexStatus
// (include/dreamdb/dataset.h), and the scalar filter predicates.
//
// Thread safety: value types and pure functions.

#ifndef DREAMDB_SEARCH_H_
#define DREAMDB_SEARCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"

namespace dreamdb {

// A scalar value in a predicate: int64 (also timestamps), float64, bool or text (string
// and categorical fields).
using ScalarValue = std::variant<int64_t, double, bool, std::string>;

// `field OP value` (or `field in (v1, v2, ...)`) on a scalar field of the schema
// (spec/21-spatial-index.md §7.3). A record whose field is null never matches.
struct Predicate {
  enum class Op : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn };
  std::string field;
  Op op = Op::kEq;
  std::vector<ScalarValue> values;  // one value; kIn: one or more
};

// Parses "label == 3", "score >= 0.5", "name != 'cat'", "label in (1, 2, 3)",
// "flag == true". Values: integers, decimals, true/false, and text in single or double
// quotes (or bare words). kInvalidArgument naming the problem.
Result<Predicate> ParsePredicate(std::string_view text);
std::string_view PredicateOpName(Predicate::Op op);  // "==", "!=", "<", ...
// OK when `p` can be evaluated on `schema`: its field exists and is a scalar (int64,
// float64, bool, string, categorical, timestamp) and its values fit the field's type and
// the operator; else kInvalidArgument naming the field and the problem.
Status CheckPredicate(const Schema& schema, const Predicate& p);
// Whether row `row` of `column` (the predicate's field) satisfies `p`; a null never does.
// REQUIRES: CheckPredicate(schema of column, p) is OK.
bool PredicateMatches(const Predicate& p, const Column& column, uint64_t row);

struct SearchOptions {
  uint32_t k = 10;      // results per query, >= 1
  uint32_t nprobe = 0;  // IVF cells probed per query; 0 = the index's default
  uint32_t ef = 0;      // graph index: beam width; 0 = the default for k (spec/21 §7.8)
  // With nprobe and ef 0: the recall@10 to aim for, in (0, 1]; the setting comes from the
  // index's calibration curve (spec/21 §7.9). 0 = the stored setting (chosen for 0.95).
  double recall = 0;
  bool rerank = true;  // re-rank IVF candidates with the exact stored vectors
  bool exact = false;  // brute force over the stored vectors (no index)
  uint64_t start = 0;  // anchor range: start <= anchor < end
  uint64_t end = UINT64_MAX;
  std::vector<Predicate> where;     // all must hold
  std::vector<std::string> fields;  // fields to project into the results (none by default)
  uint32_t threads = 2;             // queries searched in parallel
};

// Results for nq queries, flattened: query q's hits are rows offsets[q] .. offsets[q+1]-1,
// best first. `columns` (one per projected field) have one row per hit.
struct SearchResults {
  std::vector<uint64_t> offsets;  // nq + 1 entries
  std::vector<uint32_t> query;    // per row: the query index
  std::vector<uint64_t> anchors;  // per row
  // Per row: the metric's natural score: cosine similarity, inner product (both larger is
  // better) or Euclidean distance (l2: smaller is better).
  std::vector<float> scores;
  std::vector<Column> columns;
  std::string metric;       // "cosine", "ip" or "l2"
  bool used_index = false;  // false: brute force (exact, or no index built)
  uint32_t nprobe = 0;      // cells probed (used_index; 0 for a graph)
  uint32_t ef = 0;          // graph index: the first round's beam width (used_index)
  uint64_t candidates = 0;  // entries scanned, over all queries
};

struct BuildIndexOptions {
  // Each 0/empty value takes the schema's declared index (spec/21 §2), else the default.
  std::string algorithm;  // ivf (default), imi, lsh (spec/20 §4), graph (spec/21 §8.4)
  std::string metric;     // cosine (default), ip, l2
  uint32_t bits = 0;      // default 4
  std::string quantizer;  // rabitq (default) or pq4 (ivf, imi, lsh only)
  // graph only: maximum out-degree (0 = 32) and build beam width (0 = 128).
  uint32_t degree = 0;
  uint32_t build_list = 0;
  // Default: ivf round(sqrt(N)) (at least 1); imi s * s with s = round(2 N^(1/4));
  // lsh 2^round(log2(N) / 2) (IvfParams, src/index/ivf.h).
  uint32_t cells = 0;
  uint64_t seed = 0;
  uint32_t sample = 0;          // training sample size bound; 0 = max(256 * cells, 20000)
  uint32_t threads = 0;         // 0 = hardware
  uint64_t chunk_rows = 65536;  // records assigned at a time (bounds the vectors in memory)
  // Encoded entries held per cell before they are written as buckets (bounds the codes in
  // memory); 0 = 256 MiB. Below it, a build writes one bucket per cell.
  uint64_t flush_bytes = 0;
  // Calibration (spec/21 §8.5): recall@10 against brute force on a sample of the indexed
  // vectors, per setting, stored in the index; default searches use the setting reaching
  // 0.95. calibration_queries: the sample size (0 = 200).
  bool calibrate = true;
  uint32_t calibration_queries = 0;
};

struct IndexInfo {
  std::string field;
  bool built = false;     // false: no index object ("untrained")
  ObjectId index;         // the spatial-index object (built)
  ObjectId model;         // the model object (built)
  std::string algorithm;  // "ivf", "imi", "lsh" or "graph"
  std::string quantizer;  // "rabitq" or "pq4"
  std::string metric;
  uint32_t bits = 0;
  uint32_t dim = 0;
  uint32_t cells = 0;
  uint64_t entries = 0;  // bucket entries, live or not
  uint64_t buckets = 0;  // bucket objects
  uint64_t live = 0;     // live records with a value for the field (the manifest's view)
  uint64_t stale = 0;    // entries - live (superseded or deleted entries), >= 0
  // The cells a default search probes (ivf/imi/lsh; the calibrated setting when the index
  // has one), and the beam width a default search with k = 10 uses (graph).
  uint32_t nprobe = 0;
  uint32_t ef = 0;
  // Calibration (spec/21 §4.6); calibration_queries 0: none stored (an index built before
  // calibration existed, or with it off), and the defaults are the built-in ones.
  uint32_t calibration_queries = 0;
  uint32_t calibration_k = 0;
  double calibration_recall = 0;  // recall@k on the sample at the default setting
  std::vector<std::pair<uint32_t, double>> calibration_curve;  // (nprobe or ef, recall@k)
  // graph: nodes in the graph, and entries appended since the build (cell-0 buckets, not
  // in the graph: scanned by every query until a rebuild); entries = nodes + tail.
  uint64_t nodes = 0;
  uint64_t tail = 0;
  uint32_t degree = 0;  // graph: maximum out-degree
  // Cell balance (IndexStatusOptions::balance; ivf, imi, lsh): entries per cell, live or
  // stale, from every bucket of the index. The mean is over all cells for ivf and over
  // the non-empty ones for imi and lsh (whose partitions leave many cells empty by
  // design); over and under count the cells above 2x and below 1/4 of that mean, and cv
  // is the coefficient of variation (standard deviation / mean) of the same cells.
  bool balance_measured = false;
  uint32_t cells_nonempty = 0;
  uint64_t cell_max = 0;
  double cell_mean = 0;
  double cell_cv = 0;
  uint32_t cells_over = 0;   // > 2 x mean
  uint32_t cells_under = 0;  // < mean / 4
  // Recall drift (IndexStatusOptions::sample > 0; ivf, imi, lsh): recall@10 of a default
  // search (the stored setting, `nprobe`) against brute force over head(), on every
  // ⌊live / sample⌋-th stored value as a query (deterministic; each query's own record left
  // out as in calibration, spec/21 §8.5), beside calibration_recall, the recall the build
  // measured at the same setting. drift = calibration_recall - sample_recall (0 when not
  // calibrated): positive when the index has got worse since its calibration.
  uint32_t sample_queries = 0;
  double sample_recall = 0;
  double recall_drift = 0;
};

// What IndexStatus measures beyond the index object's counts (each reads more).
struct IndexStatusOptions {
  bool balance = false;  // cell sizes: reads every bucket of the index
  uint32_t sample = 0;   // recall drift on this many queries (0: not measured)
};

// Index maintenance (Dataset::StepIndex, spec/21 §8.7). A cell's target size is
// entries / target cells (the schema's declared cells, else round(sqrt(entries)), the
// cells a fresh ivf build would train).
struct StepIndexOptions {
  // A cell above this x the target size is split. 1.5, not 2: after tenfold skewed growth
  // (the maintenance test), 2 left cells spanning several clusters and a calibrated
  // nprobe of 15-18 where 1.5 gave 5.
  double split_above = 1.5;
  double merge_below = 0.25;  // a cell below this x the target size is merged away
  // Rounds of split and merge before the one commit, each on the previous round's result
  // (k-means parts come out of uneven sizes; a second round evens them out: after tenfold
  // skewed growth, recall at the calibrated setting 0.9655 after one round, 0.98 after
  // two, 0.9895 for a fresh build). A round with nothing to do ends the step.
  uint32_t rounds = 2;
  uint32_t threads = 0;  // 0 = hardware
};

struct StepIndexReport {
  bool changed = false;  // false: every cell within bounds, nothing committed
  uint32_t cells_before = 0;
  uint32_t cells_after = 0;
  uint32_t split = 0;       // cells split (k-means inside the cell)
  uint32_t merged = 0;      // cells whose entries went to their nearest other cells
  uint32_t renumbered = 0;  // cells moved to a freed slot (bucket bytes rewritten)
  // Live entries of touched cells reassigned and re-encoded, summed over the rounds.
  uint64_t entries_moved = 0;
  uint64_t stale_dropped = 0;    // stale entries of touched cells, dropped
  uint64_t buckets_written = 0;  // bucket objects of the new index not in the old one
  uint64_t buckets_kept = 0;     // bucket objects of the old index reused as they were
  uint32_t nprobe_before = 0;    // the default setting before and after (recalibrated)
  uint32_t nprobe_after = 0;
};

using BuildProgress = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

}  // namespace dreamdb

#endif  // DREAMDB_SEARCH_H_
