// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The anchor index against a std::map model: upserts, removes, lookups, cursors, the
// inline form, the write-cost bound, the tombstone set, traversal checks and the cache.

#include "src/btree/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "src/base/io_pool.h"
#include "src/btree/internal.h"
#include "src/btree/test_util.h"

namespace dreamdb::btree {
namespace {

using test::ApplyToModel;
using test::BatchGen;
using test::MakeTestStore;
using test::Model;
using test::ModelEntries;
using test::ScanAll;
using test::Seg;
using test::TestStore;

std::vector<uint64_t> Range(uint64_t lo, uint64_t hi, uint64_t step = 1) {
  std::vector<uint64_t> v;
  for (uint64_t a = lo; a < hi; a += step) v.push_back(a);
  return v;
}

// Upsert that must succeed.
IndexRef Up(Store& store, PageCache* cache, const IndexRef& base, const Batch& batch,
            WriteStats* stats = nullptr) {
  auto r = Upsert(store, cache, base, batch, stats);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : base;
}

void ExpectMatches(Store& store, PageCache* cache, const IndexRef& ref, const Model& model) {
  Tree tree(&store, cache, ref);
  ASSERT_EQ(tree.Count(), model.size());
  Status v = tree.Verify();
  ASSERT_TRUE(v.ok()) << v.ToString();
  EXPECT_EQ(ScanAll(tree), ModelEntries(model));
}

// Number of leaf and node pages of a tree.
std::pair<size_t, size_t> CountPages(Store& store, const IndexRef& ref) {
  size_t leaves = 0, nodes = 0;
  Status s = VisitPages(store, nullptr, ref, [&](const ObjectId&, uint32_t level) -> Result<bool> {
    (level == 0 ? leaves : nodes) += 1;
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return {leaves, nodes};
}

TEST(BtreeTest, EmptyTree) {
  TestStore t = MakeTestStore();
  Tree tree(t.store.get(), nullptr, IndexRef::Empty());
  EXPECT_EQ(tree.Count(), 0u);
  auto e = tree.Lookup(5);
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value());
  EXPECT_TRUE(ScanAll(tree).empty());
  EXPECT_TRUE(tree.Verify().ok());
  // An empty batch changes nothing and writes nothing.
  auto r = Upsert(*t.store, nullptr, IndexRef::Empty(), Batch());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  auto r2 = Remove(*t.store, nullptr, IndexRef::Empty(), std::vector<uint64_t>{1, 2});
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->empty());
  EXPECT_EQ(t.puts(), 0u);
}

TEST(BtreeTest, InlineAndPagedTransitions) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(1)};
  Model model;
  IndexRef ref;
  // 64 entries: inline, nothing written.
  Batch b = gen.MakeBatch(Range(0, 128, 2));
  ApplyToModel(b, &model);
  WriteStats stats;
  ref = Up(store, nullptr, ref, b, &stats);
  EXPECT_TRUE(ref.is_inline());
  EXPECT_EQ(ref.count, 64u);
  EXPECT_EQ(stats.pages_written, 0u);
  EXPECT_EQ(t.puts(), 0u);
  ExpectMatches(store, nullptr, ref, model);
  // One more: a paged root leaf of 65 entries (one page).
  b = gen.MakeBatch({1});
  ApplyToModel(b, &model);
  stats = {};
  ref = Up(store, nullptr, ref, b, &stats);
  EXPECT_TRUE(ref.is_paged());
  EXPECT_EQ(ref.height, 1u);
  EXPECT_EQ(ref.count, 65u);
  EXPECT_EQ(stats.pages_written, 1u);
  ExpectMatches(store, nullptr, ref, model);
  // IndexRef survives the manifest encoding.
  auto back = IndexRefFromCbor(IndexRefToCbor(ref), "m");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == ref);
  // Grow to two levels.
  b = gen.MakeBatch(Range(1000, 1600));
  ApplyToModel(b, &model);
  ref = Up(store, nullptr, ref, b);
  EXPECT_EQ(ref.height, 2u);
  ExpectMatches(store, nullptr, ref, model);
  // Remove down to 64: inline again.
  std::vector<uint64_t> gone;
  for (const auto& [a, f] : model) {
    if (gone.size() + 64 < model.size()) gone.push_back(a);
  }
  uint64_t removed = 0;
  auto r = Remove(store, nullptr, ref, gone, &removed);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(removed, gone.size());
  for (uint64_t a : gone) model.erase(a);
  EXPECT_TRUE(r->is_inline());
  EXPECT_EQ(r->count, 64u);
  ExpectMatches(store, nullptr, *r, model);
  // Remove everything: empty.
  std::vector<uint64_t> rest;
  for (const auto& [a, f] : model) rest.push_back(a);
  r = Remove(store, nullptr, *r, rest, &removed);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(removed, 64u);
}

