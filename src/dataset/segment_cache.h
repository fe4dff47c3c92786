// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// A byte-bounded LRU cache of decoded whole segments, shared by the readers of one
// dataset handle. Segments are immutable, so a cached column never goes stale.
//
// Thread safety: all methods may be called concurrently (one mutex).

#ifndef DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
#define DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"

namespace dreamdb::dataset {

class SegmentCache {
 public:
  explicit SegmentCache(uint64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}
  SegmentCache(const SegmentCache&) = delete;
  SegmentCache& operator=(const SegmentCache&) = delete;

  std::shared_ptr<const Column> Get(const ObjectId& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  // Columns larger than a quarter of the capacity are not kept: one huge segment must not
  // flush everything else.
  void Insert(const ObjectId& id, std::shared_ptr<const Column> column) {
    uint64_t size = column->ByteSize();
    if (size > capacity_bytes_ / 4) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.count(id) != 0) return;
    lru_.emplace_front(id, std::move(column));
    index_[id] = lru_.begin();
    size_bytes_ += size;
    while (size_bytes_ > capacity_bytes_ && !lru_.empty()) {
      size_bytes_ -= lru_.back().second->ByteSize();
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  uint64_t capacity_bytes() const { return capacity_bytes_; }

 private:
  using Lru = std::list<std::pair<ObjectId, std::shared_ptr<const Column>>>;
  const uint64_t capacity_bytes_;
  std::mutex mu_;
  Lru lru_;                                            // guarded by mu_
  std::unordered_map<ObjectId, Lru::iterator> index_;  // guarded by mu_
  uint64_t size_bytes_ = 0;                            // guarded by mu_
};

}  // namespace dreamdb::dataset

#endif  // DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
