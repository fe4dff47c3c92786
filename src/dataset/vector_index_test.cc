// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Vector search through datasets (spec/21-spatial-index.md): exact and IVF search over
// versions, appends after a build, tombstones and replaced anchors, filters, projection,
// determinism, errors, verify, file:// read statistics.
#include "src/dataset/vector_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "src/dataset/manifest.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 16;

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("name", true).ok());
  return s;
}

// n clustered vectors (8 clusters), seeded.
std::vector<float> MakeVectors(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> centers(8 * kDim);
  for (auto& c : centers) c = g(rng) * 4;
  std::vector<float> v(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    size_t c = rng() % 8;
    for (size_t d = 0; d < kDim; ++d) v[i * kDim + d] = centers[c * kDim + d] + g(rng);
  }
  return v;
}

Batch MakeBatch(const Schema& s, const std::vector<float>& v, size_t first_label,
                const std::vector<uint64_t>& anchors = {}) {
  Batch b;
  b.anchors = anchors;
  Column emb(*s.Find("emb")), label(*s.Find("label")), name(*s.Find("name"));
  size_t n = v.size() / kDim;
  for (size_t i = 0; i < n; ++i) {
    emb.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
    label.AppendInt64(static_cast<int64_t>((first_label + i) % 10));
    name.AppendBytes("r" + std::to_string(first_label + i));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  b.columns.push_back(std::move(name));
  return b;
}

std::unique_ptr<Dataset> MakeDataset(std::shared_ptr<Store> store, size_t n, uint64_t seed = 1) {
  Schema s = TestSchema();
  auto ds = Dataset::Create(std::move(store), "vecs", s);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  auto v = MakeVectors(n, seed);
  auto c = (*ds)->AppendMany(MakeBatch(s, v, 0));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(*ds);
}

std::vector<float> Query(const Dataset& ds, uint64_t anchor) {
  auto b = ds.Take({anchor}, {"emb"});
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  auto f = b->columns[0].FloatsAt(0);
  return std::vector<float>(f.begin(), f.end());
}

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

TEST(VectorSearch, ExactFindsItselfFirstWithScores) {
  auto ds = MakeDataset(MemStore(), 300);
  auto q = Query(*ds, 42);
  SearchOptions o;
  o.k = 5;
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 5u);
  EXPECT_EQ(r->anchors[0], 42u);
  EXPECT_NEAR(r->scores[0], 1.0f, 1e-5);
  EXPECT_FALSE(r->used_index);
  EXPECT_EQ(r->metric, "cosine");
  for (size_t i = 1; i < 5; ++i) EXPECT_LE(r->scores[i], r->scores[i - 1]);
  EXPECT_EQ(r->offsets, (std::vector<uint64_t>{0, 5}));
}

TEST(VectorSearch, BadInputsNameTheProblem) {
  auto ds = MakeDataset(MemStore(), 50);
  std::vector<float> q(kDim, 0.5f);
  SearchOptions o;
  auto wrong_dim = ds->Search("emb", q.data(), 1, kDim - 1, o);
  EXPECT_EQ(wrong_dim.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_dim.status().message().find("dimension 15"), std::string::npos);
  auto unknown = ds->Search("nope", q.data(), 1, kDim, o);
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown field 'nope'"), std::string::npos);
  auto not_emb = ds->Search("label", q.data(), 1, kDim, o);
  EXPECT_EQ(not_emb.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(not_emb.status().message().find("not an embedding"), std::string::npos);
  o.k = 0;
  EXPECT_EQ(ds->Search("emb", q.data(), 1, kDim, o).status().code(), StatusCode::kInvalidArgument);
  o.k = 3;
  q[3] = std::nanf("");
  auto nan = ds->Search("emb", q.data(), 1, kDim, o);
  EXPECT_EQ(nan.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(nan.status().message().find("NaN"), std::string::npos);
  q[3] = 0;
  o.where = {*ParsePredicate("missing == 3")};
  EXPECT_EQ(ds->Search("emb", q.data(), 1, kDim, o).status().code(), StatusCode::kInvalidArgument);
  o.where = {*ParsePredicate("label == 'text'")};
  EXPECT_EQ(ds->Search("emb", q.data(), 1, kDim, o).status().code(), StatusCode::kInvalidArgument);
  o.where = {*ParsePredicate("emb == 3")};
  EXPECT_EQ(ds->Search("emb", q.data(), 1, kDim, o).status().code(), StatusCode::kInvalidArgument);
  o.where.clear();
  o.fields = {"zzz"};
  EXPECT_EQ(ds->Search("emb", q.data(), 1, kDim, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ds->BuildIndex("label").status().code(), StatusCode::kInvalidArgument);
  BuildIndexOptions bo;
  bo.bits = 9;
  EXPECT_EQ(ds->BuildIndex("emb", bo).status().code(), StatusCode::kInvalidArgument);
  bo.bits = 0;
  bo.metric = "hamming";
  EXPECT_EQ(ds->BuildIndex("emb", bo).status().code(), StatusCode::kInvalidArgument);
}

// spec/21 §7.10: a warm handle keeps the decoded index state and the live entries' vectors
// of the cells it searched, so a repeated query makes no storage request; a handle that
// moves to a new version (a delete) computes the live entries again and drops the deleted.
TEST(VectorSearch, RepeatedSearchOnAWarmHandleMakesNoStorageRequest) {
  for (const char* algorithm : {"ivf", "graph"}) {
    auto ds = MakeDataset(MemStore(), 600);
    BuildIndexOptions bo;
    bo.algorithm = algorithm;
    bo.cells = std::string(algorithm) == "ivf" ? 8 : 0;
    bo.calibrate = false;
    ASSERT_TRUE(ds->BuildIndex("emb", bo).ok()) << algorithm;
    auto q = Query(*ds, 42);
    SearchOptions o;
    o.k = 5;
    o.nprobe = 3;
    auto first = ds->Search("emb", q.data(), 1, kDim, o);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_TRUE(first->used_index);
    EXPECT_EQ(first->anchors[0], 42u) << algorithm;
    const ReadStats before = ds->read_stats();
    for (int i = 0; i < 3; ++i) {
      auto again = ds->Search("emb", q.data(), 1, kDim, o);
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again->anchors, first->anchors) << algorithm;
    }
    const ReadStats after = ds->read_stats();
    EXPECT_EQ(after.requests, before.requests) << algorithm;
    EXPECT_EQ(after.bytes_fetched, before.bytes_fetched) << algorithm;
    EXPECT_GT(after.cache_hits, before.cache_hits) << algorithm;
    // The next version's live entries: the deleted record is gone from the answer.
    ASSERT_TRUE(ds->Delete({42}).ok());
    auto later = ds->Search("emb", q.data(), 1, kDim, o);
    ASSERT_TRUE(later.ok());
    for (uint64_t a : later->anchors) EXPECT_NE(a, 42u) << algorithm;
  }
}

TEST(VectorSearch, ParsePredicate) {
  auto p = ParsePredicate("label == 3");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->field, "label");
  EXPECT_EQ(p->op, Predicate::Op::kEq);
  EXPECT_EQ(std::get<int64_t>(p->values[0]), 3);
  p = ParsePredicate("score>=0.5");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->op, Predicate::Op::kGe);
  EXPECT_DOUBLE_EQ(std::get<double>(p->values[0]), 0.5);
  p = ParsePredicate("name in ('a', \"b,c\", d)");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->op, Predicate::Op::kIn);
  ASSERT_EQ(p->values.size(), 3u);
  EXPECT_EQ(std::get<std::string>(p->values[1]), "b,c");
  p = ParsePredicate("flag != true");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(std::get<bool>(p->values[0]), true);
  EXPECT_EQ(ParsePredicate("label ~ 3").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePredicate("== 3").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePredicate("label ==").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePredicate("label in 1,2").status().code(), StatusCode::kInvalidArgument);
}

