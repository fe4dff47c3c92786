// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The local object cache (spec/05-backend.md §12) over a counting in-memory backend:
// hits and misses, verification of what the cache returns (a damaged file is detected and
// refetched), the byte bound, and several processes sharing one directory.

#include "src/store/object_cache.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/store/memory/memory_backend.h"

namespace dreamdb {
namespace {

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dreamdb-cache-XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

// Counts the reads that reach the store behind the cache.
class CountingBackend final : public ObjectBackend {
 public:
  explicit CountingBackend(std::shared_ptr<ObjectBackend> inner) : inner_(std::move(inner)) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    ++gets;
    return inner_->Get(id);
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    ++ranges;
    return inner_->GetRange(id, offset, length);
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view p, const ObjectVisitor& v) override { return inner_->List(p, v); }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }
  std::atomic<int> gets{0}, ranges{0};

 private:
  std::shared_ptr<ObjectBackend> inner_;
};

struct Fixture {
  std::shared_ptr<CountingBackend> store;
  std::shared_ptr<RequestCounters> counters = std::make_shared<RequestCounters>();
  std::shared_ptr<CachingObjectBackend> cache;
};

Fixture Make(const std::string& dir, uint64_t max_bytes,
             std::shared_ptr<ObjectBackend> inner = {}) {
  Fixture f;
  f.store = std::make_shared<CountingBackend>(inner ? inner : NewMemoryBackends().objects);
  auto cache = CachingObjectBackend::Open(f.store, {dir, max_bytes}, f.counters);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  f.cache = *cache;
  return f;
}

ObjectId PutBytes(ObjectBackend& b, const std::string& data) {
  ObjectId id = ObjectId::Of(data);
  EXPECT_TRUE(b.Put(id, data).ok());
  return id;
}

std::string CachePath(const std::string& dir, const ObjectId& id) {
  return dir + "/dreamdb-cache-1/objects/" + id.ShardPrefix() + "/" + id.ToString();
}

TEST(ObjectCacheTest, SecondReadIsAHitAndSkipsTheStore) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 1 << 20);
  const ObjectId id = PutBytes(*f.cache, "cached bytes");
  EXPECT_EQ(*f.cache->Get(id), "cached bytes");
  EXPECT_EQ(*f.cache->Get(id), "cached bytes");
  EXPECT_EQ(*f.cache->GetRange(id, 7, 5), "bytes");
  EXPECT_EQ(f.store->gets.load(), 1);
  EXPECT_EQ(f.store->ranges.load(), 0);
  StoreStats s = *f.cache->Stats();
  EXPECT_EQ(s.cache_misses, 1u);
  EXPECT_EQ(s.cache_hits, 2u);
  EXPECT_EQ(s.cache_bytes_written, 12u);
  // Another instance (another process) on the same directory hits too.
  Fixture g = Make(dir, 1 << 20, f.store);
  EXPECT_EQ(*g.cache->GetRange(id, 0, 6), "cached");
  EXPECT_EQ(f.store->gets.load(), 1);
}

TEST(ObjectCacheTest, RangeMissFetchesTheWholeObjectOnceThenServesRanges) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 1 << 20);
  const ObjectId id = PutBytes(*f.cache, std::string(1000, 'r') + "tail");
  EXPECT_EQ(*f.cache->GetRange(id, 1000, 100), "tail");
  EXPECT_EQ(*f.cache->GetRange(id, 0, 2), "rr");
  EXPECT_EQ(f.cache->GetRange(id, 2000, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.store->gets.load(), 1);
  EXPECT_EQ(f.store->ranges.load(), 0);
}

TEST(ObjectCacheTest, ObjectsOverAQuarterOfTheBoundPassRangesThrough) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 1000);
  const ObjectId id = PutBytes(*f.cache, std::string(400, 'b'));
  EXPECT_EQ(*f.cache->GetRange(id, 10, 3), "bbb");
  EXPECT_EQ(*f.cache->GetRange(id, 20, 3), "bbb");
  EXPECT_EQ(f.store->ranges.load(), 2);
  EXPECT_EQ(f.store->gets.load(), 0);
  EXPECT_FALSE(std::filesystem::exists(CachePath(dir, id)));
}

