// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Shared helpers for the vector tests: seeded clustered data, exact top-k by a model's own
// distance, and recall. Thread safety: pure functions.

#ifndef DREAMDB_SRC_INDEX_TEST_UTIL_H_
#define DREAMDB_SRC_INDEX_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "src/index/ivf.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector::testing {

// Seeded clustered data: 64 anisotropic Gaussian clusters (the same centres for any seed).
inline std::vector<float> Clustered(size_t n, uint64_t seed, uint32_t dim) {
  Rng centers_rng(12345);
  std::vector<float> centers(64 * size_t{dim});
  for (auto& c : centers) c = static_cast<float>(centers_rng.Gaussian());
  std::vector<float> scale(dim);
  for (uint32_t j = 0; j < dim; ++j) scale[j] = static_cast<float>(0.9 / std::pow(j + 1, 0.3));
  Rng rng(seed);
  std::vector<float> out(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng.Below(64);
    for (uint32_t j = 0; j < dim; ++j) {
      out[i * dim + j] = centers[c * dim + j] + scale[j] * static_cast<float>(rng.Gaussian());
    }
  }
  return out;
}

// Exact top-k ids (row numbers) by model.ExactDistance, for each query.
inline std::vector<std::vector<uint64_t>> BruteForce(const IvfModel& model,
                                                     const std::vector<float>& data,
                                                     const std::vector<float>& queries,
                                                     uint32_t k) {
  const size_t dim = model.dim();
  const size_t n = data.size() / dim;
  const size_t nq = queries.size() / dim;
  std::vector<std::vector<uint64_t>> out(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<std::pair<float, uint64_t>> all(n);
    for (size_t i = 0; i < n; ++i) {
      all[i] = {model.ExactDistance(&queries[q * dim], &data[i * dim]), i};
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (uint32_t i = 0; i < k; ++i) out[q].push_back(all[i].second);
  }
  return out;
}

// Fraction of the true neighbours found.
inline double Recall(const std::vector<std::vector<Neighbor>>& got,
                     const std::vector<std::vector<uint64_t>>& truth) {
  size_t hit = 0;
  size_t total = 0;
  for (size_t q = 0; q < got.size(); ++q) {
    std::set<uint64_t> t(truth[q].begin(), truth[q].end());
    for (const Neighbor& nb : got[q]) hit += t.count(nb.id);
    total += truth[q].size();
  }
  return total == 0 ? 1.0 : static_cast<double>(hit) / static_cast<double>(total);
}

}  // namespace dreamdb::vector::testing

#endif  // DREAMDB_SRC_INDEX_TEST_UTIL_H_
