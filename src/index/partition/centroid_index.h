// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// CentroidIndex: finds the nprobe nearest of k IVF centroids for a query without scanning
// all k when k is large.
//
// Below `exact_threshold` centroids it scans them all (one blocked one-vs-many kernel; at
// k = 1000, d = 768 that is ~30 µs). Above, it is a two-level index: the centroids are
// clustered into G groups (k-means over the centroids, G = round(sqrt(k)) by default), and
// every centroid is listed in its `replicas` nearest groups (soft assignment, so centroids
// near a group boundary are found from either side). A query ranks the G group centres,
// scans the members of the nearest g groups, and returns the best nprobe distinct
// centroids, where g = clamp(ceil(probe_factor * nprobe * G / k) + min_groups, 1, G). The
// probe set is approximate; centroid_index_test checks its recall against the exact scan.
// Measured with the defaults on 4096 k-means centroids of SYN-256 (200 queries): probe-set
// recall 0.955 / 0.980 / 0.992 at nprobe 8 / 32 / 64 while computing 17% / 27% / 39% of
// the k distances (replicas=1 or smaller probe_factor scan less but lose recall).
// The f32 one-vs-many scan is memory-bound once the centroids exceed L2 (~18 G multiply-adds/s
// here), so the saving is roughly proportional to the fraction skipped.
//
// Distances (smaller is better): L2² for kL2 and kCosine (cosine centroids and queries are
// unit vectors, normalised by the caller), -dot for kInnerProduct.
//
// Thread safety: immutable after Build; Search may be called concurrently.

#ifndef DREAMDB_SRC_INDEX_PARTITION_CENTROID_INDEX_H_
#define DREAMDB_SRC_INDEX_PARTITION_CENTROID_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dreamdb/status.h"
#include "src/index/kernels/distance.h"

namespace dreamdb::vector {

struct CentroidIndexOptions {
  uint32_t exact_threshold = 2048;  // k <= this: exact scan
  uint32_t groups = 0;              // 0 = round(sqrt(k))
  uint32_t replicas = 2;            // groups each centroid is listed in (1..groups)
  float probe_factor = 8.0f;        // see the header comment
  uint32_t min_groups = 4;
  uint64_t seed = 0;
  uint32_t threads = 0;  // for Build only; 0 = hardware
};

class CentroidIndex {
 public:
  CentroidIndex() = default;

  // Copies the centroids (k x dim, row-major). kInvalidArgument for k == 0, dim == 0,
  // null pointer, non-finite values, or replicas == 0.
  static Result<CentroidIndex> Build(const float* centroids, uint32_t k, uint32_t dim,
                                     Metric metric, const CentroidIndexOptions& options = {});

  uint32_t k() const { return k_; }
  uint32_t dim() const { return dim_; }
  bool exact() const { return groups_ == 0; }
  uint32_t num_groups() const { return groups_; }

  // The min(nprobe, k) nearest centroids, nearest first, into `cells` (and their distances
  // into `dist` if not null). `exact_scan` forces the full scan (for tests and tuning).
  void Search(const float* query, uint32_t nprobe, std::vector<uint32_t>* cells,
              std::vector<float>* dist = nullptr, bool exact_scan = false) const;

  // Heap bytes held.
  size_t MemoryBytes() const;

 private:
  void ScanExact(const float* query, uint32_t nprobe, std::vector<uint32_t>* cells,
                 std::vector<float>* dist) const;
  // Distances from `query` to `n` rows starting at `rows`, per metric.
  void Distances(const float* query, const float* rows, const float* norms, size_t n,
                 float* out) const;

  uint32_t k_ = 0;
  uint32_t dim_ = 0;
  Metric metric_ = Metric::kL2;
  CentroidIndexOptions options_;
  std::vector<float> centroids_;  // k x dim
  std::vector<float> norms_;      // |c|² per centroid
  // Two-level part (groups_ > 0).
  uint32_t groups_ = 0;
  std::vector<float> group_centres_;      // groups x dim
  std::vector<float> group_norms_;        // groups
  std::vector<uint32_t> member_offsets_;  // groups + 1
  std::vector<uint32_t> member_ids_;      // centroid id per member slot
  std::vector<float> member_rows_;        // copies of member centroids, contiguous per group
  std::vector<float> member_norms_;
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_PARTITION_CENTROID_INDEX_H_
