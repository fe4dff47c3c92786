// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// BufferRecycler: large byte buffers handed back and reused while a streaming scan runs.
// A scan allocates a whole segment (up to tens of MB) per field per commit and a batch
// column of the same order per batch; the allocator returns freed buffers of that size to
// the system, so each new one costs a page fault and a zeroed page per 4 KiB: as much CPU
// as hashing the bytes. Buffers given back while some scan is active (holds an Active
// scope) are kept and handed to the next Take; with no scan active, Give frees and Take
// allocates, so nothing is held once scans end.
//
// Bounded: at most kMaxBuffers buffers and kMaxBytes bytes of capacity are kept; buffers
// under kMinBytes are never kept (the allocator serves those well).
//
// Thread safety: every function may be called from any thread, concurrently.
#ifndef DREAMDB_SRC_BASE_BUFFER_RECYCLER_H_
#define DREAMDB_SRC_BASE_BUFFER_RECYCLER_H_

#include <cstddef>
#include <string>

namespace dreamdb {

class BufferRecycler {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 20;
  static constexpr size_t kMaxBuffers = 4;
  static constexpr size_t kMaxBytes = size_t{128} << 20;

  // While one exists, given buffers are kept. The last one to end frees them all.
  class Active {
   public:
    Active();
    ~Active();
    Active(const Active&) = delete;
    Active& operator=(const Active&) = delete;
  };

  // An empty string whose capacity is at least `capacity`: a kept buffer if one fits
  // (the smallest that does, and no more than twice the size asked for), else a new one.
  static std::string Take(size_t capacity);
  // A string of `size` bytes to be overwritten whole (a read's destination): a kept
  // buffer's stale bytes are left in place rather than zeroed, except past its old size.
  static std::string TakeSized(size_t size);
  // Keeps `buffer` for a later Take if a scan is active and there is room; else frees it.
  static void Give(std::string&& buffer);
  // The buffers and bytes of capacity kept now (for tests and stats).
  static size_t KeptBuffers();
  static size_t KeptBytes();
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_BUFFER_RECYCLER_H_
