// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Request accounting rendered for people and tools (spec/05-backend.md §11), the local
// object cache's usage (§12), and byte-size parsing for options such as --cache-size.
//
// Thread safety: every function is thread-safe (pure, or reads the cache directory only).

#ifndef DREAMDB_STORE_STATS_H_
#define DREAMDB_STORE_STATS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

// {"requests":N,"by_verb":{"GET":{"2xx":N,...},...},"retries":N,"bytes_in":N,
//  "bytes_out":N,"in_flight_ms":N,"cache_hits":N,...}; by_verb lists non-zero counts only.
std::string StoreStatsJson(const StoreStats& stats);
// Prometheus text exposition (version 0.0.4) of `stats`: dreamdb_storage_requests_total
// {verb,class}, dreamdb_storage_retries_total, dreamdb_storage_bytes_{in,out}_total,
// dreamdb_storage_request_seconds_total and dreamdb_cache_*_total.
std::string StoreStatsPrometheus(const StoreStats& stats);
// Human-readable lines ("storage requests: 12 (GET 2xx 10, HEAD 4xx 2) ...") for stderr.
std::string StoreStatsText(const StoreStats& stats);

// Parses a byte count: digits with an optional suffix K, M, G, T (powers of 1024, an
// optional trailing "B" or "iB"), e.g. "512M", "2GiB", "1000000". kInvalidArgument naming
// `what` and the text otherwise.
Result<uint64_t> ParseByteSize(std::string_view what, std::string_view text);

// What a local object cache directory holds now (files and bytes), as its eviction counts
// them.
struct ObjectCacheUsage {
  uint64_t files = 0;
  uint64_t bytes = 0;
};
Result<ObjectCacheUsage> ObjectCacheUsageOf(const std::string& dir);

}  // namespace dreamdb

#endif  // DREAMDB_STORE_STATS_H_
