// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The sharded index build (spec/14-semantics.md §19.10, spec/21-spatial-index.md §8.8):
// a train stage, M shards and one commit publish the index object a one-machine build
// writes on the same base with the same seed (ivf and imi, RaBitQ and PQ4, M = 1, 3, 4),
// with equal searches (and above flush_bytes, the same entries and searches); re-runs of
// every stage change nothing; a missing shard is named; a branch that moved between the
// stages gets the records written since; GC between the stages keeps the job's objects;
// a sharded rebuild equals RebuildIndex.

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "dreamdb/jobs.h"
#include "dreamdb/search.h"
#include "dreamdb/store.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 16;

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  return s;
}

// n vectors around 12 seeded cluster centres.
std::vector<float> Vectors(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> centers(12 * kDim);
  std::mt19937_64 crng(7);
  for (auto& c : centers) c = g(crng) * 3;
  std::vector<float> v(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng() % 12;
    for (size_t d = 0; d < kDim; ++d) v[i * kDim + d] = centers[c * kDim + d] + g(rng);
  }
  return v;
}

Batch MakeBatch(const std::vector<float>& v) {
  Schema s = TestSchema();
  Batch b;
  Column emb(*s.Find("emb"));
  for (size_t i = 0; i < v.size() / kDim; ++i) {
    emb.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
  }
  b.columns.push_back(std::move(emb));
  return b;
}

class IndexJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ds = Dataset::Create(store_, "d", TestSchema());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(*ds);
    // Three appends (three segments), some deletes.
    for (uint64_t part = 0; part < 3; ++part) {
      ASSERT_TRUE(ds_->AppendMany(MakeBatch(Vectors(700, 11 + part))).ok());
    }
    ASSERT_TRUE(ds_->Delete({3, 500, 1401}).ok());
  }

  // Runs a whole job: train, shards 0..of-1 (in reverse order), commit.
  IndexJobReport RunJob(const std::string& job, uint32_t of, const BuildIndexOptions& o,
                        const std::string& branch = "main") {
    auto t = TrainIndexJob(store_, "d", job, branch, "emb", of, o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    for (uint32_t n = of; n-- > 0;) {
      auto s = RunIndexShard(store_, "d", job, ShardIndex{n, of, "test"});
      EXPECT_TRUE(s.ok()) << s.status().ToString();
    }
    auto c = CommitIndexJob(store_, "d", job, o);  // o's calibration settings
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : IndexJobReport{};
  }

  SearchResults Search(Dataset& ds) {
    const std::vector<float> q = Vectors(20, 99);
    auto r = ds.Search("emb", q.data(), 20, kDim, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->used_index);
    return *r;
  }

  std::shared_ptr<Store> store_ = std::shared_ptr<Store>(*Store::Open("memory://"));
  std::unique_ptr<Dataset> ds_;
};

struct Config {
  const char* algorithm;
  const char* quantizer;
};

TEST_F(IndexJobTest, ShardedBuildPublishesTheIndexObjectOfAOneMachineBuild) {
  const Config configs[] = {{"ivf", "rabitq"}, {"ivf", "pq4"}, {"imi", "rabitq"}, {"imi", "pq4"}};
  int branch = 0;
  for (const Config& c : configs) {
    BuildIndexOptions o;
    o.algorithm = c.algorithm;
    o.quantizer = c.quantizer;
    o.seed = 42;
    o.calibration_queries = 50;  // a smaller calibration sample keeps the ASan run short
    // The one-machine build, on a branch at the same head.
    const std::string single = "single-" + std::to_string(branch);
    ASSERT_TRUE(ds_->Branch(single).ok());
    auto sds = Dataset::Open(store_, "d", single);
    ASSERT_TRUE(sds.ok());
    ASSERT_TRUE((*sds)->BuildIndex("emb", o).ok());
    auto want = (*sds)->IndexStatus("emb");
    ASSERT_TRUE(want.ok());
    const SearchResults want_hits = Search(**sds);
    for (uint32_t of : {1u, 3u, 4u}) {
      SCOPED_TRACE(std::string(c.algorithm) + "/" + c.quantizer + " of " + std::to_string(of));
      const std::string b = "sharded-" + std::to_string(branch) + "-" + std::to_string(of);
      ASSERT_TRUE(ds_->Branch(b).ok());
      const std::string job = "j" + std::to_string(branch) + "-" + std::to_string(of);
      IndexJobReport r = RunJob(job, of, o, b);
      EXPECT_FALSE(r.already_done);
      EXPECT_EQ(r.index, want->index);
      auto got_ds = Dataset::Open(store_, "d", b);
      ASSERT_TRUE(got_ds.ok());
      auto got = (*got_ds)->IndexStatus("emb");
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(got->index, want->index);
      EXPECT_EQ(got->entries, want->entries);
      EXPECT_EQ(got->buckets, want->buckets);
      const SearchResults hits = Search(**got_ds);
      EXPECT_EQ(hits.anchors, want_hits.anchors);
      EXPECT_EQ(hits.scores, want_hits.scores);
    }
    ++branch;
  }
}

