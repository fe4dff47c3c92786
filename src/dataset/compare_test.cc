// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "dreamdb/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "dreamdb/dataset.h"
#include "src/dataset/compare.h"

namespace dreamdb {
namespace {

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

FieldSpec Spec(std::string name, FieldType type) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.optional = true;
  return f;
}

Schema BaseSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddFloat64("score", true).ok());
  EXPECT_TRUE(s.AddString("caption", true).ok());
  EXPECT_TRUE(s.AddEmbedding("emb", 2, true).ok());
  return s;
}

// n records, anchors 0..n-1: label i % 2, score i, caption "c<i>", emb [1, 0].
Batch Rows(const Schema& s, uint64_t n) {
  Batch b;
  Column label(*s.Find("label")), score(*s.Find("score")), caption(*s.Find("caption")),
      emb(*s.Find("emb"));
  for (uint64_t i = 0; i < n; ++i) {
    b.anchors.push_back(i);
    label.AppendInt64(static_cast<int64_t>(i % 2));
    score.AppendFloat64(static_cast<double>(i));
    caption.AppendBytes("c" + std::to_string(i));
    float v[2] = {1, 0};
    emb.AppendFloats(v);
  }
  b.columns = {std::move(label), std::move(score), std::move(caption), std::move(emb)};
  return b;
}

struct Fixture {
  std::shared_ptr<Store> store = MemStore();
  Schema schema = BaseSchema();
};

// main: 100 records. Snapshot v1. Branch "exp": score + 2 for anchors 0..9, anchor 50
// deleted, anchors 100..104 added, caption of anchor 20 changed, emb of anchor 30 -> [0, 1].
Fixture MakeTwo() {
  Fixture fx;
  auto ds = *Dataset::Create(fx.store, "d", fx.schema);
  EXPECT_TRUE(ds->AppendMany(Rows(fx.schema, 100)).ok());
  EXPECT_TRUE(ds->Snapshot("v1").ok());
  EXPECT_TRUE(ds->Branch("exp").ok());
  auto exp = *Dataset::Open(fx.store, "d", "exp");
  {
    Batch b;
    Column score(*fx.schema.Find("score"));
    for (uint64_t i = 0; i < 10; ++i) {
      b.anchors.push_back(i);
      score.AppendFloat64(static_cast<double>(i) + 2);
    }
    b.columns.push_back(std::move(score));
    EXPECT_TRUE(exp->AppendMany(b).ok());
  }
  EXPECT_TRUE(exp->Delete({50}).ok());
  {
    Batch b = Rows(fx.schema, 105);
    Batch tail;
    tail.anchors.assign(b.anchors.begin() + 100, b.anchors.end());
    for (const auto& c : b.columns) {
      Column part(c.field());
      part.AppendRange(c, 100, 105);
      tail.columns.push_back(std::move(part));
    }
    EXPECT_TRUE(exp->AppendMany(tail).ok());
  }
  {
    Batch b;
    Column caption(*fx.schema.Find("caption"));
    b.anchors.push_back(20);
    caption.AppendBytes("changed");
    b.columns.push_back(std::move(caption));
    EXPECT_TRUE(exp->AppendMany(b).ok());
  }
  {
    Batch b;
    Column emb(*fx.schema.Find("emb"));
    b.anchors.push_back(30);
    float v[2] = {0, 1};
    emb.AppendFloats(v);
    b.columns.push_back(std::move(emb));
    EXPECT_TRUE(exp->AppendMany(b).ok());
  }
  return fx;
}

std::vector<Batch> ReadAll(CompareReader& r) {
  std::vector<Batch> out;
  for (;;) {
    auto b = r.Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || !*b) break;
    EXPECT_GT((*b)->num_rows(), 0u);
    out.push_back(std::move(**b));
  }
  return out;
}

const CompareFieldStats& Stat(const CompareSummary& s, const std::string& field, size_t b = 1) {
  for (const auto& st : s.stats) {
    if (st.field == field && st.b == b) return st;
  }
  ADD_FAILURE() << "no stats for " << field;
  static CompareFieldStats none;
  return none;
}

