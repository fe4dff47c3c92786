// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Garbage collection and reader leases (spec/06-refs.md §6, §8).
#include "dreamdb/gc.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/dataset/manifest.h"
#include "src/dataset/reach.h"

namespace dreamdb {
namespace {

constexpr std::string_view kLeases = "/leases/";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsDecimal(std::string_view s) {
  if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The expiry (Unix seconds) of a lease ref `<dataset>/leases/<holder>/<expires>`, or
// nullopt when `name` is not a lease ref (spec/06 §8.1).
std::optional<int64_t> LeaseExpiry(std::string_view name) {
  const size_t at = name.find(kLeases);
  if (at == std::string_view::npos) return std::nullopt;
  if (!dataset::ValidateDatasetName(name.substr(0, at)).ok()) return std::nullopt;
  std::string_view rest = name.substr(at + kLeases.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::string_view holder = rest.substr(0, slash);
  if (holder == "branches" || holder == "snapshots") return std::nullopt;
  std::string_view expires = rest.substr(slash + 1);
  if (!IsDecimal(expires)) return std::nullopt;
  return std::stoll(std::string(expires));
}

struct Lease {
  RefValue ref;
  int64_t expires_s;
};

class Collector {
 public:
  Collector(Store& store, const GcOptions& options, GcReport& report)
      : store_(store), options_(options), report_(report) {}

  Status Run() {
    const int64_t now = options_.now_unix_ms != 0 ? options_.now_unix_ms : NowMs();
    // The cutoff is fixed before any ref is read: an object put after it is young whatever
    // the walk finds (spec/06 §6.6).
    const int64_t cutoff = now - options_.grace_ms;
    std::vector<RefValue> roots;
    std::vector<Lease> live;
    std::vector<RefValue> expired;
    RETURN_IF_ERROR(ListRoots(now, &roots, &live, &expired));
    report_.refs = roots.size();
    for (const RefValue& m : markers_) pruned_.insert(m.target);
    if (options_.keep_since_ms >= 0 || options_.keep_last > 0) {
      std::vector<RefValue> all = roots;
      for (const Lease& l : live) all.push_back(l.ref);
      RETURN_IF_ERROR(Retain(all, now));
    }
    Mark(roots, &reachable_);
    MarkLeases(live);
    // Leases taken while the refs were walked (spec/06 §8.4): list them again.
    std::vector<RefValue> ignored_roots, ignored_expired;
    std::vector<Lease> live_again;
    RETURN_IF_ERROR(ListRoots(now, &ignored_roots, &live_again, &ignored_expired));
    std::vector<Lease> fresh;
    for (auto& l : live_again) {
      if (seen_leases_.count(l.ref.name) == 0) fresh.push_back(std::move(l));
    }
    MarkLeases(fresh);
    if (!report_.problems.empty()) {
      return Corrupt("gc found " + std::to_string(report_.problems.size()) +
                     (report_.problems.size() == 1 ? " problem" : " problems") +
                     " among the objects the refs reach; nothing was deleted (run verify)");
    }
    // Markers whose version nothing reaches any more go before their version does
    // (a ref never points at a missing object).
    for (const RefValue& m : markers_) {
      if (reachable_.count(m.target) != 0 || leased_.count(m.target) != 0) continue;
      ++report_.obsolete_markers;
      if (options_.dry_run) continue;
      Status s = store_.DeleteRef(m.name, m.target);
      if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kConflict) {
        return s;
      }
    }
    RETURN_IF_ERROR(Sweep(cutoff));
    report_.expired_leases = expired.size();
    if (!options_.dry_run) {
      for (const auto& e : expired) {
        Status s = store_.DeleteRef(e.name, e.target);
        // Released or renewed meanwhile: nothing to do.
        if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kConflict) {
          return s;
        }
      }
    }
    return Status::Ok();
  }

 private:
  Status ListRoots(int64_t now, std::vector<RefValue>* roots, std::vector<Lease>* live,
                   std::vector<RefValue>* expired) {
    std::vector<RefValue> refs;
    RETURN_IF_ERROR(store_.ListRefs("", [&](const RefValue& r) {
      refs.push_back(r);
      return true;
    }));
    for (auto& r : refs) {
      if (IsPrunedMarker(r)) {
        if (markers_seen_.insert(r.name).second) markers_.push_back(std::move(r));
        continue;
      }
      if (auto expires = LeaseExpiry(r.name)) {
        if (*expires * 1000 > now) {
          live->push_back({std::move(r), *expires});
        } else {
          expired->push_back(std::move(r));
        }
      } else if (r.name.find("/branches/") != std::string::npos ||
                 r.name.find("/snapshots/") != std::string::npos) {
        if (RawTarget(r)) {
          reachable_.insert(r.target);
        } else {
          roots->push_back(std::move(r));
        }
      } else {
        RETURN_IF_ERROR(OtherRef(r, roots));
      }
    }
    return Status::Ok();
  }

  // A branch or snapshot ref whose target is intact but not a structured object (a ref
  // made with `ref create` in those name spaces, spec/06 §6.5): it names nothing else, so
  // its target is kept alone. A damaged or missing target stays a root: the walk reports it.
  bool RawTarget(const RefValue& r) {
    auto bytes = store_.Get(r.target);
    return bytes.ok() && dataset::PeekKind(*bytes).empty();
  }

  // A ref outside the dataset name spaces (made with `ref create`): its target is kept, and
  // walked like a branch when it is a manifest.
  Status OtherRef(const RefValue& r, std::vector<RefValue>* roots) {
    auto bytes = store_.Get(r.target);
    if (!bytes.ok()) {
      report_.problems.push_back("target of ref " + Quote(r.name) + " " + r.target.ToString() +
                                 ": " + bytes.status().ToString());
      return Status::Ok();
    }
    auto m = dataset::DecodeManifest(*bytes);
    if (m.ok()) {
      auto g = store_.Get(m->genesis);
      auto gen = g.ok() ? dataset::DecodeGenesis(*g) : Result<dataset::Genesis>(g.status());
      if (gen.ok()) {
        // Named as its dataset's ref so the walk's dataset check holds.
        roots->push_back({gen->name + "/" + r.name, r.target});
        return Status::Ok();
      }
    }
    reachable_.insert(r.target);
    return Status::Ok();
  }

  bool InScope(std::string_view ref) const {
    if (options_.datasets.empty()) return true;
    const std::string_view dataset = ref.substr(0, ref.find('/'));
    return std::find(options_.datasets.begin(), options_.datasets.end(), dataset) !=
           options_.datasets.end();
  }

  // Retention (spec/06 §6.10): breadth-first from the roots in scope, a parent is retained
  // when it is within keep_last of a root or not older than keep_since; a retained version
  // with a parent that is not becomes a boundary: its pruned marker is put (before anything
  // is deleted) and the walk does not go past it.
  Status Retain(const std::vector<RefValue>& roots, int64_t now_ms) {
    const bool by_age = options_.keep_since_ms >= 0;
    const int64_t oldest_ms = now_ms - (by_age ? options_.keep_since_ms : 0);
    const uint64_t oldest_ns = oldest_ms <= 0 ? 0 : static_cast<uint64_t>(oldest_ms) * 1000000;
    std::unordered_map<ObjectId, uint64_t> depth;
    std::unordered_map<ObjectId, std::string> dataset_of;
    std::deque<ObjectId> queue;
    for (const RefValue& r : roots) {
      if (!InScope(r.name)) continue;
      if (depth.emplace(r.target, 1).second) {
        dataset_of.emplace(r.target, r.name.substr(0, r.name.find('/')));
        queue.push_back(r.target);
      }
    }
    auto load = [&](const ObjectId& id) -> std::optional<dataset::Manifest> {
      auto bytes = store_.Get(id);
      if (!bytes.ok()) return std::nullopt;  // the walk reports it
      auto m = dataset::DecodeManifest(*bytes);
      if (!m.ok()) return std::nullopt;
      return std::move(*m);
    };
    std::vector<ObjectId> boundaries;
    while (!queue.empty()) {
      const ObjectId id = queue.front();
      queue.pop_front();
      if (pruned_.count(id) != 0) continue;  // cut by an earlier run
      const uint64_t d = depth[id];
      auto m = load(id);
      if (!m) continue;
      bool boundary = false;
      for (const ObjectId& p : m->parents) {
        if (depth.count(p) != 0) continue;
        bool keep = d + 1 <= options_.keep_last;
        if (!keep && by_age) {
          auto pm = load(p);
          keep = !pm || pm->time_ns >= oldest_ns;  // unreadable: kept, the walk reports it
        }
        if (keep) {
          depth.emplace(p, d + 1);
          dataset_of.emplace(p, dataset_of[id]);
          queue.push_back(p);
        } else {
          boundary = true;
        }
      }
      if (boundary) boundaries.push_back(id);
    }
    for (const ObjectId& b : boundaries) {
      ++report_.pruned_versions;
      pruned_.insert(b);
      if (options_.dry_run) continue;
      Status s = store_.CreateRef(dataset::PrunedRef(dataset_of[b], b), b);
      if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
    }
    return Status::Ok();
  }

  void Mark(const std::vector<RefValue>& roots, std::unordered_set<ObjectId>* into) {
    VerifyReport walk = WalkReachable(
        store_, roots,
        [&](const ObjectId& id, uint64_t) {
          if (reachable_.count(id) == 0) into->insert(id);
        },
        [&](uint64_t objects) {
          if (options_.progress) options_.progress("mark", objects);
        },
        &pruned_);
    for (auto& p : walk.problems) report_.problems.push_back(std::move(p));
  }

  void MarkLeases(const std::vector<Lease>& leases) {
    std::vector<RefValue> roots;
    for (const auto& l : leases) {
      seen_leases_.insert(l.ref.name);
      roots.push_back(l.ref);
    }
    report_.leases += roots.size();
    if (!roots.empty()) Mark(roots, &leased_);
  }

  Status Sweep(int64_t cutoff) {
    // One shard (1/256 of the ids) at a time, so the candidates held are bounded and the
    // listing is never mutated while it is read.
    char prefix[3];
    for (int shard = 0; shard < 256; ++shard) {
      std::snprintf(prefix, sizeof prefix, "%02x", shard);
      std::vector<ObjectInfo> garbage;
      RETURN_IF_ERROR(store_.ListObjects(prefix, [&](const ObjectInfo& o) {
        ++report_.found_objects;
        report_.found_bytes += o.size_bytes;
        if (reachable_.count(o.id)) {
          Count(&report_.reachable_objects, &report_.reachable_bytes, o);
        } else if (leased_.count(o.id)) {
          Count(&report_.leased_objects, &report_.leased_bytes, o);
        } else if (Young(o, cutoff)) {
          Count(&report_.young_objects, &report_.young_bytes, o);
        } else {
          garbage.push_back(o);
        }
        if (options_.progress && report_.found_objects % 1000 == 0) {
          options_.progress("sweep", report_.found_objects);
        }
        return true;
      }));
      for (const auto& o : garbage) RETURN_IF_ERROR(Delete(o, cutoff));
    }
    if (options_.progress) options_.progress("sweep", report_.found_objects);
    return Status::Ok();
  }

  // An object whose modified time is unknown (0) is treated as young: never deleted.
  static bool Young(const ObjectInfo& o, int64_t cutoff) {
    return o.modified_unix_ms == 0 || o.modified_unix_ms >= cutoff;
  }

  static void Count(uint64_t* objects, uint64_t* bytes, const ObjectInfo& o) {
    ++*objects;
    *bytes += o.size_bytes;
  }

  Status Delete(const ObjectInfo& listed, int64_t cutoff) {
    if (!options_.dry_run) {
      // A writer may have put the object again since it was listed (a deduplicated write,
      // spec/06 §6.3): look again just before deleting (§6.7 states the window left).
      auto now = store_.Head(listed.id);
      if (now.ok() && Young(*now, cutoff)) {
        Count(&report_.young_objects, &report_.young_bytes, listed);
        return Status::Ok();
      }
      if (!now.ok() && now.status().code() != StatusCode::kNotFound) return now.status();
      if (now.ok()) RETURN_IF_ERROR(store_.DeleteObject(listed.id));
    }
    Count(&report_.deleted_objects, &report_.deleted_bytes, listed);
    return Status::Ok();
  }

  Store& store_;
  const GcOptions& options_;
  GcReport& report_;
  // The marked sets, in memory (spec/06 §6.8 gives the partitioned design).
  std::unordered_set<ObjectId> reachable_;
  std::unordered_set<ObjectId> leased_;
  std::unordered_set<std::string> seen_leases_;
  // Pruned-history markers (spec/06 §6.10) and the versions whose parents are not walked.
  std::vector<RefValue> markers_;
  std::unordered_set<std::string> markers_seen_;
  std::unordered_set<ObjectId> pruned_;
};

}  // namespace

Status CollectGarbage(Store& store, const GcOptions& options, GcReport* report) {
  if (options.grace_ms < 0) return InvalidArgument("gc: the grace period is negative");
  if (options.grace_ms < kMinGcGraceMs && !options.no_writers_running) {
    return InvalidArgument("gc: a grace period of " + std::to_string(options.grace_ms / 1000) +
                           "s is under one hour; state that no writer is running to use it "
                           "(a writer's new objects could be deleted before its ref moves)");
  }
  if (options.keep_since_ms < -1) return InvalidArgument("gc: keep-since is negative");
  for (const std::string& name : options.datasets) {
    RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  }
  if (!options.datasets.empty() && options.keep_since_ms < 0 && options.keep_last == 0) {
    return InvalidArgument(
        "gc: dataset names choose whose history retention prunes; give --keep-since or "
        "--keep-last with them (GC always marks from every ref of the store)");
  }
  GcReport local;
  GcReport& r = report != nullptr ? *report : local;
  r = GcReport{};
  r.dry_run = options.dry_run;
  r.grace_ms = options.grace_ms;
  return Collector(store, options, r).Run();
}

Result<std::string> LeaseRefName(std::string_view dataset, std::string_view holder,
                                 int64_t expires_unix_s) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  if (expires_unix_s < 0) return InvalidArgument("lease: the expiry is negative");
  if (holder.empty() || holder.find('/') != std::string_view::npos || holder == "branches" ||
      holder == "snapshots") {
    return InvalidArgument("lease holder " + Quote(holder) +
                           " must be one ref name segment other than 'branches' and 'snapshots'");
  }
  std::string name = std::string(dataset) + std::string(kLeases) + std::string(holder) + "/" +
                     std::to_string(expires_unix_s);
  RETURN_IF_ERROR(ValidateRefName(name));
  return name;
}

