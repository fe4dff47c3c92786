// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/partition/centroid_index.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "src/index/kernels/parallel.h"
#include "src/index/partition/kmeans.h"

namespace dreamdb::vector {
namespace {

// Keeps the `want` smallest (distance, id) pairs of `cand`, sorted, distinct ids.
void TakeBest(std::vector<std::pair<float, uint32_t>>* cand, uint32_t want,
              std::vector<uint32_t>* cells, std::vector<float>* dist) {
  auto& c = *cand;
  std::sort(c.begin(), c.end());
  cells->clear();
  if (dist != nullptr) dist->clear();
  uint32_t last = UINT32_MAX;
  for (const auto& [d, id] : c) {
    if (cells->size() >= want) break;
    if (id == last) continue;  // a replicated centroid: same distance, adjacent after sort
    // Replicas of one id may not be adjacent if another centroid has the same distance;
    // fall back to a linear check (rare; `want` is small).
    if (std::find(cells->begin(), cells->end(), id) != cells->end()) continue;
    last = id;
    cells->push_back(id);
    if (dist != nullptr) dist->push_back(d);
  }
}

}  // namespace

Result<CentroidIndex> CentroidIndex::Build(const float* centroids, uint32_t k, uint32_t dim,
                                           Metric metric, const CentroidIndexOptions& options) {
  if (k == 0) return InvalidArgument("centroid index: k must be at least 1");
  if (dim == 0) return InvalidArgument("centroid index: dimension must be at least 1");
  if (centroids == nullptr) return InvalidArgument("centroid index: null centroids");
  if (options.replicas == 0) return InvalidArgument("centroid index: replicas must be >= 1");
  CentroidIndex ix;
  ix.k_ = k;
  ix.dim_ = dim;
  ix.metric_ = metric;
  ix.options_ = options;
  const size_t d = dim;
  ix.centroids_.assign(centroids, centroids + static_cast<size_t>(k) * d);
  for (size_t i = 0; i < ix.centroids_.size(); ++i) {
    if (!std::isfinite(ix.centroids_[i])) {
      return InvalidArgument("centroid index: centroid " + std::to_string(i / d) + " component " +
                             std::to_string(i % d) + " is not finite");
    }
  }
  ix.norms_.resize(k);
  for (uint32_t i = 0; i < k; ++i) ix.norms_[i] = NormSqr(centroids + i * d, d);
  if (k <= options.exact_threshold) return ix;

  uint32_t groups = options.groups != 0
                        ? options.groups
                        : static_cast<uint32_t>(std::lround(std::sqrt(static_cast<double>(k))));
  groups = std::clamp<uint32_t>(groups, 1, k);
  KMeansOptions ko;
  ko.seed = options.seed;
  ko.iterations = 10;
  ko.max_points_per_centroid = 0;
  ko.spherical = metric == Metric::kCosine;
  ko.threads = options.threads;
  ASSIGN_OR_RETURN(std::vector<float> gc, TrainKMeans(centroids, k, d, groups, ko));
  ix.groups_ = groups;
  ix.group_centres_ = std::move(gc);
  ix.group_norms_.resize(groups);
  for (uint32_t g = 0; g < groups; ++g) {
    ix.group_norms_[g] = NormSqr(ix.group_centres_.data() + g * d, d);
  }
  // Each centroid goes to its `replicas` nearest groups (by the index's metric).
  const uint32_t reps = std::min(options.replicas, groups);
  std::vector<uint32_t> owner(static_cast<size_t>(k) * reps);
  ParallelFor(k, options.threads, 64, [&](size_t b, size_t e, size_t) {
    std::vector<float> gd(groups);
    std::vector<uint32_t> order(groups);
    for (size_t i = b; i < e; ++i) {
      ix.Distances(centroids + i * d, ix.group_centres_.data(), ix.group_norms_.data(), groups,
                   gd.data());
      for (uint32_t g = 0; g < groups; ++g) order[g] = g;
      std::partial_sort(
          order.begin(), order.begin() + reps, order.end(),
          [&](uint32_t x, uint32_t y) { return gd[x] < gd[y] || (gd[x] == gd[y] && x < y); });
      for (uint32_t r = 0; r < reps; ++r) owner[i * reps + r] = order[r];
    }
  });
  ix.member_offsets_.assign(groups + 1, 0);
  for (uint32_t o : owner) ++ix.member_offsets_[o + 1];
  for (uint32_t g = 0; g < groups; ++g) ix.member_offsets_[g + 1] += ix.member_offsets_[g];
  const size_t slots = owner.size();
  ix.member_ids_.resize(slots);
  ix.member_rows_.resize(slots * d);
  ix.member_norms_.resize(slots);
  std::vector<uint32_t> fill(ix.member_offsets_.begin(), ix.member_offsets_.end() - 1);
  for (uint32_t i = 0; i < k; ++i) {
    for (uint32_t r = 0; r < reps; ++r) {
      const uint32_t slot = fill[owner[static_cast<size_t>(i) * reps + r]]++;
      ix.member_ids_[slot] = i;
      ix.member_norms_[slot] = ix.norms_[i];
      std::copy(centroids + i * d, centroids + (i + 1) * d,
                ix.member_rows_.begin() + static_cast<ptrdiff_t>(slot * d));
    }
  }
  return ix;
}

void CentroidIndex::Distances(const float* query, const float* rows, const float* norms, size_t n,
                              float* out) const {
  DotMany(query, rows, n, dim_, out);
  if (metric_ == Metric::kInnerProduct) {
    for (size_t i = 0; i < n; ++i) out[i] = -out[i];
    return;
  }
  const float qn = NormSqr(query, dim_);
  for (size_t i = 0; i < n; ++i) out[i] = std::max(0.0f, qn + norms[i] - 2.0f * out[i]);
}

void CentroidIndex::ScanExact(const float* query, uint32_t nprobe, std::vector<uint32_t>* cells,
                              std::vector<float>* dist) const {
  std::vector<float> d(k_);
  Distances(query, centroids_.data(), norms_.data(), k_, d.data());
  const uint32_t want = std::min(nprobe, k_);
  cells->resize(k_);
  for (uint32_t i = 0; i < k_; ++i) (*cells)[i] = i;
  auto less = [&](uint32_t a, uint32_t b) { return d[a] < d[b] || (d[a] == d[b] && a < b); };
  std::partial_sort(cells->begin(), cells->begin() + want, cells->end(), less);
  cells->resize(want);
  if (dist != nullptr) {
    dist->resize(want);
    for (uint32_t i = 0; i < want; ++i) (*dist)[i] = d[(*cells)[i]];
  }
}

void CentroidIndex::Search(const float* query, uint32_t nprobe, std::vector<uint32_t>* cells,
                           std::vector<float>* dist, bool exact_scan) const {
  if (groups_ == 0 || exact_scan) {
    ScanExact(query, nprobe, cells, dist);
    return;
  }
  const uint32_t want = std::min(nprobe, k_);
  const double g_est = std::ceil(static_cast<double>(options_.probe_factor) * want * groups_ /
                                 static_cast<double>(k_)) +
                       options_.min_groups;
  const auto g = static_cast<uint32_t>(std::clamp<double>(g_est, 1, groups_));
  std::vector<float> gd(groups_);
  Distances(query, group_centres_.data(), group_norms_.data(), groups_, gd.data());
  std::vector<uint32_t> order(groups_);
  for (uint32_t i = 0; i < groups_; ++i) order[i] = i;
  std::partial_sort(order.begin(), order.begin() + g, order.end(), [&](uint32_t a, uint32_t b) {
    return gd[a] < gd[b] || (gd[a] == gd[b] && a < b);
  });
  std::vector<std::pair<float, uint32_t>> cand;
  std::vector<float> md;
  for (uint32_t i = 0; i < g; ++i) {
    const uint32_t grp = order[i];
    const uint32_t b = member_offsets_[grp], e = member_offsets_[grp + 1];
    md.resize(e - b);
    Distances(query, member_rows_.data() + static_cast<size_t>(b) * dim_, member_norms_.data() + b,
              e - b, md.data());
    for (uint32_t s = b; s < e; ++s) cand.emplace_back(md[s - b], member_ids_[s]);
  }
  TakeBest(&cand, want, cells, dist);
  if (cells->size() < want) ScanExact(query, nprobe, cells, dist);  // too few groups
}

size_t CentroidIndex::MemoryBytes() const {
  return sizeof(*this) +
         sizeof(float) *
             (centroids_.capacity() + norms_.capacity() + group_centres_.capacity() +
              group_norms_.capacity() + member_rows_.capacity() + member_norms_.capacity()) +
         sizeof(uint32_t) * (member_offsets_.capacity() + member_ids_.capacity());
}

}  // namespace dreamdb::vector
