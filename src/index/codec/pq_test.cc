// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/codec/pq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "src/index/ivf.h"
#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/rng.h"
#include "src/index/kernels/simd_test_util.h"

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

IvfParams Params(Metric metric, IvfParams::Algorithm algorithm = IvfParams::Algorithm::kIvf,
                 uint32_t pq_m = 32) {
  IvfParams p;
  p.dim = kDim;
  p.metric = metric;
  p.num_cells = 16;
  p.seed = 5;
  p.kmeans.iterations = 6;
  p.algorithm = algorithm;
  p.quantizer = IvfParams::Quantizer::kPq4;
  p.pq_subspaces = pq_m;
  return p;
}

std::set<uint64_t> Truth(const IvfModel& model, const float* qv) {
  const Data& d = TestData();
  std::vector<std::pair<float, uint64_t>> all(kN);
  for (size_t i = 0; i < kN; ++i) all[i] = {model.ExactDistance(qv, &d.data[i * kDim]), i};
  std::partial_sort(all.begin(), all.begin() + 10, all.end());
  std::set<uint64_t> truth;
  for (size_t i = 0; i < 10; ++i) truth.insert(all[i].second);
  return truth;
}

double RecallAt10(const IvfIndex& index, const SearchParams& sp) {
  const Data& d = TestData();
  size_t hits = 0;
  for (size_t q = 0; q < kQueries; ++q) {
    const float* qv = &d.queries[q * kDim];
    const std::set<uint64_t> truth = Truth(index.model(), qv);
    const std::vector<Neighbor> got = index.Search(qv, sp).value();
    EXPECT_EQ(got.size(), 10u);
    for (const Neighbor& nb : got) hits += truth.count(nb.id);
  }
  return static_cast<double>(hits) / (kQueries * 10);
}

struct RecallCase {
  IvfParams::Algorithm algorithm;
  Metric metric;
  double min_recall;         // without rerank
  double min_recall_rerank;  // with rerank
};
class PqRecallTest : public ::testing::TestWithParam<RecallCase> {};

// pq_subspaces 32 (2 coordinates per sub-space), 16 cells, nprobe 8 (imi, lsh: 8 non-empty
// cells). Measured recall@10 without / with rerank: ivf l2 0.848 / 0.980, ip 0.750 / 0.993,
// cosine 0.775 / 0.978; imi 0.835 / 0.948, 0.735 / 0.970, 0.787 / 0.975; lsh 0.805 / 0.915,
// 0.690 / 0.897, 0.725 / 0.930.
TEST_P(PqRecallTest, RecallAboveThreshold) {
  const RecallCase& c = GetParam();
  const Data& d = TestData();
  auto index =
      IvfIndex::Build(Params(c.metric, c.algorithm), d.data.data(), kN, nullptr, true, 2).value();
  ASSERT_NE(index->model().pq(), nullptr);
  EXPECT_EQ(index->model().pq()->m(), 32u);
  EXPECT_EQ(index->model().quantizer(), IvfParams::Quantizer::kPq4);
  for (bool rerank : {false, true}) {
    SearchParams sp;
    sp.k = 10;
    sp.nprobe = 8;
    sp.rerank = rerank;
    const double recall = RecallAt10(*index, sp);
    std::printf("pq4 %s %s rerank=%d recall@10 %.3f\n",
                std::string(AlgorithmName(c.algorithm)).c_str(),
                std::string(MetricName(c.metric)).c_str(), rerank ? 1 : 0, recall);
    EXPECT_GE(recall, rerank ? c.min_recall_rerank : c.min_recall);
  }
}

