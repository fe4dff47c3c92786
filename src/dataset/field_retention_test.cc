// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Per-field retention (spec/06-refs.md §6.12): a field's values in versions older than the
// window survive only where a branch, snapshot or lease targets the version, or a kept
// version shares them; the version keeps its other fields, reading the cut field fails
// naming it, verify lists the version as retained without it, and the bytes leave the store.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "src/dataset/retention_test_util.h"

namespace dreamdb {
namespace {

TEST_P(FieldRetention, OldVersionsLoseOnlyTheFieldWhileSnapshotsAndRecentHeadsKeepIt) {
  const Schema s = ds_->schema();
  const std::string secret = "RECLAIM-ME-5b1d0e-old-payload-of-record-1";
  Commit(OneRecord(s, 0, "zero", 0));
  const std::string old = Commit(OneRecord(s, 10, secret, 1));
  Commit(OneRecord(s, 11, "pinned-by-snapshot", 1));
  ASSERT_TRUE(ds_->Snapshot("snap").ok());
  const std::string mid = Commit(OneRecord(s, 12, "mid-history", 1));
  // The window starts here: everything above is older than it.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t window_start_ms = NowMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string recent = Commit(OneRecord(s, 13, "recent-history", 1));
  ASSERT_TRUE(ds_->Branch("side").ok());
  auto side = *Dataset::Open(store_, "d", "side");
  ASSERT_TRUE(side->AppendMany(OneRecord(s, 1, "side-head", 0)).ok());
  Commit(OneRecord(s, 14, "main-head", 1));
  ASSERT_FALSE(StoredCopiesOf(secret).empty());

  ASSERT_TRUE(SetFieldRetention(*store_, "d", "payload", 1000).ok());
  // GC's clock one second after the window started: keep-since 1s cuts what came before.
  const int64_t now = window_start_ms + 1000;

  GcReport dry = CollectAt(now, /*dry_run=*/true);
  ASSERT_EQ(dry.field_retention.size(), 1u);
  EXPECT_EQ(dry.field_retention[0].field, "payload");
  EXPECT_EQ(dry.field_retention[0].cutoff_ms, window_start_ms);
  // The payloads of `old` and `mid`: no ref targets those versions, no kept version
  // shares them.
  EXPECT_EQ(dry.field_retention[0].objects, 2u);
  EXPECT_GT(dry.field_retention[0].bytes, 0u);
  EXPECT_EQ(dry.deleted_objects, 2u);
  // The empty first version, `zero`, `old` and `mid` (the snapshot's version is a root).
  EXPECT_EQ(dry.field_retention[0].versions, 4u);
  EXPECT_FALSE(StoredCopiesOf(secret).empty());

  GcReport r = CollectAt(now);
  EXPECT_EQ(r.field_retention[0].objects, 2u);
  EXPECT_EQ(r.deleted_objects, 2u);
  // Erasure: no object (no file, for file://) of the store holds the reclaimed value any more.
  EXPECT_EQ(StoredCopiesOf(secret), std::vector<std::string>{});

  // The snapshot and the heads within the window read whole, recent history too.
  EXPECT_EQ(FieldValuesAt(store_, "snap", "payload"), "0=zero;1=pinned-by-snapshot;");
  EXPECT_EQ(FieldValuesAt(store_, "main", "payload"), "0=zero;1=main-head;");
  EXPECT_EQ(FieldValuesAt(store_, "side", "payload"), "0=side-head;1=recent-history;");
  EXPECT_EQ(FieldValuesAt(store_, recent, "payload"), "0=zero;1=recent-history;");
  // A version outside the window keeps its other fields...
  EXPECT_EQ(FieldValuesAt(store_, mid, "x"), "0=0;1=12;");
  EXPECT_EQ(FieldValuesAt(store_, old, "x"), "0=0;1=10;");
  // ...and reading the cut field fails naming the field and the version, never a bad read.
  const std::string err = FieldValuesAt(store_, mid, "payload");
  EXPECT_NE(err.find("not_found"), std::string::npos) << err;
  EXPECT_NE(err.find("retained without field 'payload'"), std::string::npos) << err;
  EXPECT_NE(err.find(mid), std::string::npos) << err;
  auto at_mid = *Dataset::OpenAt(store_, "d", mid);
  auto take = at_mid->Take({1}, {"payload"});
  EXPECT_EQ(take.status().code(), StatusCode::kNotFound);
  EXPECT_NE(take.status().message().find("retained without field 'payload'"), std::string::npos)
      << take.status().ToString();
  EXPECT_TRUE(at_mid->Take({1}, {"x"}).ok());

  // Verify: intact, with the cut versions listed as retained without the field.
  auto v = Verify(*store_, "d");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->problems.empty()) << v->problems[0];
  std::set<std::string> without;
  for (const auto& w : v->retained_without) {
    EXPECT_EQ(w.field, "payload");
    without.insert(w.manifest.ToString());
  }
  EXPECT_EQ(without, (std::set<std::string>{old, mid}));

