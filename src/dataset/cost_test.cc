// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Storage cost per ref (include/dreamdb/cost.h; spec/30-http-api.md §3.12).
#include "dreamdb/cost.h"

#include <gtest/gtest.h>

#include "dreamdb/dataset.h"

namespace dreamdb {
namespace {

Batch Labels(const Schema& s, int64_t first, size_t n) {
  Batch b;
  Column label(*s.Find("label"));
  for (size_t i = 0; i < n; ++i) label.AppendInt64(first + static_cast<int64_t>(i));
  b.columns.push_back(std::move(label));
  return b;
}

std::vector<RefValue> Refs(Store& store, const std::string& dataset) {
  std::vector<RefValue> refs;
  EXPECT_TRUE(store
                  .ListRefs(dataset + "/",
                            [&](const RefValue& r) {
                              refs.push_back(r);
                              return true;
                            })
                  .ok());
  return refs;
}

// main = v1 + one commit; branch exp = main + one commit. Everything v1 reaches, main
// reaches, and everything main reaches, exp reaches: only exp's own commit is unique.
TEST(StorageCost, UniqueAndSharedBytesFollowWhatEachRefReaches) {
  std::shared_ptr<Store> store = std::move(Store::Open("memory://").value());
  Schema s;
  ASSERT_TRUE(s.AddInt64("label").ok());
  auto ds = std::move(Dataset::Create(store, "d", s).value());
  ASSERT_TRUE(ds->AppendMany(Labels(s, 0, 100)).ok());
  ASSERT_TRUE(ds->Snapshot("v1").ok());
  ASSERT_TRUE(ds->AppendMany(Labels(s, 100, 50)).ok());
  ASSERT_TRUE(ds->Branch("exp").ok());
  auto exp = std::move(Dataset::Open(store, "d", "exp").value());
  ASSERT_TRUE(exp->AppendMany(Labels(s, 150, 10)).ok());
  // Another dataset's objects never count.
  auto other = std::move(Dataset::Create(store, "o", s).value());
  ASSERT_TRUE(other->AppendMany(Labels(s, 0, 10)).ok());

  const std::vector<RefValue> refs = Refs(*store, "d");
  ASSERT_EQ(refs.size(), 3u);
  auto cost = ComputeStorageCost(*store, "d", refs);
  ASSERT_TRUE(cost.ok()) << cost.status().ToString();
  ASSERT_TRUE(cost->complete);
  std::map<std::string, RefCost> by;
  for (const auto& r : cost->refs) by[r.ref] = r;
  const RefCost& main = by.at("d/branches/main");
  const RefCost& exp_cost = by.at("d/branches/exp");
  const RefCost& v1 = by.at("d/snapshots/v1");
  EXPECT_EQ(v1.unique_bytes, 0u);
  EXPECT_EQ(v1.unique_objects, 0u);
  EXPECT_EQ(main.unique_bytes, 0u);
  EXPECT_GT(exp_cost.unique_bytes, 0u);
  EXPECT_EQ(exp_cost.reachable_bytes, main.reachable_bytes + exp_cost.unique_bytes);
  EXPECT_GT(main.reachable_bytes, v1.reachable_bytes);
  uint64_t unique = 0;
  for (const auto& r : cost->refs) {
    EXPECT_LE(r.unique_bytes, r.reachable_bytes);
    unique += r.unique_bytes;
  }
  // Every object is counted once overall; the shared ones are reached by 2+ refs.
  EXPECT_GE(cost->bytes, main.reachable_bytes);
  EXPECT_LT(unique, cost->bytes);
  // Only the dataset's own refs are accepted.
  auto foreign = ComputeStorageCost(*store, "d", Refs(*store, "o"));
  EXPECT_EQ(foreign.status().code(), StatusCode::kInvalidArgument);
}

TEST(StorageCost, StopsAtTheObjectBound) {
  std::shared_ptr<Store> store = std::move(Store::Open("memory://").value());
  Schema s;
  ASSERT_TRUE(s.AddInt64("label").ok());
  auto ds = std::move(Dataset::Create(store, "d", s).value());
  ASSERT_TRUE(ds->AppendMany(Labels(s, 0, 100)).ok());
  StorageCostOptions options;
  options.max_objects = 2;
  auto cost = ComputeStorageCost(*store, "d", Refs(*store, "d"), options);
  ASSERT_TRUE(cost.ok());
  EXPECT_FALSE(cost->complete);
}

}  // namespace
}  // namespace dreamdb
