// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Diff of two index versions (spec/11-anchor-index.md §7): correctness against the model
// and the O(changes * height) page-read bound.

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "src/btree/btree.h"
#include "src/btree/test_util.h"

namespace dreamdb::btree {

// For readable failures.
std::ostream& operator<<(std::ostream& os, const Change& c) {
  os << "{" << c.anchor << " " << static_cast<int>(c.kind) << " [";
  for (const auto& f : c.fields) os << f << " ";
  return os << "]}";
}

namespace {

using test::ApplyToModel;
using test::BatchGen;
using test::MakeTestStore;
using test::Model;
using test::ModelEntry;
using test::Seg;
using test::TestStore;

std::vector<std::string> Names(const ModelEntry& m) {
  std::vector<std::string> names;
  for (const auto& [n, loc] : m) names.push_back(n);
  std::sort(names.begin(), names.end(), cbor::KeyLess);
  return names;
}

std::vector<Change> ModelDiff(const Model& a, const Model& b) {
  std::vector<Change> out;
  std::set<uint64_t> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (uint64_t k : keys) {
    auto ia = a.find(k), ib = b.find(k);
    if (ib == b.end()) {
      out.push_back(Change{k, ChangeKind::kRemoved, Names(ia->second)});
    } else if (ia == a.end()) {
      out.push_back(Change{k, ChangeKind::kAdded, Names(ib->second)});
    } else if (ia->second != ib->second) {
      std::set<std::string> names;
      for (const auto& [n, loc] : ia->second) {
        auto it = ib->second.find(n);
        if (it == ib->second.end() || !(it->second == loc)) names.insert(n);
      }
      for (const auto& [n, loc] : ib->second) {
        if (!ia->second.count(n)) names.insert(n);
      }
      std::vector<std::string> v(names.begin(), names.end());
      std::sort(v.begin(), v.end(), cbor::KeyLess);
      out.push_back(Change{k, ChangeKind::kChanged, v});
    }
  }
  return out;
}

std::vector<Change> RunDiff(Store& store, const IndexRef& a, const IndexRef& b,
                            uint64_t* reads = nullptr) {
  std::vector<Change> out;
  Status s = Diff(store, nullptr, a, b, [&](const Change& c) {
    out.push_back(c);
    return true;
  }, reads);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

IndexRef Up(Store& store, const IndexRef& base, const Batch& batch) {
  auto r = Upsert(store, nullptr, base, batch);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : base;
}

TEST(DiffTest, MatchesModelUnderRandomChanges) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    BatchGen gen{std::mt19937_64(seed)};
    Model ma;
    IndexRef a;
    const size_t size = seed < 2 ? 40 : 20000;  // inline and paged bases
    for (int i = 0; i < 3; ++i) {
      Batch b = gen.MakeBatch(gen.DistinctAnchors(size / 3, 0, 100000));
      ApplyToModel(b, &ma);
      a = Up(store, a, b);
    }
    Model mb = ma;
    IndexRef b = a;
    for (int i = 0; i < 4; ++i) {
      Batch batch;
      for (uint64_t x : gen.DistinctAnchors(1 + gen.rng() % 40, 0, 110000)) {
        batch.Add(gen.RandomEntry(x, /*allow_empty=*/true), gen.rng() % 4 == 0);
      }
      ApplyToModel(batch, &mb);
      b = Up(store, b, batch);
      std::vector<uint64_t> gone = gen.DistinctAnchors(1 + gen.rng() % 30, 0, 100000);
      for (int k = 0; k < 5 && !mb.empty(); ++k) {
        auto it = mb.lower_bound(gen.rng() % 100000);
        if (it != mb.end()) gone.push_back(it->first);
      }
      std::sort(gone.begin(), gone.end());
      gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
      for (uint64_t x : gone) mb.erase(x);
      auto r = Remove(store, nullptr, b, gone);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      b = *r;
    }
    EXPECT_EQ(RunDiff(store, a, b), ModelDiff(ma, mb)) << "seed " << seed;
    EXPECT_EQ(RunDiff(store, b, a), ModelDiff(mb, ma)) << "seed " << seed;
    EXPECT_TRUE(RunDiff(store, a, a).empty());
    EXPECT_EQ(RunDiff(store, IndexRef(), b), ModelDiff(Model(), mb));
    EXPECT_EQ(RunDiff(store, b, IndexRef()), ModelDiff(mb, Model()));
  }
}

TEST(DiffTest, DifferentShapesSameContent) {
  // The same entries built by bulk append (full leaves) and by random inserts (half
  // leaves): no page is shared, yet the diff is empty.
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(1)};
  std::vector<Entry> entries;
  for (uint64_t a = 0; a < 30000; ++a) entries.push_back(gen.RandomEntry(a * 3));
  Batch all;
  for (const Entry& e : entries) all.Add(e);
  IndexRef bulk = Up(*t.store, IndexRef(), all);
  IndexRef pieces;
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), gen.rng);
  for (size_t k = 0; k < order.size(); k += 3000) {
    std::vector<size_t> part(order.begin() + k, order.begin() + std::min(order.size(), k + 3000));
    std::sort(part.begin(), part.end());
    Batch b;
    for (size_t i : part) b.Add(entries[i]);
    pieces = Up(*t.store, pieces, b);
  }
  ASSERT_FALSE(bulk.root == pieces.root);
  EXPECT_TRUE(RunDiff(*t.store, bulk, pieces).empty());
}