using A = IvfParams::Algorithm;
INSTANTIATE_TEST_SUITE_P(Partitions, PqRecallTest,
                         ::testing::Values(RecallCase{A::kIvf, Metric::kL2, 0.78, 0.93},
                                           RecallCase{A::kIvf, Metric::kInnerProduct, 0.68, 0.93},
                                           RecallCase{A::kIvf, Metric::kCosine, 0.70, 0.93},
                                           RecallCase{A::kImi, Metric::kL2, 0.78, 0.90},
                                           RecallCase{A::kImi, Metric::kInnerProduct, 0.68, 0.92},
                                           RecallCase{A::kImi, Metric::kCosine, 0.73, 0.92},
                                           RecallCase{A::kLsh, Metric::kL2, 0.75, 0.86},
                                           RecallCase{A::kLsh, Metric::kInnerProduct, 0.63, 0.85},
                                           RecallCase{A::kLsh, Metric::kCosine, 0.67, 0.88}),
                         [](const ::testing::TestParamInfo<RecallCase>& info) {
                           return std::string(AlgorithmName(info.param.algorithm)) + "_" +
                                  std::string(MetricName(info.param.metric));
                         });

TEST(PqTest, DeterministicAndSimdLevelsAgree) {
  const Data& d = TestData();
  auto a = IvfIndex::Build(Params(Metric::kL2, A::kIvf, 8), d.data.data(), kN, nullptr, false, 2)
               .value();
  auto b = IvfIndex::Build(Params(Metric::kL2, A::kIvf, 8), d.data.data(), kN, nullptr, false, 1)
               .value();
  ASSERT_EQ(a->model().num_cells(), b->model().num_cells());
  EXPECT_EQ(a->model().Serialize(), b->model().Serialize());
  for (uint32_t c = 0; c < a->model().num_cells(); ++c) {
    EXPECT_EQ(a->cell_codes(c), b->cell_codes(c)) << "cell " << c;
  }
  SearchParams sp;
  sp.nprobe = 4;
  const SimdLevel original = ActiveSimdLevel();
  std::vector<Neighbor> base;
  for (SimdLevel level : testing::TestableLevels()) {
    SetSimdLevelForTesting(level);
    const std::vector<Neighbor> got = a->Search(d.queries.data(), sp).value();
    if (base.empty()) {
      base = got;
      continue;
    }
    ASSERT_EQ(got.size(), base.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].id, base[i].id) << SimdLevelName(level);
      // The f32 tables use the dispatched distance kernels (summation order may differ).
      EXPECT_NEAR(got[i].distance, base[i].distance, 1e-4f * base[i].distance)
          << SimdLevelName(level);
    }
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
  IvfParams bad = Params(Metric::kL2, A::kIvf, 3);
  auto r3 = IvfModel::Train(bad, d.data.data(), kN);
  EXPECT_EQ(r3.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r3.status().message().find("pq_subspaces 3"), std::string::npos)
      << r3.status().message();
  EXPECT_EQ(IvfModel::Train(Params(Metric::kL2), d.data.data(), 10).status().code(),
            StatusCode::kInvalidArgument);  // fewer than 16 training vectors
  IvfParams bits = Params(Metric::kL2);
  bits.bits = 99;  // ignored by pq4
  auto ok = IvfModel::Train(bits, d.data.data(), 200);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->params().bits, 4u);
  EXPECT_EQ(IvfModel::FromCentroids(Params(Metric::kL2), std::vector<float>(16 * kDim, 1.0f))
                .status()
                .code(),
            StatusCode::kInvalidArgument);  // builders make rabitq models; WithPq for pq4
  auto index =
      IvfIndex::Build(Params(Metric::kL2, A::kIvf, 0), d.data.data(), kN, nullptr, false, 2)
          .value();
  EXPECT_EQ(index->model().pq()->m(), DefaultPqSubspaces(kDim));
  SearchParams sp;
  sp.rerank = true;
  EXPECT_EQ(index->Search(d.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  sp.rerank = false;
  sp.k = 0;
  EXPECT_EQ(index->Search(d.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizerName(IvfParams::Quantizer::kPq4), "pq4");
  EXPECT_EQ(QuantizerName(IvfParams::Quantizer::kRaBitQ), "rabitq");
  EXPECT_EQ(ParseQuantizer("pq4").value(), IvfParams::Quantizer::kPq4);
  EXPECT_EQ(ParseQuantizer("rabitq").value(), IvfParams::Quantizer::kRaBitQ);
  auto unknown = ParseQuantizer("opq");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'opq'"), std::string::npos)
      << unknown.status().message();
  EXPECT_EQ(DefaultPqSubspaces(768), 192u);
  EXPECT_EQ(DefaultPqSubspaces(2048), 256u);
  EXPECT_EQ(DefaultPqSubspaces(30), 15u);
  EXPECT_EQ(DefaultPqSubspaces(7), 7u);
}

// A small pq4 model (ivf, 4 cells) and the vectors of its cell 0..3.
struct Small {
  std::shared_ptr<const IvfModel> model;
  std::vector<std::vector<float>> cell_vecs;  // per cell, row-major
};
Small MakeSmall(Metric metric, IvfParams::Algorithm algorithm = A::kIvf) {
  const Data& d = TestData();
  IvfParams p = Params(metric, algorithm, 16);
  p.num_cells = 4;
  Small s;
  s.model = IvfModel::Train(p, d.data.data(), 600).value();
  std::vector<uint32_t> cells(kN);
  EXPECT_TRUE(s.model->Assign(d.data.data(), kN, cells.data()).ok());
  s.cell_vecs.resize(s.model->num_cells());
  for (size_t i = 0; i < kN; ++i) {
    auto& v = s.cell_vecs[cells[i]];
    v.insert(v.end(), &d.data[i * kDim], &d.data[(i + 1) * kDim]);
  }
  return s;
}

TEST(PqModelTest, SerializeRoundTripKeepsSearchResults) {
  for (A algorithm : {A::kIvf, A::kImi, A::kLsh}) {
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
      const Small s = MakeSmall(metric, algorithm);
      const Bytes bytes = s.model->Serialize();
      EXPECT_EQ(bytes[4], 3) << "pq4 models are format version 3";
      auto back = IvfModel::Deserialize(bytes);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ((*back)->Serialize(), bytes);
      EXPECT_EQ((*back)->quantizer(), IvfParams::Quantizer::kPq4);
      EXPECT_EQ((*back)->algorithm(), algorithm);
      EXPECT_EQ((*back)->params().pq_subspaces, 16u);
      // Same codes and the same neighbours from both models.
      const uint32_t cell = algorithm == A::kIvf ? 1 : 0;
      std::vector<float> v = s.cell_vecs[cell];
      if (v.empty()) continue;
      const size_t n = v.size() / kDim;
      const Bytes a = s.model->EncodeCell(cell, v.data(), n).value();
      const Bytes b = (*back)->EncodeCell(cell, v.data(), n).value();
      EXPECT_EQ(a, b);
      std::vector<uint64_t> ids(n);
      for (size_t i = 0; i < n; ++i) ids[i] = 1000 + i;
      SearchParams sp;
      sp.k = 5;
      auto q1 = s.model->NewQuery(TestData().queries.data(), sp).value();
      auto q2 = (*back)->NewQuery(TestData().queries.data(), sp).value();
      ASSERT_TRUE(q1->ScanCell(cell, a, ids.data()).ok());
      ASSERT_TRUE(q2->ScanCell(cell, b, ids.data()).ok());
      const auto r1 = q1->Finish().value();
      const auto r2 = q2->Finish().value();
      ASSERT_EQ(r1.size(), r2.size());
      for (size_t i = 0; i < r1.size(); ++i) {
        EXPECT_EQ(r1[i].id, r2[i].id);
        EXPECT_EQ(r1[i].distance, r2[i].distance);
      }
    }
  }
}

TEST(PqModelTest, CellCodesAppendSelectAndConcatenate) {
  const Small s = MakeSmall(Metric::kCosine);
  const IvfModel& m = *s.model;
  const uint32_t cell = 2;
  const std::vector<float>& v = s.cell_vecs[cell];
  const size_t n = v.size() / kDim;
  ASSERT_GT(n, 70u);
  // EncodeCell(a ++ b) == AppendToCell(EncodeCell(a), b), across block boundaries.
  const Bytes all = m.EncodeCell(cell, v.data(), n).value();
  EXPECT_EQ(all.size(), 16 + (n + 31) / 32 * m.pq()->BlockBytes());
  EXPECT_EQ(all.substr(0, 6), Bytes("DVIC\x02\x00", 6));
  for (size_t split : {size_t{0}, size_t{1}, size_t{31}, size_t{32}, size_t{45}, n}) {
    Bytes part = m.EncodeCell(cell, v.data(), split).value();
    ASSERT_TRUE(m.AppendToCell(cell, &part, v.data() + split * kDim, n - split).ok());
    EXPECT_EQ(part, all) << "split " << split;
    // AppendCodes of two encoded halves gives the same bytes too.
    Bytes head = m.EncodeCell(cell, v.data(), split).value();
    const Bytes tail = m.EncodeCell(cell, v.data() + split * kDim, n - split).value();
    ASSERT_TRUE(m.AppendCodes(&head, tail).ok());
    EXPECT_EQ(head, all) << "split " << split;
  }
  EXPECT_EQ(m.CellCount(all).value(), n);
  // SelectFromCell picks lanes: selecting positions 40..n-1 equals encoding those vectors.
  std::vector<uint32_t> pos;
  for (uint32_t i = 40; i < n; ++i) pos.push_back(i);
  EXPECT_EQ(m.SelectFromCell(all, pos).value(),
            m.EncodeCell(cell, v.data() + 40 * kDim, n - 40).value());
  EXPECT_EQ(m.SelectFromCell(all, {static_cast<uint32_t>(n)}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PqModelTest, WrongKindAndCorruptCellCodes) {
  const Small pq = MakeSmall(Metric::kL2);
  IvfParams rp;
  rp.dim = kDim;
  rp.metric = Metric::kL2;
  rp.num_cells = 4;
  rp.bits = 4;
  auto rabitq = IvfModel::Train(rp, TestData().data.data(), 600).value();
  const std::vector<float>& v = pq.cell_vecs[0];
  const size_t n = std::min<size_t>(40, v.size() / kDim);
  const Bytes pq_codes = pq.model->EncodeCell(0, v.data(), n).value();
  const Bytes rq_codes = rabitq->EncodeCell(0, v.data(), n).value();
  std::vector<uint64_t> ids(n, 7);
  SearchParams sp;
  auto q_pq = pq.model->NewQuery(TestData().queries.data(), sp).value();
  auto q_rq = rabitq->NewQuery(TestData().queries.data(), sp).value();
  EXPECT_EQ(q_pq->ScanCell(0, rq_codes, ids.data()).code(), StatusCode::kCorrupt);
  EXPECT_EQ(q_rq->ScanCell(0, pq_codes, ids.data()).code(), StatusCode::kCorrupt);
  EXPECT_EQ(pq.model->CellCount(rq_codes).status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(rabitq->CellCount(pq_codes).status().code(), StatusCode::kCorrupt);
  Bytes grow = rq_codes;
  EXPECT_EQ(pq.model->AppendToCell(0, &grow, v.data(), 1).code(), StatusCode::kCorrupt);
  // Header fields.
  auto with = [&](size_t at, char value) {
    Bytes b = pq_codes;
    b[at] = value;
    return pq.model->CellCount(b).status().code();
  };
  EXPECT_EQ(with(4, 3), StatusCode::kUnsupported);  // version 3: newer
  EXPECT_EQ(with(6, 2), StatusCode::kCorrupt);      // quantizer byte
  EXPECT_EQ(with(7, 1), StatusCode::kCorrupt);      // reserved
  EXPECT_EQ(with(8, 8), StatusCode::kCorrupt);      // sub-spaces 8 != 16
  EXPECT_EQ(with(12, 65), StatusCode::kCorrupt);    // count 65 needs 3 blocks, not 2
  EXPECT_EQ(pq.model->CellCount(pq_codes.substr(0, pq_codes.size() - 1)).status().code(),
            StatusCode::kCorrupt);
  EXPECT_EQ(pq.model->CellCount(pq_codes + "x").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(pq.model->CellCount(pq.model->EncodeCell(0, v.data(), 0).value()).value(), 0u);
}

TEST(PqModelTest, CorruptAndNewerModelBytes) {
  const Small s = MakeSmall(Metric::kInnerProduct, A::kLsh);
  const Bytes good = s.model->Serialize();
  auto code = [](const Bytes& b) { return IvfModel::Deserialize(b).status().code(); };
  auto with = [&](size_t at, char value) {
    Bytes b = good;
    b[at] = value;
    return code(b);
  };
  EXPECT_EQ(with(4, 4), StatusCode::kUnsupported);   // version 4
  EXPECT_EQ(with(10, 2), StatusCode::kUnsupported);  // quantizer 2: newer
  EXPECT_EQ(with(9, 3), StatusCode::kUnsupported);   // algorithm 3: newer
  EXPECT_EQ(with(10, 0), StatusCode::kCorrupt);      // version 3 must be pq4
  EXPECT_EQ(with(8, 5), StatusCode::kCorrupt);       // bits must be 4
  EXPECT_EQ(with(7, 1), StatusCode::kCorrupt);       // rotation must be 0
  EXPECT_EQ(with(11, 1), StatusCode::kCorrupt);      // reserved
  EXPECT_EQ(code(good.substr(0, good.size() - 4)), StatusCode::kCorrupt);
  EXPECT_EQ(code(good + "abcd"), StatusCode::kCorrupt);
  // The pq section: u32 m after the lsh body; a wrong m or non-zero reserved word.
  const size_t at = good.size() - size_t{kDim} * 16 * 4 - 8;
  uint32_t m = 0;
  std::memcpy(&m, good.data() + at, 4);
  EXPECT_EQ(m, 16u);
  EXPECT_EQ(with(at, 7), StatusCode::kCorrupt);      // 7 does not divide 64
  EXPECT_EQ(with(at, 0), StatusCode::kCorrupt);      // zero sub-spaces
  EXPECT_EQ(with(at + 4, 1), StatusCode::kCorrupt);  // reserved
  Bytes nan = good;
  const float bad = std::nanf("");
  std::memcpy(nan.data() + good.size() - 4, &bad, 4);
  EXPECT_EQ(code(nan), StatusCode::kCorrupt);
  // A rabitq model with the quantizer byte set is corrupt (versions 1 and 2 keep it zero).
  IvfParams rp;
  rp.dim = kDim;
  rp.num_cells = 4;
  Bytes r = IvfModel::Train(rp, TestData().data.data(), 600).value()->Serialize();
  r[10] = 1;
  EXPECT_EQ(code(r), StatusCode::kCorrupt);
}

TEST(PqModelTest, RerankRescoresTheBestEstimates) {
  const Data& d = TestData();
  auto index = IvfIndex::Build(Params(Metric::kL2), d.data.data(), kN, nullptr, true, 2).value();
  const IvfModel& m = index->model();
  SearchParams sp;
  sp.k = 3;
  sp.nprobe = 16;
  sp.rerank = true;
  auto q = m.NewQuery(d.queries.data(), sp).value();
  for (uint32_t c : q->probe_order()) {
    ASSERT_TRUE(q->ScanCell(c, index->cell_codes(c), index->cell_ids(c).data()).ok());
  }
  size_t asked = 0;
  const std::function<Status(const uint64_t*, size_t, float*)> exact = [&](const uint64_t* ids,
                                                                           size_t n, float* out) {
    asked += n;
    for (size_t i = 0; i < n; ++i) {
      out[i] = m.ExactDistance(d.queries.data(), &d.data[ids[i] * kDim]);
    }
    return Status::Ok();
  };
  const std::vector<Neighbor> got = q->Finish(&exact).value();
  EXPECT_EQ(asked, PqRerankCandidates(3));
  EXPECT_EQ(PqRerankCandidates(3), 200u);
  EXPECT_EQ(PqRerankCandidates(50), 1000u);
  ASSERT_EQ(got.size(), 3u);
  const std::set<uint64_t> truth = Truth(m, d.queries.data());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_FLOAT_EQ(got[i].distance, m.ExactDistance(d.queries.data(), &d.data[got[i].id * kDim]));
    if (i > 0) {
      EXPECT_LE(got[i - 1].distance, got[i].distance);
    }
  }
  EXPECT_TRUE(truth.count(got[0].id));
}

TEST(PqModelTest, EstimatesAreTheReconstructionDistance) {
  // Without rerank, each result's distance is the f32 distance to c + r^ (within rounding).
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    const Small s = MakeSmall(metric);
    const IvfModel& m = *s.model;
    const uint32_t cell = 3;
    const std::vector<float>& v = s.cell_vecs[cell];
    const size_t n = v.size() / kDim;
    const Bytes codes = m.EncodeCell(cell, v.data(), n).value();
    std::vector<uint64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = i;
    SearchParams sp;
    sp.k = 10;
    const float* qv = TestData().queries.data() + 5 * kDim;
    auto q = m.NewQuery(qv, sp).value();
    ASSERT_TRUE(q->ScanCell(cell, codes, ids.data()).ok());
    const std::vector<Neighbor> got = q->Finish().value();
    ASSERT_EQ(got.size(), 10u);
    std::vector<float> rec(kDim);
    const auto* blocks = reinterpret_cast<const uint8_t*>(codes.data()) + 16;
    for (const Neighbor& nb : got) {
      m.pq()->Decode(blocks + nb.id / 32 * m.pq()->BlockBytes(), nb.id % 32, rec.data());
      for (uint32_t j = 0; j < kDim; ++j) rec[j] += m.centroid(cell)[j];
      // ip, cosine: -<q, o^> (cosine: q normalised, o^ as is); l2: |q - o^|^2.
      float want = 0;
      if (metric == Metric::kL2) {
        want = L2Sqr(qv, rec.data(), kDim);
      } else {
        std::vector<float> qn(qv, qv + kDim);
        if (metric == Metric::kCosine) {
          const float inv = 1.0f / std::sqrt(NormSqr(qv, kDim));
          for (float& x : qn) x *= inv;
        }
        want = (metric == Metric::kCosine ? 1.0f : 0.0f) - Dot(qn.data(), rec.data(), kDim);
      }
      EXPECT_NEAR(nb.distance, want, 1e-3f * (1 + std::fabs(want))) << MetricName(metric);
    }
  }
}

TEST(PqModelTest, RerankWithSparseIdsMatchesDenseIds) {
  // IvfIndex's exact callback: row = id for ids 0..n-1, a hash lookup otherwise.
  const Data& d = TestData();
  std::vector<uint64_t> ids(kN);
  for (size_t i = 0; i < kN; ++i) ids[i] = 1'000'000 + 3 * i;
  auto dense =
      IvfIndex::Build(Params(Metric::kCosine), d.data.data(), kN, nullptr, true, 2).value();
  auto sparse =
      IvfIndex::Build(Params(Metric::kCosine), d.data.data(), kN, ids.data(), true, 2).value();
  SearchParams sp;
  sp.nprobe = 6;
  sp.rerank = true;
  for (size_t q = 0; q < 5; ++q) {
    const auto a = dense->Search(&d.queries[q * kDim], sp).value();
    const auto b = sparse->Search(&d.queries[q * kDim], sp).value();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(ids[a[i].id], b[i].id);
      EXPECT_EQ(a[i].distance, b[i].distance);
      EXPECT_EQ(a[i].distance,
                dense->model().ExactDistance(&d.queries[q * kDim], &d.data[a[i].id * kDim]));
    }
  }
}

}  // namespace
}  // namespace dreamdb::vector
