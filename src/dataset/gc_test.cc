// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Garbage collection and reader leases (spec/06-refs.md §6, §8), on memory:// and file://.
#include "dreamdb/gc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <span>
#include <thread>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 8;
constexpr int64_t kHourMs = 3600 * 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("name", true).ok());
  return s;
}

Batch Rows(const Schema& s, size_t n, uint64_t seed, const std::vector<uint64_t>& anchors = {}) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  Batch b;
  b.anchors = anchors;
  Column emb(*s.Find("emb")), label(*s.Find("label")), name(*s.Find("name"));
  std::vector<float> v(kDim);
  for (size_t i = 0; i < n; ++i) {
    for (auto& x : v) x = g(rng) + float(i % 4) * 3;
    emb.AppendFloats(std::span<const float>(v));
    label.AppendInt64(static_cast<int64_t>(seed * 1000 + i));
    name.AppendBytes("r" + std::to_string(seed) + "-" + std::to_string(i));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  b.columns.push_back(std::move(name));
  return b;
}

// Every field of every record of a version, as text: reading it fetches every segment.
std::string ReadAll(const std::shared_ptr<Store>& store, const std::string& version) {
  auto ds = Dataset::OpenAt(store, "d", version);
  if (!ds.ok()) return "open: " + ds.status().ToString();
  auto reader = (*ds)->Scan();
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
        if (!c.IsValid(r)) {
          out += "null,";
        } else if (c.type() == FieldType::kEmbedding) {
          for (float f : c.FloatsAt(r)) out += std::to_string(f) + " ";
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

class Gc : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string uri = GetParam();
    if (uri == "file") {
      dir_ = std::filesystem::temp_directory_path() /
             ("dreamdb_gc_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
      std::filesystem::remove_all(dir_);
      uri = "file://" + dir_.string();
    }
    auto s = Store::Open(uri);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::shared_ptr<Store>(std::move(*s));
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // GC as if run `later_ms` from now with the given grace (no writers are running). One
  // second on by default, so that with grace 0 everything written so far is past it.
  GcReport Collect(int64_t grace_ms, int64_t later_ms = 1000, bool dry_run = false) {
    GcOptions o;
    o.grace_ms = grace_ms;
    o.no_writers_running = true;
    o.dry_run = dry_run;
    o.now_unix_ms = NowMs() + later_ms;
    GcReport r;
    Status s = CollectGarbage(*store_, o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(r.found_objects,
              r.reachable_objects + r.leased_objects + r.young_objects + r.deleted_objects);
    EXPECT_EQ(r.found_bytes, r.reachable_bytes + r.leased_bytes + r.young_bytes + r.deleted_bytes);
    return r;
  }

  std::set<ObjectId> Objects() {
    std::set<ObjectId> out;
    EXPECT_TRUE(store_
                    ->ListObjects("",
                                  [&](const ObjectInfo& o) {
                                    out.insert(o.id);
                                    return true;
                                  })
                    .ok());
    return out;
  }

  std::unique_ptr<Dataset> MakeDataset() {
    auto ds = Dataset::Create(store_, "d", TestSchema());
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_TRUE((*ds)->AppendMany(Rows((*ds)->schema(), 200, 1)).ok());
    return std::move(*ds);
  }

  void ExpectVerifies() {
    auto v = Verify(*store_);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_TRUE(v->problems.empty()) << v->problems.front();
  }

  std::filesystem::path dir_;
  std::shared_ptr<Store> store_;
};

TEST_P(Gc, NeverDeletesAnythingReachable) {
  auto main = MakeDataset();
  const Schema s = main->schema();
  BuildIndexOptions ivf;
  ivf.cells = 4;
  ASSERT_TRUE(main->BuildIndex("emb", ivf).ok());
  ASSERT_TRUE(main->Snapshot("v1").ok());
  ASSERT_TRUE(main->Branch("exp").ok());
  auto exp = *Dataset::Open(store_, "d", "exp");
  ASSERT_TRUE(exp->AppendMany(Rows(s, 50, 2)).ok());
  ASSERT_TRUE(exp->Delete({100, 101, 102}).ok());  // tombstones
  ASSERT_TRUE(main->AppendMany(Rows(s, 20, 3, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                               10, 11, 12, 13, 14, 15, 16, 17, 18, 19}))
                  .ok());  // replaced values
  auto merged = main->Merge("exp");
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  FieldSpec layer;
  layer.name = "score";
  layer.type = FieldType::kInt64;
  layer.optional = true;
  Column score(layer);
  score.AppendInt64(7);
  score.AppendInt64(8);
  ASSERT_TRUE(main->AddLayer(layer, {30, 31}, score).ok());
  ASSERT_TRUE(main->Branch("graph").ok());
  auto graph = *Dataset::Open(store_, "d", "graph");
  BuildIndexOptions g;
  g.algorithm = "graph";
  ASSERT_TRUE(graph->BuildIndex("emb", g).ok());
  ASSERT_TRUE(graph->AppendMany(Rows(s, 10, 4)).ok());

  // Every version of every branch, read back in full before GC.
  std::map<ObjectId, std::string> before;
  for (const auto* ds : {main.get(), exp.get(), graph.get()}) {
    ASSERT_TRUE(ds->History([&](const CommitInfo& c) {
                    before.emplace(c.manifest, ReadAll(store_, c.manifest.ToString()));
                    return true;
                  }).ok());
  }
  ASSERT_GE(before.size(), 8u);

  GcReport r = Collect(/*grace_ms=*/0);
  EXPECT_GT(r.reachable_objects, 0u);
  EXPECT_EQ(r.refs, 4u);  // main, exp, graph, v1
  ExpectVerifies();
  for (const auto& [id, text] : before) {
    EXPECT_EQ(ReadAll(store_, id.ToString()), text) << "version " << id.ToString();
  }
  SearchOptions so;
  so.k = 5;
  auto q = main->Take({40}, {"emb"});
  ASSERT_TRUE(q.ok());
  std::vector<float> query(q->columns[0].FloatsAt(0).begin(), q->columns[0].FloatsAt(0).end());
  for (const auto* ds : {main.get(), graph.get()}) {
    auto res = ds->Search("emb", query.data(), 1, kDim, so);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->anchors.front(), 40u);
  }
}

TEST_P(Gc, ReclaimsAbandonedCommitAndDeletedBranch) {
  auto main = MakeDataset();
  ASSERT_TRUE(main->Branch("tmp").ok());
  auto tmp = *Dataset::Open(store_, "d", "tmp");
  ASSERT_TRUE(tmp->AppendMany(Rows(main->schema(), 30, 9)).ok());
  const std::set<ObjectId> with_tmp = Objects();
  ASSERT_TRUE(store_->DeleteRef("d/branches/tmp", tmp->head()).ok());
  // An abandoned commit: objects put, ref never moved.
  auto orphan = store_->Put(std::string_view("a segment no manifest ever named"));
  ASSERT_TRUE(orphan.ok());

  GcReport kept = Collect(/*grace_ms=*/48 * kHourMs);
  EXPECT_EQ(kept.deleted_objects, 0u);
  EXPECT_GE(kept.young_objects, 3u);  // tmp's manifest, its segments and pages, the orphan
  EXPECT_EQ(Objects().size(), with_tmp.size() + 1);

  GcReport r = Collect(/*grace_ms=*/0);
  EXPECT_EQ(r.deleted_objects, kept.young_objects);
  EXPECT_GT(r.deleted_bytes, 0u);
  EXPECT_FALSE(*store_->Contains(*orphan));
  EXPECT_FALSE(*store_->Contains(tmp->head()));
  EXPECT_EQ(Objects().size(), with_tmp.size() + 1 - r.deleted_objects);
  ExpectVerifies();
  EXPECT_EQ(ReadAll(store_, "main").size(), ReadAll(store_, main->head().ToString()).size());
}

TEST_P(Gc, KeepsYoungObjects) {
  MakeDataset();
  auto orphan = store_->Put(std::string_view("written a moment ago"));
  GcOptions o;
  o.grace_ms = kHourMs;
  GcReport r;
  ASSERT_TRUE(CollectGarbage(*store_, o, &r).ok());
  EXPECT_EQ(r.young_objects, 1u);
  EXPECT_EQ(r.deleted_objects, 0u);
  EXPECT_TRUE(*store_->Contains(*orphan));
  // Two hours later the same object is past the grace period.
  r = Collect(kHourMs, /*later_ms=*/2 * kHourMs);
  EXPECT_EQ(r.deleted_objects, 1u);
  EXPECT_FALSE(*store_->Contains(*orphan));
}

TEST_P(Gc, LeaseKeepsAManifestAfterItsBranchIsDeleted) {
  auto main = MakeDataset();
  ASSERT_TRUE(main->Branch("run").ok());
  auto run = *Dataset::Open(store_, "d", "run");
  ASSERT_TRUE(run->AppendMany(Rows(main->schema(), 40, 5)).ok());
  const ObjectId pinned = run->head();
  const std::string text = ReadAll(store_, pinned.ToString());
  const int64_t expires = NowMs() / 1000 + 3600;
  auto lease = TakeLease(*store_, "d", "trainer-1", pinned, expires);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(*lease, "d/leases/trainer-1/" + std::to_string(expires));
  ASSERT_TRUE(store_->DeleteRef("d/branches/run", pinned).ok());

  GcReport r = Collect(/*grace_ms=*/0);
  EXPECT_EQ(r.leases, 1u);
  EXPECT_GE(r.leased_objects, 3u);
  EXPECT_EQ(r.deleted_objects, 0u);
  EXPECT_EQ(ReadAll(store_, pinned.ToString()), text);

  // Two hours on the lease has expired: GC deletes the lease ref and what only it reached.
  r = Collect(/*grace_ms=*/0, /*later_ms=*/2 * kHourMs);
  EXPECT_EQ(r.leases, 0u);
  EXPECT_EQ(r.expired_leases, 1u);
  EXPECT_GE(r.deleted_objects, 3u);
  EXPECT_FALSE(*store_->Contains(pinned));
  EXPECT_EQ(store_->ReadRef(*lease).status().code(), StatusCode::kNotFound);
  ExpectVerifies();
}

TEST_P(Gc, DryRunChangesNothing) {
  auto main = MakeDataset();
  ASSERT_TRUE(store_->Put(std::string_view("garbage one")).ok());
  ASSERT_TRUE(store_->Put(std::string_view("garbage two")).ok());
  const std::set<ObjectId> objects = Objects();
  GcReport dry = Collect(0, 1000, /*dry_run=*/true);
  EXPECT_TRUE(dry.dry_run);
  EXPECT_EQ(dry.deleted_objects, 2u);
  EXPECT_EQ(Objects(), objects);
  GcReport real = Collect(0);
  EXPECT_EQ(real.deleted_objects, dry.deleted_objects);
  EXPECT_EQ(real.deleted_bytes, dry.deleted_bytes);
  EXPECT_EQ(real.found_objects, dry.found_objects);
}

TEST_P(Gc, SecondRunIsIdempotent) {
  auto main = MakeDataset();
  ASSERT_TRUE(store_->Put(std::string_view("garbage")).ok());
  GcReport first = Collect(0);
  EXPECT_EQ(first.deleted_objects, 1u);
  GcReport second = Collect(0);
  EXPECT_EQ(second.deleted_objects, 0u);
  EXPECT_EQ(second.found_objects, first.found_objects - 1);
  EXPECT_EQ(second.reachable_objects, first.reachable_objects);
  ExpectVerifies();
}

TEST_P(Gc, MissingReachableObjectDeletesNothing) {
  auto main = MakeDataset();
  auto garbage = store_->Put(std::string_view("garbage"));
  // Remove one reachable object: the genesis.
  ObjectId victim;
  ASSERT_TRUE(store_
                  ->ListObjects("",
                                [&](const ObjectInfo& o) {
                                  if (o.id != *garbage && o.id != main->head()) victim = o.id;
                                  return victim == ObjectId();
                                })
                  .ok());
  ASSERT_TRUE(store_->DeleteObject(victim).ok());
  GcOptions o;
  o.grace_ms = 0;
  o.no_writers_running = true;
  GcReport r;
  Status s = CollectGarbage(*store_, o, &r);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_FALSE(r.problems.empty());
  EXPECT_EQ(r.deleted_objects, 0u);
  EXPECT_TRUE(*store_->Contains(*garbage));
}

TEST_P(Gc, KeepsTheTargetOfAPlainRef) {
  MakeDataset();
  auto raw = store_->Put(std::string_view("a raw object named by a plain ref"));
  ASSERT_TRUE(store_->CreateRef("pins/raw", *raw).ok());
  GcReport r = Collect(0);
  EXPECT_EQ(r.deleted_objects, 0u);
  EXPECT_TRUE(*store_->Contains(*raw));
}

TEST_P(Gc, ShortGraceNeedsNoWritersRunning) {
  GcOptions o;
  o.grace_ms = 60 * 1000;
  Status s = CollectGarbage(*store_, o, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("no writer"), std::string::npos) << s.ToString();
}

TEST_P(Gc, TwoGcsAtOnceBothFinishAndLoseNothing) {
  auto main = MakeDataset();
  ASSERT_TRUE(main->Branch("tmp").ok());
  auto tmp = *Dataset::Open(store_, "d", "tmp");
  ASSERT_TRUE(tmp->AppendMany(Rows(main->schema(), 30, 9)).ok());
  ASSERT_TRUE(store_->DeleteRef("d/branches/tmp", tmp->head()).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store_->Put("garbage " + std::to_string(i)).ok());
  const std::string text = ReadAll(store_, "main");
  GcReport a, b;
  std::thread ta([&] { a = Collect(0); });
  std::thread tb([&] { b = Collect(0); });
  ta.join();
  tb.join();
  EXPECT_EQ(a.reachable_objects, b.reachable_objects);
  EXPECT_EQ(Objects().size(), a.reachable_objects);
  ExpectVerifies();
  EXPECT_EQ(ReadAll(store_, "main"), text);
}

TEST_P(Gc, WritersCommittingDuringGcLoseNothing) {
  auto main = MakeDataset();
  const Schema s = main->schema();
  ASSERT_TRUE(main->Branch("b").ok());
  std::atomic<bool> done{false};
  std::atomic<int> runs{0};
  // A grace period far longer than one commit takes (milliseconds), as spec/06 §6.2 asks.
  std::thread gc([&] {
    while (!done) {
      GcOptions o;
      o.grace_ms = 2000;
      o.no_writers_running = true;  // the writers below finish a commit well within 2 s
      GcReport r;
      Status st = CollectGarbage(*store_, o, &r);
      EXPECT_TRUE(st.ok()) << st.ToString();
      ++runs;
    }
  });
  std::vector<std::thread> writers;
  for (const char* branch : {"main", "b"}) {
    writers.emplace_back([&, branch] {
      auto ds = *Dataset::Open(store_, "d", branch);
      for (int i = 0; i < 15; ++i) {
        auto c = ds->AppendMany(Rows(s, 5, 100 + i));
        EXPECT_TRUE(c.ok()) << c.status().ToString();
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  gc.join();
  EXPECT_GE(runs.load(), 1);
  ExpectVerifies();
  EXPECT_EQ((*Dataset::Open(store_, "d", "main"))->Count(), 200u + 75u);
  EXPECT_EQ((*Dataset::Open(store_, "d", "b"))->Count(), 200u + 75u);
  EXPECT_EQ(ReadAll(store_, "main").find("next:"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, Gc, ::testing::Values("memory://", "file"),
                         [](const auto& info) {
                           return info.param == "file" ? std::string("file")
                                                       : std::string("memory");
                         });

TEST(GcLease, NamesAndDurations) {
  EXPECT_EQ(*LeaseRefName("d", "h", 12), "d/leases/h/12");
  EXPECT_EQ(LeaseRefName("d", "a/b", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LeaseRefName("d", "snapshots", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LeaseRefName("d", "", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseDurationMs("0"), 0);
  EXPECT_EQ(*ParseDurationMs("90s"), 90000);
  EXPECT_EQ(*ParseDurationMs("30m"), 1800000);
  EXPECT_EQ(*ParseDurationMs("24h"), kDefaultGcGraceMs);
  EXPECT_EQ(*ParseDurationMs("7d"), 7 * 86400000LL);
  for (const char* bad : {"", "h", "10", "-1h", "1.5h", "1w", "01h", " 1h"}) {
    EXPECT_EQ(ParseDurationMs(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace dreamdb