TEST(DiffTest, ReadsOnlyPathsToChanges) {
  TestStore t = MakeTestStore();
  Store& store = *t.store;
  BatchGen gen{std::mt19937_64(77)};
  Model ma;
  IndexRef a;
  for (uint64_t lo = 0; lo < 100000; lo += 10000) {
    std::vector<uint64_t> anchors;
    for (uint64_t x = lo; x < lo + 10000; ++x) anchors.push_back(x);
    Batch b = gen.MakeBatch(anchors);
    ApplyToModel(b, &ma);
    a = Up(store, a, b);
  }
  ASSERT_EQ(a.count, 100000u);
  const uint64_t h = a.height;
  ASSERT_EQ(h, 3u);
  // Ten commits of one change each: overwrites, inserts (which split full leaves) and a
  // removal, spread over the key space.
  Model mb = ma;
  IndexRef b = a;
  for (int i = 0; i < 10; ++i) {
    const uint64_t x = 5000 + static_cast<uint64_t>(i) * 9973;
    if (i == 9) {
      mb.erase(x);
      auto r = Remove(store, nullptr, b, std::vector<uint64_t>{x});
      ASSERT_TRUE(r.ok());
      b = *r;
      continue;
    }
    Batch batch;
    if (i % 2 == 0) {
      batch.Add(Entry{x, {{"a", FieldLoc{Seg(1000 + i), 1}}}});
    } else {
      batch.Add(gen.RandomEntry(200000 + x));
    }
    ApplyToModel(batch, &mb);
    b = Up(store, b, batch);
  }
  const uint64_t gets = t.gets();
  uint64_t reads = 0;
  std::vector<Change> changes = RunDiff(store, a, b, &reads);
  EXPECT_EQ(changes, ModelDiff(ma, mb));
  EXPECT_EQ(changes.size(), 10u);
  EXPECT_EQ(t.gets() - gets, reads);
  // Each change costs at most one path per side (2 * h); paths share their upper levels.
  EXPECT_LE(reads, 2 * 10 * h) << "pages read";
  EXPECT_GE(reads, 2 * h);
  // Equal versions read nothing at all.
  reads = 0;
  EXPECT_TRUE(RunDiff(store, b, b, &reads).empty());
  EXPECT_EQ(reads, 0u);
}

TEST(DiffTest, TombstoneSetsAndEarlyStop) {
  TestStore t = MakeTestStore();
  std::vector<uint64_t> xs;
  for (uint64_t x = 0; x < 5000; x += 2) xs.push_back(x);
  auto a = InsertAnchors(*t.store, nullptr, IndexRef(), xs);
  ASSERT_TRUE(a.ok());
  auto b = InsertAnchors(*t.store, nullptr, *a, std::vector<uint64_t>{1, 4001});
  ASSERT_TRUE(b.ok());
  auto c = RemoveAnchors(*t.store, nullptr, *b, std::vector<uint64_t>{0, 2000});
  ASSERT_TRUE(c.ok());
  std::vector<Change> changes = RunDiff(*t.store, *a, *c);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0], (Change{0, ChangeKind::kRemoved, {}}));
  EXPECT_EQ(changes[1], (Change{1, ChangeKind::kAdded, {}}));
  EXPECT_EQ(changes[2], (Change{2000, ChangeKind::kRemoved, {}}));
  EXPECT_EQ(changes[3], (Change{4001, ChangeKind::kAdded, {}}));
  // Stopping early.
  int seen = 0;
  Status s = Diff(*t.store, nullptr, *a, *c, [&](const Change&) { return ++seen < 2; });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(seen, 2);
}

TEST(DiffTest, CorruptPageIsReported) {
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(4)};
  Batch big;
  for (uint64_t x = 0; x < 2000; ++x) big.Add(gen.RandomEntry(x));
  IndexRef a = Up(*t.store, IndexRef(), big);
  Batch one;
  one.Add(gen.RandomEntry(700));
  IndexRef b = Up(*t.store, a, one);
  // Drop a page only b has: the diff must read it and fail.
  ASSERT_TRUE(t.store->DeleteObject(b.root).ok());
  Status s = Diff(*t.store, nullptr, a, b, [](const Change&) { return true; });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace dreamdb::btree