TEST(BtreeTest, RandomOperationsMatchModel) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  PageCache cache(4 << 20);
  BatchGen gen{std::mt19937_64(42)};
  Model model;
  IndexRef ref;
  uint64_t next = 1000000;
  for (int step = 0; step < 70; ++step) {
    const int op = static_cast<int>(gen.rng() % 6);
    Batch b;
    if (op == 0) {  // ascending append
      std::vector<uint64_t> a = Range(next, next + 1 + gen.rng() % 600);
      next = a.back() + 1 + gen.rng() % 3;
      b = gen.MakeBatch(a);
    } else if (op == 1) {  // random-order inserts anywhere
      b = gen.MakeBatch(gen.DistinctAnchors(1 + gen.rng() % 300, 0, next + 1000));
    } else if (op == 2 && !model.empty()) {  // overwrite some fields of existing anchors
      std::set<uint64_t> pick;
      for (int i = 0; i < 50; ++i) {
        auto it = model.lower_bound(gen.rng() % next);
        if (it != model.end()) pick.insert(it->first);
      }
      for (uint64_t a : pick) b.Add(gen.RandomEntry(a, /*allow_empty=*/true));
    } else if (op == 3 && !model.empty()) {  // replace (resurrect) some anchors
      std::set<uint64_t> pick;
      for (int i = 0; i < 20; ++i) {
        auto it = model.lower_bound(gen.rng() % next);
        if (it != model.end()) pick.insert(it->first);
      }
      pick.insert(next + 5);
      for (uint64_t a : pick) b.Add(gen.RandomEntry(a), /*replace_all=*/gen.rng() % 2 == 0);
    } else if (op == 4 && !model.empty()) {  // remove some present and absent anchors
      std::vector<uint64_t> gone = gen.DistinctAnchors(1 + gen.rng() % 200, 0, next);
      for (int i = 0; i < 30; ++i) {
        auto it = model.lower_bound(gen.rng() % next);
        if (it != model.end()) gone.push_back(it->first);
      }
      std::sort(gone.begin(), gone.end());
      gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
      uint64_t removed = 0, expect = 0;
      for (uint64_t a : gone) expect += model.erase(a);
      auto r = Remove(store, &cache, ref, gone, &removed);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(removed, expect);
      ref = *r;
    } else {  // large sorted batch
      b = gen.MakeBatch(gen.DistinctAnchors(1 + gen.rng() % 1200, 0, next));
    }
    if (b.size() > 0) {
      ApplyToModel(b, &model);
      ref = Up(store, &cache, ref, b);
    }
    ASSERT_EQ(ref.count, model.size()) << "step " << step;
    // Spot lookups, present and absent.
    Tree tree(&store, &cache, ref);
    for (int i = 0; i < 20; ++i) {
      uint64_t a = gen.rng() % (next + 10);
      if (i % 2 == 0 && !model.empty()) {
        auto it = model.lower_bound(a);
        if (it != model.end()) a = it->first;
      }
      auto e = tree.Lookup(a);
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      auto it = model.find(a);
      ASSERT_EQ(e->has_value(), it != model.end()) << a;
      if (it != model.end()) {
        EXPECT_EQ(**e, test::ToEntry(a, it->second));
      }
    }
    if (step % 25 == 24) ExpectMatches(store, &cache, ref, model);
  }
  ExpectMatches(store, &cache, ref, model);
  // The same tree read without a cache (every page from the store) agrees.
  ExpectMatches(store, nullptr, ref, model);
  EXPECT_GT(ref.height, 1u);
}

TEST(BtreeTest, AscendingAppendsFillLeaves) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(7)};
  gen.fields = {"a"};
  IndexRef ref;
  // Appends in commits of varying size, like a growing dataset.
  uint64_t next = 0;
  while (next < 100000) {
    size_t n = 1 + gen.rng() % 4000;
    ref = Up(store, nullptr, ref, gen.MakeBatch(Range(next, next + n)));
    next += n;
  }
  ASSERT_EQ(ref.count, next);
  Tree tree(&store, nullptr, ref);
  ASSERT_TRUE(tree.Verify().ok());
  // Every leaf is full except the last; level-1 nodes too.
  auto [leaves, nodes] = CountPages(store, ref);
  EXPECT_EQ(leaves, (next + kLeafCapacity - 1) / kLeafCapacity);
  EXPECT_EQ(ref.height, 3u);
  EXPECT_EQ(nodes, 1 + (leaves + kNodeFanout - 1) / kNodeFanout);
  for (uint64_t a : {uint64_t{0}, uint64_t{511}, uint64_t{512}, next - 1, next}) {
    auto e = tree.Lookup(a);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->has_value(), a < next) << a;
  }
}

