// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The index conformance suite, in memory: every structure x codec x metric the library
// supports (ivf, imi, lsh x rabitq, pq4 x l2, ip, cosine; graph x rabitq) passes the same
// checks against brute force: exact answers with everything probed, filters, deletes
// (excluded ids, then a rescan), appends after the build (same bytes as one build), merges
// and compaction of cell blocks (same answers), and model bytes that round-trip. The
// dataset-level suite (src/dataset/index_conformance_test.cc) runs the same shapes through
// Dataset. A new partition or codec adds itself to kConfigs and passes it.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "src/index/cell_source.h"
#include "src/index/graph/graph.h"
#include "src/index/ivf.h"
#include "src/index/test_util.h"

namespace dreamdb::vector {
namespace {

constexpr uint32_t kDim = 24;
constexpr size_t kRows = 1000;
constexpr size_t kQueries = 24;

struct Config {
  IndexAlgorithm algorithm;
  Quantizer quantizer;
  Metric metric;
};

void PrintTo(const Config& c, std::ostream* os) {
  *os << IndexAlgorithmName(c.algorithm) << "+" << QuantizerName(c.quantizer) << " "
      << MetricName(c.metric);
}

std::string Name(const ::testing::TestParamInfo<Config>& info) {
  return std::string(IndexAlgorithmName(info.param.algorithm)) + "_" +
         std::string(QuantizerName(info.param.quantizer)) + "_" +
         std::string(MetricName(info.param.metric));
}

std::vector<Config> AllConfigs() {
  std::vector<Config> out;
  for (IndexAlgorithm a : {IndexAlgorithm::kIvf, IndexAlgorithm::kImi, IndexAlgorithm::kLsh}) {
    for (Quantizer q : {Quantizer::kRaBitQ, Quantizer::kPq4}) {
      for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        if (SupportsQuantizer(a, q)) out.push_back({a, q, m});
      }
    }
  }
  return out;
}

// Exact top-k row numbers of each query among the rows `keep` accepts.
std::vector<std::vector<uint64_t>> Truth(Metric metric, const std::vector<float>& data,
                                         const std::vector<float>& queries, uint32_t k,
                                         const std::function<bool(uint64_t)>& keep) {
  std::vector<std::vector<uint64_t>> out(queries.size() / kDim);
  for (size_t q = 0; q < out.size(); ++q) {
    std::vector<std::pair<float, uint64_t>> all;
    for (size_t i = 0; i < data.size() / kDim; ++i) {
      if (!keep(i)) continue;
      all.emplace_back(ExactDistance(metric, &queries[q * kDim], &data[i * kDim], kDim), i);
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (uint32_t i = 0; i < k; ++i) out[q].push_back(all[i].second);
  }
  return out;
}

class IvfConformance : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override {
    data_ = testing::Clustered(kRows, 5, kDim);
    queries_ = testing::Clustered(kQueries, 99, kDim);
    params_.dim = kDim;
    params_.metric = GetParam().metric;
    params_.algorithm = GetParam().algorithm;
    params_.quantizer = GetParam().quantizer;
    params_.num_cells = GetParam().algorithm == IndexAlgorithm::kLsh ? 16 : 36;
    params_.seed = 3;
    // One build per configuration, shared by its tests (they only search it).
    static std::map<std::string, std::shared_ptr<const IvfIndex>> built;
    std::shared_ptr<const IvfIndex>& index = built[Name({GetParam(), 0})];
    if (index == nullptr) {
      auto b = IvfIndex::Build(params_, data_.data(), kRows, nullptr, /*keep_raw=*/true, 2);
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      index = std::move(*b);
    }
    index_ = index;
  }

  // Every cell probed, re-ranked: the answer brute force gives (RaBitQ: within its error
  // bound, which holds with high probability; PQ4: within its bounded re-rank pool).
  SearchParams Everything(uint32_t k) const {
    SearchParams sp;
    sp.k = k;
    sp.nprobe = index_->model().num_cells();
    sp.rerank = true;
    return sp;
  }
  double Floor() const { return GetParam().quantizer == Quantizer::kPq4 ? 0.95 : 0.99; }

  double Recall(const IvfIndex& index, uint32_t k, const KeepFn* keep,
                const std::function<bool(uint64_t)>& live) {
    std::vector<std::vector<Neighbor>> got;
    for (size_t q = 0; q < kQueries; ++q) {
      auto r = index.Search(&queries_[q * kDim], Everything(k), keep);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return 0;
      EXPECT_EQ(r->size(), k);
      for (const Neighbor& n : *r) EXPECT_TRUE(live(n.id)) << "excluded id " << n.id;
      got.push_back(std::move(*r));
    }
    return testing::Recall(got, Truth(params_.metric, data_, queries_, k, live));
  }

  IvfParams params_;
  std::vector<float> data_;
  std::vector<float> queries_;
  std::shared_ptr<const IvfIndex> index_;
};

TEST_P(IvfConformance, EverythingProbedIsExact) {
  const auto all = [](uint64_t) { return true; };
  EXPECT_GE(Recall(*index_, 10, nullptr, all), Floor());
  EXPECT_GE(Recall(*index_, 1, nullptr, all), Floor());
}

TEST_P(IvfConformance, FiltersKeepOnlyAcceptedIds) {
  const std::function<bool(uint64_t)> odd = [](uint64_t id) { return id % 3 == 1; };
  EXPECT_GE(Recall(*index_, 10, &odd, odd), Floor());
}

TEST_P(IvfConformance, DeletesExcludedOrCompactedAwayStayExact) {
  // Delete each query's nearest row: the best candidates of every query.
  std::set<uint64_t> dead;
  for (const auto& t : Truth(params_.metric, data_, queries_, 1, [](uint64_t) { return true; })) {
    dead.insert(t[0]);
  }
  const std::function<bool(uint64_t)> live = [&dead](uint64_t id) { return dead.count(id) == 0; };
  EXPECT_GE(Recall(*index_, 10, &live, live), Floor());
  // Compaction: blocks without the deleted positions give the same answers unfiltered.
  const IvfModel& model = index_->model();
  auto compact = IvfIndex::Create(index_->shared_model(), /*keep_raw=*/true);
  std::vector<float> kept;
  std::vector<uint64_t> kept_ids;
  for (uint64_t i = 0; i < kRows; ++i) {
    if (live(i)) {
      kept.insert(kept.end(), &data_[i * kDim], &data_[(i + 1) * kDim]);
      kept_ids.push_back(i);
    }
  }
  ASSERT_TRUE(compact->Add(kept.data(), kept_ids.size(), kept_ids.data(), 1).ok());
  for (uint32_t c = 0; c < model.num_cells(); ++c) {
    std::vector<uint32_t> positions;
    const std::vector<uint64_t>& ids = index_->cell_ids(c);
    for (uint32_t p = 0; p < ids.size(); ++p) {
      if (live(ids[p])) positions.push_back(p);
    }
    auto selected = model.SelectFromCell(index_->cell_codes(c), positions);
    ASSERT_TRUE(selected.ok()) << selected.status().ToString();
    EXPECT_EQ(*selected, Bytes(compact->cell_codes(c))) << "cell " << c;
  }
  EXPECT_GE(Recall(*compact, 10, nullptr, live), Floor());
}

TEST_P(IvfConformance, AppendsAfterTheBuildEncodeAsOneBuild) {
  auto grown = IvfIndex::Create(index_->shared_model(), /*keep_raw=*/true);
  const size_t half = kRows / 2;
  ASSERT_TRUE(grown->Add(data_.data(), half, nullptr, 2).ok());
  ASSERT_TRUE(grown->Add(data_.data() + half * kDim, kRows - half, nullptr, 2).ok());
  for (uint32_t c = 0; c < index_->model().num_cells(); ++c) {
    EXPECT_EQ(Bytes(grown->cell_codes(c)), Bytes(index_->cell_codes(c))) << "cell " << c;
    EXPECT_EQ(grown->cell_ids(c), index_->cell_ids(c));
  }
  for (size_t q = 0; q < kQueries; ++q) {
    auto a = grown->Search(&queries_[q * kDim], Everything(10));
    auto b = index_->Search(&queries_[q * kDim], Everything(10));
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size());
    for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].id, (*b)[i].id);
  }
}

