// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The imi and lsh partitioning algorithms of IvfModel (spec/20 §4, §6.4): recall against
// brute force, probe order, determinism, serialization and errors.

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "src/base/encoding.h"
#include "src/index/ivf.h"
#include "src/index/kernels/rng.h"
#include "src/index/test_util.h"
#include "src/testing/golden.h"

namespace dreamdb::vector {
namespace {

using Algorithm = IvfParams::Algorithm;
constexpr uint32_t kDim = 128;

std::vector<float> Clustered(size_t n, uint64_t seed, uint32_t dim = kDim) {
  return testing::Clustered(n, seed, dim);
}
using testing::BruteForce;
using testing::Recall;

std::vector<float> Gaussians(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> out(n);
  for (float& v : out) v = static_cast<float>(rng.Gaussian());
  return out;
}

struct Fixture {
  std::vector<float> data = Clustered(4000, 1);
  std::vector<float> queries = Clustered(40, 2);
};
const Fixture& Data() {
  static const Fixture* f = new Fixture();
  return *f;
}

IvfParams Params(Algorithm algo, Metric metric, uint32_t bits) {
  IvfParams p;
  p.algorithm = algo;
  p.dim = kDim;
  p.metric = metric;
  p.bits = bits;
  p.num_cells = algo == Algorithm::kImi ? 256 : 64;  // imi: s = 16; lsh: 6 planes
  p.seed = 7;
  p.kmeans.iterations = 8;
  return p;
}

struct RecallCase {
  Algorithm algo;
  Metric metric;
  uint32_t bits;
  bool rerank;
  uint32_t nprobe;
  double min_recall;
};

class PartitionRecallTest : public ::testing::TestWithParam<RecallCase> {};

TEST_P(PartitionRecallTest, RecallAboveThreshold) {
  const RecallCase& rc = GetParam();
  const Fixture& f = Data();
  auto index = IvfIndex::Build(Params(rc.algo, rc.metric, rc.bits), f.data.data(), 4000, nullptr,
                               rc.rerank, 2);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ((*index)->model().algorithm(), rc.algo);
  const auto truth = BruteForce((*index)->model(), f.data, f.queries, 10);
  SearchParams sp;
  sp.k = 10;
  sp.nprobe = rc.nprobe;
  sp.rerank = rc.rerank;
  auto got = (*index)->SearchBatch(f.queries.data(), 40, sp, 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const double recall = Recall(*got, truth);
  std::printf("recall@10 %s %s bits=%u%s nprobe=%u: %.4f\n",
              std::string(AlgorithmName(rc.algo)).c_str(),
              std::string(MetricName(rc.metric)).c_str(), rc.bits, rc.rerank ? " +rerank" : "",
              rc.nprobe, recall);
  EXPECT_GE(recall, rc.min_recall);
  for (const auto& res : *got) {
    ASSERT_EQ(res.size(), 10u);
    for (size_t i = 1; i < res.size(); ++i) EXPECT_LE(res[i - 1].distance, res[i].distance);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Algorithms, PartitionRecallTest,
    ::testing::Values(RecallCase{Algorithm::kImi, Metric::kL2, 1, true, 24, 0.95},
                      RecallCase{Algorithm::kImi, Metric::kL2, 4, false, 24, 0.8},
                      RecallCase{Algorithm::kImi, Metric::kCosine, 1, true, 24, 0.95},
                      RecallCase{Algorithm::kImi, Metric::kCosine, 4, false, 24, 0.8},
                      RecallCase{Algorithm::kImi, Metric::kInnerProduct, 4, false, 24, 0.8},
                      RecallCase{Algorithm::kLsh, Metric::kL2, 1, true, 16, 0.9},
                      RecallCase{Algorithm::kLsh, Metric::kL2, 4, false, 16, 0.8},
                      RecallCase{Algorithm::kLsh, Metric::kCosine, 1, true, 16, 0.9},
                      RecallCase{Algorithm::kLsh, Metric::kCosine, 4, false, 16, 0.8}));

// imi probe order = all pairs sorted by d1(i) + d2(j) (brute force over the s^2 pairs).
TEST(ImiTest, MultiSequenceProbeOrderMatchesBruteForce) {
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    constexpr uint32_t kS = 12;
    constexpr uint32_t kOddDim = 9;  // split 5 + 4
    IvfParams p;
    p.algorithm = Algorithm::kImi;
    p.dim = kOddDim;
    p.metric = metric;
    p.bits = 2;
    p.seed = 3;
    auto model = IvfModel::FromImiCodebooks(p, kS, Gaussians(kS * 5, 1), Gaussians(kS * 4, 2));
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    const IvfModel& m = **model;
    EXPECT_EQ(m.num_cells(), kS * kS);
    EXPECT_EQ(m.imi_size(), kS);
    EXPECT_EQ(m.imi_split(), 5u);
    for (uint64_t qs = 10; qs < 15; ++qs) {
      std::vector<float> q = Gaussians(kOddDim, qs);
      std::vector<float> qn = q;
      if (metric == Metric::kCosine) {
        float n2 = 0;
        for (float v : q) n2 += v * v;
        for (float& v : qn) v /= std::sqrt(n2);
      }
      // Brute force with the same kernels (so the float sums are identical).
      std::vector<float> d1(kS);
      std::vector<float> d2(kS);
      std::vector<float> book1(kS * 5);
      std::vector<float> book2(kS * 4);
      for (uint32_t i = 0; i < kS; ++i) {
        std::copy(m.centroid(i * kS), m.centroid(i * kS) + 5, &book1[i * 5]);
        std::copy(m.centroid(i) + 5, m.centroid(i) + 9, &book2[i * 4]);
      }
      if (metric == Metric::kInnerProduct) {
        DotMany(qn.data(), book1.data(), kS, 5, d1.data());
        DotMany(qn.data() + 5, book2.data(), kS, 4, d2.data());
        for (float& v : d1) v = -v;
        for (float& v : d2) v = -v;
      } else {
        L2SqrMany(qn.data(), book1.data(), kS, 5, d1.data());
        L2SqrMany(qn.data() + 5, book2.data(), kS, 4, d2.data());
      }
      std::vector<std::pair<float, uint32_t>> all;
      for (uint32_t i = 0; i < kS; ++i) {
        for (uint32_t j = 0; j < kS; ++j) all.emplace_back(d1[i] + d2[j], i * kS + j);
      }
      std::sort(all.begin(), all.end());
      SearchParams sp;
      sp.nprobe = kS * kS;
      auto query = m.NewQuery(q.data(), sp);
      ASSERT_TRUE(query.ok()) << query.status().ToString();
      ASSERT_EQ((*query)->probe_order().size(), all.size());
      for (size_t i = 0; i < all.size(); ++i) {
        ASSERT_EQ((*query)->probe_order()[i], all[i].second) << "position " << i;
      }
      // With cell sizes: empty cells are skipped and nprobe counts non-empty cells.
      std::vector<uint32_t> sizes(kS * kS, 0);
      for (uint32_t c = 0; c < kS * kS; c += 3) sizes[c] = 1;
      sp.nprobe = 10;
      sp.cell_sizes = sizes.data();
      ASSERT_TRUE((*query)->Reset(q.data(), sp).ok());
      std::vector<uint32_t> want;
      for (const auto& [dist, c] : all) {
        if (sizes[c] != 0 && want.size() < 10) want.push_back(c);
      }
      EXPECT_EQ((*query)->probe_order(), want);
    }
    // Assignment = the first probed cell of the vector itself, and the centre is the
    // concatenation of the two sub-centroids.
    std::vector<float> v = Gaussians(kOddDim * 20, 99);
    std::vector<uint32_t> cells(20);
    ASSERT_TRUE(m.Assign(v.data(), 20, cells.data()).ok());
    for (uint32_t i = 0; i < 20; ++i) {
      SearchParams sp;
      sp.nprobe = 1;
      auto query = m.NewQuery(&v[i * kOddDim], sp).value();
      EXPECT_EQ(query->probe_order().at(0), cells[i]);
    }
  }
}

TEST(LshTest, ProbeOrderIsHammingThenMargin) {
  constexpr uint32_t kB = 5;
  constexpr uint32_t kD = 16;
  IvfParams p;
  p.algorithm = Algorithm::kLsh;
  p.dim = kD;
  p.metric = Metric::kL2;
  p.bits = 3;
  const std::vector<float> planes = Gaussians(kB * kD, 1);
  const std::vector<float> offset = Gaussians(kD, 2);
  auto model = IvfModel::FromLsh(p, planes, offset, Gaussians((1u << kB) * kD, 3));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->num_cells(), 32u);
  EXPECT_EQ((*model)->lsh_planes(), kB);
  for (uint64_t qs = 10; qs < 20; ++qs) {
    const std::vector<float> q = Gaussians(kD, qs);
    uint32_t pattern = 0;
    float margin[kB];
    for (uint32_t b = 0; b < kB; ++b) {
      margin[b] = Dot(&planes[b * kD], q.data(), kD) - Dot(&planes[b * kD], offset.data(), kD);
      if (margin[b] > 0) pattern |= 1u << b;
    }
    std::vector<std::tuple<int, float, uint32_t>> all;
    for (uint32_t c = 0; c < 32; ++c) {
      float cost = 0;
      for (uint32_t b = 0; b < kB; ++b) {
        if (((c ^ pattern) >> b) & 1u) cost += std::fabs(margin[b]);
      }
      all.emplace_back(std::popcount(c ^ pattern), cost, c);
    }
    std::sort(all.begin(), all.end());
    SearchParams sp;
    sp.nprobe = 32;
    auto query = (*model)->NewQuery(q.data(), sp).value();
    ASSERT_EQ(query->probe_order().size(), 32u);
    for (size_t i = 0; i < 32; ++i) EXPECT_EQ(query->probe_order()[i], std::get<2>(all[i]));
    uint32_t cell = 0;
    ASSERT_TRUE((*model)->Assign(q.data(), 1, &cell).ok());
    EXPECT_EQ(cell, pattern);
  }
}

TEST(PartitionTest, DeterministicUnderSeed) {
  const Fixture& f = Data();
  for (Algorithm algo : {Algorithm::kImi, Algorithm::kLsh}) {
    const IvfParams p = Params(algo, Metric::kL2, 4);
    auto a = IvfIndex::Build(p, f.data.data(), 2000, nullptr, false, 2).value();
    auto b = IvfIndex::Build(p, f.data.data(), 2000, nullptr, false, 1).value();
    EXPECT_EQ(a->model().Serialize(), b->model().Serialize());
    for (uint32_t c = 0; c < a->model().num_cells(); ++c) {
      EXPECT_EQ(a->cell_codes(c), b->cell_codes(c));
      EXPECT_EQ(a->cell_ids(c), b->cell_ids(c));
    }
    IvfParams other = p;
    other.seed = 8;
    auto c = IvfIndex::Build(other, f.data.data(), 2000, nullptr, false, 2).value();
    EXPECT_NE(a->model().Serialize(), c->model().Serialize());
  }
}

TEST(PartitionTest, SerializationRoundTrip) {
  const Fixture& f = Data();
  for (Algorithm algo : {Algorithm::kImi, Algorithm::kLsh}) {
    for (auto rot : {RotationKind::kHadamard, RotationKind::kDense}) {
      IvfParams p = Params(algo, Metric::kCosine, 3);
      p.rotation = rot;
      auto index = IvfIndex::Build(p, f.data.data(), 2000, nullptr, false, 2).value();
      const Bytes bytes = index->model().Serialize();
      EXPECT_EQ(bytes[4], 2);  // format version 2
      EXPECT_EQ(bytes[9], static_cast<char>(algo));
      auto model = IvfModel::Deserialize(bytes);
      ASSERT_TRUE(model.ok()) << model.status().ToString();
      EXPECT_EQ((*model)->Serialize(), bytes);
      EXPECT_EQ((*model)->algorithm(), algo);
      EXPECT_EQ((*model)->num_cells(), index->model().num_cells());
      for (uint32_t c = 0; c < (*model)->num_cells(); ++c) {
        ASSERT_TRUE(std::equal((*model)->centroid(c), (*model)->centroid(c) + kDim,
                               index->model().centroid(c)));
      }
      SearchParams sp;
      sp.nprobe = 8;
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
      // Encoding through the deserialized model gives the same cell codes.
      std::vector<uint32_t> cells(50);
      ASSERT_TRUE((*model)->Assign(f.data.data(), 50, cells.data()).ok());
      std::vector<uint32_t> cells2(50);
      ASSERT_TRUE(index->model().Assign(f.data.data(), 50, cells2.data()).ok());
      EXPECT_EQ(cells, cells2);
      EXPECT_EQ((*model)->EncodeCell(cells[0], f.data.data(), 1).value(),
                index->model().EncodeCell(cells[0], f.data.data(), 1).value());
      // Corruption and newer formats.
      Bytes bad = bytes;
      bad.pop_back();
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
      bad = bytes;
      bad[4] = 4;  // a newer version
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kUnsupported);
      bad = bytes;
      bad[4] = 3;  // version 3 is pq4 only (quantizer byte zero here)
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
      bad = bytes;
      bad[9] = 3;  // an algorithm this reader does not know
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kUnsupported);
      bad = bytes;
      bad[9] = 0;  // ivf is written as version 1 only
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
      bad = bytes;
      bad[4] = 1;  // version 1 has no algorithm byte (reserved zero)
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
      bad = bytes;
      bad[32] ^= 1;  // s / b no longer matches num_cells
      EXPECT_EQ(IvfModel::Deserialize(bad).status().code(), StatusCode::kCorrupt);
    }
  }
  // ivf models keep version 1 and a zero algorithm byte.
  auto ivf = IvfModel::Train(Params(Algorithm::kIvf, Metric::kL2, 2), Data().data.data(), 500);
  ASSERT_TRUE(ivf.ok());
  const Bytes ib = (*ivf)->Serialize();
  EXPECT_EQ(ib[4], 1);
  EXPECT_EQ(ib[9], 0);
  EXPECT_EQ((*ivf)->algorithm(), Algorithm::kIvf);
}

