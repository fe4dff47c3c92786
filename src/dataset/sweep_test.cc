// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sweeps (dreamdb/sweep.h, spec/14-semantics.md §17): the record round-trips through
// branch metadata, runs start at the source manifest, means leave NaN and null out, runs
// without a value are not ranked, a taken name writes nothing, and the best run merges.

#include "dreamdb/sweep.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "dreamdb/dataset.h"

namespace dreamdb {
namespace {

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddFloat64("loss", /*optional=*/true).ok());
  return s;
}

// Appends records with `losses` (NaN allowed; nullopt = null) at anchors 0.. on `branch`.
void WriteLosses(std::shared_ptr<Store> store, const std::string& branch,
                 const std::vector<std::optional<double>>& losses) {
  auto ds = Dataset::Open(store, "d", branch);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  Schema schema = (*ds)->schema();
  Batch b;
  Column label(*schema.Find("label")), loss(*schema.Find("loss"));
  for (size_t i = 0; i < losses.size(); ++i) {
    b.anchors.push_back(i);
    label.AppendInt64(static_cast<int64_t>(i));
    if (losses[i]) {
      loss.AppendFloat64(*losses[i]);
    } else {
      loss.AppendNull();
    }
  }
  b.columns = {std::move(label), std::move(loss)};
  ASSERT_TRUE((*ds)->AppendMany(b).ok());
}

SweepInitOptions Runs(uint32_t runs, std::string metric = {}, std::string from = "main") {
  SweepInitOptions o;
  o.runs = runs;
  o.metric = std::move(metric);
  o.from = std::move(from);
  return o;
}

class SweepTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Dataset::Create(store_, "d", TestSchema()).ok()); }
  ObjectId Head(const std::string& branch) {
    return (*Dataset::OpenAt(store_, "d", branch))->head();
  }
  std::shared_ptr<Store> store_ = MemStore();
};

TEST_F(SweepTest, InitRecordsTheSweepAndRunsStartAtTheSource) {
  SweepInitOptions o = Runs(2, "loss");
  o.params = {{{"lr", "0.1"}}, {{"lr", "0.2"}}};
  auto info = SweepInit(store_, "d", "s", o);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->source_branch, "main");
  EXPECT_EQ(info->source_manifest, Head("main"));
  auto shown = SweepShow(store_, "d", "s");
  ASSERT_TRUE(shown.ok()) << shown.status().ToString();
  ASSERT_EQ(shown->runs.size(), 2u);
  EXPECT_EQ(shown->runs[1].branch, "sweep/s/run-1");
  EXPECT_EQ(shown->runs[1].params.at("lr"), "0.2");
  EXPECT_EQ(shown->metric, "loss");
  EXPECT_EQ(Head("sweep/s/run-0"), Head("main"));
  auto list = SweepList(store_, "d");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "s");
}

TEST_F(SweepTest, MeanLeavesNanAndNullOutAndUnrankedRunsHaveNoRank) {
  ASSERT_TRUE(SweepInit(store_, "d", "s", Runs(3)).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  WriteLosses(store_, "sweep/s/run-0", {1.0, 3.0, std::nullopt});
  WriteLosses(store_, "sweep/s/run-1", {0.5, nan});
  auto s = SweepSummarize(store_, "d", "s", "loss", "min");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s->runs[0].value, 2.0);
  EXPECT_EQ(s->runs[0].nulls, 1u);
  EXPECT_EQ(*s->runs[1].value, 0.5);
  EXPECT_EQ(s->runs[1].nans, 1u);
  EXPECT_FALSE(s->runs[2].value.has_value());
  EXPECT_EQ(s->runs[2].rank, 0u);
  EXPECT_EQ(*s->best, 1u);
  EXPECT_EQ(*s->worst, 0u);
  auto mx = SweepSummarize(store_, "d", "s", "loss", "max");
  ASSERT_TRUE(mx.ok());
  EXPECT_EQ(*mx->best, 0u);
  EXPECT_EQ(SweepSummarize(store_, "d", "s", "label", "sideways").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SweepTest, MetadataValueWhenTheMetricIsNoField) {
  ASSERT_TRUE(SweepInit(store_, "d", "s", Runs(2)).ok());
  auto run1 = Dataset::Open(store_, "d", "sweep/s/run-1");
  ASSERT_TRUE((*run1)->SetMeta({{"acc", "0.75"}}).ok());
  auto run0 = Dataset::Open(store_, "d", "sweep/s/run-0");
  ASSERT_TRUE((*run0)->SetMeta({{"acc", "nan"}}).ok());
  auto s = SweepSummarize(store_, "d", "s", "acc", "max");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->runs[1].source, "meta");
  EXPECT_EQ(*s->best, 1u);
  EXPECT_TRUE(std::isnan(*s->runs[0].value));
  EXPECT_EQ(s->runs[0].rank, 0u);
}

TEST_F(SweepTest, TakenNameWritesNothing) {
  auto main = Dataset::Open(store_, "d");
  ASSERT_TRUE((*main)->Branch("sweep/s/run-1").ok());
  EXPECT_EQ(SweepInit(store_, "d", "s", Runs(2)).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Dataset::Open(store_, "d", "sweep/s/run-0").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SweepShow(store_, "d", "s").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SweepInit(store_, "d", "a b", Runs(2)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SweepShow(store_, "nope", "s").status().code(), StatusCode::kNotFound);
}

TEST_F(SweepTest, MergeBestFastForwardsTheSourceAndNeedsABranch) {
  ASSERT_TRUE(SweepInit(store_, "d", "s", Runs(2, "loss")).ok());
  WriteLosses(store_, "sweep/s/run-0", {4.0});
  WriteLosses(store_, "sweep/s/run-1", {1.0});
  auto r = SweepMergeBest(store_, "d", "s");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->into, "main");
  EXPECT_TRUE(r->report.fast_forward);
  EXPECT_EQ(Head("main"), Head("sweep/s/run-1"));
  // A sweep from a manifest id has no source branch: --into is required.
  ASSERT_TRUE(SweepInit(store_, "d", "t", Runs(1, "", Head("main").ToString())).ok());
  WriteLosses(store_, "sweep/t/run-0", {1.0});
  EXPECT_EQ(SweepMergeBest(store_, "d", "t", "loss").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb
