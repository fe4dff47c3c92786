// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Shared by the dataset tests (fast and slow tiers).
#ifndef DREAMDB_SRC_DATASET_TEST_UTIL_H_
#define DREAMDB_SRC_DATASET_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "dreamdb/dataset.h"

namespace dreamdb {

// `writers` threads, each with its own handle on branch main, each making `commits`
// one-record commits; every commit must land and every value be there once.
inline void ConcurrentWriters(int writers, int commits) {
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  ASSERT_TRUE(Dataset::Create(store, "d", s).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      auto ds = Dataset::Open(store, "d");
      if (!ds.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < commits; ++i) {
        Batch b;
        Column x(*s.Find("x"));
        x.AppendInt64(w * 100000 + i);
        b.columns.push_back(std::move(x));
        auto c = (*ds)->AppendMany(b);
        if (!c.ok()) {
          ADD_FAILURE() << c.status().ToString();
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto ds = *Dataset::Open(store, "d");
  EXPECT_EQ(ds->Count(), static_cast<uint64_t>(writers * commits));
  std::set<int64_t> values;
  auto reader = *ds->Scan();
  while (true) {
    auto b = reader->Next();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    if (!*b) break;
    for (uint64_t i = 0; i < (*b)->num_rows(); ++i) values.insert((*b)->columns[0].Int64At(i));
  }
  EXPECT_EQ(values.size(), static_cast<size_t>(writers * commits));
}

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_TEST_UTIL_H_
