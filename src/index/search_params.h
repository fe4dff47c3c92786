// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The options of one IVF-family query (src/index/ivf.h), shared by the partitioners (which
// cells) and the codecs (how many results, re-ranked or not), and the callback through
// which a query asks its caller for exact distances.
//
// Thread safety: value types and pure functions.

#ifndef DREAMDB_SRC_INDEX_SEARCH_PARAMS_H_
#define DREAMDB_SRC_INDEX_SEARCH_PARAMS_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "dreamdb/status.h"

namespace dreamdb::vector {

struct SearchParams {
  uint32_t k = 10;
  // Cells probed; 0 = DefaultNprobe(num_cells). Values above num_cells are clamped.
  uint32_t nprobe = 0;
  // Exact re-rank through the `exact` callback of Query::Finish (IvfIndex: its raw vectors).
  // RaBitQ: candidates by error bound (spec/20 §6.5). PQ4 (no error bound): the
  // PqRerankCandidates(k) best estimates are re-scored.
  bool rerank = false;
  // Optional, num_cells entries: the number of vectors stored in each cell. When given,
  // empty cells are skipped and do not count toward nprobe (all algorithms; it matters for
  // imi and lsh, where most cells may be empty). Borrowed: must outlive the Query's Reset.
  const uint32_t* cell_sizes = nullptr;
};

// `exact(ids, n, out)` writes the exact public distances (src/index/metric.h) of n ids.
using ExactFn = std::function<Status(const uint64_t*, size_t, float*)>;
// `prefetch(ids, n)`: the candidates a re-rank may score, in the order it would score them
// (see IvfModel::Query::Finish); it computes nothing the re-rank uses.
using PrefetchFn = std::function<Status(const uint64_t*, size_t)>;
// `keep(id)`: whether an id may be a result (tombstones, anchor range, predicates).
using KeepFn = std::function<bool(uint64_t)>;

// nprobe used when SearchParams::nprobe == 0: min(num_cells, max(8, round(0.6 *
// sqrt(num_cells)))). On SYN-768 200k (5 bits) that is 13 of 447 cells (recall@10 ~0.96)
// or 19 of 1000 (~0.97); spec/20 §6.4.
uint32_t DefaultNprobe(uint32_t num_cells);

// PQ4 with rerank: the number of best estimates re-scored exactly, max(20 k, 200) (PQ has
// no error bound to stop earlier; spec/20 §8.4). A pool of 40 plateaued at recall@10 0.91
// on SYN-768 200k, 200 reaches 0.97+ (bench/RESULTS.md "PQ4 FastScan vs RaBitQ").
uint32_t PqRerankCandidates(uint32_t k);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_SEARCH_PARAMS_H_