TEST(VectorSearch, FiltersRangeAndProjection) {
  auto ds = MakeDataset(MemStore(), 400);
  auto q = Query(*ds, 7);
  SearchOptions o;
  o.k = 10;
  o.where = {*ParsePredicate("label in (3, 4)"), *ParsePredicate("label != 4")};
  o.fields = {"label", "name"};
  o.start = 100;
  o.end = 300;
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 10u);
  ASSERT_EQ(r->columns.size(), 2u);
  for (size_t i = 0; i < r->anchors.size(); ++i) {
    EXPECT_GE(r->anchors[i], 100u);
    EXPECT_LT(r->anchors[i], 300u);
    EXPECT_EQ(r->columns[0].Int64At(i), 3);
    EXPECT_EQ(r->columns[1].BytesAt(i), "r" + std::to_string(r->anchors[i]));
  }
  // A filter nothing passes: no results, not an error.
  o.where = {*ParsePredicate("label > 100")};
  r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->anchors.empty());
}

class IndexedSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    ds_ = MakeDataset(MemStore(), 2000);
    BuildIndexOptions bo;
    bo.cells = 16;
    bo.seed = 7;
    std::vector<std::string> phases;
    auto c = ds_->BuildIndex("emb", bo, [&](std::string_view phase, uint64_t, uint64_t) {
      if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
    });
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(phases,
              (std::vector<std::string>{"sample", "train", "assign", "calibrate", "commit"}));
  }
  std::unique_ptr<Dataset> ds_;
};

TEST_F(IndexedSearch, StatusAndRecallAgainstExact) {
  auto st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->built);
  EXPECT_EQ(st->cells, 16u);
  EXPECT_EQ(st->entries, 2000u);
  EXPECT_EQ(st->live, 2000u);
  EXPECT_EQ(st->stale, 0u);
  EXPECT_EQ(st->metric, "cosine");
  EXPECT_EQ(st->bits, 4u);
  const size_t nq = 20;
  std::vector<float> qs;
  for (size_t i = 0; i < nq; ++i) {
    auto q = Query(*ds_, i * 97);
    qs.insert(qs.end(), q.begin(), q.end());
  }
  SearchOptions o;
  o.k = 10;
  o.exact = true;
  auto truth = ds_->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(truth.ok());
  o.exact = false;
  o.nprobe = 16;  // every cell: with rerank the result is exact
  auto all = ds_->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(all->used_index);
  EXPECT_GE(Recall(*all, *truth, nq), 0.99);
  o.nprobe = 4;
  auto some = ds_->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(some.ok());
  EXPECT_GE(Recall(*some, *truth, nq), 0.8);
  EXPECT_LT(some->candidates, all->candidates);
  o.rerank = false;
  o.nprobe = 16;
  auto est = ds_->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(est.ok());
  EXPECT_GE(Recall(*est, *truth, nq), 0.8);
  // Each query's nearest is itself.
  for (size_t q = 0; q < nq; ++q) EXPECT_EQ(all->anchors[all->offsets[q]], q * 97);
}

TEST_F(IndexedSearch, AppendsLandInTheIndexAndOldVersionsKeepOldResults) {
  ObjectId before = ds_->head();
  Schema s = ds_->schema();
  auto extra = MakeVectors(30, 99);
  auto c = ds_->AppendMany(MakeBatch(s, extra, 5000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 2030u);
  EXPECT_LE(c->objects_written, 3 /*segments*/ + 16 /*buckets*/ + 8);
  uint64_t new_anchor = 2000 + 17;
  std::vector<float> q(extra.begin() + 17 * kDim, extra.begin() + 18 * kDim);
  SearchOptions o;
  o.k = 3;
  auto r = ds_->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->used_index);
  EXPECT_EQ(r->anchors[0], new_anchor);
  EXPECT_NE(before, ds_->head());
}

TEST(VectorSearch, OpenAtOldManifestUsesItsOwnIndex) {
  auto store = MemStore();
  auto ds = MakeDataset(store, 500);
  BuildIndexOptions bo;
  bo.cells = 8;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  ObjectId v1 = ds->head();
  Schema s = ds->schema();
  auto extra = MakeVectors(5, 1234);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, extra, 900)).ok());
  std::vector<float> q(extra.begin(), extra.begin() + kDim);
  SearchOptions o;
  o.k = 1;
  auto now = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->anchors[0], 500u);
  auto old = Dataset::OpenAt(store, "vecs", v1.ToString());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  auto then = (*old)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(then.ok()) << then.status().ToString();
  EXPECT_TRUE(then->used_index);
  ASSERT_EQ(then->anchors.size(), 1u);
  EXPECT_LT(then->anchors[0], 500u);
  EXPECT_EQ((*old)->IndexStatus("emb")->entries, 500u);
}

