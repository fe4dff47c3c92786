// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Branch merges (spec/14-semantics.md §16).
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "dreamdb/dataset.h"
#include "src/dataset/manifest.h"
#include "src/store/testing/fault_injecting_backend.h"

namespace dreamdb {
namespace {

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("caption", /*optional=*/true).ok());
  return s;
}

// Rows with the given anchors; label = value(anchor), caption "c<label>".
Batch Rows(const Schema& schema, const std::vector<uint64_t>& anchors,
           const std::function<int64_t(uint64_t)>& value) {
  Batch b;
  Column label(*schema.Find("label")), caption(*schema.Find("caption"));
  for (uint64_t a : anchors) {
    label.AppendInt64(value(a));
    caption.AppendBytes("c" + std::to_string(value(a)));
  }
  b.anchors = anchors;
  b.columns = {std::move(label), std::move(caption)};
  return b;
}

Batch Labels(const Schema& schema, const std::vector<uint64_t>& anchors,
             const std::vector<int64_t>& values) {
  Batch b;
  Column label(*schema.Find("label"));
  for (int64_t v : values) label.AppendInt64(v);
  b.anchors = anchors;
  b.columns = {std::move(label)};
  return b;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t a = from; a < to; ++a) v.push_back(a);
  return v;
}

// anchor -> label of every live record.
std::map<uint64_t, int64_t> AllLabels(const Dataset& ds) {
  std::map<uint64_t, int64_t> out;
  ScanOptions o;
  o.fields = {"label"};
  auto reader = ds.Scan(o);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return out;
  while (true) {
    auto b = (*reader)->Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || !*b) break;
    for (uint64_t i = 0; i < (*b)->num_rows(); ++i) {
      out[(*b)->anchors[i]] = (*b)->columns[0].Int64At(i);
    }
  }
  return out;
}

std::optional<int64_t> LabelOf(const Dataset& ds, uint64_t anchor) {
  std::vector<bool> found;
  auto b = ds.Take({anchor}, {"label"}, /*allow_missing=*/true, &found);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  if (!b.ok() || !found[0]) return std::nullopt;
  return b->columns[0].Int64At(0);
}

void ExpectVerified(Store& store, std::string_view name) {
  auto report = Verify(store, name);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  for (const auto& p : report->problems) ADD_FAILURE() << p;
}

// A dataset "d" with records 0..9 (label = anchor) on main and a branch "dev" there.
struct Fixture {
  std::shared_ptr<Store> store = MemStore();
  std::unique_ptr<Dataset> main;
  std::unique_ptr<Dataset> dev;

  Fixture() {
    main = std::move(*Dataset::Create(store, "d", TestSchema()));
    auto c = main->AppendMany(Rows(main->schema(), Range(0, 10), [](uint64_t a) { return a; }));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_TRUE(main->Branch("dev").ok());
    dev = std::move(*Dataset::Open(store, "d", "dev"));
  }
};

FieldSpec OptionalField(std::string name, FieldType type) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.optional = true;
  return f;
}

MergeOptions Policy(MergePolicy p) {
  MergeOptions o;
  o.policy = p;
  return o;
}

