// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Storage cost per ref (include/dreamdb/cost.h).
#include "dreamdb/cost.h"

#include <unordered_map>

#include "src/dataset/reach.h"

namespace dreamdb {

Result<StorageCost> ComputeStorageCost(Store& store, std::string_view dataset,
                                       const std::vector<RefValue>& refs,
                                       const StorageCostOptions& options) {
  struct Seen {
    uint64_t size = 0;
    uint32_t first_ref = 0;  // the first ref that reached it
    uint32_t refs = 0;       // how many refs reached it
  };
  std::unordered_map<ObjectId, Seen> seen;
  StorageCost cost;
  const std::string prefix = std::string(dataset) + "/";
  for (uint32_t i = 0; i < refs.size(); ++i) {
    if (!refs[i].name.starts_with(prefix)) {
      return InvalidArgument("storage cost of dataset '" + std::string(dataset) + "': ref '" +
                             refs[i].name + "' belongs to another dataset");
    }
    RefCost rc;
    rc.ref = refs[i].name;
    rc.manifest = refs[i].target;
    bool over = false;
    VerifyReport report = WalkReachable(store, {refs[i]}, [&](const ObjectId& id, uint64_t size) {
      if (over) return;
      ++rc.reachable_objects;
      rc.reachable_bytes += size;
      auto [it, inserted] = seen.try_emplace(id);
      if (inserted) {
        if (seen.size() > options.max_objects) {
          over = true;
          return;
        }
        it->second.size = size;
        it->second.first_ref = i;
      }
      ++it->second.refs;
    });
    if (!report.problems.empty()) {
      return Corrupt("storage cost of '" + refs[i].name + "': " + report.problems.front());
    }
    cost.refs.push_back(std::move(rc));
    if (over) {
      cost.complete = false;
      return cost;
    }
  }
  for (const auto& [id, s] : seen) {
    ++cost.objects;
    cost.bytes += s.size;
    if (s.refs == 1) {
      ++cost.refs[s.first_ref].unique_objects;
      cost.refs[s.first_ref].unique_bytes += s.size;
    }
  }
  return cost;
}

}  // namespace dreamdb