TEST(BtreeTest, SmallCommitsWriteOnlyThePath) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(9)};
  gen.fields = {"a"};
  std::set<uint64_t> model;  // anchors only
  // A 100k tree built by three random batches: the first fills leaves (an append to an
  // empty tree), the next two split every leaf, leaving them about 3/4 full.
  IndexRef ref;
  while (model.size() < 100000) {
    size_t n = std::min<size_t>(34000, 100000 - model.size());
    Batch b = gen.MakeBatch(gen.DistinctAnchors(n, 0, 1u << 30));
    model.insert(b.anchors.begin(), b.anchors.end());
    ref = Up(store, nullptr, ref, b);
  }
  ASSERT_EQ(ref.count, 100000u);
  ASSERT_EQ(ref.height, 3u);
  const uint64_t h = ref.height;
  size_t splits = 0;
  for (int i = 0; i < 60; ++i) {
    Batch b;
    if (i % 3 == 0) {  // overwrite one field of one existing anchor
      auto it = model.lower_bound(gen.rng() % (1u << 30));
      if (it == model.end()) it = model.begin();
      b.Add(Entry{*it, {{"a", FieldLoc{Seg(99), static_cast<uint32_t>(i)}}}});
    } else if (i % 3 == 1) {  // insert one new anchor somewhere
      b = gen.MakeBatch(gen.DistinctAnchors(1, 0, 1u << 30));
    } else {  // append one anchor at the end
      b = gen.MakeBatch({(1u << 30) + static_cast<uint64_t>(i)});
    }
    model.insert(b.anchors.begin(), b.anchors.end());
    WriteStats stats;
    const uint64_t gets = t.gets();
    IndexRef next = Up(store, nullptr, ref, b, &stats);
    // Writes: the path, plus one page when the leaf splits.
    EXPECT_LE(stats.pages_written, h + 1) << "commit " << i;
    EXPECT_GE(stats.pages_written, h) << "commit " << i;
    if (stats.pages_written > h) ++splits;
    // Reads: exactly the old path (no cache), nothing else.
    EXPECT_EQ(t.gets() - gets, ref.height) << "commit " << i;
    EXPECT_EQ(stats.pages_read, ref.height);
    ref = next;
  }
  EXPECT_LT(splits, 20u);
  Tree tree(&store, nullptr, ref);
  ASSERT_EQ(tree.Count(), model.size());
  ASSERT_TRUE(tree.Verify().ok());
}

TEST(BtreeTest, AppendToFullRightmostLeafWritesHeightPages) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(3)};
  gen.fields = {"a"};
  IndexRef ref = Up(store, nullptr, IndexRef(), gen.MakeBatch(Range(0, 512 * 130)));
  ASSERT_EQ(ref.height, 3u);
  // Every leaf is full, so appending one entry adds a leaf; the full rightmost leaf is
  // not rewritten.
  WriteStats stats;
  IndexRef next = Up(store, nullptr, ref, gen.MakeBatch({512 * 130}), &stats);
  EXPECT_EQ(stats.pages_written, 3u);
  EXPECT_TRUE(Tree(&store, nullptr, next).Verify().ok());
  // Re-applying identical locations writes nothing and keeps the root.
  Batch same;
  auto e = Tree(&store, nullptr, next).Lookup(77);
  ASSERT_TRUE(e.ok() && e->has_value());
  same.Add(**e);
  stats = {};
  IndexRef again = Up(store, nullptr, next, same, &stats);
  EXPECT_EQ(stats.pages_written, 0u);
  EXPECT_TRUE(again == next);
}

TEST(BtreeTest, RandomInsertsSplitIntoHalves) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(5)};
  // A full leaf that gets one anchor in the middle splits into 257 + 256.
  IndexRef ref = Up(*t.store, nullptr, IndexRef(), gen.MakeBatch(Range(0, 1024, 2)));
  ASSERT_EQ(ref.height, 1u);
  ref = Up(*t.store, nullptr, ref, gen.MakeBatch({501}));
  ASSERT_EQ(ref.height, 2u);
  auto root = FetchPage(*t.store, nullptr, ref.root);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)->node().counts, (std::vector<uint64_t>{257, 256}));
}

TEST(BtreeTest, ReplaceDropsOldFields) {
  TestStore t = MakeTestStore();
  Batch b;
  b.Add(Entry{5, {{"a", {Seg(1), 1}}, {"b", {Seg(1), 2}}}});
  IndexRef ref = Up(*t.store, nullptr, IndexRef(), b);
  Batch keep;
  keep.Add(Entry{5, {{"b", {Seg(2), 7}}}});
  IndexRef merged = Up(*t.store, nullptr, ref, keep);
  Batch repl;
  repl.Add(Entry{5, {{"b", {Seg(2), 7}}}}, /*replace_all=*/true);
  IndexRef replaced = Up(*t.store, nullptr, ref, repl);
  auto m = Tree(t.store.get(), nullptr, merged).Lookup(5);
  auto r = Tree(t.store.get(), nullptr, replaced).Lookup(5);
  ASSERT_TRUE(m.ok() && r.ok());
  EXPECT_EQ(**m, (Entry{5, {{"a", {Seg(1), 1}}, {"b", {Seg(2), 7}}}}));
  EXPECT_EQ(**r, (Entry{5, {{"b", {Seg(2), 7}}}}));
}

