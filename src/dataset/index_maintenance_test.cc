// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial-index maintenance (spec/21 §8.6, §8.7): cell balance and recall drift in
// IndexStatus, RebuildIndex, and StepIndex (split overfull cells, merge tiny ones, rewrite
// only the touched cells) with the recall of a fresh build after tenfold growth.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "dreamdb/store.h"
#include "src/dataset/vector_index.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 32;

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

// A mixture of `clusters` Gaussian clusters (seeded); the vectors of draw i come from
// cluster pick(i) only.
struct Mixture {
  explicit Mixture(uint32_t clusters, uint64_t seed) : centers(size_t{clusters} * kDim) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0, 1);
    for (auto& c : centers) c = g(rng) * 3;
  }
  std::vector<float> Draw(size_t n, uint64_t seed, uint32_t first, uint32_t count) const {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0, 1);
    std::vector<float> v(n * kDim);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = first + rng() % count;
      for (size_t d = 0; d < kDim; ++d) v[i * kDim + d] = centers[c * kDim + d] + g(rng);
    }
    return v;
  }
  std::vector<float> centers;
};

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  return s;
}

Batch MakeBatch(const Schema& s, const std::vector<float>& v) {
  Batch b;
  Column emb(*s.Find("emb"));
  for (size_t i = 0; i < v.size() / kDim; ++i) {
    emb.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
  }
  b.columns.push_back(std::move(emb));
  return b;
}

std::unique_ptr<Dataset> Create(std::shared_ptr<Store> store, const std::string& name,
                                const std::vector<float>& v) {
  Schema s = TestSchema();
  auto ds = Dataset::Create(std::move(store), name, s);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_TRUE((*ds)->AppendMany(MakeBatch(s, v)).ok());
  return std::move(*ds);
}

void Append(Dataset& ds, const std::vector<float>& v) {
  auto c = ds.AppendMany(MakeBatch(TestSchema(), v));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
}

// recall@10 of default searches (the stored setting) against brute force.
double DefaultRecall(const Dataset& ds, const std::vector<float>& queries, uint64_t* candidates) {
  const size_t nq = queries.size() / kDim;
  SearchOptions exact;
  exact.exact = true;
  auto truth = ds.Search("emb", queries.data(), nq, kDim, exact);
  EXPECT_TRUE(truth.ok()) << truth.status().ToString();
  auto got = ds.Search("emb", queries.data(), nq, kDim, {});
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->used_index);
  if (candidates != nullptr) *candidates = got->candidates;
  double hits = 0, total = 0;
  for (size_t q = 0; q < nq; ++q) {
    std::set<uint64_t> t(truth->anchors.begin() + truth->offsets[q],
                         truth->anchors.begin() + truth->offsets[q + 1]);
    for (uint64_t i = got->offsets[q]; i < got->offsets[q + 1]; ++i) {
      hits += t.count(got->anchors[i]);
    }
    total += t.size();
  }
  return total == 0 ? 1 : hits / total;
}

// recall@k of `got` against `truth` (nq queries each).
double Recall(const SearchResults& got, const SearchResults& truth, size_t nq) {
  double hits = 0, total = 0;
  for (size_t q = 0; q < nq; ++q) {
    std::set<uint64_t> t(truth.anchors.begin() + truth.offsets[q],
                         truth.anchors.begin() + truth.offsets[q + 1]);
    for (uint64_t i = got.offsets[q]; i < got.offsets[q + 1]; ++i) hits += t.count(got.anchors[i]);
    total += t.size();
  }
  return total == 0 ? 1 : hits / total;
}

// Per cell, the bucket ids of the index object `id`, read from the store.
std::vector<std::vector<ObjectId>> CellBuckets(Store& store, const ObjectId& id) {
  auto bytes = store.Get(id);
  EXPECT_TRUE(bytes.ok());
  auto ix = vindex::DecodeIndex(*bytes);
  EXPECT_TRUE(ix.ok()) << ix.status().ToString();
  std::vector<std::vector<ObjectId>> out;
  for (const ObjectId& p : ix->pages) {
    auto page = vindex::DecodeDirPage(*store.Get(p));
    EXPECT_TRUE(page.ok());
    for (auto& list : page->buckets) out.push_back(list);
  }
  return out;
}

IndexStatusOptions Full(uint32_t sample = 64) {
  IndexStatusOptions o;
  o.balance = true;
  o.sample = sample;
  return o;
}

