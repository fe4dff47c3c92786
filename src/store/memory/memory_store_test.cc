// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// memory:// against the conformance suite, plus what is specific to it.
#include <gtest/gtest.h>

#include <atomic>

#include "src/store/memory/memory_backend.h"
#include "src/store/testing/conformance.h"

namespace dreamdb {
namespace {

StoreFactory PrivateMemory() {
  StoreFactory f;
  f.name = "Private";
  f.make = [] {
    auto store = Store::Open("memory://");
    return store.ok() ? std::move(*store) : nullptr;
  };
  return f;
}

StoreFactory NamedMemory() {
  static std::atomic<int> counter{0};
  StoreFactory f;
  f.name = "Named";
  f.reopen_by_uri = true;
  f.make = [] {
    auto store = Store::Open("memory://conformance-" + std::to_string(counter.fetch_add(1)));
    return store.ok() ? std::move(*store) : nullptr;
  };
  // Bit rot in place, without the backend's delete + put.
  f.corrupt = [](Store& store, const ObjectId& id, ByteView bytes) {
    auto* backend = dynamic_cast<MemoryObjectBackend*>(&store.object_backend());
    ASSERT_NE(backend, nullptr);
    backend->OverwriteForTesting(id, bytes);
  };
  return f;
}

}  // namespace

DREAMDB_INSTANTIATE_STORE_CONFORMANCE(Memory, PrivateMemory(), NamedMemory());

namespace {

TEST(MemoryStoreTest, NamedStoresAreSharedWithinTheProcess) {
  auto a = Store::Open("memory://shared-test");
  auto b = Store::Open("memory://shared-test");
  auto c = Store::Open("memory://other-test");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto id = (*a)->Put("shared");
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE((*b)->Get(*id).ok());
  EXPECT_EQ((*c)->Get(*id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*a)->uri(), "memory://shared-test");
}

TEST(MemoryStoreTest, PrivateStoresAreFresh) {
  auto a = Store::Open("memory://");
  auto b = Store::Open("memory://");
  ASSERT_TRUE(a.ok() && b.ok());
  auto id = (*a)->Put("private");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ((*b)->Get(*id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*a)->uri(), "memory://");
}

}  // namespace
}  // namespace dreamdb