TEST_P(IvfConformance, MergedCellBlocksMatchOneIndex) {
  // Two indexes over the same model (even and odd rows), merged cell by cell.
  const IvfModel& model = index_->model();
  auto even = IvfIndex::Create(index_->shared_model(), true);
  auto odd = IvfIndex::Create(index_->shared_model(), true);
  for (uint64_t i = 0; i < kRows; ++i) {
    IvfIndex& dst = i % 2 == 0 ? *even : *odd;
    ASSERT_TRUE(dst.Add(&data_[i * kDim], 1, &i, 1).ok());
  }
  auto both = IvfIndex::Create(index_->shared_model(), true);
  for (uint32_t c = 0; c < model.num_cells(); ++c) {
    Bytes merged(even->cell_codes(c));
    ASSERT_TRUE(model.AppendCodes(&merged, odd->cell_codes(c)).ok());
    std::vector<uint64_t> ids = even->cell_ids(c);
    ids.insert(ids.end(), odd->cell_ids(c).begin(), odd->cell_ids(c).end());
    // The merged block holds the even rows, then the odd ones: encode them in that order.
    std::vector<float> rows;
    for (uint64_t id : ids) rows.insert(rows.end(), &data_[id * kDim], &data_[(id + 1) * kDim]);
    auto encoded = model.EncodeCell(c, rows.data(), ids.size());
    ASSERT_TRUE(encoded.ok());
    EXPECT_EQ(merged, *encoded) << "cell " << c;
    auto count = model.CellCount(merged);
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, ids.size());
  }
}

