// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/partition/kmeans.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "src/index/kernels/distance.h"
#include "src/index/kernels/parallel.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

// Stream ids for the seeded sub-generators, so each phase is independent of the others.
constexpr uint64_t kStreamSample = 1;
constexpr uint64_t kStreamInit = 2;
constexpr uint64_t kStreamRepair = 3;

// k-means++ runs on at most this many points per centroid (and at least kInitMin points):
// its cost is O(k * sample * dim), and more points barely change the seeding.
constexpr size_t kInitPerCentroid = 16;
constexpr size_t kInitMin = 4096;

Status CheckFinite(const float* data, size_t n, size_t dim) {
  for (size_t i = 0; i < n; ++i) {
    const float* row = data + i * dim;
    float acc = 0;
    for (size_t j = 0; j < dim; ++j) acc += row[j] * 0.0f;  // NaN iff some entry is NaN/inf
    if (!std::isfinite(acc)) {
      for (size_t j = 0; j < dim; ++j) {
        if (!std::isfinite(row[j])) {
          return InvalidArgument("k-means: vector " + std::to_string(i) + " component " +
                                 std::to_string(j) + " is not finite (" + std::to_string(row[j]) +
                                 ")");
        }
      }
    }
  }
  return Status::Ok();
}

// Picks m distinct indices of [0, n) (partial Fisher-Yates), sorted for locality.
std::vector<size_t> SampleIndices(size_t n, size_t m, Rng& rng) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  for (size_t i = 0; i < m; ++i) std::swap(idx[i], idx[i + rng.Below(n - i)]);
  idx.resize(m);
  std::sort(idx.begin(), idx.end());
  return idx;
}

void Normalize(float* v, size_t dim) {
  const float n2 = NormSqr(v, dim);
  if (n2 > 0) {
    const float inv = 1.0f / std::sqrt(n2);
    for (size_t j = 0; j < dim; ++j) v[j] *= inv;
  }
}

// k-means++ seeding (D² sampling) over `pts` (m x dim). Deterministic: the per-point
// distance updates are independent, the sampling walk is sequential.
std::vector<float> KMeansPlusPlus(const float* pts, size_t m, size_t dim, uint32_t k, Rng& rng,
                                  uint32_t threads) {
  std::vector<float> centroids(static_cast<size_t>(k) * dim);
  std::vector<float> d2(m, std::numeric_limits<float>::infinity());
  size_t pick = rng.Below(m);
  for (uint32_t c = 0; c < k; ++c) {
    const float* cp = pts + pick * dim;
    std::copy(cp, cp + dim, centroids.begin() + static_cast<ptrdiff_t>(c) * dim);
    if (c + 1 == k) break;
    ParallelFor(m, threads, 2048, [&](size_t b, size_t e, size_t) {
      for (size_t i = b; i < e; ++i) d2[i] = std::min(d2[i], L2Sqr(pts + i * dim, cp, dim));
    });
    double total = 0;
    for (float v : d2) total += v;
    if (!(total > 0)) {
      // Every point coincides with a chosen centroid: pick uniformly (duplicates are
      // repaired later as empty cells).
      pick = rng.Below(m);
      continue;
    }
    const double target = rng.Uniform() * total;
    double run = 0;
    pick = m - 1;
    for (size_t i = 0; i < m; ++i) {
      run += d2[i];
      if (run > target && d2[i] > 0) {
        pick = i;
        break;
      }
    }
  }
  return centroids;
}

}  // namespace

