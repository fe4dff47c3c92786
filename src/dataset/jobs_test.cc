// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sharded jobs (dreamdb/jobs.h, spec/14-semantics.md §19): the allocator object's bytes,
// shard indices from flags and launcher variables, byte ranges that cover a file once,
// disjoint anchor reservations under concurrency, a job whose shards and commit are
// idempotent and give every record exactly once, job removal, and sharded verify.

#include "dreamdb/jobs.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "dreamdb/dataset.h"
#include "src/base/encoding.h"

namespace dreamdb {
namespace {

std::string Hex(ByteView b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(AnchorAllocator, BytesMatchTheSpecExample) {
  auto bytes = EncodeAnchorAllocator(1000);
  ASSERT_TRUE(bytes.ok());
  // spec/14-semantics.md §19.3: keys in canonical order kind, next, format.
  EXPECT_EQ(Hex(*bytes),
            "a3"                                                    // map of 3
            "646b696e64"                                            // "kind"
            "7818647265616d64622e616e63686f722d616c6c6f6361746f72"  // "dreamdb.anchor-allocator"
            "646e657874"                                            // "next"
            "1903e8"                                                // 1000
            "66666f726d6174"                                        // "format"
            "01");
  EXPECT_EQ(bytes->size(), 48u);
  auto next = DecodeAnchorAllocator(*bytes);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 1000u);
}

TEST(AnchorAllocator, RefusesOtherKindsAndNewerFormats) {
  EXPECT_EQ(DecodeAnchorAllocator("\xa0").status().code(), StatusCode::kCorrupt);
  auto other = *EncodeAnchorAllocator(5);
  other[12] = 'X';  // inside the kind text
  EXPECT_EQ(DecodeAnchorAllocator(other).status().code(), StatusCode::kCorrupt);
  auto newer = *EncodeAnchorAllocator(5);
  ASSERT_EQ(static_cast<unsigned char>(newer.back()), 1u);
  newer.back() = 2;
  auto s = DecodeAnchorAllocator(newer).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("format 2"), std::string::npos) << s.message();
}

TEST(ShardIndex, FromFlags) {
  auto i = ResolveShardIndex("3", "8", Env({}));
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->shard, 3u);
  EXPECT_EQ(i->of, 8u);
  EXPECT_EQ(ResolveShardIndex("8", "8", Env({})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("1", std::nullopt, Env({})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("-1", "4", Env({})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("0", "0", Env({})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex("0", "65537", Env({})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveShardIndex(std::nullopt, std::nullopt, Env({})).status().code(),
            StatusCode::kNotFound);
  // Flags win over the environment.
  auto f = ResolveShardIndex("0", "2", Env({{"SLURM_ARRAY_TASK_ID", "5"}}));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->shard, 0u);
}

TEST(ShardIndex, SlurmArrayIsNormalisedByMinAndStep) {
  // --array=3-9:2 -> ids 3,5,7,9; id 7 is shard 2 of 4.
  auto i = ResolveShardIndex(std::nullopt, std::nullopt,
                             Env({{"SLURM_ARRAY_TASK_ID", "7"},
                                  {"SLURM_ARRAY_TASK_MIN", "3"},
                                  {"SLURM_ARRAY_TASK_STEP", "2"},
                                  {"SLURM_ARRAY_TASK_COUNT", "4"}}));
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->shard, 2u);
  EXPECT_EQ(i->of, 4u);
  // No STEP: 1.
  auto j = ResolveShardIndex(std::nullopt, std::nullopt,
                             Env({{"SLURM_ARRAY_TASK_ID", "10"},
                                  {"SLURM_ARRAY_TASK_MIN", "10"},
                                  {"SLURM_ARRAY_TASK_COUNT", "2"}}));
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->shard, 0u);
  EXPECT_EQ(j->of, 2u);
}

TEST(ShardIndex, SparseOrInconsistentSlurmArraysAreRefusedByName) {
  // --array=1,5,9: COUNT 3, MIN 1, STEP 1 -> id 9 does not fit.
  auto s = ResolveShardIndex(std::nullopt, std::nullopt,
                             Env({{"SLURM_ARRAY_TASK_ID", "9"},
                                  {"SLURM_ARRAY_TASK_MIN", "1"},
                                  {"SLURM_ARRAY_TASK_COUNT", "3"}}))
               .status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("SLURM_ARRAY_TASK_ID=9"), std::string::npos) << s.message();
  // --of disagreeing with the array.
  s = ResolveShardIndex(std::nullopt, "5",
                        Env({{"SLURM_ARRAY_TASK_ID", "0"},
                             {"SLURM_ARRAY_TASK_MIN", "0"},
                             {"SLURM_ARRAY_TASK_COUNT", "4"}}))
          .status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("SLURM_ARRAY_TASK_COUNT=4"), std::string::npos) << s.message();
  // Missing MIN/COUNT, junk values.
  EXPECT_EQ(ResolveShardIndex(std::nullopt, std::nullopt, Env({{"SLURM_ARRAY_TASK_ID", "0"}}))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  s = ResolveShardIndex(std::nullopt, std::nullopt,
                        Env({{"SLURM_ARRAY_TASK_ID", "x"},
                             {"SLURM_ARRAY_TASK_MIN", "0"},
                             {"SLURM_ARRAY_TASK_COUNT", "4"}}))
          .status();
  EXPECT_NE(s.message().find("SLURM_ARRAY_TASK_ID"), std::string::npos) << s.message();
}

TEST(ShardIndex, KubernetesIndexedJob) {
  auto i = ResolveShardIndex(std::nullopt, std::nullopt,
                             Env({{"JOB_COMPLETION_INDEX", "5"}, {"DREAMDB_SHARD_COUNT", "16"}}));
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->shard, 5u);
  EXPECT_EQ(i->of, 16u);
  auto j = ResolveShardIndex(std::nullopt, "6", Env({{"JOB_COMPLETION_INDEX", "5"}}));
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->of, 6u);
  auto s =
      ResolveShardIndex(std::nullopt, std::nullopt, Env({{"JOB_COMPLETION_INDEX", "5"}})).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("DREAMDB_SHARD_COUNT"), std::string::npos) << s.message();
  s = ResolveShardIndex(std::nullopt, "4", Env({{"JOB_COMPLETION_INDEX", "4"}})).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(ShardByteRange, CoversTheFileOnceInOrder) {
  for (uint64_t size : std::vector<uint64_t>{0, 1, 7, 1000, uint64_t{1} << 40, UINT64_MAX}) {
    for (uint32_t of : {1u, 3u, 16u, 65536u}) {
      uint64_t at = 0;
      for (uint32_t k = 0; k < of; ++k) {
        ByteRange r = ShardByteRange(size, k, of);
        ASSERT_EQ(r.begin, at) << size << " " << of << " " << k;
        ASSERT_LE(r.begin, r.end);
        at = r.end;
      }
      EXPECT_EQ(at, size);
    }
  }
}

