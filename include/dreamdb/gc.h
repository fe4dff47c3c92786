// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Garbage collection and reader leases (spec/06-refs.md §6, §8).
//
// GC marks every object reachable from every ref and from every live reader lease, then
// deletes the unmarked objects older than the grace period. It reaches storage only
// through `Store` (list, head, delete), so it works on every backend.
//
// Thread safety: the functions are reentrant. Several GCs (in one process or many) may run
// on one store at once, and writers and readers may keep working (spec/06 §6.7, §8.4).

#ifndef DREAMDB_GC_H_
#define DREAMDB_GC_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

inline constexpr int64_t kDefaultGcGraceMs = int64_t{24} * 3600 * 1000;  // spec/06 §6.2
inline constexpr int64_t kMinGcGraceMs = int64_t{3600} * 1000;
// The mark's memory budget when none is given (spec/06 §6.8): about 2.6 million live
// objects marked in one pass.
inline constexpr uint64_t kDefaultGcMarkMemory = uint64_t{1} << 30;
// The ref naming the stored result of the last sharded mark (spec/06 §6.11).
inline constexpr std::string_view kGcMarkRef = "gc.mark";

struct GcOptions {
  // Unreachable objects modified less than this long ago are kept (spec/06 §6.2).
  int64_t grace_ms = kDefaultGcGraceMs;
  // A grace period under kMinGcGraceMs is refused unless the caller states that no writer
  // is running (spec/06 §6.2).
  bool no_writers_running = false;
  // Count what would be deleted, delete nothing (not even expired leases).
  bool dry_run = false;
  // Retention (spec/06-refs.md §6.10). History is kept in full unless one of these is set:
  // then a version is retained when it is within keep_last versions of a root (the root
  // is the first) or not older than keep_since_ms, and every version between it and the
  // root is retained too. The older history of the datasets in `datasets` (all when
  // empty) is cut: GC marks the retained versions whose parents it no longer keeps with a
  // ref `<dataset>/pruned/<manifest>` and deletes what only the cut history reaches.
  int64_t keep_since_ms = -1;  // -1: no age rule
  uint64_t keep_last = 0;      // 0: no count rule
  std::vector<std::string> datasets;
  // What the mark may hold in memory, in bytes (spec/06 §6.8). When the live set needs
  // more, the mark and sweep run in passes by object-id prefix (2, 4, ... up to 256), each
  // holding the marked ids of its share of the id space only.
  uint64_t mark_memory_bytes = kDefaultGcMarkMemory;
  // Sharded GC (spec/06 §6.11). `mark_only`: run the mark (with retention, leases and
  // markers) and store its result as objects named by the ref kGcMarkRef, sweeping
  // nothing. `shard_of` > 0: sweep only shard `shard` (0-based) of `shard_of` (at most
  // 256) of the id space, against the stored mark and its cutoff (this run's grace,
  // retention and memory options are not used); several such runs may go at once.
  bool mark_only = false;
  uint32_t shard = 0;
  uint32_t shard_of = 0;
  // The clock, Unix milliseconds; 0 = the system clock. For tests.
  int64_t now_unix_ms = 0;
  // Called now and then with a phase ("mark", "sweep") and the objects done so far.
  std::function<void(std::string_view phase, uint64_t objects)> progress;
};