TEST(BtreeTest, RejectsMalformedBatches) {
  TestStore t = MakeTestStore();
  auto expect_invalid = [&](const Batch& b, const std::string& needle) {
    auto r = Upsert(*t.store, nullptr, IndexRef(), b);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  };
  Batch b;
  b.anchors = {1, 1};
  expect_invalid(b, "not strictly ascending at position 1");
  b.anchors = {2, 1};
  expect_invalid(b, "not strictly ascending");
  b.anchors = {1, 2};
  b.replace = {1};
  expect_invalid(b, "1 replace flags for 2 anchors");
  b.replace.clear();
  b.fields.push_back(BatchField{"a", {Seg(1)}, {0, 1}, {0, 0}});
  expect_invalid(b, "seg index 1 out of range");
  b.fields[0].seg = {0};
  expect_invalid(b, "1/2 seg/row values");
  b.fields[0].seg = {0, 0};
  b.fields.push_back(b.fields[0]);
  expect_invalid(b, "appears twice");
  b.fields[1].name = "";
  expect_invalid(b, "must be 1..255 bytes");
  auto r = Remove(*t.store, nullptr, IndexRef(), std::vector<uint64_t>{3, 2});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  Tree tree(t.store.get(), nullptr, IndexRef());
  EXPECT_EQ(tree.LookupMany(std::vector<uint64_t>{3, 3}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BtreeTest, CursorRanges) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(11)};
  gen.fields = {"a", "b"};
  Model model;
  // 65 full leaves of anchors 0, 6, 12, ..., then one insert per leaf splits each into
  // halves: 130 leaves, and the root splits too (height 3).
  IndexRef ref;
  Batch b = gen.MakeBatch(Range(0, 6 * 512 * 65, 6));
  ApplyToModel(b, &model);
  ref = Up(store, nullptr, ref, b);
  b = gen.MakeBatch(Range(6 * 100 + 1, 6 * 512 * 65, 6 * 512));
  ApplyToModel(b, &model);
  ref = Up(store, nullptr, ref, b);
  ASSERT_EQ(ref.height, 3u);
  const std::vector<Entry> all = ModelEntries(model);
  auto expect_range = [&](uint64_t s, uint64_t e) {
    std::vector<Entry> out;
    if (s >= e) return out;
    auto lo = std::lower_bound(all.begin(), all.end(), s,
                               [](const Entry& x, uint64_t a) { return x.anchor < a; });
    auto hi = std::lower_bound(all.begin(), all.end(), e,
                               [](const Entry& x, uint64_t a) { return x.anchor < a; });
    return std::vector<Entry>(lo, hi);
  };
  PageCache cache(64 << 20);
  Tree tree(&store, &cache, ref);
  const uint64_t first = all.front().anchor;
  const uint64_t last = all.back().anchor;
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {0, UINT64_MAX},
      {0, 0},
      {5, 5},
      {7, 3},
      {0, first},
      {0, first + 1},
      {first, first + 1},
      {last, last + 1},
      {last, UINT64_MAX},
      {last + 1, UINT64_MAX},
      {UINT64_MAX, UINT64_MAX},
      {first + 1, last},
      {123456, 123457},
      {1000, 150000},
      {199000, 200000},
  };
  // Leaf boundaries exactly (a sample of leaves).
  size_t leaf_no = 0;
  Status visited =
      VisitPages(store, &cache, ref, [&](const ObjectId& id, uint32_t level) -> Result<bool> {
        if (level == 0 && leaf_no++ % 24 == 1) {
          auto p = FetchPage(store, &cache, id);
          EXPECT_TRUE(p.ok());
          uint64_t k = (*p)->first_key();
          ranges.push_back({k, k + 1});
          ranges.push_back({k - 1, k});
          ranges.push_back({k - 1, k + 5000});
        }
        return true;
      });
  ASSERT_TRUE(visited.ok()) << visited.ToString();
  for (int i = 0; i < 15; ++i) {
    uint64_t a = gen.rng() % 200000;
    ranges.push_back({a, a + 1 + gen.rng() % 20000});
  }
  for (size_t prefetch : {1, 8}) {
    for (auto [s, e] : ranges) {
      if (prefetch == 1 && s == 0 && e == UINT64_MAX) continue;  // once is enough
      Cursor c = tree.Scan(s, e, ScanOptions{prefetch});
      std::vector<Entry> got;
      while (true) {
        auto n = c.Next();
        ASSERT_TRUE(n.ok()) << n.status().ToString();
        if (!n->has_value()) break;
        got.push_back(std::move(**n));
      }
      EXPECT_EQ(got, expect_range(s, e)) << "[" << s << ", " << e << ") prefetch " << prefetch;
      // Exhausted cursors stay exhausted.
      auto n = c.Next();
      ASSERT_TRUE(n.ok());
      EXPECT_FALSE(n->has_value());
    }
  }
  // Without a cache, leaves come from the store through the prefetch threads.
  Tree cold(&store, nullptr, ref);
  EXPECT_EQ(ScanAll(cold, 8).size(), all.size());
  // Leaf spans are non-empty, ordered and inside the range.
  Cursor c = tree.Scan(1000, 150000);
  uint64_t prev = 0;
  size_t total = 0;
  while (true) {
    auto span = c.NextLeaf();
    ASSERT_TRUE(span.ok());
    if (!span->has_value()) break;
    const LeafSpan& sp = **span;
    ASSERT_LT(sp.begin, sp.end);
    EXPECT_GE(sp.leaf->anchors[sp.begin], std::max<uint64_t>(prev, 1000));
    EXPECT_LT(sp.leaf->anchors[sp.end - 1], 150000u);
    prev = sp.leaf->anchors[sp.end - 1] + 1;
    total += sp.end - sp.begin;
  }
  EXPECT_EQ(total, expect_range(1000, 150000).size());
  // Abandoning a cursor with prefetches in flight is safe.
  {
    Cursor abandoned = cold.Scan();
    ASSERT_TRUE(abandoned.NextLeaf().ok());
  }
}