TEST(MergeTest, FastForwardAndNoFf) {
  Fixture f;
  auto c = f.dev->AppendMany(Rows(f.dev->schema(), Range(10, 20), [](uint64_t a) { return a; }));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  MergeReport report;
  auto m = f.main->Merge("dev", {}, &report);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(report.fast_forward);
  EXPECT_EQ(m->manifest, f.dev->head());
  EXPECT_EQ(f.main->head(), f.dev->head());
  EXPECT_EQ(f.main->Count(), 20u);
  EXPECT_EQ(m->objects_written, 0u);

  // Merging again: up to date, nothing lands.
  auto again = f.main->Merge("dev", {}, &report);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(report.up_to_date);
  EXPECT_EQ(again->attempts, 0u);
  EXPECT_EQ(again->manifest, f.dev->head());

  // no_ff: a merge manifest even though a fast-forward was possible.
  ASSERT_TRUE(f.dev->AppendMany(Rows(f.dev->schema(), {20}, [](uint64_t a) { return a; })).ok());
  MergeOptions o;
  o.no_ff = true;
  o.message = "keep the branch visible";
  auto nf = f.main->Merge("dev", o, &report);
  ASSERT_TRUE(nf.ok()) << nf.status().ToString();
  EXPECT_FALSE(report.fast_forward);
  ASSERT_EQ(nf->parents.size(), 2u);
  EXPECT_EQ(nf->parents[1], f.dev->head());
  EXPECT_EQ(nf->message, "keep the branch visible");
  EXPECT_EQ(nf->added, 1u);
  EXPECT_EQ(f.main->Count(), 21u);
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, DisjointAppendsUnion) {
  Fixture f;
  ASSERT_TRUE(
      f.main->AppendMany(Rows(f.main->schema(), Range(100, 150), [](uint64_t a) { return a; }))
          .ok());
  ASSERT_TRUE(
      f.dev->AppendMany(Rows(f.dev->schema(), Range(200, 300), [](uint64_t a) { return a; })).ok());
  auto m = f.main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->parents.size(), 2u);
  EXPECT_EQ(m->added, 100u);
  EXPECT_EQ(m->replaced, 0u);
  EXPECT_EQ(m->count, 160u);
  EXPECT_EQ(m->message, "merge dev into main");
  auto labels = AllLabels(*f.main);
  ASSERT_EQ(labels.size(), 160u);
  for (const auto& [a, v] : labels) EXPECT_EQ(static_cast<int64_t>(a), v);
  // The history shows both sides.
  std::set<ObjectId> seen;
  ASSERT_TRUE(f.main
                  ->History([&](const CommitInfo& c) {
                    seen.insert(c.manifest);
                    return true;
                  })
                  .ok());
  EXPECT_TRUE(seen.count(f.dev->head()));
  // Auto-assigned anchors continue above every parent's.
  auto next = f.main->AppendMany([&] {
    Batch b = Rows(f.main->schema(), {0}, [](uint64_t) { return 7; });
    b.anchors.clear();
    return b;
  }());
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(LabelOf(*f.main, 300).has_value());
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, SameAnchorSameValueIsNoConflict) {
  Fixture f;
  // Different batches (so different segments), same value for anchor 50 and for anchor 3.
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {3, 50, 51}, {33, 500, 510})).ok());
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {3, 50, 52}, {33, 500, 520})).ok());
  auto m = f.main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(LabelOf(*f.main, 3), 33);
  EXPECT_EQ(LabelOf(*f.main, 50), 500);
  EXPECT_EQ(LabelOf(*f.main, 51), 510);
  EXPECT_EQ(LabelOf(*f.main, 52), 520);
  EXPECT_EQ(f.main->Count(), 13u);
}

TEST(MergeTest, ConflictUnderEachPolicy) {
  for (MergePolicy p : {MergePolicy::kFail, MergePolicy::kOurs, MergePolicy::kTheirs}) {
    Fixture f;
    ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {5, 6}, {-5, -6})).ok());
    ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {5, 7}, {55, 77})).ok());
    const ObjectId before = f.main->head();
    MergeReport report;
    auto m = f.main->Merge("dev", Policy(p), &report);
    EXPECT_EQ(report.conflicts, 1u);
    if (p == MergePolicy::kFail) {
      ASSERT_EQ(m.status().code(), StatusCode::kConflict);
      EXPECT_NE(m.status().message().find("anchor 5 field 'label'"), std::string::npos)
          << m.status().message();
      EXPECT_NE(m.status().message().find("policy ours or theirs"), std::string::npos);
      EXPECT_EQ(f.main->head(), before);
      continue;
    }
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(LabelOf(*f.main, 5), p == MergePolicy::kOurs ? -5 : 55);
    EXPECT_EQ(LabelOf(*f.main, 6), -6);
    EXPECT_EQ(LabelOf(*f.main, 7), 77);
    ExpectVerified(*f.store, "d");
  }
}

TEST(MergeTest, AddedOnBothSidesWithDifferentValuesConflicts) {
  Fixture f;
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {40}, {1})).ok());
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {40}, {2})).ok());
  auto m = f.main->Merge("dev");
  ASSERT_EQ(m.status().code(), StatusCode::kConflict);
  EXPECT_NE(m.status().message().find("added on both sides"), std::string::npos);
}

