// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The per-handle caches of the read path, each a typed, byte-bounded ByteLruCache shared
// by the readers of one dataset handle. Segments are immutable, so nothing cached goes
// stale.
//
// Thread safety: all methods may be called concurrently.

#ifndef DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
#define DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_

#include <cstdint>
#include <memory>
#include <utility>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "src/base/lru_cache.h"
#include "src/columnar/segment.h"

namespace dreamdb::dataset {

// Decoded whole segments. Columns larger than a quarter of the capacity are not kept: one
// huge segment must not flush everything else.
class SegmentCache {
 public:
  explicit SegmentCache(uint64_t capacity_bytes) : lru_(capacity_bytes, capacity_bytes / 4) {}

  std::shared_ptr<const Column> Get(const ObjectId& id) { return lru_.Get(id); }
  void Insert(const ObjectId& id, std::shared_ptr<const Column> column) {
    const uint64_t size = column->ByteSize();
    lru_.Insert(id, std::move(column), size);
  }
  uint64_t capacity_bytes() const { return lru_.capacity_bytes(); }

 private:
  ByteLruCache<ObjectId, Column> lru_;
};

// Opened segment headers (the verified first bytes and parsed layout of each segment a
// ranged read opened), so a random take reopens a segment without a request.
using SegmentHeaderCache = ByteLruCache<ObjectId, columnar::SegmentReader::Header>;

}  // namespace dreamdb::dataset

#endif  // DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
