// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ByteLruCache<Key, Value>: a least-recently-used cache of immutable values, bounded by
// the bytes the caller says each value holds. It is typed: a cache holds one value type,
// so a lookup can never return an object of another type (no casts anywhere). Every
// in-memory cache of decoded objects (index pages, segment columns, segment headers,
// manifests) is one of these, each with its own byte budget.
//
// Values are shared (std::shared_ptr<const Value>): an evicted value stays alive for the
// readers still holding it, so the budget bounds what the cache keeps, not what callers
// pin. A value larger than max_item_bytes (default: the whole capacity) is not kept, so
// one huge value cannot flush everything else.
//
// Thread safety: every method may be called concurrently (one mutex per cache).

#ifndef DREAMDB_SRC_BASE_LRU_CACHE_H_
#define DREAMDB_SRC_BASE_LRU_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace dreamdb {

template <typename Key, typename Value, typename Hash = std::hash<Key>>
class ByteLruCache {
 public:
  explicit ByteLruCache(uint64_t capacity_bytes, uint64_t max_item_bytes = UINT64_MAX)
      : capacity_bytes_(capacity_bytes),
        max_item_bytes_(max_item_bytes < capacity_bytes ? max_item_bytes : capacity_bytes) {}
  ByteLruCache(const ByteLruCache&) = delete;
  ByteLruCache& operator=(const ByteLruCache&) = delete;

  // The value, or null if not cached. Marks it most recently used.
  std::shared_ptr<const Value> Get(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }

  // Keeps `value` (accounted as `bytes`), evicting the least recently used values beyond
  // the capacity. A key already present is only marked used: values of a key never
  // change (the caches key immutable objects by id).
  void Insert(const Key& key, std::shared_ptr<const Value> value, uint64_t bytes) {
    if (value == nullptr || bytes > max_item_bytes_) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.push_front(Item{key, std::move(value), bytes});
    index_.emplace(key, lru_.begin());
    size_bytes_ += bytes;
    while (size_bytes_ > capacity_bytes_) {
      const Item& old = lru_.back();
      size_bytes_ -= old.bytes;
      index_.erase(old.key);
      lru_.pop_back();
    }
  }

  // Drops `key` if cached (its value lives on while callers hold it).
  void Erase(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return;
    size_bytes_ -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }

  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    lru_.clear();
    index_.clear();
    size_bytes_ = 0;
  }

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
    uint64_t size_bytes = 0;
  };
  Stats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return Stats{hits_, misses_, index_.size(), size_bytes_};
  }
  uint64_t capacity_bytes() const { return capacity_bytes_; }

 private:
  struct Item {
    Key key;
    std::shared_ptr<const Value> value;
    uint64_t bytes;
  };
  using Lru = std::list<Item>;
  const uint64_t capacity_bytes_;
  const uint64_t max_item_bytes_;
  mutable std::mutex mu_;
  Lru lru_;  // guarded by mu_; front = most recently used
  std::unordered_map<Key, typename Lru::iterator, Hash> index_;  // guarded by mu_
  uint64_t size_bytes_ = 0;                                      // guarded by mu_
  uint64_t hits_ = 0;                                            // guarded by mu_
  uint64_t misses_ = 0;                                          // guarded by mu_
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_LRU_CACHE_H_
