// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/ivf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/rng.h"
#include "src/index/kernels/simd_test_util.h"
#include "src/index/test_util.h"

namespace dreamdb::vector {
namespace {

constexpr uint32_t kDim = 128;

std::vector<float> Clustered(size_t n, uint64_t seed, uint32_t dim = kDim) {
  return testing::Clustered(n, seed, dim);
}
using testing::BruteForce;
using testing::Recall;

struct Fixture {
  std::vector<float> data = Clustered(4000, 1);
  std::vector<float> queries = Clustered(40, 2);
};
const Fixture& Data() {
  static const Fixture* f = new Fixture();
  return *f;
}

IvfParams Params(Metric metric, uint32_t bits) {
  IvfParams p;
  p.dim = kDim;
  p.metric = metric;
  p.bits = bits;
  p.num_cells = 32;
  p.seed = 7;
  p.kmeans.iterations = 8;
  return p;
}

struct RecallCase {
  Metric metric;
  uint32_t bits;
  bool rerank;
  double min_recall;
};

class IvfRecallTest : public ::testing::TestWithParam<RecallCase> {};

TEST_P(IvfRecallTest, RecallAboveThreshold) {
  const RecallCase& rc = GetParam();
  const Fixture& f = Data();
  auto index =
      IvfIndex::Build(Params(rc.metric, rc.bits), f.data.data(), 4000, nullptr, rc.rerank, 2);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  const auto truth = BruteForce((*index)->model(), f.data, f.queries, 10);
  SearchParams sp;
  sp.k = 10;
  sp.nprobe = 8;
  sp.rerank = rc.rerank;
  auto got = (*index)->SearchBatch(f.queries.data(), 40, sp, 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const double recall = Recall(*got, truth);
  std::printf("recall@10 %s bits=%u%s nprobe=8: %.4f\n", std::string(MetricName(rc.metric)).c_str(),
              rc.bits, rc.rerank ? " +rerank" : "", recall);
  EXPECT_GE(recall, rc.min_recall)
      << MetricName(rc.metric) << " bits " << rc.bits << (rc.rerank ? " +rerank" : "");
  // Results are sorted and their scores match the metric.
  for (const auto& res : *got) {
    ASSERT_EQ(res.size(), 10u);
    for (size_t i = 1; i < res.size(); ++i) EXPECT_LE(res[i - 1].distance, res[i].distance);
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, IvfRecallTest,
                         ::testing::Values(RecallCase{Metric::kL2, 1, true, 0.97},
                                           RecallCase{Metric::kL2, 1, false, 0.5},
                                           RecallCase{Metric::kL2, 2, false, 0.62},
                                           RecallCase{Metric::kL2, 4, false, 0.86},
                                           RecallCase{Metric::kL2, 5, false, 0.93},
                                           RecallCase{Metric::kL2, 8, false, 0.97},
                                           RecallCase{Metric::kInnerProduct, 1, true, 0.95},
                                           RecallCase{Metric::kInnerProduct, 4, false, 0.88},
                                           RecallCase{Metric::kInnerProduct, 8, false, 0.97},
                                           RecallCase{Metric::kCosine, 1, true, 0.97},
                                           RecallCase{Metric::kCosine, 1, false, 0.42},
                                           RecallCase{Metric::kCosine, 4, false, 0.83},
                                           RecallCase{Metric::kCosine, 5, false, 0.9},
                                           RecallCase{Metric::kCosine, 8, false, 0.97}));

TEST(IvfTest, ScoresFollowTheMetric) {
  const Fixture& f = Data();
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    auto index = IvfIndex::Build(Params(metric, 8), f.data.data(), 1500, nullptr, true, 2).value();
    SearchParams sp;
    sp.rerank = true;
    sp.nprobe = 32;
    const float* q = f.queries.data();
    auto res = index->Search(q, sp).value();
    ASSERT_FALSE(res.empty());
    const float* v = &f.data[res[0].id * kDim];
    double dot = 0, qq = 0, vv = 0, l2 = 0;
    for (uint32_t j = 0; j < kDim; ++j) {
      dot += q[j] * v[j];
      qq += q[j] * q[j];
      vv += v[j] * v[j];
      l2 += (q[j] - v[j]) * (q[j] - v[j]);
    }
    switch (metric) {
      case Metric::kL2:
        EXPECT_NEAR(res[0].distance, l2, 1e-2 * l2);
        EXPECT_NEAR(res[0].score, std::sqrt(l2), 1e-2 * std::sqrt(l2));
        break;
      case Metric::kInnerProduct:
        EXPECT_NEAR(res[0].score, dot, 1e-3 * std::fabs(dot) + 1e-3);
        EXPECT_NEAR(res[0].distance, -dot, 1e-3 * std::fabs(dot) + 1e-3);
        break;
      case Metric::kCosine:
        EXPECT_NEAR(res[0].score, dot / std::sqrt(qq * vv), 1e-4);
        EXPECT_NEAR(res[0].distance, 1 - dot / std::sqrt(qq * vv), 1e-4);
        break;
    }
  }
}

TEST(IvfTest, DeterministicUnderSeed) {
  const Fixture& f = Data();
  auto a = IvfIndex::Build(Params(Metric::kL2, 4), f.data.data(), 2000, nullptr, false, 2).value();
  auto b = IvfIndex::Build(Params(Metric::kL2, 4), f.data.data(), 2000, nullptr, false, 1).value();
  EXPECT_EQ(a->model().Serialize(), b->model().Serialize());
  for (uint32_t c = 0; c < a->model().num_cells(); ++c) {
    EXPECT_EQ(a->cell_codes(c), b->cell_codes(c));
    EXPECT_EQ(a->cell_ids(c), b->cell_ids(c));
  }
  IvfParams other = Params(Metric::kL2, 4);
  other.seed = 8;
  auto c = IvfIndex::Build(other, f.data.data(), 2000, nullptr, false, 2).value();
  EXPECT_NE(a->model().Serialize(), c->model().Serialize());
}

TEST(IvfTest, SerializationRoundTrip) {
  const Fixture& f = Data();
  for (auto rot : {RotationKind::kHadamard, RotationKind::kDense}) {
    IvfParams p = Params(Metric::kCosine, 3);
    p.rotation = rot;
    auto index = IvfIndex::Build(p, f.data.data(), 2000, nullptr, false, 2).value();
    const Bytes bytes = index->model().Serialize();
    auto model = IvfModel::Deserialize(bytes);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    EXPECT_EQ((*model)->Serialize(), bytes);
    EXPECT_EQ((*model)->params().bits, 3u);
    EXPECT_EQ((*model)->params().rotation, rot);
    // Same search results through the deserialized model.
    SearchParams sp;
    sp.nprobe = 4;
    auto q1 = index->model().NewQuery(f.queries.data(), sp).value();
    auto q2 = (*model)->NewQuery(f.queries.data(), sp).value();
    EXPECT_EQ(q1->probe_order(), q2->probe_order());
    for (uint32_t c : q1->probe_order()) {
      ASSERT_TRUE(q1->ScanCell(c, index->cell_codes(c), index->cell_ids(c).data()).ok());
      ASSERT_TRUE(q2->ScanCell(c, index->cell_codes(c), index->cell_ids(c).data()).ok());
    }
    auto r1 = q1->Finish().value();
    auto r2 = q2->Finish().value();
    ASSERT_EQ(r1.size(), r2.size());
    for (size_t i = 0; i < r1.size(); ++i) {
      EXPECT_EQ(r1[i].id, r2[i].id);
      EXPECT_EQ(r1[i].distance, r2[i].distance);
    }
    // Corruption is detected.
    Bytes bad = bytes;
    bad.pop_back();
    EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
    bad = bytes;
    bad[4] = 9;
    EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kUnsupported);
    EXPECT_EQ(IvfModel::Deserialize("xyz").status().code(), StatusCode::kCorrupt);
  }
}

TEST(IvfTest, AppendSelectAndConcatAreConsistent) {
  const Fixture& f = Data();
  auto model = IvfModel::Train(Params(Metric::kL2, 5), f.data.data(), 1000).value();
  const float* v = f.data.data();
  const Bytes all = model->EncodeCell(3, v, 70).value();
  Bytes part = model->EncodeCell(3, v, 45).value();
  ASSERT_TRUE(model->AppendToCell(3, &part, v + 45 * kDim, 25).ok());
  EXPECT_EQ(part, all);
  EXPECT_EQ(model->CellCount(all).value(), 70u);
  std::vector<uint32_t> first(45);
  std::iota(first.begin(), first.end(), 0u);
  Bytes sel = model->SelectFromCell(all, first).value();
  EXPECT_EQ(sel, model->EncodeCell(3, v, 45).value());
  const Bytes tail = model->EncodeCell(3, v + 45 * kDim, 25).value();
  ASSERT_TRUE(model->AppendCodes(&sel, tail).ok());
  EXPECT_EQ(sel, all);
  EXPECT_EQ(model->SelectFromCell(all, {70}).status().code(), StatusCode::kInvalidArgument);
}

TEST(IvfTest, FilterIsRespected) {
  const Fixture& f = Data();
  auto index =
      IvfIndex::Build(Params(Metric::kL2, 4), f.data.data(), 4000, nullptr, true, 2).value();
  const std::function<bool(uint64_t)> even = [](uint64_t id) { return id % 2 == 0; };
  for (bool rerank : {false, true}) {
    SearchParams sp;
    sp.rerank = rerank;
    sp.nprobe = 8;
    auto res = index->Search(f.queries.data(), sp, &even).value();
    ASSERT_EQ(res.size(), 10u);
    for (const Neighbor& nb : res) EXPECT_EQ(nb.id % 2, 0u);
  }
}

TEST(IvfTest, CustomIdsAndAdd) {
  const Fixture& f = Data();
  IvfParams p = Params(Metric::kCosine, 4);
  auto model = IvfModel::Train(p, f.data.data(), 2000).value();
  auto index = IvfIndex::Create(model, true);
  std::vector<uint64_t> ids(4000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = 1000000 + i;
  ASSERT_TRUE(index->Add(f.data.data(), 2000, ids.data()).ok());
  ASSERT_TRUE(index->Add(f.data.data() + 2000 * kDim, 2000, ids.data() + 2000).ok());
  EXPECT_EQ(index->size(), 4000u);
  EXPECT_EQ(index->Add(f.data.data(), 1, ids.data()).code(), StatusCode::kInvalidArgument);
  // A data vector finds itself.
  SearchParams sp;
  sp.k = 1;
  sp.rerank = true;
  auto res = index->Search(f.data.data() + 1234 * kDim, sp).value();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].id, 1001234u);
  EXPECT_GT(index->MemoryBytes(), 4000u * (kDim * 4 + 4 * kDim / 8));
}

TEST(IvfTest, SimdLevelsGiveIdenticalResults) {
  const Fixture& f = Data();
  auto index =
      IvfIndex::Build(Params(Metric::kL2, 5), f.data.data(), 4000, nullptr, false, 2).value();
  SearchParams sp;
  sp.nprobe = 6;
  const SimdLevel original = ActiveSimdLevel();
  std::vector<std::vector<Neighbor>> base;
  for (SimdLevel level : testing::TestableLevels()) {
    SetSimdLevelForTesting(level);
    auto got = index->SearchBatch(f.queries.data(), 40, sp, 1).value();
    if (base.empty()) {
      base = got;
      continue;
    }
    for (size_t q = 0; q < got.size(); ++q) {
      ASSERT_EQ(got[q].size(), base[q].size());
      for (size_t i = 0; i < got[q].size(); ++i) {
        EXPECT_EQ(got[q][i].id, base[q][i].id) << SimdLevelName(level);
        // The probing distances come from the f32 distance kernels, whose rounding differs
        // by level; the code kernels themselves are bit-identical (fastscan_test).
        EXPECT_NEAR(got[q][i].distance, base[q][i].distance, 1e-4 * std::fabs(base[q][i].distance));
      }
    }
  }
  SetSimdLevelForTesting(original);
}

// More than CentroidIndexOptions::exact_threshold cells: probing goes through the two-level
// centroid index. Its probe set must match the exact order closely, and search recall must
// stay close to scanning the exact probe set.
TEST(IvfTest, LargeModelProbesWithCentroidIndex) {
  constexpr uint32_t kSmallDim = 32;
  constexpr uint32_t kCells = 4096;
  constexpr uint32_t kNprobe = 32;
  constexpr size_t kN = 4096;
  constexpr size_t kQueries = 20;
  const std::vector<float> data = Clustered(kN, 3, kSmallDim);
  const std::vector<float> queries = Clustered(kQueries, 4, kSmallDim);
  const std::vector<float> centroids = Clustered(kCells, 5, kSmallDim);
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    IvfParams p;
    p.dim = kSmallDim;
    p.metric = metric;
    p.bits = 4;
    p.num_cells = kCells;
    p.seed = 11;
    // Centroids: other draws of the same distribution (k-means with 4096 cells is too slow
    // for a fast test).
    auto model = IvfModel::FromCentroids(p, centroids).value();
    auto index = IvfIndex::Create(model, false);
    ASSERT_TRUE(index->Add(data.data(), kN, nullptr, 1).ok());
    SearchParams sp;
    sp.k = 10;
    sp.nprobe = kNprobe;
    size_t probe_hits = 0;
    size_t approx_hits = 0;
    size_t exact_hits = 0;
    for (size_t q = 0; q < kQueries; ++q) {
      const float* qv = &queries[q * kSmallDim];
      // Exact probe order and brute-force neighbours.
      std::vector<std::pair<float, uint32_t>> cells(kCells);
      for (uint32_t c = 0; c < kCells; ++c)
        cells[c] = {model->ExactDistance(qv, model->centroid(c)), c};
      std::partial_sort(cells.begin(), cells.begin() + kNprobe, cells.end());
      std::vector<std::pair<float, uint64_t>> all(kN);
      for (size_t i = 0; i < kN; ++i) all[i] = {model->ExactDistance(qv, &data[i * kSmallDim]), i};
      std::partial_sort(all.begin(), all.begin() + 10, all.end());
      std::set<uint64_t> truth;
      for (size_t i = 0; i < 10; ++i) truth.insert(all[i].second);

      auto query = model->NewQuery(qv, sp).value();
      ASSERT_EQ(query->probe_order().size(), kNprobe);
      const std::set<uint32_t> got(query->probe_order().begin(), query->probe_order().end());
      for (uint32_t i = 0; i < kNprobe; ++i) probe_hits += got.count(cells[i].second);

      const std::vector<Neighbor> approx_nb = index->Search(qv, sp).value();
      for (const Neighbor& nb : approx_nb) approx_hits += truth.count(nb.id);
      for (uint32_t i = 0; i < kNprobe; ++i) {
        const uint32_t c = cells[i].second;
        ASSERT_TRUE(query->ScanCell(c, index->cell_codes(c), index->cell_ids(c).data()).ok());
      }
      const std::vector<Neighbor> exact_nb = query->Finish().value();
      for (const Neighbor& nb : exact_nb) exact_hits += truth.count(nb.id);
    }
    const double probe_recall = static_cast<double>(probe_hits) / (kQueries * kNprobe);
    const double approx = static_cast<double>(approx_hits) / (kQueries * 10);
    const double exact = static_cast<double>(exact_hits) / (kQueries * 10);
    EXPECT_GE(probe_recall, 0.95) << MetricName(metric);
    EXPECT_GE(approx, exact - 0.03) << MetricName(metric) << " exact-probe recall " << exact;
    std::printf("%s: probe-set recall %.3f, recall@10 %.3f (exact probe %.3f)\n",
                std::string(MetricName(metric)).c_str(), probe_recall, approx, exact);
  }
}

