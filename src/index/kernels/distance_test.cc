// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/kernels/distance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/index/kernels/rng.h"
#include "src/index/kernels/simd_test_util.h"

namespace dreamdb::vector {
namespace {

std::vector<float> RandomData(size_t n, size_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n * dim);
  for (float& x : v) x = static_cast<float>(rng.Gaussian());
  return v;
}

double RefL2(const float* a, const float* b, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s;
}
double RefDot(const float* a, const float* b, size_t dim) {
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += double(a[i]) * b[i];
  return s;
}

using testing::TestableLevels;

// The level chosen at start-up (before any test changes it): CPU best, or DREAMDB_SIMD.
// Defined after simd_test_util.h's DREAMDB_TEST_CPU_SIMD cap, so it is initialized after it.
const SimdLevel kInitialLevel = ActiveSimdLevel();

// Restores the SIMD level after each test.
class DistanceTest : public ::testing::Test {
 protected:
  void TearDown() override { SetSimdLevelForTesting(kInitialLevel); }
};

// Also run by ctest with DREAMDB_SIMD=scalar and =avx2 (src/index/CMakeLists.txt).
TEST(SimdEnvTest, HonoursDreamdbSimd) {
  const char* env = std::getenv("DREAMDB_SIMD");  // NOLINT(concurrency-mt-unsafe)
  const std::string v = env == nullptr ? "" : env;
  SimdLevel want = CpuSimdLevel();
  if (v == "scalar") want = SimdLevel::kScalar;
  if (v == "avx2") want = std::min(want, SimdLevel::kAvx2);
  EXPECT_EQ(kInitialLevel, want) << "DREAMDB_SIMD=" << v;
  // Kernels work at the forced level.
  const float a[3] = {1, 2, 3}, b[3] = {4, 6, 3};
  EXPECT_EQ(L2Sqr(a, b, 3), 25.0f);
  EXPECT_EQ(Dot(a, b, 3), 25.0f);
}

TEST_F(DistanceTest, MetricNames) {
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    auto parsed = ParseMetric(MetricName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  auto bad = ParseMetric("hamming");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'hamming'"), std::string::npos) << bad.status().message();
}

// A machine without AVX-512 (or without AVX2) passes the suite: the levels it has are
// checked, the others are named as not run. Simulated here by capping what the CPU reports.
TEST_F(DistanceTest, MachinesWithoutAvx512OrAvx2CheckTheLevelsTheyHave) {
  (void)TestableLevels();  // names this machine's levels before the test caps them
  const SimdLevel cpu = CpuSimdLevel();
  const std::vector<float> a = RandomData(1, 37, 1), b = RandomData(1, 37, 2);
  for (SimdLevel lower : {SimdLevel::kAvx2, SimdLevel::kScalar}) {
    // Never above this process's CPU (itself capped under DREAMDB_TEST_CPU_SIMD).
    const SimdLevel cap = std::min(cpu, lower);
    EXPECT_EQ(CapCpuSimdLevelForTesting(cap), cap);
    EXPECT_LE(ActiveSimdLevel(), cap);
    EXPECT_EQ(SetSimdLevelForTesting(SimdLevel::kAvx512), cap);
    std::vector<SimdLevel> levels;
    for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
      if (l <= CpuSimdLevel()) levels.push_back(l);
    }
    EXPECT_EQ(levels.size(), static_cast<size_t>(cap) + 1);
    ASSERT_FALSE(levels.empty());
    EXPECT_EQ(levels.front(), SimdLevel::kScalar);
    for (SimdLevel level : levels) {
      ASSERT_EQ(SetSimdLevelForTesting(level), level);
      EXPECT_NEAR(L2Sqr(a.data(), b.data(), 37), RefL2(a.data(), b.data(), 37), 1e-3);
      EXPECT_NEAR(Dot(a.data(), b.data(), 37), RefDot(a.data(), b.data(), 37), 1e-3);
    }
  }
  EXPECT_EQ(CapCpuSimdLevelForTesting(testing::kTestCpuLevel), testing::kTestCpuLevel);
  EXPECT_EQ(CpuSimdLevel(), testing::kTestCpuLevel);
}

TEST_F(DistanceTest, AllLevelsMatchReferenceForManyDims) {
  for (size_t dim : {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 100, 128, 768, 769}) {
    auto a = RandomData(1, dim, dim);
    auto b = RandomData(1, dim, dim + 1000);
    const double l2 = RefL2(a.data(), b.data(), dim);
    const double dot = RefDot(a.data(), b.data(), dim);
    for (SimdLevel level : TestableLevels()) {
      ASSERT_EQ(SetSimdLevelForTesting(level), level);
      const double tol = 1e-4 * (1 + dim);
      EXPECT_NEAR(L2Sqr(a.data(), b.data(), dim), l2, tol) << dim << SimdLevelName(level);
      EXPECT_NEAR(Dot(a.data(), b.data(), dim), dot, tol) << dim << SimdLevelName(level);
      EXPECT_NEAR(NormSqr(a.data(), dim), RefDot(a.data(), a.data(), dim), tol);
    }
  }
}

TEST_F(DistanceTest, ZeroDimIsZero) {
  float a = 1, b = 2;
  for (SimdLevel level : TestableLevels()) {
    SetSimdLevelForTesting(level);
    EXPECT_EQ(L2Sqr(&a, &b, 0), 0.0f);
    EXPECT_EQ(Dot(&a, &b, 0), 0.0f);
  }
}

TEST_F(DistanceTest, PairwiseMatchesOneByOneAtEveryLevel) {
  for (size_t dim : {5, 16, 37, 128}) {
    const size_t na = 13, nb = 11;  // not multiples of the 4x4 tile
    auto a = RandomData(na, dim, 1);
    auto b = RandomData(nb, dim, 2);
    for (SimdLevel level : TestableLevels()) {
      SetSimdLevelForTesting(level);
      std::vector<float> l2(na * nb), dot(na * nb), many(nb);
      PairwiseL2Sqr(a.data(), na, b.data(), nb, dim, l2.data());
      PairwiseDot(a.data(), na, b.data(), nb, dim, dot.data());
      for (size_t i = 0; i < na; ++i) {
        L2SqrMany(a.data() + i * dim, b.data(), nb, dim, many.data());
        for (size_t j = 0; j < nb; ++j) {
          const double tol = 1e-3 * (1 + dim);
          EXPECT_NEAR(l2[i * nb + j], RefL2(&a[i * dim], &b[j * dim], dim), tol);
          EXPECT_NEAR(many[j], RefL2(&a[i * dim], &b[j * dim], dim), tol);
          EXPECT_NEAR(dot[i * nb + j], RefDot(&a[i * dim], &b[j * dim], dim), tol);
          EXPECT_GE(l2[i * nb + j], 0.0f);
        }
        DotMany(a.data() + i * dim, b.data(), nb, dim, many.data());
        for (size_t j = 0; j < nb; ++j) {
          EXPECT_NEAR(many[j], RefDot(&a[i * dim], &b[j * dim], dim), 1e-3 * (1 + dim));
        }
      }
    }
  }
}

TEST_F(DistanceTest, PairwiseLargerThanOneCacheBlock) {
  // nb above the L2 block size for dim 768 (128 rows) exercises the block loop.
  const size_t dim = 768, na = 6, nb = 300;
  auto a = RandomData(na, dim, 3);
  auto b = RandomData(nb, dim, 4);
  std::vector<float> dot(na * nb);
  PairwiseDot(a.data(), na, b.data(), nb, dim, dot.data());
  for (size_t i = 0; i < na; ++i) {
    for (size_t j = 0; j < nb; ++j) {
      EXPECT_NEAR(dot[i * nb + j], RefDot(&a[i * dim], &b[j * dim], dim), 1e-2);
    }
  }
}

TEST_F(DistanceTest, AssignNearestAgreesWithExhaustiveSearch) {
  const size_t dim = 24, k = 37, n = 101;
  auto c = RandomData(k, dim, 5);
  auto x = RandomData(n, dim, 6);
  for (SimdLevel level : TestableLevels()) {
    SetSimdLevelForTesting(level);
    std::vector<uint32_t> got(n);
    std::vector<float> dist(n);
    AssignNearest(c.data(), k, x.data(), n, dim, Metric::kL2, got.data(), dist.data());
    for (size_t i = 0; i < n; ++i) {
      size_t best = 0;
      for (size_t j = 1; j < k; ++j) {
        if (RefL2(&x[i * dim], &c[j * dim], dim) < RefL2(&x[i * dim], &c[best * dim], dim)) {
          best = j;
        }
      }
      const double bd = RefL2(&x[i * dim], &c[best * dim], dim);
      // Ties within rounding may pick either; the chosen one must be as near.
      EXPECT_NEAR(RefL2(&x[i * dim], &c[got[i] * dim], dim), bd, 1e-3) << i;
      EXPECT_NEAR(dist[i], bd, 1e-3) << i;
    }
    AssignNearest(c.data(), k, x.data(), n, dim, Metric::kInnerProduct, got.data(), dist.data());
    for (size_t i = 0; i < n; ++i) {
      double best = -1e30;
      for (size_t j = 0; j < k; ++j) best = std::max(best, RefDot(&x[i * dim], &c[j * dim], dim));
      EXPECT_NEAR(RefDot(&x[i * dim], &c[got[i] * dim], dim), best, 1e-3);
      EXPECT_NEAR(dist[i], -best, 1e-3);
    }
  }
}

TEST_F(DistanceTest, AssignNearestManyCentroidsUsesSmallChunks) {
  // k large enough that the row chunk shrinks to its minimum.
  const size_t dim = 4, k = 140000, n = 9;
  auto c = RandomData(k, dim, 7);
  std::vector<float> x(c.begin() + 1000 * dim, c.begin() + 1009 * dim);  // exact copies
  std::vector<uint32_t> got(n);
  AssignNearest(c.data(), k, x.data(), n, dim, Metric::kL2, got.data());
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(RefL2(&x[i * dim], &c[got[i] * dim], dim), 0, 1e-5);
}

}  // namespace
}  // namespace dreamdb::vector
