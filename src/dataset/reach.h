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
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"

namespace dreamdb {

// Per-field retention (spec/06-refs.md §6.12): the versions of a dataset made before a
// field's cutoff, other than the versions a root targets, are walked without that field:
// its segments (and its spatial index) are not reached through them. Versions walked
// whole are walked first, so a segment or page one of them shares is reached whole.
struct FieldCut {
  std::string field;
  uint64_t cutoff_ns = 0;  // versions with time_ns below this are walked without `field`
};
struct FieldRetentionPolicy {
  // By dataset name.
  std::unordered_map<std::string, std::vector<FieldCut>> cuts;
  // Versions walked whole whatever their age: the targets of the roots (refs, leases).
  std::unordered_set<ObjectId> whole;
  // GC (true): the cut fields' segments are not fetched, only reported to `skipped`.
  // Verify (false): they are fetched; a missing one is reported in the report's
  // retained_without (that version's field was reclaimed), not as a problem.
  bool skip = true;
  // Called for each segment a cut version names under a cut field (GC only), and once
  // per version and field cut.
  std::function<void(const ObjectId& segment, const std::string& dataset, const std::string& field)>
      skipped;
  std::function<void(const ObjectId& manifest, const std::string& dataset,
                     const std::string& field)>
      cut;
};

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
                           const LeafFilter* leaves = nullptr,
                           const FieldRetentionPolicy* fields = nullptr);

// `fields` (optional): per-field retention (above).

// True when `r` is a pruned-history marker `<dataset>/pruned/<id>` targeting manifest <id>.
bool IsPrunedMarker(const RefValue& r);

// The targets of the pruned-history markers `<dataset>/pruned/...` of dataset `name`
// (every dataset when empty), added to `out`.
Status ListPruned(Store& store, std::string_view name, std::unordered_set<ObjectId>* out);

// ---- Per-field retention refs (spec/06-refs.md §6.12) ----

// `<dataset>/retention/<field>/<keep_since_s>` (a rule) or
// `<dataset>/pruned-fields/<field>/<cutoff_ms>` (a marker: versions of the dataset made
// before cutoff_ms may lack the field), parsed; nullopt for any other ref.
struct FieldRetentionRef {
  bool marker = false;
  std::string dataset;
  std::string field;
  int64_t value = 0;  // keep_since seconds (rule) or cutoff milliseconds (marker)
};
std::optional<FieldRetentionRef> ParseFieldRetentionRef(std::string_view name);

// Reading version `manifest` (made at `time_ns`) of `dataset` failed with `failure`: when
// it is not_found and a marker says that version may lack one of `fields`, the error names
// the field and the version and says retention reclaimed it; otherwise `failure` as is.
Status ExplainReclaimedField(Store& store, std::string_view dataset, const ObjectId& manifest,
                             uint64_t time_ns, const std::vector<FieldSpec>& fields,
                             Status failure);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_REACH_H_
