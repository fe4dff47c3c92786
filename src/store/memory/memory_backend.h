// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The memory:// backend (spec/05-backend.md §7): objects and refs in process
// memory, for tests and for scratch work. Nothing survives the process.
//
// Thread safety: every method may be called concurrently. Each backend guards its map
// with one mutex; listing copies bounded batches under the mutex and calls the visitor
// without it, so a visitor may call back into the backend (GC deletes while listing).

#ifndef DREAMDB_SRC_STORE_MEMORY_MEMORY_BACKEND_H_
#define DREAMDB_SRC_STORE_MEMORY_MEMORY_BACKEND_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "dreamdb/store.h"

namespace dreamdb {

class MemoryObjectBackend final : public ObjectBackend {
 public:
  Status Put(const ObjectId& id, ByteView data) override;
  Result<Bytes> Get(const ObjectId& id) override;
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override;
  // All the ranges under one lock, from one copy of the object.
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                       std::span<const ObjectRange> ranges) override;
  Result<ObjectInfo> Head(const ObjectId& id) override;
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override;
  Status Delete(const ObjectId& id) override;

  // Replaces the stored bytes of `id` without any check, so tests can model bit rot.
  void OverwriteForTesting(const ObjectId& id, ByteView data);

 private:
  // Key: ShardPrefix() + text id, so map order is the listing order (shard, then id).
  static std::string Key(const ObjectId& id);

  struct Entry {
    ObjectId id;
    Bytes data;
    int64_t modified_unix_ms = 0;
  };
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> objects_;  // guarded by mu_
};

class MemoryRefBackend final : public RefBackend {
 public:
  Result<RefValue> Read(std::string_view name) override;
  Status Create(std::string_view name, const ObjectId& target) override;
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override;
  Status Delete(std::string_view name, const ObjectId& expected) override;
  Status List(std::string_view prefix, const RefVisitor& visit) override;

 private:
  std::mutex mu_;
  std::map<std::string, ObjectId, std::less<>> refs_;  // guarded by mu_
};

struct MemoryBackends {
  std::shared_ptr<MemoryObjectBackend> objects;
  std::shared_ptr<MemoryRefBackend> refs;
};

// A fresh, private pair of backends ("memory://").
MemoryBackends NewMemoryBackends();
// The process-wide pair named `name` ("memory://NAME"), created on first use and kept
// until the process exits. Thread-safe.
MemoryBackends SharedMemoryBackends(const std::string& name);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_MEMORY_MEMORY_BACKEND_H_
