// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Embedding fields declared with `raw: false` (spec/21-spatial-index.md §2.1): their
// segments hold 8-bit scalar-quantized values (spec/12-segments.md §9) and every read —
// scan, take, brute-force and indexed search, re-ranking, index training, verify — gets
// the reconstructions through the ordinary decoders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <span>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 32;

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

// A fresh file:// store in a temporary directory (so object bytes can be measured).
class TempStore {
 public:
  TempStore() {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("dreamdb_raw_false_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    store_ = std::shared_ptr<Store>(*Store::Open("file://" + dir_.string()));
  }
  ~TempStore() { std::filesystem::remove_all(dir_); }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;
  std::shared_ptr<Store> store() const { return store_; }
  // Total bytes of the segment objects (magic "DDBSEG01") in the store.
  uint64_t SegmentBytes() const {
    uint64_t total = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ / "objects")) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      char magic[8] = {};
      in.read(magic, 8);
      if (std::string(magic, 8) == "DDBSEG01") total += e.file_size();
    }
    return total;
  }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<Store> store_;
};

IndexSpec NoRaw() {
  IndexSpec ix;
  ix.keep_raw = false;
  return ix;
}

Schema MakeSchema(bool raw, uint32_t dim = kDim) {
  FieldSpec emb;
  emb.name = "emb";
  emb.type = FieldType::kEmbedding;
  emb.dim = dim;
  emb.optional = true;
  IndexSpec ix;
  ix.keep_raw = raw;
  emb.index = ix;
  Schema s;
  EXPECT_TRUE(s.Add(emb).ok());
  EXPECT_TRUE(s.AddInt64("label", true).ok());
  return s;
}

// n clustered vectors (16 clusters), seeded.
std::vector<float> MakeVectors(size_t n, uint64_t seed, uint32_t dim = kDim) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::mt19937_64 crng(12345);  // the same clusters for every seed
  std::vector<float> centers(16 * dim);
  for (auto& c : centers) c = g(crng) * 3;
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    size_t c = rng() % 16;
    for (size_t d = 0; d < dim; ++d) v[i * dim + d] = centers[c * dim + d] + g(rng);
  }
  return v;
}

// A batch of the vectors (every 10th row null when `with_nulls`), labels = row index.
Batch MakeBatch(const Schema& s, const std::vector<float>& v, int64_t first_label,
                bool with_nulls = false, uint32_t dim = kDim) {
  Batch b;
  Column emb(*s.Find("emb"));
  Column label(*s.Find("label"));
  const size_t n = v.size() / dim;
  for (size_t i = 0; i < n; ++i) {
    if (with_nulls && i % 10 == 3) {
      emb.AppendNull();
    } else {
      emb.AppendFloats(std::span<const float>(v.data() + i * dim, dim));
    }
    label.AppendInt64(first_label + static_cast<int64_t>(i));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  return b;
}

// spec/12-segments.md §9.2: |x - x^| <= (max - min) / 510 + 2^-22 max(|min|, |max|).
void ExpectWithinBound(std::span<const float> x, std::span<const float> y, uint64_t row) {
  ASSERT_EQ(x.size(), y.size());
  const float lo = *std::min_element(x.begin(), x.end());
  const float hi = *std::max_element(x.begin(), x.end());
  const double bound = (static_cast<double>(hi) - lo) / 510.0 +
                       std::ldexp(std::max(std::fabs(lo), std::fabs(hi)), -22);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound) << "row " << row << " dim " << i;
  }
}

// Every value of `emb` in the dataset, by label (null rows absent).
std::map<int64_t, std::vector<float>> ScanAll(const Dataset& ds) {
  std::map<int64_t, std::vector<float>> out;
  ScanOptions so;
  so.fields = {"emb", "label"};
  so.batch_rows = 333;
  auto reader = ds.Scan(so);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  while (true) {
    auto b = (*reader)->Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || !*b) break;
    const Column* emb = (*b)->Find("emb");
    const Column* label = (*b)->Find("label");
    for (uint64_t i = 0; i < (*b)->num_rows(); ++i) {
      if (!emb->IsValid(i)) continue;
      auto f = emb->FloatsAt(i);
      out[label->Int64At(i)] = std::vector<float>(f.begin(), f.end());
    }
  }
  return out;
}