TEST(MergeTest, DeleteVersusChange) {
  for (MergePolicy p : {MergePolicy::kFail, MergePolicy::kOurs, MergePolicy::kTheirs}) {
    Fixture f;
    // Source deletes 3, target changes 3; source changes 4, target deletes 4;
    // source deletes 8 (untouched on the target): a clean delete.
    ASSERT_TRUE(f.dev->Delete({3, 8}).ok());
    ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {4}, {44})).ok());
    ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {3}, {33})).ok());
    ASSERT_TRUE(f.main->Delete({4}).ok());
    MergeReport report;
    auto m = f.main->Merge("dev", Policy(p), &report);
    EXPECT_EQ(report.conflicts, 2u);
    if (p == MergePolicy::kFail) {
      ASSERT_EQ(m.status().code(), StatusCode::kConflict);
      EXPECT_NE(m.status().message().find("anchor 3 (deleted by the source, changed on the "
                                          "target)"),
                std::string::npos)
          << m.status().message();
      EXPECT_NE(m.status().message().find("anchor 4 (changed by the source, deleted on the "
                                          "target)"),
                std::string::npos);
      continue;
    }
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_FALSE(LabelOf(*f.main, 8).has_value());
    if (p == MergePolicy::kOurs) {
      EXPECT_EQ(LabelOf(*f.main, 3), 33);
      EXPECT_FALSE(LabelOf(*f.main, 4).has_value());
    } else {
      EXPECT_FALSE(LabelOf(*f.main, 3).has_value());
      EXPECT_EQ(LabelOf(*f.main, 4), 44);
    }
    EXPECT_EQ(f.main->Count(), AllLabels(*f.main).size());
    ExpectVerified(*f.store, "d");
  }
}

TEST(MergeTest, CleanDeleteAndDeleteOnBothSides) {
  Fixture f;
  ASSERT_TRUE(f.dev->Delete({1, 2}).ok());
  ASSERT_TRUE(f.main->Delete({2}).ok());
  auto m = f.main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->deleted, 1u);
  EXPECT_EQ(f.main->Count(), 8u);
  EXPECT_FALSE(LabelOf(*f.main, 1).has_value());
  // Re-appending a merged-away anchor resurrects it from nothing.
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {1}, {100})).ok());
  EXPECT_EQ(LabelOf(*f.main, 1), 100);
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, LayerAddedOnBranchMergesBack) {
  Fixture f;
  FieldSpec pred = OptionalField("pred", FieldType::kFloat64);
  Column values(pred);
  for (int i = 0; i < 10; ++i) values.AppendFloat64(i * 0.5);
  ASSERT_TRUE(f.dev->AddLayer(pred, Range(0, 10), values).ok());
  // Meanwhile the target appends records and changes a label.
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {2, 10}, {-2, 10})).ok());
  auto m = f.main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_NE(f.main->schema().Find("pred"), nullptr);
  EXPECT_GT(f.main->schema().version(), 1u);
  EXPECT_EQ(m->replaced, 10u);
  auto b = f.main->Take({2, 9, 10}, {"label", "pred"});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->columns[0].Int64At(0), -2);
  EXPECT_DOUBLE_EQ(b->columns[1].Float64At(0), 1.0);
  EXPECT_DOUBLE_EQ(b->columns[1].Float64At(1), 4.5);
  EXPECT_FALSE(b->columns[1].IsValid(2));  // record 10 is newer than the layer
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, SchemaTypeClashFailsUnderEveryPolicy) {
  for (MergePolicy p : {MergePolicy::kFail, MergePolicy::kOurs, MergePolicy::kTheirs}) {
    Fixture f;
    FieldSpec as_float = OptionalField("x", FieldType::kFloat64);
    FieldSpec as_int = OptionalField("x", FieldType::kInt64);
    Column fv(as_float), iv(as_int);
    fv.AppendFloat64(1.5);
    iv.AppendInt64(2);
    ASSERT_TRUE(f.main->AddLayer(as_float, {0}, fv).ok());
    ASSERT_TRUE(f.dev->AddLayer(as_int, {0}, iv).ok());
    auto m = f.main->Merge("dev", Policy(p));
    ASSERT_EQ(m.status().code(), StatusCode::kConflict);
    EXPECT_NE(m.status().message().find("field 'x' is float64 on the target but int64"),
              std::string::npos)
        << m.status().message();
  }
}