Result<std::vector<float>> TrainKMeans(const float* data, size_t n, size_t dim, uint32_t k,
                                       const KMeansOptions& options) {
  if (k == 0) return InvalidArgument("k-means: k must be at least 1");
  if (dim == 0) return InvalidArgument("k-means: dimension must be at least 1");
  if (n < k) {
    return InvalidArgument("k-means: " + std::to_string(n) +
                           " training vectors are fewer than k = " + std::to_string(k));
  }
  if (data == nullptr) return InvalidArgument("k-means: data pointer is null");
  if (n > (size_t{1} << 40) || dim > (size_t{1} << 20)) {
    return InvalidArgument("k-means: input too large (n=" + std::to_string(n) +
                           ", dim=" + std::to_string(dim) + ")");
  }
  RETURN_IF_ERROR(CheckFinite(data, n, dim));
  const uint32_t threads = ResolveThreads(options.threads);

  // 1. Training sample.
  const float* pts = data;
  size_t m = n;
  std::vector<float> sample;
  if (options.max_points_per_centroid > 0 &&
      n > static_cast<size_t>(k) * options.max_points_per_centroid) {
    m = static_cast<size_t>(k) * options.max_points_per_centroid;
    Rng rng(options.seed, kStreamSample);
    const std::vector<size_t> idx = SampleIndices(n, m, rng);
    sample.resize(m * dim);
    for (size_t i = 0; i < m; ++i) {
      std::copy(data + idx[i] * dim, data + (idx[i] + 1) * dim,
                sample.begin() + static_cast<ptrdiff_t>(i * dim));
    }
    pts = sample.data();
  }

  // 2. k-means++ seeding on a (further) sample: the first points of a seeded permutation.
  Rng init_rng(options.seed, kStreamInit);
  std::vector<float> centroids;
  {
    const size_t mi = std::min(m, std::max(kInitMin, kInitPerCentroid * k));
    if (mi < m) {
      const std::vector<size_t> idx = SampleIndices(m, mi, init_rng);
      std::vector<float> init(mi * dim);
      for (size_t i = 0; i < mi; ++i) {
        std::copy(pts + idx[i] * dim, pts + (idx[i] + 1) * dim,
                  init.begin() + static_cast<ptrdiff_t>(i * dim));
      }
      centroids = KMeansPlusPlus(init.data(), mi, dim, k, init_rng, threads);
    } else {
      centroids = KMeansPlusPlus(pts, m, dim, k, init_rng, threads);
    }
  }
  if (options.spherical) {
    for (uint32_t c = 0; c < k; ++c)
      Normalize(centroids.data() + static_cast<size_t>(c) * dim, dim);
  }

  // 3. Lloyd iterations.
  std::vector<uint32_t> assign(m);
  std::vector<double> sums(static_cast<size_t>(k) * dim);
  std::vector<size_t> counts(k);
  Rng repair_rng(options.seed, kStreamRepair);
  for (uint32_t it = 0; it < options.iterations; ++it) {
    ParallelFor(m, threads, 256, [&](size_t b, size_t e, size_t) {
      AssignNearest(centroids.data(), k, pts + b * dim, e - b, dim, Metric::kL2, assign.data() + b);
    });
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < m; ++i) ++counts[assign[i]];
    // Sums: threads split the dimensions, each walks the points in order, so the result
    // does not depend on the thread count.
    ParallelFor(dim, threads, 16, [&](size_t d0, size_t d1, size_t) {
      for (uint32_t c = 0; c < k; ++c) {
        std::fill(sums.begin() + static_cast<ptrdiff_t>(c * dim + d0),
                  sums.begin() + static_cast<ptrdiff_t>(c * dim + d1), 0.0);
      }
      for (size_t i = 0; i < m; ++i) {
        double* s = sums.data() + static_cast<size_t>(assign[i]) * dim;
        const float* x = pts + i * dim;
        for (size_t d = d0; d < d1; ++d) s[d] += x[d];
      }
    });
    for (uint32_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;
      float* cp = centroids.data() + static_cast<size_t>(c) * dim;
      const double* s = sums.data() + static_cast<size_t>(c) * dim;
      const double inv = 1.0 / static_cast<double>(counts[c]);
      for (size_t d = 0; d < dim; ++d) cp[d] = static_cast<float>(s[d] * inv);
    }
    // Empty-cell repair: split the largest cell into two slightly perturbed copies.
    for (uint32_t c = 0; c < k; ++c) {
      if (counts[c] != 0) continue;
      const auto big =
          static_cast<uint32_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
      float* src = centroids.data() + static_cast<size_t>(big) * dim;
      float* dst = centroids.data() + static_cast<size_t>(c) * dim;
      constexpr float kEps = 1.0f / 1024;
      for (size_t d = 0; d < dim; ++d) {
        const float sign = (repair_rng.Next() & 1) != 0 ? 1.0f : -1.0f;
        const float v = src[d];
        dst[d] = v * (1 + sign * kEps);
        src[d] = v * (1 - sign * kEps);
        if (v == 0) {
          dst[d] = sign * kEps * 1e-3f;
          src[d] = -sign * kEps * 1e-3f;
        }
      }
      counts[c] = counts[big] / 2;
      counts[big] -= counts[c];
    }
    if (options.spherical) {
      for (uint32_t c = 0; c < k; ++c) {
        Normalize(centroids.data() + static_cast<size_t>(c) * dim, dim);
      }
    }
  }
  return centroids;
}

}  // namespace dreamdb::vector