TEST(ValidateJobId, NamesWhatIsWrong) {
  EXPECT_TRUE(ValidateJobId("ingest-2024.05_01").ok());
  EXPECT_FALSE(ValidateJobId("").ok());
  EXPECT_FALSE(ValidateJobId(".x").ok());
  EXPECT_FALSE(ValidateJobId("a/b").ok());
  EXPECT_FALSE(ValidateJobId("x.lock").ok());
  EXPECT_FALSE(ValidateJobId(std::string(65, 'a')).ok());
}

TEST(ReserveAnchors, ConcurrentReservationsAreDisjointAndAboveTheFloor) {
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  constexpr int kThreads = 8;
  constexpr int kEach = 40;
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        uint64_t n = 1 + static_cast<uint64_t>((t * 7 + i) % 5);
        auto first = ReserveAnchors(*store, "d", n, 100);
        ASSERT_TRUE(first.ok()) << first.status().ToString();
        got[static_cast<size_t>(t)].emplace_back(*first, n);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> anchors;
  uint64_t total = 0;
  for (const auto& g : got) {
    for (auto [first, n] : g) {
      EXPECT_GE(first, 100u);
      for (uint64_t a = first; a < first + n; ++a) EXPECT_TRUE(anchors.insert(a).second) << a;
      total += n;
    }
  }
  EXPECT_EQ(anchors.size(), total);
  // A higher floor lifts the next range; a lower one does not lower it.
  EXPECT_EQ(*ReserveAnchors(*store, "d", 1, 1000000), 1000000u);
  EXPECT_EQ(*ReserveAnchors(*store, "d", 1, 0), 1000001u);
  EXPECT_EQ(ReserveAnchors(*store, "d", 0, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReserveAnchors(*store, "d", 2, UINT64_MAX - 2).status().code(),
            StatusCode::kInvalidArgument);
}

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Schema s;
    ASSERT_TRUE(s.AddInt64("x").ok());
    schema_ = s;
    ASSERT_TRUE(Dataset::Create(store_, "d", s).ok());
    // Records already on main: anchors 0..9.
    Append(*Dataset::Open(store_, "d").value(), 0, 10);
  }

  void Append(Dataset& ds, int64_t from, int64_t n, const std::vector<uint64_t>& anchors = {}) {
    Batch b;
    b.anchors = anchors;
    Column x(*schema_.Find("x"));
    for (int64_t i = 0; i < n; ++i) x.AppendInt64(from + i);
    b.columns.push_back(std::move(x));
    auto c = ds.AppendMany(b);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  }

  // Shard `k` of `of` writes values [k*per, (k+1)*per) in batches of 7.
  void RunShard(uint32_t k, uint32_t of, int64_t per) {
    auto run = ShardRun::Begin(store_, "d", "j1", "main", ShardIndex{k, of, "test"});
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    if ((*run)->done()) return;
    for (int64_t from = k * per; from < (k + 1) * per; from += 7) {
      int64_t n = std::min<int64_t>(7, (k + 1) * per - from);
      auto first = (*run)->Reserve(static_cast<uint64_t>(n));
      ASSERT_TRUE(first.ok()) << first.status().ToString();
      std::vector<uint64_t> anchors(static_cast<size_t>(n));
      std::iota(anchors.begin(), anchors.end(), *first);
      Append(*(*run)->dataset(), 1000 + from, n, anchors);
    }
    ASSERT_TRUE((*run)->Finish().ok());
  }

  std::multiset<int64_t> Values(const std::string& at = "main") {
    std::multiset<int64_t> out;
    auto ds = Dataset::OpenAt(store_, "d", at);
    EXPECT_TRUE(ds.ok());
    auto reader = *(*ds)->Scan();
    while (true) {
      auto b = reader->Next();
      EXPECT_TRUE(b.ok());
      if (!b.ok() || !*b) break;
      for (uint64_t i = 0; i < (*b)->num_rows(); ++i) out.insert((*b)->columns[0].Int64At(i));
    }
    return out;
  }

  ObjectId Head() { return (*Dataset::Open(store_, "d"))->head(); }

  std::shared_ptr<Store> store_ = std::shared_ptr<Store>(*Store::Open("memory://"));
  Schema schema_;
};