// Brute-force cosine top-k over `base` for each query (ground truth on the original floats).
std::vector<std::set<uint64_t>> TrueTopK(const std::vector<float>& base,
                                         const std::vector<float>& queries, size_t k) {
  const size_t n = base.size() / kDim;
  const size_t nq = queries.size() / kDim;
  std::vector<double> norms(n);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (size_t d = 0; d < kDim; ++d) s += double{base[i * kDim + d]} * base[i * kDim + d];
    norms[i] = std::sqrt(s);
  }
  std::vector<std::set<uint64_t>> out(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, uint64_t>> scored(n);
    for (size_t i = 0; i < n; ++i) {
      double dot = 0;
      for (size_t d = 0; d < kDim; ++d) dot += double{queries[q * kDim + d]} * base[i * kDim + d];
      scored[i] = {-dot / norms[i], i};
    }
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k),
                      scored.end());
    for (size_t j = 0; j < k; ++j) out[q].insert(scored[j].second);
  }
  return out;
}

double Recall(const SearchResults& got, const std::vector<std::set<uint64_t>>& truth) {
  double hits = 0;
  double total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    for (uint64_t i = got.offsets[q]; i < got.offsets[q + 1]; ++i) {
      hits += static_cast<double>(truth[q].count(got.anchors[i]));
    }
    total += static_cast<double>(truth[q].size());
  }
  return hits / total;
}