TEST_P(IvfConformance, ModelBytesRoundTripAndSearchAlike) {
  const IvfModel& model = index_->model();
  const Bytes bytes = model.Serialize();
  auto back = IvfModel::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ((*back)->Serialize(), bytes);
  EXPECT_EQ((*back)->algorithm(), GetParam().algorithm);
  EXPECT_EQ((*back)->quantizer(), GetParam().quantizer);
  // The decoded model scans the stored blocks to the same answers.
  for (size_t q = 0; q < kQueries; q += 7) {
    SearchParams sp;
    sp.k = 10;
    sp.nprobe = 4;
    auto a = model.NewQuery(&queries_[q * kDim], sp);
    auto b = (*back)->NewQuery(&queries_[q * kDim], sp);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)->probe_order(), (*b)->probe_order());
    for (uint32_t c : (*a)->probe_order()) {
      ASSERT_TRUE((*a)->ScanCell(c, index_->cell_codes(c), index_->cell_ids(c).data()).ok());
      ASSERT_TRUE((*b)->ScanCell(c, index_->cell_codes(c), index_->cell_ids(c).data()).ok());
    }
    auto ra = (*a)->Finish();
    auto rb = (*b)->Finish();
    ASSERT_TRUE(ra.ok() && rb.ok());
    ASSERT_EQ(ra->size(), rb->size());
    for (size_t i = 0; i < ra->size(); ++i) {
      EXPECT_EQ((*ra)[i].id, (*rb)[i].id);
      EXPECT_EQ((*ra)[i].distance, (*rb)[i].distance);
    }
  }
}

// A CellSource that counts what a search fetched, over an IvfIndex's cells.
class CountingSource final : public CellSource {
 public:
  CountingSource(const IvfIndex& index, const std::vector<float>& data)
      : index_(index), data_(data) {}
  Result<CellData> Cell(uint32_t cell) override {
    ++cells;
    return CellData{index_.cell_codes(cell), index_.cell_ids(cell).data()};
  }
  void Prefetch(const uint32_t* /*cells*/, size_t n) override { prefetched += n; }
  Status ExactDistances(const float* q, const uint64_t* ids, size_t n, float* out) override {
    for (size_t i = 0; i < n; ++i) {
      out[i] = ExactDistance(index_.model().params().metric, q, &data_[ids[i] * kDim], kDim);
    }
    exact += n;
    return Status::Ok();
  }
  size_t cells = 0;
  size_t prefetched = 0;
  size_t exact = 0;