TEST(VectorSearch, TombstonesAndReplacedAnchorsAreNeverReturned) {
  auto ds = MakeDataset(MemStore(), 600);
  BuildIndexOptions bo;
  bo.cells = 8;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto q10 = Query(*ds, 10);
  auto q20 = Query(*ds, 20);
  ASSERT_TRUE(ds->Delete({10}).ok());
  // Replace anchor 20's embedding with a vector far away (the negation).
  Schema s = ds->schema();
  std::vector<float> far(q20.size());
  for (size_t i = 0; i < far.size(); ++i) far[i] = -q20[i];
  Batch b;
  b.anchors = {20};
  Column emb(*s.Find("emb"));
  emb.AppendFloats(far);
  b.columns.push_back(std::move(emb));
  ASSERT_TRUE(ds->AppendMany(b).ok());
  SearchOptions o;
  o.k = 20;
  o.nprobe = 8;
  for (bool exact : {false, true}) {
    o.exact = exact;
    auto r10 = ds->Search("emb", q10.data(), 1, kDim, o);
    ASSERT_TRUE(r10.ok());
    EXPECT_EQ(r10->anchors.size(), 20u);
    EXPECT_EQ(std::count(r10->anchors.begin(), r10->anchors.end(), 10u), 0);
    auto r20 = ds->Search("emb", q20.data(), 1, kDim, o);
    ASSERT_TRUE(r20.ok());
    EXPECT_EQ(r20->anchors.size(), 20u);
    EXPECT_EQ(std::count(r20->anchors.begin(), r20->anchors.end(), 20u), 0) << exact;
    // The new vector is found where it now is, once, with its new score.
    auto rf = ds->Search("emb", far.data(), 1, kDim, o);
    ASSERT_TRUE(rf.ok());
    EXPECT_EQ(rf->anchors[0], 20u);
    EXPECT_NEAR(rf->scores[0], 1.0f, 1e-4);
    EXPECT_EQ(std::count(rf->anchors.begin(), rf->anchors.end(), 20u), 1);
  }
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 601u);
  EXPECT_EQ(st->live, 599u);
  EXPECT_EQ(st->stale, 2u);
  // Re-appending the deleted anchor resurrects it, and search sees the new value.
  Batch back = MakeBatch(s, std::vector<float>(q10), 10, {10});
  ASSERT_TRUE(ds->AppendMany(back).ok());
  o.exact = false;
  auto r = ds->Search("emb", q10.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->anchors[0], 10u);
}

TEST(VectorSearch, FiltersThroughTheIndexOverFetch) {
  auto ds = MakeDataset(MemStore(), 1000);
  BuildIndexOptions bo;
  bo.cells = 10;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto q = Query(*ds, 5);
  SearchOptions o;
  o.k = 10;
  o.nprobe = 10;
  o.where = {*ParsePredicate("label == 7")};
  o.fields = {"label"};
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(r->columns[0].Int64At(i), 7);
  o.exact = true;
  auto t = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(t.ok());
  EXPECT_GE(Recall(*r, *t, 1), 0.9);
}

// Matches that live only far from the query (other cells) must still be found: the probe
// widens when the probed cells run out of candidates (spec/21 §7.2 step 6).
TEST(VectorSearch, SelectiveFilterOutsideTheProbedCellsWidensTheProbe) {
  Schema s = TestSchema();
  auto created = Dataset::Create(MemStore(), "far", s);
  ASSERT_TRUE(created.ok());
  auto& ds = *created;
  // Two tight clusters on opposite sides; label 1 only in the far one.
  std::vector<float> v(400 * kDim);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0, 0.05f);
  for (size_t i = 0; i < 400; ++i) {
    for (size_t d = 0; d < kDim; ++d) v[i * kDim + d] = (i < 300 ? 1.0f : -1.0f) + g(rng);
  }
  Batch b = MakeBatch(s, v, 0);
  Column label(*s.Find("label"));
  for (size_t i = 0; i < 400; ++i) label.AppendInt64(i < 300 ? 0 : 1);
  b.columns[1] = std::move(label);
  ASSERT_TRUE(ds->AppendMany(b).ok());
  BuildIndexOptions bo;
  bo.cells = 16;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto q = Query(*ds, 0);
  SearchOptions o;
  o.k = 5;
  o.nprobe = 1;
  o.where = {*ParsePredicate("label == 1")};
  o.fields = {"label"};
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r->columns[0].Int64At(i), 1);
    EXPECT_GE(r->anchors[i], 300u);
  }
  // A filter nothing matches returns nothing, after probing every cell.
  o.where = {*ParsePredicate("label == 9")};
  auto none = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->anchors.empty());
}

TEST(VectorSearch, BuildAssignsRecordsAppendedWhileItRan) {
  auto store = MemStore();
  auto ds = MakeDataset(store, 400);
  auto other = *Dataset::Open(store, "vecs");
  Schema s = ds->schema();
  auto extra = MakeVectors(20, 77);
  bool appended = false;
  BuildIndexOptions bo;
  bo.cells = 6;
  auto c = ds->BuildIndex("emb", bo, [&](std::string_view phase, uint64_t done, uint64_t) {
    if (phase == "commit" && done == 0 && !appended) {
      appended = true;
      // Another writer lands 20 records and replaces anchor 5 before the build commits.
      ASSERT_TRUE(other->AppendMany(MakeBatch(s, extra, 400)).ok());
      std::vector<float> five(extra.begin(), extra.begin() + kDim);
      for (auto& x : five) x = -x;
      ASSERT_TRUE(other->AppendMany(MakeBatch(s, five, 5, {5})).ok());
      ASSERT_TRUE(other->Delete({7}).ok());
    }
  });
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->entries, 421u);
  EXPECT_EQ(st->live, 419u);
  SearchOptions o;
  o.k = 1;
  o.nprobe = 6;
  std::vector<float> q(extra.begin() + 3 * kDim, extra.begin() + 4 * kDim);
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->used_index);
  EXPECT_EQ(r->anchors[0], 403u);
  std::vector<float> five(extra.begin(), extra.begin() + kDim);
  for (auto& x : five) x = -x;
  r = ds->Search("emb", five.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->anchors[0], 5u);
}

