// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// A failed commit removes its own new objects when it can (dataset_impl.h, design notes
// "a failed commit removes its own new objects"): on a store that refuses writes (disk
// full) or for input refused while the commit is built, nothing the failed commit created
// stays behind; objects that existed before it, and everything of a commit whose swap may
// have landed, stay.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dreamdb/dataset.h"
#include "src/dataset/test_util.h"
#include "src/store/testing/fault_injecting_backend.h"

namespace dreamdb {
namespace {

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddFloat64("score", /*optional=*/true).ok());
  EXPECT_TRUE(s.AddString("caption", true).ok());
  EXPECT_TRUE(s.AddEmbedding("emb", 4, true).ok());
  return s;
}

struct FaultyStore {
  std::shared_ptr<Store> mem;
  std::shared_ptr<FaultInjectingBackend> fault;
  std::shared_ptr<Store> store;
};

FaultyStore MakeFaultyStore() {
  FaultyStore s;
  s.mem = std::shared_ptr<Store>(*Store::Open("memory://"));
  s.fault = std::make_shared<FaultInjectingBackend>(
      std::shared_ptr<ObjectBackend>(s.mem, &s.mem->object_backend()),
      std::shared_ptr<RefBackend>(s.mem, &s.mem->ref_backend()));
  s.store = Store::FromBackends("fault://", s.fault, s.fault);
  return s;
}

// Every object of the store: id -> size.
std::map<std::string, uint64_t> Objects(Store& store) {
  std::map<std::string, uint64_t> out;
  EXPECT_TRUE(store
                  .ListObjects("",
                               [&](const ObjectInfo& o) {
                                 out[o.id.ToString()] = o.size_bytes;
                                 return true;
                               })
                  .ok());
  return out;
}

// n rows of the test schema (label, score, caption, emb), values from `base`.
Batch Rows(const Schema& schema, uint64_t n, int64_t base) {
  Batch b;
  Column label(*schema.Find("label")), score(*schema.Find("score")),
      caption(*schema.Find("caption")), emb(*schema.Find("emb"));
  for (uint64_t i = 0; i < n; ++i) {
    const auto v = static_cast<int64_t>(i) + base;
    label.AppendInt64(v);
    score.AppendFloat64(static_cast<double>(v) / 2);
    caption.AppendBytes("c" + std::to_string(v));
    float e[4] = {float(v), float(v + 1), float(v + 2), float(v + 3)};
    emb.AppendFloats(e);
  }
  b.columns = {std::move(label), std::move(score), std::move(caption), std::move(emb)};
  return b;
}

void ExpectIntact(Store& store, const std::string& name) {
  auto report = Verify(store, name);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty()) << report->problems.front();
}

TEST(CommitCleanupTest, FailedCommitOnAFullDiskLeavesNoSegmentsBehind) {
  // The nth put of the commit fails with kIoError (as ENOSPC does on file://), for every n
  // the commit makes (segments, index pages, the manifest).
  for (uint64_t nth = 1; nth <= 6; ++nth) {
    FaultyStore s = MakeFaultyStore();
    auto ds = *Dataset::Create(s.store, "d", TestSchema());
    ASSERT_TRUE(ds->AppendMany(Rows(ds->schema(), 100, 0)).ok());
    const auto before = Objects(*s.store);
    s.fault->FailNthCall(nth, StatusCode::kIoError, FaultOp::kPut);
    auto c = ds->AppendMany(Rows(ds->schema(), 50, 1000));
    if (c.ok()) break;  // the commit makes fewer puts than nth
    EXPECT_EQ(c.status().code(), StatusCode::kIoError);
    // The segments (puts 1-4) go; an index page the commit wrote before its manifest's put
    // failed (nth 6) is left to GC (design notes, 4).
    auto after = Objects(*s.store);
    uint64_t left = 0;
    for (const auto& [id, size] : after) left += before.count(id) == 0 ? 1 : 0;
    EXPECT_EQ(after.size(), before.size() + left);
    EXPECT_LE(left, nth == 6 ? 1u : 0u) << "put " << nth << " failed";
    ExpectIntact(*s.store, "d");
    // The space is usable again: the same commit lands.
    ASSERT_TRUE(ds->AppendMany(Rows(ds->schema(), 50, 1000)).ok());
    EXPECT_EQ(ds->Count(), 150u);
    ExpectIntact(*s.store, "d");
  }
}

