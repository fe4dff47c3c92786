// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Exact (brute-force) k-nearest neighbours: ground truth for recall measurements and the
// reference the approximate indexes are tested against.
//
// Distances (smaller is better): kL2 -> squared L2; kInnerProduct -> -dot;
// kCosine -> 1 - cos(q, x) (zero vectors have cosine 0). Ties break by smaller id.
//
// Thread safety: reentrant; uses up to `threads` worker threads (split over queries).

#ifndef DREAMDB_SRC_INDEX_BRUTE_H_
#define DREAMDB_SRC_INDEX_BRUTE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dreamdb/status.h"
#include "src/index/kernels/distance.h"
#include "src/index/metric.h"

namespace dreamdb::vector {

struct TopK {
  size_t num_queries = 0;
  size_t k = 0;
  std::vector<uint32_t> ids;  // num_queries x k, nearest first
  std::vector<float> dist;    // num_queries x k
  const uint32_t* ids_of(size_t q) const { return ids.data() + q * k; }
  const float* dist_of(size_t q) const { return dist.data() + q * k; }
};

// The exact distance of `metric` between two vectors: ExactDistance (src/index/metric.h).

// kInvalidArgument for dim == 0, k == 0, k > n, n >= 2^32, or null pointers.
Result<TopK> BruteForceTopK(const float* base, size_t n, const float* queries, size_t nq,
                            size_t dim, size_t k, Metric metric, uint32_t threads = 0);

// ann-benchmarks recall: the fraction of `found` (nq x found_k ids, rows may be shorter:
// UINT32_MAX marks "no result") whose exact distance to its query is <= the true k-th
// distance + epsilon, averaged over queries. `truth` needs at least k columns.
double RecallAtK(const float* base, size_t n, const float* queries, size_t dim, Metric metric,
                 const TopK& truth, const uint32_t* found, size_t found_stride, size_t k,
                 double epsilon = 1e-3);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_BRUTE_H_
