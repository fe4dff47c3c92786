// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Garbage collection and reader leases (spec/06-refs.md §6, §8).
#include "dreamdb/gc.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/dataset/manifest.h"
#include "src/dataset/reach.h"

namespace dreamdb {
namespace {

constexpr std::string_view kLeases = "/leases/";

// What one object a mark pass holds costs: its entry in the marked set plus the walk's own
// seen sets and per-segment facts (spec/06 §6.8: 412 bytes of peak RSS measured per live
// object on a store of 515,591, bench/RESULTS.md).
constexpr uint64_t kBytesPerMark = 416;

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

// Per-field retention refs (spec/06 §6.12).
constexpr std::string_view kRetention = "retention";
constexpr std::string_view kPrunedFields = "pruned-fields";

std::string FieldRuleName(std::string_view dataset, std::string_view field, int64_t keep_s) {
  return std::string(dataset) + "/" + std::string(kRetention) + "/" + std::string(field) + "/" +
         std::to_string(keep_s);
}

std::string FieldMarkerName(std::string_view dataset, std::string_view field, int64_t cutoff_ms) {
  return std::string(dataset) + "/" + std::string(kPrunedFields) + "/" + std::string(field) + "/" +
         std::to_string(cutoff_ms);
}

std::string UtcTime(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The stored result of a sharded mark (spec/06 §6.11): a raw object of text lines.
constexpr std::string_view kMarkMagic = "dreamdb gc mark 1\n";
constexpr std::string_view kChunkMagic = "dreamdb gc mark chunk 1\n";
constexpr char kMarkReachable = 'r';
constexpr char kMarkLeased = 'l';

struct StoredMark {
  int64_t now_ms = 0;
  int64_t cutoff_ms = 0;
  int64_t grace_ms = 0;
  std::map<uint32_t, ObjectId> chunks;  // by first id byte
};

Bytes EncodeMark(const StoredMark& m) {
  Bytes out(kMarkMagic);
  out += "now_ms " + std::to_string(m.now_ms) + "\n";
  out += "cutoff_ms " + std::to_string(m.cutoff_ms) + "\n";
  out += "grace_ms " + std::to_string(m.grace_ms) + "\n";
  char prefix[3];
  for (const auto& [p, id] : m.chunks) {
    std::snprintf(prefix, sizeof prefix, "%02x", p);
    out += "chunk " + std::string(prefix) + " " + id.ToString() + "\n";
  }
  return out;
}

Result<StoredMark> DecodeMark(ByteView bytes) {
  auto bad = [](const std::string& why) {
    return Corrupt("gc: the stored mark (ref " + Quote(kGcMarkRef) + ") " + why +
                   "; run `dreamdb gc --mark-only` again");
  };
  if (bytes.substr(0, kMarkMagic.size()) != kMarkMagic) return bad("has no header");
  bytes.remove_prefix(kMarkMagic.size());
  StoredMark m;
  int have = 0;
  while (!bytes.empty()) {
    const size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) return bad("ends mid-line");
    std::string_view line = bytes.substr(0, nl);
    bytes.remove_prefix(nl + 1);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("has a line without a value");
    std::string_view key = line.substr(0, sp), value = line.substr(sp + 1);
    auto number = [&](int64_t* out) -> bool {
      const bool neg = !value.empty() && value[0] == '-';
      if (!IsDecimal(neg ? value.substr(1) : value)) return false;
      *out = std::stoll(std::string(value));
      ++have;
      return true;
    };
    if (key == "now_ms" || key == "cutoff_ms" || key == "grace_ms") {
      int64_t* out = key == "now_ms" ? &m.now_ms : key == "cutoff_ms" ? &m.cutoff_ms : &m.grace_ms;
      if (!number(out)) return bad("has a bad " + std::string(key));
    } else if (key == "chunk") {
      if (value.size() < 4 || value[2] != ' ') return bad("has a bad chunk line");
      const std::string hex(value.substr(0, 2));
      if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return bad("has a bad chunk prefix");
      }
      auto id = ObjectId::Parse(value.substr(3));
      if (!id.ok()) return bad("has a bad chunk id");
      m.chunks.emplace(static_cast<uint32_t>(std::stoul(hex, nullptr, 16)), *id);
    } else {
      return bad("has an unknown line");
    }
  }
  if (have != 3) return bad("lacks its times");
  return m;
}

class Collector {
 public:
  Collector(Store& store, const GcOptions& options, GcReport& report)
      : store_(store), options_(options), report_(report) {}

