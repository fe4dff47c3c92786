// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/vector/pq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "src/vector/fastscan.h"
#include "src/vector/rng.h"

namespace dreamdb::vector {
namespace {

constexpr uint32_t kDim = 64;
constexpr size_t kN = 4000;
constexpr size_t kQueries = 40;

// Seeded clustered data of low intrinsic dimension (as embeddings are): 32 cluster centres
// plus a shared 8-d latent factor W z and small isotropic noise.
std::vector<float> Clustered(size_t n, uint64_t seed) {
  constexpr uint32_t kLatent = 8;
  Rng fixed(999);
  std::vector<float> centers(32 * size_t{kDim});
  for (auto& c : centers) c = static_cast<float>(fixed.Gaussian());
  std::vector<float> w(size_t{kDim} * kLatent);
  for (auto& x : w) x = static_cast<float>(0.5 * fixed.Gaussian());
  Rng rng(seed);
  std::vector<float> out(n * kDim);
  float z[kLatent];
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng.Below(32);
    for (float& x : z) x = static_cast<float>(rng.Gaussian());
    for (uint32_t j = 0; j < kDim; ++j) {
      float v = centers[c * kDim + j] + static_cast<float>(0.05 * rng.Gaussian());
      for (uint32_t t = 0; t < kLatent; ++t) v += w[j * kLatent + t] * z[t];
      out[i * kDim + j] = v;
    }
  }
  return out;
}

struct Data {
  std::vector<float> data = Clustered(kN, 1);
  std::vector<float> queries = Clustered(kQueries, 2);
};
const Data& TestData() {
  static const Data* d = new Data();
  return *d;
}

IvfParams Params(Metric metric) {
  IvfParams p;
  p.dim = kDim;
  p.metric = metric;
  p.num_cells = 16;
  p.seed = 5;
  p.kmeans.iterations = 6;
  return p;
}

double RecallAt10(const IvfPqIndex& index, const SearchParams& sp) {
  const Data& d = TestData();
  size_t hits = 0;
  for (size_t q = 0; q < kQueries; ++q) {
    const float* qv = &d.queries[q * kDim];
    std::vector<std::pair<float, uint64_t>> all(kN);
    for (size_t i = 0; i < kN; ++i) {
      all[i] = {index.model().ExactDistance(qv, &d.data[i * kDim]), i};
    }
    std::partial_sort(all.begin(), all.begin() + 10, all.end());
    std::set<uint64_t> truth;
    for (size_t i = 0; i < 10; ++i) truth.insert(all[i].second);
    const std::vector<Neighbor> got = index.Search(qv, sp).value();
    EXPECT_EQ(got.size(), 10u);
    for (const Neighbor& nb : got) hits += truth.count(nb.id);
  }
  return static_cast<double>(hits) / (kQueries * 10);
}

struct RecallCase {
  Metric metric;
  bool rerank;
  double min_recall;
};
class PqRecallTest : public ::testing::TestWithParam<RecallCase> {};

// pq_m 32 (2 coordinates per sub-space), nprobe 8 of 16 cells. Measured: l2 0.848 / 0.980,
// ip 0.750 / 0.993, cosine 0.775 / 0.978 (without / with rerank).
TEST_P(PqRecallTest, RecallAboveThreshold) {
  const RecallCase& c = GetParam();
  const Data& d = TestData();
  auto index =
      IvfPqIndex::Build(Params(c.metric), 32, d.data.data(), kN, nullptr, c.rerank, 2).value();
  EXPECT_EQ(index->codec().m(), 32u);
  SearchParams sp;
  sp.k = 10;
  sp.nprobe = 8;
  sp.rerank = c.rerank;
  const double recall = RecallAt10(*index, sp);
  std::printf("pq4 %s rerank=%d recall@10 %.3f\n", std::string(MetricName(c.metric)).c_str(),
              c.rerank ? 1 : 0, recall);
  EXPECT_GE(recall, c.min_recall);
}

INSTANTIATE_TEST_SUITE_P(Metrics, PqRecallTest,
                         ::testing::Values(RecallCase{Metric::kL2, false, 0.78},
                                           RecallCase{Metric::kL2, true, 0.93},
                                           RecallCase{Metric::kInnerProduct, false, 0.68},
                                           RecallCase{Metric::kInnerProduct, true, 0.93},
                                           RecallCase{Metric::kCosine, false, 0.70},
                                           RecallCase{Metric::kCosine, true, 0.93}),
                         [](const ::testing::TestParamInfo<RecallCase>& info) {
                           return std::string(MetricName(info.param.metric)) +
                                  (info.param.rerank ? "_rerank" : "");
                         });

TEST(PqTest, DeterministicAndSimdLevelsAgree) {
  const Data& d = TestData();
  auto a = IvfPqIndex::Build(Params(Metric::kL2), 8, d.data.data(), kN, nullptr, false, 2).value();
  auto b = IvfPqIndex::Build(Params(Metric::kL2), 8, d.data.data(), kN, nullptr, false, 1).value();
  ASSERT_EQ(a->model().num_cells(), b->model().num_cells());
  for (uint32_t c = 0; c < a->model().num_cells(); ++c) {
    EXPECT_EQ(a->cell_codes(c), b->cell_codes(c)) << "cell " << c;
  }
  SearchParams sp;
  sp.nprobe = 4;
  const SimdLevel original = ActiveSimdLevel();
  std::vector<Neighbor> base;
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (level > CpuSimdLevel()) continue;
    SetSimdLevelForTesting(level);
    const std::vector<Neighbor> got = a->Search(d.queries.data(), sp).value();
    if (base.empty()) {
      base = got;
      continue;
    }
    ASSERT_EQ(got.size(), base.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].id, base[i].id) << SimdLevelName(level);
  }
  SetSimdLevelForTesting(original);
}