TEST(VectorSearch, SmallAppendsCompactACellsBuckets) {
  auto ds = MakeDataset(MemStore(), 100);
  BuildIndexOptions bo;
  bo.cells = 1;  // every append touches the one cell
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  Schema s = ds->schema();
  auto extra = MakeVectors(40, 31);
  for (size_t i = 0; i < 40; ++i) {
    std::vector<float> one(extra.begin() + i * kDim, extra.begin() + (i + 1) * kDim);
    ASSERT_TRUE(ds->AppendMany(MakeBatch(s, one, 1000 + i)).ok());
    auto st = ds->IndexStatus("emb");
    ASSERT_TRUE(st.ok());
    EXPECT_LT(st->buckets, vindex::kMaxBucketsPerCell);
    EXPECT_EQ(st->entries, 101 + i);
  }
  std::vector<float> q(extra.begin() + 20 * kDim, extra.begin() + 21 * kDim);
  SearchOptions o;
  o.k = 1;
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->anchors[0], 120u);
}

TEST(VectorSearch, BuildIsDeterministic) {
  auto a = MakeDataset(MemStore(), 700, 3);
  auto b = MakeDataset(MemStore(), 700, 3);
  BuildIndexOptions bo;
  bo.seed = 11;
  bo.cells = 9;
  bo.chunk_rows = 256;
  bo.flush_bytes = 40000;  // several flushes: several buckets per cell
  ASSERT_TRUE(a->BuildIndex("emb", bo).ok());
  ASSERT_TRUE(b->BuildIndex("emb", bo).ok());
  auto sa = a->IndexStatus("emb");
  auto sb = b->IndexStatus("emb");
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_EQ(sa->index, sb->index);
  EXPECT_EQ(sa->model, sb->model);
  EXPECT_EQ(sa->buckets, sb->buckets);
  EXPECT_GT(sa->buckets, 9u);  // several chunks: several buckets per cell
  auto q = Query(*a, 1);
  SearchOptions o;
  auto ra = a->Search("emb", q.data(), 1, kDim, o);
  auto rb = b->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->anchors, rb->anchors);
  EXPECT_EQ(ra->scores, rb->scores);
}

TEST(VectorSearch, BatchesOfQueriesMatchSingleQueries) {
  auto ds = MakeDataset(MemStore(), 800);
  BuildIndexOptions bo;
  bo.cells = 12;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  std::vector<float> qs;
  for (uint64_t a : {1, 50, 300, 777}) {
    auto q = Query(*ds, a);
    qs.insert(qs.end(), q.begin(), q.end());
  }
  SearchOptions o;
  o.k = 7;
  o.threads = 2;
  auto batch = ds->Search("emb", qs.data(), 4, kDim, o);
  ASSERT_TRUE(batch.ok());
  for (size_t q = 0; q < 4; ++q) {
    auto one = ds->Search("emb", qs.data() + q * kDim, 1, kDim, o);
    ASSERT_TRUE(one.ok());
    std::vector<uint64_t> part(batch->anchors.begin() + batch->offsets[q],
                               batch->anchors.begin() + batch->offsets[q + 1]);
    EXPECT_EQ(part, one->anchors);
    for (uint64_t i = batch->offsets[q]; i < batch->offsets[q + 1]; ++i) {
      EXPECT_EQ(batch->query[i], q);
    }
  }
}

// Deletes the first object file under dir/objects whose bytes start with `magic`
// (simulates a lost object); false if there is none.
bool RemoveFirstObjectWithMagic(const std::filesystem::path& dir, std::string_view magic) {
  for (auto& e : std::filesystem::recursive_directory_iterator(dir / "objects")) {
    if (!e.is_regular_file()) continue;
    std::string head(magic.size(), '\0');
    FILE* f = fopen(e.path().c_str(), "rb");
    if (f == nullptr) return false;
    const size_t got = fread(head.data(), 1, head.size(), f);
    fclose(f);
    if (got == head.size() && head == magic) return std::filesystem::remove(e.path());
  }
  return false;
}

TEST(VectorSearch, FileStoreVerifyAndReadStats) {
  auto dir =
      std::filesystem::temp_directory_path() / ("dreamdb_vindex_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::shared_ptr<Store> store(*Store::Open("file://" + dir.string()));
  auto ds = MakeDataset(store, 1500);
  BuildIndexOptions bo;
  bo.cells = 20;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  Schema s = ds->schema();
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, MakeVectors(40, 5), 3000)).ok());
  ASSERT_TRUE(ds->Delete({3, 4}).ok());
  auto report = Verify(*store, "vecs");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  // A fresh handle: only the probed cells' buckets are fetched.
  auto cold = *Dataset::Open(store, "vecs");
  auto q = Query(*cold, 100);
  ReadStats before = cold->read_stats();
  SearchOptions o;
  o.k = 10;
  o.nprobe = 2;
  o.rerank = false;
  auto r = cold->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  ReadStats after = cold->read_stats();
  uint64_t requests = after.requests - before.requests;
  EXPECT_GE(requests, 2u);                               // dir page + buckets (+ model)
  EXPECT_LE(requests, 2u /*model, page*/ + 2u * 2 + 4);  // 2 cells x (build + append)
  // Warm: everything is cached.
  before = cold->read_stats();
  ASSERT_TRUE(cold->Search("emb", q.data(), 1, kDim, o).ok());
  after = cold->read_stats();
  EXPECT_EQ(after.requests, before.requests);
  // A damaged bucket is reported by verify.
  auto st = cold->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(RemoveFirstObjectWithMagic(dir, "DDBSPB01"));
  report = Verify(*store, "vecs");
  ASSERT_TRUE(report.ok());
  ASSERT_FALSE(report->problems.empty());
  EXPECT_NE(report->problems[0].find("bucket"), std::string::npos) << report->problems[0];
  std::filesystem::remove_all(dir);
}

