// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Clone: copy the closure of refs from one store to another (any two stores: file:// to
// s3://, bucket to bucket, s3:// to a laptop's file://).
//
// Design notes:
//   Invariants (the destination's, at every moment, however the clone is interrupted):
//     1. Every ref of the destination reaches only objects present there: objects are
//        copied (and synced) before any ref is created or moved, and a ref is written only
//        after its whole closure is in place.
//     2. Objects are verified as they are read from the source (Store::Get), so nothing
//        damaged is copied; a closure with a missing or damaged object moves no ref.
//     3. Refs move only by the destination's compare-and-swap: a missing ref is created,
//        a branch is moved forward only from a version its source value descends from,
//        and a ref that diverged (or a snapshot that differs) is left alone and reported.
//   Resuming: objects already in the destination are skipped (one listing of it), so a
//   clone run again after an interruption copies only what is missing, then the refs.
//   Reading once: the walk reads (and verifies) every object of the closure to find what
//   it references; the bytes of the objects the destination lacks are kept from that read
//   for the copy, up to CloneOptions::retain_bytes, so each is read from the source once.
//
// Thread safety: Clone is reentrant; it reads `src` and writes `dst` from several threads
// (stores are thread-safe).

#ifndef DREAMDB_CLONE_H_
#define DREAMDB_CLONE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

struct CloneProgress {
  std::string_view phase;  // "walk", "copy", "refs"
  uint64_t done = 0;       // objects walked / objects handled / refs handled
  uint64_t total = 0;      // 0 while unknown (walk)
  uint64_t bytes_copied = 0;
};

struct CloneOptions {
  // Ref names, or dataset names standing for every ref of the dataset ("<name>/..."). Empty:
  // every ref of the source. Reader leases (`<dataset>/leases/...`) are never copied.
  std::vector<std::string> refs;
  // Objects copied at once (each a GET from the source and a PUT to the destination).
  int parallelism = 8;
  // Called now and then from the calling thread.
  std::function<void(const CloneProgress&)> progress;
  // Bytes of source objects held in memory between the walk, which reads each object of
  // the closure, and the copy, so that an object the destination lacks is read from the
  // source once. Objects past this bound are read again when they are copied.
  uint64_t retain_bytes = uint64_t{256} << 20;
};

struct CloneReport {
  uint64_t refs = 0;            // refs considered
  uint64_t refs_created = 0;    // new in the destination
  uint64_t refs_updated = 0;    // moved forward in the destination
  uint64_t refs_unchanged = 0;  // already at the source's value
  uint64_t objects = 0;         // objects in the closure
  uint64_t objects_copied = 0;
  uint64_t objects_present = 0;  // already in the destination (skipped)
  uint64_t bytes_copied = 0;
  // Refs left alone because the destination's value diverged, with why.
  std::vector<std::string> conflicts;
};

// Copies the closure of the selected refs from `src` to `dst`. kNotFound when a named ref
// or dataset matches no ref; kCorrupt (moving no ref) when the source's closure has a
// missing or damaged object; kConflict (after doing everything else) when some refs
// diverged; other errors as the stores report them. `report` (optional) is filled either way.
Status Clone(Store& src, Store& dst, const CloneOptions& options, CloneReport* report);

}  // namespace dreamdb

#endif  // DREAMDB_CLONE_H_