TEST(RawFalse, ScanAndTakeReturnReconstructionsWithinTheBound) {
  Schema s = MakeSchema(false);
  auto ds = Dataset::Create(MemStore(), "d", s);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const auto v = MakeVectors(500, 1);
  ASSERT_TRUE((*ds)->AppendMany(MakeBatch(s, v, 0, true)).ok());
  auto got = ScanAll(**ds);
  EXPECT_EQ(got.size(), 450u);
  size_t inexact = 0;
  for (const auto& [label, y] : got) {
    std::span<const float> x(v.data() + label * kDim, kDim);
    ExpectWithinBound(x, y, label);
    inexact += !std::equal(x.begin(), x.end(), y.begin());
  }
  EXPECT_GT(inexact, 400u);  // lossy: the float32 values are not stored
  // Take (ranged segment reads) returns the same reconstructions as the scan.
  std::vector<uint64_t> anchors = {0, 1, 2, 3, 77, 499};
  auto t = (*ds)->Take(anchors, {"emb", "label"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (size_t i = 0; i < anchors.size(); ++i) {
    const int64_t label = t->columns[1].Int64At(i);
    if (label % 10 == 3) {
      EXPECT_FALSE(t->columns[0].IsValid(i));
      continue;
    }
    auto f = t->columns[0].FloatsAt(i);
    EXPECT_EQ(std::vector<float>(f.begin(), f.end()), got[label]) << label;
  }
}

TEST(RawFalse, NonFiniteValuesAreRefusedNamingTheRow) {
  Schema s = MakeSchema(false);
  auto store = MemStore();
  auto ds = Dataset::Create(store, "d", s);
  ASSERT_TRUE(ds.ok());
  auto v = MakeVectors(20, 2);
  v[7 * kDim + 5] = std::nanf("");
  auto r = (*ds)->AppendMany(MakeBatch(s, v, 0));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("row 7"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'emb'"), std::string::npos) << r.status().ToString();
  EXPECT_EQ((*ds)->Count(), 0u);
}

TEST(RawFalse, SegmentsAreAboutFourTimesSmaller) {
  constexpr uint32_t kBig = 768;
  constexpr size_t kRows = 1000;
  const auto v = MakeVectors(kRows, 3, kBig);
  uint64_t bytes[2] = {0, 0};
  for (bool raw : {true, false}) {
    TempStore ts;
    Schema s = MakeSchema(raw, kBig);
    auto ds = Dataset::Create(ts.store(), "d", s);
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    Batch b = MakeBatch(s, v, 0, false, kBig);
    b.columns.pop_back();  // the embedding only: segment bytes are the vectors'
    ASSERT_TRUE((*ds)->AppendMany(b).ok());
    bytes[raw ? 0 : 1] = ts.SegmentBytes();
    auto report = Verify(*ts.store());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty());
  }
  const double raw_per_vector = static_cast<double>(bytes[0]) / kRows;
  const double sq8_per_vector = static_cast<double>(bytes[1]) / kRows;
  std::printf("segment bytes per vector, dim %u: raw %.1f, sq8 %.1f (%.2fx smaller)\n", kBig,
              raw_per_vector, sq8_per_vector, raw_per_vector / sq8_per_vector);
  EXPECT_GT(raw_per_vector, 3072);
  // 768 codes + 8 bytes of scales + header share (16 bytes of block sum per row: a
  // segment's `codes` blocks are one row each, spec/12-segments.md §4.4).
  EXPECT_LT(sq8_per_vector, 800);
  EXPECT_GT(raw_per_vector / sq8_per_vector, 3.8);
}

TEST(RawFalse, IndexBuildAndSearchRecallCloseToRaw) {
  constexpr size_t kN = 4000;
  constexpr size_t kQ = 50;
  constexpr size_t kK = 10;
  const auto base = MakeVectors(kN, 4);
  const auto queries = MakeVectors(kQ, 5);
  const auto truth = TrueTopK(base, queries, kK);
  double recall[2] = {0, 0};
  double exact_recall[2] = {0, 0};
  for (bool raw : {true, false}) {
    Schema s = MakeSchema(raw);
    auto ds = Dataset::Create(MemStore(), "d", s);
    ASSERT_TRUE(ds.ok());
    ASSERT_TRUE((*ds)->AppendMany(MakeBatch(s, base, 0)).ok());
    BuildIndexOptions bo;
    bo.seed = 7;
    auto built = (*ds)->BuildIndex("emb", bo);
    ASSERT_TRUE(built.ok()) << built.status().ToString();
    SearchOptions o;
    o.k = kK;
    o.nprobe = 16;
    auto r = (*ds)->Search("emb", queries.data(), kQ, kDim, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->used_index);
    recall[raw ? 0 : 1] = Recall(*r, truth);
    o.exact = true;
    auto e = (*ds)->Search("emb", queries.data(), kQ, kDim, o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_FALSE(e->used_index);
    exact_recall[raw ? 0 : 1] = Recall(*e, truth);
  }
  std::printf("recall@10 (ivf, nprobe 16, rerank): raw %.3f, raw=false %.3f; exact: %.3f, %.3f\n",
              recall[0], recall[1], exact_recall[0], exact_recall[1]);
  EXPECT_EQ(exact_recall[0], 1.0);
  EXPECT_GE(exact_recall[1], 0.95);  // brute force over the 8-bit reconstructions
  EXPECT_GE(recall[0], 0.85);
  EXPECT_GE(recall[1], recall[0] - 0.05);
}

// raw true -> false -> true: each segment keeps the encoding it was written with; every
// version stays readable; verify passes; an index builds over the mix.
TEST(RawFalse, SchemaEvolutionKeepsOldSegmentsReadable) {
  auto store = MemStore();
  Schema s = MakeSchema(true);
  auto ds_r = Dataset::Create(store, "d", s);
  ASSERT_TRUE(ds_r.ok());
  auto& ds = *ds_r;
  const auto a = MakeVectors(300, 6);
  const auto b = MakeVectors(300, 7);
  const auto c = MakeVectors(300, 8);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, a, 0)).ok());
  const ObjectId v1 = ds->head();

  auto with_raw = [](const Schema& from, bool raw) {
    Schema next;
    for (FieldSpec f : from.fields()) {
      if (f.name == "emb") f.index->keep_raw = raw;
      EXPECT_TRUE(next.Add(f).ok());
    }
    return next;
  };
  auto evolved = ds->EvolveSchema(with_raw(ds->schema(), false));
  ASSERT_TRUE(evolved.ok()) << evolved.status().ToString();
  ASSERT_FALSE(ds->schema().Find("emb")->index->keep_raw);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(ds->schema(), b, 1000)).ok());
  const ObjectId v2 = ds->head();
  evolved = ds->EvolveSchema(with_raw(ds->schema(), true));
  ASSERT_TRUE(evolved.ok()) << evolved.status().ToString();
  ASSERT_TRUE(ds->AppendMany(MakeBatch(ds->schema(), c, 2000)).ok());

  auto check = [&](const Dataset& d, bool has_c) {
    auto got = ScanAll(d);
    ASSERT_EQ(got.size(), has_c ? 900u : 600u);
    for (const auto& [label, y] : got) {
      if (label < 1000) {
        EXPECT_TRUE(std::equal(y.begin(), y.end(), a.begin() + label * kDim)) << label;
      } else if (label < 2000) {
        ExpectWithinBound(std::span<const float>(b.data() + (label - 1000) * kDim, kDim), y, label);
        EXPECT_FALSE(std::equal(y.begin(), y.end(), b.begin() + (label - 1000) * kDim)) << label;
      } else {
        EXPECT_TRUE(std::equal(y.begin(), y.end(), c.begin() + (label - 2000) * kDim)) << label;
      }
    }
  };
  check(*ds, true);
  auto old = Dataset::OpenAt(store, "d", v2.ToString());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  check(**old, false);
  auto first = Dataset::OpenAt(store, "d", v1.ToString());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(ScanAll(**first).size(), 300u);

  // Takes across the three encodings, an index over the mix, exact search.
  auto t = ds->Take({5, 305, 605}, {"emb"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto built = ds->BuildIndex("emb");
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  SearchOptions o;
  o.k = 3;
  auto q = t->columns[0].FloatsAt(1);  // the stored (reconstructed) value of anchor 305
  auto r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anchors[0], 305u);
  o.exact = true;
  r = ds->Search("emb", q.data(), 1, kDim, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anchors[0], 305u);
  EXPECT_NEAR(r->scores[0], 1.0F, 1e-5);

  auto report = Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty()) << report->problems.front();
}