TEST(BtreeTest, CursorOverInlineAndRootLeaf) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(12)};
  for (uint64_t n : {10u, 100u}) {
    Model model;
    Batch b = gen.MakeBatch(Range(100, 100 + 3 * n, 3));
    ApplyToModel(b, &model);
    IndexRef ref = Up(*t.store, nullptr, IndexRef(), b);
    EXPECT_EQ(ref.is_inline(), n <= kInlineMaxEntries);
    Tree tree(t.store.get(), nullptr, ref);
    for (auto [s, e] : std::vector<std::pair<uint64_t, uint64_t>>{
             {0, UINT64_MAX}, {0, 100}, {100, 101}, {101, 103}, {150, 160}, {399, 1000}}) {
      Cursor c = tree.Scan(s, e);
      std::vector<Entry> got;
      while (true) {
        auto x = c.Next();
        ASSERT_TRUE(x.ok());
        if (!x->has_value()) break;
        got.push_back(**x);
      }
      EXPECT_EQ(got, ModelEntries(model, s, e));
    }
  }
}

TEST(BtreeTest, LookupManyReadsEachPageOnce) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(13)};
  gen.fields = {"a"};
  Model model;
  Batch b = gen.MakeBatch(Range(0, 100000, 2));
  ApplyToModel(b, &model);
  IndexRef ref = Up(store, nullptr, IndexRef(), b);
  Tree tree(&store, nullptr, ref);
  std::vector<uint64_t> q = gen.DistinctAnchors(3000, 0, 100010);
  const uint64_t gets = t.gets();
  auto got = tree.LookupMany(q);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const uint64_t reads = t.gets() - gets;
  // Every page at most once.
  auto [leaves, nodes] = CountPages(store, ref);
  EXPECT_LE(reads, leaves + nodes);
  ASSERT_EQ(got->size(), q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    auto it = model.find(q[i]);
    ASSERT_EQ((*got)[i].has_value(), it != model.end());
    if (it != model.end()) {
      EXPECT_EQ(*(*got)[i], test::ToEntry(q[i], it->second));
    }
  }
  // A few anchors read only their paths.
  const uint64_t before = t.gets();
  auto few = tree.LookupMany(std::vector<uint64_t>{4, 50000});
  ASSERT_TRUE(few.ok());
  EXPECT_LE(t.gets() - before, 2 * ref.height);
}

// LookupFieldMany: one field's locations, as LookupMany's entries hold them.
TEST(BtreeTest, LookupFieldManyMatchesLookupMany) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(17)};
  gen.fields = {"a", "b"};
  Batch b = gen.MakeBatch(Range(0, 20000, 2));
  IndexRef ref = Up(store, nullptr, IndexRef(), b);
  Tree tree(&store, nullptr, ref);
  std::vector<uint64_t> q = gen.DistinctAnchors(2000, 0, 20010);
  auto entries = tree.LookupMany(q);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  for (const char* field : {"a", "b", "missing"}) {
    auto locs = tree.LookupFieldMany(q, field);
    ASSERT_TRUE(locs.ok()) << locs.status().ToString();
    ASSERT_EQ(locs->size(), q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      const FieldLoc* want = (*entries)[i] ? (*entries)[i]->Find(field) : nullptr;
      ASSERT_EQ((*locs)[i].has_value(), want != nullptr) << field << " " << q[i];
      if (want != nullptr) {
        EXPECT_EQ(*(*locs)[i], *want);
      }
    }
  }
  EXPECT_EQ(tree.LookupFieldMany(std::vector<uint64_t>{3, 3}, "a").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BtreeTest, TombstoneSet) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  std::set<uint64_t> model;
  IndexRef set;
  BatchGen gen{std::mt19937_64(17)};
  for (int i = 0; i < 12; ++i) {
    std::vector<uint64_t> add = gen.DistinctAnchors(1 + gen.rng() % 3000, 0, 50000);
    auto r = InsertAnchors(store, nullptr, set, add);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    set = *r;
    model.insert(add.begin(), add.end());
    if (i % 3 == 2) {
      std::vector<uint64_t> del = gen.DistinctAnchors(500, 0, 50000);
      uint64_t removed = 0, expect = 0;
      for (uint64_t a : del) expect += model.erase(a);
      r = RemoveAnchors(store, nullptr, set, del, &removed);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(removed, expect);
      set = *r;
    }
    ASSERT_EQ(set.count, model.size());
  }
  for (int i = 0; i < 200; ++i) {
    uint64_t a = gen.rng() % 50000;
    auto c = Contains(store, nullptr, set, a);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, model.count(a) == 1) << a;
  }
  Tree tree(&store, nullptr, set);
  ASSERT_TRUE(tree.Verify().ok());
  std::vector<Entry> all = ScanAll(tree);
  ASSERT_EQ(all.size(), model.size());
  auto it = model.begin();
  for (const Entry& e : all) {
    EXPECT_EQ(e.anchor, *it++);
    EXPECT_TRUE(e.fields.empty());
  }
  // Inserting present anchors writes nothing.
  WriteStats stats;
  auto same = InsertAnchors(store, nullptr, set, std::vector<uint64_t>{*model.begin()}, &stats);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(*same == set);
  EXPECT_EQ(stats.pages_written, 0u);
}