TEST(VectorSearch, SchemaIndexOptionRoundTripsAndDrivesTheBuild) {
  auto json = R"({"fields": [{"name": "emb", "type": "embedding", "dim": 16,
                   "index": {"algorithm": "ivf", "metric": "l2", "bits": 2, "cells": 5}},
                  {"name": "label", "type": "int64"}]})";
  auto s = Schema::FromJson(json);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->Find("emb")->index.has_value());
  EXPECT_EQ(s->Find("emb")->index->metric, "l2");
  EXPECT_NE(s->ToJson().find("\"index\""), std::string::npos);
  auto again = Schema::FromJson(s->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *s);
  EXPECT_EQ(Schema::FromJson(R"({"fields": [{"name": "x", "type": "int64", "index": {}}]})")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Schema::FromJson(R"({"fields": [{"name": "e", "type": "embedding", "dim": 4,
                   "index": {"algorithm": "hnsw"}}]})")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Schema::FromJson(R"({"fields": [{"name": "e", "type": "embedding", "dim": 4,
                   "index": {"algorithm": "graph", "quantizer": "pq4"}}]})")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Schema::FromJson(R"({"fields": [{"name": "e", "type": "embedding", "dim": 4,
                   "index": {"quantizer": "pq8"}}]})")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  auto store = MemStore();
  auto ds = Dataset::Create(store, "l2", *s);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  Batch b;
  Column emb(*s->Find("emb")), label(*s->Find("label"));
  auto v = MakeVectors(200, 8);
  for (size_t i = 0; i < 200; ++i) {
    emb.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
    label.AppendInt64(1);
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  ASSERT_TRUE((*ds)->AppendMany(b).ok());
  auto pre = (*ds)->IndexStatus("emb");
  ASSERT_TRUE(pre.ok());
  EXPECT_FALSE(pre->built);
  EXPECT_EQ(pre->metric, "l2");
  ASSERT_TRUE((*ds)->BuildIndex("emb").ok());
  auto st = (*ds)->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->metric, "l2");
  EXPECT_EQ(st->bits, 2u);
  EXPECT_EQ(st->cells, 5u);
  std::vector<float> q(v.begin() + 3 * kDim, v.begin() + 4 * kDim);
  SearchOptions o;
  o.k = 1;
  auto r = (*ds)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->metric, "l2");
  EXPECT_EQ(r->anchors[0], 3u);
  EXPECT_NEAR(r->scores[0], 0.0f, 1e-3);
  // Dropping the field drops its index link.
  Schema next;
  ASSERT_TRUE(next.AddInt64("label").ok());
  ASSERT_TRUE((*ds)->EvolveSchema(next).ok());
  auto reopened = Dataset::Open(store, "l2");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->IndexStatus("emb").status().code(), StatusCode::kInvalidArgument);
}

TEST(VectorSearch, ManifestWithoutIndexesKeepsItsBytes) {
  // Absent `indexes` = the old encoding; present = decoded back.
  dataset::Manifest m;
  m.genesis = ObjectId::Of("g");
  auto plain = dataset::EncodeManifest(m);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("indexes"), std::string::npos);
  m.indexes["emb"] = ObjectId::Of("i");
  auto with = dataset::EncodeManifest(m);
  ASSERT_TRUE(with.ok());
  auto back = dataset::DecodeManifest(*with);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->indexes, m.indexes);
}

// imi and lsh partitions through a dataset (spec/21 §2, §7.2): build, status, recall vs
// exact, appends after the build, OpenAt an old version, tombstones.
class PartitionSearch : public ::testing::TestWithParam<std::string> {};

TEST_P(PartitionSearch, BuildSearchAppendOpenAtAndTombstones) {
  const std::string alg = GetParam();
  auto store = MemStore();
  auto ds = MakeDataset(store, 3000, 5);
  BuildIndexOptions bo;
  bo.algorithm = alg;
  bo.seed = 3;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->built);
  EXPECT_EQ(st->algorithm, alg);
  EXPECT_EQ(st->entries, 3000u);
  EXPECT_GT(st->cells, 1u);
  // A default search probes the calibrated setting (spec/21 §7.9), one of the curve's.
  ASSERT_TRUE(st->calibration_queries > 0);
  EXPECT_TRUE(std::any_of(st->calibration_curve.begin(), st->calibration_curve.end(),
                          [&](const auto& p) { return p.first == st->nprobe; }));
  EXPECT_GE(st->calibration_recall, 0.96);
  const size_t nq = 30;
  std::vector<float> qs;
  for (size_t i = 0; i < nq; ++i) {
    auto q = Query(*ds, i * 89);
    qs.insert(qs.end(), q.begin(), q.end());
  }
  SearchOptions o;
  o.k = 10;
  o.exact = true;
  auto truth = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(truth.ok());
  o.exact = false;
  auto def = ds->Search("emb", qs.data(), nq, kDim, o);  // the index's default nprobe
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_TRUE(def->used_index);
  EXPECT_EQ(def->nprobe, st->nprobe);
  EXPECT_GE(Recall(*def, *truth, nq), 0.9) << alg;
  o.nprobe = st->cells;  // every non-empty cell: with rerank the result is exact
  auto all = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(all.ok());
  EXPECT_GE(Recall(*all, *truth, nq), 0.99) << alg;
  EXPECT_EQ(all->candidates, nq * 3000);
  o.nprobe = 2;  // empty cells do not count: two non-empty cells are scanned
  auto two = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(two.ok());
  EXPECT_GT(two->candidates, 0u);
  for (size_t q = 0; q < nq; ++q) EXPECT_EQ(two->anchors[two->offsets[q]], q * 89) << alg;
  // Appends after the build land in the index; the old version keeps its own index.
  ObjectId v1 = ds->head();
  Schema s = ds->schema();
  auto extra = MakeVectors(20, 77);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, extra, 9000)).ok());
  EXPECT_EQ(ds->IndexStatus("emb")->entries, 3020u);
  EXPECT_EQ(ds->IndexStatus("emb")->algorithm, alg);
  std::vector<float> q(extra.begin() + 4 * kDim, extra.begin() + 5 * kDim);
  o.nprobe = 0;
  o.k = 1;
  auto now = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(now->used_index);
  EXPECT_EQ(now->anchors[0], 3004u);
  auto old = Dataset::OpenAt(store, "vecs", v1.ToString());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  auto then = (*old)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(then.ok()) << then.status().ToString();
  EXPECT_TRUE(then->used_index);
  ASSERT_EQ(then->anchors.size(), 1u);
  EXPECT_LT(then->anchors[0], 3000u);
  EXPECT_EQ((*old)->IndexStatus("emb")->entries, 3000u);
  // Tombstones are never returned.
  auto q7 = Query(*ds, 7);
  ASSERT_TRUE(ds->Delete({7}).ok());
  o.k = 10;
  auto r7 = ds->Search("emb", q7.data(), 1, kDim, o);
  ASSERT_TRUE(r7.ok());
  EXPECT_EQ(r7->anchors.size(), 10u);
  EXPECT_EQ(std::count(r7->anchors.begin(), r7->anchors.end(), 7u), 0);
  EXPECT_EQ(ds->IndexStatus("emb")->stale, 1u);
}