TEST_F(IndexJobTest, RerunsOfEveryStageChangeNothing) {
  BuildIndexOptions o;
  o.seed = 5;
  IndexJobReport first = RunJob("again", 3, o);
  const ObjectId head = ds_->head();
  ASSERT_TRUE(ds_->Refresh().ok());
  const ObjectId after = ds_->head();
  EXPECT_NE(head, after);
  EXPECT_EQ(after, first.manifest);
  auto t = TrainIndexJob(store_, "d", "again", "main", "emb", 3, o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->already_done);
  auto s = RunIndexShard(store_, "d", "again", ShardIndex{1, 3, "test"});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->already_done);
  auto c = CommitIndexJob(store_, "d", "again");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->already_done);
  EXPECT_EQ(c->manifest, first.manifest);
  EXPECT_EQ(c->index, first.index);
  // `dreamdb commit --job` reaches the same commit.
  auto j = CommitJob(store_, "d", "again");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_TRUE(j->already_committed);
  EXPECT_EQ(j->field, "emb");
  ASSERT_TRUE(ds_->Refresh().ok());
  EXPECT_EQ(ds_->head(), after);
  // The job's state: trained, all shards finished, committed.
  auto st = ReadJobStatus(*store_, "d", "again");
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->trained.has_value());
  EXPECT_EQ(st->finished.size(), 3u);
  EXPECT_TRUE(st->committed.has_value());
}

TEST_F(IndexJobTest, ACommitWithAMissingShardNamesItAndLandsNothing) {
  BuildIndexOptions o;
  ASSERT_TRUE(TrainIndexJob(store_, "d", "gap", "main", "emb", 3, o).ok());
  ASSERT_TRUE(RunIndexShard(store_, "d", "gap", ShardIndex{0, 3, "test"}).ok());
  ASSERT_TRUE(RunIndexShard(store_, "d", "gap", ShardIndex{2, 3, "test"}).ok());
  const ObjectId head = ds_->head();
  auto c = CommitIndexJob(store_, "d", "gap");
  ASSERT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("shard 1 of 3 has not finished"), std::string::npos)
      << c.status().message();
  ASSERT_TRUE(ds_->Refresh().ok());
  EXPECT_EQ(ds_->head(), head);
  // A shard of another count, and a shard before the train stage, are refused by name.
  auto wrong = RunIndexShard(store_, "d", "gap", ShardIndex{1, 4, "--of"});
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("planned with 3 shards"), std::string::npos);
  auto early = RunIndexShard(store_, "d", "untrained", ShardIndex{0, 2, "test"});
  EXPECT_EQ(early.status().code(), StatusCode::kNotFound);
  EXPECT_NE(early.status().message().find("train stage"), std::string::npos);
  ASSERT_TRUE(RunIndexShard(store_, "d", "gap", ShardIndex{1, 3, "test"}).ok());
  EXPECT_TRUE(CommitIndexJob(store_, "d", "gap").ok());
}

TEST_F(IndexJobTest, ABranchThatMovedBetweenStagesGetsTheRecordsWrittenSince) {
  BuildIndexOptions o;
  ASSERT_TRUE(TrainIndexJob(store_, "d", "moved", "main", "emb", 2, o).ok());
  ASSERT_TRUE(RunIndexShard(store_, "d", "moved", ShardIndex{0, 2, "test"}).ok());
  ASSERT_TRUE(ds_->AppendMany(MakeBatch(Vectors(50, 77))).ok());  // after the base
  ASSERT_TRUE(RunIndexShard(store_, "d", "moved", ShardIndex{1, 2, "test"}).ok());
  auto c = CommitIndexJob(store_, "d", "moved");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // Built on the base, committed on the moved head: the 50 records are assigned as an
  // append would assign them (spec/21 §8.2).
  ASSERT_TRUE(ds_->Refresh().ok());
  auto st = ds_->IndexStatus("emb");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->live, 2100u - 3u + 50u);
  EXPECT_EQ(st->entries, st->live);
  EXPECT_EQ(st->stale, 0u);
}