TEST(BtreeTest, VisitPagesAndSegments) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(19)};
  gen.segments = 40;
  Model model;
  IndexRef ref;
  for (int i = 0; i < 3; ++i) {
    Batch b = gen.MakeBatch(gen.DistinctAnchors(3000, 0, 100000));
    ApplyToModel(b, &model);
    ref = Up(store, nullptr, ref, b);
  }
  std::set<ObjectId> pages;
  ASSERT_TRUE(VisitPages(store, nullptr, ref, [&](const ObjectId& id, uint32_t) -> Result<bool> {
                pages.insert(id);
                return true;
              }).ok());
  auto [leaves, nodes] = CountPages(store, ref);
  EXPECT_EQ(pages.size(), leaves + nodes);
  EXPECT_TRUE(pages.count(ref.root));
  // Every page visited exists in the store.
  for (const ObjectId& id : pages) EXPECT_TRUE(*store.Contains(id));
  // Segments: exactly those of the model, per field.
  std::set<std::pair<std::string, ObjectId>> want, got;
  for (const auto& [a, fields] : model) {
    for (const auto& [name, loc] : fields) want.insert({name, loc.segment});
  }
  ASSERT_TRUE(VisitSegments(store, nullptr, ref, [&](std::string_view f, const ObjectId& s) {
                got.insert({std::string(f), s});
                return Status::Ok();
              }).ok());
  EXPECT_EQ(got, want);
  // A visitor that skips a subtree keeps the walk from reading it.
  const uint64_t before = t.gets();
  size_t visited = 0;
  ASSERT_TRUE(VisitPages(store, nullptr, ref, [&](const ObjectId&, uint32_t) -> Result<bool> {
                ++visited;
                return false;
              }).ok());
  EXPECT_EQ(visited, 1u);
  EXPECT_EQ(t.gets(), before);
  // Errors from the visitor stop the walk.
  Status s = VisitSegments(store, nullptr, ref,
                           [&](std::string_view, const ObjectId&) { return Internal("stop"); });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  // Inline trees have no pages but do have segments.
  Batch small;
  small.Add(Entry{1, {{"x", {Seg(5), 0}}}});
  IndexRef inl = Up(store, nullptr, IndexRef(), small);
  size_t n = 0;
  ASSERT_TRUE(VisitPages(store, nullptr, inl, [&](const ObjectId&, uint32_t) -> Result<bool> {
                ++n;
                return true;
              }).ok());
  EXPECT_EQ(n, 0u);
  got.clear();
  ASSERT_TRUE(VisitSegments(store, nullptr, inl, [&](std::string_view f, const ObjectId& s) {
                got.insert({std::string(f), s});
                return Status::Ok();
              }).ok());
  EXPECT_EQ(got, (std::set<std::pair<std::string, ObjectId>>{{"x", Seg(5)}}));
}

// Hand-built trees that break a rule relating a page to its parent (T1-T4).
class TraversalCheckTest : public ::testing::Test {
 protected:
  ObjectId PutLeaf(std::vector<uint64_t> anchors) {
    Leaf leaf;
    leaf.anchors = std::move(anchors);
    auto bytes = EncodeLeaf(leaf);
    EXPECT_TRUE(bytes.ok());
    return *t_.store->Put(*bytes);
  }
  ObjectId PutNode(uint32_t level, std::vector<uint64_t> keys, std::vector<ObjectId> children,
                   std::vector<uint64_t> counts) {
    Node node{level, std::move(keys), std::move(children), std::move(counts)};
    auto bytes = EncodeNode(node);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    return *t_.store->Put(*bytes);
  }
  std::vector<uint64_t> Seq(uint64_t lo, uint64_t n) { return Range(lo, lo + n); }

  void ExpectCorrupt(const IndexRef& ref, const std::string& needle) {
    Tree tree(t_.store.get(), nullptr, ref);
    Status v = tree.Verify();
    EXPECT_EQ(v.code(), StatusCode::kCorrupt) << v.ToString();
    EXPECT_NE(v.message().find(needle), std::string::npos) << v.ToString();
    // A scan meets the same problem.
    Cursor c = tree.Scan();
    Status s;
    while (s.ok()) {
      auto n = c.Next();
      if (!n.ok()) {
        s = n.status();
      } else if (!n->has_value()) {
        break;
      }
    }
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << "scan: " << needle;
  }

  TestStore t_ = MakeTestStore();
};

TEST_F(TraversalCheckTest, GoodTreeVerifies) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(100, 100));
  ObjectId root = PutNode(1, {0, 100}, {a, b}, {100, 100});
  EXPECT_TRUE(Tree(t_.store.get(), nullptr, IndexRef::Paged(root, 2, 200)).Verify().ok());
}