TEST_P(PartitionSearch, SchemaOptionChoosesTheAlgorithm) {
  const std::string alg = GetParam();
  auto s = Schema::FromJson(R"({"fields": [{"name": "emb", "type": "embedding", "dim": 16,
                   "index": {"algorithm": ")" +
                            alg + R"(", "metric": "l2", "bits": 3}},
                  {"name": "label", "type": "int64"}, {"name": "name", "type": "string",
                   "optional": true}]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->Find("emb")->index->algorithm, alg);
  auto again = Schema::FromJson(s->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *s);
  auto ds = Dataset::Create(MemStore(), "p", *s);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto v = MakeVectors(1000, 9);
  ASSERT_TRUE((*ds)->AppendMany(MakeBatch(*s, v, 0)).ok());
  EXPECT_EQ((*ds)->IndexStatus("emb")->algorithm, alg);  // declared, not built
  ASSERT_TRUE((*ds)->BuildIndex("emb").ok());
  auto st = (*ds)->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->algorithm, alg);
  EXPECT_EQ(st->metric, "l2");
  EXPECT_EQ(st->bits, 3u);
  std::vector<float> q(v.begin() + 11 * kDim, v.begin() + 12 * kDim);
  SearchOptions o;
  o.k = 1;
  auto r = (*ds)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->anchors[0], 11u);
  // BuildIndexOptions overrides the declaration.
  BuildIndexOptions bo;
  bo.algorithm = "ivf";
  ASSERT_TRUE((*ds)->BuildIndex("emb", bo).ok());
  EXPECT_EQ((*ds)->IndexStatus("emb")->algorithm, "ivf");
  bo.algorithm = "hnsw";
  auto bad = (*ds)->BuildIndex("emb", bo);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'hnsw'"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PartitionSearch, ::testing::Values("imi", "lsh"));

TEST(VectorSearch, DefaultIndexNprobePerAlgorithm) {
  using A = vector::IvfParams::Algorithm;
  EXPECT_EQ(vindex::DefaultIndexNprobe(A::kIvf, 447), 0u);
  EXPECT_EQ(vindex::DefaultIndexNprobe(A::kImi, 4096), 80u);
  EXPECT_EQ(vindex::DefaultIndexNprobe(A::kLsh, 4096), 80u);
  EXPECT_EQ(vindex::DefaultIndexNprobe(A::kImi, 9), 9u);
  EXPECT_EQ(vindex::DefaultIndexNprobe(A::kLsh, 64), 16u);
}

}  // namespace
}  // namespace dreamdb

