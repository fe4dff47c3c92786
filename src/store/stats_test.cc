// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Request accounting (spec/05-backend.md §11): Store-level counts for backends that do not
// count their own requests, and the JSON / Prometheus renderings.

#include "src/store/stats.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dreamdb/store.h"

namespace dreamdb {
namespace {

TEST(StoreStatsTest, MemoryStoreCountsEveryBackendCallByVerbAndClass) {
  auto store = Store::Open("memory://");
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  EXPECT_EQ(s.stats().TotalRequests(), 0u);
  auto id = s.Put("hello");
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(*s.Get(*id), "hello");
  ASSERT_EQ(*s.GetRange(*id, 1, 2), "el");
  EXPECT_EQ(s.Get(ObjectId::Of("absent")).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(s.CreateRef("ds/branches/main", *id).ok());  // HEAD of the target, then PUT
  EXPECT_EQ(s.CreateRef("ds/branches/main", *id).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(s.ListRefs("", [](const RefValue&) { return true; }).ok());
  const StoreStats st = s.stats();
  EXPECT_EQ(st.requests[StoreStats::kPut][StoreStats::k2xx], 2u);  // the object, the ref
  EXPECT_EQ(st.requests[StoreStats::kPut][StoreStats::k4xx], 1u);  // already exists
  EXPECT_EQ(st.requests[StoreStats::kGet][StoreStats::k2xx], 2u);
  EXPECT_EQ(st.requests[StoreStats::kGet][StoreStats::k4xx], 1u);
  EXPECT_EQ(st.requests[StoreStats::kHead][StoreStats::k2xx], 2u);
  EXPECT_EQ(st.requests[StoreStats::kList][StoreStats::k2xx], 1u);
  EXPECT_EQ(st.TotalRequests(), 9u);
  EXPECT_EQ(st.bytes_out, 5u);
  EXPECT_EQ(st.bytes_in, 7u);  // "hello" and "el"
  EXPECT_EQ(st.retries, 0u);
}

// A multi-range read is one call reaching a local backend: one GET, its bytes in the sum
// of its ranges (spec/05-backend.md §11.2); an empty one asks nothing.
TEST(StoreStatsTest, MultiRangeReadCountsAsOneGetOnALocalStore) {
  auto store = Store::Open("memory://");
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  auto id = s.Put("0123456789");
  ASSERT_TRUE(id.ok());
  const StoreStats before = s.stats();
  const std::vector<ObjectRange> ranges = {{7, 2}, {0, 3}, {8, 100}};
  auto got = s.GetRanges(*id, ranges);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(s.GetRanges(*id, {}).ok());
  const StoreStats after = s.stats();
  EXPECT_EQ(after.requests[StoreStats::kGet][StoreStats::k2xx] -
                before.requests[StoreStats::kGet][StoreStats::k2xx],
            1u);
  EXPECT_EQ(after.TotalRequests() - before.TotalRequests(), 1u);
  EXPECT_EQ(after.bytes_in - before.bytes_in, 7u);  // "78", "012", "89"
}

TEST(StoreStatsTest, JsonListsNonZeroCountsByVerb) {
  StoreStats s;
  s.requests[StoreStats::kGet][StoreStats::k2xx] = 3;
  s.requests[StoreStats::kPut][StoreStats::k5xx] = 1;
  s.retries = 1;
  s.bytes_in = 10;
  s.in_flight_ns = 2500000;
  EXPECT_EQ(StoreStatsJson(s),
            "{\"requests\":4,\"by_verb\":{\"GET\":{\"2xx\":3},\"PUT\":{\"5xx\":1}},"
            "\"retries\":1,\"bytes_in\":10,\"bytes_out\":0,\"cache_hits\":0,\"cache_misses\":0,"
            "\"cache_bytes_read\":0,\"cache_bytes_written\":0,\"cache_corrupt\":0,"
            "\"cache_evictions\":0,\"in_flight_ms\":2}");
}

TEST(StoreStatsTest, PrometheusTextHasEveryVerbAndClassAndTypedCounters) {
  StoreStats s;
  s.requests[StoreStats::kHead][StoreStats::k4xx] = 7;
  s.in_flight_ns = 1500000000;
  const std::string text = StoreStatsPrometheus(s);
  EXPECT_NE(text.find("# TYPE dreamdb_storage_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("dreamdb_storage_requests_total{verb=\"HEAD\",class=\"4xx\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("dreamdb_storage_requests_total{verb=\"LIST\",class=\"none\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("dreamdb_storage_request_seconds_total 1.500000\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE dreamdb_cache_hits_total counter\n"), std::string::npos);
  // Every sample line is "name{labels} value" or "name value".
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    if (line[0] != '#') {
      EXPECT_NE(line.rfind(' '), std::string::npos) << line;
    }
    start = end + 1;
  }
}

TEST(StoreStatsTest, ByteSizesTakeBinarySuffixes) {
  EXPECT_EQ(*ParseByteSize("x", "1000"), 1000u);
  EXPECT_EQ(*ParseByteSize("x", "512K"), 512u << 10);
  EXPECT_EQ(*ParseByteSize("x", "2G"), uint64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("x", "3MiB"), uint64_t{3} << 20);
  EXPECT_EQ(*ParseByteSize("x", "1TB"), uint64_t{1} << 40);
  EXPECT_EQ(*ParseByteSize("x", "7B"), 7u);
  for (const char* bad : {"", "G", "1X", "1GG", "-1", "99999999999999999999", "20000000000T"}) {
    auto r = ParseByteSize("--cache-size", bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("--cache-size"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace dreamdb