TEST(CompareRefsTest, WideTableIsAnOuterJoinInAnchorOrder) {
  Fixture fx = MakeTwo();
  CompareOptions o;
  o.batch_rows = 7;  // many batches, runs that cross input batches
  auto r = CompareRefs(fx.store, "d", {"v1", "exp"}, {"score", "caption"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& cols = (*r)->columns();
  ASSERT_EQ(cols.size(), 4u);
  EXPECT_EQ(cols[0].name, "score@v1");
  EXPECT_EQ(cols[1].name, "score@exp");
  EXPECT_EQ(cols[2].name, "caption@v1");
  EXPECT_EQ(cols[3].name, "caption@exp");
  auto batches = ReadAll(**r);
  uint64_t next = 0;
  for (const auto& b : batches) {
    EXPECT_LE(b.num_rows(), 7u);
    ASSERT_EQ(b.columns.size(), 4u);
    for (uint64_t i = 0; i < b.num_rows(); ++i, ++next) {
      const uint64_t a = b.anchors[i];
      EXPECT_EQ(a, next);
      const Column& sa = b.columns[0];
      const Column& sb = b.columns[1];
      if (a >= 100) {
        EXPECT_FALSE(sa.IsValid(i));
        EXPECT_FALSE(b.columns[2].IsValid(i));
        ASSERT_TRUE(sb.IsValid(i));
        EXPECT_EQ(sb.Float64At(i), static_cast<double>(a));
      } else if (a == 50) {
        EXPECT_EQ(sa.Float64At(i), 50.0);
        EXPECT_FALSE(sb.IsValid(i));
        EXPECT_FALSE(b.columns[3].IsValid(i));
      } else {
        EXPECT_EQ(sa.Float64At(i), static_cast<double>(a));
        EXPECT_EQ(sb.Float64At(i), static_cast<double>(a) + (a < 10 ? 2 : 0));
        EXPECT_EQ(b.columns[3].BytesAt(i), a == 20 ? "changed" : "c" + std::to_string(a));
      }
    }
  }
  EXPECT_EQ(next, 105u);
  CompareSummary s = (*r)->Summary();
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.anchors, 105u);
  EXPECT_EQ(s.present, (std::vector<uint64_t>{100, 104}));
  // 10 scores, anchor 20's caption, 50 (removed), 100..104 (added).
  EXPECT_EQ(s.differing, 17u);
  EXPECT_EQ(s.emitted, 105u);
  const auto& score = Stat(s, "score");
  EXPECT_EQ(score.both, 99u);
  EXPECT_EQ(score.only_a, 1u);
  EXPECT_EQ(score.only_b, 5u);
  EXPECT_EQ(score.differing, 10u);
  EXPECT_EQ(score.numeric_count, 99u);
  EXPECT_NEAR(*score.mean_diff, 20.0 / 99, 1e-12);
  EXPECT_NEAR(*score.mean_abs_diff, 20.0 / 99, 1e-12);
  EXPECT_EQ(*score.median_diff, 0.0);
  EXPECT_FALSE(score.median_approximate);
  EXPECT_NEAR(*score.agreement, 89.0 / 99, 1e-12);
  const auto& caption = Stat(s, "caption");
  EXPECT_EQ(caption.differing, 1u);
  EXPECT_FALSE(caption.mean_diff.has_value());
  EXPECT_NEAR(*caption.agreement, 98.0 / 99, 1e-12);
}

TEST(CompareRefsTest, OnlyDifferingAndRange) {
  Fixture fx = MakeTwo();
  CompareOptions o;
  o.only_differing = true;
  o.batch_rows = 3;
  auto r = CompareRefs(fx.store, "d", {"v1", "exp"}, {"score", "caption", "emb"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<uint64_t> anchors;
  for (const auto& b : ReadAll(**r)) {
    anchors.insert(anchors.end(), b.anchors.begin(), b.anchors.end());
  }
  std::vector<uint64_t> want = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 30, 50, 100, 101, 102, 103, 104};
  EXPECT_EQ(anchors, want);
  CompareSummary s = (*r)->Summary();
  EXPECT_EQ(s.emitted, want.size());
  const auto& emb = Stat(s, "emb");
  EXPECT_EQ(emb.both, 99u);
  EXPECT_NEAR(*emb.mean_cosine, 98.0 / 99, 1e-12);
  EXPECT_EQ(*emb.min_cosine, 0.0);

  o.start = 5;
  o.end = 25;
  auto r2 = CompareRefs(fx.store, "d", {"v1", "exp"}, {"caption", "score"}, o);
  ASSERT_TRUE(r2.ok());
  anchors.clear();
  for (const auto& b : ReadAll(**r2)) {
    anchors.insert(anchors.end(), b.anchors.begin(), b.anchors.end());
    EXPECT_EQ(b.columns[0].field().name, "caption@v1");
  }
  EXPECT_EQ(anchors, (std::vector<uint64_t>{5, 6, 7, 8, 9, 20}));
  EXPECT_EQ((*r2)->Summary().anchors, 20u);
}

TEST(CompareRefsTest, LimitStillSummarizesEverything) {
  Fixture fx = MakeTwo();
  CompareOptions o;
  o.limit = 4;
  o.batch_rows = 3;
  auto r = CompareRefs(fx.store, "d", {"v1", "exp", "main"}, {"score"}, o);
  ASSERT_TRUE(r.ok());
  uint64_t rows = 0;
  for (const auto& b : ReadAll(**r)) {
    rows += b.num_rows();
    EXPECT_EQ(b.columns.size(), 3u);
  }
  EXPECT_EQ(rows, 4u);
  CompareSummary s = (*r)->Summary();
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.anchors, 105u);
  ASSERT_EQ(s.stats.size(), 2u);  // exp vs v1, main vs v1
  EXPECT_EQ(Stat(s, "score", 2).differing, 0u);
  EXPECT_EQ(Stat(s, "score", 2).both, 100u);
  EXPECT_EQ(Stat(s, "score", 1).differing, 10u);

  // Without a summary the reader stops at the limit.
  o.summary = false;
  auto r2 = CompareRefs(fx.store, "d", {"v1", "exp"}, {"score"}, o);
  ASSERT_TRUE(r2.ok());
  rows = 0;
  for (const auto& b : ReadAll(**r2)) rows += b.num_rows();
  EXPECT_EQ(rows, 4u);
  EXPECT_FALSE((*r2)->Summary().complete);
}

TEST(CompareRefsTest, FinishReadsWithoutRows) {
  Fixture fx = MakeTwo();
  auto r = CompareRefs(fx.store, "d", {"v1", "exp"}, {}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->columns().size(), 8u);  // 4 fields x 2 refs
  auto s = (*r)->Finish();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->complete);
  EXPECT_EQ(s->emitted, 0u);
  EXPECT_EQ(s->differing, 18u);  // + anchor 30's embedding
  EXPECT_EQ(s->fields, (std::vector<std::string>{"label", "score", "caption", "emb"}));
  EXPECT_EQ(Stat(*s, "label").differing, 0u);
  EXPECT_EQ(*Stat(*s, "label").mean_diff, 0.0);
  auto after = (*r)->Next();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
}

