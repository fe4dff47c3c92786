// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The retention suites (retention_test.cc, field_retention_test.cc) on memory:// and
// file://; retention_s3_test.cc runs them on s3://.
#include "src/dataset/retention_test_util.h"

namespace dreamdb {
namespace {

INSTANTIATE_TEST_SUITE_P(Backends, Retention, ::testing::Values("memory://", "file"), BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, FieldRetention, ::testing::Values("memory://", "file"),
                         BackendName);

}  // namespace
}  // namespace dreamdb
