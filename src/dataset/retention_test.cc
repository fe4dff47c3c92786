// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// GC retention (spec/06-refs.md §6.10) and the erasure path (compact + GC): pruned
// history is cut cleanly (verify passes, log stops with a note), snapshots pin their
// versions, and a deleted record's bytes leave the store.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "src/dataset/retention_test_util.h"

namespace dreamdb {
namespace {

std::string Payloads(Dataset& ds) { return FieldValues(ds, "payload"); }

}  // namespace

// Six appends of `per_append` records, a keep-last-3 cut, then three more appends and a
// keep-last-2 cut: the history is cut cleanly each time.
void Retention::KeepLastCutsHistoryCleanly(size_t per_append) {
  const Schema s = ds_->schema();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(ds_->AppendMany(NumberedRecords(s, i, per_append)).ok());
  const std::vector<CommitInfo> full = Log(*ds_);
  ASSERT_EQ(full.size(), 7u);  // create + 6 appends
  const std::string content = Payloads(*ds_);

  GcReport r = Collect(/*keep_since_ms=*/-1, /*keep_last=*/3);
  EXPECT_EQ(r.pruned_versions, 1u);
  EXPECT_GT(r.deleted_objects, 0u);
  ExpectVerifies();
  const std::vector<CommitInfo> cut = Log(*ds_);
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_FALSE(cut[0].history_pruned);
  EXPECT_TRUE(cut[2].history_pruned);
  EXPECT_EQ(cut[2].manifest, full[2].manifest);
  EXPECT_EQ(Payloads(*ds_), content);
  // A version beyond the cut is gone: a clear not_found, not corruption.
  auto old = Dataset::OpenAt(store_, "d", full[4].manifest.ToString());
  EXPECT_EQ(old.status().code(), StatusCode::kNotFound) << old.status().ToString();
  EXPECT_NE(old.status().message().find("gc retention pruned older history"), std::string::npos)
      << old.status().ToString();
  // The marker is a ref of its own and survives a GC without rules (it is honoured).
  auto marker = store_->ReadRef("d/pruned/" + full[2].manifest.ToString());
  ASSERT_TRUE(marker.ok()) << marker.status().ToString();
  GcReport again = Collect(-1, 0);
  EXPECT_EQ(again.deleted_objects, 0u);
  ExpectVerifies();
  // Writing on moves the window: the next cut replaces the old marker.
  for (int i = 6; i < 9; ++i) ASSERT_TRUE(ds_->AppendMany(NumberedRecords(s, i, per_append)).ok());
  GcReport moved = Collect(-1, 2);
  EXPECT_EQ(moved.pruned_versions, 1u);
  EXPECT_EQ(moved.obsolete_markers, 1u);
  EXPECT_EQ(store_->ReadRef("d/pruned/" + full[2].manifest.ToString()).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Log(*ds_).size(), 2u);
  ExpectVerifies();
}

namespace {

TEST_P(Retention, KeepLastCutsHistoryCleanlyAndLogStopsWithANote) {
  KeepLastCutsHistoryCleanly(1);  // indexes of a few entries: inline, no pages walked
}

// Paged indexes whose root has more children than a walk fetches at once
// (btree::internal::kParallelReads): retention and GC's mark walk them in batches.
TEST_P(Retention, KeepLastCutsPagedHistoryWhoseNodesHaveMoreChildrenThanAWalkBatch) {
  KeepLastCutsHistoryCleanly(1000);
}

TEST_P(Retention, SnapshotsPinTheirVersionAndKeepSinceKeepsRecentHistory) {
  const Schema s = ds_->schema();
  ASSERT_TRUE(ds_->AppendMany(OneRecord(s, 1, "old-1")).ok());
  ASSERT_TRUE(ds_->Snapshot("v1").ok());
  const std::string v1 = Payloads(*ds_);
  for (int i = 2; i < 5; ++i)
    ASSERT_TRUE(ds_->AppendMany(OneRecord(s, i, "p" + std::to_string(i))).ok());
  // Everything is younger than an hour: --keep-since 1h keeps the whole history.
  GcReport keep = Collect(/*keep_since_ms=*/3600 * 1000, 0);
  EXPECT_EQ(keep.pruned_versions, 0u);
  EXPECT_EQ(keep.deleted_objects, 0u);
  // --keep-since 0: the heads only; the snapshot still reads.
  GcReport cut = Collect(0, 0);
  EXPECT_EQ(cut.pruned_versions, 2u);  // main's head and v1's version
  ExpectVerifies();
  auto snap = Dataset::OpenAt(store_, "d", "v1");
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(Payloads(**snap), v1);
  EXPECT_EQ(Log(*ds_).size(), 1u);
}

TEST_P(Retention, NamesLimitRetentionToThoseDatasets) {
  const Schema s = ds_->schema();
  auto other = *Dataset::Create(store_, "other", s);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ds_->AppendMany(OneRecord(s, i, "d" + std::to_string(i))).ok());
    ASSERT_TRUE(other->AppendMany(OneRecord(s, i, "o" + std::to_string(i))).ok());
  }
  GcReport r = Collect(-1, 1, {"other"});
  EXPECT_EQ(r.pruned_versions, 1u);
  EXPECT_EQ(Log(*ds_).size(), 4u);
  EXPECT_EQ(Log(*other).size(), 1u);
  ExpectVerifies();
  GcOptions names_alone;
  names_alone.datasets = {"d"};
  EXPECT_EQ(CollectGarbage(*store_, names_alone, nullptr).code(), StatusCode::kInvalidArgument);
}

