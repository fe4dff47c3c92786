// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/index/brute.h"
#include "src/index/io.h"
#include "src/index/kernels/distance.h"
#include "src/index/kernels/rng.h"
#include "src/index/syn.h"

namespace dreamdb::vector {
namespace {

std::filesystem::path TempDir() {
  return std::filesystem::temp_directory_path() /
         ("dreamdb-vector-test-" + std::to_string(::getpid()));
}

std::string TempPath(const std::string& name) {
  std::filesystem::create_directories(TempDir());
  return (TempDir() / name).string();
}

class IoTest : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(TempDir(), ec);
  }
};

TEST(SynTest, UnitNormDeterministicAndChunkable) {
  SynParams p;
  p.dim = 32;
  p.n_base = 400;
  p.seed = 9;
  auto g = SynGenerator::Create(p);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->num_centers(), 20u);
  auto all = g->GenerateVector(kSynBaseStream, 0, 300, /*threads=*/2);
  for (size_t i = 0; i < 300; ++i) EXPECT_NEAR(NormSqr(&all[i * 32], 32), 1.0f, 1e-4);
  // Rows do not depend on how the range is cut or on the thread count.
  auto part = g->GenerateVector(kSynBaseStream, 100, 50, /*threads=*/1);
  for (size_t j = 0; j < 50 * 32; ++j) ASSERT_EQ(part[j], all[100 * 32 + j]);
  // Same seed, same data; other stream or other seed, other data.
  auto g2 = SynGenerator::Create(p);
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(g2->GenerateVector(kSynBaseStream, 0, 300, 1), all);
  EXPECT_NE(g->GenerateVector(kSynQueryStream, 0, 300, 1), all);
  p.seed = 10;
  auto g3 = SynGenerator::Create(p);
  ASSERT_TRUE(g3.ok());
  EXPECT_NE(g3->GenerateVector(kSynBaseStream, 0, 300, 1), all);
}

TEST(SynTest, IsClusteredAndAnisotropic) {
  // Points of the same centre are closer than random pairs; the spectrum makes the
  // leading directions carry more variance than the trailing ones.
  SynParams p;
  p.dim = 64;
  p.n_base = 100;
  p.num_centers = 4;
  auto g = SynGenerator::Create(p);
  ASSERT_TRUE(g.ok());
  auto x = g->GenerateVector(kSynBaseStream, 0, 400);
  double mean_cos = 0;
  for (size_t i = 0; i + 1 < 400; ++i) mean_cos += Dot(&x[i * 64], &x[(i + 1) * 64], 64);
  mean_cos /= 399;
  EXPECT_GT(mean_cos, 0.05);  // 4 centres share mass: pairs are correlated on average
  EXPECT_LT(mean_cos, 0.9);
}

TEST(SynTest, BadParams) {
  SynParams p;
  p.dim = 0;
  EXPECT_EQ(SynGenerator::Create(p).status().code(), StatusCode::kInvalidArgument);
  p.dim = 8;
  p.n_base = 0;
  EXPECT_EQ(SynGenerator::Create(p).status().code(), StatusCode::kInvalidArgument);
  p.n_base = 10;
  p.decay = std::nan("");
  EXPECT_EQ(SynGenerator::Create(p).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(IoTest, FvecsIvecsRoundTrip) {
  const std::string f = TempPath("a.fvecs"), iv = TempPath("a.ivecs");
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(WriteFvecs(f, x.data(), 2, 3).ok());
  auto r = ReadFvecs(f);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 2u);
  EXPECT_EQ(r->dim, 3u);
  EXPECT_EQ(r->data, x);
  EXPECT_EQ(std::filesystem::file_size(f), 2 * (4 + 12));
  auto r1 = ReadFvecs(f, 1);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->rows, 1u);
  EXPECT_EQ(r1->row(0)[2], 3.0f);
  std::vector<int32_t> ids = {7, -1, 9, 10};
  ASSERT_TRUE(WriteIvecs(iv, ids.data(), 1, 4).ok());
  auto ri = ReadIvecs(iv);
  ASSERT_TRUE(ri.ok());
  EXPECT_EQ(ri->data, ids);
  // Empty file: zero rows.
  ASSERT_TRUE(WriteFvecs(f, nullptr, 0, 3).ok());
  auto e = ReadFvecs(f);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->rows, 0u);
}