  Status Run() {
    if (options_.shard_of != 0) return SweepShard();
    const int64_t now = options_.now_unix_ms != 0 ? options_.now_unix_ms : NowMs();
    // The cutoff is fixed before any ref is read: an object put after it is young whatever
    // the walk finds (spec/06 §6.6).
    const int64_t cutoff = now - options_.grace_ms;
    std::vector<Lease> live;
    std::vector<RefValue> expired;
    RETURN_IF_ERROR(ListRoots(now, &roots_, &live, &expired));
    report_.refs = roots_.size();
    for (const RefValue& m : markers_) pruned_.insert(m.target);
    RETURN_IF_ERROR(PlanFieldRetention(now, live));
    if (options_.keep_since_ms >= 0 || options_.keep_last > 0) {
      std::vector<RefValue> all = roots_;
      for (const Lease& l : live) all.push_back(l.ref);
      RETURN_IF_ERROR(Retain(all, now));
    }
    for (Lease& l : live) leases_.push_back(std::move(l));
    root_problems_ = report_.problems;  // damaged ref targets: every pass reports them
    // Passes by id prefix (spec/06 §6.8): pass `p` of `passes` marks and sweeps the ids
    // whose first digest byte is in [p * 256 / passes, (p + 1) * 256 / passes). A pass that
    // outgrows the budget is run again as two, so what earlier passes swept stays done.
    uint32_t passes = 1;
    bool may_split = true;  // false once what every pass holds alone reaches the budget
    for (uint32_t p = 0; p < passes;) {
      const uint32_t lo = p * 256 / passes, hi = (p + 1) * 256 / passes;
      report_.mark_passes = passes;
      bool overflow = false;
      RETURN_IF_ERROR(MarkPass(now, lo, hi, may_split && passes < 256, &overflow));
      if (overflow) {
        // The pass walked every page, manifest and index object but stopped taking
        // segments: those objects every pass holds, whatever its share of the ids. When
        // they alone reach the budget more passes cannot help; run this one whole.
        if (held_ - leaves_held_ >= BudgetIds()) {
          may_split = false;
        } else {
          passes *= 2;
          p *= 2;
        }
        continue;
      }
      report_.mark_peak_objects = std::max(report_.mark_peak_objects, held_);
      if (!report_.problems.empty()) {
        return Corrupt("gc found " + std::to_string(report_.problems.size()) +
                       (report_.problems.size() == 1 ? " problem" : " problems") +
                       " among the objects the refs reach; nothing " +
                       (lo == 0 ? "was" : "more was") + " deleted (run verify)");
      }
      RETURN_IF_ERROR(DropObsoleteMarkers(lo, hi));
      RETURN_IF_ERROR(options_.mark_only ? StoreMarks(lo, hi) : Sweep(cutoff, lo, hi));
      ++p;
    }
    if (options_.mark_only) RETURN_IF_ERROR(StoreMark(now, cutoff));
    if (options_.progress) options_.progress("sweep", report_.found_objects);
    for (size_t i = 0; i < cut_versions_.size(); ++i) {
      report_.field_retention[i].versions = cut_versions_[i].size();
    }
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
      if (auto f = ParseFieldRetentionRef(r.name)) {
        // A per-field rule or marker (spec/06 §6.12): its target, the genesis, is kept.
        pinned_.insert(r.target);
        if (field_refs_seen_.insert(r.name).second) {
          if (f->marker) {
            field_markers_[{f->dataset, f->field}].push_back(r);
          } else {
            int64_t& keep = field_rules_[{f->dataset, f->field}];
            keep = std::max(keep, f->value * 1000);  // the longest window wins
            field_genesis_[{f->dataset, f->field}] = r.target;
          }
        }
        continue;
      }
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
          pinned_.insert(r.target);
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
    if (r.name == kGcMarkRef && bytes.ok()) {
      // The stored mark keeps its chunks (spec/06 §6.11).
      if (auto mark = DecodeMark(*bytes); mark.ok()) {
        for (const auto& [prefix, chunk] : mark->chunks) pinned_.insert(chunk);
      }
    }
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
    pinned_.insert(r.target);
    return Status::Ok();
  }