TEST(IndexMaintenance, StatusReportsCellImbalanceAndRecallDrift) {
  Mixture mix(16, 3);
  auto ds = Create(MemStore(), "bal", mix.Draw(2000, 1, 0, 16));
  BuildIndexOptions bo;
  bo.cells = 16;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto cheap = ds->IndexStatus("emb");
  ASSERT_TRUE(cheap.ok());
  EXPECT_FALSE(cheap->balance_measured);
  EXPECT_EQ(cheap->sample_queries, 0u);
  auto st = ds->IndexStatus("emb", Full());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_TRUE(st->balance_measured);
  EXPECT_DOUBLE_EQ(st->cell_mean, 2000.0 / 16);
  EXPECT_GE(st->cell_max, 2000u / 16);
  EXPECT_LE(st->cells_nonempty, 16u);
  EXPECT_EQ(st->sample_queries, 64u);
  EXPECT_GT(st->sample_recall, 0.5);
  EXPECT_LE(st->sample_recall, 1.0);
  EXPECT_NEAR(st->recall_drift, st->calibration_recall - st->sample_recall, 1e-9);
  const double cv_before = st->cell_cv;
  // Skewed growth: 6,000 vectors of one cluster land in one or two cells.
  Append(*ds, mix.Draw(6000, 2, 5, 1));
  auto grown = ds->IndexStatus("emb", Full(32));
  ASSERT_TRUE(grown.ok());
  EXPECT_DOUBLE_EQ(grown->cell_mean, 8000.0 / 16);
  EXPECT_GE(grown->cells_over, 1u);
  EXPECT_GT(grown->cell_cv, cv_before);
  EXPECT_GT(double(grown->cell_max) / grown->cell_mean, 2.0);
  EXPECT_EQ(grown->sample_queries, 32u);
  // The measurement is deterministic.
  auto again = ds->IndexStatus("emb", Full(32));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->sample_recall, grown->sample_recall);
}

TEST(IndexMaintenance, RebuildRetrainsWithTheStoredSettings) {
  Mixture mix(16, 4);
  auto store = MemStore();
  auto ds = Create(store, "rb", mix.Draw(1000, 1, 0, 16));
  BuildIndexOptions bo;
  bo.metric = "l2";
  bo.bits = 2;
  bo.seed = 9;
  bo.cells = 8;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  Append(*ds, mix.Draw(3000, 2, 0, 16));
  auto before = ds->IndexStatus("emb");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->cells, 8u);
  EXPECT_FALSE(ds->RebuildIndex("nope").ok());
  auto c = ds->RebuildIndex("emb");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto after = ds->IndexStatus("emb");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->metric, "l2");
  EXPECT_EQ(after->bits, 2u);
  EXPECT_EQ(after->algorithm, "ivf");
  EXPECT_EQ(after->cells, 63u);  // round(sqrt(4000)): the default for today's size
  EXPECT_EQ(after->entries, 4000u);
  EXPECT_NE(after->model, before->model);
  EXPECT_GT(after->calibration_queries, 0u);
  // The same as a fresh build with those settings and the stored seed.
  BuildIndexOptions same;
  same.metric = "l2";
  same.bits = 2;
  same.seed = 9;
  ASSERT_TRUE(ds->BuildIndex("emb", same).ok());
  EXPECT_EQ(ds->IndexStatus("emb")->model, after->model);
  // No index: kNotFound naming the way out.
  auto bare = Create(store, "bare", mix.Draw(100, 3, 0, 16));
  auto none = bare->RebuildIndex("emb");
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("index build"), std::string::npos);
}

