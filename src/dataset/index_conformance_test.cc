// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The index conformance suite through datasets (spec/21-spatial-index.md): every algorithm x
// quantizer a schema can declare (ivf, imi, lsh, graph; rabitq, and pq4 with the cell
// partitions) passes one sequence of changes, each checked against brute force over the
// live records with everything probed: the build, a scalar filter, appends after the build,
// deletes, and a three-way merge, which must keep the index. The in-memory suite of the same
// shapes is src/index/index_conformance_test.cc. A new index type adds itself to kConfigs.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/index_kinds.h"
#include "dreamdb/search.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 16;
constexpr size_t kRows = 1200;
constexpr size_t kQueries = 20;

struct Config {
  IndexAlgorithm algorithm;
  Quantizer quantizer;
};

void PrintTo(const Config& c, std::ostream* os) {
  *os << IndexAlgorithmName(c.algorithm) << "+" << QuantizerName(c.quantizer);
}

std::vector<Config> AllConfigs() {
  std::vector<Config> out;
  for (IndexAlgorithm a :
       {IndexAlgorithm::kIvf, IndexAlgorithm::kImi, IndexAlgorithm::kLsh, IndexAlgorithm::kGraph}) {
    for (Quantizer q : {Quantizer::kRaBitQ, Quantizer::kPq4}) {
      if (SupportsQuantizer(a, q)) out.push_back({a, q});
    }
  }
  return out;
}

std::vector<float> Gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> v(n * kDim);
  for (auto& x : v) x = g(rng);
  return v;
}

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  return s;
}

Batch MakeBatch(const std::vector<float>& v, const std::vector<uint64_t>& anchors = {}) {
  Schema s = TestSchema();
  Batch b;
  b.anchors = anchors;
  Column emb(*s.Find("emb"));
  Column label(*s.Find("label"));
  for (size_t i = 0; i < v.size() / kDim; ++i) {
    emb.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
    label.AppendInt64(static_cast<int64_t>(i % 4));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  return b;
}

class IndexConformance : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override {
    store_ = std::shared_ptr<Store>(*Store::Open("memory://"));
    auto ds = Dataset::Create(store_, "vecs", TestSchema());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(*ds);
    ASSERT_TRUE(ds_->AppendMany(MakeBatch(Gaussian(kRows, 7))).ok());
    queries_ = Gaussian(kQueries, 8);
  }

  // Index search with everything probed (a graph: a beam wider than the graph's reach)
  // against brute force: each answer full, only live records, recall@k returned.
  double Check(Dataset& ds, uint32_t k, const std::vector<Predicate>& where = {}) {
    SearchOptions o;
    o.k = k;
    o.nprobe = 100000;
    o.ef = 600;
    o.where = where;
    auto got = ds.Search("emb", queries_.data(), kQueries, kDim, o);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok()) return 0;
    EXPECT_TRUE(got->used_index) << "the index was not used";
    o.exact = true;
    auto truth = ds.Search("emb", queries_.data(), kQueries, kDim, o);
    EXPECT_TRUE(truth.ok());
    size_t found = 0;
    size_t total = 0;
    for (size_t q = 0; q < kQueries; ++q) {
      std::set<uint64_t> g(got->anchors.begin() + got->offsets[q],
                           got->anchors.begin() + got->offsets[q + 1]);
      EXPECT_EQ(got->offsets[q + 1] - got->offsets[q], truth->offsets[q + 1] - truth->offsets[q]);
      for (uint64_t a : g) EXPECT_EQ(dead_.count(a), 0u) << "deleted anchor " << a << " returned";
      for (uint64_t i = truth->offsets[q]; i < truth->offsets[q + 1]; ++i) {
        found += g.count(truth->anchors[i]);
        ++total;
      }
    }
    return total == 0 ? 1.0 : static_cast<double>(found) / static_cast<double>(total);
  }

  // The nearest live record of each query (brute force).
  std::vector<uint64_t> Nearest(Dataset& ds) {
    SearchOptions o;
    o.k = 1;
    o.exact = true;
    auto r = ds.Search("emb", queries_.data(), kQueries, kDim, o);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->anchors : std::vector<uint64_t>{};
  }

  // RaBitQ (and a graph walked whole) re-rank every candidate within the error bound;
  // pq4 re-ranks a bounded pool of 8-bit estimates.
  double Floor() const { return GetParam().quantizer == Quantizer::kPq4 ? 0.95 : 0.98; }

  std::shared_ptr<Store> store_;
  std::unique_ptr<Dataset> ds_;
  std::vector<float> queries_;
  std::set<uint64_t> dead_;
};