TEST(PartitionTest, ImiOddDimensionSplitsCeilFirst) {
  std::vector<float> data = Clustered(600, 5, 33);
  IvfParams p;
  p.algorithm = Algorithm::kImi;
  p.dim = 33;
  p.metric = Metric::kL2;
  p.num_cells = 50;  // s = ceil(sqrt(50)) = 8 -> 64 cells
  p.bits = 4;
  auto index = IvfIndex::Build(p, data.data(), 600, nullptr, true, 2);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ((*index)->model().imi_size(), 8u);
  EXPECT_EQ((*index)->model().num_cells(), 64u);
  EXPECT_EQ((*index)->model().imi_split(), 17u);
  SearchParams sp;
  sp.nprobe = 64;
  sp.rerank = true;
  // Every cell probed + rerank: exact.
  auto got = (*index)->Search(data.data(), sp);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->at(0).id, 0u);
  EXPECT_NEAR(got->at(0).distance, 0.0f, 1e-4);
  // Default num_cells: s = round(2 n^(1/4)) = round(2 * 600^0.25) = 10.
  p.num_cells = 0;
  auto m = IvfModel::Train(p, data.data(), 600);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->imi_size(), 10u);
}

TEST(PartitionTest, BadInputsGiveClearErrors) {
  const Fixture& f = Data();
  IvfParams p = Params(Algorithm::kImi, Metric::kL2, 4);
  p.dim = 1;
  auto r = IvfModel::Train(p, f.data.data(), 100);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dim >= 2"), std::string::npos) << r.status().ToString();
  p = Params(Algorithm::kImi, Metric::kL2, 4);
  p.num_cells = 5000u * 5000u;
  r = IvfModel::Train(p, f.data.data(), 100);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  p = Params(Algorithm::kLsh, Metric::kL2, 4);
  p.num_cells = 1u << 17;
  r = IvfModel::Train(p, f.data.data(), 100);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("hyperplanes"), std::string::npos) << r.status().ToString();
  // Fixed-parameter constructors check the algorithm and the shapes.
  EXPECT_EQ(IvfModel::FromCentroids(p, std::vector<float>(64 * kDim)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(IvfModel::FromLsh(p, std::vector<float>(17 * kDim), std::vector<float>(kDim),
                              std::vector<float>(size_t{1} << 17))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  IvfParams ip = Params(Algorithm::kImi, Metric::kL2, 4);
  EXPECT_EQ(IvfModel::FromImiCodebooks(ip, 4, std::vector<float>(4 * 64), std::vector<float>(3))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // NaN vectors and wrong queries, as for ivf.
  auto model = IvfModel::Train(Params(Algorithm::kLsh, Metric::kL2, 4), f.data.data(), 500);
  ASSERT_TRUE(model.ok());
  std::vector<float> v(kDim, 1.0f);
  v[3] = std::nanf("");
  uint32_t cell = 0;
  EXPECT_EQ((*model)->Assign(v.data(), 1, &cell).code(), StatusCode::kInvalidArgument);
  SearchParams sp;
  sp.k = 0;
  EXPECT_EQ((*model)->NewQuery(f.queries.data(), sp).status().code(), StatusCode::kInvalidArgument);
  // Names.
  EXPECT_EQ(ParseAlgorithm("imi").value(), Algorithm::kImi);
  EXPECT_EQ(ParseAlgorithm("lsh").value(), Algorithm::kLsh);
  EXPECT_EQ(ParseAlgorithm("ivf").value(), Algorithm::kIvf);
  EXPECT_EQ(ParseAlgorithm("hnsw").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AlgorithmName(Algorithm::kLsh), "lsh");
}

// ---------------------------------------------------------------- golden vectors
//
// spec/vectors/vector/partitions.txt: one imi and one lsh model built from fixed
// parameters, the assignment and cell codes of a few vectors, a query's full probe order
// and estimates. Regenerate after a deliberate format change with
//   DREAMDB_UPDATE_GOLDEN=1 build/dev/src/index/index_core_test --gtest_filter='PartitionGolden*'

// Exact binary fractions, so their decimal form is exact.
float Value(uint32_t a, uint32_t b, uint32_t mod, int shift, float div) {
  return static_cast<float>(static_cast<int>((a * 37 + b * 11 + a * b * 7) % mod) - shift) / div;
}

std::string Floats(const float* v, size_t n) {
  std::string s;
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), " %.9g", static_cast<double>(v[i]));
    s += buf;
  }
  return s;
}