TEST(PqTest, EncodeDecodeRoundTrip) {
  const Data& d = TestData();
  auto codec = PqCodec::Train(kDim, 16, d.data.data(), kN, 3).value();
  EXPECT_EQ(codec.groups(), 16u);
  std::vector<uint8_t> block(codec.BlockBytes(), 0);
  std::vector<uint8_t> code(codec.m());
  std::vector<float> rec(kDim);
  for (uint32_t lane = 0; lane < kFastScanBlock; ++lane) {
    codec.EncodeInto(&d.data[lane * kDim], block.data(), lane);
  }
  for (uint32_t lane = 0; lane < kFastScanBlock; ++lane) {
    const float* v = &d.data[lane * kDim];
    codec.Encode(v, code.data());
    codec.Decode(block.data(), lane, rec.data());
    for (uint32_t s = 0; s < codec.m(); ++s) {
      EXPECT_EQ(GetFastScanNibble(block.data(), s, lane), code[s]);
      // The decoded sub-vector is the nearest centroid of its sub-space.
      const float* got = &rec[s * codec.sub_dim()];
      const float best = L2Sqr(v + s * codec.sub_dim(), got, codec.sub_dim());
      for (uint32_t j = 0; j < kPqCentroids; ++j) {
        EXPECT_LE(best, L2Sqr(v + s * codec.sub_dim(), codec.centroid(s, j), codec.sub_dim()));
      }
    }
    // The FastScan sum of the quantised table matches the f32 table sum within m steps.
    std::vector<float> table(size_t{codec.m()} * kPqCentroids);
    std::vector<uint8_t> q(codec.BlockBytes());
    float delta = 0;
    float base = 0;
    codec.Table(d.queries.data(), true, table.data());
    codec.QuantizeTable(table.data(), q.data(), &delta, &base);
    uint32_t acc[kFastScanBlock];
    FastScanBlock(block.data(), q.data(), codec.groups(), acc);
    float exact = 0;
    for (uint32_t s = 0; s < codec.m(); ++s) exact += table[s * kPqCentroids + code[s]];
    EXPECT_NEAR(delta * static_cast<float>(acc[lane]) + base, exact, codec.m() * delta);
    EXPECT_NEAR(exact, L2Sqr(d.queries.data(), rec.data(), kDim), 1e-3f * (1 + exact));
  }
}

TEST(PqTest, BadParamsGiveClearErrors) {
  const Data& d = TestData();
  auto r = PqCodec::Train(kDim, 7, d.data.data(), kN, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("must divide dim"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(PqCodec::Train(512, 512, d.data.data(), 20, 0).status().code(),
            StatusCode::kInvalidArgument);  // m > 256
  EXPECT_EQ(PqCodec::Train(kDim, 16, d.data.data(), 8, 0).status().code(),
            StatusCode::kInvalidArgument);  // n < 16
  EXPECT_EQ(
      IvfPqIndex::Build(Params(Metric::kL2), 3, d.data.data(), kN, nullptr, false).status().code(),
      StatusCode::kInvalidArgument);
  auto index =
      IvfPqIndex::Build(Params(Metric::kL2), 0, d.data.data(), kN, nullptr, false, 2).value();
  SearchParams sp;
  sp.rerank = true;
  EXPECT_EQ(index->Search(d.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  sp.rerank = false;
  sp.k = 0;
  EXPECT_EQ(index->Search(d.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DefaultPqSubspaces(768), 192u);
  EXPECT_EQ(DefaultPqSubspaces(2048), 256u);
  EXPECT_EQ(DefaultPqSubspaces(30), 15u);
  EXPECT_EQ(DefaultPqSubspaces(7), 7u);
}

}  // namespace
}  // namespace dreamdb::vector