TEST_P(IndexConformance, BuildFilterAppendDeleteMergeAgainstBruteForce) {
  BuildIndexOptions bo;
  bo.algorithm = std::string(IndexAlgorithmName(GetParam().algorithm));
  bo.quantizer = std::string(QuantizerName(GetParam().quantizer));
  bo.seed = 5;
  bo.degree = 16;
  bo.build_list = 48;
  bo.calibrate = false;  // the searches here give their settings
  auto built = ds_->BuildIndex("emb", bo);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  auto st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok() && st->built);
  EXPECT_EQ(st->algorithm, bo.algorithm);
  EXPECT_EQ(st->quantizer, bo.quantizer);

  // The build.
  EXPECT_GE(Check(*ds_, 10), Floor());
  // A scalar filter.
  auto label = ParsePredicate("label == 2");
  ASSERT_TRUE(label.ok());
  EXPECT_GE(Check(*ds_, 5, {*label}), Floor());
  // Appends after the build land in the index.
  ASSERT_TRUE(ds_->AppendMany(MakeBatch(Gaussian(300, 9))).ok());
  st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok() && st->built);
  EXPECT_EQ(st->entries, kRows + 300);
  EXPECT_GE(Check(*ds_, 10), Floor());
  // Deletes of each query's nearest record (the best candidates of every query).
  for (uint64_t a : Nearest(*ds_)) dead_.insert(a);
  ASSERT_TRUE(ds_->Delete({dead_.begin(), dead_.end()}).ok());
  EXPECT_GE(Check(*ds_, 10), Floor());
  EXPECT_GE(Check(*ds_, 3), Floor());
  // A three-way merge: new and deleted records on a branch, deletes on main.
  ASSERT_TRUE(ds_->Branch("side").ok());
  auto side = Dataset::Open(store_, "vecs", "side");
  ASSERT_TRUE(side.ok());
  ASSERT_TRUE((*side)->AppendMany(MakeBatch(Gaussian(100, 10))).ok());
  std::vector<uint64_t> side_dead;
  for (uint64_t a : Nearest(**side)) {
    if (side_dead.size() < 10 && dead_.insert(a).second) side_dead.push_back(a);
  }
  ASSERT_TRUE((*side)->Delete(side_dead).ok());
  std::vector<uint64_t> main_dead;
  for (uint64_t a = 1; a < kRows && main_dead.size() < 10; a += 97) {
    if (dead_.insert(a).second) main_dead.push_back(a);
  }
  ASSERT_TRUE(ds_->Delete(main_dead).ok());
  MergeReport report;
  auto merged = ds_->Merge("side", {}, &report);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_TRUE(report.indexes_dropped.empty());
  st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->built) << "the merge dropped the spatial index";
  EXPECT_EQ(st->live, kRows + 300 + 100 - dead_.size());
  EXPECT_GE(Check(*ds_, 10), Floor());
  // Compaction (spec/14 §18.4): live entries follow their records, the stale bucket entries
  // of the deleted records go (graph nodes stay), and every answer is the same.
  const double before_compaction = Check(*ds_, 10);
  const IndexInfo before = *st;
  CompactReport compacted;
  ASSERT_TRUE(ds_->Compact({}, &compacted).ok());
  ASSERT_TRUE(compacted.changed);
  st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok() && st->built);
  EXPECT_EQ(st->live, before.live);
  if (GetParam().algorithm == IndexAlgorithm::kGraph) {
    EXPECT_EQ(st->nodes, before.nodes);
    EXPECT_LE(st->tail, before.tail);  // less the stale entries appended after the build
  } else {
    EXPECT_GT(before.stale, 0u);
    EXPECT_EQ(st->entries, st->live);
  }
  EXPECT_EQ(Check(*ds_, 10), before_compaction);
  auto v = Verify(*store_, "vecs");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->problems.empty()) << v->problems.front();
}

INSTANTIATE_TEST_SUITE_P(AllIndexTypes, IndexConformance, ::testing::ValuesIn(AllConfigs()),
                         [](const ::testing::TestParamInfo<Config>& info) {
                           return std::string(IndexAlgorithmName(info.param.algorithm)) + "_" +
                                  std::string(QuantizerName(info.param.quantizer));
                         });

}  // namespace
}  // namespace dreamdb
