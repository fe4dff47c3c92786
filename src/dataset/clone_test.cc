// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Clone (include/dreamdb/clone.h): the closure of refs copied between stores; objects
// first, refs last, so an interrupted clone leaves no dangling ref and resumes; refs
// moved only forward.

#include "dreamdb/clone.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dreamdb/dataset.h"
#include "src/store/memory/memory_backend.h"
#include "src/store/testing/fault_injecting_backend.h"

namespace dreamdb {
namespace {

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

// Dataset `name` with `commits` one-record commits, a snapshot "v1" and a branch "dev".
void MakeDataset(const std::shared_ptr<Store>& store, const std::string& name, int commits) {
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  ASSERT_TRUE(Dataset::Create(store, name, s).ok());
  auto ds = *Dataset::Open(store, name);
  for (int i = 0; i < commits; ++i) {
    Batch b;
    Column x(*s.Find("x"));
    x.AppendInt64(i);
    b.columns.push_back(std::move(x));
    ASSERT_TRUE(ds->AppendMany(b).ok());
    if (i == 0) {
      ASSERT_TRUE(ds->Snapshot("v1").ok());
    }
  }
  ASSERT_TRUE(ds->Branch("dev").ok());
}

std::map<std::string, ObjectId> Refs(Store& s) {
  std::map<std::string, ObjectId> out;
  EXPECT_TRUE(s.ListRefs("", [&](const RefValue& r) {
                 out[r.name] = r.target;
                 return true;
               }).ok());
  return out;
}

TEST(CloneTest, CopiesEveryRefAndItsClosureAndVerifies) {
  auto src = MemStore();
  MakeDataset(src, "a", 3);
  MakeDataset(src, "b", 2);
  auto dst = MemStore();
  CloneReport r;
  ASSERT_TRUE(Clone(*src, *dst, {}, &r).ok());
  EXPECT_EQ(Refs(*dst), Refs(*src));
  EXPECT_EQ(r.refs, Refs(*src).size());
  EXPECT_EQ(r.refs_created, r.refs);
  EXPECT_EQ(r.objects_copied, r.objects);
  EXPECT_GT(r.bytes_copied, 0u);
  auto verified = Verify(*dst);
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty());
  EXPECT_EQ(verified->objects, r.objects);
  // Again: nothing to copy, every ref unchanged.
  ASSERT_TRUE(Clone(*src, *dst, {}, &r).ok());
  EXPECT_EQ(r.objects_copied, 0u);
  EXPECT_EQ(r.objects_present, r.objects);
  EXPECT_EQ(r.refs_unchanged, r.refs);
}

TEST(CloneTest, RefsSelectADatasetOrOneRef) {
  auto src = MemStore();
  MakeDataset(src, "a", 2);
  MakeDataset(src, "b", 2);
  auto dst = MemStore();
  CloneOptions o;
  o.refs = {"a", "b/branches/main"};
  ASSERT_TRUE(Clone(*src, *dst, o, nullptr).ok());
  auto refs = Refs(*dst);
  EXPECT_TRUE(refs.count("a/branches/main") && refs.count("a/branches/dev") &&
              refs.count("a/snapshots/v1"));
  EXPECT_TRUE(refs.count("b/branches/main"));
  EXPECT_FALSE(refs.count("b/branches/dev"));
  EXPECT_TRUE(Verify(*dst)->problems.empty());
  o.refs = {"nope"};
  EXPECT_EQ(Clone(*src, *dst, o, nullptr).code(), StatusCode::kNotFound);
}

TEST(CloneTest, InterruptedCloneLeavesNoRefAndResumesSkippingCopiedObjects) {
  auto src = MemStore();
  MakeDataset(src, "a", 6);
  MemoryBackends mem = NewMemoryBackends();
  auto faulty = std::make_shared<FaultInjectingBackend>(mem.objects, mem.refs);
  auto dst = std::shared_ptr<Store>(Store::FromBackends("memory://", faulty, faulty));
  faulty->CrashAfterMutations(5);  // the destination dies after five objects
  CloneOptions o;
  o.parallelism = 1;
  CloneReport r;
  EXPECT_EQ(Clone(*src, *dst, o, &r).code(), StatusCode::kUnavailable);
  faulty->Restart();
  EXPECT_TRUE(Refs(*dst).empty());  // refs go last: none points at a missing object
  ASSERT_TRUE(Clone(*src, *dst, o, &r).ok());
  EXPECT_EQ(r.objects_present, 5u);
  EXPECT_EQ(r.objects_copied, r.objects - 5);
  EXPECT_EQ(Refs(*dst), Refs(*src));
  EXPECT_TRUE(Verify(*dst)->problems.empty());
}

TEST(CloneTest, BranchesMoveOnlyForwardAndDivergedRefsAreReported) {
  auto src = MemStore();
  MakeDataset(src, "a", 2);
  auto dst = MemStore();
  ASSERT_TRUE(Clone(*src, *dst, {}, nullptr).ok());
  // The source moves on: the destination's main is an ancestor, so it moves forward.
  {
    auto ds = *Dataset::Open(src, "a");
    Batch b;
    Column x(*ds->schema().Find("x"));
    x.AppendInt64(99);
    b.columns.push_back(std::move(x));
    ASSERT_TRUE(ds->AppendMany(b).ok());
  }
  CloneReport r;
  ASSERT_TRUE(Clone(*src, *dst, {}, &r).ok());
  EXPECT_EQ(r.refs_updated, 1u);
  EXPECT_EQ(Refs(*dst), Refs(*src));
  // The destination's dev gets its own commit: diverged, left alone, reported.
  {
    auto ds = *Dataset::Open(dst, "a", "dev");
    Batch b;
    Column x(*ds->schema().Find("x"));
    x.AppendInt64(7);
    b.columns.push_back(std::move(x));
    ASSERT_TRUE(ds->AppendMany(b).ok());
  }
  const ObjectId dst_dev = Refs(*dst)["a/branches/dev"];
  Status st = Clone(*src, *dst, {}, &r);
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.ToString();
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_NE(r.conflicts[0].find("a/branches/dev"), std::string::npos);
  EXPECT_EQ(Refs(*dst)["a/branches/dev"], dst_dev);
}

uint64_t Gets(const Store& s) {
  const StoreStats st = s.stats();
  uint64_t n = 0;
  for (uint64_t c : st.requests[StoreStats::kGet]) n += c;
  return n;
}

// The walk reads every object of the closure to find what it references; the copy used to
// read each one again. Now it reuses the walk's read (within retain_bytes).
TEST(CloneTest, CloneReadsEachSourceObjectOnce) {
  auto src = MemStore();
  MakeDataset(src, "a", 6);
  CloneReport r;
  const uint64_t before = Gets(*src);
  ASSERT_TRUE(Clone(*src, *MemStore(), {}, &r).ok());
  EXPECT_GT(r.objects, 10u);
  EXPECT_EQ(r.objects_copied, r.objects);
  EXPECT_EQ(Gets(*src) - before, r.objects);  // one GET per object, ref reads aside

  // With nothing kept, every copied object is read twice (the cost before).
  CloneOptions none;
  none.retain_bytes = 0;
  auto dst = MemStore();
  const uint64_t before_none = Gets(*src);
  ASSERT_TRUE(Clone(*src, *dst, none, &r).ok());
  EXPECT_GE(Gets(*src) - before_none, 2 * r.objects);
  EXPECT_EQ(Refs(*dst), Refs(*src));
  EXPECT_TRUE(Verify(*dst)->problems.empty());
}

TEST(CloneTest, DamagedSourceMovesNoRef) {
  auto src = MemStore();
  MakeDataset(src, "a", 2);
  // Replace one reachable non-manifest object with other bytes under its id.
  ObjectId victim;
  ASSERT_TRUE(src->ListObjects("",
                               [&](const ObjectInfo& info) {
                                 auto bytes = src->Get(info.id);
                                 if (bytes.ok() &&
                                     bytes->find("dreamdb.manifest") == std::string::npos &&
                                     bytes->find("dreamdb.genesis") == std::string::npos) {
                                   victim = info.id;
                                   return false;
                                 }
                                 return true;
                               })
                  .ok());
  ASSERT_TRUE(src->object_backend().Delete(victim).ok());
  ASSERT_TRUE(src->object_backend().Put(victim, "damaged").ok());
  ASSERT_FALSE(Verify(*src)->problems.empty());
  auto dst = MemStore();
  EXPECT_EQ(Clone(*src, *dst, {}, nullptr).code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Refs(*dst).empty());
}

}  // namespace
}  // namespace dreamdb