TEST(CompareRefsTest, LayerOnOneBranchOnly) {
  Fixture fx = MakeTwo();
  auto exp = *Dataset::Open(fx.store, "d", "exp");
  FieldSpec pred = Spec("pred", FieldType::kFloat64);
  Column values(pred);
  for (int i = 0; i < 3; ++i) values.AppendFloat64(0.5);
  ASSERT_TRUE(exp->AddLayer(pred, {1, 2, 3}, values).ok());
  auto r = CompareRefs(fx.store, "d", {"main", "exp"}, {"pred"}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto batches = ReadAll(**r);
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  EXPECT_EQ(b.columns[0].NullCount(), b.num_rows());
  EXPECT_EQ(b.columns[1].NullCount(), b.num_rows() - 3);
  auto s = (*r)->Summary();
  EXPECT_EQ(Stat(s, "pred").only_b, 3u);
  EXPECT_EQ(Stat(s, "pred").both, 0u);
  EXPECT_FALSE(Stat(s, "pred").agreement.has_value());
}

TEST(CompareRefsTest, Errors) {
  Fixture fx = MakeTwo();
  auto one = CompareRefs(fx.store, "d", {"v1"}, {"score"}, {});
  EXPECT_EQ(one.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(one.status().message().find("at least 2 refs"), std::string::npos);

  auto missing = CompareRefs(fx.store, "d", {"v1", "nope"}, {"score"}, {});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos)
      << missing.status().ToString();

  auto twice = CompareRefs(fx.store, "d", {"v1", "v1"}, {"score"}, {});
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);

  auto field = CompareRefs(fx.store, "d", {"v1", "exp"}, {"scroe"}, {});
  EXPECT_EQ(field.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(field.status().message().find("unknown field 'scroe'"), std::string::npos)
      << field.status().ToString();

  // A layer with one type on one branch and another type on another.
  ASSERT_TRUE((*Dataset::Open(fx.store, "d"))->Branch("other").ok());
  FieldSpec f1 = Spec("pred", FieldType::kFloat64);
  FieldSpec f2 = Spec("pred", FieldType::kInt64);
  Column c1(f1), c2(f2);
  c1.AppendFloat64(0.5);
  c2.AppendInt64(1);
  ASSERT_TRUE((*Dataset::Open(fx.store, "d", "exp"))->AddLayer(f1, {1}, c1).ok());
  ASSERT_TRUE((*Dataset::Open(fx.store, "d", "other"))->AddLayer(f2, {1}, c2).ok());
  auto mismatch = CompareRefs(fx.store, "d", {"v1", "exp", "other"}, {"pred"}, {});
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("has type float64 at 'exp' but int64 at 'other'"),
            std::string::npos)
      << mismatch.status().ToString();
}

