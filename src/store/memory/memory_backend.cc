// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §7.
#include "src/store/memory/memory_backend.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

namespace dreamdb {
namespace {

// Entries copied per lock acquisition while listing.
constexpr size_t kListBatch = 256;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status ObjectNotFound(const ObjectId& id) {
  return NotFound("object " + id.ToString() + " not found");
}

Status RefNotFound(std::string_view name) {
  return NotFound("ref '" + std::string(name) + "' does not exist");
}

}  // namespace

std::string MemoryObjectBackend::Key(const ObjectId& id) {
  return id.ShardPrefix() + id.ToString();
}

Status MemoryObjectBackend::Put(const ObjectId& id, ByteView data) {
  std::string key = Key(id);
  int64_t now = NowUnixMs();
  std::lock_guard lock(mu_);
  auto [it, inserted] = objects_.try_emplace(std::move(key), Entry{id, Bytes(data), now});
  if (!inserted) it->second.modified_unix_ms = now;  // bytes unchanged; age refreshed
  return Status::Ok();
}

Result<Bytes> MemoryObjectBackend::Get(const ObjectId& id) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return ObjectNotFound(id);
  return it->second.data;
}

Result<Bytes> MemoryObjectBackend::GetRange(const ObjectId& id, uint64_t offset, uint64_t length) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return ObjectNotFound(id);
  const Bytes& data = it->second.data;
  if (offset > data.size()) {
    return InvalidArgument("object " + id.ToString() + ": range offset " + std::to_string(offset) +
                           " is beyond its size " + std::to_string(data.size()));
  }
  return data.substr(offset, std::min<uint64_t>(length, data.size() - offset));
}

Result<std::vector<Bytes>> MemoryObjectBackend::GetRanges(const ObjectId& id,
                                                          std::span<const ObjectRange> ranges) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return ObjectNotFound(id);
  const Bytes& data = it->second.data;
  std::vector<Bytes> out;
  out.reserve(ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    const ObjectRange& r = ranges[i];
    if (r.offset > data.size()) {
      return InvalidArgument("object " + id.ToString() + ": range " + std::to_string(i) +
                             " offset " + std::to_string(r.offset) + " is beyond its size " +
                             std::to_string(data.size()));
    }
    out.push_back(data.substr(r.offset, std::min<uint64_t>(r.length, data.size() - r.offset)));
  }
  return out;
}

Result<ObjectInfo> MemoryObjectBackend::Head(const ObjectId& id) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return ObjectNotFound(id);
  return ObjectInfo{id, it->second.data.size(), it->second.modified_unix_ms};
}

Status MemoryObjectBackend::List(std::string_view shard_prefix, const ObjectVisitor& visit) {
  std::string cursor(shard_prefix);  // next key to look at (inclusive)
  bool first = true;
  std::vector<ObjectInfo> batch;
  while (true) {
    batch.clear();
    {
      std::lock_guard lock(mu_);
      auto it = first ? objects_.lower_bound(cursor) : objects_.upper_bound(cursor);
      for (; it != objects_.end() && batch.size() < kListBatch; ++it) {
        if (it->first.compare(0, shard_prefix.size(), shard_prefix) != 0) break;
        batch.push_back(
            ObjectInfo{it->second.id, it->second.data.size(), it->second.modified_unix_ms});
        cursor = it->first;
      }
    }
    first = false;
    for (const ObjectInfo& info : batch) {
      if (!visit(info)) return Status::Ok();
    }
    if (batch.size() < kListBatch) return Status::Ok();
  }
}

Status MemoryObjectBackend::Delete(const ObjectId& id) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  objects_.erase(key);
  return Status::Ok();
}

void MemoryObjectBackend::OverwriteForTesting(const ObjectId& id, ByteView data) {
  std::string key = Key(id);
  std::lock_guard lock(mu_);
  objects_[key] = Entry{id, Bytes(data), NowUnixMs()};
}

Result<RefValue> MemoryRefBackend::Read(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = refs_.find(name);
  if (it == refs_.end()) return RefNotFound(name);
  return RefValue{it->first, it->second};
}

Status MemoryRefBackend::Create(std::string_view name, const ObjectId& target) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = refs_.try_emplace(std::string(name), target);
  if (!inserted) return AlreadyExists("ref '" + std::string(name) + "' already exists");
  return Status::Ok();
}

Status MemoryRefBackend::CompareAndSwap(std::string_view name, const ObjectId& expected,
                                        const ObjectId& desired) {
  std::lock_guard lock(mu_);
  auto it = refs_.find(name);
  if (it == refs_.end()) return RefNotFound(name);
  if (it->second != expected) {
    return Conflict("ref '" + std::string(name) + "' is at " + it->second.ToString() +
                    ", not at the expected " + expected.ToString());
  }
  it->second = desired;
  return Status::Ok();
}

Status MemoryRefBackend::Delete(std::string_view name, const ObjectId& expected) {
  std::lock_guard lock(mu_);
  auto it = refs_.find(name);
  if (it == refs_.end()) return RefNotFound(name);
  if (it->second != expected) {
    return Conflict("ref '" + std::string(name) + "' is at " + it->second.ToString() +
                    ", not at the expected " + expected.ToString());
  }
  refs_.erase(it);
  return Status::Ok();
}

Status MemoryRefBackend::List(std::string_view prefix, const RefVisitor& visit) {
  std::string cursor(prefix);
  bool first = true;
  std::vector<RefValue> batch;
  while (true) {
    batch.clear();
    {
      std::lock_guard lock(mu_);
      auto it = first ? refs_.lower_bound(cursor) : refs_.upper_bound(cursor);
      for (; it != refs_.end() && batch.size() < kListBatch; ++it) {
        if (it->first.compare(0, prefix.size(), prefix) != 0) break;
        batch.push_back(RefValue{it->first, it->second});
        cursor = it->first;
      }
    }
    first = false;
    for (const RefValue& ref : batch) {
      if (!visit(ref)) return Status::Ok();
    }
    if (batch.size() < kListBatch) return Status::Ok();
  }
}

MemoryBackends NewMemoryBackends() {
  return {std::make_shared<MemoryObjectBackend>(), std::make_shared<MemoryRefBackend>()};
}

MemoryBackends SharedMemoryBackends(const std::string& name) {
  static std::mutex mu;
  // Leaked on purpose: named stores live until the process exits, and no destructor runs
  // at exit while another thread may still use them.
  static auto* registry = new std::map<std::string, MemoryBackends>();  // guarded by mu
  std::lock_guard lock(mu);
  auto it = registry->find(name);
  if (it == registry->end()) it = registry->emplace(name, NewMemoryBackends()).first;
  return it->second;
}

}  // namespace dreamdb
