// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Non-finite embedding values (spec/10-schema.md §1.6): writes refuse them, naming the
// record and the field, before anything is stored; search, index builds and merges stay
// right around the ones that older versions stored (spec/21-spatial-index.md §6.4).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "src/btree/btree.h"
#include "src/columnar/segment.h"
#include "src/dataset/manifest.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 8;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Schema MakeSchema(const std::string& metric = "cosine") {
  Schema s;
  FieldSpec emb;
  emb.name = "emb";
  emb.type = FieldType::kEmbedding;
  emb.dim = kDim;
  emb.index = IndexSpec{};
  emb.index->metric = metric;
  EXPECT_TRUE(s.Add(emb).ok());
  EXPECT_TRUE(s.AddFloat64("loss", /*optional=*/true).ok());
  return s;
}

uint64_t ObjectCount(Store& store) {
  uint64_t n = 0;
  EXPECT_TRUE(store
                  .ListObjects("",
                               [&](const ObjectInfo&) {
                                 ++n;
                                 return true;
                               })
                  .ok());
  return n;
}

// A random unit vector: under every metric its own nearest record is itself.
std::vector<float> RandomVector(std::mt19937_64& rng) {
  std::normal_distribution<float> g;
  std::vector<float> v(kDim);
  float norm = 0;
  for (float& x : v) {
    x = g(rng);
    norm += x * x;
  }
  for (float& x : v) x /= std::sqrt(norm);
  return v;
}

// Appends `vectors` at anchors 0.. (finite values only: the check refuses others).
void AppendFinite(Dataset& ds, const std::vector<std::vector<float>>& vectors) {
  Batch b;
  Column emb(*ds.schema().Find("emb"));
  for (size_t i = 0; i < vectors.size(); ++i) {
    emb.AppendFloats(vectors[i]);
    b.anchors.push_back(i);
  }
  b.columns.push_back(std::move(emb));
  auto c = ds.AppendMany(b);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
}

// Stores `vec` as the value of "emb" at `anchor` on `branch` the way versions without the
// check did: a segment, an anchor-index upsert and a manifest moved onto the branch by
// compare-and-swap, with no look at the values.
void WriteAsAnOlderVersionDid(Store& store, const std::string& name, const std::string& branch,
                              uint64_t anchor, const std::vector<float>& vec) {
  const std::string ref = dataset::BranchRef(name, branch);
  auto head = store.ReadRef(ref);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  auto m = dataset::DecodeManifest(*store.Get(head->target));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const FieldSpec& spec = *m->schema.Find("emb");
  Column col(spec);
  col.AppendFloats(vec);
  auto seg_bytes = columnar::EncodeSegment(col, spec);
  ASSERT_TRUE(seg_bytes.ok()) << seg_bytes.status().ToString();
  auto seg = store.Put(*seg_bytes);
  ASSERT_TRUE(seg.ok());
  auto index = btree::IndexRefFromCbor(m->index, "index");
  ASSERT_TRUE(index.ok());
  btree::Batch batch;
  batch.anchors = {anchor};
  batch.fields.push_back(btree::BatchField{"emb", {*seg}, {0}, {0}});
  auto next = btree::Upsert(store, nullptr, *index, batch);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  dataset::Manifest out = *m;
  out.parents = {head->target};
  out.index = btree::IndexRefToCbor(*next);
  out.delta = {};
  out.delta.added = next->count - m->count;
  out.delta.replaced = 1 - out.delta.added;
  out.delta.fields = {"emb"};
  out.count = next->count;
  out.next_anchor = std::max(m->next_anchor, anchor + 1);
  out.time_ns = m->time_ns + 1;
  out.message = "written without the finite check";
  out.indexes.clear();  // an older version would have refused to index it, or dropped it
  auto bytes = dataset::EncodeManifest(out);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto id = store.Put(*bytes);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store.UpdateRef(ref, head->target, *id).ok());
}

struct Poisoned {
  std::shared_ptr<Store> store;
  std::unique_ptr<Dataset> ds;
  std::vector<std::vector<float>> finite;  // at anchors 0..
  std::vector<uint64_t> bad;               // anchors holding non-finite values
};

// 300 finite records at anchors 0..299 and 60 non-finite ones (NaN, +inf, -inf, a NaN in
// one element) at 1000.., interleaved with them in no order the heap would like.
Poisoned MakePoisoned(const std::string& metric) {
  Poisoned p;
  p.store = std::shared_ptr<Store>(*Store::Open("memory://"));
  auto created = Dataset::Create(p.store, "d", MakeSchema(metric));
  EXPECT_TRUE(created.ok()) << created.status().ToString();
  p.ds = std::move(*created);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) p.finite.push_back(RandomVector(rng));
  AppendFinite(*p.ds, p.finite);
  for (int i = 0; i < 60; ++i) {
    std::vector<float> v = RandomVector(rng);
    if (i % 4 == 0) std::fill(v.begin(), v.end(), kNaN);
    if (i % 4 == 1) v[i % kDim] = kNaN;
    if (i % 4 == 2) v[i % kDim] = kInf;
    if (i % 4 == 3) v[i % kDim] = -kInf;
    const uint64_t anchor = 1000 + static_cast<uint64_t>(i);
    WriteAsAnOlderVersionDid(*p.store, "d", "main", anchor, v);
    p.bad.push_back(anchor);
  }
  EXPECT_TRUE(p.ds->Refresh().ok());
  EXPECT_EQ(p.ds->Count(), 360u);
  return p;
}

