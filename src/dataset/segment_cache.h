// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The caches of the read path, each a typed, byte-bounded ByteLruCache: decoded segments
// per dataset handle, opened segment headers per process (shared by the handles of a
// store). Segments are immutable, so nothing cached goes stale.
//
// Thread safety: all methods may be called concurrently.

#ifndef DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
#define DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "src/base/lru_cache.h"
#include "src/base/store_scope.h"
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
// ranged read opened), so a random take reopens a segment without a request. A view,
// scoped to one store, of one process-wide cache: every dataset handle of a store shares
// the headers any of them verified (a handle opened per take reads no header twice).
class SegmentHeaderCache {
 public:
  using Header = columnar::SegmentReader::Header;
  static constexpr uint64_t kSharedBytes = uint64_t{64} << 20;

  // The view for the store whose identity (canonical URI) is `store_identity`.
  static std::shared_ptr<SegmentHeaderCache> ForStore(std::string_view store_identity) {
    static const auto shared = std::make_shared<Lru>(kSharedBytes, kSharedBytes / 8);
    return std::make_shared<SegmentHeaderCache>(shared, StoreScope(store_identity));
  }

  using Lru = ByteLruCache<ScopedId, Header, ScopedIdHash>;
  SegmentHeaderCache(std::shared_ptr<Lru> lru, uint64_t scope)
      : lru_(std::move(lru)), scope_(scope) {}

  std::shared_ptr<const Header> Get(const ObjectId& id) { return lru_->Get(ScopedId{scope_, id}); }
  void Insert(const ObjectId& id, std::shared_ptr<const Header> header, uint64_t bytes) {
    lru_->Insert(ScopedId{scope_, id}, std::move(header), bytes);
  }
  Lru::Stats stats() const { return lru_->stats(); }

 private:
  std::shared_ptr<Lru> lru_;
  uint64_t scope_;
};

}  // namespace dreamdb::dataset

#endif  // DREAMDB_SRC_DATASET_SEGMENT_CACHE_H_
