// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/codec/rabitq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

struct ErrorStats {
  double mean_error = 0;      // signed, relative to |r||x|
  double mean_abs_error = 0;  // relative to |r||x|
  double within_bound = 0;    // fraction with |est - true| <= error * |x|
};

// Encodes n random residuals (d dims) against a zero centroid with the L2 estimator and
// estimates |r - x|^2 for random queries x with the exact <u, x>.
ErrorStats Measure(uint32_t d, uint32_t bits, int n) {
  Rng rng(1000 + bits);
  std::vector<float> r(d), x(d), zero(d, 0.0f);
  std::vector<uint8_t> codes(d);
  ErrorStats s;
  for (int t = 0; t < n; ++t) {
    double nr = 0, nx = 0, ip = 0;
    for (uint32_t i = 0; i < d; ++i) {
      r[i] = static_cast<float>(rng.Gaussian());
      x[i] = static_cast<float>(rng.Gaussian());
      nr += r[i] * r[i];
      nx += x[i] * x[i];
      ip += r[i] * x[i];
    }
    CodeFactors f1, fex;
    EncodeResidual(r.data(), zero.data(), d, bits, EstimatorMetric::kL2, codes.data(), &f1, &fex);
    double ux = 0, sum = 0;
    for (uint32_t i = 0; i < d; ++i) {
      ux += codes[i] * static_cast<double>(x[i]);
      sum += x[i];
    }
    const float est = EstimateDistance(fex, static_cast<float>(nx), static_cast<float>(ux),
                                       static_cast<float>(sum), bits);
    const double truth = nr + nx - 2 * ip;
    const double scale = 2 * std::sqrt(nr * nx);
    s.mean_error += (est - truth) / scale;
    s.mean_abs_error += std::fabs(est - truth) / scale;
    s.within_bound += std::fabs(est - truth) <= fex.error * std::sqrt(nx) ? 1 : 0;
  }
  s.mean_error /= n;
  s.mean_abs_error /= n;
  s.within_bound /= n;
  return s;
}

TEST(RabitqTest, EstimatorIsUnbiasedAndWithinBound) {
  const uint32_t d = 128;
  double prev = 1e9;
  for (uint32_t bits = 1; bits <= 8; ++bits) {
    const ErrorStats s = Measure(d, bits, 800);
    // Relative errors are O(1/sqrt(d)) for 1 bit; the mean over 800 trials is ~50x smaller.
    EXPECT_LT(std::fabs(s.mean_error), 0.01) << bits;
    EXPECT_GT(s.within_bound, 0.9) << bits;
    // Accuracy improves monotonically with bits.
    EXPECT_LT(s.mean_abs_error, prev) << bits;
    prev = s.mean_abs_error;
  }
  EXPECT_LT(prev, 0.002);
}

TEST(RabitqTest, TopBitIsTheSign) {
  const uint32_t d = 64;
  Rng rng(3);
  std::vector<float> r(d), zero(d, 0.0f);
  for (auto& v : r) v = static_cast<float>(rng.Gaussian());
  for (uint32_t bits = 1; bits <= 8; ++bits) {
    std::vector<uint8_t> codes(d);
    CodeFactors f1, fex;
    EncodeResidual(r.data(), zero.data(), d, bits, EstimatorMetric::kInnerProduct, codes.data(),
                   &f1, &fex);
    for (uint32_t i = 0; i < d; ++i) {
      EXPECT_LT(codes[i], 1u << bits);
      EXPECT_EQ((codes[i] >> (bits - 1)) & 1, r[i] > 0 ? 1 : 0);
    }
  }
}

TEST(RabitqTest, MagnitudesImproveCosine) {
  const uint32_t d = 256;
  Rng rng(5);
  std::vector<float> a(d);
  for (auto& v : a) v = static_cast<float>(std::fabs(rng.Gaussian()));
  double prev = 0;
  for (uint32_t ex = 1; ex <= 7; ++ex) {
    std::vector<uint8_t> m(d);
    QuantizeMagnitudes(a.data(), d, ex, m.data());
    double ip = 0, yy = 0, aa = 0;
    for (uint32_t i = 0; i < d; ++i) {
      EXPECT_LT(m[i], 1u << ex);
      ip += (m[i] + 0.5) * a[i];
      yy += (m[i] + 0.5) * (m[i] + 0.5);
      aa += a[i] * a[i];
    }
    const double cosine = ip / std::sqrt(yy * aa);
    EXPECT_GT(cosine, prev) << ex;
    prev = cosine;
  }
  EXPECT_GT(prev, 0.999);
}

TEST(RabitqTest, QueryLutApproximatesTopBitInnerProduct) {
  const uint32_t d = 768;
  Rng rng(9);
  std::vector<float> x(d);
  for (auto& v : x) v = static_cast<float>(rng.Gaussian() / std::sqrt(d));
  QueryLut q;
  BuildQueryLut(x.data(), d, &q);
  for (int t = 0; t < 50; ++t) {
    std::vector<uint8_t> bits(d);
    for (auto& b : bits) b = rng.Next() & 1;
    uint32_t acc = 0;
    double want = 0;
    for (uint32_t g = 0; g < d / 4; ++g) {
      uint32_t nib = 0;
      for (int j = 0; j < 4; ++j) nib |= bits[4 * g + j] << j;
      acc += q.lut[g * 16 + nib];
    }
    for (uint32_t i = 0; i < d; ++i) want += bits[i] * x[i];
    // Rounding error: at most delta / 2 per group.
    EXPECT_NEAR(LutIp(q, acc), want, q.delta * d / 8);
  }
}

TEST(RabitqTest, PopcountQueryApproximatesSignInnerProduct) {
  const uint32_t d = 768;
  Rng rng(11);
  std::vector<float> x(d);
  for (auto& v : x) v = static_cast<float>(rng.Gaussian() / std::sqrt(d));
  for (uint32_t qbits : {4u, 8u}) {
    QueryPlanes q;
    BuildQueryPlanes(x.data(), d, qbits, &q);
    for (int t = 0; t < 20; ++t) {
      std::vector<uint64_t> code(d / 64);
      for (auto& w : code) w = rng.Next();
      double want = 0;
      for (uint32_t i = 0; i < d; ++i) want += ((code[i / 64] >> (i % 64)) & 1) * x[i];
      // Rounding error at most delta / 2 per coordinate; ~sqrt(d) in practice.
      EXPECT_NEAR(PlanesIp(q, code.data()), want, q.delta * 2 * std::sqrt(d)) << qbits;
    }
  }
}

}  // namespace
}  // namespace dreamdb::vector