TEST(IvfTest, BadInputsGiveClearErrors) {
  const Fixture& f = Data();
  IvfParams p = Params(Metric::kL2, 4);
  p.bits = 0;
  EXPECT_EQ(IvfModel::Train(p, f.data.data(), 100).status().code(), StatusCode::kInvalidArgument);
  p.bits = 9;
  EXPECT_EQ(IvfModel::Train(p, f.data.data(), 100).status().code(), StatusCode::kInvalidArgument);
  p.bits = 4;
  p.dim = 0;
  EXPECT_EQ(IvfModel::Train(p, f.data.data(), 100).status().code(), StatusCode::kInvalidArgument);
  p.dim = kDim;
  EXPECT_EQ(IvfModel::Train(p, f.data.data(), 0).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> bad(f.data.begin(), f.data.begin() + 100 * kDim);
  bad[5 * kDim + 3] = std::nanf("");
  auto st = IvfModel::Train(p, bad.data(), 100).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("row 5"), std::string::npos) << st.message();

  auto index =
      IvfIndex::Build(Params(Metric::kCosine, 4), f.data.data(), 1000, nullptr, false, 2).value();
  SearchParams sp;
  sp.k = 0;
  EXPECT_EQ(index->Search(f.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  sp.k = 10;
  std::vector<float> q(f.queries.begin(), f.queries.begin() + kDim);
  q[0] = INFINITY;
  EXPECT_EQ(index->Search(q.data(), sp).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> zero(kDim, 0.0f);
  EXPECT_EQ(index->Search(zero.data(), sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index->Add(zero.data(), 1, nullptr).code(), StatusCode::kInvalidArgument);
  // rerank without raw vectors.
  sp.rerank = true;
  EXPECT_EQ(index->Search(f.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  sp.rerank = false;
  // nprobe above num_cells is clamped.
  sp.nprobe = 100000;
  auto qq = index->model().NewQuery(f.queries.data(), sp).value();
  EXPECT_EQ(qq->probe_order().size(), index->model().num_cells());
  // A codes block of another model is rejected.
  auto other = IvfModel::Train(Params(Metric::kCosine, 2), f.data.data(), 500).value();
  const Bytes codes = other->EncodeCell(0, f.data.data(), 3).value();
  const uint64_t ids[3] = {1, 2, 3};
  EXPECT_EQ(qq->ScanCell(0, codes, ids).code(), StatusCode::kCorrupt);
  EXPECT_EQ(qq->ScanCell(99999, index->cell_codes(0), ids).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb::vector
