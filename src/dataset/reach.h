// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The references of a dataset's objects, walked once: the traversal `verify` does
// (src/dataset/verify.cc), shared with GC (src/dataset/gc.cc) so that the two can never
// disagree about what a version reaches (spec/06-refs.md §6.5).
//
// Thread safety: WalkReachable is reentrant; concurrent calls share nothing but `store`.

#ifndef DREAMDB_SRC_DATASET_REACH_H_
#define DREAMDB_SRC_DATASET_REACH_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"

namespace dreamdb {

// Called once per distinct object reached, with its size in bytes.
using ReachedVisitor = std::function<void(const ObjectId& id, uint64_t size)>;

// Chooses the segments a walk visits (spec/06-refs.md §6.8): segments name nothing, so a
// walk that skips one loses nothing under it.
using LeafFilter = std::function<bool(const ObjectId& segment)>;

// Walks every object reachable from each root (a manifest id; `name` is the ref it came
// from, `<dataset>/...`, used in messages and to check the manifest's dataset), fetching
// and hash-checking each object once however many versions share it: manifests through
// their parents, genesis, index and tombstone B-tree pages, segments, and spatial index
// objects (index, model, directory pages, buckets, cells, node pages). Missing, corrupt or
// undecodable objects are listed in the report's problems; the walk goes on past them.
//
// `pruned` (optional): manifests whose history was pruned by retention (spec/06-refs.md
// §6.10): they are walked, their parents are not.
// `leaves` (optional): only the segments it accepts are fetched, checked, reported and
// remembered; the others are skipped unfetched (a GC mark pass, spec/06-refs.md §6.8).
VerifyReport WalkReachable(Store& store, const std::vector<RefValue>& roots,
                           const ReachedVisitor& reached,
                           const std::function<void(uint64_t)>& progress = {},
                           const std::unordered_set<ObjectId>* pruned = nullptr,
                           const LeafFilter* leaves = nullptr);

// True when `r` is a pruned-history marker `<dataset>/pruned/<id>` targeting manifest <id>.
bool IsPrunedMarker(const RefValue& r);

// The targets of the pruned-history markers `<dataset>/pruned/...` of dataset `name`
// (every dataset when empty), added to `out`.
Status ListPruned(Store& store, std::string_view name, std::unordered_set<ObjectId>* out);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_REACH_H_
