// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/partition/centroid_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <set>
#include <vector>

#include "src/index/syn.h"

namespace dreamdb::vector {
namespace {

// Fraction of the exact nprobe-nearest centroids that the index returns.
double ProbeRecall(const CentroidIndex& ix, const std::vector<float>& queries, size_t dim,
                   uint32_t nprobe) {
  const size_t nq = queries.size() / dim;
  double hits = 0;
  std::vector<uint32_t> got, want;
  for (size_t q = 0; q < nq; ++q) {
    ix.Search(&queries[q * dim], nprobe, &got);
    ix.Search(&queries[q * dim], nprobe, &want, nullptr, /*exact_scan=*/true);
    const std::set<uint32_t> truth(want.begin(), want.end());
    for (uint32_t c : got) hits += truth.count(c);
  }
  return hits / static_cast<double>(nq * nprobe);
}

TEST(CentroidIndexTest, ExactBelowThreshold) {
  const size_t dim = 8;
  std::vector<float> c = {0, 0, 0, 0, 0, 0, 0, 0,  // 0
                          1, 0, 0, 0, 0, 0, 0, 0,  // 1
                          3, 0, 0, 0, 0, 0, 0, 0,  // 2
                          2, 0, 0, 0, 0, 0, 0, 0};
  auto ix = CentroidIndex::Build(c.data(), 4, dim, Metric::kL2);
  ASSERT_TRUE(ix.ok()) << ix.status().ToString();
  EXPECT_TRUE(ix->exact());
  std::vector<float> q = {2.2f, 0, 0, 0, 0, 0, 0, 0};
  std::vector<uint32_t> cells;
  std::vector<float> dist;
  ix->Search(q.data(), 3, &cells, &dist);
  EXPECT_EQ(cells, (std::vector<uint32_t>{3, 2, 1}));
  ASSERT_EQ(dist.size(), 3u);
  EXPECT_NEAR(dist[0], 0.04f, 1e-5);
  ix->Search(q.data(), 10, &cells);  // nprobe > k: all of them
  EXPECT_EQ(cells.size(), 4u);
  // Inner product: the largest dot first.
  auto ip = CentroidIndex::Build(c.data(), 4, dim, Metric::kInnerProduct);
  ASSERT_TRUE(ip.ok());
  ip->Search(q.data(), 2, &cells, &dist);
  EXPECT_EQ(cells, (std::vector<uint32_t>{2, 3}));
  EXPECT_NEAR(dist[0], -6.6f, 1e-5);
}

TEST(CentroidIndexTest, TwoLevelFindsTheNearestCentroidsOnSyn) {
  // SYN centroids (points of the generator) well above the exact threshold.
  const uint32_t dim = 48, k = 2000;
  SynParams p;
  p.dim = dim;
  p.n_base = static_cast<uint64_t>(k) * 64;
  p.seed = 3;
  auto g = SynGenerator::Create(p);
  ASSERT_TRUE(g.ok());
  const auto cent = g->GenerateVector(kSynBaseStream, 0, k);
  const auto queries = g->GenerateVector(kSynQueryStream, 0, 60);
  CentroidIndexOptions o;
  o.exact_threshold = 500;
  auto ix = CentroidIndex::Build(cent.data(), k, dim, Metric::kCosine, o);
  ASSERT_TRUE(ix.ok()) << ix.status().ToString();
  EXPECT_FALSE(ix->exact());
  EXPECT_EQ(ix->num_groups(), 45u);
  for (uint32_t nprobe : {8u, 32u, 64u}) {
    const double r = ProbeRecall(*ix, queries, dim, nprobe);
    EXPECT_GE(r, 0.95) << "nprobe " << nprobe;
  }
  // Results are sorted, distinct, and their distances are exact.
  std::vector<uint32_t> cells;
  std::vector<float> dist;
  ix->Search(queries.data(), 40, &cells, &dist);
  ASSERT_EQ(cells.size(), 40u);
  EXPECT_EQ(std::set<uint32_t>(cells.begin(), cells.end()).size(), 40u);
  EXPECT_TRUE(std::is_sorted(dist.begin(), dist.end()));
  EXPECT_GT(ix->MemoryBytes(), size_t{k} * dim * 4);
}

TEST(CentroidIndexTest, ClearErrors) {
  std::vector<float> c(8, 1.0f);
  EXPECT_EQ(CentroidIndex::Build(c.data(), 0, 4, Metric::kL2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CentroidIndex::Build(c.data(), 2, 0, Metric::kL2).status().code(),
            StatusCode::kInvalidArgument);
  c[5] = std::numeric_limits<float>::quiet_NaN();
  auto r = CentroidIndex::Build(c.data(), 2, 4, Metric::kL2);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("centroid 1 component 1"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace dreamdb::vector
