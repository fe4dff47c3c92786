// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/partition/kmeans.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "src/index/kernels/distance.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

// n points around `clusters` well-separated centres.
std::vector<float> Blobs(size_t n, size_t dim, size_t clusters, uint64_t seed,
                         std::vector<float>* centres = nullptr) {
  Rng rng(seed);
  std::vector<float> c(clusters * dim);
  for (float& v : c) v = static_cast<float>(rng.Gaussian() * 10);
  std::vector<float> x(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const size_t k = i % clusters;
    for (size_t d = 0; d < dim; ++d) x[i * dim + d] = c[k * dim + d] + float(rng.Gaussian() * 0.1);
  }
  if (centres) *centres = c;
  return x;
}

double Objective(const std::vector<float>& x, const std::vector<float>& c, size_t dim) {
  const size_t n = x.size() / dim, k = c.size() / dim;
  std::vector<uint32_t> a(n);
  std::vector<float> d(n);
  AssignNearest(c.data(), k, x.data(), n, dim, Metric::kL2, a.data(), d.data());
  double s = 0;
  for (float v : d) s += v;
  return s;
}

TEST(KMeansTest, RecoversSeparatedClusters) {
  const size_t dim = 16, k = 8;
  std::vector<float> centres;
  auto x = Blobs(800, dim, k, 1, &centres);
  KMeansOptions o;
  o.seed = 42;
  auto c = TrainKMeans(x.data(), 800, dim, k, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->size(), k * dim);
  // Every true centre has a trained centroid next to it.
  for (size_t t = 0; t < k; ++t) {
    float best = std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < k; ++j) {
      best = std::min(best, L2Sqr(&centres[t * dim], c->data() + j * dim, dim));
    }
    EXPECT_LT(best, 0.05f) << "centre " << t;
  }
}

TEST(KMeansTest, DeterministicUnderSeedAndThreadCount) {
  const size_t dim = 12, n = 3000;
  auto x = Blobs(n, dim, 20, 2);
  KMeansOptions o;
  o.seed = 7;
  o.max_points_per_centroid = 64;  // forces subsampling (20 * 64 < 3000)
  o.threads = 1;
  auto a = TrainKMeans(x.data(), n, dim, 20, o);
  o.threads = 2;
  auto b = TrainKMeans(x.data(), n, dim, 20, o);
  o.threads = 5;
  auto c = TrainKMeans(x.data(), n, dim, 20, o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  o.seed = 8;
  auto d = TrainKMeans(x.data(), n, dim, 20, o);
  ASSERT_TRUE(d.ok());
  EXPECT_NE(*a, *d);
}

TEST(KMeansTest, LloydImprovesOnSeeding) {
  const size_t dim = 8, n = 2000;
  Rng rng(3);
  std::vector<float> x(n * dim);
  for (float& v : x) v = static_cast<float>(rng.Gaussian());
  KMeansOptions o;
  o.seed = 1;
  o.iterations = 0;
  auto init = TrainKMeans(x.data(), n, dim, 16, o);
  o.iterations = 10;
  auto trained = TrainKMeans(x.data(), n, dim, 16, o);
  ASSERT_TRUE(init.ok() && trained.ok());
  EXPECT_LT(Objective(x, *trained, dim), Objective(x, *init, dim));
}

TEST(KMeansTest, NoEmptyCellsEvenWithDuplicatePoints) {
  // 40 points but only 5 distinct values: k-means++ must pick duplicates; repair splits.
  const size_t dim = 4, n = 40, k = 10;
  std::vector<float> x(n * dim);
  for (size_t i = 0; i < n; ++i) {
    for (size_t d = 0; d < dim; ++d) x[i * dim + d] = float((i % 5) * 3 + d);
  }
  KMeansOptions o;
  auto c = TrainKMeans(x.data(), n, dim, k, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (float v : *c) EXPECT_TRUE(std::isfinite(v));
  std::set<std::vector<float>> distinct;
  for (size_t j = 0; j < k; ++j)
    distinct.insert(std::vector<float>(c->begin() + j * dim, c->begin() + (j + 1) * dim));
  EXPECT_EQ(distinct.size(), k);  // split cells are perturbed copies, never identical
}

TEST(KMeansTest, EmptyCellRepairKeepsEveryCellPopulated) {
  // Two tight clusters but k = 6: cells that empty out are split off the largest.
  const size_t dim = 8, n = 600, k = 6;
  auto x = Blobs(n, dim, 2, 11);
  KMeansOptions o;
  o.iterations = 20;
  auto c = TrainKMeans(x.data(), n, dim, k, o);
  ASSERT_TRUE(c.ok());
  std::vector<uint32_t> a(n);
  AssignNearest(c->data(), k, x.data(), n, dim, Metric::kL2, a.data());
  std::vector<size_t> counts(k);
  for (uint32_t v : a) ++counts[v];
  size_t populated = 0;
  for (size_t v : counts) populated += v > 0;
  EXPECT_GE(populated, k - 1);  // the last split of an iteration may be unpopulated
}

TEST(KMeansTest, SphericalGivesUnitCentroids) {
  const size_t dim = 10, n = 500;
  auto x = Blobs(n, dim, 5, 4);
  for (size_t i = 0; i < n; ++i) {
    const float inv = 1.0f / std::sqrt(NormSqr(&x[i * dim], dim));
    for (size_t d = 0; d < dim; ++d) x[i * dim + d] *= inv;
  }
  KMeansOptions o;
  o.spherical = true;
  auto c = TrainKMeans(x.data(), n, dim, 5, o);
  ASSERT_TRUE(c.ok());
  for (size_t j = 0; j < 5; ++j) EXPECT_NEAR(NormSqr(c->data() + j * dim, dim), 1.0f, 1e-5);
}

TEST(KMeansTest, KEqualsN) {
  const size_t dim = 3, n = 7;
  auto x = Blobs(n, dim, 7, 5);
  auto c = TrainKMeans(x.data(), n, dim, 7, KMeansOptions{});
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(Objective(x, *c, dim), 0.0, 1e-3);
}

TEST(KMeansTest, ClearErrors) {
  std::vector<float> x(40, 1.0f);
  KMeansOptions o;
  auto r = TrainKMeans(x.data(), 10, 4, 0, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("k must be"), std::string::npos);
  r = TrainKMeans(x.data(), 10, 0, 2, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dimension"), std::string::npos);
  r = TrainKMeans(x.data(), 3, 4, 5, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("fewer than k = 5"), std::string::npos);
  r = TrainKMeans(nullptr, 10, 4, 2, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  x[2 * 4 + 3] = std::numeric_limits<float>::quiet_NaN();
  r = TrainKMeans(x.data(), 10, 4, 2, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("vector 2 component 3"), std::string::npos)
      << r.status().message();
  x[2 * 4 + 3] = std::numeric_limits<float>::infinity();
  r = TrainKMeans(x.data(), 10, 4, 2, o);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb::vector
