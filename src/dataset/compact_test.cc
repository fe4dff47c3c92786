// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Compaction (spec/14-semantics.md §18): content unchanged, segments and pages fewer,
// spatial indexes carried over, verify clean, concurrent writers, GC afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <string>

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "dreamdb/search.h"
#include "src/dataset/store_fixture_test_util.h"

namespace dreamdb {
namespace {

class Compact : public StoreFixture<::testing::TestWithParam<std::string>> {
 protected:
  void SetUp() override {
    OpenStore(GetParam(), "compact");
    auto ds = Dataset::Create(store_, "d", FixtureSchema(/*with_blob=*/true));
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(*ds);
  }
  void TearDown() override {
    ds_.reset();
    StoreFixture::TearDown();
  }

  // `n` one-record commits, then replacements, deletes and a layer: a fragmented head.
  void ManySmallCommits(size_t n) {
    const Schema s = ds_->schema();
    for (size_t i = 0; i < n; ++i) {
      auto c = ds_->AppendMany(FixtureRows(s, 1, 100 + i));
      ASSERT_TRUE(c.ok()) << c.status().ToString();
    }
    ASSERT_TRUE(ds_->AppendMany(FixtureRows(s, 3, 7, {1, 5, 9})).ok());  // replaced values
    ASSERT_TRUE(ds_->Delete({2, 6, 11}).ok());
    FieldSpec layer;
    layer.name = "score";
    layer.type = FieldType::kInt64;
    layer.optional = true;
    Column score(layer);
    score.AppendInt64(7);
    score.AppendNull();
    ASSERT_TRUE(ds_->AddLayer(layer, {3, 4}, score).ok());
  }

  // 200 records; an ivf index (4 cells) on main and a graph index on branch "graph",
  // whose handle goes to `*graph`.
  void IndexedBranches(std::unique_ptr<Dataset>* graph) {
    ASSERT_TRUE(ds_->AppendMany(FixtureRows(ds_->schema(), 200, 1)).ok());
    ASSERT_TRUE(ds_->Branch("graph").ok());
    *graph = *Dataset::Open(store_, "d", "graph");
    BuildIndexOptions ivf;
    ivf.cells = 4;
    ASSERT_TRUE(ds_->BuildIndex("emb", ivf).ok());
    BuildIndexOptions g;
    g.algorithm = "graph";
    ASSERT_TRUE((*graph)->BuildIndex("emb", g).ok());
  }

  // Ten one-record appends (anchors 200..209), new vectors for anchors 10 and 20, and the
  // deletes of `deleted`: stale entries in an index of `d`.
  void ChangeIndexed(Dataset& d, const std::vector<uint64_t>& deleted) {
    const Schema s = d.schema();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(d.AppendMany(FixtureRows(s, 1, 500 + i)).ok());
    ASSERT_TRUE(d.AppendMany(FixtureRows(s, 2, 9, {10, 20})).ok());
    ASSERT_TRUE(d.Delete(deleted).ok());
  }

