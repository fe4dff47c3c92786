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
#include "src/dataset/store_fixture_test_util.h"

namespace dreamdb {
namespace {

constexpr int64_t kHourMs = 3600 * 1000;

class Gc : public StoreFixture<::testing::TestWithParam<std::string>> {
 protected:
  void SetUp() override { OpenStore(GetParam(), "gc"); }

  // GC as if run `later_ms` from now with the given grace (no writers are running). One
  // second on by default, so that with grace 0 everything written so far is past it.
  GcReport Collect(int64_t grace_ms, int64_t later_ms = 1000, bool dry_run = false,
                   uint64_t mark_memory = kDefaultGcMarkMemory) {
    GcOptions o;
    o.mark_memory_bytes = mark_memory;
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

  std::unique_ptr<Dataset> MakeDataset() {
    auto ds = Dataset::Create(store_, "d", FixtureSchema(/*with_blob=*/false));
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_TRUE((*ds)->AppendMany(FixtureRows((*ds)->schema(), 200, 1)).ok());
    return std::move(*ds);
  }

  // A dataset with history, a spatial index and tombstones; a deleted branch, a branch
  // deleted while a lease holds its head, and an abandoned object: garbage and live data
  // of every kind. What the live refs and the lease read, to compare after a GC.
  struct Garbage {
    std::string main_text;
    ObjectId leased;
    std::string leased_text;
  };
  Garbage MakeGarbage() {
    auto main = MakeDataset();
    const Schema s = main->schema();
    BuildIndexOptions ivf;
    ivf.cells = 4;
    EXPECT_TRUE(main->BuildIndex("emb", ivf).ok());
    for (uint64_t i = 0; i < 12; ++i) EXPECT_TRUE(main->AppendMany(FixtureRows(s, 3, 10 + i)).ok());
    EXPECT_TRUE(main->Delete({5, 6}).ok());
    EXPECT_TRUE(main->Branch("tmp").ok());
    auto tmp = *Dataset::Open(store_, "d", "tmp");
    for (uint64_t i = 0; i < 6; ++i) EXPECT_TRUE(tmp->AppendMany(FixtureRows(s, 2, 40 + i)).ok());
    EXPECT_TRUE(main->Branch("run").ok());
    auto run = *Dataset::Open(store_, "d", "run");
    EXPECT_TRUE(run->AppendMany(FixtureRows(s, 4, 60)).ok());
    EXPECT_TRUE(TakeLease(*store_, "d", "trainer", run->head(), NowMs() / 1000 + 3600).ok());
    EXPECT_TRUE(store_->DeleteRef("d/branches/run", run->head()).ok());
    EXPECT_TRUE(store_->DeleteRef("d/branches/tmp", tmp->head()).ok());
    EXPECT_TRUE(store_->Put(std::string_view("an abandoned object")).ok());
    return {ReadAt(store_, "main"), run->head(), ReadAt(store_, run->head().ToString())};
  }
  void ExpectIntact(const Garbage& g) {
    ExpectVerifies();
    EXPECT_EQ(ReadAt(store_, "main"), g.main_text);
    EXPECT_EQ(ReadAt(store_, g.leased.ToString()), g.leased_text);
  }
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
  ASSERT_TRUE(exp->AppendMany(FixtureRows(s, 50, 2)).ok());
  ASSERT_TRUE(exp->Delete({100, 101, 102}).ok());  // tombstones
  ASSERT_TRUE(main->AppendMany(FixtureRows(s, 20, 3, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
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
  ASSERT_TRUE(graph->AppendMany(FixtureRows(s, 10, 4)).ok());

  // Every version of every branch, read back in full before GC.
  std::map<ObjectId, std::string> before;
  for (const auto* ds : {main.get(), exp.get(), graph.get()}) {
    ASSERT_TRUE(ds->History([&](const CommitInfo& c) {
                    before.emplace(c.manifest, ReadAt(store_, c.manifest.ToString()));
                    return true;
                  }).ok());
  }
  ASSERT_GE(before.size(), 8u);

  GcReport r = Collect(/*grace_ms=*/0);
  EXPECT_GT(r.reachable_objects, 0u);
  EXPECT_EQ(r.refs, 4u);  // main, exp, graph, v1
  ExpectVerifies();
  for (const auto& [id, text] : before) {
    EXPECT_EQ(ReadAt(store_, id.ToString()), text) << "version " << id.ToString();
  }
  SearchOptions so;
  so.k = 5;
  auto q = main->Take({40}, {"emb"});
  ASSERT_TRUE(q.ok());
  std::vector<float> query(q->columns[0].FloatsAt(0).begin(), q->columns[0].FloatsAt(0).end());
  for (const auto* ds : {main.get(), graph.get()}) {
    auto res = ds->Search("emb", query.data(), 1, kFixtureDim, so);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->anchors.front(), 40u);
  }
}

TEST_P(Gc, ReclaimsAbandonedCommitAndDeletedBranch) {
  auto main = MakeDataset();
  ASSERT_TRUE(main->Branch("tmp").ok());
  auto tmp = *Dataset::Open(store_, "d", "tmp");
  ASSERT_TRUE(tmp->AppendMany(FixtureRows(main->schema(), 30, 9)).ok());
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
  EXPECT_EQ(ReadAt(store_, "main").size(), ReadAt(store_, main->head().ToString()).size());
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
  ASSERT_TRUE(run->AppendMany(FixtureRows(main->schema(), 40, 5)).ok());
  const ObjectId pinned = run->head();
  const std::string text = ReadAt(store_, pinned.ToString());
  const int64_t expires = NowMs() / 1000 + 3600;
  auto lease = TakeLease(*store_, "d", "trainer-1", pinned, expires);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(*lease, "d/leases/trainer-1/" + std::to_string(expires));
  ASSERT_TRUE(store_->DeleteRef("d/branches/run", pinned).ok());

  GcReport r = Collect(/*grace_ms=*/0);
  EXPECT_EQ(r.leases, 1u);
  EXPECT_GE(r.leased_objects, 3u);
  EXPECT_EQ(r.deleted_objects, 0u);
  EXPECT_EQ(ReadAt(store_, pinned.ToString()), text);

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

// spec/06 §6.8: a mark budget smaller than the live set makes GC mark and sweep in passes
// by id prefix, holding a share of the ids at a time, and classify every object the same.
TEST_P(Gc, BoundedMarkMemorySweepsInPassesWithTheSameResult) {
  const Garbage g = MakeGarbage();
  GcReport whole = Collect(0, 1000, /*dry_run=*/true);
  EXPECT_EQ(whole.mark_passes, 1u);
  // Below what one pass holds, above what every pass holds (pages, manifests, indexes).
  const uint64_t budget = 416 * (whole.mark_peak_objects * 4 / 5);
  GcReport parted = Collect(0, 1000, /*dry_run=*/true, budget);
  EXPECT_GE(parted.mark_passes, 2u);
  EXPECT_LT(parted.mark_peak_objects, whole.mark_peak_objects);
  for (const auto& [a, b] : {std::pair{whole.found_objects, parted.found_objects},
                             {whole.reachable_objects, parted.reachable_objects},
                             {whole.leased_objects, parted.leased_objects},
                             {whole.young_objects, parted.young_objects},
                             {whole.deleted_objects, parted.deleted_objects},
                             {whole.deleted_bytes, parted.deleted_bytes},
                             {whole.leases, parted.leases}}) {
    EXPECT_EQ(a, b);
  }
  EXPECT_GT(whole.deleted_objects, 10u);
  EXPECT_GT(whole.leased_objects, 2u);

  GcReport real = Collect(0, 1000, /*dry_run=*/false, budget);
  EXPECT_EQ(real.deleted_objects, whole.deleted_objects);
  EXPECT_EQ(Objects().size(), whole.found_objects - whole.deleted_objects);
  ExpectIntact(g);
  EXPECT_EQ(Collect(0).deleted_objects, 0u);
}

// spec/06 §6.11: one stored mark, then shards sweeping their share of the ids, in sequence
// or at once, delete what one GC deletes; a shard run again deletes nothing more.
TEST_P(Gc, ShardedSweepDeletesWhatOneGcDoes) {
  const Garbage g = MakeGarbage();
  const GcReport whole = Collect(0, 1000, /*dry_run=*/true);
  const int64_t now = NowMs() + 1000;
  auto run = [&](GcOptions o) {
    o.grace_ms = 0;
    o.no_writers_running = true;
    o.now_unix_ms = now;
    GcReport r;
    Status s = CollectGarbage(*store_, o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  };
  GcOptions mark;
  mark.mark_only = true;
  const GcReport marked = run(mark);
  EXPECT_EQ(marked.found_objects, 0u);
  EXPECT_EQ(marked.deleted_objects, 0u);
  EXPECT_EQ(marked.marked_objects, whole.reachable_objects + whole.leased_objects);
  EXPECT_EQ(store_->ReadRef(kGcMarkRef)->target.ToString(), marked.mark);
  auto shard = [&](uint32_t n, uint32_t of) {
    GcOptions o;
    o.shard = n;
    o.shard_of = of;
    return run(o);
  };
  uint64_t deleted = 0, bytes = 0, found = 0;
  for (uint32_t n = 0; n < 4; ++n) {
    const GcReport r = shard(n, 4);
    EXPECT_EQ(r.mark, marked.mark);
    deleted += r.deleted_objects;
    bytes += r.deleted_bytes;
    found += r.found_objects;
  }
  EXPECT_EQ(deleted, whole.deleted_objects);
  EXPECT_EQ(bytes, whole.deleted_bytes);
  EXPECT_GT(found, whole.found_objects);  // the stored mark and its chunks, kept
  for (uint32_t n = 0; n < 4; ++n) EXPECT_EQ(shard(n, 4).deleted_objects, 0u) << n;
  ExpectIntact(g);
  // The stored mark stays pinned by its ref: one GC after the shards has nothing to delete.
  EXPECT_EQ(Collect(0).deleted_objects, 0u);
}

TEST_P(Gc, TwoShardsAtOnceDeleteWhatOneGcDoes) {
  const Garbage g = MakeGarbage();
  const GcReport whole = Collect(0, 1000, /*dry_run=*/true);
  GcOptions o;
  o.grace_ms = 0;
  o.no_writers_running = true;
  o.now_unix_ms = NowMs() + 1000;
  o.mark_only = true;
  ASSERT_TRUE(CollectGarbage(*store_, o, nullptr).ok());
  o.mark_only = false;
  o.shard_of = 2;
  GcReport r0, r1;
  Status s0, s1;
  GcOptions o0 = o, o1 = o;
  o1.shard = 1;
  std::thread t0([&] { s0 = CollectGarbage(*store_, o0, &r0); });
  std::thread t1([&] { s1 = CollectGarbage(*store_, o1, &r1); });
  t0.join();
  t1.join();
  ASSERT_TRUE(s0.ok()) << s0.ToString();
  ASSERT_TRUE(s1.ok()) << s1.ToString();
  EXPECT_EQ(r0.deleted_objects + r1.deleted_objects, whole.deleted_objects);
  EXPECT_GT(r0.deleted_objects, 0u);
  EXPECT_GT(r1.deleted_objects, 0u);
  ExpectIntact(g);
  EXPECT_EQ(Collect(0).deleted_objects, 0u);
}

TEST_P(Gc, ShardedSweepNeedsAStoredMark) {
  MakeDataset();
  GcOptions o;
  o.shard = 0;
  o.shard_of = 2;
  EXPECT_EQ(CollectGarbage(*store_, o, nullptr).code(), StatusCode::kNotFound);
  o.shard = 2;
  EXPECT_EQ(CollectGarbage(*store_, o, nullptr).code(), StatusCode::kInvalidArgument);
  o.shard = 0;
  o.shard_of = 257;
  EXPECT_EQ(CollectGarbage(*store_, o, nullptr).code(), StatusCode::kInvalidArgument);
  o.shard_of = 0;
  o.mark_only = true;
  o.dry_run = true;
  EXPECT_EQ(CollectGarbage(*store_, o, nullptr).code(), StatusCode::kInvalidArgument);
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
  ASSERT_TRUE(tmp->AppendMany(FixtureRows(main->schema(), 30, 9)).ok());
  ASSERT_TRUE(store_->DeleteRef("d/branches/tmp", tmp->head()).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store_->Put("garbage " + std::to_string(i)).ok());
  const std::string text = ReadAt(store_, "main");
  GcReport a, b;
  std::thread ta([&] { a = Collect(0); });
  std::thread tb([&] { b = Collect(0); });
  ta.join();
  tb.join();
  EXPECT_EQ(a.reachable_objects, b.reachable_objects);
  EXPECT_EQ(Objects().size(), a.reachable_objects);
  ExpectVerifies();
  EXPECT_EQ(ReadAt(store_, "main"), text);
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
        auto c = ds->AppendMany(FixtureRows(s, 5, 100 + i));
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
  EXPECT_EQ(ReadAt(store_, "main").find("next:"), std::string::npos);
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
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64K"), 65536u);
  EXPECT_EQ(*ParseByteSize("512M"), 512u << 20);
  EXPECT_EQ(*ParseByteSize("2G"), uint64_t{2} << 30);
  for (const char* bad : {"", "0", "0M", "M", "1.5G", "-1G", "1T", "1g", "01M"}) {
    EXPECT_EQ(ParseByteSize(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace dreamdb
