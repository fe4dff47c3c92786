// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The larger model test (label `slow`): ~200k entries through many mixed commits, with a
// diff check between far-apart versions.

#include <gtest/gtest.h>

#include <algorithm>

#include "src/btree/btree.h"
#include "src/btree/test_util.h"

namespace dreamdb::btree {
namespace {

using test::ApplyToModel;
using test::BatchGen;
using test::Model;

TEST(BtreeSlowTest, TwoHundredThousandEntries) {
  test::TestStore t = test::MakeTestStore();
  Store& store = *t.store;
  PageCache cache(16 << 20);
  BatchGen gen{std::mt19937_64(2024)};
  Model model;
  IndexRef ref;
  IndexRef early;
  Model early_model;
  uint64_t next = 1u << 20;
  for (int step = 0; model.size() < 200000; ++step) {
    Batch b;
    switch (gen.rng() % 4) {
      case 0: {  // appends
        std::vector<uint64_t> a;
        for (size_t n = 1 + gen.rng() % 5000; n > 0; --n) a.push_back(next++);
        b = gen.MakeBatch(a);
        break;
      }
      case 1:  // random inserts below the appended range
        b = gen.MakeBatch(gen.DistinctAnchors(1 + gen.rng() % 4000, 0, 1u << 20));
        break;
      case 2: {  // overwrite fields of existing anchors
        std::vector<uint64_t> pick;
        for (int i = 0; i < 300 && !model.empty(); ++i) {
          auto it = model.lower_bound(gen.rng() % next);
          if (it != model.end()) pick.push_back(it->first);
        }
        std::sort(pick.begin(), pick.end());
        pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
        for (uint64_t x : pick) b.Add(gen.RandomEntry(x, true));
        break;
      }
      default: {  // removals
        std::vector<uint64_t> gone = gen.DistinctAnchors(500, 0, next);
        for (uint64_t x : gone) model.erase(x);
        auto r = Remove(store, &cache, ref, gone);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        ref = *r;
      }
    }
    if (b.size() > 0) {
      ApplyToModel(b, &model);
      auto r = Upsert(store, &cache, ref, b);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ref = *r;
    }
    ASSERT_EQ(ref.count, model.size());
    if (step == 10) {
      early = ref;
      early_model = model;
    }
  }
  Tree tree(&store, &cache, ref);
  ASSERT_TRUE(tree.Verify().ok());
  EXPECT_EQ(test::ScanAll(tree), test::ModelEntries(model));
  // Spot lookups without a cache.
  Tree cold(&store, nullptr, ref);
  for (int i = 0; i < 2000; ++i) {
    uint64_t x = gen.rng() % next;
    auto e = cold.Lookup(x);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->has_value(), model.count(x) == 1);
  }
  // Diff between an early and the final version counts every difference.
  size_t changes = 0;
  ASSERT_TRUE(Diff(store, &cache, early, ref, [&](const Change&) {
                ++changes;
                return true;
              }).ok());
  size_t expect = 0;
  for (const auto& [k, v] : model) {
    auto it = early_model.find(k);
    if (it == early_model.end() || it->second != v) ++expect;
  }
  for (const auto& [k, v] : early_model) expect += model.count(k) == 0 ? 1 : 0;
  EXPECT_EQ(changes, expect);
}

}  // namespace
}  // namespace dreamdb::btree