  // Per-field retention (spec/06 §6.12): the cutoff of each (dataset, field) with a rule or
  // a marker is the later of now - keep_since and the newest marker; versions made before
  // it, other than the roots' and live leases' targets, are walked without the field. The
  // marker of the new cutoff is created before anything is deleted, then older ones go.
  Status PlanFieldRetention(int64_t now, const std::vector<Lease>& live) {
    std::map<std::pair<std::string, std::string>, bool> keys;
    for (const auto& [key, keep] : field_rules_) keys[key] = true;
    for (const auto& [key, markers] : field_markers_) keys.emplace(key, false);
    if (keys.empty()) return Status::Ok();
    for (const RefValue& r : roots_) fields_.whole.insert(r.target);
    for (const Lease& l : live) fields_.whole.insert(l.ref.target);
    for (const auto& [key, has_rule] : keys) {
      int64_t newest_marker = INT64_MIN;
      std::vector<RefValue>& markers = field_markers_[key];
      for (const RefValue& m : markers) {
        newest_marker = std::max(newest_marker, ParseFieldRetentionRef(m.name)->value);
      }
      GcReport::FieldRetention figures;
      figures.dataset = key.first;
      figures.field = key.second;
      figures.keep_since_ms = has_rule ? field_rules_[key] : -1;
      const int64_t rule_cutoff = has_rule ? now - field_rules_[key] : INT64_MIN;
      figures.cutoff_ms = std::max(std::max(rule_cutoff, newest_marker), int64_t{0});
      fields_.cuts[key.first].push_back(
          {key.second, static_cast<uint64_t>(figures.cutoff_ms) * 1000000});
      rule_index_[key] = static_cast<uint32_t>(report_.field_retention.size());
      report_.field_retention.push_back(std::move(figures));
      if (options_.dry_run || !has_rule || rule_cutoff <= newest_marker) continue;
      Status s = store_.CreateRef(FieldMarkerName(key.first, key.second, rule_cutoff),
                                  field_genesis_[key]);
      if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
      for (const RefValue& m : markers) {
        s = store_.DeleteRef(m.name, m.target);
        if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kConflict) {
          return s;
        }
      }
    }
    cut_versions_.resize(report_.field_retention.size());
    fields_.skip = true;
    fields_.skipped = [this](const ObjectId& segment, const std::string& dataset,
                             const std::string& field) {
      if (in_range_(segment)) field_skipped_.emplace(segment, RuleIndex(dataset, field));
    };
    fields_.cut = [this](const ObjectId& manifest, const std::string& dataset,
                         const std::string& field) {
      cut_versions_[RuleIndex(dataset, field)].insert(manifest);
    };
    return Status::Ok();
  }

