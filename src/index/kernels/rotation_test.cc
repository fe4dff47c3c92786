// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/kernels/rotation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/index/kernels/distance.h"
#include "src/index/kernels/rng.h"
#include "src/index/kernels/simd_test_util.h"

namespace dreamdb::vector {
namespace {

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(RotationTest, PaddedDim) {
  EXPECT_EQ(PaddedDim(1), 64u);
  EXPECT_EQ(PaddedDim(64), 64u);
  EXPECT_EQ(PaddedDim(65), 128u);
  EXPECT_EQ(PaddedDim(768), 768u);
  EXPECT_EQ(PaddedDim(1000), 1024u);
}

TEST(RotationTest, PreservesInnerProducts) {
  for (RotationKind kind : {RotationKind::kHadamard, RotationKind::kDense}) {
    for (uint32_t dim : {5u, 64u, 100u, 192u, 768u}) {
      if (kind == RotationKind::kDense && dim > 200) continue;  // O(D^3) setup under ASan
      auto rot = Rotation::Create(kind, dim, 42).value();
      const uint32_t d = rot->padded_dim();
      Rng rng(dim);
      std::vector<float> a(dim), b(dim), ra(d), rb(d);
      for (auto& v : a) v = static_cast<float>(rng.Gaussian());
      for (auto& v : b) v = static_cast<float>(rng.Gaussian());
      rot->Apply(a.data(), ra.data());
      rot->Apply(b.data(), rb.data());
      EXPECT_NEAR(Dot(ra, ra), Dot(a, a), 1e-3 * Dot(a, a)) << dim;
      EXPECT_NEAR(Dot(ra, rb), Dot(a, b), 1e-3 * dim) << dim;
      // Spreads a basis vector over many coordinates.
      std::vector<float> e(dim, 0), re(d);
      e[0] = 1;
      rot->Apply(e.data(), re.data());
      int nonzero = 0;
      for (float v : re) nonzero += std::fabs(v) > 1e-6f;
      EXPECT_GT(nonzero, static_cast<int>(d / 2)) << dim;
    }
  }
}

TEST(RotationTest, DeterministicUnderSeed) {
  auto r1 = Rotation::Create(RotationKind::kHadamard, 100, 7).value();
  auto r2 = Rotation::Create(RotationKind::kHadamard, 100, 7).value();
  auto r3 = Rotation::Create(RotationKind::kHadamard, 100, 8).value();
  std::vector<float> v(100, 0.5f), o1(128), o2(128), o3(128);
  v[3] = -2;
  r1->Apply(v.data(), o1.data());
  r2->Apply(v.data(), o2.data());
  r3->Apply(v.data(), o3.data());
  EXPECT_EQ(o1, o2);
  EXPECT_NE(o1, o3);
}

TEST(RotationTest, FwhtIsIdenticalAtAllLevels) {
  const SimdLevel original = ActiveSimdLevel();
  for (size_t n : {8u, 64u, 512u, 1024u}) {
    Rng rng(n);
    std::vector<float> x(n);
    for (auto& v : x) v = static_cast<float>(rng.Gaussian());
    SetSimdLevelForTesting(SimdLevel::kScalar);
    std::vector<float> want = x;
    Fwht(want.data(), n);
    std::vector<float> got;
    for (SimdLevel level : testing::TestableLevels()) {
      SetSimdLevelForTesting(level);
      got = x;
      Fwht(got.data(), n);
      EXPECT_EQ(got, want) << n << " " << SimdLevelName(level);
    }
    // H * H = n * I.
    Fwht(got.data(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(got[i] / n, x[i], 1e-4);
  }
  SetSimdLevelForTesting(original);
}

TEST(RotationTest, RejectsBadDimension) {
  EXPECT_EQ(Rotation::Create(RotationKind::kHadamard, 0, 1).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb::vector
