// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Shared helpers for the graph index tests: small parameters, ground truth in node numbers
// and a recall check. Thread safety: pure functions.

#ifndef DREAMDB_SRC_INDEX_GRAPH_GRAPH_TEST_UTIL_H_
#define DREAMDB_SRC_INDEX_GRAPH_GRAPH_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "src/index/graph/graph.h"
#include "src/index/test_util.h"

namespace dreamdb::vector::testing {

inline constexpr uint32_t kDim = 48;

inline GraphParams SmallParams(Metric metric, uint32_t bits) {
  GraphParams p;
  p.dim = kDim;
  p.metric = metric;
  p.degree = 16;
  p.build_list = 48;
  p.bits = bits;
  p.seed = 7;
  p.nodes_per_block = 64;
  return p;
}

// Ground truth in node numbers: brute force over the input rows, mapped through `order`.
inline std::vector<std::vector<uint64_t>> TruthInNodes(const IvfModel& model,
                                                       const std::vector<float>& data,
                                                       const std::vector<float>& queries,
                                                       uint32_t k,
                                                       const std::vector<uint32_t>& order) {
  std::vector<uint32_t> node_of(order.size());
  for (uint32_t i = 0; i < order.size(); ++i) node_of[order[i]] = i;
  std::vector<std::vector<uint64_t>> truth = testing::BruteForce(model, data, queries, k);
  for (auto& row : truth) {
    for (auto& id : row) id = node_of[id];
  }
  return truth;
}

inline std::vector<std::vector<Neighbor>> SearchAll(const GraphIndex& index,
                                                    const std::vector<float>& queries,
                                                    const GraphSearchParams& sp) {
  std::vector<std::vector<Neighbor>> out;
  for (size_t q = 0; q < queries.size() / kDim; ++q) {
    Result<std::vector<Neighbor>> r = index.Search(&queries[q * kDim], sp);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    out.push_back(r.ok() ? *r : std::vector<Neighbor>{});
  }
  return out;
}

inline std::string MetricLabel(Metric m) { return std::string(MetricName(m)); }

// Minimum recall@10 without and with exact re-ranking (ef 64; 48-d data, so D = 64 and the
// 1-bit codes are coarse). The full metric x bit width matrix is in graph_recall_test.cc.
inline void CheckRecall(Metric metric, uint32_t bits, size_t n, double min_plain,
                        double min_rerank) {
  SCOPED_TRACE(MetricLabel(metric) + " bits " + std::to_string(bits));
  const std::vector<float> data = Clustered(n, 1, kDim);
  const std::vector<float> queries = Clustered(40, 99, kDim);
  std::vector<uint32_t> order;
  auto index = GraphIndex::Build(SmallParams(metric, bits), data.data(), n, 2, &order);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  const auto truth = TruthInNodes((*index)->model(), data, queries, 10, order);
  GraphSearchParams sp;
  sp.ef = 64;
  const double plain = Recall(SearchAll(**index, queries, sp), truth);
  sp.rerank = true;
  const auto reranked = SearchAll(**index, queries, sp);
  const double exact = Recall(reranked, truth);
  std::printf("%s bits %u n %zu: recall@10 %.4f, reranked %.4f\n", MetricLabel(metric).c_str(),
              bits, n, plain, exact);
  EXPECT_GE(plain, min_plain);
  EXPECT_GE(exact, min_rerank);
  // Re-ranked results carry exact distances, best first.
  for (size_t q = 0; q < reranked.size(); ++q) {
    ASSERT_EQ(reranked[q].size(), 10u);
    for (size_t i = 1; i < 10; ++i) {
      EXPECT_LE(reranked[q][i - 1].distance, reranked[q][i].distance);
    }
    const Neighbor& top = reranked[q][0];
    EXPECT_NEAR(top.distance,
                (*index)->model().ExactDistance(&queries[q * kDim], (*index)->raw(top.id)), 1e-4);
  }
}

}  // namespace dreamdb::vector::testing

#endif  // DREAMDB_SRC_INDEX_GRAPH_GRAPH_TEST_UTIL_H_
