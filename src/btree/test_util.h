// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Test helpers for the btree module: a counting memory store, a std::map model of the
// index, and random batches.

#ifndef DREAMDB_SRC_BTREE_TEST_UTIL_H_
#define DREAMDB_SRC_BTREE_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dreamdb/store.h"
#include "src/btree/btree.h"
#include "src/store/testing/fault_injecting_backend.h"

namespace dreamdb::btree::test {

// A memory store whose calls can be counted and failed.
struct TestStore {
  std::shared_ptr<FaultInjectingBackend> backend;
  std::unique_ptr<Store> store;

  uint64_t gets() const { return backend->calls(FaultOp::kGet); }
  uint64_t puts() const { return backend->calls(FaultOp::kPut); }
};
TestStore MakeTestStore();

// A deterministic segment id.
ObjectId Seg(int k);

// The model: anchor -> field name -> location.
using ModelEntry = std::map<std::string, FieldLoc>;
using Model = std::map<uint64_t, ModelEntry>;

// The entry the index should hold for `anchor` (fields in canonical order).
Entry ToEntry(uint64_t anchor, const ModelEntry& fields);
// Applies a batch to the model the way Upsert applies it to the index.
void ApplyToModel(const Batch& batch, Model* model);
// Every entry of the tree in order (through a cursor).
std::vector<Entry> ScanAll(const Tree& tree, size_t prefetch = 8);
// The model's entries in order.
std::vector<Entry> ModelEntries(const Model& model);
std::vector<Entry> ModelEntries(const Model& model, uint64_t start, uint64_t end);

// Random batches over `fields` field names with `segments` distinct segment ids.
struct BatchGen {
  std::mt19937_64 rng;
  std::vector<std::string> fields = {"a", "label", "image"};
  int segments = 8;

  // Random fields (at least one unless `allow_empty`) for one entry.
  Entry RandomEntry(uint64_t anchor, bool allow_empty = false);
  // `n` distinct anchors drawn uniformly from [lo, hi), sorted.
  std::vector<uint64_t> DistinctAnchors(size_t n, uint64_t lo, uint64_t hi);
  Batch MakeBatch(const std::vector<uint64_t>& sorted_anchors);
};

}  // namespace dreamdb::btree::test

#endif  // DREAMDB_SRC_BTREE_TEST_UTIL_H_