TEST(MergeTest, SchemaDropOnSourceAndSameFieldAddedOnBoth) {
  Fixture f;
  // Both add "tag" (string) with values for different records: no conflict.
  FieldSpec tag = OptionalField("tag", FieldType::kString);
  Column a(tag), b(tag);
  a.AppendBytes("main");
  b.AppendBytes("dev");
  ASSERT_TRUE(f.main->AddLayer(tag, {0}, a).ok());
  ASSERT_TRUE(f.dev->AddLayer(tag, {1}, b).ok());
  // The source drops "caption".
  Schema next;
  ASSERT_TRUE(next.AddInt64("label").ok());
  ASSERT_TRUE(next.Add(tag).ok());
  ASSERT_TRUE(f.dev->EvolveSchema(next).ok());
  auto m = f.main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(f.main->schema().Find("caption"), nullptr);
  ASSERT_NE(f.main->schema().Find("tag"), nullptr);
  auto t = f.main->Take({0, 1}, {"tag"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->columns[0].BytesAt(0), "main");
  EXPECT_EQ(t->columns[0].BytesAt(1), "dev");
  // The dropped name stays unusable.
  FieldSpec caption = OptionalField("caption", FieldType::kString);
  Column c(caption);
  c.AppendBytes("x");
  EXPECT_EQ(f.main->AddLayer(caption, {0}, c).status().code(), StatusCode::kInvalidArgument);
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, MetaMergesKeyByKey) {
  for (MergePolicy p : {MergePolicy::kFail, MergePolicy::kOurs, MergePolicy::kTheirs}) {
    Fixture f;
    ASSERT_TRUE(f.main->SetMeta({{"owner", "team-a"}, {"shared", "x"}}).ok());
    ASSERT_TRUE(f.dev->SetMeta({{"source", "camera-3"}, {"shared", "y"}}).ok());
    ASSERT_TRUE(f.main->Refresh().ok());
    auto m = f.main->Merge("dev", Policy(p));
    if (p == MergePolicy::kFail) {
      ASSERT_EQ(m.status().code(), StatusCode::kConflict);
      EXPECT_NE(m.status().message().find("meta key 'shared'"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto meta = f.main->Meta();
    EXPECT_EQ(meta["owner"], "team-a");
    EXPECT_EQ(meta["source"], "camera-3");
    EXPECT_EQ(meta["shared"], p == MergePolicy::kOurs ? "x" : "y");
  }
  // A key deleted on one side and untouched on the other is deleted.
  Fixture g;
  ASSERT_TRUE(g.main->SetMeta({{"k", "v"}}).ok());
  ASSERT_TRUE(g.main->Branch("dev2").ok());
  auto dev2 = *Dataset::Open(g.store, "d", "dev2");
  ASSERT_TRUE(dev2->SetMeta({{"k", ""}}).ok());
  ASSERT_TRUE(g.main->SetMeta({{"other", "1"}}).ok());
  ASSERT_TRUE(g.main->Merge("dev2").ok());
  EXPECT_EQ(g.main->Meta().count("k"), 0u);
  EXPECT_EQ(g.main->Meta().count("other"), 1u);
}

TEST(MergeTest, CrissCrossMergeBase) {
  // main and dev each change one record, then merge each other (criss-cross); then each
  // changes its record again: the final merge has two best common ancestors and must see
  // only the new changes (one base alone would make record 1 or 2 a false conflict).
  Fixture f;
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {1}, {11})).ok());
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {2}, {22})).ok());
  const ObjectId main1 = f.main->head();
  const ObjectId dev1 = f.dev->head();
  MergeOptions no_ff;
  no_ff.no_ff = true;
  ASSERT_TRUE(f.main->Merge(dev1.ToString(), no_ff).ok());
  ASSERT_TRUE(f.dev->Merge(main1.ToString(), no_ff).ok());
  ASSERT_NE(f.main->head(), f.dev->head());
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {1}, {111})).ok());
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {2}, {222})).ok());
  MergeReport report;
  auto m = f.main->Merge("dev", {}, &report);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(report.conflicts, 0u);
  ASSERT_EQ(report.merge_bases.size(), 1u);
  // Two best common ancestors (the criss-crossed commits), merged into a virtual base.
  EXPECT_EQ(std::set<ObjectId>(report.merge_bases[0].begin(), report.merge_bases[0].end()),
            (std::set<ObjectId>{main1, dev1}));
  EXPECT_EQ(LabelOf(*f.main, 1), 111);
  EXPECT_EQ(LabelOf(*f.main, 2), 222);
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, MergeSnapshotAndManifestId) {
  Fixture f;
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {100}, {1})).ok());
  ASSERT_TRUE(f.dev->Snapshot("v1").ok());
  const ObjectId v1 = f.dev->head();
  ASSERT_TRUE(f.dev->AppendMany(Labels(f.dev->schema(), {101}, {2})).ok());
  ASSERT_TRUE(f.main->AppendMany(Labels(f.main->schema(), {200}, {3})).ok());
  auto m = f.main->Merge("v1");  // the snapshot, not the branch's head
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->parents[1], v1);
  EXPECT_TRUE(LabelOf(*f.main, 100).has_value());
  EXPECT_FALSE(LabelOf(*f.main, 101).has_value());
  auto m2 = f.main->Merge(f.dev->head().ToString());
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_TRUE(LabelOf(*f.main, 101).has_value());
  EXPECT_EQ(f.main->Count(), 13u);
  // Bad sources.
  EXPECT_EQ(f.main->Merge("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.main->Merge("").status().code(), StatusCode::kInvalidArgument);
  auto other = *Dataset::Create(f.store, "e", TestSchema());
  auto wrong = f.main->Merge(other->head().ToString());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument) << wrong.status().ToString();
  auto ro = *Dataset::OpenAt(f.store, "d", "v1");
  EXPECT_EQ(ro->Merge("dev").status().code(), StatusCode::kPermissionDenied);
  ExpectVerified(*f.store, "d");
}

