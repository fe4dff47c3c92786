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
  auto ia = a.begin(), ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      out.push_back(Change{ia->first, ChangeKind::kRemoved, Names(ia->second)});
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      out.push_back(Change{ib->first, ChangeKind::kAdded, Names(ib->second)});
      ++ib;
    } else {
      if (ia->second != ib->second) {
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
        out.push_back(Change{ia->first, ChangeKind::kChanged, v});
      }
      ++ia;
      ++ib;
    }
  }
  return out;
}

std::vector<Change> RunDiff(Store& store, const IndexRef& a, const IndexRef& b,
                            uint64_t* reads = nullptr) {
  std::vector<Change> out;
  Status s = Diff(
      store, nullptr, a, b,
      [&](const Change& c) {
        out.push_back(c);
        return true;
      },
      reads);
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
  for (uint64_t seed = 0; seed < 4; ++seed) {
    BatchGen gen{std::mt19937_64(seed)};
    Model ma;
    IndexRef a;
    const size_t size = seed < 2 ? 40 : 6000;  // inline and paged bases
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
    if (seed % 2 == 0) {
      EXPECT_EQ(RunDiff(store, IndexRef(), b), ModelDiff(Model(), mb));
      EXPECT_EQ(RunDiff(store, b, IndexRef()), ModelDiff(mb, Model()));
    }
  }
}

TEST(DiffTest, DifferentShapesSameContent) {
  // The same entries built by bulk append (full leaves) and by random inserts (half
  // leaves): no page is shared, yet the diff is empty.
  TestStore t = MakeTestStore();
  BatchGen gen{std::mt19937_64(1)};
  std::vector<Entry> entries;
  for (uint64_t a = 0; a < 12000; ++a) entries.push_back(gen.RandomEntry(a * 3));
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
  gen.fields = {"a"};
  // 100k anchors 0, 2, 4, ... appended in ten commits (full pages, height 3).
  IndexRef a;
  for (uint64_t lo = 0; lo < 200000; lo += 20000) {
    std::vector<uint64_t> anchors;
    for (uint64_t x = lo; x < lo + 20000; x += 2) anchors.push_back(x);
    a = Up(store, a, gen.MakeBatch(anchors));
  }
  ASSERT_EQ(a.count, 100000u);
  const uint64_t h = a.height;
  ASSERT_EQ(h, 3u);
  // Ten commits of one change each, spread over the key space: overwrites, inserts (which
  // split full leaves, and full nodes above them) and a removal.
  std::vector<Change> want;
  IndexRef b = a;
  for (int i = 0; i < 10; ++i) {
    const uint64_t x = 10000 + static_cast<uint64_t>(i) * 19998;  // even: present in a
    Batch batch;
    if (i == 9) {
      auto r = Remove(store, nullptr, b, std::vector<uint64_t>{x});
      ASSERT_TRUE(r.ok());
      b = *r;
      want.push_back(Change{x, ChangeKind::kRemoved, {"a"}});
    } else if (i % 2 == 0) {
      batch.Add(Entry{x, {{"b", FieldLoc{Seg(1000 + i), 1}}}});
      b = Up(store, b, batch);
      want.push_back(Change{x, ChangeKind::kChanged, {"b"}});
    } else {
      batch.Add(Entry{x + 1, {{"a", FieldLoc{Seg(1000 + i), 2}}}});
      b = Up(store, b, batch);
      want.push_back(Change{x + 1, ChangeKind::kAdded, {"a"}});
    }
  }
  const uint64_t gets = t.gets();
  uint64_t reads = 0;
  std::vector<Change> changes = RunDiff(store, a, b, &reads);
  EXPECT_EQ(changes, want);
  EXPECT_EQ(t.gets() - gets, reads);
  // Each change costs at most one path per side (2 * h); paths share their upper levels.
  EXPECT_LE(reads, 2 * 10 * h) << "pages read";
  EXPECT_GE(reads, 2 * h);
  // Equal versions read nothing at all.
  reads = 0;
  EXPECT_TRUE(RunDiff(store, b, b, &reads).empty());
  EXPECT_EQ(reads, 0u);
  // The reverse diff mirrors it.
  std::vector<Change> back = RunDiff(store, b, a);
  ASSERT_EQ(back.size(), want.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].anchor, want[i].anchor);
    EXPECT_EQ(back[i].kind, want[i].kind == ChangeKind::kAdded     ? ChangeKind::kRemoved
                            : want[i].kind == ChangeKind::kRemoved ? ChangeKind::kAdded
                                                                   : ChangeKind::kChanged);
  }
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