// Compaction keeps an sq8 field's locations (spec/14 §18.2) and still drops its index's
// stale bucket entries (§18.4): those of deleted and replaced records.
TEST(RawFalse, CompactionKeepsSq8LocationsAndDropsTheStaleIndexEntries) {
  auto store = MemStore();
  const Schema s = MakeSchema(/*raw=*/false);
  auto ds = *Dataset::Create(store, "d", s);
  ASSERT_TRUE(ds->AppendMany(MakeBatch(s, MakeVectors(300, 1), 0)).ok());
  BuildIndexOptions bo;
  bo.cells = 4;
  ASSERT_TRUE(ds->BuildIndex("emb", bo).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(ds->AppendMany(MakeBatch(s, MakeVectors(2, 10 + i), 1000 + 2 * i)).ok());
  }
  Batch replaced = MakeBatch(s, MakeVectors(2, 20), 2000);
  replaced.anchors = {7, 8};
  ASSERT_TRUE(ds->AppendMany(replaced).ok());
  ASSERT_TRUE(ds->Delete({9, 301}).ok());
  auto before = ds->IndexStatus("emb");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->stale, 4u);  // 7 and 8's old values, 9, 301
  const auto queries = MakeVectors(8, 30);
  SearchOptions o;
  o.k = 10;
  o.nprobe = 4;
  auto found_before = ds->Search("emb", queries.data(), 8, kDim, o);
  ASSERT_TRUE(found_before.ok()) << found_before.status().ToString();
  CompactReport r;
  ASSERT_TRUE(ds->Compact({}, &r).ok());
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(r.spatial_indexes, 1u);
  auto after = ds->IndexStatus("emb");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->stale, 0u);
  EXPECT_EQ(after->entries, before->live);
  auto found_after = ds->Search("emb", queries.data(), 8, kDim, o);
  ASSERT_TRUE(found_after.ok()) << found_after.status().ToString();
  EXPECT_EQ(found_after->anchors, found_before->anchors);
  EXPECT_EQ(found_after->scores, found_before->scores);
  auto report = Verify(*store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty()) << report->problems.front();
}

TEST(RawFalse, AddLayerUsesTheFieldsEncoding) {
  auto store = MemStore();
  Schema s;
  ASSERT_TRUE(s.AddInt64("label").ok());
  auto ds = Dataset::Create(store, "d", s);
  ASSERT_TRUE(ds.ok());
  Batch b;
  Column label(*s.Find("label"));
  for (int i = 0; i < 50; ++i) label.AppendInt64(i);
  b.columns.push_back(std::move(label));
  ASSERT_TRUE((*ds)->AppendMany(b).ok());
  FieldSpec emb;
  emb.name = "emb";
  emb.type = FieldType::kEmbedding;
  emb.dim = kDim;
  emb.index = NoRaw();
  const auto v = MakeVectors(50, 9);
  // The column's own spec carries no index: the declared field decides the encoding.
  FieldSpec plain = emb;
  plain.index.reset();
  Column values(plain);
  std::vector<uint64_t> anchors;
  for (size_t i = 0; i < 50; ++i) {
    values.AppendFloats(std::span<const float>(v.data() + i * kDim, kDim));
    anchors.push_back(i);
  }
  auto r = (*ds)->AddLayer(emb, anchors, values);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto t = (*ds)->Take(anchors, {"emb"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  size_t inexact = 0;
  for (size_t i = 0; i < 50; ++i) {
    std::span<const float> x(v.data() + i * kDim, kDim);
    ExpectWithinBound(x, t->columns[0].FloatsAt(i), i);
    inexact += !std::equal(x.begin(), x.end(), t->columns[0].FloatsAt(i).begin());
  }
  EXPECT_GT(inexact, 40u);
  auto report = Verify(*store);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty());
}

}  // namespace
}  // namespace dreamdb
