// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/base/check.h"

#include <gtest/gtest.h>

namespace dreamdb {
namespace {

TEST(DcheckTest, HoldingConditionsPass) {
  int evaluated = 0;
  DCHECK(++evaluated == 1);
#ifdef NDEBUG
  EXPECT_EQ(evaluated, 0) << "a release DCHECK must not evaluate its condition";
#else
  EXPECT_EQ(evaluated, 1);
#endif
}

#ifndef NDEBUG
TEST(DcheckDeathTest, FailingConditionAbortsNamingIt) {
  const int cells = 3;
  EXPECT_DEATH(DCHECK(cells < 2), "DCHECK failed: cells < 2");
}
#else
TEST(DcheckTest, FailingConditionIsCompiledOutInRelease) {
  const int cells = 3;
  DCHECK(cells < 2);  // no effect with NDEBUG
  SUCCEED();
}
#endif

}  // namespace
}  // namespace dreamdb