  // The emb values of `anchors` in ds_, row-major: search queries.
  std::vector<float> Vectors(const std::vector<uint64_t>& anchors) {
    std::vector<float> out;
    for (uint64_t a : anchors) {
      auto t = ds_->Take({a}, {"emb"});
      EXPECT_TRUE(t.ok()) << t.status().ToString();
      if (!t.ok()) break;
      auto f = t->columns[0].FloatsAt(0);
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  }

  void ExpectVerifies() { StoreFixture::ExpectVerifies("d"); }

  std::unique_ptr<Dataset> ds_;
};

TEST_P(Compact, ManySmallCommitsBecomeFewSegmentsWithTheSameContent) {
  ManySmallCommits(60);
  const ObjectId old_head = ds_->head();
  const std::string before = ReadAll(*ds_);
  const uint64_t count = ds_->Count();
  const auto meta = ds_->Meta();
  CompactReport r;
  auto info = ds_->Compact({}, &r);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(info->attempts, 1u);
  EXPECT_EQ(info->message, "compact");
  EXPECT_EQ(info->parents, std::vector<ObjectId>{old_head});
  EXPECT_EQ(r.records, count);
  EXPECT_GE(r.segments_before, 200u);  // 4 per commit, less the deduplicated and unreached
  EXPECT_EQ(r.segments_after, 5u);     // one per field: emb, label, name, raw, score
  EXPECT_LT(r.segment_bytes_after, r.segment_bytes_before);
  EXPECT_EQ(ds_->Count(), count);
  EXPECT_EQ(ds_->Meta(), meta);
  EXPECT_EQ(ReadAll(*ds_), before);
  // A fresh handle reads the same, and so does the old version (kept until GC).
  auto fresh = *Dataset::Open(store_, "d");
  EXPECT_EQ(ReadAll(*fresh), before);
  EXPECT_EQ(ReadAt(store_, old_head.ToString()), before);
  ExpectVerifies();
  // Deleted anchors stay deleted; automatic anchors continue after the old ones.
  auto took = ds_->Take({2}, {"label"});
  EXPECT_EQ(took.status().code(), StatusCode::kNotFound);
  auto next = ds_->AppendMany(FixtureRows(ds_->schema(), 1, 999));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(ds_->Count(), count + 1);
  auto top = ds_->Take({60}, {"label"});
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->columns[0].Int64At(0), 999000);
}

TEST_P(Compact, CompactingACompactHeadLandsNothing) {
  ManySmallCommits(20);
  ASSERT_TRUE(ds_->Compact().ok());
  const ObjectId head = ds_->head();
  CompactReport r;
  auto again = ds_->Compact({}, &r);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(again->attempts, 0u);
  EXPECT_EQ(again->manifest, head);
  EXPECT_EQ(ds_->head(), head);
  // An empty dataset is compact too.
  auto empty = Dataset::Create(store_, "e", FixtureSchema(/*with_blob=*/true));
  ASSERT_TRUE(empty.ok());
  CompactReport er;
  ASSERT_TRUE((*empty)->Compact({}, &er).ok());
  EXPECT_FALSE(er.changed);
}

TEST_P(Compact, SpatialIndexesSurviveWithTheSameResults) {
  std::unique_ptr<Dataset> graph;
  ASSERT_NO_FATAL_FAILURE(IndexedBranches(&graph));
  for (Dataset* d : {ds_.get(), graph.get()}) ASSERT_NO_FATAL_FAILURE(ChangeIndexed(*d, {30, 31}));
  std::vector<float> queries;
  ASSERT_NO_FATAL_FAILURE(queries = Vectors({0, 10, 40, 205}));
  const size_t nq = queries.size() / kFixtureDim;
  SearchOptions so;
  so.k = 10;
  for (Dataset* d : {ds_.get(), graph.get()}) {
    auto before = d->Search("emb", queries.data(), nq, kFixtureDim, so);
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    ASSERT_TRUE(before->used_index);
    auto status_before = d->IndexStatus("emb");
    ASSERT_TRUE(status_before.ok());
    CompactReport r;
    auto c = d->Compact({}, &r);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(r.spatial_indexes, 1u);
    auto after = d->Search("emb", queries.data(), nq, kFixtureDim, so);
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_TRUE(after->used_index);
    EXPECT_EQ(after->anchors, before->anchors) << d->branch();
    EXPECT_EQ(after->scores, before->scores) << d->branch();
    auto status_after = d->IndexStatus("emb");
    ASSERT_TRUE(status_after.ok());
    EXPECT_EQ(status_after->live, status_before->live);
    // The stale bucket entries go (the replaced and deleted records'); graph nodes stay.
    const bool graph_index = d == graph.get();
    EXPECT_EQ(status_after->entries, graph_index ? status_before->entries : status_before->live);
    EXPECT_EQ(status_after->stale, graph_index ? status_before->stale : 0u);
    EXPECT_EQ(status_after->model, status_before->model);  // no retraining
    EXPECT_NE(status_after->index, status_before->index);
    // Exact search agrees with the index's top hit (the query records themselves).
    SearchOptions exact = so;
    exact.exact = true;
    auto brute = d->Search("emb", queries.data(), nq, kFixtureDim, exact);
    ASSERT_TRUE(brute.ok());
    for (size_t q = 0; q < nq; ++q) {
      EXPECT_EQ(after->anchors[after->offsets[q]], brute->anchors[brute->offsets[q]]);
    }
  }
  ExpectVerifies();
}

// Forwards to an object backend and records the id of every object read (Get, GetRange,
// Head). Thread-safe: searches fetch in parallel.
class ReadRecorder final : public ObjectBackend {
 public:
  explicit ReadRecorder(std::shared_ptr<ObjectBackend> inner) : inner_(std::move(inner)) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    Note(id);
    return inner_->Get(id);
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    Note(id);
    return inner_->GetRange(id, offset, length);
  }
  Result<ObjectInfo> Head(const ObjectId& id) override {
    Note(id);
    return inner_->Head(id);
  }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return inner_->List(shard_prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }
  std::set<ObjectId> read() const {
    std::lock_guard<std::mutex> lock(mu_);
    return read_;
  }

