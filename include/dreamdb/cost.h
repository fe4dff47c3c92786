// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Storage cost per ref: the bytes each branch or snapshot of a dataset reaches (its whole
// history), split into bytes no other ref reaches and bytes shared with other refs through
// content addressing (spec/30-http-api.md §3.12). It walks what verify and GC walk
// (src/dataset/reach.h), so the three never disagree about what a version reaches.
//
// Thread safety: ComputeStorageCost is reentrant; concurrent calls share only `store`.

#ifndef DREAMDB_COST_H_
#define DREAMDB_COST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

struct RefCost {
  std::string ref;  // the full ref name, "<dataset>/branches/main"
  ObjectId manifest;
  uint64_t reachable_objects = 0, reachable_bytes = 0;
  uint64_t unique_objects = 0, unique_bytes = 0;  // reached by no other ref given
};

struct StorageCost {
  std::vector<RefCost> refs;  // in the order given
  uint64_t objects = 0;       // distinct objects reached by any ref
  uint64_t bytes = 0;
  // False when the walk stopped because more than max_objects distinct objects were
  // reached; the figures are then partial and must not be shown as the cost.
  bool complete = true;
};

struct StorageCostOptions {
  // Stop (complete = false) once more distinct objects than this are reached, so the
  // table this function keeps stays near 100 bytes x max_objects.
  uint64_t max_objects = 2'000'000;
};

// Walks every object reachable from each of `refs` (refs of dataset `dataset`, as
// ListRefs returns them). Each ref is walked on its own (an object is fetched once per
// ref that reaches it). Errors: kCorrupt naming the first missing or corrupt object,
// kUnavailable/kIoError from the backend.
Result<StorageCost> ComputeStorageCost(Store& store, std::string_view dataset,
                                       const std::vector<RefValue>& refs,
                                       const StorageCostOptions& options = {});

}  // namespace dreamdb

#endif  // DREAMDB_COST_H_