// A multi-range read through the cache: a small object is fetched whole once and every
// range served from it; one too big to cache has its ranges sent on to the store (every
// range but the one that found it too big in one multi-range read).
TEST(ObjectCacheTest, MultiRangeReadCachesSmallObjectsAndPassesBigOnesThrough) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 1000);
  const ObjectId small = PutBytes(*f.cache, "0123456789");
  const std::vector<ObjectRange> ranges = {{7, 2}, {0, 3}, {8, 100}};
  auto got = f.cache->GetRanges(small, ranges);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (std::vector<Bytes>{"78", "012", "89"}));
  EXPECT_EQ(f.store->gets.load(), 1);
  EXPECT_EQ(f.store->ranges.load(), 0);

  const ObjectId big = PutBytes(*f.cache, std::string(300, 'b') + "tail");
  got = f.cache->GetRanges(big, std::vector<ObjectRange>{{300, 4}, {0, 2}, {299, 2}});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (std::vector<Bytes>{"tail", "bb", "bt"}));
  EXPECT_EQ(f.store->gets.load(), 1);  // never fetched whole
  EXPECT_EQ(f.store->ranges.load(), 3);
  EXPECT_FALSE(std::filesystem::exists(CachePath(dir, big)));
  EXPECT_EQ(f.cache->GetRanges(big, std::vector<ObjectRange>{{0, 1}, {305, 1}}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ObjectCacheTest, CorruptCacheFileIsDetectedDeletedAndRefetched) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 1 << 20);
  const ObjectId id = PutBytes(*f.cache, "the true bytes");
  ASSERT_EQ(*f.cache->Get(id), "the true bytes");
  {
    std::ofstream out(CachePath(dir, id), std::ios::binary | std::ios::trunc);
    out << "the TRUE bytes";  // same size, different bytes
  }
  Fixture g = Make(dir, 1 << 20, f.store);  // a fresh process: nothing verified yet
  EXPECT_EQ(*g.cache->Get(id), "the true bytes");
  EXPECT_EQ(g.cache->Stats()->cache_corrupt, 1u);
  EXPECT_EQ(f.store->gets.load(), 2);
  // The refetch repaired the file: the next read is a verified hit.
  EXPECT_EQ(*g.cache->GetRange(id, 4, 4), "true");
  EXPECT_EQ(f.store->gets.load(), 2);
  // Damage after this process verified it, changing the size: a range read notices.
  {
    std::ofstream out(CachePath(dir, id), std::ios::binary | std::ios::trunc);
    out << "short";
  }
  EXPECT_EQ(*g.cache->GetRange(id, 4, 4), "true");
  EXPECT_EQ(g.cache->Stats()->cache_corrupt, 2u);
}

TEST(ObjectCacheTest, EvictionKeepsTheCacheUnderItsBoundOldestFirst) {
  const std::string dir = TempDir();
  Fixture f = Make(dir, 64 * 1024);
  std::vector<ObjectId> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(
        PutBytes(*f.cache, std::string(4096, static_cast<char>('a' + i % 26)) + std::to_string(i)));
  }
  for (const ObjectId& id : ids) ASSERT_TRUE(f.cache->Get(id).ok());
  auto usage = f.cache->Evict();
  ASSERT_TRUE(usage.ok());
  EXPECT_LE(usage->bytes, 64u * 1024);
  auto scanned = CachingObjectBackend::Usage(dir);
  ASSERT_TRUE(scanned.ok());
  EXPECT_LE(scanned->bytes, 64u * 1024);
  EXPECT_GT(f.cache->Stats()->cache_evictions, 0u);
  // Evicted objects are still readable (from the store).
  for (const ObjectId& id : ids) EXPECT_TRUE(f.cache->Get(id).ok());
}

TEST(ObjectCacheTest, SeveralProcessesShareOneDirectoryWhileEvicting) {
  const std::string dir = TempDir();
  // The objects, in a store each process gets a copy of (fork).
  auto shared = NewMemoryBackends().objects;
  std::vector<std::string> payloads;
  std::vector<ObjectId> ids;
  for (int i = 0; i < 60; ++i) {
    payloads.push_back(std::string(3000 + i, static_cast<char>('A' + i % 26)));
    ids.push_back(PutBytes(*shared, payloads.back()));
  }
  std::vector<pid_t> children;
  for (int p = 0; p < 6; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // A small bound: every process inserts and evicts while the others read.
      auto counters = std::make_shared<RequestCounters>();
      auto cache = CachingObjectBackend::Open(shared, {dir, 40 * 1024}, counters);
      int bad = cache.ok() ? 0 : 1;
      for (int round = 0; round < 5 && bad == 0; ++round) {
        for (size_t k = 0; k < ids.size(); ++k) {
          size_t i =
              (k * 7 + static_cast<size_t>(p) * 13 + static_cast<size_t>(round)) % ids.size();
          auto got = (*cache)->Get(ids[i]);
          auto range = (*cache)->GetRange(ids[i], 100, 50);
          if (!got.ok() || *got != payloads[i] || !range.ok() ||
              *range != payloads[i].substr(100, 50)) {
            bad = 1;
          }
        }
      }
      _exit(bad);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid;
  }
  auto usage = CachingObjectBackend::Usage(dir);
  ASSERT_TRUE(usage.ok());
  // Each process leaves at most 1/4 of the bound (plus one object) unaccounted when the
  // evictions of several processes interleave (it waits for the lock past 1/4).
  EXPECT_LE(usage->bytes, 40u * 1024 + 6 * (40u * 1024 / 4 + 3100));
  // No temp file is left behind.
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/dreamdb-cache-1/tmp"));
}

TEST(ObjectCacheTest, ZeroBoundAndUncreatableDirectoryAreErrors) {
  auto counters = std::make_shared<RequestCounters>();
  auto zero = CachingObjectBackend::Open(NewMemoryBackends().objects, {TempDir(), 0}, counters);
  EXPECT_EQ(zero.status().code(), StatusCode::kInvalidArgument);
  auto bad = CachingObjectBackend::Open(NewMemoryBackends().objects,
                                        {"/proc/dreamdb-no-such-dir", 1024}, counters);
  EXPECT_EQ(bad.status().code(), StatusCode::kIoError);
  EXPECT_NE(bad.status().message().find("/proc/dreamdb-no-such-dir"), std::string::npos);
}

}  // namespace
}  // namespace dreamdb