// Forwards to `inner`; before the first compare-and-swap of `ref` after Arm(), runs `hook`
// (which commits through another Store on the same backends).
class InterferingRefs final : public RefBackend {
 public:
  InterferingRefs(std::shared_ptr<RefBackend> inner, std::string ref)
      : inner_(std::move(inner)), ref_(std::move(ref)) {}
  void Arm(std::function<void()> hook) {
    hook_ = std::move(hook);
    armed_ = true;
  }
  Result<RefValue> Read(std::string_view name) override { return inner_->Read(name); }
  Status Create(std::string_view name, const ObjectId& target) override {
    return inner_->Create(name, target);
  }
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override {
    if (name == ref_ && armed_.exchange(false)) hook_();
    return inner_->CompareAndSwap(name, expected, desired);
  }
  Status Delete(std::string_view name, const ObjectId& expected) override {
    return inner_->Delete(name, expected);
  }
  Status List(std::string_view prefix, const RefVisitor& visit) override {
    return inner_->List(prefix, visit);
  }

 private:
  std::shared_ptr<RefBackend> inner_;
  std::string ref_;
  std::function<void()> hook_;
  std::atomic<bool> armed_{false};
};

TEST(MergeTest, ConcurrentCommitDuringMergeRebases) {
  std::shared_ptr<Store> mem = MemStore();
  auto refs = std::make_shared<InterferingRefs>(
      std::shared_ptr<RefBackend>(mem, &mem->ref_backend()), "d/branches/main");
  std::shared_ptr<Store> store = Store::FromBackends(
      "interfering://", std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()), refs);
  auto main = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(main->AppendMany(Labels(main->schema(), Range(0, 5), {0, 1, 2, 3, 4})).ok());
  ASSERT_TRUE(main->Branch("dev").ok());
  auto dev = *Dataset::Open(store, "d", "dev");
  ASSERT_TRUE(dev->AppendMany(Labels(dev->schema(), {10, 11}, {10, 11})).ok());
  ASSERT_TRUE(main->AppendMany(Labels(main->schema(), {20}, {20})).ok());
  // Just before the merge's swap, another process appends record 30 and changes 10's
  // sibling 0 on main: the merge must rebase and keep it.
  refs->Arm([&] {
    auto other = *Dataset::Open(mem, "d");
    auto c = other->AppendMany(Labels(other->schema(), {0, 30}, {-100, 30}));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  });
  auto m = main->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->attempts, 2u);
  auto labels = AllLabels(*main);
  EXPECT_EQ(labels.size(), 9u);
  EXPECT_EQ(labels[0], -100);
  EXPECT_EQ(labels[30], 30);
  EXPECT_EQ(labels[11], 11);
  ASSERT_EQ(m->parents.size(), 2u);
  EXPECT_EQ(m->parents[1], dev->head());
  ExpectVerified(*store, "d");
}