TEST_F(JobTest, ConcurrentShardsAndOneCommitGiveEveryRecordOnce) {
  constexpr uint32_t kShards = 8;
  constexpr int64_t kPer = 30;
  std::vector<std::thread> threads;
  for (uint32_t k = 0; k < kShards; ++k)
    threads.emplace_back([&, k] { RunShard(k, kShards, kPer); });
  for (auto& t : threads) t.join();
  // Nothing is published before the commit.
  EXPECT_EQ(Values().size(), 10u);
  auto r = CommitJob(store_, "d", "j1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->already_committed);
  EXPECT_EQ(r->shards, kShards);
  EXPECT_EQ(r->added, kShards * kPer);
  std::multiset<int64_t> want;
  for (int64_t i = 0; i < 10; ++i) want.insert(i);
  for (int64_t i = 0; i < kShards * kPer; ++i) want.insert(1000 + i);
  EXPECT_EQ(Values(), want);
  // Work branches are gone; only main remains.
  int branches = 0;
  ASSERT_TRUE(store_
                  ->ListRefs("d/branches/",
                             [&](const RefValue&) {
                               ++branches;
                               return true;
                             })
                  .ok());
  EXPECT_EQ(branches, 1);
  // Automatic appends after the commit continue above every reserved anchor.
  Append(*Dataset::Open(store_, "d").value(), 5000, 3);
  EXPECT_EQ(Values().size(), want.size() + 3);
}

TEST_F(JobTest, ShardRunTwiceOrCommitRunTwiceChangesNothing) {
  RunShard(0, 2, 10);
  RunShard(1, 2, 10);
  auto results = ReadJobStatus(*store_, "d", "j1");
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(results->finished, (std::vector<uint32_t>{0, 1}));
  auto result_of_0 = store_->ReadRef("d/jobs/j1/shards/0")->target;
  auto allocator = store_->ReadRef("d/anchors/allocator")->target;
  RunShard(0, 2, 10);  // a second run: done, nothing written
  EXPECT_EQ(store_->ReadRef("d/jobs/j1/shards/0")->target, result_of_0);
  EXPECT_EQ(store_->ReadRef("d/anchors/allocator")->target, allocator);
  ASSERT_TRUE(CommitJob(store_, "d", "j1").ok());
  const ObjectId head = Head();
  auto again = CommitJob(store_, "d", "j1");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_committed);
  EXPECT_EQ(Head(), head);
  RunShard(1, 2, 10);  // after the commit too
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(Values().size(), 30u);
}