TEST_F(IndexJobTest, AShardedRebuildEqualsRebuildIndex) {
  BuildIndexOptions o;
  o.algorithm = "imi";
  o.seed = 9;
  ASSERT_TRUE(ds_->BuildIndex("emb", o).ok());
  ASSERT_TRUE(ds_->AppendMany(MakeBatch(Vectors(300, 5))).ok());
  ASSERT_TRUE(ds_->Branch("one").ok());
  auto one = Dataset::Open(store_, "d", "one");
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->RebuildIndex("emb").ok());
  auto want = (*one)->IndexStatus("emb");
  ASSERT_TRUE(want.ok());
  auto stored = StoredIndexOptions(store_, "d", "main", "emb");
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->algorithm, "imi");
  EXPECT_EQ(stored->seed, 9u);
  IndexJobReport r = RunJob("rebuild", 3, *stored);
  EXPECT_EQ(r.index, want->index);
  EXPECT_EQ(StoredIndexOptions(store_, "d", "main", "nope").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(IndexJobTest, GcBetweenTheStagesKeepsTheJobsObjects) {
  // The job's refs name job-state manifests, so GC walks the trained model, the shards'
  // pages and buckets as it walks any version (a ref naming an index object directly
  // would keep that object alone).
  BuildIndexOptions o;
  o.seed = 2;
  ASSERT_TRUE(ds_->Branch("one").ok());
  auto one = Dataset::Open(store_, "d", "one");
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->BuildIndex("emb", o).ok());
  auto want = (*one)->IndexStatus("emb");
  ASSERT_TRUE(want.ok());
  ASSERT_TRUE(TrainIndexJob(store_, "d", "gc", "main", "emb", 2, o).ok());
  auto collect = [&] {
    GcOptions g;
    g.grace_ms = 0;
    g.no_writers_running = true;
    g.now_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() +
                    1000;
    GcReport r;
    Status s = CollectGarbage(*store_, g, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(r.problems.empty());
  };
  collect();
  ASSERT_TRUE(RunIndexShard(store_, "d", "gc", ShardIndex{0, 2, "test"}).ok());
  ASSERT_TRUE(RunIndexShard(store_, "d", "gc", ShardIndex{1, 2, "test"}).ok());
  collect();
  auto c = CommitIndexJob(store_, "d", "gc");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->index, want->index);
  auto v = Verify(*store_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty()) << (v->problems.empty() ? "" : v->problems[0]);
}

TEST_F(IndexJobTest, AboveFlushBytesTheEntriesAndSearchesStillMatch) {
  // A one-machine build that reaches flush_bytes splits cells into several buckets at
  // chunk boundaries; the sharded commit writes one bucket per cell (spec/21 §8.8): other
  // bucket and index ids, the same entries and the same search results.
  BuildIndexOptions o;
  o.seed = 6;
  o.chunk_rows = 256;
  o.flush_bytes = 4096;
  ASSERT_TRUE(ds_->Branch("one").ok());
  auto one = Dataset::Open(store_, "d", "one");
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->BuildIndex("emb", o).ok());
  auto want = (*one)->IndexStatus("emb");
  ASSERT_TRUE(want.ok());
  RunJob("flush", 3, o);
  ASSERT_TRUE(ds_->Refresh().ok());
  auto got = ds_->IndexStatus("emb");
  ASSERT_TRUE(got.ok());
  EXPECT_NE(got->index, want->index);
  EXPECT_EQ(got->model, want->model);
  EXPECT_EQ(got->entries, want->entries);
  EXPECT_LT(got->buckets, want->buckets);
  const SearchResults a = Search(*ds_), b = Search(**one);
  EXPECT_EQ(a.anchors, b.anchors);
  EXPECT_EQ(a.scores, b.scores);
}

TEST_F(IndexJobTest, AGraphIndexIsNotShardedAndSaysSo) {
  BuildIndexOptions o;
  o.algorithm = "graph";
  auto t = TrainIndexJob(store_, "d", "g", "main", "emb", 2, o);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("cannot be sharded"), std::string::npos);
  // Refused before the plan: the job id is still free, with the same or other shards.
  auto st = ReadJobStatus(*store_, "d", "g");
  EXPECT_EQ(st.status().code(), StatusCode::kNotFound);
  o.algorithm = "ivf";
  EXPECT_TRUE(TrainIndexJob(store_, "d", "g", "main", "emb", 3, o).ok());
}

TEST_F(IndexJobTest, IngestAndIndexJobsDoNotShareAnId) {
  BuildIndexOptions o;
  ASSERT_TRUE(TrainIndexJob(store_, "d", "ix", "main", "emb", 2, o).ok());
  auto ingest = ShardRun::Begin(store_, "d", "ix", "main", ShardIndex{0, 2, "test"});
  EXPECT_EQ(ingest.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ingest.status().message().find("is an index build"), std::string::npos);
  auto run = ShardRun::Begin(store_, "d", "ing", "main", ShardIndex{0, 1, "test"});
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE((*run)->Finish().ok());
  auto train = TrainIndexJob(store_, "d", "ing", "main", "emb", 1, o);
  EXPECT_EQ(train.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(train.status().message().find("is a sharded ingest"), std::string::npos);
}

}  // namespace
}  // namespace dreamdb