TEST_F(TraversalCheckTest, KeyDiffersFromChild) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(100, 100));
  ObjectId root = PutNode(1, {0, 101}, {a, b}, {100, 100});
  ExpectCorrupt(IndexRef::Paged(root, 2, 200),
                "smallest anchor 100 differs from its parent's key 101");
}

TEST_F(TraversalCheckTest, ChildOverlapsNextKey) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(50, 100));
  ObjectId root = PutNode(1, {0, 50}, {a, b}, {100, 100});
  ExpectCorrupt(IndexRef::Paged(root, 2, 200), "is not below the next key 50");
}

TEST_F(TraversalCheckTest, CountMismatch) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(100, 100));
  ObjectId root = PutNode(1, {0, 100}, {a, b}, {100, 99});
  ExpectCorrupt(IndexRef::Paged(root, 2, 199), "holds 100 entries, its parent says 99");
  ObjectId root2 = PutNode(1, {0, 100}, {a, b}, {100, 100});
  ExpectCorrupt(IndexRef::Paged(root2, 2, 300), "holds 200 entries, its parent says 300");
}

TEST_F(TraversalCheckTest, LevelMismatch) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(100, 100));
  ObjectId mid = PutNode(1, {0, 100}, {a, b}, {100, 100});
  ObjectId c = PutLeaf(Seq(200, 100));
  // A level-2 node whose second child is a leaf.
  ObjectId root = PutNode(2, {0, 200}, {mid, c}, {200, 100});
  ExpectCorrupt(IndexRef::Paged(root, 3, 300),
                "is a leaf where its parent expects a node of level 1");
  // The IndexRef's height disagrees with the root.
  ExpectCorrupt(IndexRef::Paged(mid, 3, 200), "is a node of level 1 where its parent expects");
}

TEST_F(TraversalCheckTest, RootRules) {
  ObjectId a = PutLeaf(Seq(0, 100));
  ObjectId single = PutNode(1, {0}, {a}, {100});
  EXPECT_NE(Tree(t_.store.get(), nullptr, IndexRef::Paged(single, 2, 100))
                .Verify()
                .message()
                .find("at least 2 children"),
            std::string::npos);
  ObjectId small = PutLeaf(Seq(0, 10));
  EXPECT_NE(Tree(t_.store.get(), nullptr, IndexRef::Paged(small, 1, 10))
                .Verify()
                .message()
                .find("must be inline"),
            std::string::npos);
}

TEST_F(TraversalCheckTest, LookupChecksPath) {
  ObjectId a = PutLeaf(Seq(0, 100)), b = PutLeaf(Seq(100, 100));
  ObjectId root = PutNode(1, {0, 100}, {a, b}, {100, 101});
  Tree tree(t_.store.get(), nullptr, IndexRef::Paged(root, 2, 201));
  EXPECT_TRUE(tree.Lookup(5).ok());  // the first child is fine
  EXPECT_EQ(tree.Lookup(150).status().code(), StatusCode::kCorrupt);
  // Upserts refuse to build on a corrupt path too.
  Batch batch;
  batch.Add(Entry{150, {}});
  EXPECT_EQ(Upsert(*t_.store, nullptr, tree.ref(), batch).status().code(), StatusCode::kCorrupt);
}

// A walk fetches the children of a node a batch (internal::kParallelReads) at a time; a
// child that cannot be read stops it when its turn comes, after every leaf before it, as a
// walk reading one page at a time would: what verify and GC's mark see of a damaged tree
// does not depend on the batch size.
TEST_F(TraversalCheckTest, MissingChildStopsTheWalkAtItsTurnWhateverTheBatchSize) {
  const size_t n = internal::kParallelReads + 3;
  const size_t missing = n - 2;  // in the second batch, not its first child
  std::vector<uint64_t> keys, counts;
  std::vector<ObjectId> children;
  for (size_t i = 0; i < n; ++i) {
    keys.push_back(i * 100);
    counts.push_back(100);
    children.push_back(PutLeaf(Seq(i * 100, 100)));
  }
  const ObjectId root = PutNode(1, keys, children, counts);
  const IndexRef ref = IndexRef::Paged(root, 2, n * 100);
  ASSERT_TRUE(t_.store->DeleteObject(children[missing]).ok());
  PageCache warm(64 << 20);
  for (size_t i = 0; i < n; ++i) {
    if (i != missing) ASSERT_TRUE(FetchPage(*t_.store, &warm, children[i]).ok());
  }
  // Without a cache every child is read from the store; with a warm one the missing child
  // is its batch's only read.
  for (PageCache* cache : {static_cast<PageCache*>(nullptr), &warm}) {
    std::vector<uint64_t> firsts;
    Status s = VisitLeaves(*t_.store, cache, ref, [&](const Leaf& leaf) -> Status {
      firsts.push_back(leaf.anchors[0]);
      return Status::Ok();
    });
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
    ASSERT_EQ(firsts.size(), missing) << (cache ? "warm cache" : "no cache");
    for (size_t i = 0; i < missing; ++i) EXPECT_EQ(firsts[i], i * 100);
  }
}

