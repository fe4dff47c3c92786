// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ParallelFor: the one loop helper of the spatial-index code (builds, searches, fetches):
// body(i) for every i in [0, n), on up to `threads` threads including the caller's, each
// thread taking the next index. Threads beyond the first start only when n > 1, so a loop
// of one item (or a warm search whose items are all cached) starts no thread.
//
// Thread safety: body is called concurrently from several threads; it must be safe for
// distinct i. The first error stops the other threads from taking more work and is
// returned; work already taken finishes.

#ifndef DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_
#define DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <future>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::vindex {

inline Status ParallelFor(size_t n, size_t threads, const std::function<Status(size_t)>& body) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&]() -> Status {
    for (;;) {
      if (failed.load(std::memory_order_relaxed)) return Status::Ok();
      const size_t i = next.fetch_add(1);
      if (i >= n) return Status::Ok();
      Status s = body(i);
      if (!s.ok()) {
        failed.store(true, std::memory_order_relaxed);
        return s;
      }
    }
  };
  const size_t extra = std::min(n, std::max<size_t>(threads, 1)) - (n == 0 ? 0 : 1);
  std::vector<std::future<Status>> helpers;
  helpers.reserve(extra);
  for (size_t t = 0; t < extra; ++t) helpers.push_back(std::async(std::launch::async, worker));
  Status first = worker();
  for (auto& h : helpers) {
    Status s = h.get();
    if (first.ok() && !s.ok()) first = std::move(s);
  }
  return first;
}

}  // namespace dreamdb::vindex

#endif  // DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_
