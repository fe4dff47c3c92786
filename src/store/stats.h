// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Request accounting (spec/05-backend.md §11): the counters a backend or a Store adds to
// as it works, and StoreStats rendered as JSON and as Prometheus text.
//
// Thread safety: RequestCounters is thread-safe (relaxed atomics: a snapshot taken while
// requests run may mix counts from before and after one of them). The functions are pure.

#ifndef DREAMDB_SRC_STORE_STATS_H_
#define DREAMDB_SRC_STORE_STATS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "dreamdb/status.h"
#include "dreamdb/store.h"
#include "dreamdb/store_stats.h"  // the renderings and ParseByteSize

namespace dreamdb {

class RequestCounters {
 public:
  void Record(int verb, int klass, uint64_t bytes_in, uint64_t bytes_out,
              std::chrono::nanoseconds elapsed);
  void AddRetry() { retries_.fetch_add(1, std::memory_order_relaxed); }
  void AddCacheHit(uint64_t bytes);
  void AddCacheMiss() { cache_misses_.fetch_add(1, std::memory_order_relaxed); }
  void AddCacheWrite(uint64_t bytes) {
    cache_bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void AddCacheCorrupt() { cache_corrupt_.fetch_add(1, std::memory_order_relaxed); }
  void AddCacheEviction() { cache_evictions_.fetch_add(1, std::memory_order_relaxed); }
  StoreStats Snapshot() const;

 private:
  std::array<std::array<std::atomic<uint64_t>, StoreStats::kClassCount>, StoreStats::kVerbCount>
      requests_{};
  std::atomic<uint64_t> retries_{0}, bytes_in_{0}, bytes_out_{0}, in_flight_ns_{0};
  std::atomic<uint64_t> cache_hits_{0}, cache_misses_{0}, cache_bytes_read_{0},
      cache_bytes_written_{0}, cache_corrupt_{0}, cache_evictions_{0};
};

// The class of an HTTP status code (100..599), or kNoAnswer for 0.
int ClassOfHttpStatus(long status);  // NOLINT(google-runtime-int): libcurl's type
// The class a non-HTTP backend call's outcome counts as (StoreStats).
int ClassOfStatus(const Status& status);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_STATS_H_