namespace dreamdb {
namespace {

std::vector<float> Queries(const Dataset& ds, size_t nq, uint64_t stride) {
  std::vector<float> qs;
  for (size_t i = 0; i < nq; ++i) {
    auto q = Query(ds, i * stride);
    qs.insert(qs.end(), q.begin(), q.end());
  }
  return qs;
}

// Graph indexes through a dataset (spec/21 §4.5, §5.6, §7.8, §8.4).
TEST(GraphSearch, BuildSearchAppendOpenAtDeleteReplace) {
  auto store = MemStore();
  auto ds = MakeDataset(store, 800, 5);
  BuildIndexOptions bo;
  bo.algorithm = "graph";
  bo.degree = 16;
  bo.seed = 3;
  std::vector<std::string> phases;
  auto c = ds->BuildIndex("emb", bo, [&](std::string_view phase, uint64_t, uint64_t) {
    if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
  });
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(phases, (std::vector<std::string>{"read", "build", "assign", "calibrate", "commit"}));
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->built);
  EXPECT_EQ(st->algorithm, "graph");
  EXPECT_EQ(st->quantizer, "rabitq");
  EXPECT_EQ(st->cells, 1u);
  EXPECT_EQ(st->nodes, 800u);
  EXPECT_EQ(st->tail, 0u);
  EXPECT_EQ(st->entries, 800u);
  EXPECT_EQ(st->degree, 16u);
  EXPECT_EQ(st->stale, 0u);
  const size_t nq = 30;
  auto qs = Queries(*ds, nq, 26);
  SearchOptions o;
  o.k = 10;
  o.exact = true;
  auto truth = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(truth.ok());
  o.exact = false;
  auto def = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_TRUE(def->used_index);
  EXPECT_EQ(def->nprobe, 0u);
  EXPECT_GT(def->ef, 0u);
  EXPECT_GE(Recall(*def, *truth, nq), 0.95);
  o.ef = 400;
  auto wide = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(wide.ok());
  EXPECT_GE(Recall(*wide, *truth, nq), 0.97);
  EXPECT_EQ(wide->ef, 400u);
  for (size_t q = 0; q < nq; ++q) EXPECT_EQ(wide->anchors[wide->offsets[q]], q * 26);
  o.ef = 0;
  o.rerank = false;
  o.ef = 400;
  auto est = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(est.ok());
  EXPECT_GE(Recall(*est, *truth, nq), 0.7);
  o.rerank = true;
  // Appends after the build go to the cell-0 tail and are found.
  ObjectId v1 = ds->head();
  Schema s = ds->schema();
  auto extra = MakeVectors(20, 77);
  auto ac = ds->AppendMany(MakeBatch(s, extra, 9000));
  ASSERT_TRUE(ac.ok()) << ac.status().ToString();
  EXPECT_LE(ac->objects_written, 3u /*segments*/ + 1 /*bucket*/ + 8);
  st = ds->IndexStatus("emb");
  EXPECT_EQ(st->nodes, 800u);
  EXPECT_EQ(st->tail, 20u);
  EXPECT_EQ(st->entries, 820u);
  EXPECT_EQ(st->buckets, 1u);
  std::vector<float> q(extra.begin() + 4 * kDim, extra.begin() + 5 * kDim);
  o.k = 1;
  auto now = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(now.ok()) << now.status().ToString();
  EXPECT_TRUE(now->used_index);
  EXPECT_EQ(now->anchors[0], 804u);
  auto old = Dataset::OpenAt(store, "vecs", v1.ToString());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  auto then = (*old)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(then.ok()) << then.status().ToString();
  EXPECT_TRUE(then->used_index);
  ASSERT_EQ(then->anchors.size(), 1u);
  EXPECT_LT(then->anchors[0], 800u);
  EXPECT_EQ((*old)->IndexStatus("emb")->tail, 0u);
  // Deleted and replaced anchors are never returned; the new value is found once.
  auto q7 = Query(*ds, 7);
  auto q20 = Query(*ds, 20);
  ASSERT_TRUE(ds->Delete({7}).ok());
  std::vector<float> far(q20.size());
  for (size_t i = 0; i < far.size(); ++i) far[i] = -q20[i];
  Batch b;
  b.anchors = {20};
  Column emb(*s.Find("emb"));
  emb.AppendFloats(far);
  b.columns.push_back(std::move(emb));
  ASSERT_TRUE(ds->AppendMany(b).ok());
  o.k = 10;
  auto r7 = ds->Search("emb", q7.data(), 1, kDim, o);
  ASSERT_TRUE(r7.ok());
  EXPECT_EQ(r7->anchors.size(), 10u);
  EXPECT_EQ(std::count(r7->anchors.begin(), r7->anchors.end(), 7u), 0);
  auto r20 = ds->Search("emb", q20.data(), 1, kDim, o);
  ASSERT_TRUE(r20.ok());
  EXPECT_EQ(std::count(r20->anchors.begin(), r20->anchors.end(), 20u), 0);
  auto rf = ds->Search("emb", far.data(), 1, kDim, o);
  ASSERT_TRUE(rf.ok());
  EXPECT_EQ(rf->anchors[0], 20u);
  EXPECT_NEAR(rf->scores[0], 1.0f, 1e-4);
  EXPECT_EQ(std::count(rf->anchors.begin(), rf->anchors.end(), 20u), 1);
  st = ds->IndexStatus("emb");
  EXPECT_EQ(st->entries, 821u);
  EXPECT_EQ(st->live, 819u);
  EXPECT_EQ(st->stale, 2u);
  // A rebuild folds the tail into the graph and drops stale entries.
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  st = ds->IndexStatus("emb");
  EXPECT_EQ(st->nodes, 819u);
  EXPECT_EQ(st->tail, 0u);
  EXPECT_EQ(st->stale, 0u);
}

TEST(GraphSearch, FiltersRangesAndSelectiveFiltersFallBack) {
  auto ds = MakeDataset(MemStore(), 1000, 11);
  BuildIndexOptions bo;
  bo.algorithm = "graph";
  bo.degree = 16;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  auto q = Query(*ds, 33);
  SearchOptions o;
  o.k = 10;
  o.where = {*ParsePredicate("label == 3")};
  o.fields = {"label"};
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(r->columns[0].Int64At(i), 3);
  o.exact = true;
  auto truth = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(truth.ok());
  EXPECT_GE(Recall(*r, *truth, 1), 0.9);
  // One matching record far from the query: ef widens, then brute force finds it.
  o.exact = false;
  o.fields.clear();
  o.where = {*ParsePredicate("name == 'r734'")};
  auto one = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->anchors.size(), 1u);
  EXPECT_EQ(one->anchors[0], 734u);
  // Anchor range.
  o.where.clear();
  o.start = 100;
  o.end = 200;
  auto range = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->anchors.size(), 10u);
  for (uint64_t a : range->anchors) {
    EXPECT_GE(a, 100u);
    EXPECT_LT(a, 200u);
  }
}

TEST(GraphSearch, DeterministicAndErrors) {
  auto a = MakeDataset(MemStore(), 300, 4);
  auto b = MakeDataset(MemStore(), 300, 4);
  BuildIndexOptions bo;
  bo.algorithm = "graph";
  bo.degree = 16;
  bo.seed = 9;
  ASSERT_TRUE(a->BuildIndex("emb", bo).ok());
  bo.threads = 1;
  ASSERT_TRUE(b->BuildIndex("emb", bo).ok());
  EXPECT_EQ(a->IndexStatus("emb")->index, b->IndexStatus("emb")->index);
  bo.quantizer = "pq4";
  auto pq = a->BuildIndex("emb", bo);
  EXPECT_EQ(pq.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pq.status().message().find("pq4"), std::string::npos);
  bo.quantizer.clear();
  bo.degree = 2;
  auto deg = a->BuildIndex("emb", bo);
  EXPECT_EQ(deg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deg.status().message().find("degree"), std::string::npos);
  auto empty = Dataset::Create(MemStore(), "e", TestSchema());
  ASSERT_TRUE(empty.ok());
  bo.degree = 0;
  EXPECT_EQ((*empty)->BuildIndex("emb", bo).status().code(), StatusCode::kInvalidArgument);
  // A graph declared in the schema drives the build.
  auto s = Schema::FromJson(R"({"fields": [{"name": "emb", "type": "embedding", "dim": 16,
                   "index": {"algorithm": "graph", "metric": "l2", "bits": 3}},
                  {"name": "label", "type": "int64"}, {"name": "name", "type": "string",
                   "optional": true}]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto ds = Dataset::Create(MemStore(), "g", *s);
  ASSERT_TRUE(ds.ok());
  auto v = MakeVectors(400, 2);
  ASSERT_TRUE((*ds)->AppendMany(MakeBatch(*s, v, 0)).ok());
  ASSERT_TRUE((*ds)->BuildIndex("emb").ok());
  auto st = (*ds)->IndexStatus("emb");
  EXPECT_EQ(st->algorithm, "graph");
  EXPECT_EQ(st->metric, "l2");
  EXPECT_EQ(st->bits, 3u);
  std::vector<float> q(v.begin() + 11 * kDim, v.begin() + 12 * kDim);
  SearchOptions o;
  o.k = 1;
  auto r = (*ds)->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anchors[0], 11u);
}