// Every query is one of the finite records: it must come back first, with its best score,
// and no non-finite record may appear; the rest must be the true top-k of the finite ones.
void ExpectRightTopK(const Poisoned& p, const SearchOptions& options, bool want_index) {
  std::vector<float> queries;
  std::vector<uint64_t> want_first;
  for (uint64_t a : {3u, 77u, 150u, 299u}) {
    queries.insert(queries.end(), p.finite[a].begin(), p.finite[a].end());
    want_first.push_back(a);
  }
  auto r = p.ds->Search("emb", queries.data(), want_first.size(), kDim, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->used_index, want_index);
  for (size_t q = 0; q < want_first.size(); ++q) {
    const uint64_t b = r->offsets[q], e = r->offsets[q + 1];
    ASSERT_EQ(e - b, options.k) << "query " << q;
    EXPECT_EQ(r->anchors[b], want_first[q]) << "query " << q;
    for (uint64_t i = b; i < e; ++i) {
      EXPECT_LT(r->anchors[i], 1000u) << "a non-finite record was returned for query " << q;
      EXPECT_TRUE(std::isfinite(r->scores[i]));
    }
    if (r->metric != "l2") EXPECT_NEAR(r->scores[b], 1.0f, 1e-4);
    if (r->metric == "l2") EXPECT_NEAR(r->scores[b], 0.0f, 1e-3);
  }
}

TEST(NonFiniteEmbeddingTest, NonFiniteEmbeddingRefusedAtAppendNamingRecordAndField) {
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  auto ds = *Dataset::Create(store, "d", MakeSchema());
  const ObjectId head = ds->head();
  const uint64_t objects = ObjectCount(*store);
  struct Case {
    float bad;
    const char* word;
  };
  for (const Case& c : {Case{kNaN, "NaN"}, Case{kInf, "+inf"}, Case{-kInf, "-inf"}}) {
    for (bool given : {true, false}) {
      Batch b;
      Column emb(*ds->schema().Find("emb"));
      std::vector<float> v(kDim, 0.5f);
      emb.AppendFloats(v);
      v[5] = c.bad;
      emb.AppendFloats(v);
      b.columns.push_back(std::move(emb));
      if (given) b.anchors = {40, 41};
      auto r = ds->AppendMany(b);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      const std::string& msg = r.status().message();
      EXPECT_NE(msg.find("'emb'"), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.word), std::string::npos) << msg;
      EXPECT_NE(msg.find("element 5"), std::string::npos) << msg;
      EXPECT_NE(msg.find(given ? "anchor 41" : "row 1 of the batch"), std::string::npos) << msg;
    }
  }
  // Nothing was committed, nor even stored.
  ASSERT_TRUE(ds->Refresh().ok());
  EXPECT_EQ(ds->head(), head);
  EXPECT_EQ(ds->Count(), 0u);
  EXPECT_EQ(ObjectCount(*store), objects);

  // A null row may hold any bytes under its validity bit: it is not a value.
  std::string values(2 * kDim * sizeof(float), '\0');
  std::vector<float> junk(kDim, kNaN);
  std::memcpy(values.data() + kDim * sizeof(float), junk.data(), kDim * sizeof(float));
  FieldSpec optional_emb = *ds->schema().Find("emb");
  optional_emb.optional = true;
  optional_emb.name = "extra";
  optional_emb.index.reset();
  auto layer_col = Column::FromBuffers(optional_emb, 2, std::string(1, '\x01'), values, "", "");
  ASSERT_TRUE(layer_col.ok()) << layer_col.status().ToString();
  Batch ok_batch;
  Column emb(*ds->schema().Find("emb"));
  emb.AppendFloats(std::vector<float>(kDim, 1.0f));
  emb.AppendFloats(std::vector<float>(kDim, 2.0f));
  ok_batch.columns.push_back(std::move(emb));
  ok_batch.anchors = {1, 2};
  ASSERT_TRUE(ds->AppendMany(ok_batch).ok());
  auto layered = ds->AddLayer(optional_emb, {1, 2}, *layer_col);
  EXPECT_TRUE(layered.ok()) << layered.status().ToString();
}