TEST_P(Retention, DeleteCompactAndGcLeaveNoneOfADeletedRecordsBytes) {
  const Schema s = ds_->schema();
  const std::string secret = "ERASE-ME-7f3a9c1e-a-distinctive-personal-record";
  // The record shares its segments with others: deleting it must not keep them alive.
  Batch batch;
  Column cx(*s.Find("x")), cp(*s.Find("payload"));
  for (int i = 0; i < 5; ++i) {
    cx.AppendInt64(i);
    cp.AppendBytes(i == 2 ? secret : "keep-" + std::to_string(i));
  }
  batch.columns.push_back(std::move(cx));
  batch.columns.push_back(std::move(cp));
  ASSERT_TRUE(ds_->AppendMany(batch).ok());
  ASSERT_TRUE(ds_->AppendMany(OneRecord(s, 9, "later")).ok());
  ASSERT_FALSE(StoredCopiesOf(secret).empty());

  ASSERT_TRUE(ds_->Delete({2}).ok());
  // Delete alone: older versions still hold it.
  Collect(-1, 0);
  EXPECT_FALSE(StoredCopiesOf(secret).empty());
  // Compact: the head no longer reaches its segment; retention drops the older versions.
  CompactReport cr;
  ASSERT_TRUE(ds_->Compact({}, &cr).ok());
  ASSERT_TRUE(cr.changed);
  GcReport r = Collect(/*keep_since_ms=*/0, /*keep_last=*/1);
  EXPECT_GT(r.deleted_objects, 0u);
  EXPECT_EQ(StoredCopiesOf(secret), std::vector<std::string>{});
  EXPECT_EQ(Payloads(*ds_), "0=keep-0;1=keep-1;3=keep-3;4=keep-4;5=later;");
  ExpectVerifies();
  auto t = ds_->Take({2}, {"payload"});
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
}

TEST_P(Retention, BranchRefsAtRawObjectsAreKeptAloneNotProblems) {
  // `ref create demo/branches/main <raw object>`, as the README demo does.
  auto raw = store_->Put(std::string_view("hello, dreamdb\n"));
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(store_->CreateRef("demo/branches/main", *raw).ok());
  ASSERT_TRUE(store_->CreateRef("demo/snapshots/v1", *raw).ok());
  auto orphan = store_->Put(std::string_view("nothing names this"));
  ASSERT_TRUE(orphan.ok());
  GcReport r = Collect(-1, 0);
  EXPECT_TRUE(r.problems.empty());
  EXPECT_TRUE(store_->Head(*raw).ok());
  EXPECT_EQ(store_->Head(*orphan).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dreamdb
