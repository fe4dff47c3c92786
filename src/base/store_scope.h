// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Keys for the process-wide caches of decoded immutable objects (anchor-index pages,
// segment headers): an object id scoped to the store it was read from, so handles of one
// store share what any of them verified, and a handle never sees an object through
// another store's cache entry. Objects are content-addressed and immutable, so an entry
// never goes stale.
//
// StoreScope(identity) maps a store's identity (its canonical URI) to a small number,
// stable for the life of the process. Thread safety: StoreScope may be called
// concurrently; ScopedId is a value.

#ifndef DREAMDB_SRC_BASE_STORE_SCOPE_H_
#define DREAMDB_SRC_BASE_STORE_SCOPE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dreamdb/object_id.h"

namespace dreamdb {

struct ScopedId {
  uint64_t scope = 0;  // StoreScope() of the store; 0 for a cache private to one handle
  ObjectId id;
  bool operator==(const ScopedId& o) const { return scope == o.scope && id == o.id; }
};

struct ScopedIdHash {
  size_t operator()(const ScopedId& k) const {
    return std::hash<ObjectId>()(k.id) ^ (static_cast<size_t>(k.scope) * 0x9e3779b97f4a7c15ULL);
  }
};

// The scope number of a store identity (1, 2, ...; never 0). Identities are kept for the
// life of the process: a process opens few distinct stores.
inline uint64_t StoreScope(std::string_view identity) {
  static std::mutex mu;
  static std::unordered_map<std::string, uint64_t> scopes;  // guarded by mu
  std::lock_guard<std::mutex> lock(mu);
  auto [it, inserted] = scopes.emplace(std::string(identity), scopes.size() + 1);
  return it->second;
}

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_STORE_SCOPE_H_
