// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/base/lru_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace dreamdb {
namespace {

TEST(ByteLruCacheTest, EvictsLeastRecentlyUsedBeyondTheByteBudget) {
  ByteLruCache<int, std::string> cache(100);
  cache.Insert(1, std::make_shared<const std::string>("one"), 40);
  cache.Insert(2, std::make_shared<const std::string>("two"), 40);
  ASSERT_NE(cache.Get(1), nullptr);  // 1 is now the most recently used
  cache.Insert(3, std::make_shared<const std::string>("three"), 40);
  EXPECT_EQ(*cache.Get(1), "one");
  EXPECT_EQ(cache.Get(2), nullptr);  // evicted: least recently used
  EXPECT_EQ(*cache.Get(3), "three");
  auto s = cache.stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.size_bytes, 80u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 1u);
}

TEST(ByteLruCacheTest, ValuesOverTheItemLimitAreNotKept) {
  ByteLruCache<int, std::string> cache(100, 25);
  cache.Insert(1, std::make_shared<const std::string>("small"), 20);
  cache.Insert(2, std::make_shared<const std::string>("big"), 30);
  EXPECT_NE(cache.Get(1), nullptr);  // the big value did not flush the small one
  EXPECT_EQ(cache.Get(2), nullptr);
  ByteLruCache<int, std::string> whole(10);  // default limit: the capacity
  whole.Insert(1, std::make_shared<const std::string>("x"), 11);
  EXPECT_EQ(whole.Get(1), nullptr);
  EXPECT_EQ(whole.stats().size_bytes, 0u);
}

TEST(ByteLruCacheTest, AnEvictedValueStaysAliveForItsHolders) {
  ByteLruCache<int, std::string> cache(10);
  cache.Insert(1, std::make_shared<const std::string>("held"), 10);
  auto held = cache.Get(1);
  cache.Insert(2, std::make_shared<const std::string>("next"), 10);
  EXPECT_EQ(cache.Get(1), nullptr);
  EXPECT_EQ(*held, "held");
}

TEST(ByteLruCacheTest, ReinsertingAKeyKeepsTheFirstValueAndItsBytes) {
  ByteLruCache<int, std::string> cache(100);
  cache.Insert(1, std::make_shared<const std::string>("first"), 10);
  cache.Insert(1, std::make_shared<const std::string>("second"), 50);
  EXPECT_EQ(*cache.Get(1), "first");
  EXPECT_EQ(cache.stats().size_bytes, 10u);
}

// The cache is typed: Get returns the value type it was declared with, never a cast.
TEST(ByteLruCacheTest, GetIsTypedByTheCache) {
  static_assert(std::is_same_v<decltype(std::declval<ByteLruCache<int, std::string>&>().Get(0)),
                               std::shared_ptr<const std::string>>);
  SUCCEED();
}

TEST(ByteLruCacheTest, ConcurrentUseStaysWithinTheBudget) {
  ByteLruCache<int, int> cache(64 * 8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        int key = (i * 7 + t) % 200;
        if (auto v = cache.Get(key)) {
          EXPECT_EQ(*v, key);
        } else {
          cache.Insert(key, std::make_shared<const int>(key), 8);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.stats().size_bytes, 64u * 8);
  EXPECT_EQ(cache.stats().size_bytes, cache.stats().entries * 8);
}

}  // namespace
}  // namespace dreamdb