TEST(NonFiniteEmbeddingTest, NonFiniteEmbeddingRefusedInLayerNamingRecordAndField) {
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  auto ds = *Dataset::Create(store, "d", MakeSchema());
  std::mt19937_64 rng(1);
  AppendFinite(*ds, {RandomVector(rng), RandomVector(rng), RandomVector(rng)});
  const ObjectId head = ds->head();
  const uint64_t objects = ObjectCount(*store);
  FieldSpec layer;
  layer.name = "clip";
  layer.type = FieldType::kEmbedding;
  layer.dim = 4;
  layer.optional = true;
  Column values(layer);
  values.AppendFloats(std::vector<float>{1, 2, 3, 4});
  values.AppendFloats(std::vector<float>{1, kNaN, 3, 4});
  auto r = ds->AddLayer(layer, {0, 2}, values);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'clip'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("anchor 2"), std::string::npos) << r.status().message();
  ASSERT_TRUE(ds->Refresh().ok());
  EXPECT_EQ(ds->head(), head);
  EXPECT_EQ(ds->schema().Find("clip"), nullptr);
  EXPECT_EQ(ObjectCount(*store), objects);
}

TEST(NonFiniteEmbeddingTest, Float64FieldsKeepNaNAndInfinities) {
  // NaN is a legitimate float64 value (an undefined metric, a missing measurement):
  // only embeddings must be finite (spec/10-schema.md §1.6).
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  auto ds = *Dataset::Create(store, "d", MakeSchema());
  Batch b;
  Column emb(*ds->schema().Find("emb"));
  Column loss(*ds->schema().Find("loss"));
  for (double x : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    emb.AppendFloats(std::vector<float>(kDim, 1.0f));
    loss.AppendFloat64(x);
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(loss));
  auto r = ds->AppendMany(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto t = ds->Take({0, 1, 2}, {"loss"});
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(std::isnan(t->columns[0].Float64At(0)));
  EXPECT_EQ(t->columns[0].Float64At(1), HUGE_VAL);
}

TEST(NonFiniteEmbeddingTest, BruteForceSearchIsRightWithNonFiniteVectorsFromOlderVersions) {
  for (const char* metric : {"cosine", "ip", "l2"}) {
    SCOPED_TRACE(metric);
    Poisoned p = MakePoisoned(metric);
    SearchOptions o;
    o.k = 10;
    o.exact = true;
    ExpectRightTopK(p, o, /*want_index=*/false);
    o.k = 300;  // every finite record, and none of the others
    ExpectRightTopK(p, o, false);
  }
}

TEST(NonFiniteEmbeddingTest, IndexBuildLeavesOutNonFiniteVectorsFromOlderVersions) {
  for (const char* algorithm : {"ivf", "graph"}) {
    SCOPED_TRACE(algorithm);
    Poisoned p = MakePoisoned("cosine");
    BuildIndexOptions bo;
    bo.algorithm = algorithm;
    bo.cells = std::string(algorithm) == "ivf" ? 4 : 0;
    auto built = p.ds->BuildIndex("emb", bo);
    ASSERT_TRUE(built.ok()) << built.status().ToString();
    auto st = p.ds->IndexStatus("emb");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->entries, 300u);
    EXPECT_EQ(st->live, 360u);
    SearchOptions o;
    o.k = 5;
    o.nprobe = 4;
    ExpectRightTopK(p, o, /*want_index=*/true);
  }
}

TEST(NonFiniteEmbeddingTest, MergeCarriesNonFiniteVectorsFromOlderVersionsAndSearchStaysRight) {
  // A merge copies value locations and never reads vectors: a branch written by an older
  // version merges as it is, and search on the result leaves its non-finite values out.
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  auto ds = *Dataset::Create(store, "d", MakeSchema());
  std::mt19937_64 rng(3);
  std::vector<std::vector<float>> finite;
  for (int i = 0; i < 50; ++i) finite.push_back(RandomVector(rng));
  AppendFinite(*ds, finite);
  ASSERT_TRUE(ds->Branch("old").ok());
  for (uint64_t a = 500; a < 520; ++a) {
    WriteAsAnOlderVersionDid(*store, "d", "old", a, std::vector<float>(kDim, kNaN));
  }
  MergeOptions mo;
  mo.no_ff = true;
  auto merged = ds->Merge("old", mo);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(ds->Count(), 70u);
  SearchOptions o;
  o.k = 50;
  auto r = ds->Search("emb", finite[9].data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->anchors.size(), 50u);
  EXPECT_EQ(r->anchors[0], 9u);
  for (uint64_t a : r->anchors) EXPECT_LT(a, 50u);
  // Replacing the bad values with finite ones makes the records searchable again.
  Batch fix;
  Column emb(*ds->schema().Find("emb"));
  for (uint64_t a = 500; a < 520; ++a) {
    emb.AppendFloats(finite[0]);
    fix.anchors.push_back(a);
  }
  fix.columns.push_back(std::move(emb));
  ASSERT_TRUE(ds->AppendMany(fix).ok());
  o.k = 21;
  r = ds->Search("emb", finite[0].data(), 1, kDim, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->anchors.size(), 21u);
}

}  // namespace
}  // namespace dreamdb