template <typename T>
std::string Ints(const std::vector<T>& v) {
  std::string s;
  for (T x : v) s += " " + std::to_string(x);
  return s;
}

// Writes the shared part of a case: vectors, assignment, model, codes, query, probe order
// and estimates (as codes.txt, §6.2).
void WriteCommon(std::ostringstream& out, const IvfModel& m, const std::vector<float>& vecs,
                 const std::vector<float>& q) {
  const uint32_t dim = m.dim();
  const auto count = static_cast<uint32_t>(vecs.size() / dim);
  for (uint32_t i = 0; i < count; ++i) out << "vector" << Floats(&vecs[i * dim], dim) << "\n";
  std::vector<uint32_t> cells(count);
  EXPECT_TRUE(m.Assign(vecs.data(), count, cells.data()).ok());
  out << "assign" << Ints(cells) << "\n";
  const uint32_t cell = cells[0];  // all vectors are encoded into the first one's cell
  const Bytes codes = m.EncodeCell(cell, vecs.data(), count).value();
  out << "cell " << cell << "\n";
  out << "model " << HexEncode(m.Serialize()) << "\n";
  out << "codes " << HexEncode(codes) << "\n";
  out << "query" << Floats(q.data(), dim) << "\n";
  SearchParams sp;
  sp.k = count;
  sp.nprobe = m.num_cells();
  auto query = m.NewQuery(q.data(), sp).value();
  out << "probe" << Ints(query->probe_order()) << "\n";
  std::vector<uint64_t> ids(count);
  for (uint32_t i = 0; i < count; ++i) ids[i] = i;
  EXPECT_TRUE(query->ScanCell(cell, codes, ids.data()).ok());
  std::vector<float> est(count);
  const std::vector<Neighbor> found = query->Finish().value();
  EXPECT_EQ(found.size(), count);
  for (const Neighbor& nb : found) {
    est[nb.id] = m.params().metric == Metric::kCosine ? nb.distance - 1.0f : nb.distance;
  }
  out << "estimates" << Floats(est.data(), count) << "\n";
}