TEST(GraphSearch, FileStoreVerifyAndReadStats) {
  auto dir =
      std::filesystem::temp_directory_path() / ("dreamdb_vgraph_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::shared_ptr<Store> store(*Store::Open("file://" + dir.string()));
  auto ds = MakeDataset(store, 1000);
  BuildIndexOptions bo;
  bo.algorithm = "graph";
  bo.degree = 16;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  Schema s = ds->schema();
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, MakeVectors(40, 5), 3000)).ok());
  ASSERT_TRUE(ds->Delete({3, 4}).ok());
  auto report = Verify(*store, "vecs");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  auto cold = *Dataset::Open(store, "vecs");
  auto q = Query(*cold, 100);
  ReadStats before = cold->read_stats();
  SearchOptions o;
  o.k = 10;
  o.rerank = false;
  auto r = cold->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anchors[0], 100u);
  ReadStats after = cold->read_stats();
  const uint64_t pages = (1000 + 255) / 256;
  EXPECT_GE(after.requests - before.requests, 3u);  // model, directory page, tail bucket
  EXPECT_LE(after.requests - before.requests, 3u + pages + 8);
  before = cold->read_stats();
  ASSERT_TRUE(cold->Search("emb", q.data(), 1, kDim, o).ok());
  after = cold->read_stats();
  EXPECT_EQ(after.requests, before.requests);
  // A missing node page is reported by verify and fails the search that needs it.
  ASSERT_TRUE(RemoveFirstObjectWithMagic(dir, "DDBSPG01"));
  report = Verify(*store, "vecs");
  ASSERT_TRUE(report.ok());
  ASSERT_FALSE(report->problems.empty());
  EXPECT_NE(report->problems[0].find("node page"), std::string::npos) << report->problems[0];
  std::filesystem::remove_all(dir);
}

TEST(GraphSearch, BuildRebasesRecordsAppendedWhileItRan) {
  auto store = MemStore();
  auto ds = MakeDataset(store, 300);
  auto other = *Dataset::Open(store, "vecs");
  Schema s = ds->schema();
  auto extra = MakeVectors(20, 77);
  bool appended = false;
  BuildIndexOptions bo;
  bo.algorithm = "graph";
  bo.degree = 8;
  auto c = ds->BuildIndex("emb", bo, [&](std::string_view phase, uint64_t done, uint64_t) {
    if (phase == "commit" && done == 0 && !appended) {
      appended = true;
      ASSERT_TRUE(other->AppendMany(MakeBatch(s, extra, 300)).ok());
      ASSERT_TRUE(other->Delete({7}).ok());
    }
  });
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->nodes, 300u);
  EXPECT_EQ(st->tail, 20u);
  EXPECT_EQ(st->live, 319u);
  SearchOptions o;
  o.k = 1;
  std::vector<float> q(extra.begin() + 3 * kDim, extra.begin() + 4 * kDim);
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->used_index);
  EXPECT_EQ(r->anchors[0], 303u);
}

// PQ4 as a stored quantizer (spec/21 §2.1, §4.1).
TEST(Pq4Index, BuildSearchAppendAndKeys) {
  auto ds = MakeDataset(MemStore(), 2000, 6);
  BuildIndexOptions bo;
  bo.cells = 8;
  bo.quantizer = "pq4";
  auto c = ds->BuildIndex("emb", bo);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto st = ds->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->quantizer, "pq4");
  EXPECT_EQ(st->entries, 2000u);
  const size_t nq = 20;
  auto qs = Queries(*ds, nq, 97);
  SearchOptions o;
  o.k = 10;
  o.exact = true;
  auto truth = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(truth.ok());
  o.exact = false;
  o.nprobe = 8;
  auto r = ds->Search("emb", qs.data(), nq, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(Recall(*r, *truth, nq), 0.9);
  Schema s = ds->schema();
  auto extra = MakeVectors(10, 12);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, extra, 7000)).ok());
  EXPECT_EQ(ds->IndexStatus("emb")->entries, 2010u);
  EXPECT_EQ(ds->IndexStatus("emb")->quantizer, "pq4");
  std::vector<float> q(extra.begin() + 2 * kDim, extra.begin() + 3 * kDim);
  o.k = 1;
  auto found = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->anchors[0], 2002u);
  // The optional key appears only for pq4.
  vindex::IndexObject ix;
  ix.field = "emb";
  ix.metric = "cosine";
  ix.bits = 4;
  ix.dim = 16;
  ix.cells = 1;
  ix.model = ObjectId::Of("m");
  ix.pages = {ObjectId::Of("p")};
  auto plain = vindex::EncodeIndex(ix);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("quantizer"), std::string::npos);
  EXPECT_EQ(plain->find("graph"), std::string::npos);
  ix.quantizer = "pq4";
  auto with = vindex::EncodeIndex(ix);
  ASSERT_TRUE(with.ok());
  EXPECT_NE(with->find("quantizer"), std::string::npos);
  EXPECT_EQ(*vindex::DecodeIndex(*with), ix);
  bo.quantizer = "pq8";
  EXPECT_EQ(ds->BuildIndex("emb", bo).status().code(), StatusCode::kInvalidArgument);
  // The schema declaration drives the quantizer.
  auto sj = Schema::FromJson(R"({"fields": [{"name": "emb", "type": "embedding", "dim": 16,
                   "index": {"quantizer": "pq4", "cells": 4}}]})");
  ASSERT_TRUE(sj.ok()) << sj.status().ToString();
  EXPECT_NE(sj->ToJson().find("\"quantizer\""), std::string::npos);
  EXPECT_EQ(*Schema::FromJson(sj->ToJson()), *sj);
}

}  // namespace
}  // namespace dreamdb
