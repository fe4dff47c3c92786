// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The retention suites (retention_test.cc, field_retention_test.cc) on s3://, against the
// local S3 server of scripts/s3_server.sh (DREAMDB_S3_ENDPOINT, DREAMDB_S3_BUCKET and its
// credentials; store_fixture_test_util.h). Without one they fail under CI or
// DREAMDB_REQUIRE_S3 and are skipped elsewhere.
#include "src/dataset/retention_test_util.h"

namespace dreamdb {
namespace {

INSTANTIATE_TEST_SUITE_P(Backends, Retention, ::testing::Values("s3"), BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, FieldRetention, ::testing::Values("s3"), BackendName);

}  // namespace
}  // namespace dreamdb