TEST_F(IoTest, ClearErrors) {
  auto missing = ReadFvecs(TempPath("nope.fvecs"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.fvecs"), std::string::npos);

  const std::string f = TempPath("bad.fvecs");
  auto write_raw = [&](const std::vector<int32_t>& words, size_t extra_bytes = 0) {
    std::ofstream out(f, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(words.data()), words.size() * 4);
    for (size_t i = 0; i < extra_bytes; ++i) out.put('x');
  };
  write_raw({2, 0, 0, 2, 0}, 0);  // second row truncated
  auto t = ReadFvecs(f);
  EXPECT_EQ(t.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(t.status().message().find("truncated"), std::string::npos) << t.status().message();
  write_raw({2, 0, 0, 3, 0, 0});  // row 1 claims dim 3
  t = ReadFvecs(f);
  EXPECT_EQ(t.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(t.status().message().find("row 1 has dimension 3"), std::string::npos)
      << t.status().message();
  write_raw({-5, 0});
  t = ReadFvecs(f);
  EXPECT_EQ(t.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(t.status().message().find("dimension -5"), std::string::npos);
  EXPECT_EQ(WriteFvecs(f, nullptr, 0, 0).code(), StatusCode::kInvalidArgument);
  auto no_dir = WriteFvecs("/nonexistent-dir-dreamdb/x.fvecs", nullptr, 0, 2);
  EXPECT_EQ(no_dir.code(), StatusCode::kIoError);
}

std::vector<float> Gaussian(size_t n, size_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n * dim);
  for (float& x : v) x = static_cast<float>(rng.Gaussian());
  return v;
}

TEST(BruteTest, MatchesNaiveForEveryMetric) {
  const size_t n = 2100, nq = 20, dim = 20, k = 5;  // crosses block boundaries
  auto base = Gaussian(n, dim, 1);
  auto q = Gaussian(nq, dim, 2);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    auto r = BruteForceTopK(base.data(), n, q.data(), nq, dim, k, m, 2);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (size_t i = 0; i < nq; ++i) {
      std::vector<std::pair<float, uint32_t>> all;
      for (size_t j = 0; j < n; ++j) {
        all.emplace_back(ExactDistance(m, &q[i * dim], &base[j * dim], dim), j);
      }
      std::sort(all.begin(), all.end());
      for (size_t j = 0; j < k; ++j) {
        EXPECT_NEAR(r->dist_of(i)[j], all[j].first, 1e-4) << MetricName(m);
        EXPECT_NEAR(ExactDistance(m, &q[i * dim], &base[r->ids_of(i)[j] * dim], dim), all[j].first,
                    1e-4);
      }
    }
    // Perfect answers have recall 1; answers from the wrong end have recall 0.
    EXPECT_DOUBLE_EQ(RecallAtK(base.data(), n, q.data(), dim, m, *r, r->ids.data(), k, k), 1.0);
    std::vector<uint32_t> none(nq * k, UINT32_MAX);
    EXPECT_DOUBLE_EQ(RecallAtK(base.data(), n, q.data(), dim, m, *r, none.data(), k, k), 0.0);
  }
}

TEST(BruteTest, RecallCountsTiesWithinEpsilon) {
  // Two identical base vectors: either id is a correct 1-NN answer.
  std::vector<float> base = {1, 0, 1, 0, 0, 1};
  std::vector<float> q = {1, 0};
  auto t = BruteForceTopK(base.data(), 3, q.data(), 1, 2, 1, Metric::kL2);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ids[0], 0u);  // ties break by id
  uint32_t other = 1, wrong = 2;
  EXPECT_DOUBLE_EQ(RecallAtK(base.data(), 3, q.data(), 2, Metric::kL2, *t, &other, 1, 1), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK(base.data(), 3, q.data(), 2, Metric::kL2, *t, &wrong, 1, 1), 0.0);
}

TEST(BruteTest, ClearErrors) {
  std::vector<float> b(8);
  EXPECT_EQ(BruteForceTopK(b.data(), 2, b.data(), 1, 4, 3, Metric::kL2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BruteForceTopK(b.data(), 2, b.data(), 1, 0, 1, Metric::kL2).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BruteForceTopK(b.data(), 2, b.data(), 1, 4, 0, Metric::kL2).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb::vector