TEST(CommitCleanupTest, FailedCommitKeepsObjectsThatExistedBeforeIt) {
  // Dataset "a" holds the same rows: the failing commit of "b" deduplicates against its
  // segments, and must not remove them.
  FaultyStore s = MakeFaultyStore();
  auto a = *Dataset::Create(s.store, "a", TestSchema());
  ASSERT_TRUE(a->AppendMany(Rows(a->schema(), 80, 7)).ok());
  auto b = *Dataset::Create(s.store, "b", TestSchema());
  const auto before = Objects(*s.store);
  // Fail the index page's put (the 4 segments go first: all of them exist already).
  s.fault->FailNthCall(5, StatusCode::kIoError, FaultOp::kPut);
  auto c = b->AppendMany(Rows(b->schema(), 80, 7));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(Objects(*s.store), before);
  ExpectIntact(*s.store, "a");
  ASSERT_TRUE(a->Scan({}).ok());
  EXPECT_EQ((*Dataset::Open(s.store, "a"))->Count(), 80u);
}

TEST(CommitCleanupTest, SwapWithUnknownOutcomeKeepsEverything) {
  // The ref swap fails with an I/O error: it may have landed, so nothing is removed.
  FaultyStore s = MakeFaultyStore();
  auto ds = *Dataset::Create(s.store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(Rows(ds->schema(), 10, 0)).ok());
  const auto before = Objects(*s.store);
  s.fault->FailNthCall(1, StatusCode::kIoError, FaultOp::kCompareAndSwap);
  auto c = ds->AppendMany(Rows(ds->schema(), 10, 100));
  ASSERT_FALSE(c.ok());
  EXPECT_GT(Objects(*s.store).size(), before.size());
  ExpectIntact(*s.store, "d");
}

TEST(CommitCleanupTest, CommitRefusedForBadInputLeavesTheStoreAsItWas) {
  // A required field missing from a batch of new records is found while the commit is
  // built, after its segments were put: they go again.
  FaultyStore s = MakeFaultyStore();
  auto ds = *Dataset::Create(s.store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(Rows(ds->schema(), 10, 0)).ok());
  const auto before = Objects(*s.store);
  Batch b = Rows(ds->schema(), 3, 50);
  b.columns.erase(b.columns.begin());  // no "label"
  b.anchors = {100, 101, 102};
  auto c = ds->AppendMany(b);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Objects(*s.store), before);
  ExpectIntact(*s.store, "d");
}

TEST(CommitCleanupTest, TransientFailureLeavesNoNewObjects) {
  FaultyStore s = MakeFaultyStore();
  auto ds = *Dataset::Create(s.store, "d", TestSchema());
  const auto before = Objects(*s.store);
  s.fault->Inject({.op = FaultOp::kPut, .nth = 3, .times = 0, .code = StatusCode::kUnavailable});
  auto c = ds->AppendMany(Rows(ds->schema(), 10, 0));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Objects(*s.store), before);
}

TEST(CommitCleanupTest, WritersRacingOnOneBranchStayIntact) {
  // Four threads commit to one branch at once (each its own handle): many swaps lose and
  // rebase onto pages other writers just wrote. Nothing any of them published goes
  // missing. (Processes racing on a file:// store: tests/soak/test_writers.py.)
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  ASSERT_TRUE(Dataset::Create(store, "d", TestSchema()).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      auto ds = *Dataset::Open(store, "d");
      for (int i = 0; i < 15; ++i) {
        if (!ds->AppendMany(Rows(ds->schema(), 5, w * 1000 + i * 10)).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ((*Dataset::Open(store, "d"))->Count(), 4u * 15 * 5);
  ExpectIntact(*store, "d");
}

}  // namespace
}  // namespace dreamdb
