// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// k-means training for IVF coarse quantizers.
//
// Algorithm: the training set is subsampled to k * max_points_per_centroid points (seeded);
// k-means++ seeding on (a sample of) it; Lloyd iterations with blocked distance kernels;
// empty cells are repaired by splitting the largest cell (its centroid is perturbed into
// two). With spherical = true (cosine), centroids are re-normalised to unit length after
// every update. The result depends only on (data, n, dim, k, options.seed, iterations,
// max_points_per_centroid, spherical): the thread count does not change it.
//
// Thread safety: TrainKMeans is reentrant; it uses up to `threads` worker threads
// internally.

#ifndef DREAMDB_SRC_INDEX_PARTITION_KMEANS_H_
#define DREAMDB_SRC_INDEX_PARTITION_KMEANS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::vector {

struct KMeansOptions {
  uint32_t iterations = 12;
  // The training set is subsampled to at most k * max_points_per_centroid points
  // (0 = use all points).
  uint32_t max_points_per_centroid = 256;
  uint64_t seed = 0;
  bool spherical = false;  // cosine: unit-norm centroids
  uint32_t threads = 0;    // 0 = hardware concurrency
};

// Returns k*dim row-major centroids. kInvalidArgument for k == 0, n < k, dim == 0, a null
// data pointer, or any NaN/inf component (the message names the row and column).
Result<std::vector<float>> TrainKMeans(const float* data, size_t n, size_t dim, uint32_t k,
                                       const KMeansOptions& options);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_PARTITION_KMEANS_H_
