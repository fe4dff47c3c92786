// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/brute.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "src/index/kernels/parallel.h"

namespace dreamdb::vector {
namespace {

// Query rows and base rows per block: the base block stays in L2 while a query block
// sweeps it.
constexpr size_t kQueryBlock = 64;
constexpr size_t kBaseBlock = 2048;

using Cand = std::pair<float, uint32_t>;  // (distance, id); ordered by distance then id

}  // namespace

Result<TopK> BruteForceTopK(const float* base, size_t n, const float* queries, size_t nq,
                            size_t dim, size_t k, Metric metric, uint32_t threads) {
  if (dim == 0) return InvalidArgument("brute force: dimension must be at least 1");
  if (k == 0) return InvalidArgument("brute force: k must be at least 1");
  if (k > n) {
    return InvalidArgument("brute force: k = " + std::to_string(k) + " exceeds the " +
                           std::to_string(n) + " base vectors");
  }
  if (n >= (size_t{1} << 32)) return InvalidArgument("brute force: more than 2^32 vectors");
  if (base == nullptr || (nq != 0 && queries == nullptr)) {
    return InvalidArgument("brute force: null data pointer");
  }
  TopK out;
  out.num_queries = nq;
  out.k = k;
  out.ids.resize(nq * k);
  out.dist.resize(nq * k);
  // Per-row terms turning dot products into distances.
  std::vector<float> base_norm(n);
  ParallelFor(n, threads, 4096, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; ++i) base_norm[i] = NormSqr(base + i * dim, dim);
  });
  const size_t qblocks = (nq + kQueryBlock - 1) / kQueryBlock;
  ParallelFor(qblocks, threads, 1, [&](size_t qb0, size_t qb1, size_t) {
    std::vector<float> dots(kQueryBlock * kBaseBlock);
    std::vector<std::vector<Cand>> heaps(kQueryBlock);
    float qnorm[kQueryBlock];
    for (size_t qb = qb0; qb < qb1; ++qb) {
      const size_t q0 = qb * kQueryBlock;
      const size_t mq = std::min(kQueryBlock, nq - q0);
      for (size_t r = 0; r < mq; ++r) {
        heaps[r].clear();
        qnorm[r] = NormSqr(queries + (q0 + r) * dim, dim);
      }
      for (size_t b0 = 0; b0 < n; b0 += kBaseBlock) {
        const size_t mb = std::min(kBaseBlock, n - b0);
        PairwiseDot(queries + q0 * dim, mq, base + b0 * dim, mb, dim, dots.data());
        for (size_t r = 0; r < mq; ++r) {
          std::vector<Cand>& h = heaps[r];
          const float* row = dots.data() + r * mb;
          for (size_t j = 0; j < mb; ++j) {
            const size_t id = b0 + j;
            float d = 0;
            switch (metric) {
              case Metric::kL2:
                d = std::max(0.0f, qnorm[r] + base_norm[id] - 2.0f * row[j]);
                break;
              case Metric::kInnerProduct:
                d = -row[j];
                break;
              case Metric::kCosine:
                d = CosineDistance(row[j], qnorm[r], base_norm[id]);
                break;
            }
            const Cand c{d, static_cast<uint32_t>(id)};
            if (h.size() < k) {
              h.push_back(c);
              std::push_heap(h.begin(), h.end());
            } else if (c < h.front()) {
              std::pop_heap(h.begin(), h.end());
              h.back() = c;
              std::push_heap(h.begin(), h.end());
            }
          }
        }
      }
      for (size_t r = 0; r < mq; ++r) {
        std::sort_heap(heaps[r].begin(), heaps[r].end());
        for (size_t j = 0; j < k; ++j) {
          out.ids[(q0 + r) * k + j] = heaps[r][j].second;
          out.dist[(q0 + r) * k + j] = heaps[r][j].first;
        }
      }
    }
  });
  return out;
}

double RecallAtK(const float* base, size_t n, const float* queries, size_t dim, Metric metric,
                 const TopK& truth, const uint32_t* found, size_t found_stride, size_t k,
                 double epsilon) {
  if (truth.num_queries == 0 || k == 0 || truth.k < k) return 0;
  double total = 0;
  for (size_t q = 0; q < truth.num_queries; ++q) {
    const double threshold = static_cast<double>(truth.dist_of(q)[k - 1]) + epsilon;
    const float* qv = queries + q * dim;
    size_t hits = 0;
    for (size_t j = 0; j < std::min(k, found_stride); ++j) {
      const uint32_t id = found[q * found_stride + j];
      if (id >= n) continue;
      if (static_cast<double>(
              ExactDistance(metric, qv, base + static_cast<size_t>(id) * dim, dim)) <= threshold) {
        ++hits;
      }
    }
    total += static_cast<double>(hits) / static_cast<double>(k);
  }
  return total / static_cast<double>(truth.num_queries);
}

}  // namespace dreamdb::vector