 private:
  void Note(const ObjectId& id) {
    std::lock_guard<std::mutex> lock(mu_);
    read_.insert(id);
  }
  std::shared_ptr<ObjectBackend> inner_;
  mutable std::mutex mu_;
  std::set<ObjectId> read_;  // guarded by mu_
};

// Stale spatial-index entries (spec/21 §6.2) across compaction and GC. The entries of
// deleted and replaced records name segments that GC reclaims once retention drops the
// versions before the compaction: search on the compacted head must stay exact and never
// read a reclaimed object, and compaction drops the bucket entries that are stale in its
// source (the graph keeps its stale nodes, which route searches, until a rebuild).
TEST_P(Compact, StaleIndexEntriesAreDroppedAndSearchStaysExactAfterGcOfTheOldSegments) {
  std::unique_ptr<Dataset> graph;
  ASSERT_NO_FATAL_FAILURE(IndexedBranches(&graph));
  // Queries: the values that replaced and deleted records had, and two live records'.
  std::vector<float> queries;
  ASSERT_NO_FATAL_FAILURE(queries = Vectors({10, 20, 30, 31, 0, 150}));
  const size_t nq = queries.size() / kFixtureDim;
  for (Dataset* d : {ds_.get(), graph.get()}) {
    // Two built records deleted, one appended.
    ASSERT_NO_FATAL_FAILURE(ChangeIndexed(*d, {30, 31, 205}));
    auto before = d->IndexStatus("emb");
    ASSERT_TRUE(before.ok());
    CompactReport r;
    ASSERT_TRUE(d->Compact({}, &r).ok());
    ASSERT_TRUE(r.changed);
    auto after = d->IndexStatus("emb");
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->live, before->live);
    EXPECT_EQ(after->model, before->model);
    if (d == ds_.get()) {
      EXPECT_EQ(before->stale, 5u);  // 10, 20, 30, 31, 205
      EXPECT_EQ(after->stale, 0u);
      EXPECT_EQ(after->entries, after->live);
    } else {
      EXPECT_EQ(before->tail, 12u);  // 200..209 and the new values of 10 and 20
      EXPECT_EQ(after->tail, 11u);   // less 205's entry
      EXPECT_EQ(after->nodes, 200u);
    }
  }
  ExpectVerifies();
  // Retention keeps only the compacted heads: the segments before it are reclaimed.
  const std::set<ObjectId> stored = Objects();
  GcOptions o;
  o.grace_ms = 0;
  o.no_writers_running = true;
  o.keep_last = 1;
  o.now_unix_ms = NowMs() + 1000;
  GcReport gr;
  ASSERT_TRUE(CollectGarbage(*store_, o, &gr).ok());
  ASSERT_EQ(gr.pruned_versions, 2u);
  std::set<ObjectId> reclaimed = stored;
  for (const ObjectId& id : Objects()) reclaimed.erase(id);
  ASSERT_GT(reclaimed.size(), 50u);
  ExpectVerifies();