  // The marker outlives the rule: a GC without it deletes nothing and finds no problem.
  ASSERT_TRUE(ClearFieldRetention(*store_, "d", "payload").ok());
  EXPECT_EQ(ClearFieldRetention(*store_, "d", "payload").code(), StatusCode::kNotFound);
  GcReport again = CollectAt(now + 1000);
  EXPECT_EQ(again.deleted_objects, 0u);
  EXPECT_EQ(FieldValuesAt(store_, "snap", "payload"), "0=zero;1=pinned-by-snapshot;");
}

TEST_P(FieldRetention, LeasesAndOldBranchHeadsKeepTheField) {
  const Schema s = ds_->schema();
  Commit(OneRecord(s, 0, "first", 0));
  ASSERT_TRUE(ds_->Branch("stale").ok());  // a branch head outside the window
  const std::string leased = Commit(OneRecord(s, 1, "leased", 0));
  auto lease =
      TakeLease(*store_, "d", "trainer", ObjectId::Parse(leased).value(), NowMs() / 1000 + 3600);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  const std::string lost = Commit(OneRecord(s, 2, "lost", 0));
  Commit(OneRecord(s, 3, "head", 0));
  ASSERT_TRUE(SetFieldRetention(*store_, "d", "payload", 1000).ok());
  GcReport r = CollectAt(NowMs() + 3000);  // every version is older than the window
  EXPECT_EQ(r.field_retention[0].objects, 1u);
  EXPECT_EQ(FieldValuesAt(store_, "stale", "payload"), "0=first;");
  EXPECT_EQ(FieldValuesAt(store_, leased, "payload"), "0=leased;");
  EXPECT_NE(FieldValuesAt(store_, lost, "payload").find("retained without field"),
            std::string::npos);
  EXPECT_EQ(FieldValuesAt(store_, "main", "payload"), "0=head;");
}

TEST_P(FieldRetention, RulesAreValidatedListedAndReplaced) {
  EXPECT_EQ(SetFieldRetention(*store_, "d", "nope", 1000).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SetFieldRetention(*store_, "missing", "x", 1000).code(), StatusCode::kNotFound);
  EXPECT_EQ(SetFieldRetention(*store_, "d", "x", 1500).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(SetFieldRetention(*store_, "d", "payload", 86400 * 1000).ok());
  ASSERT_TRUE(SetFieldRetention(*store_, "d", "payload", 30 * 86400 * 1000LL).ok());
  auto rules = ListFieldRetention(*store_, "d");
  ASSERT_TRUE(rules.ok());
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0].field, "payload");
  EXPECT_EQ((*rules)[0].keep_since_ms, 30 * 86400 * 1000LL);
  EXPECT_EQ((*rules)[0].ref, "d/retention/payload/2592000");
  // Nothing is old enough: GC cuts nothing and the dataset verifies.
  GcReport r = CollectAt(NowMs() + 1000);
  ASSERT_EQ(r.field_retention.size(), 1u);
  EXPECT_EQ(r.field_retention[0].versions, 0u);
  EXPECT_EQ(r.deleted_objects, 0u);
  auto v = Verify(*store_, "d");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->problems.empty());
}

}  // namespace
}  // namespace dreamdb
