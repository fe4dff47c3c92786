// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ParallelFor: the one loop helper of the spatial-index code (builds, searches, fetches):
// body(i) for every i in [0, n), up to `threads` at once including the caller's thread,
// on the process's I/O pool (src/base/io_pool.h), so no thread is made per call and a loop
// of one item (or a warm search whose items are all cached) runs inline.
//
// Thread safety: body is called concurrently from several threads; it must be safe for
// distinct i. The first error stops the loop from starting more work and is returned;
// work already started finishes.

#ifndef DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_
#define DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>

#include "dreamdb/status.h"
#include "src/base/io_pool.h"

namespace dreamdb::vindex {

inline Status ParallelFor(size_t n, size_t threads, const std::function<Status(size_t)>& body) {
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  IoPool::ParallelFor(
      n,
      [&](size_t i) {
        if (failed.load(std::memory_order_relaxed)) return;
        Status s = body(i);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = std::move(s);
          failed.store(true, std::memory_order_relaxed);
        }
      },
      threads == 0 ? 1 : threads);
  return first;
}

}  // namespace dreamdb::vindex

#endif  // DREAMDB_SRC_DATASET_INDEX_PARALLEL_H_