TEST(MergeTest, SixteenBranchesMergeMany) {
  std::shared_ptr<Store> store = MemStore();
  auto main = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(main->AppendMany(Labels(main->schema(), {0}, {0})).ok());
  constexpr int kWriters = 16;
  constexpr uint64_t kCommits = 5, kRows = 20;
  std::vector<std::string> branches;
  for (int w = 0; w < kWriters; ++w) {
    branches.push_back("ingest/w" + std::to_string(w));
    ASSERT_TRUE(main->Branch(branches.back()).ok());
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      auto ds = Dataset::Open(store, "d", branches[w]);
      if (!ds.ok()) {
        ++failures;
        return;
      }
      for (uint64_t c = 0; c < kCommits; ++c) {
        // Each writer owns an anchor range (e.g. its own clock): anchors never collide.
        const uint64_t first = 1'000'000 * (w + 1) + c * kRows;
        auto r = (*ds)->AppendMany(
            Rows((*ds)->schema(), Range(first, first + kRows), [](uint64_t a) { return a; }));
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  MergeReport report;
  auto m = main->MergeMany(branches, {}, &report);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->parents.size(), 17u);
  EXPECT_EQ(report.merge_bases.size(), 16u);
  const uint64_t expected = 1 + kWriters * kCommits * kRows;
  EXPECT_EQ(m->added, expected - 1);
  EXPECT_EQ(main->Count(), expected);
  auto labels = AllLabels(*main);
  ASSERT_EQ(labels.size(), expected);
  for (const auto& [a, v] : labels) EXPECT_EQ(static_cast<int64_t>(a), v);
  // Merging them again changes nothing.
  auto again = main->MergeMany(branches, {}, &report);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(report.up_to_date);
  ExpectVerified(*store, "d");
}

TEST(MergeTest, MergeManyConflictBetweenSourcesAndReduction) {
  Fixture f;
  ASSERT_TRUE(f.main->Branch("a").ok());
  ASSERT_TRUE(f.main->Branch("b").ok());
  auto a = *Dataset::Open(f.store, "d", "a");
  auto b = *Dataset::Open(f.store, "d", "b");
  ASSERT_TRUE(a->AppendMany(Labels(a->schema(), {1}, {100})).ok());
  ASSERT_TRUE(b->AppendMany(Labels(b->schema(), {1}, {200})).ok());
  auto fail = f.main->MergeMany({"a", "b"});
  ASSERT_EQ(fail.status().code(), StatusCode::kConflict);
  EXPECT_NE(fail.status().message().find("from 'b': anchor 1 field 'label'"), std::string::npos)
      << fail.status().message();
  auto theirs = f.main->MergeMany({"a", "b"}, Policy(MergePolicy::kTheirs));
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  EXPECT_EQ(LabelOf(*f.main, 1), 200);  // the later source wins
  // A source that is an ancestor of another is left out of the parents.
  ASSERT_TRUE(a->Branch("a2").ok());
  auto a2 = *Dataset::Open(f.store, "d", "a2");
  ASSERT_TRUE(a2->AppendMany(Labels(a2->schema(), {2}, {2})).ok());
  ASSERT_TRUE(a->AppendMany(Labels(a->schema(), {3}, {3})).ok());
  MergeReport report;
  auto m = f.main->MergeMany({"a", "a2", "dev"}, {}, &report);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->parents.size(), 3u);  // main, a, a2 (dev is already merged: it is main's base)
  EXPECT_EQ(LabelOf(*f.main, 2), 2);
  EXPECT_EQ(LabelOf(*f.main, 3), 3);
  ExpectVerified(*f.store, "d");
}