TEST(IndexMaintenance, StepRewritesOnlyTheTouchedCellsAndReusesTheOthers) {
  Mixture mix(32, 5);
  auto store = MemStore();
  auto ds = Create(store, "step", mix.Draw(3000, 1, 0, 32));
  BuildIndexOptions bo;
  bo.cells = 55;  // ~ sqrt(3000)
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  // Two clusters grow: their cells overflow; the rest stay as they are.
  Append(*ds, mix.Draw(1500, 2, 7, 2));
  const ObjectId before_id = ds->IndexStatus("emb")->index;
  const auto before = CellBuckets(*store, before_id);
  std::set<ObjectId> before_ids;
  for (const auto& l : before) before_ids.insert(l.begin(), l.end());
  StepIndexReport r;
  std::vector<std::string> phases;
  auto c = ds->StepIndex("emb", {}, &r, [&](std::string_view p, uint64_t, uint64_t) {
    if (phases.empty() || phases.back() != p) phases.emplace_back(p);
  });
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_GE(phases.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(phases.begin(), phases.begin() + 3),
            (std::vector<std::string>{"plan", "split", "assign"}));
  EXPECT_EQ(std::vector<std::string>(phases.end() - 2, phases.end()),
            (std::vector<std::string>{"calibrate", "commit"}));
  ASSERT_TRUE(r.changed);
  EXPECT_GE(r.split, 1u);
  EXPECT_EQ(r.stale_dropped, 0u);
  auto st = ds->IndexStatus("emb", Full());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->cells, r.cells_after);
  EXPECT_EQ(st->entries, 4500u);
  EXPECT_EQ(st->live, 4500u);
  EXPECT_EQ(st->nprobe, r.nprobe_after);
  EXPECT_GT(st->calibration_queries, 0u);
  EXPECT_EQ(st->cells_over, 0u) << "the overfull cells were split";
  // Only the touched cells' buckets are new; every other bucket object is reused as is.
  const auto after = CellBuckets(*store, st->index);
  ASSERT_EQ(after.size(), r.cells_after);
  uint64_t kept = 0, fresh = 0, total = 0;
  for (const auto& l : after) {
    for (const ObjectId& id : l) {
      ++total;
      (before_ids.count(id) ? kept : fresh) += 1;
    }
  }
  EXPECT_EQ(kept, r.buckets_kept);
  EXPECT_EQ(fresh, r.buckets_written);
  EXPECT_EQ(total, st->buckets);
  EXPECT_LT(r.buckets_written, total / 2) << "a step rewrites only the cells it touches";
  // The objects written: per round, the new buckets, the model and the changed directory
  // page; then the index object and the manifest. A second round may replace buckets the
  // first wrote, so the count is bounded by the touched cells, not by the final buckets.
  EXPECT_LE(c->objects_written, 2 * (r.buckets_written + 3));
  // Untouched cells keep their buckets at the same cell number (first in their list; a
  // cell that received reassigned entries has one new bucket after them).
  size_t same = 0;
  for (size_t cell = 0; cell < std::min(before.size(), after.size()); ++cell) {
    same += after[cell].size() >= before[cell].size() &&
                    std::equal(before[cell].begin(), before[cell].end(), after[cell].begin())
                ? 1
                : 0;
  }
  EXPECT_GE(same + r.split + r.merged + r.renumbered, before.size());
  // Every live record is still found: probing every cell gives the exact answer.
  const auto queries = mix.Draw(50, 77, 0, 32);
  SearchOptions all;
  all.nprobe = r.cells_after;
  SearchOptions exact;
  exact.exact = true;
  auto got = ds->Search("emb", queries.data(), 50, kDim, all);
  auto truth = ds->Search("emb", queries.data(), 50, kDim, exact);
  ASSERT_TRUE(got.ok() && truth.ok());
  // RaBitQ's pruning bound holds with high probability, not always: near-ties may differ.
  EXPECT_GE(Recall(*got, *truth, 50), 0.99);
  auto v = Verify(*store, "step");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems.front();
}

TEST(IndexMaintenance, StepMergesTinyCellsAndDropsTheirStaleEntries) {
  Mixture mix(16, 6);
  auto store = MemStore();
  auto ds = Create(store, "merge", mix.Draw(2000, 1, 0, 16));
  // Over-partitioned: 150 cells of ~13 where a fresh build would train 45 of ~44.
  BuildIndexOptions bo;
  bo.cells = 150;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  // A quarter of the records deleted: their entries are stale.
  std::vector<uint64_t> gone;
  for (uint64_t a = 0; a < 2000; a += 4) gone.push_back(a);
  ASSERT_TRUE(ds->Delete(gone).ok());
  StepIndexReport r;
  auto c = ds->StepIndex("emb", {}, &r);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(r.changed);
  EXPECT_GE(r.merged, 1u);
  EXPECT_GT(r.stale_dropped, 0u);
  EXPECT_LT(r.cells_after, r.cells_before);
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->cells, r.cells_after);
  const auto queries = mix.Draw(40, 9, 0, 16);
  SearchOptions all;
  all.nprobe = st->cells;
  SearchOptions exact;
  exact.exact = true;
  auto got = ds->Search("emb", queries.data(), 40, kDim, all);
  auto truth = ds->Search("emb", queries.data(), 40, kDim, exact);
  ASSERT_TRUE(got.ok() && truth.ok());
  EXPECT_GE(Recall(*got, *truth, 40), 0.99);
  auto v = Verify(*store, "merge");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << v->problems.front();
}