struct GcReport {
  bool dry_run = false;
  int64_t grace_ms = 0;
  uint64_t refs = 0;            // branch, snapshot and other refs used as roots
  uint64_t leases = 0;          // live leases used as roots
  uint64_t expired_leases = 0;  // expired lease refs found (deleted unless dry_run)
  // Retention: versions whose history this run cut (new pruned markers), and markers of
  // earlier runs whose version is no longer reachable (deleted unless dry_run).
  uint64_t pruned_versions = 0;
  uint64_t obsolete_markers = 0;
  // Every object listed by the sweep, and how it was classified (each object exactly once).
  uint64_t found_objects = 0, found_bytes = 0;
  uint64_t reachable_objects = 0, reachable_bytes = 0;  // kept: reachable from a ref
  uint64_t leased_objects = 0, leased_bytes = 0;        // kept: reachable only from a lease
  uint64_t young_objects = 0, young_bytes = 0;          // kept: unreachable but in grace
  uint64_t deleted_objects = 0, deleted_bytes = 0;      // deleted (or, dry_run, would be)
  // The mark (spec/06 §6.8): the passes by id prefix it took (1 when the live set fit the
  // budget) and the most objects a pass whose marks were used held (ids, not bytes; a
  // pass that outgrew the budget and was run again held at most the budget plus the
  // pages, manifests and index objects).
  uint32_t mark_passes = 0;
  uint64_t mark_peak_objects = 0;
  // Sharded GC: the mark object used or written (its id), and, for mark_only, the objects
  // it marked (reachable or leased).
  std::string mark;
  uint64_t marked_objects = 0;
  // Per-field retention (spec/06 §6.12), one entry per rule applied: the cutoff used
  // (versions made before it, other than the roots' targets, keep the field only where a
  // whole version shares it), the versions walked without the field, and the objects and
  // bytes deleted (dry_run: that would be deleted) because of the rule alone (counted in
  // deleted_* too). The sharded sweep does not attribute its deletions (empty).
  struct FieldRetention {
    std::string dataset;
    std::string field;
    int64_t keep_since_ms = 0;
    int64_t cutoff_ms = 0;
    uint64_t versions = 0;
    uint64_t objects = 0, bytes = 0;
  };
  std::vector<FieldRetention> field_retention;
  // Objects reachable from a root that are missing or corrupt. When non-empty GC deleted
  // nothing, and CollectGarbage returns kCorrupt with this report in its message.
  std::vector<std::string> problems;
};

// Runs one GC over the whole store (spec/06 §6.6). kInvalidArgument for a grace period that
// §6.2 forbids; kCorrupt (deleting nothing) if a reachable object is missing or corrupt.
// `report` (optional) is filled even on kCorrupt, so callers can print the problems.
Status CollectGarbage(Store& store, const GcOptions& options, GcReport* report);

// ---- Per-field retention (spec/06 §6.12) ----

// A rule: the values of `field` of `dataset` are kept in versions younger than
// keep_since, and in older ones only where a branch, snapshot, lease or other ref targets
// the version (or a kept version shares them). Stored as the ref
// `<dataset>/retention/<field>/<keep_since_s>` at the dataset's genesis; GC applies every
// rule of the store on every run.
struct FieldRetentionRule {
  std::string dataset;
  std::string field;
  int64_t keep_since_ms = 0;
  std::string ref;
};
// Sets the rule of `field` (a field of the head of `main`, or a dropped one), replacing
// any earlier rule of that field: the new ref is created before the old ones are deleted,
// so a GC in between applies the longer window. keep_since is whole seconds, at least 1 s.
// kNotFound for a missing dataset, kInvalidArgument for an unknown field or a bad window.
Status SetFieldRetention(Store& store, std::string_view dataset, std::string_view field,
                         int64_t keep_since_ms);
// Removes the rules of `field` (kNotFound when it has none). Values GC already reclaimed
// stay reclaimed: the markers of spec/06 §6.12 remain.
Status ClearFieldRetention(Store& store, std::string_view dataset, std::string_view field);
// The rules of `dataset` (every dataset when empty), by dataset and field.
Result<std::vector<FieldRetentionRule>> ListFieldRetention(Store& store,
                                                           std::string_view dataset = {});

// ---- Reader leases (spec/06 §8) ----

// The lease ref `<dataset>/leases/<holder>/<expires_unix_s>`.
// kInvalidArgument if the holder is not one name segment or is "branches"/"snapshots".
Result<std::string> LeaseRefName(std::string_view dataset, std::string_view holder,
                                 int64_t expires_unix_s);
// Takes (creates) a lease on `target` until `expires_unix_s`; returns its ref name. A lease
// is renewed by taking a later one and then releasing the earlier (spec/06 §8.2).
Result<std::string> TakeLease(Store& store, std::string_view dataset, std::string_view holder,
                              const ObjectId& target, int64_t expires_unix_s);
// Deletes a lease ref (its own name and target).
Status ReleaseLease(Store& store, std::string_view lease_ref, const ObjectId& target);

// Parses a duration: a non-negative integer with unit s, m, h or d ("0" alone allowed),
// e.g. "90s", "30m", "24h", "7d". Milliseconds. kInvalidArgument naming the text otherwise.
Result<int64_t> ParseDurationMs(std::string_view text);

// Parses a size in bytes: a positive integer with an optional unit K, M or G (powers of
// 1024), e.g. "4096", "64M", "2G". kInvalidArgument naming the text otherwise.
Result<uint64_t> ParseByteSize(std::string_view text);

}  // namespace dreamdb

#endif  // DREAMDB_GC_H_