TEST(MergeTest, SpatialIndexOfAMergedFieldKeepsTheMergedVectors) {
  std::shared_ptr<Store> store = MemStore();
  Schema s;
  ASSERT_TRUE(s.AddEmbedding("emb", 4, /*optional=*/true).ok());
  ASSERT_TRUE(s.AddInt64("label", /*optional=*/true).ok());
  auto main = *Dataset::Create(store, "d", s);
  auto vectors = [&](const std::vector<uint64_t>& anchors) {
    Batch b;
    Column emb(*s.Find("emb"));
    for (uint64_t a : anchors) {
      float v[4] = {float(a % 7), float(a % 5) + 1, float(a % 3), float(a)};
      emb.AppendFloats(v);
    }
    b.anchors = anchors;
    b.columns.push_back(std::move(emb));
    return b;
  };
  ASSERT_TRUE(main->AppendMany(vectors(Range(0, 200))).ok());
  ASSERT_TRUE(main->BuildIndex("emb").ok());
  ASSERT_TRUE(main->IndexStatus("emb")->built);
  ASSERT_TRUE(main->Branch("dev").ok());
  auto dev = *Dataset::Open(store, "d", "dev");
  ASSERT_TRUE(dev->AppendMany(vectors({5000})).ok());
  // A merge that changes only another field keeps the index.
  ASSERT_TRUE(main->Branch("labels").ok());
  auto labels = *Dataset::Open(store, "d", "labels");
  ASSERT_TRUE(labels->AppendMany(Labels(labels->schema(), {1}, {1})).ok());
  MergeOptions no_ff;
  no_ff.no_ff = true;
  ASSERT_TRUE(main->Merge("labels", no_ff).ok());
  EXPECT_TRUE(main->IndexStatus("emb")->built);
  // Merged vectors are assigned to the index's cells (spec/14 §16.8): the index is kept,
  // reported, and search through it finds them.
  MergeReport report;
  ASSERT_TRUE(main->Merge("dev", {}, &report).ok());
  EXPECT_EQ(report.indexes_updated, std::vector<std::string>{"emb"});
  auto st = main->IndexStatus("emb");
  ASSERT_TRUE(st->built);
  EXPECT_EQ(st->entries, 201u);
  const float q[4] = {float(5000 % 7), float(5000 % 5) + 1, float(5000 % 3), 5000};
  SearchOptions so;
  so.k = 1;
  so.nprobe = st->cells;
  auto r = main->Search("emb", q, 1, 4, so);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->used_index);
  ASSERT_EQ(r->anchors.size(), 1u);
  EXPECT_EQ(r->anchors[0], 5000u);
  ExpectVerified(*store, "d");
}

TEST(MergeTest, CostFollowsChangesNotSize) {
  // 50 000 records (a paged index of ~100 leaves); the source changes 3 and the target 2:
  // the merge reads a handful of objects, not the index.
  std::shared_ptr<Store> mem = MemStore();
  auto fault = std::make_shared<FaultInjectingBackend>(
      std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()),
      std::shared_ptr<RefBackend>(mem, &mem->ref_backend()));
  std::shared_ptr<Store> store = Store::FromBackends("counting://", fault, fault);
  auto main = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(
      main->AppendMany(Rows(main->schema(), Range(0, 50000), [](uint64_t a) { return a; })).ok());
  ASSERT_TRUE(main->Branch("dev").ok());
  auto dev = *Dataset::Open(store, "d", "dev");
  ASSERT_TRUE(dev->AppendMany(Labels(dev->schema(), {5, 25000, 49999}, {-1, -2, -3})).ok());
  ASSERT_TRUE(main->AppendMany(Labels(main->schema(), {7, 30000}, {-4, -5})).ok());
  auto fresh = *Dataset::Open(store, "d");  // cold caches
  const uint64_t gets = fault->calls(FaultOp::kGet) + fault->calls(FaultOp::kGetRange);
  auto m = fresh->Merge("dev");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const uint64_t used = fault->calls(FaultOp::kGet) + fault->calls(FaultOp::kGetRange) - gets;
  EXPECT_LT(used, 30u) << "a merge of 3 changes must not read the whole index";
  std::cerr << "objects read by a 3-change merge of a 50 000-record dataset: " << used << "\n";
  EXPECT_EQ(m->replaced, 3u);
  EXPECT_EQ(fresh->Count(), 50000u);
  EXPECT_EQ(LabelOf(*fresh, 25000), -2);
  EXPECT_EQ(LabelOf(*fresh, 30000), -5);

  // A large source (more changes than one lookup chunk) merges completely.
  ASSERT_TRUE(
      dev->AppendMany(Rows(dev->schema(), Range(200000, 205000), [](uint64_t a) { return a; }))
          .ok());
  ASSERT_TRUE(
      dev->AppendMany(Labels(dev->schema(), Range(0, 5000), std::vector<int64_t>(5000, 42))).ok());
  auto big = fresh->Merge("dev", Policy(MergePolicy::kTheirs));
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->added, 5000u);
  EXPECT_EQ(fresh->Count(), 55000u);
  EXPECT_EQ(LabelOf(*fresh, 7), 42);  // the target's -4, overridden by policy theirs
  EXPECT_EQ(LabelOf(*fresh, 204999), 204999);
  ExpectVerified(*store, "d");
}

}  // namespace
}  // namespace dreamdb
