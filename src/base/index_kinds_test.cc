// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "dreamdb/index_kinds.h"

#include <gtest/gtest.h>

#include <string>

namespace dreamdb {
namespace {

TEST(IndexKindsTest, EveryNameRoundTripsThroughItsTable) {
  for (IndexAlgorithm a :
       {IndexAlgorithm::kIvf, IndexAlgorithm::kImi, IndexAlgorithm::kLsh, IndexAlgorithm::kGraph}) {
    auto back = ParseIndexAlgorithm(IndexAlgorithmName(a));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, a);
  }
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    auto back = ParseMetric(MetricName(m));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, m);
    EXPECT_TRUE(IsCanonicalMetricName(MetricName(m)));
  }
  for (Quantizer q : {Quantizer::kRaBitQ, Quantizer::kPq4}) {
    auto back = ParseQuantizer(QuantizerName(q));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, q);
  }
}

TEST(IndexKindsTest, GraphIsAnAlgorithmAndTheStoredBytesArePinned) {
  // The values are the model header bytes of spec/20 §4; they never change.
  EXPECT_EQ(static_cast<int>(IndexAlgorithm::kIvf), 0);
  EXPECT_EQ(static_cast<int>(IndexAlgorithm::kImi), 1);
  EXPECT_EQ(static_cast<int>(IndexAlgorithm::kLsh), 2);
  EXPECT_EQ(static_cast<int>(Metric::kL2), 0);
  EXPECT_EQ(static_cast<int>(Metric::kInnerProduct), 1);
  EXPECT_EQ(static_cast<int>(Metric::kCosine), 2);
  EXPECT_EQ(static_cast<int>(Quantizer::kRaBitQ), 0);
  EXPECT_EQ(static_cast<int>(Quantizer::kPq4), 1);
  EXPECT_EQ(IndexAlgorithmName(IndexAlgorithm::kGraph), "graph");
  EXPECT_FALSE(SupportsQuantizer(IndexAlgorithm::kGraph, Quantizer::kPq4));
  EXPECT_TRUE(SupportsQuantizer(IndexAlgorithm::kLsh, Quantizer::kPq4));
}

TEST(IndexKindsTest, UnknownNamesAreNamedWithTheAcceptedOnes) {
  auto a = ParseIndexAlgorithm("hnsw");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.status().message(),
            "unknown index algorithm 'hnsw' (expected ivf, imi, lsh or graph)");
  auto m = ParseMetric("dot");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), "unknown metric 'dot' (expected l2, ip or cosine)");
  auto q = ParseQuantizer("sq8");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "unknown quantizer 'sq8' (expected rabitq or pq4)");
}

TEST(IndexKindsTest, MetricAliasParsesButIsNotCanonical) {
  auto m = ParseMetric("inner_product");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, Metric::kInnerProduct);
  EXPECT_FALSE(IsCanonicalMetricName("inner_product"));
  EXPECT_FALSE(IsCanonicalMetricName("Cosine"));
}

}  // namespace
}  // namespace dreamdb
