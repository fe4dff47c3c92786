// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Compaction (spec/14-semantics.md §18): content unchanged, segments and pages fewer,
// spatial indexes carried over, verify clean, concurrent writers, GC afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 8;

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("name", true).ok());
  EXPECT_TRUE(s.AddBlob("raw", "application/octet-stream", true).ok());
  return s;
}

// n records; record i of seed s has distinct values in every field (name null when i % 5 == 3).
Batch Rows(const Schema& s, size_t n, uint64_t seed, const std::vector<uint64_t>& anchors = {}) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  Batch b;
  b.anchors = anchors;
  Column emb(*s.Find("emb")), label(*s.Find("label")), name(*s.Find("name")), raw(*s.Find("raw"));
  std::vector<float> v(kDim);
  for (size_t i = 0; i < n; ++i) {
    for (auto& x : v) x = g(rng) + float(i % 4) * 3;
    emb.AppendFloats(std::span<const float>(v));
    label.AppendInt64(static_cast<int64_t>(seed * 1000 + i));
    if (i % 5 == 3) {
      name.AppendNull();
    } else {
      name.AppendBytes("r" + std::to_string(seed) + "-" + std::to_string(i));
    }
    raw.AppendBytes("blob-" + std::to_string(seed) + "-" + std::to_string(i));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  b.columns.push_back(std::move(name));
  b.columns.push_back(std::move(raw));
  return b;
}

// Every field of every record of a version, as text (floats bit-exact).
std::string ReadAll(Dataset& ds) {
  auto reader = ds.Scan();
  if (!reader.ok()) return "scan: " + reader.status().ToString();
  std::string out;
  while (true) {
    auto b = (*reader)->Next();
    if (!b.ok()) return "next: " + b.status().ToString();
    if (!*b) break;
    const Batch& batch = **b;
    for (uint64_t r = 0; r < batch.num_rows(); ++r) {
      out += std::to_string(batch.anchors[r]) + ":";
      for (const auto& c : batch.columns) {
        out += c.field().name + "=";
        if (!c.IsValid(r)) {
          out += "null,";
        } else if (c.type() == FieldType::kEmbedding) {
          for (float f : c.FloatsAt(r)) {
            uint32_t bits;
            std::memcpy(&bits, &f, sizeof bits);
            out += std::to_string(bits) + " ";
          }
        } else if (c.type() == FieldType::kInt64) {
          out += std::to_string(c.Int64At(r)) + ",";
        } else {
          out += std::string(c.BytesAt(r)) + ",";
        }
      }
      out += "\n";
    }
  }
  return out;
}

std::string ReadAt(const std::shared_ptr<Store>& store, const ObjectId& version) {
  auto ds = Dataset::OpenAt(store, "d", version.ToString());
  if (!ds.ok()) return "open: " + ds.status().ToString();
  return ReadAll(**ds);
}