TEST_F(JobTest, CommitStoppedAfterTheMergeMergesNothingTheSecondTime) {
  RunShard(0, 2, 10);
  RunShard(1, 2, 10);
  ASSERT_TRUE(CommitJob(store_, "d", "j1").ok());
  const ObjectId head = Head();
  // As if the commit died before recording itself.
  ASSERT_TRUE(store_->DeleteRef("d/jobs/j1/committed", head).ok());
  auto again = CommitJob(store_, "d", "j1");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(again->manifest, head);
  EXPECT_EQ(Values().size(), 30u);
}

TEST_F(JobTest, MissingShardFailsTheCommitNamingIt) {
  RunShard(0, 4, 5);
  RunShard(2, 4, 5);
  const ObjectId head = Head();
  auto r = CommitJob(store_, "d", "j1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("shards 1, 3 of 4 have not finished"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(CommitJob(store_, "d", "nojob").status().code(), StatusCode::kNotFound);
}

TEST_F(JobTest, CrashedShardRestartsFromTheBase) {
  {
    auto run = ShardRun::Begin(store_, "d", "j1", "main", ShardIndex{0, 1, "test"});
    ASSERT_TRUE(run.ok());
    auto first = (*run)->Reserve(3);
    ASSERT_TRUE(first.ok());
    Append(*(*run)->dataset(), 777, 3, {*first, *first + 1, *first + 2});
    // Dies here: no Finish.
  }
  RunShard(0, 1, 4);
  auto r = CommitJob(store_, "d", "j1");
  ASSERT_TRUE(r.ok());
  // One shard: a fast-forward to the shard's last batch; `added` counts the whole job.
  EXPECT_EQ(r->added, 4u);
  auto v = Values();
  EXPECT_EQ(v.size(), 14u);
  EXPECT_EQ(v.count(777), 0u);
}

// The refs under `prefix`.
std::vector<std::string> RefsUnder(Store& store, const std::string& prefix) {
  std::vector<std::string> out;
  EXPECT_TRUE(store
                  .ListRefs(prefix,
                            [&](const RefValue& r) {
                              out.push_back(r.name);
                              return true;
                            })
                  .ok());
  return out;
}

TEST_F(JobTest, RemovingACommittedJobDeletesItsRefsAndKeepsWhatItPublished) {
  RunShard(0, 2, 10);
  RunShard(1, 2, 10);
  ASSERT_TRUE(CommitJob(store_, "d", "j1").ok());
  const ObjectId head = Head();
  auto r = RemoveJob(*store_, "d", "j1", /*abandon=*/false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->committed);
  EXPECT_EQ(r->refs, 4u);  // plan, 2 shard results, committed
  EXPECT_EQ(r->work_branches, 0u);
  EXPECT_TRUE(RefsUnder(*store_, "d/jobs/").empty());
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(Values().size(), 30u);
  // The allocator stays: later appends still get fresh anchors.
  EXPECT_TRUE(store_->ReadRef("d/anchors/allocator").ok());
  EXPECT_EQ(RemoveJob(*store_, "d", "j1", false).status().code(), StatusCode::kNotFound);
}

TEST_F(JobTest, RemovingAnUncommittedJobNeedsAbandonAndDropsItsWorkBranches) {
  RunShard(0, 3, 5);
  {  // Shard 1 dies mid-way: its work branch is left behind.
    auto run = ShardRun::Begin(store_, "d", "j1", "main", ShardIndex{1, 3, "test"});
    ASSERT_TRUE(run.ok());
    auto first = (*run)->Reserve(2);
    ASSERT_TRUE(first.ok());
    Append(*(*run)->dataset(), 900, 2, {*first, *first + 1});
  }
  const ObjectId head = Head();
  auto refused = RemoveJob(*store_, "d", "j1", /*abandon=*/false);
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("was not committed"), std::string::npos);
  EXPECT_EQ(RefsUnder(*store_, "d/jobs/").size(), 2u);  // nothing deleted
  auto r = RemoveJob(*store_, "d", "j1", /*abandon=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->committed);
  EXPECT_EQ(r->refs, 2u);  // plan, shard 0's result
  EXPECT_EQ(r->work_branches, 1u);
  EXPECT_TRUE(RefsUnder(*store_, "d/jobs/").empty());
  EXPECT_EQ(RefsUnder(*store_, "d/branches/").size(), 1u);  // main
  EXPECT_EQ(Head(), head);
  // The job id can be used again from scratch.
  RunShard(0, 1, 4);
  ASSERT_TRUE(CommitJob(store_, "d", "j1").ok());
  EXPECT_EQ(Values().size(), 14u);
  EXPECT_EQ(RemoveJob(*store_, "d", "bad/id", true).status().code(), StatusCode::kInvalidArgument);
}

// spec/14 §12.6: M verify shards together check exactly what one verify checks. With any
// single object missing, the union of the shards' problems is the problems of an
// unsharded verify; intact, every segment is fetched by exactly one shard.
TEST_F(JobTest, ShardedVerifyChecksEverySegmentOnceAndFindsWhatOneVerifyFinds) {
  for (int i = 0; i < 12; ++i) Append(*Dataset::Open(store_, "d").value(), 100 * i, 5);
  RunShard(0, 2, 9);
  RunShard(1, 2, 9);
  ASSERT_TRUE(CommitJob(store_, "d", "j1").ok());
  constexpr uint32_t kOf = 4;
  auto whole = Verify(*store_, "d");
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(whole->problems.empty()) << whole->problems[0];
  uint64_t objects = 0;
  uint64_t skipped = 0;
  for (uint32_t k = 0; k < kOf; ++k) {
    auto part = Verify(*store_, "d", {}, VerifyShard{k, kOf});
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    EXPECT_TRUE(part->problems.empty());
    EXPECT_EQ(part->roots, whole->roots);
    objects += part->objects;
    skipped += part->segments_skipped;
  }
  // Segments S: each shard skips the S it does not own and reads the rest once.
  ASSERT_EQ(skipped % (kOf - 1), 0u);
  const uint64_t segments = skipped / (kOf - 1);
  EXPECT_GT(segments, 12u);
  EXPECT_EQ(objects, kOf * whole->objects - skipped);
  EXPECT_EQ(Verify(*store_, "d", {}, VerifyShard{4, 4}).status().code(),
            StatusCode::kInvalidArgument);

  std::vector<ObjectId> ids;
  ASSERT_TRUE(store_
                  ->ListObjects("",
                                [&](const ObjectInfo& o) {
                                  ids.push_back(o.id);
                                  return true;
                                })
                  .ok());
  ASSERT_GT(ids.size(), segments);
  int found = 0;
  for (const ObjectId& id : ids) {
    Bytes bytes = *store_->Get(id);
    ASSERT_TRUE(store_->DeleteObject(id).ok());
    auto one = Verify(*store_, "d");
    ASSERT_TRUE(one.ok());
    std::set<std::string> want(one->problems.begin(), one->problems.end());
    std::set<std::string> got;
    for (uint32_t k = 0; k < kOf; ++k) {
      auto part = Verify(*store_, "d", {}, VerifyShard{k, kOf});
      ASSERT_TRUE(part.ok());
      got.insert(part->problems.begin(), part->problems.end());
    }
    EXPECT_EQ(got, want) << "with " << id.ToString() << " missing";
    found += want.empty() ? 0 : 1;
    ASSERT_TRUE(store_->PutWithId(id, bytes).ok());
  }
  EXPECT_GT(found, 0);
}

TEST_F(JobTest, ShardsThatDisagreeWithThePlanAreRefused) {
  RunShard(0, 2, 3);
  auto r = ShardRun::Begin(store_, "d", "j1", "main", ShardIndex{1, 3, "--shard/--of"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("with 2 shards"), std::string::npos) << r.status().message();
  EXPECT_EQ(ShardRun::Begin(store_, "d", "j2", "nobranch", ShardIndex{0, 1, "t"}).status().code(),
            StatusCode::kNotFound);
}

TEST_F(JobTest, MainMovingDuringTheJobIsMergedInOneCommit) {
  RunShard(0, 2, 5);
  Append(*Dataset::Open(store_, "d").value(), 500, 4);  // another writer, automatic anchors
  RunShard(1, 2, 5);
  auto r = CommitJob(store_, "d", "j1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values().size(), 24u);
}

// The issue this fixes: sibling branches both continued from the same next_anchor, so
// merging their automatic appends collided. With an allocator they take disjoint ranges.
TEST_F(JobTest, SiblingBranchAppendsWithAnAllocatorMergeWithoutCollisions) {
  ASSERT_TRUE(ReserveAnchors(*store_, "d", 1, 0).ok());  // the dataset has an allocator
  auto main = *Dataset::Open(store_, "d");
  ASSERT_TRUE(main->Branch("a").ok());
  ASSERT_TRUE(main->Branch("b").ok());
  Append(*Dataset::Open(store_, "d", "a").value(), 100, 5);
  Append(*Dataset::Open(store_, "d", "b").value(), 200, 5);
  auto m = main->MergeMany({"a", "b"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->added, 10u);
  EXPECT_EQ(Values().size(), 20u);
}

TEST_F(JobTest, WithoutAnAllocatorAutomaticAnchorsAreUnchanged) {
  auto main = *Dataset::Open(store_, "d");
  Append(*main, 100, 2);
  auto t = main->Take({10, 11}, {"x"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE(store_->ReadRef("d/anchors/allocator").ok());
}

}  // namespace
}  // namespace dreamdb