std::string GeneratePartitions() {
  std::ostringstream out;
  out << "# Golden vectors of spec/20-vector-codes.md §4 (imi, lsh models), generated by\n"
         "# src/vector/ivf_partition_test.cc. Per case: parameters, the algorithm's arrays\n"
         "# (imi: `first`/`second` codebook rows; lsh: `plane` rows, `offset`, `centre` rows),\n"
         "# vector rows, assign = each vector's cell, cell = the cell all vectors are encoded\n"
         "# into (the first vector's), model = IvfModel bytes, codes = that cell's codes block,\n"
         "# query, probe = the query's probe order over all cells (§6.4), estimates as in\n"
         "# codes.txt. check.py re-derives everything from the spec.\n";
  {
    // imi, l2, 2 bits, dim 9 (split 5 + 4), s = 3.
    IvfParams p;
    p.algorithm = IvfParams::Algorithm::kImi;
    p.dim = 9;
    p.metric = Metric::kL2;
    p.bits = 2;
    p.seed = 5;
    constexpr uint32_t kS = 3;
    std::vector<float> first;
    std::vector<float> second;
    for (uint32_t i = 0; i < kS; ++i) {
      for (uint32_t j = 0; j < 5; ++j) first.push_back(Value(i, j, 17, 8, 8));
      for (uint32_t j = 0; j < 4; ++j) second.push_back(Value(i + 5, j, 19, 9, 8));
    }
    auto m = IvfModel::FromImiCodebooks(p, kS, first, second).value();
    out << "case imi-l2-2bit\nalgorithm imi\nmetric l2\nbits 2\nrotation hadamard\nseed 5\n"
           "dim 9\ns 3\n";
    for (uint32_t i = 0; i < kS; ++i) out << "first" << Floats(&first[i * 5], 5) << "\n";
    for (uint32_t i = 0; i < kS; ++i) out << "second" << Floats(&second[i * 4], 4) << "\n";
    std::vector<float> vecs;
    for (uint32_t i = 0; i < 6; ++i) {
      for (uint32_t j = 0; j < 9; ++j) vecs.push_back(Value(i + 11, j, 23, 11, 4));
    }
    std::vector<float> q;
    for (uint32_t j = 0; j < 9; ++j) q.push_back(Value(3, j, 13, 6, 4));
    WriteCommon(out, *m, vecs, q);
  }
  {
    // lsh, ip, 3 bits, dim 8, b = 3 planes.
    IvfParams p;
    p.algorithm = IvfParams::Algorithm::kLsh;
    p.dim = 8;
    p.metric = Metric::kInnerProduct;
    p.bits = 3;
    p.seed = 9;
    constexpr uint32_t kB = 3;
    std::vector<float> planes;
    std::vector<float> offset;
    std::vector<float> centres;
    for (uint32_t i = 0; i < kB; ++i) {
      for (uint32_t j = 0; j < 8; ++j) planes.push_back(Value(i + 2, j, 11, 5, 4));
    }
    for (uint32_t j = 0; j < 8; ++j) offset.push_back(Value(1, j, 7, 3, 8));
    for (uint32_t c = 0; c < (1u << kB); ++c) {
      for (uint32_t j = 0; j < 8; ++j) centres.push_back(Value(c + 20, j, 15, 7, 8));
    }
    auto m = IvfModel::FromLsh(p, planes, offset, centres).value();
    out << "case lsh-ip-3bit\nalgorithm lsh\nmetric ip\nbits 3\nrotation hadamard\nseed 9\n"
           "dim 8\nplanes 3\n";
    for (uint32_t i = 0; i < kB; ++i) out << "plane" << Floats(&planes[i * 8], 8) << "\n";
    out << "offset" << Floats(offset.data(), 8) << "\n";
    for (uint32_t c = 0; c < (1u << kB); ++c) {
      out << "centre" << Floats(&centres[c * 8], 8) << "\n";
    }
    std::vector<float> vecs;
    for (uint32_t i = 0; i < 5; ++i) {
      for (uint32_t j = 0; j < 8; ++j) vecs.push_back(Value(i + 30, j, 21, 10, 4));
    }
    std::vector<float> q;
    for (uint32_t j = 0; j < 8; ++j) q.push_back(Value(4, j, 9, 4, 2));
    WriteCommon(out, *m, vecs, q);
  }
  return out.str();
}

constexpr char kGolden[] = "spec/vectors/vector/partitions.txt";

TEST(PartitionGoldenTest, MatchTheGoldenFile) {
  dreamdb::testing::CompareGoldenText(GeneratePartitions(), kGolden);
}

TEST(PartitionGoldenTest, GoldenModelsDeserialize) {
  int models = 0;
  for (const auto& [key, hex] : dreamdb::testing::LoadGoldenLines(kGolden, {"model"})) {
    auto bytes = HexDecode(hex);
    ASSERT_TRUE(bytes.has_value());
    auto model = IvfModel::Deserialize(*bytes);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    EXPECT_EQ((*model)->Serialize(), *bytes);
    ++models;
  }
  EXPECT_EQ(models, 2);
}

}  // namespace
}  // namespace dreamdb::vector