// Reads the pages of a memory store slowly (so that concurrent reads overlap) and records
// the most threads the process had while one ran. Thread-safe (atomics).
class SlowThreadCountingBackend final : public ObjectBackend {
 public:
  explicit SlowThreadCountingBackend(std::shared_ptr<ObjectBackend> inner)
      : inner_(std::move(inner)) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    size_t threads = ProcessThreads();
    size_t seen = max_threads.load();
    while (threads > seen && !max_threads.compare_exchange_weak(seen, threads)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return inner_->Get(id);
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    return inner_->GetRange(id, offset, length);
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view prefix, const ObjectVisitor& visit) override {
    return inner_->List(prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }
  // Entries of /proc/self/task (0 where there is none).
  static size_t ProcessThreads() {
    std::error_code ec;
    size_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  }
  std::atomic<size_t> max_threads{0};

 private:
  std::shared_ptr<ObjectBackend> inner_;
};

// A batch of page reads (a take's index lookup: up to 64 leaves at once) started a
// std::async thread per page: ~50-150 us each to create and join. They now run on the
// process's I/O pool, which starts no thread per read.
TEST(BtreeFetchTest, BatchedPageReadsRunOnTheIoPoolNotAThreadEach) {
  std::shared_ptr<Store> mem = *Store::Open("memory://");
  auto slow = std::make_shared<SlowThreadCountingBackend>(
      std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()));
  std::unique_ptr<Store> store =
      Store::FromBackends("memory://", slow, std::shared_ptr<RefBackend>(mem, &mem->ref_backend()));
  std::vector<ObjectId> ids;
  for (uint64_t i = 0; i < 96; ++i) {
    Leaf leaf;
    leaf.anchors = {i};
    auto bytes = EncodeLeaf(leaf);
    ASSERT_TRUE(bytes.ok());
    ids.push_back(*store->Put(*bytes));
  }
  IoPool::ParallelFor(2, [](size_t) {});  // the pool exists before the count below
  const size_t before = SlowThreadCountingBackend::ProcessThreads();
  if (before == 0) GTEST_SKIP() << "no /proc/self/task";
  auto pages = internal::FetchMany(*store, nullptr, ids, nullptr);
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  ASSERT_EQ(pages->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ((*pages)[i]->leaf().anchors[0], i);
  EXPECT_LE(slow->max_threads.load(), before) << "threads started for the reads";
}

TEST(BtreeFaultTest, StoreErrorsPropagate) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(23)};
  gen.fields = {"a"};
  IndexRef ref = Up(*t.store, nullptr, IndexRef(), gen.MakeBatch(Range(0, 20000)));
  // A failing read.
  t.backend->FailNthCall(1, StatusCode::kUnavailable, FaultOp::kGet);
  auto r = Upsert(*t.store, nullptr, ref, gen.MakeBatch({5}));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("btree page"), std::string::npos) << r.status().ToString();
  // A failing write (any of the parallel puts).
  t.backend->ClearFaults();
  t.backend->FailNthCall(2, StatusCode::kIoError, FaultOp::kPut);
  r = Upsert(*t.store, nullptr, ref, gen.MakeBatch(Range(30000, 33000)));
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  // A missing page.
  t.backend->ClearFaults();
  ASSERT_TRUE(t.store->DeleteObject(ref.root).ok());
  auto l = Tree(t.store.get(), nullptr, ref).Lookup(1);
  EXPECT_EQ(l.status().code(), StatusCode::kNotFound);
}

TEST(PageCacheTest, LruByBytes) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(29)};
  gen.fields = {"a"};
  IndexRef ref = Up(*t.store, nullptr, IndexRef(), gen.MakeBatch(Range(0, 10000)));
  // Warm a cache large enough for everything: a second scan reads nothing.
  PageCache big(64 << 20);
  Tree tree(t.store.get(), &big, ref);
  ASSERT_EQ(ScanAll(tree).size(), 10000u);
  uint64_t gets = t.gets();
  ASSERT_EQ(ScanAll(tree).size(), 10000u);
  EXPECT_EQ(t.gets(), gets);
  EXPECT_GT(big.stats().hits, 0u);
  // A tiny cache stays within its budget.
  PageCache small(3 * 10000);
  Tree t2(t.store.get(), &small, ref);
  ASSERT_EQ(ScanAll(t2).size(), 10000u);
  EXPECT_LE(small.stats().size_bytes, 3u * 10000u);
  EXPECT_GT(small.stats().entries, 0u);
  small.Clear();
  EXPECT_EQ(small.stats().entries, 0u);
  EXPECT_EQ(small.stats().size_bytes, 0u);
}

TEST(PageCacheTest, ConcurrentReaders) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(31)};
  Model model;
  Batch b = gen.MakeBatch(Range(0, 30000, 3));
  ApplyToModel(b, &model);
  IndexRef ref = Up(*t.store, nullptr, IndexRef(), b);
  PageCache cache(200000);  // small: forces evictions while threads race
  Tree tree(t.store.get(), &cache, ref);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k]() {
      std::mt19937_64 rng(k);
      for (int i = 0; i < 100; ++i) {
        uint64_t a = rng() % 30000;
        auto e = tree.Lookup(a);
        if (!e.ok() || e->has_value() != (model.count(a) == 1)) ++failures;
      }
      if (ScanAll(tree, 4).size() != model.size()) ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace dreamdb::btree