 private:
  const IvfIndex& index_;
  const std::vector<float>& data_;
};

TEST_P(IvfConformance, SearchThroughACellSourceMatchesTheIndex) {
  for (size_t q = 0; q < kQueries; q += 5) {
    const float* qv = &queries_[q * kDim];
    SearchParams sp = Everything(10);
    sp.nprobe = 6;
    std::vector<uint32_t> sizes(index_->model().num_cells());
    for (uint32_t c = 0; c < sizes.size(); ++c) sizes[c] = index_->cell_ids(c).size();
    sp.cell_sizes = sizes.data();
    auto query = index_->model().NewQuery(qv, sp);
    ASSERT_TRUE(query.ok());
    CountingSource source(*index_, data_);
    auto got = SearchCells(**query, source, qv);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(source.prefetched, (*query)->probe_order().size());
    EXPECT_EQ(source.cells, (*query)->probe_order().size());
    EXPECT_GT(source.exact, 0u);
    auto want = index_->Search(qv, sp);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < got->size(); ++i) EXPECT_EQ((*got)[i].id, (*want)[i].id);
  }
}

INSTANTIATE_TEST_SUITE_P(AllPartitionsAndCodecs, IvfConformance, ::testing::ValuesIn(AllConfigs()),
                         Name);

// The graph index passes the same answers-against-brute-force checks.
class GraphConformance : public ::testing::TestWithParam<Metric> {};

TEST_P(GraphConformance, WideBeamIsExactWithFiltersAndDeletes) {
  const std::vector<float> data = testing::Clustered(kRows, 5, kDim);
  const std::vector<float> queries = testing::Clustered(kQueries, 99, kDim);
  GraphParams gp;
  gp.dim = kDim;
  gp.metric = GetParam();
  gp.degree = 16;
  gp.build_list = 48;
  gp.seed = 3;
  std::vector<uint32_t> order;
  auto graph = GraphIndex::Build(gp, data.data(), kRows, 2, &order);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  // The codec origin is a one-cell ivf model.
  EXPECT_EQ((*graph)->model().num_cells(), 1u);
  EXPECT_EQ((*graph)->model().algorithm(), IndexAlgorithm::kIvf);
  std::set<uint64_t> dead;
  for (const auto& t : Truth(GetParam(), data, queries, 1, [](uint64_t) { return true; })) {
    dead.insert(t[0]);
  }
  for (int pass = 0; pass < 3; ++pass) {
    // 0: everything; 1: a filter; 2: deletes (the nearest rows excluded).
    std::function<bool(uint64_t)> live = [](uint64_t) { return true; };
    if (pass == 1) live = [](uint64_t row) { return row % 3 == 1; };
    if (pass == 2) live = [&dead](uint64_t row) { return dead.count(row) == 0; };
    const std::function<bool(uint32_t)> keep = [&](uint32_t node) { return live(order[node]); };
    std::vector<std::vector<Neighbor>> got;
    for (size_t q = 0; q < kQueries; ++q) {
      GraphSearchParams sp;
      sp.k = 10;
      sp.ef = 400;
      sp.rerank = true;
      auto r = (*graph)->Search(&queries[q * kDim], sp, pass == 0 ? nullptr : &keep);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      for (Neighbor& n : *r) {
        n.id = order[n.id];  // node -> row
        EXPECT_TRUE(live(n.id));
      }
      got.push_back(std::move(*r));
    }
    EXPECT_GE(testing::Recall(got, Truth(GetParam(), data, queries, 10, live)), 0.98)
        << "pass " << pass;
  }
}

INSTANTIATE_TEST_SUITE_P(AllMetrics, GraphConformance,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct, Metric::kCosine),
                         [](const ::testing::TestParamInfo<Metric>& info) {
                           return std::string(MetricName(info.param));
                         });

}  // namespace
}  // namespace dreamdb::vector
