// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The storage seam of IVF-family search (as GraphNodeSource is the graph's): where a query
// gets each probed cell's codes block and ids, and the exact vectors it re-ranks. In memory
// for IvfIndex; a paged or remote implementation can prefetch the probe order and cache
// blocks without touching the search itself (SearchCells).
//
// Thread safety: a CellSource is used by one search at a time unless its implementation
// says otherwise. SearchCells is reentrant.

#ifndef DREAMDB_SRC_INDEX_CELL_SOURCE_H_
#define DREAMDB_SRC_INDEX_CELL_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/index/ivf.h"

namespace dreamdb::vector {

// One cell as stored: its codes block (spec/20 §5) and the id of each position. Both stay
// valid until the source is destroyed or asked for another cell.
struct CellData {
  ByteView codes;
  const uint64_t* ids = nullptr;
};

class CellSource {
 public:
  virtual ~CellSource() = default;
  // Cell `cell`'s block and ids (an empty block for a cell with nothing stored).
  virtual Result<CellData> Cell(uint32_t cell) = 0;
  // A hint: these cells are about to be scanned, in this order (a paged source may fetch
  // them in parallel). The default does nothing.
  virtual void Prefetch(const uint32_t* cells, size_t n) {
    (void)cells;
    (void)n;
  }
  // Exact public distances (src/index/metric.h) from q to the stored vectors of n ids.
  // kFailedPrecondition when the source keeps no vectors (no re-ranking).
  virtual Status ExactDistances(const float* q, const uint64_t* ids, size_t n, float* out) = 0;
};

// Scans the query's probe order through `source` (after one Prefetch of all of it) and
// finishes, re-ranking through the source when the query's params ask for it.
Result<std::vector<Neighbor>> SearchCells(IvfModel::Query& query, CellSource& source,
                                          const float* q, const KeepFn* keep = nullptr);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_CELL_SOURCE_H_