  // A fresh handle (no cache) that records what it reads.
  auto recorder = std::make_shared<ReadRecorder>(
      std::shared_ptr<ObjectBackend>(store_, &store_->object_backend()));
  std::shared_ptr<Store> reading = Store::FromBackends(
      "recorded://", recorder, std::shared_ptr<RefBackend>(store_, &store_->ref_backend()));
  for (const char* branch : {"main", "graph"}) {
    auto d = Dataset::Open(reading, "d", branch);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    SearchOptions exact;
    exact.exact = true;
    exact.k = 1000;
    auto brute = (*d)->Search("emb", queries.data(), nq, kFixtureDim, exact);
    ASSERT_TRUE(brute.ok()) << brute.status().ToString();
    SearchOptions so;
    so.k = 20;
    so.nprobe = 4;  // every cell: exact (spec/21 §6.2)
    so.ef = 1000;   // the graph: a beam wider than the graph
    auto got = (*d)->Search("emb", queries.data(), nq, kFixtureDim, so);
    ASSERT_TRUE(got.ok()) << branch << ": " << got.status().ToString();
    ASSERT_TRUE(got->used_index);
    for (size_t q = 0; q < nq; ++q) {
      std::map<uint64_t, float> score;  // every live record's exact score
      for (uint64_t i = brute->offsets[q]; i < brute->offsets[q + 1]; ++i) {
        score[brute->anchors[i]] = brute->scores[i];
      }
      ASSERT_EQ(score.size(), 207u);  // 210 records less 3 deleted
      ASSERT_EQ(got->offsets[q + 1] - got->offsets[q], 20u);
      for (uint64_t i = got->offsets[q]; i < got->offsets[q + 1]; ++i) {
        const uint64_t hit = got->anchors[i];
        ASSERT_EQ(score.count(hit), 1u) << branch << " query " << q << " returned " << hit;
        EXPECT_NEAR(got->scores[i], score[hit], 1e-5) << branch << " query " << q << " " << hit;
        // The ranks agree with brute force (ties aside).
        EXPECT_NEAR(got->scores[i], brute->scores[brute->offsets[q] + i - got->offsets[q]], 1e-5)
            << branch << " query " << q << " rank " << i - got->offsets[q];
      }
    }
  }
  std::vector<std::string> read_reclaimed;
  for (const ObjectId& id : recorder->read()) {
    if (reclaimed.count(id) != 0) read_reclaimed.push_back(id.ToString());
  }
  EXPECT_EQ(read_reclaimed, std::vector<std::string>{});
}

TEST_P(Compact, ConcurrentCommitRestartsCompactionAndKeepsTheCommit) {
  ManySmallCommits(20);
  auto writer = *Dataset::Open(store_, "d");
  int commits = 0;
  CompactOptions o;
  o.progress = [&](std::string_view phase, uint64_t) {
    // A concurrent writer lands once, between the segments and the swap of attempt 1.
    if (phase == "commit" && commits++ == 0) {
      ASSERT_TRUE(writer->AppendMany(FixtureRows(writer->schema(), 1, 4242)).ok());
    }
  };
  CompactReport r;
  auto c = ds_->Compact(o, &r);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(c->parents, std::vector<ObjectId>{writer->head()});
  EXPECT_EQ(ReadAll(*ds_), ReadAt(store_, writer->head().ToString()));
  auto t = ds_->Take({20}, {"label"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->columns[0].Int64At(0), 4242000);
  ExpectVerifies();
}

TEST_P(Compact, WriterLandingDuringEveryAttemptMakesItFailCleanly) {
  ManySmallCommits(10);
  auto writer = *Dataset::Open(store_, "d");
  CompactOptions o;
  o.max_attempts = 2;
  int seed = 0;
  o.progress = [&](std::string_view phase, uint64_t) {
    if (phase == "commit") {
      ASSERT_TRUE(writer->AppendMany(FixtureRows(writer->schema(), 1, 7000 + seed++)).ok());
    }
  };
  auto c = ds_->Compact(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kConflict) << c.status().ToString();
  EXPECT_NE(c.status().message().find("nothing was changed"), std::string::npos);
  ASSERT_TRUE(ds_->Refresh().ok());
  EXPECT_EQ(ds_->head(), writer->head());
  ExpectVerifies();
  // The failed attempts removed the segments they created: a GC finds only the index
  // pages of the lost attempts (and nothing it must keep is missing).
  CompactReport r;
  ASSERT_TRUE(ds_->Compact({}, &r).ok());
  EXPECT_TRUE(r.changed);
}

TEST_P(Compact, DroppedFieldValuesAndDeletedRecordsAreNoLongerReached) {
  ManySmallCommits(12);
  auto next = ds_->schema().WithDroppedField("raw");
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(ds_->EvolveSchema(*next).ok());
  const std::string before = ReadAll(*ds_);
  CompactReport r;
  ASSERT_TRUE(ds_->Compact({}, &r).ok());
  EXPECT_EQ(r.segments_after, 4u);  // emb, label, name, score: raw's values are gone
  EXPECT_EQ(ReadAll(*ds_), before);
  ExpectVerifies();
}

TEST_P(Compact, ReadOnlyHandleIsRefused) {
  ManySmallCommits(8);
  auto ro = *Dataset::OpenAt(store_, "d", ds_->head().ToString());
  auto c = ro->Compact();
  EXPECT_EQ(c.status().code(), StatusCode::kPermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(Stores, Compact, ::testing::Values("memory://", "file"),
                         [](const auto& info) {
                           return info.param == "file" ? std::string("file")
                                                       : std::string("memory");
                         });

}  // namespace
}  // namespace dreamdb
