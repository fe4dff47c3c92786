// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ParallelFor: splits [0, n) into contiguous ranges over up to `threads` std::threads (the
// caller's thread runs the first range). Results must not depend on the split for callers
// that promise determinism: each index is processed exactly once, by one thread.
//
// Thread safety: reentrant; `fn` must be safe to call concurrently on disjoint ranges.

#ifndef DREAMDB_SRC_INDEX_KERNELS_PARALLEL_H_
#define DREAMDB_SRC_INDEX_KERNELS_PARALLEL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace dreamdb::vector {

// 0 -> std::thread::hardware_concurrency() (at least 1).
inline uint32_t ResolveThreads(uint32_t threads) {
  if (threads != 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

// Calls fn(begin, end, worker) for contiguous ranges covering [0, n). Ranges are at least
// `min_chunk` long, so small inputs stay on the calling thread.
template <typename Fn>
void ParallelFor(size_t n, uint32_t threads, size_t min_chunk, const Fn& fn) {
  if (n == 0) return;
  size_t workers = std::min<size_t>(ResolveThreads(threads),
                                    (n + min_chunk - 1) / std::max<size_t>(min_chunk, 1));
  workers = std::max<size_t>(workers, 1);
  if (workers == 1) {
    fn(size_t{0}, n, size_t{0});
    return;
  }
  const size_t chunk = (n + workers - 1) / workers;
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t w = 1; w < workers; ++w) {
    const size_t b = w * chunk;
    const size_t e = std::min(n, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&fn, b, e, w] { fn(b, e, w); });
  }
  fn(size_t{0}, std::min(n, chunk), size_t{0});
  for (auto& t : pool) t.join();
}

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_PARALLEL_H_