  uint32_t RuleIndex(const std::string& dataset, const std::string& field) {
    if (last_rule_ == nullptr || last_rule_->first.first != dataset ||
        last_rule_->first.second != field) {
      last_rule_ = &*rule_index_.find({dataset, field});
    }
    return last_rule_->second;
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

  // Marks into reachable_ and leased_ the objects with first digest byte in [lo, hi) that
  // the roots and the live leases reach (spec/06 §6.6 steps 2 and 3). Segments outside
  // the range are not fetched; everything else is walked, so a damaged page, manifest or
  // index object is found by every pass. With `may_overflow`, a pass whose held objects
  // reach the budget stops taking segments and sets `overflow` (its marks are then
  // incomplete: the caller runs it again, as more passes or whole).
  Status MarkPass(int64_t now, uint32_t lo, uint32_t hi, bool may_overflow, bool* overflow) {
    reachable_ = {};
    leased_ = {};
    field_skipped_ = {};
    report_.problems = root_problems_;
    held_ = 0;
    leaves_held_ = 0;
    in_range_ = [lo, hi](const ObjectId& id) {
      return id.digest()[0] >= lo && id.digest()[0] < hi;
    };
    const uint64_t budget_ids = BudgetIds();
    leaf_filter_ = [this, may_overflow, budget_ids, overflow](const ObjectId& id) {
      if (!in_range_(id)) return false;
      if (may_overflow && held_ >= budget_ids) *overflow = true;
      last_leaf_ = id;
      return !*overflow;
    };
    Mark(roots_, &reachable_);
    MarkLeases(leases_);
    // Leases taken while the refs were walked (spec/06 §8.4): list them again.
    std::vector<RefValue> ignored_roots, ignored_expired;
    std::vector<Lease> live_again;
    RETURN_IF_ERROR(ListRoots(now, &ignored_roots, &live_again, &ignored_expired));
    std::vector<Lease> fresh;
    for (auto& l : live_again) {
      if (seen_leases_.count(l.ref.name) == 0) {
        fields_.whole.insert(l.ref.target);
        fresh.push_back(std::move(l));
      }
    }
    MarkLeases(fresh);
    for (Lease& l : fresh) leases_.push_back(std::move(l));
    // The walk skips the segments a leaf shares with the one it walked before without asking
    // the filter, so a pass can end over the budget without the filter having said so.
    if (may_overflow && held_ > budget_ids) *overflow = true;
    return Status::Ok();
  }

  uint64_t BudgetIds() const {
    return std::max<uint64_t>(1, options_.mark_memory_bytes / kBytesPerMark);
  }

  void Mark(const std::vector<RefValue>& roots, std::unordered_set<ObjectId>* into) {
    VerifyReport walk = WalkReachable(
        store_, roots,
        [&](const ObjectId& id, uint64_t) {
          ++held_;  // the walk remembers it until it returns
          if (id == last_leaf_) ++leaves_held_;
          if (in_range_(id) && reachable_.count(id) == 0) into->insert(id);
        },
        [&](uint64_t objects) {
          if (options_.progress) options_.progress("mark", objects);
        },
        &pruned_, &leaf_filter_, fields_.cuts.empty() ? nullptr : &fields_);
    for (auto& p : walk.problems) report_.problems.push_back(std::move(p));
  }

  void MarkLeases(const std::vector<Lease>& leases) {
    std::vector<RefValue> roots;
    for (const auto& l : leases) {
      if (seen_leases_.insert(l.ref.name).second) ++report_.leases;
      roots.push_back(l.ref);
    }
    if (!roots.empty()) Mark(roots, &leased_);
  }

  // Markers whose version nothing reaches any more go before their version does (a ref
  // never points at a missing object): those of versions in [lo, hi), before its sweep.
  Status DropObsoleteMarkers(uint32_t lo, uint32_t hi) {
    for (const RefValue& m : markers_) {
      if (m.target.digest()[0] < lo || m.target.digest()[0] >= hi) continue;
      if (Marked(m.target)) continue;
      ++report_.obsolete_markers;
      if (options_.dry_run) continue;
      Status s = store_.DeleteRef(m.name, m.target);
      if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kConflict) {
        return s;
      }
    }
    return Status::Ok();
  }

  bool Marked(const ObjectId& id) const {
    return reachable_.count(id) != 0 || leased_.count(id) != 0 || pinned_.count(id) != 0;
  }