class Compact : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string uri = GetParam();
    if (uri == "file") {
      dir_ = std::filesystem::temp_directory_path() /
             ("dreamdb_compact_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::filesystem::remove_all(dir_);
      uri = "file://" + dir_.string();
    }
    auto s = Store::Open(uri);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::shared_ptr<Store>(std::move(*s));
    auto ds = Dataset::Create(store_, "d", TestSchema());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(*ds);
  }
  void TearDown() override {
    ds_.reset();
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // `n` one-record commits, then replacements, deletes and a layer: a fragmented head.
  void ManySmallCommits(size_t n) {
    const Schema s = ds_->schema();
    for (size_t i = 0; i < n; ++i) {
      auto c = ds_->AppendMany(Rows(s, 1, 100 + i));
      ASSERT_TRUE(c.ok()) << c.status().ToString();
    }
    ASSERT_TRUE(ds_->AppendMany(Rows(s, 3, 7, {1, 5, 9})).ok());  // replaced values
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

  void ExpectVerifies() {
    auto v = Verify(*store_, "d");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_TRUE(v->problems.empty()) << v->problems.front();
  }

  std::filesystem::path dir_;
  std::shared_ptr<Store> store_;
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
  EXPECT_EQ(ReadAt(store_, old_head), before);
  ExpectVerifies();
  // Deleted anchors stay deleted; automatic anchors continue after the old ones.
  auto took = ds_->Take({2}, {"label"});
  EXPECT_EQ(took.status().code(), StatusCode::kNotFound);
  auto next = ds_->AppendMany(Rows(ds_->schema(), 1, 999));
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
  auto empty = Dataset::Create(store_, "e", TestSchema());
  ASSERT_TRUE(empty.ok());
  CompactReport er;
  ASSERT_TRUE((*empty)->Compact({}, &er).ok());
  EXPECT_FALSE(er.changed);
}

TEST_P(Compact, SpatialIndexesSurviveWithTheSameResults) {
  const Schema s = ds_->schema();
  ASSERT_TRUE(ds_->AppendMany(Rows(s, 200, 1)).ok());
  ASSERT_TRUE(ds_->Branch("graph").ok());
  auto graph = *Dataset::Open(store_, "d", "graph");
  BuildIndexOptions ivf;
  ivf.cells = 4;
  ASSERT_TRUE(ds_->BuildIndex("emb", ivf).ok());
  BuildIndexOptions g;
  g.algorithm = "graph";
  ASSERT_TRUE(graph->BuildIndex("emb", g).ok());
  for (Dataset* d : {ds_.get(), graph.get()}) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(d->AppendMany(Rows(s, 1, 500 + i)).ok());
    ASSERT_TRUE(d->AppendMany(Rows(s, 2, 9, {10, 20})).ok());  // replaced vectors
    ASSERT_TRUE(d->Delete({30, 31}).ok());
  }
  std::vector<float> queries;
  for (uint64_t a : {0, 10, 40, 205}) {
    auto t = ds_->Take({a}, {"emb"});
    ASSERT_TRUE(t.ok());
    auto f = t->columns[0].FloatsAt(0);
    queries.insert(queries.end(), f.begin(), f.end());
  }
  const size_t nq = queries.size() / kDim;
  SearchOptions so;
  so.k = 10;
  for (Dataset* d : {ds_.get(), graph.get()}) {
    auto before = d->Search("emb", queries.data(), nq, kDim, so);
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    ASSERT_TRUE(before->used_index);
    auto status_before = d->IndexStatus("emb");
    ASSERT_TRUE(status_before.ok());
    CompactReport r;
    auto c = d->Compact({}, &r);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(r.spatial_indexes, 1u);
    auto after = d->Search("emb", queries.data(), nq, kDim, so);
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_TRUE(after->used_index);
    EXPECT_EQ(after->anchors, before->anchors) << d->branch();
    EXPECT_EQ(after->scores, before->scores) << d->branch();
    auto status_after = d->IndexStatus("emb");
    ASSERT_TRUE(status_after.ok());
    EXPECT_EQ(status_after->live, status_before->live);
    EXPECT_EQ(status_after->entries, status_before->entries);
    EXPECT_EQ(status_after->model, status_before->model);  // no retraining
    EXPECT_NE(status_after->index, status_before->index);
    // Exact search agrees with the index's top hit (the query records themselves).
    SearchOptions exact = so;
    exact.exact = true;
    auto brute = d->Search("emb", queries.data(), nq, kDim, exact);
    ASSERT_TRUE(brute.ok());
    for (size_t q = 0; q < nq; ++q) {
      EXPECT_EQ(after->anchors[after->offsets[q]], brute->anchors[brute->offsets[q]]);
    }
  }
  ExpectVerifies();
}

TEST_P(Compact, ConcurrentCommitRestartsCompactionAndKeepsTheCommit) {
  ManySmallCommits(20);
  auto writer = *Dataset::Open(store_, "d");
  int commits = 0;
  CompactOptions o;
  o.progress = [&](std::string_view phase, uint64_t) {
    // A concurrent writer lands once, between the segments and the swap of attempt 1.
    if (phase == "commit" && commits++ == 0) {
      ASSERT_TRUE(writer->AppendMany(Rows(writer->schema(), 1, 4242)).ok());
    }
  };
  CompactReport r;
  auto c = ds_->Compact(o, &r);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(c->parents, std::vector<ObjectId>{writer->head()});
  EXPECT_EQ(ReadAll(*ds_), ReadAt(store_, writer->head()));
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
      ASSERT_TRUE(writer->AppendMany(Rows(writer->schema(), 1, 7000 + seed++)).ok());
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