Result<std::string> TakeLease(Store& store, std::string_view dataset, std::string_view holder,
                              const ObjectId& target, int64_t expires_unix_s) {
  ASSIGN_OR_RETURN(std::string name, LeaseRefName(dataset, holder, expires_unix_s));
  RETURN_IF_ERROR(store.CreateRef(name, target));
  return name;
}

Status ReleaseLease(Store& store, std::string_view lease_ref, const ObjectId& target) {
  if (!LeaseExpiry(lease_ref)) {
    return InvalidArgument("ref " + Quote(lease_ref) + " is not a lease");
  }
  return store.DeleteRef(lease_ref, target);
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("duration " + Quote(text) +
                           " is not valid: use a whole number with s, m, h or d, e.g. 30m, 24h, "
                           "7d (or 0)");
  };
  if (text == "0") return int64_t{0};
  if (text.size() < 2) return bad();
  std::string_view digits = text.substr(0, text.size() - 1);
  if (!IsDecimal(digits) || digits.size() > 9) return bad();
  const int64_t n = std::stoll(std::string(digits));
  switch (text.back()) {
    case 's':
      return n * 1000;
    case 'm':
      return n * 60 * 1000;
    case 'h':
      return n * 3600 * 1000;
    case 'd':
      return n * 86400 * 1000;
    default:
      return bad();
  }
}

}  // namespace dreamdb