  Status Sweep(int64_t cutoff, uint32_t lo, uint32_t hi) {
    // One shard (1/256 of the ids) at a time, so the candidates held are bounded and the
    // listing is never mutated while it is read.
    char prefix[3];
    for (uint32_t shard = lo; shard < hi; ++shard) {
      std::snprintf(prefix, sizeof prefix, "%02x", shard & 0xffu);  // shard < 256
      std::vector<ObjectInfo> garbage;
      RETURN_IF_ERROR(store_.ListObjects(prefix, [&](const ObjectInfo& o) {
        ++report_.found_objects;
        report_.found_bytes += o.size_bytes;
        if (reachable_.count(o.id) || pinned_.count(o.id)) {
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
      RETURN_IF_ERROR(DeleteAll(garbage, cutoff));
    }
    return Status::Ok();
  }

  // The garbage of one shard prefix: re-Headed and deleted on the I/O pool (each object on
  // its own: a delete is one unlink or one request, nothing to batch it with safely), then
  // counted in listing order. The first error is returned after every delete has finished.
  static constexpr size_t kParallelDeletes = 16;
  Status DeleteAll(const std::vector<ObjectInfo>& garbage, int64_t cutoff) {
    enum Outcome : uint8_t { kDeleted, kYoung };
    std::vector<Outcome> outcome(garbage.size(), kDeleted);
    std::vector<Status> status(garbage.size());
    if (!options_.dry_run) {
      IoPool::ParallelFor(
          garbage.size(),
          [&](size_t i) {
            auto young = DeleteOne(garbage[i], cutoff);
            if (!young.ok()) {
              status[i] = young.status();
            } else if (*young) {
              outcome[i] = kYoung;
            }
          },
          kParallelDeletes);
    }
    for (size_t i = 0; i < garbage.size(); ++i) {
      RETURN_IF_ERROR(status[i]);
      if (outcome[i] == kYoung) {
        Count(&report_.young_objects, &report_.young_bytes, garbage[i]);
        continue;
      }
      Count(&report_.deleted_objects, &report_.deleted_bytes, garbage[i]);
      if (auto it = field_skipped_.find(garbage[i].id); it != field_skipped_.end()) {
        GcReport::FieldRetention& f = report_.field_retention[it->second];
        Count(&f.objects, &f.bytes, garbage[i]);
      }
    }
    return Status::Ok();
  }

  // ---- Sharded GC (spec/06 §6.11) ----

  // The chunks of prefixes [lo, hi): each the sorted marked ids with that first byte.
  Status StoreMarks(uint32_t lo, uint32_t hi) {
    std::vector<std::vector<Bytes>> entries(hi - lo);
    auto add = [&](const ObjectId& id, char tag) {
      const uint32_t b = id.digest()[0];
      if (b < lo || b >= hi) return;
      entries[b - lo].push_back(std::string(1, tag) + id.ToBinary());
    };
    for (const ObjectId& id : reachable_) add(id, kMarkReachable);
    for (const ObjectId& id : pinned_) {
      if (reachable_.count(id) == 0) add(id, kMarkReachable);
    }
    for (const ObjectId& id : leased_) {
      if (reachable_.count(id) == 0 && pinned_.count(id) == 0) add(id, kMarkLeased);
    }
    for (uint32_t i = 0; i < entries.size(); ++i) {
      if (entries[i].empty()) continue;
      std::sort(entries[i].begin(), entries[i].end(),
                [](const Bytes& a, const Bytes& b) { return a.compare(1, Bytes::npos, b, 1) < 0; });
      Bytes chunk = std::string(kChunkMagic);
      for (const Bytes& e : entries[i]) chunk += e;
      ASSIGN_OR_RETURN(ObjectId id, store_.Put(chunk));
      chunks_.emplace(lo + i, id);
      report_.marked_objects += entries[i].size();
    }
    return Status::Ok();
  }

  // The mark object and the ref naming it, put after every chunk.
  Status StoreMark(int64_t now, int64_t cutoff) {
    StoredMark m{now, cutoff, options_.grace_ms, chunks_};
    ASSIGN_OR_RETURN(ObjectId id, store_.Put(EncodeMark(m)));
    report_.mark = id.ToString();
    for (int attempt = 0;; ++attempt) {
      auto old = store_.ReadRef(kGcMarkRef);
      Status s = old.ok() ? store_.UpdateRef(kGcMarkRef, old->target, id)
                 : old.status().code() == StatusCode::kNotFound ? store_.CreateRef(kGcMarkRef, id)
                                                                : old.status();
      // Another mark moved the ref meanwhile: either is a valid mark; this one is newer.
      if ((s.code() == StatusCode::kConflict || s.code() == StatusCode::kAlreadyExists ||
           (old.ok() && s.code() == StatusCode::kNotFound)) &&
          attempt < 8) {
        continue;
      }
      return s;
    }
  }

  // Sweeps shard `shard` of `shard_of` against the stored mark, one prefix at a time.
  Status SweepShard() {
    if (options_.shard_of > 256 || options_.shard >= options_.shard_of) {
      return InvalidArgument("gc: shard " + std::to_string(options_.shard) + " of " +
                             std::to_string(options_.shard_of) +
                             " is out of range (shards are 0..M-1, M at most 256: the sweep "
                             "is partitioned by the first byte of the object id)");
    }
    auto ref = store_.ReadRef(kGcMarkRef);
    if (!ref.ok() && ref.status().code() == StatusCode::kNotFound) {
      return NotFound("gc: the store has no mark (ref " + Quote(kGcMarkRef) +
                      "): run `dreamdb gc --mark-only` before sweeping shards");
    }
    RETURN_IF_ERROR(ref.status());
    ASSIGN_OR_RETURN(Bytes bytes, store_.Get(ref->target));
    ASSIGN_OR_RETURN(StoredMark mark, DecodeMark(bytes));
    report_.mark = ref->target.ToString();
    report_.grace_ms = mark.grace_ms;
    pinned_.insert(ref->target);
    for (const auto& [prefix, chunk] : mark.chunks) pinned_.insert(chunk);
    const uint32_t lo = options_.shard * 256 / options_.shard_of;
    const uint32_t hi = (options_.shard + 1) * 256 / options_.shard_of;
    for (uint32_t prefix = lo; prefix < hi; ++prefix) {
      reachable_ = {};
      leased_ = {};
      if (auto it = mark.chunks.find(prefix); it != mark.chunks.end()) {
        auto chunk = store_.Get(it->second);
        if (!chunk.ok()) {
          return Corrupt("gc: chunk " + it->second.ToString() + " of mark " +
                         ref->target.ToString() + ": " + chunk.status().ToString() +
                         "; nothing more was deleted (run `dreamdb gc --mark-only` again)");
        }
        RETURN_IF_ERROR(DecodeChunk(*chunk, prefix));
      }
      RETURN_IF_ERROR(Sweep(mark.cutoff_ms, prefix, prefix + 1));
    }
    if (options_.progress) options_.progress("sweep", report_.found_objects);
    return Status::Ok();
  }

  Status DecodeChunk(ByteView chunk, uint32_t prefix) {
    auto bad = [&](const std::string& why) {
      return Corrupt("gc: the mark's chunk for prefix " + std::to_string(prefix) + " " + why);
    };
    if (chunk.substr(0, kChunkMagic.size()) != kChunkMagic) return bad("has no header");
    chunk.remove_prefix(kChunkMagic.size());
    constexpr size_t kEntry = 1 + ObjectId::kBinarySize;
    if (chunk.size() % kEntry != 0) return bad("is cut short");
    for (size_t at = 0; at < chunk.size(); at += kEntry) {
      auto id = ObjectId::FromBinary(chunk.substr(at + 1, ObjectId::kBinarySize));
      if (!id.ok() || id->digest()[0] != prefix) return bad("holds an id of another prefix");
      if (chunk[at] == kMarkReachable) {
        reachable_.insert(*id);
      } else if (chunk[at] == kMarkLeased) {
        leased_.insert(*id);
      } else {
        return bad("holds an unknown tag");
      }
    }
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

  // Deletes one listed garbage object; true when it had become young (kept). Safe on any
  // thread: it touches only the store.
  Result<bool> DeleteOne(const ObjectInfo& listed, int64_t cutoff) {
    // A writer may have put the object again since it was listed (a deduplicated write,
    // spec/06 §6.3): look again just before deleting (§6.7 states the window left).
    auto now = store_.Head(listed.id);
    if (now.ok() && Young(*now, cutoff)) return true;
    if (!now.ok() && now.status().code() != StatusCode::kNotFound) return now.status();
    if (now.ok()) RETURN_IF_ERROR(store_.DeleteObject(listed.id));
    return false;
  }

  Store& store_;
  const GcOptions& options_;
  GcReport& report_;
  // The roots and the live leases, read once (leases taken during the run are added).
  std::vector<RefValue> roots_;
  std::vector<Lease> leases_;
  // The current pass's marked sets: ids in its share of the id space (spec/06 §6.8).
  std::unordered_set<ObjectId> reachable_;
  std::unordered_set<ObjectId> leased_;
  // Targets of refs kept alone (raw bytes, not walked), whatever their prefix.
  std::unordered_set<ObjectId> pinned_;
  // Objects the current pass's walks reported (held in memory until the pass ends).
  uint64_t held_ = 0;
  uint64_t leaves_held_ = 0;  // of which segments
  ObjectId last_leaf_;        // the segment the walk last asked to visit
  std::function<bool(const ObjectId&)> in_range_;
  LeafFilter leaf_filter_;
  std::vector<std::string> root_problems_;
  // Sharded GC: the chunks the mark stored so far, by prefix.
  std::map<uint32_t, ObjectId> chunks_;
  std::unordered_set<std::string> seen_leases_;
  // Pruned-history markers (spec/06 §6.10) and the versions whose parents are not walked.
  std::vector<RefValue> markers_;
  std::unordered_set<std::string> markers_seen_;
  std::unordered_set<ObjectId> pruned_;
  // Per-field retention (spec/06 §6.12): the rules (longest keep_since, ms) and markers
  // by (dataset, field), the walk's policy, each cut's index in the report, the segments
  // of the current pass's range only cut versions named (by cut), and the cut versions.
  std::map<std::pair<std::string, std::string>, int64_t> field_rules_;
  std::map<std::pair<std::string, std::string>, ObjectId> field_genesis_;
  std::map<std::pair<std::string, std::string>, std::vector<RefValue>> field_markers_;
  std::unordered_set<std::string> field_refs_seen_;
  FieldRetentionPolicy fields_;
  std::map<std::pair<std::string, std::string>, uint32_t> rule_index_;
  const std::pair<const std::pair<std::string, std::string>, uint32_t>* last_rule_ = nullptr;
  std::unordered_map<ObjectId, uint32_t> field_skipped_;
  std::vector<std::unordered_set<ObjectId>> cut_versions_;
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
  if (options.mark_memory_bytes == 0) return InvalidArgument("gc: the mark memory is zero");
  if (options.mark_only && options.shard_of != 0) {
    return InvalidArgument("gc: --mark-only and --shard are two steps of a sharded GC; give one");
  }
  if (options.mark_only && options.dry_run) {
    return InvalidArgument("gc: --mark-only stores a mark; it has no dry run");
  }
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

std::optional<FieldRetentionRef> ParseFieldRetentionRef(std::string_view name) {
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    const size_t slash = name.find('/');
    if ((slash == std::string_view::npos) != (i == 3)) return std::nullopt;
    parts[i] = name.substr(0, slash);
    name = i == 3 ? std::string_view() : name.substr(slash + 1);
  }
  FieldRetentionRef out;
  if (parts[1] == kPrunedFields) {
    out.marker = true;
  } else if (parts[1] != kRetention) {
    return std::nullopt;
  }
  if (!dataset::ValidateDatasetName(parts[0]).ok() || !ValidateFieldName(parts[2]).ok() ||
      !IsDecimal(parts[3])) {
    return std::nullopt;
  }
  out.dataset = std::string(parts[0]);
  out.field = std::string(parts[2]);
  out.value = std::stoll(std::string(parts[3]));
  return out;
}

Status ExplainReclaimedField(Store& store, std::string_view dataset, const ObjectId& manifest,
                             uint64_t time_ns, const std::vector<FieldSpec>& fields,
                             Status failure) {
  if (failure.code() != StatusCode::kNotFound) return failure;
  std::map<std::string, int64_t> cut;  // field read -> the newest marker it is older than
  Status listed = store.ListRefs(
      std::string(dataset) + "/" + std::string(kPrunedFields) + "/", [&](const RefValue& r) {
        auto f = ParseFieldRetentionRef(r.name);
        if (!f || !f->marker || f->dataset != dataset) return true;
        const bool read = std::any_of(fields.begin(), fields.end(),
                                      [&](const FieldSpec& s) { return s.name == f->field; });
        if (read && time_ns < static_cast<uint64_t>(f->value) * 1000000) {
          int64_t& c = cut[f->field];
          c = std::max(c, f->value);
        }
        return true;
      });
  if (!listed.ok() || cut.empty()) return failure;
  std::string names, when;
  for (const auto& [field, cutoff_ms] : cut) {
    names += (names.empty() ? "" : ", ") + Quote(field);
    when = UtcTime(cutoff_ms);
  }
  return NotFound("version " + manifest.ToString() + " of dataset " + Quote(dataset) +
                  " is retained without field" + (cut.size() == 1 ? " " : "s ") + names +
                  ": per-field retention reclaimed its values (versions made before " + when +
                  " keep them only where a branch, snapshot or lease targets the version; "
                  "read it without " +
                  (cut.size() == 1 ? "that field" : "those fields") + ") [" + failure.message() +
                  "]");
}

Status SetFieldRetention(Store& store, std::string_view dataset, std::string_view field,
                         int64_t keep_since_ms) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  if (keep_since_ms < 1000 || keep_since_ms % 1000 != 0) {
    return InvalidArgument("retention: keep-since must be a whole number of seconds, at least 1s");
  }
  auto head = store.ReadRef(dataset::BranchRef(dataset, "main"));
  if (head.status().code() == StatusCode::kNotFound) {
    return NotFound("dataset " + Quote(dataset) + " does not exist in " + store.uri());
  }
  RETURN_IF_ERROR(head.status());
  ASSIGN_OR_RETURN(Bytes bytes, store.Get(head->target));
  ASSIGN_OR_RETURN(dataset::Manifest m, dataset::DecodeManifest(bytes));
  if (m.schema.Find(field) == nullptr &&
      !std::binary_search(m.dropped.begin(), m.dropped.end(), std::string(field))) {
    return InvalidArgument("retention: dataset " + Quote(dataset) + " has no field " +
                           Quote(field));
  }
  const std::string name = FieldRuleName(dataset, field, keep_since_ms / 1000);
  Status s = store.CreateRef(name, m.genesis);
  if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
  // The earlier rules of the field go after the new one exists (a GC between applies the
  // longer window).
  ASSIGN_OR_RETURN(auto rules, ListFieldRetention(store, dataset));
  for (const FieldRetentionRule& r : rules) {
    if (r.field != field || r.ref == name) continue;
    auto old = store.ReadRef(r.ref);
    if (!old.ok()) continue;
    s = store.DeleteRef(r.ref, old->target);
    if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kConflict) return s;
  }
  return Status::Ok();
}

Status ClearFieldRetention(Store& store, std::string_view dataset, std::string_view field) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  std::vector<RefValue> rules;
  RETURN_IF_ERROR(store.ListRefs(
      std::string(dataset) + "/" + std::string(kRetention) + "/" + std::string(field) + "/",
      [&](const RefValue& r) {
        auto f = ParseFieldRetentionRef(r.name);
        if (f && !f->marker && f->field == field) rules.push_back(r);
        return true;
      }));
  if (rules.empty()) {
    return NotFound("retention: dataset " + Quote(dataset) + " has no rule for field " +
                    Quote(field));
  }
  for (const RefValue& r : rules) {
    Status s = store.DeleteRef(r.name, r.target);
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

Result<std::vector<FieldRetentionRule>> ListFieldRetention(Store& store, std::string_view dataset) {
  if (!dataset.empty()) RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  std::vector<FieldRetentionRule> out;
  RETURN_IF_ERROR(store.ListRefs(
      dataset.empty() ? std::string() : std::string(dataset) + "/", [&](const RefValue& r) {
        auto f = ParseFieldRetentionRef(r.name);
        if (f && !f->marker && (dataset.empty() || f->dataset == dataset)) {
          out.push_back({f->dataset, f->field, f->value * 1000, r.name});
        }
        return true;
      }));
  return out;
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

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("size " + Quote(text) +
                           " is not valid: use a positive whole number of bytes, optionally "
                           "with K, M or G (e.g. 512M, 2G)");
  };
  uint64_t unit = 1;
  std::string_view digits = text;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.remove_suffix(1);
  }
  if (!IsDecimal(digits) || digits.size() > 12) return bad();
  const uint64_t n = std::stoull(std::string(digits));
  if (n == 0) return bad();
  return n * unit;
}

}  // namespace dreamdb