TEST(IndexMaintenance, StepOnABalancedIndexLandsNothingAndBadInputsNameTheProblem) {
  Mixture mix(8, 7);
  auto store = MemStore();
  auto ds = Create(store, "calm", mix.Draw(800, 1, 0, 8));
  EXPECT_EQ(ds->StepIndex("emb").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(ds->BuildIndex("emb").ok());
  const ObjectId head = ds->head();
  StepIndexOptions wide;
  wide.split_above = 1e9;
  wide.merge_below = 0;
  StepIndexReport r;
  auto c = ds->StepIndex("emb", wide, &r);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(c->manifest, head);
  EXPECT_EQ(c->attempts, 0u);
  EXPECT_EQ(ds->head(), head);
  StepIndexOptions bad;
  bad.split_above = 0.5;
  EXPECT_EQ(ds->StepIndex("emb", bad).status().code(), StatusCode::kInvalidArgument);
  BuildIndexOptions imi;
  imi.algorithm = "imi";
  ASSERT_TRUE(ds->BuildIndex("emb", imi).ok());
  auto refused = ds->StepIndex("emb");
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("index rebuild"), std::string::npos);
}

// The acceptance test of index maintenance: an index built on a skewed sample (8 of 64
// clusters), then grown tenfold by appends from all clusters, lands new data unevenly;
// after one StepIndex, recall@10 at the stored setting is within 2 points of a fresh
// build of the same data. DREAMDB_LONG_TESTS=1 runs it on 10x the records.
TEST(IndexMaintenance, StepAfterTenfoldGrowthKeepsRecallWithinTwoPointsOfAFreshBuild) {
  const bool big = std::getenv("DREAMDB_LONG_TESTS") != nullptr;
  const size_t base = big ? 20000 : 2000;
  Mixture mix(64, 8);
  auto store = MemStore();
  auto ds = Create(store, "grow", mix.Draw(base, 1, 0, 8));
  ASSERT_TRUE(ds->BuildIndex("emb").ok());
  for (int i = 0; i < 9; ++i) Append(*ds, mix.Draw(base, 100 + i, 0, 64));
  const auto queries = mix.Draw(200, 999, 0, 64);
  uint64_t cand_grown = 0, cand_step = 0, cand_fresh = 0;
  const double grown = DefaultRecall(*ds, queries, &cand_grown);
  const uint32_t nprobe_grown = ds->IndexStatus("emb")->nprobe;
  auto status = ds->IndexStatus("emb", Full());
  ASSERT_TRUE(status.ok());
  StepIndexReport r;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = ds->StepIndex("emb", {}, &r);
  const double step_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(r.changed);
  const double stepped = DefaultRecall(*ds, queries, &cand_step);
  const uint32_t nprobe_step = ds->IndexStatus("emb")->nprobe;
  // A fresh build of the same records.
  auto fresh_ds = Dataset::Open(store, "grow");
  ASSERT_TRUE(fresh_ds.ok());
  ASSERT_TRUE((*fresh_ds)->Branch("fresh").ok());
  auto fresh = Dataset::Open(store, "grow", "fresh");
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE((*fresh)->BuildIndex("emb").ok());
  const double rebuilt = DefaultRecall(**fresh, queries, &cand_fresh);
  const auto fresh_status = (*fresh)->IndexStatus("emb");
  std::printf(
      "records %zu: before step recall %.4f (nprobe %u, %llu candidates; %u cells, max/mean "
      "%.2f, %u over 2x, drift %.4f); after step recall %.4f (nprobe %u, %llu candidates, "
      "%u cells, %u split, %u merged, %llu of %llu entries re-encoded, %llu buckets written, "
      "%llu kept, %.2f s); fresh build recall %.4f (nprobe %u, %llu candidates, %u cells)\n",
      base * 10, grown, nprobe_grown, static_cast<unsigned long long>(cand_grown), status->cells,
      status->cell_max / status->cell_mean, status->cells_over, status->recall_drift, stepped,
      nprobe_step, static_cast<unsigned long long>(cand_step), r.cells_after, r.split, r.merged,
      static_cast<unsigned long long>(r.entries_moved), static_cast<unsigned long long>(base) * 10,
      static_cast<unsigned long long>(r.buckets_written),
      static_cast<unsigned long long>(r.buckets_kept), step_s, rebuilt, fresh_status->nprobe,
      static_cast<unsigned long long>(cand_fresh), fresh_status->cells);
  EXPECT_GT(status->cells_over, 0u) << "the growth should have landed unevenly";
  EXPECT_GT(status->recall_drift, 0.02) << "status should see the drift";
  EXPECT_GE(stepped, 0.95);
  EXPECT_GT(stepped, grown + 0.05);
  EXPECT_GE(stepped, rebuilt - 0.02);
  EXPECT_LE(cand_step, cand_fresh * 3 / 2) << "at a cost near a fresh build's";
}

}  // namespace
}  // namespace dreamdb
