// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Tree::HighestGapBelow: the free runs automatic anchors fall back to when `next_anchor`
// is at the top of the anchor space (spec/14-semantics.md §2.3).
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "src/btree/btree.h"
#include "src/btree/test_util.h"

namespace dreamdb::btree {
namespace {

// The reference: the highest run of n free anchors below `end` among sorted `anchors`.
std::optional<Tree::Gap> ModelGap(const std::vector<uint64_t>& anchors, uint64_t end, uint64_t n) {
  uint64_t upper = end;
  for (size_t i = anchors.size(); i-- > 0;) {
    if (anchors[i] >= end) continue;
    if (upper - anchors[i] - 1 >= n) return Tree::Gap{anchors[i] + 1, upper};
    upper = anchors[i];
  }
  if (upper >= n) return Tree::Gap{0, upper};
  return std::nullopt;
}

IndexRef SetOf(Store& store, const std::vector<uint64_t>& sorted) {
  auto ref = InsertAnchors(store, nullptr, IndexRef::Empty(), sorted);
  EXPECT_TRUE(ref.ok()) << ref.status().ToString();
  return *ref;
}

TEST(HighestGapBelowTest, MatchesAModelOnInlineAndPagedTrees) {
  auto ts = test::MakeTestStore();
  // A dense run at the bottom, scattered anchors, and a dense run at the very top: the
  // top run spans many leaves and must cost few page reads.
  std::vector<uint64_t> anchors;
  for (uint64_t a = 0; a < 3000; ++a) anchors.push_back(a);
  for (uint64_t a = 5000; a < 9000; a += 7) anchors.push_back(a);
  for (uint64_t a = UINT64_MAX - 200000; a < UINT64_MAX; ++a) anchors.push_back(a);
  IndexRef ref = SetOf(*ts.store, anchors);
  ASSERT_TRUE(ref.is_paged());
  Tree tree(ts.store.get(), nullptr, ref);
  for (uint64_t end : {UINT64_MAX, UINT64_MAX - 200000, uint64_t{9000}, uint64_t{5003},
                       uint64_t{3000}, uint64_t{10}}) {
    for (uint64_t n : {1, 6, 7, 100, 5000}) {
      auto got = tree.HighestGapBelow(end, n);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      auto want = ModelGap(anchors, end, n);
      ASSERT_EQ(got->has_value(), want.has_value()) << "end " << end << " n " << n;
      if (want) {
        EXPECT_EQ((*got)->first, want->first) << "end " << end << " n " << n;
        EXPECT_EQ((*got)->limit, want->limit) << "end " << end << " n " << n;
      }
    }
  }
  // The 200,000 anchors at the top (~400 leaves) are skipped by their counts.
  const uint64_t before = ts.gets();
  auto gap = tree.HighestGapBelow(UINT64_MAX, 1000);
  ASSERT_TRUE(gap.ok() && *gap);
  EXPECT_EQ((*gap)->first, 8998u);
  EXPECT_LT(ts.gets() - before, 40u);

  std::vector<uint64_t> few = {3, 4, UINT64_MAX - 2};
  Tree small(ts.store.get(), nullptr, SetOf(*ts.store, few));
  ASSERT_TRUE(small.ref().is_inline());
  auto g = small.HighestGapBelow(UINT64_MAX, 2);
  ASSERT_TRUE(g.ok() && *g);
  EXPECT_EQ((*g)->first, 5u);
  EXPECT_EQ((*g)->limit, UINT64_MAX - 2);
  Tree empty(ts.store.get(), nullptr, IndexRef::Empty());
  auto e = empty.HighestGapBelow(UINT64_MAX, 3);
  ASSERT_TRUE(e.ok() && *e);
  EXPECT_EQ((*e)->first, 0u);
}

}  // namespace
}  // namespace dreamdb::btree