TEST(CompareRefsTest, MedianIsExactUpToTheCapThenSampled) {
  compare::MedianSample m(1000);
  EXPECT_FALSE(m.Median().has_value());
  for (int i = 1; i <= 4; ++i) m.Add(i);
  EXPECT_EQ(*m.Median(), 2.5);
  m.Add(100);
  EXPECT_EQ(*m.Median(), 3.0);
  EXPECT_FALSE(m.approximate());

  // 10^5 values uniform on [0, 1): a 1000-value reservoir lands near 0.5, reproducibly.
  compare::MedianSample a(1000), b(1000);
  for (int i = 0; i < 100000; ++i) {
    const double v = static_cast<double>((i * 7919) % 100000) / 100000;
    a.Add(v);
    b.Add(v);
  }
  EXPECT_TRUE(a.approximate());
  EXPECT_NEAR(*a.Median(), 0.5, 0.05);
  EXPECT_EQ(*a.Median(), *b.Median());
}

TEST(CompareRefsTest, ApproximateMedianIsReported) {
  Fixture fx = MakeTwo();
  CompareOptions o;
  o.median_sample = 10;
  auto r = CompareRefs(fx.store, "d", {"v1", "exp"}, {"score"}, o);
  ASSERT_TRUE(r.ok());
  auto s = (*r)->Finish();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(Stat(*s, "score").median_approximate);
  EXPECT_EQ(Stat(*s, "score").numeric_count, 99u);
}

TEST(CompareRefsTest, EqualityAndCosineHelpers) {
  FieldSpec f = Spec("x", FieldType::kFloat64);
  Column c(f);
  c.AppendFloat64(std::nan(""));
  c.AppendFloat64(std::nan(""));
  c.AppendFloat64(0.0);
  c.AppendFloat64(-0.0);
  EXPECT_TRUE(compare::ValuesEqual(c, 0, c, 1));
  EXPECT_TRUE(compare::ValuesEqual(c, 2, c, 3));
  EXPECT_FALSE(compare::ValuesEqual(c, 0, c, 2));
  float z[2] = {0, 0}, x[2] = {3, 4}, y[2] = {6, 8}, w[2] = {-3, -4};
  EXPECT_EQ(compare::Cosine(z, z), 1.0);
  EXPECT_EQ(compare::Cosine(z, x), 0.0);
  EXPECT_NEAR(compare::Cosine(x, y), 1.0, 1e-15);
  EXPECT_NEAR(compare::Cosine(x, w), -1.0, 1e-15);
}

}  // namespace
}  // namespace dreamdb
