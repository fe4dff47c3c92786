// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Recall of the graph index for every metric x bit width (slow under sanitizers; the fast
// test binary checks three of the combinations).

#include <gtest/gtest.h>

#include "src/index/graph/graph_test_util.h"

namespace dreamdb::vector {
namespace {

using testing::CheckRecall;

// Minimum recall@10 at ef 64 on 48-d clustered data (D = 64: the 1-bit codes are coarse);
// re-ranked results must be (almost) exact.
TEST(GraphRecallTest, EveryMetricAndBitWidth) {
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    CheckRecall(metric, 1, 3000, 0.3, 0.97);
    CheckRecall(metric, 4, 3000, 0.75, 0.97);
    CheckRecall(metric, 8, 3000, 0.9, 0.97);
  }
}

}  // namespace
}  // namespace dreamdb::vector
