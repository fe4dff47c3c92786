#include <gtest/gtest.h>

#include "src/dataset/test_util.h"

namespace dreamdb {
namespace {

// The figure: 8 writers x 200 commits on one branch, every commit lands
// (compare-and-swap with rebase and jittered backoff; no writer starves).
TEST(DatasetSlowTest, EightWritersTimesTwoHundredCommitsAllLand) { ConcurrentWriters(8, 200); }

}  // namespace
}  // namespace dreamdb
