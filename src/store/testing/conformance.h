// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The conformance suite every backend must pass (spec/05-backend.md, spec/06-refs.md):
// a parameterized GoogleTest suite over factories that make empty stores.
//
// A backend's test binary links `dreamdb_store_conformance` and, at namespace `dreamdb`
// scope, instantiates the suite once per configuration:
//
//   namespace dreamdb {
//   StoreFactory MemoryFactory() { ... }
//   DREAMDB_INSTANTIATE_STORE_CONFORMANCE(Memory, MemoryFactory());
//   }
//
// Thread safety: the factory's functions are called from the test thread only.

#ifndef DREAMDB_SRC_STORE_TESTING_CONFORMANCE_H_
#define DREAMDB_SRC_STORE_TESTING_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "dreamdb/store.h"

namespace dreamdb {

struct StoreFactory {
  // Names the instantiation in test names: letters, digits and '_' only.
  std::string name;
  // Makes a fresh, empty store. May be called more than once per test. It may call
  // GTEST_SKIP() (and return nullptr) when the environment it needs is absent.
  std::function<std::unique_ptr<Store>()> make;
  // Optional: removes whatever `make` created (temp directories); called in TearDown.
  std::function<void()> cleanup;
  // True when Store::Open(store.uri()) reopens the same data (enables persistence tests).
  bool reopen_by_uri = false;
  // Optional: replaces the stored bytes of `id` behind the Store's back. The default
  // deletes the object through the backend and puts `bytes` under `id` through it.
  std::function<void(Store& store, const ObjectId& id, ByteView bytes)> corrupt;
  // True when ObjectInfo::modified_unix_ms is reported (checked against the clock).
  bool reports_modified_time = true;
  // The granularity of modified times (S3 keeps whole seconds): a refresh is checked
  // after this long.
  int64_t modified_time_resolution_ms = 1;
  // Rounds of the 8-thread compare-and-swap race.
  int cas_rounds = 200;
};

inline void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Replaces the bytes of `id` using the factory's `corrupt` or the default.
  void Corrupt(const ObjectId& id, ByteView bytes);

  std::unique_ptr<Store> store_;
};

// Referenced by the instantiation macro so the linker keeps the suite's object file.
int StoreConformanceLinkAnchor();

}  // namespace dreamdb

// Instantiates the conformance suite for one or more StoreFactory values. Use at
// namespace `dreamdb` scope.
#define DREAMDB_INSTANTIATE_STORE_CONFORMANCE(prefix, ...)                               \
  [[maybe_unused]] static const int prefix##_conformance_link_anchor =                   \
      ::dreamdb::StoreConformanceLinkAnchor();                                           \
  INSTANTIATE_TEST_SUITE_P(prefix, StoreConformanceTest, ::testing::Values(__VA_ARGS__), \
                           [](const auto& info) { return info.param.name; })

#endif  // DREAMDB_SRC_STORE_TESTING_CONFORMANCE_H_
