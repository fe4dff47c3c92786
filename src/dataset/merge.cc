// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Branch merges: Dataset::Merge and Dataset::MergeMany (spec/14-semantics.md §16).
//
// Design notes — merges
//
// Definitions. The *target* is the handle's branch; its head at an attempt is *ours* (the
// commit's base). A *source* is a manifest named by the caller. The *merge base* of a
// source is a best common ancestor of the source and the heads merged so far in this
// merge (ours, then the earlier sources of a MergeMany). A *side's changes* are the
// anchors whose index entries differ between the merge base and that side
// (btree::Diff), plus its schema and meta changes.
//
// Invariants.
//  1. A merge reads O(changes x height) index pages: the source's diff against its base,
//     and batched lookups of those anchors in the base, ours and the source. It never
//     scans a whole index; segments are read only to compare the values of a field that
//     both sides changed.
//  2. The merged index is ours plus the source's changes; an anchor only ours changed is
//     never touched. Each written entry is whole (Batch replace flag), so a field that
//     the chosen side lacks is absent in the merge.
//  3. count = the merged index's count; no anchor is both live and tombstoned; time_ns
//     exceeds every parent's; next_anchor = the largest of the parents'.
//  4. Under MergePolicy::kFail nothing is published when any conflict is found; index
//     pages written before the first conflict was seen are garbage (like a lost attempt).
//  5. Every attempt recomputes merge bases and changes from the attempt's base, so a
//     concurrent commit on the target is merged, never overwritten (DatasetImpl::Commit).
//
// States (per attempt, inside DatasetImpl::Commit's build):
//   Reduce sources -> none left: up to date (no swap)
//                  -> one, ours is its ancestor, !no_ff: fast-forward (swap to it)
//                  -> else: for each source: MergeBase -> MergeSchema -> MergeMeta ->
//                     MergeIndex; then the manifest (parents [ours, sources...]).
//
// Thread safety: everything here runs inside one Commit (the branch's commit mutex is
// held); the helpers are per-call objects.

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/base/encoding.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/vector_index.h"

namespace dreamdb {

using btree::Entry;
using btree::FieldLoc;
using dataset::Manifest;

namespace {

// Conflicts named in a kConflict message and in MergeReport.
constexpr size_t kMaxReportedConflicts = 10;
// Changed anchors looked up together in the base, ours and the source.
constexpr size_t kChunkAnchors = 4096;
// Pending index writes applied to the merged tree at once (bounds memory).
constexpr size_t kFlushAnchors = 65536;

bool SameType(const FieldSpec& a, const FieldSpec& b) {
  return a.type == b.type && a.dim == b.dim && a.dtype == b.dtype && a.shape == b.shape;
}

std::string TypeText(const FieldSpec& f) {
  std::string t(FieldTypeName(f.type));
  if (f.type == FieldType::kEmbedding) t += "[" + std::to_string(f.dim) + "]";
  if (f.type == FieldType::kArray) {
    t += "<" + std::string(DTypeName(f.dtype)) + ">[";
    for (size_t i = 0; i < f.shape.size(); ++i) t += (i ? "," : "") + std::to_string(f.shape[i]);
    t += "]";
  }
  return t;
}

// ---- Merge base (§16.2) ----

// The best common ancestors of (any of) `ours` and `theirs`: common ancestors that are
// not ancestors of another common ancestor, newest first (time_ns, then id). Walks the
// DAG newest first, painting manifests with the sides that reach them, and stops when
// only manifests below a common ancestor are left (time_ns grows along every parent
// edge, so newest-first is a topological order).
Result<std::vector<ObjectId>> BestCommonAncestors(const DatasetImpl& impl,
                                                  const std::vector<ObjectId>& ours,
                                                  const ObjectId& theirs) {
  constexpr uint8_t kOurs = 1, kTheirs = 2, kStale = 4, kResult = 8;
  std::unordered_map<ObjectId, uint8_t> flags;
  std::set<std::pair<uint64_t, ObjectId>> queue;
  std::unordered_map<ObjectId, uint64_t> times;
  auto enqueue = [&](const ObjectId& id, uint8_t f) -> Status {
    flags[id] |= f;
    auto t = times.find(id);
    if (t == times.end()) {
      ASSIGN_OR_RETURN(auto v, impl.LoadVersion(id));
      t = times.emplace(id, v->manifest.time_ns).first;
    }
    queue.emplace(t->second, id);
    return Status::Ok();
  };
  for (const ObjectId& o : ours) RETURN_IF_ERROR(enqueue(o, kOurs));
  RETURN_IF_ERROR(enqueue(theirs, kTheirs));
  std::vector<ObjectId> found;
  auto has_nonstale = [&] {
    return std::any_of(queue.begin(), queue.end(),
                       [&](const auto& q) { return (flags[q.second] & kStale) == 0; });
  };
  while (has_nonstale()) {
    auto it = std::prev(queue.end());
    const ObjectId id = it->second;
    queue.erase(it);
    uint8_t f = flags[id] & (kOurs | kTheirs | kStale);
    if (f == (kOurs | kTheirs)) {
      if ((flags[id] & kResult) == 0) {
        flags[id] |= kResult;
        found.push_back(id);
      }
      f |= kStale;  // everything below a common ancestor is a worse one
    }
    ASSIGN_OR_RETURN(auto v, impl.LoadVersion(id));
    for (const ObjectId& p : v->manifest.parents) {
      if ((flags[p] & f) == f) continue;
      RETURN_IF_ERROR(enqueue(p, f));
    }
  }
  // Drop candidates that are ancestors of other candidates (a criss-cross can find both).
  std::vector<ObjectId> best;
  for (const ObjectId& c : found) {
    bool redundant = false;
    for (const ObjectId& d : found) {
      if (d == c) continue;
      ASSIGN_OR_RETURN(bool anc, impl.IsAncestor(c, times[c], d));
      if (anc) {
        redundant = true;
        break;
      }
    }
    if (!redundant) best.push_back(c);
  }
  std::sort(best.begin(), best.end(), [&](const ObjectId& a, const ObjectId& b) {
    return std::make_pair(times[a], a) > std::make_pair(times[b], b);
  });
  return best;
}

// ---- Values (for fields both sides changed) ----

// The value of one field at one location as comparable bytes (nullopt = null or absent).
// Reads whole segments through the handle's segment cache.
class ValueReader {
 public:
  explicit ValueReader(const DatasetImpl& impl) : impl_(impl) {}

  Result<std::optional<std::string>> Get(const FieldSpec& spec, const FieldLoc* loc) {
    if (loc == nullptr) return std::optional<std::string>();
    std::shared_ptr<const Column> col = impl_.segments()->Get(loc->segment);
    if (col == nullptr) {
      ASSIGN_OR_RETURN(Bytes bytes, impl_.store().Get(loc->segment));
      impl_.CountFetch(bytes.size());
      auto decoded = columnar::DecodeSegment(bytes, spec);
      if (!decoded.ok()) {
        return decoded.status().WithContext("segment " + loc->segment.ToString() + " of field " +
                                            Quote(spec.name));
      }
      col = std::make_shared<const Column>(std::move(*decoded));
      impl_.segments()->Insert(loc->segment, col);
    }
    if (loc->row >= col->length()) {
      return Corrupt("segment " + loc->segment.ToString() + " has no row " +
                     std::to_string(loc->row));
    }
    if (!col->IsValid(loc->row)) return std::optional<std::string>();
    switch (spec.type) {
      case FieldType::kString:
      case FieldType::kCategorical:
      case FieldType::kBlob:
        return std::optional<std::string>(std::string(col->BytesAt(loc->row)));
      case FieldType::kBool:
        return std::optional<std::string>(col->BoolAt(loc->row) ? "\1" : std::string(1, '\0'));
      default:
        return std::optional<std::string>(std::string(col->FixedAt(loc->row)));
    }
  }

  // Equal values (locations first: equal locations are equal values).
  Result<bool> Equal(const FieldSpec& spec, const FieldLoc* a, const FieldLoc* b) {
    if (a == nullptr && b == nullptr) return true;
    if (a != nullptr && b != nullptr && *a == *b) return true;
    ASSIGN_OR_RETURN(auto va, Get(spec, a));
    ASSIGN_OR_RETURN(auto vb, Get(spec, b));
    return va == vb;
  }

 private:
  const DatasetImpl& impl_;
};

// ---- The merge state of one attempt ----

struct MergeState {
  // The merged version so far (starts as ours).
  Schema schema;
  std::vector<std::string> dropped;  // ascending
  std::map<std::string, std::string> meta;
  btree::IndexRef index;
  btree::IndexRef tombstones;
  uint64_t next_anchor = 0;
  uint64_t objects_written = 0;
  // Conflicts.
  uint64_t conflicts = 0;
  std::vector<std::string> descriptions;
};

class Merger {
 public:
  Merger(DatasetImpl& impl, MergePolicy policy, MergeState* state)
      : impl_(impl), policy_(policy), st_(*state), values_(impl) {}

  void AddConflict(const std::string& source, std::string what) {
    ++st_.conflicts;
    if (st_.descriptions.size() < kMaxReportedConflicts) {
      st_.descriptions.push_back("from " + Quote(source) + ": " + std::move(what));
    }
  }

  // Schema (§16.5). Type clashes and reused dropped names fail under every policy.
  Status MergeSchema(const std::string& source, const Manifest& base, const Manifest& theirs) {
    const Schema& sb = base.schema;
    const Schema& ss = theirs.schema;
    Schema merged = st_.schema;
    std::set<std::string> dropped(st_.dropped.begin(), st_.dropped.end());
    for (const FieldSpec& f : ss.fields()) {
      if (sb.Find(f.name) != nullptr) continue;  // not added by the source
      if (const FieldSpec* mine = merged.Find(f.name)) {
        if (!SameType(*mine, f)) {
          return Conflict("merge: field " + Quote(f.name) + " is " + TypeText(*mine) +
                          " on the target but " + TypeText(f) + " in " + Quote(source) +
                          " (added on both sides with different types; rename it on one "
                          "branch, no policy resolves this)");
        }
        continue;
      }
      if (dropped.count(f.name) != 0) {
        return Conflict("merge: field " + Quote(f.name) + " was added by " + Quote(source) +
                        " but its name was dropped on the target (dropped names are never "
                        "reused; rename it on the source)");
      }
      FieldSpec add = f;
      add.optional = true;
      ASSIGN_OR_RETURN(merged, merged.WithAddedField(add));
    }
    for (const FieldSpec& f : sb.fields()) {
      if (ss.Find(f.name) != nullptr) continue;  // not dropped by the source
      if (merged.Find(f.name) != nullptr) {
        ASSIGN_OR_RETURN(merged, merged.WithDroppedField(f.name));
      }
      dropped.insert(f.name);
    }
    for (const std::string& name : theirs.dropped) {
      if (merged.Find(name) != nullptr && sb.Find(name) == nullptr) {
        return Conflict("merge: field " + Quote(name) + " was added on the target but " +
                        Quote(source) +
                        " dropped a field of that name (dropped names are "
                        "never reused; rename it on the target)");
      }
      dropped.insert(name);
    }
    if (!(merged.fields() == st_.schema.fields())) {
      merged.set_version(std::max(st_.schema.version(), ss.version()) + 1);
      st_.schema = std::move(merged);
    }
    st_.dropped.assign(dropped.begin(), dropped.end());
    return Status::Ok();
  }

  // Meta (§16.7): three-way per key.
  void MergeMeta(const std::string& source, const Manifest& base, const Manifest& theirs) {
    std::set<std::string> keys;
    using Meta = std::map<std::string, std::string>;
    for (const Meta* m : std::initializer_list<const Meta*>{&base.meta, &st_.meta, &theirs.meta}) {
      for (const auto& kv : *m) keys.insert(kv.first);
    }
    auto get = [](const std::map<std::string, std::string>& m,
                  const std::string& k) -> std::optional<std::string> {
      auto it = m.find(k);
      if (it == m.end()) return std::nullopt;
      return it->second;
    };
    for (const std::string& k : keys) {
      auto b = get(base.meta, k), o = get(st_.meta, k), t = get(theirs.meta, k);
      if (t == b || o == t) continue;
      bool take = o == b;
      if (!take) {
        AddConflict(source, "meta key " + Quote(k) + " (changed on both sides)");
        take = policy_ == MergePolicy::kTheirs;
      }
      if (!take) continue;
      if (t) {
        st_.meta[k] = *t;
      } else {
        st_.meta.erase(k);
      }
    }
  }

  // Index (§16.4): applies the source's changes since `base` to the merged index.
  Status MergeIndex(const std::string& source, const Version& base, const Version& theirs) {
    ours_start_ = st_.index;
    source_ = &source;
    base_ = &base;
    theirs_ = &theirs;
    std::vector<uint64_t> chunk;
    Status inner;
    Status s = btree::Diff(impl_.store(), impl_.pages(), base.index, theirs.index,
                           [&](const btree::Change& c) {
                             chunk.push_back(c.anchor);
                             if (chunk.size() < kChunkAnchors) return true;
                             inner = ProcessChunk(chunk);
                             chunk.clear();
                             return inner.ok();
                           });
    RETURN_IF_ERROR(s);
    RETURN_IF_ERROR(inner);
    if (!chunk.empty()) RETURN_IF_ERROR(ProcessChunk(chunk));
    return Flush();
  }

 private:
  // Fields of `e` that the merged schema has (others are dropped: invisible).
  std::vector<std::pair<std::string, FieldLoc>> Visible(const Entry& e) const {
    std::vector<std::pair<std::string, FieldLoc>> out;
    for (const auto& f : e.fields) {
      if (st_.schema.Find(f.first) != nullptr) out.push_back(f);
    }
    return out;
  }

  // True when `a` and `b` hold equal values for every visible field.
  Result<bool> SameValues(const Entry& a, const Entry& b) {
    std::set<std::string> names;
    for (const auto& f : a.fields) names.insert(f.first);
    for (const auto& f : b.fields) names.insert(f.first);
    for (const std::string& n : names) {
      const FieldSpec* spec = st_.schema.Find(n);
      if (spec == nullptr) continue;
      ASSIGN_OR_RETURN(bool eq, values_.Equal(*spec, a.Find(n), b.Find(n)));
      if (!eq) return false;
    }
    return true;
  }

  // `was_live`: live in ours (so not tombstoned); otherwise the write may resurrect it.
  void Write(const Entry& e, bool was_live) {
    pending_.Add(e, /*replace_all=*/true);
    if (!was_live) tomb_check_.push_back(e.anchor);
  }
  void Delete(uint64_t anchor) { removals_.push_back(anchor); }

  Status ProcessChunk(const std::vector<uint64_t>& anchors) {
    btree::Tree tb(&impl_.store(), impl_.pages(), base_->index);
    btree::Tree to(&impl_.store(), impl_.pages(), ours_start_);
    btree::Tree ts(&impl_.store(), impl_.pages(), theirs_->index);
    ASSIGN_OR_RETURN(auto bs, tb.LookupMany(anchors));
    ASSIGN_OR_RETURN(auto os, to.LookupMany(anchors));
    ASSIGN_OR_RETURN(auto ss, ts.LookupMany(anchors));
    const std::string& src = *source_;
    const bool theirs_wins = policy_ == MergePolicy::kTheirs;
    for (size_t i = 0; i < anchors.size(); ++i) {
      const uint64_t a = anchors[i];
      const std::optional<Entry>& b = bs[i];
      const std::optional<Entry>& o = os[i];
      const std::optional<Entry>& s = ss[i];
      const std::string name = "anchor " + std::to_string(a);
      if (!s) {                  // the source deleted it (it was live in the base)
        if (!o || !b) continue;  // deleted on both sides
        ASSIGN_OR_RETURN(bool unchanged, SameValues(*o, *b));
        if (!unchanged) {
          AddConflict(src, name + " (deleted by the source, changed on the target)");
          if (!theirs_wins) continue;
        }
        Delete(a);
        continue;
      }
      if (!o) {
        if (b) {  // we deleted it; the source changed it
          ASSIGN_OR_RETURN(bool unchanged, SameValues(*s, *b));
          if (unchanged) continue;
          AddConflict(src, name + " (changed by the source, deleted on the target)");
          if (!theirs_wins) continue;
        }
        Entry e{a, Visible(*s)};
        if (!e.fields.empty()) Write(e, /*was_live=*/false);
        continue;
      }
      // Live on both sides: three-way per field.
      Entry merged{a, {}};
      bool changed = false;
      std::set<std::string> names;
      for (const Entry* e : std::initializer_list<const Entry*>{&*o, &*s}) {
        for (const auto& f : e->fields) names.insert(f.first);
      }
      if (b) {
        for (const auto& f : b->fields) names.insert(f.first);
      }
      for (const auto& f : o->fields) {
        if (st_.schema.Find(f.first) == nullptr) merged.fields.push_back(f);  // keep as is
      }
      for (const std::string& n : names) {
        const FieldSpec* spec = st_.schema.Find(n);
        if (spec == nullptr) continue;
        const FieldLoc* bl = b ? b->Find(n) : nullptr;
        const FieldLoc* ol = o->Find(n);
        const FieldLoc* sl = s->Find(n);
        auto eq = [](const FieldLoc* x, const FieldLoc* y) {
          return (x == nullptr && y == nullptr) || (x != nullptr && y != nullptr && *x == *y);
        };
        bool take_theirs = false;
        if (eq(sl, bl) || eq(ol, sl)) {
          take_theirs = false;
        } else if (eq(ol, bl)) {
          take_theirs = true;
        } else {
          // Locations differ on all three: compare values.
          ASSIGN_OR_RETURN(bool os_eq, values_.Equal(*spec, ol, sl));
          ASSIGN_OR_RETURN(bool ob_eq, values_.Equal(*spec, ol, bl));
          ASSIGN_OR_RETURN(bool sb_eq, values_.Equal(*spec, sl, bl));
          if (os_eq || sb_eq) {
            take_theirs = false;
          } else if (ob_eq) {
            take_theirs = true;
          } else {
            AddConflict(src, name + " field " + Quote(n) +
                                 (b ? " (changed on both sides)"
                                    : " (added on both sides with different values)"));
            take_theirs = theirs_wins;
          }
        }
        const FieldLoc* pick = take_theirs ? sl : ol;
        if (take_theirs && !eq(sl, ol)) changed = true;
        if (pick != nullptr) merged.fields.emplace_back(n, *pick);
      }
      if (!changed) continue;
      std::sort(merged.fields.begin(), merged.fields.end(),
                [](const auto& x, const auto& y) { return cbor::KeyLess(x.first, y.first); });
      Write(merged, /*was_live=*/true);  // still live, even with no values left
    }
    if (pending_.size() + removals_.size() >= kFlushAnchors) return Flush();
    return Status::Ok();
  }

  // Applies pending writes (skipped once a conflict fails the merge: invariant 4).
  Status Flush() {
    if (st_.conflicts > 0 && policy_ == MergePolicy::kFail) {
      pending_ = btree::Batch();
      removals_.clear();
      tomb_check_.clear();
      return Status::Ok();
    }
    btree::WriteStats ws;
    Store& store = impl_.store();
    if (pending_.size() > 0) {
      ASSIGN_OR_RETURN(st_.index, btree::Upsert(store, impl_.pages(), st_.index, pending_, &ws));
    }
    if (!tomb_check_.empty()) {
      // Records the merge makes live again: none may stay tombstoned.
      uint64_t removed = 0;
      ASSIGN_OR_RETURN(st_.tombstones, btree::RemoveAnchors(store, impl_.pages(), st_.tombstones,
                                                            tomb_check_, &removed, &ws));
    }
    if (!removals_.empty()) {
      uint64_t removed = 0;
      ASSIGN_OR_RETURN(st_.index,
                       btree::Remove(store, impl_.pages(), st_.index, removals_, &removed, &ws));
      ASSIGN_OR_RETURN(st_.tombstones,
                       btree::InsertAnchors(store, impl_.pages(), st_.tombstones, removals_, &ws));
    }
    st_.objects_written += ws.pages_written;
    pending_ = btree::Batch();
    removals_.clear();
    tomb_check_.clear();
    return Status::Ok();
  }

  DatasetImpl& impl_;
  const MergePolicy policy_;
  MergeState& st_;
  ValueReader values_;
  // Per source:
  btree::IndexRef ours_start_;
  const std::string* source_ = nullptr;
  const Version* base_ = nullptr;
  const Version* theirs_ = nullptr;
  btree::Batch pending_;
  std::vector<uint64_t> removals_;    // ascending
  std::vector<uint64_t> tomb_check_;  // anchors written, ascending
};

MergeState StateOf(const Version& v) {
  MergeState st;
  st.schema = v.manifest.schema;
  st.dropped = v.manifest.dropped;
  st.meta = v.manifest.meta;
  st.index = v.index;
  st.tombstones = v.tombstones;
  st.next_anchor = v.manifest.next_anchor;
  return st;
}

// The version a source is compared with (§16.2): its best common ancestor with `heads`,
// or, when there are several (a criss-cross), their merge: a virtual base that is not
// stored as a manifest (its index pages are; no manifest reaches them). Conflicts between
// the ancestors resolve to the newest one; they surface again in the real merge only
// where the two sides still differ.
Result<std::shared_ptr<const Version>> BaseVersion(DatasetImpl& impl,
                                                   const std::vector<ObjectId>& heads,
                                                   const ObjectId& theirs,
                                                   std::vector<ObjectId>* bases_out,
                                                   uint64_t* objects_written, int depth = 0) {
  ASSIGN_OR_RETURN(std::vector<ObjectId> bases, BestCommonAncestors(impl, heads, theirs));
  if (bases.empty()) return Internal("merge: the versions have no common ancestor");
  if (bases_out != nullptr) *bases_out = bases;
  ASSIGN_OR_RETURN(auto first, impl.LoadVersion(bases[0]));
  if (bases.size() == 1) return first;
  if (depth > 32) return Internal("merge: criss-cross merge bases nest too deeply");
  MergeState st = StateOf(*first);
  Merger merger(impl, MergePolicy::kOurs, &st);
  std::vector<ObjectId> merged{bases[0]};
  for (size_t i = 1; i < bases.size(); ++i) {
    ASSIGN_OR_RETURN(auto other, impl.LoadVersion(bases[i]));
    ASSIGN_OR_RETURN(auto base,
                     BaseVersion(impl, merged, bases[i], nullptr, objects_written, depth + 1));
    const std::string label = "merge base " + bases[i].ToString();
    RETURN_IF_ERROR(merger.MergeSchema(label, base->manifest, other->manifest));
    merger.MergeMeta(label, base->manifest, other->manifest);
    RETURN_IF_ERROR(merger.MergeIndex(label, *base, *other));
    merged.push_back(bases[i]);
  }
  *objects_written += st.objects_written;
  auto v = std::make_shared<Version>();
  v->id = ObjectId();  // virtual: no manifest
  v->manifest = first->manifest;
  v->manifest.schema = st.schema;
  v->manifest.dropped = st.dropped;
  v->manifest.meta = st.meta;
  v->index = st.index;
  v->tombstones = st.tombstones;
  return std::shared_ptr<const Version>(std::move(v));
}

std::string PolicyHint(MergePolicy p) {
  return p == MergePolicy::kFail ? "; merge with policy ours or theirs to resolve them" : "";
}

}  // namespace

// ---------------------------------------------------------------------------------------

Result<CommitInfo> Dataset::MergeMany(const std::vector<std::string>& sources,
                                      const MergeOptions& options, MergeReport* report) {
  if (read_only()) {
    return PermissionDenied("dataset " + Quote(name()) +
                            " is open read-only (at a snapshot or manifest); open a branch to "
                            "merge into it");
  }
  if (sources.empty()) return InvalidArgument("merge: no sources given");
  // Resolve every source once, as OpenAt does (§16.1); a source branch that moves during
  // the merge is merged as it was here.
  const ObjectId genesis = impl_->current()->manifest.genesis;
  std::vector<ObjectId> ids;
  std::vector<std::string> labels;
  for (const std::string& src : sources) {
    if (src.empty()) return InvalidArgument("merge: empty source name");
    auto at = Dataset::OpenAt(impl_->store_, name(), src);
    if (!at.ok()) return at.status().WithContext("merge source " + Quote(src));
    ObjectId id = (*at)->head();
    ASSIGN_OR_RETURN(auto v, impl_->LoadVersion(id));
    if (v->manifest.genesis != genesis) {
      return InvalidArgument("merge source " + Quote(src) + " (manifest " + id.ToString() +
                             ") belongs to another dataset named " + Quote(name()));
    }
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;  // named twice
    ids.push_back(id);
    labels.push_back(src);
  }
  MergeReport last;
  CommitOptions copts;
  copts.writer = options.writer;
  copts.message = options.message;
  if (copts.message.empty()) {
    std::string list;
    for (size_t i = 0; i < labels.size(); ++i) list += (i ? ", " : "") + labels[i];
    copts.message = "merge " + list + " into " + branch();
  }
  auto result = impl_->Commit(
      [&](const Version& ours, uint32_t) -> Result<DatasetImpl::Built> {
        last = MergeReport();
        last.sources = ids;
        DatasetImpl::Built out;
        // Reduce: drop sources already in ours or in another source (§16.3).
        std::vector<size_t> keep;
        for (size_t i = 0; i < ids.size(); ++i) {
          ASSIGN_OR_RETURN(auto v, impl_->LoadVersion(ids[i]));
          ASSIGN_OR_RETURN(bool merged, impl_->IsAncestor(ids[i], v->manifest.time_ns, ours.id));
          for (size_t j = 0; j < ids.size() && !merged; ++j) {
            if (j == i) continue;
            ASSIGN_OR_RETURN(merged, impl_->IsAncestor(ids[i], v->manifest.time_ns, ids[j]));
          }
          if (!merged) keep.push_back(i);
        }
        if (keep.empty()) {
          last.up_to_date = true;
          out.fast_forward = ours.id;
          return out;
        }
        if (keep.size() == 1 && !options.no_ff) {
          ASSIGN_OR_RETURN(bool behind,
                           impl_->IsAncestor(ours.id, ours.manifest.time_ns, ids[keep[0]]));
          if (behind) {
            last.fast_forward = true;
            last.merge_bases = {{ours.id}};
            out.fast_forward = ids[keep[0]];
            return out;
          }
        }
        MergeState st = StateOf(ours);
        Merger merger(*impl_, options.policy, &st);
        std::vector<ObjectId> heads{ours.id};
        uint64_t min_time = ours.manifest.time_ns + 1;
        for (size_t k : keep) {
          ASSIGN_OR_RETURN(auto theirs, impl_->LoadVersion(ids[k]));
          std::vector<ObjectId> bases;
          ASSIGN_OR_RETURN(auto base,
                           BaseVersion(*impl_, heads, ids[k], &bases, &st.objects_written));
          last.merge_bases.push_back(bases);
          RETURN_IF_ERROR(merger.MergeSchema(labels[k], base->manifest, theirs->manifest));
          merger.MergeMeta(labels[k], base->manifest, theirs->manifest);
          RETURN_IF_ERROR(merger.MergeIndex(labels[k], *base, *theirs));
          st.next_anchor = std::max(st.next_anchor, theirs->manifest.next_anchor);
          min_time = std::max(min_time, theirs->manifest.time_ns + 1);
          heads.push_back(ids[k]);
          out.extra_parents.push_back(ids[k]);
        }
        last.conflicts = st.conflicts;
        last.conflict_descriptions = st.descriptions;
        if (st.conflicts > 0 && options.policy == MergePolicy::kFail) {
          std::string msg = "merge into branch " + Quote(branch()) + " of dataset " +
                            Quote(name()) + ": " + std::to_string(st.conflicts) + " conflict" +
                            (st.conflicts == 1 ? "" : "s") + ": ";
          for (size_t i = 0; i < st.descriptions.size(); ++i) {
            msg += (i ? "; " : "") + st.descriptions[i];
          }
          if (st.conflicts > st.descriptions.size()) {
            msg += "; and " + std::to_string(st.conflicts - st.descriptions.size()) + " more";
          }
          return Conflict(msg + PolicyHint(options.policy));
        }
        Manifest m = ours.manifest;  // keeps what a merge does not define (e.g. indexes)
        m.schema = st.schema;
        m.dropped = st.dropped;
        m.meta = st.meta;
        m.index = btree::IndexRefToCbor(st.index);
        m.tombstones = btree::IndexRefToCbor(st.tombstones);
        m.count = st.index.count;
        m.next_anchor = st.next_anchor;
        // The delta against the first parent (§16.8): a diff of ours and the merge.
        m.delta = {};
        std::set<std::string> fields;
        // Per indexed field: the anchors whose value the merge adds or replaces.
        std::map<std::string, std::vector<uint64_t>> changed;
        for (const auto& [f, id] : m.indexes) changed[f];
        RETURN_IF_ERROR(btree::Diff(impl_->store(), impl_->pages(), ours.index, st.index,
                                    [&](const btree::Change& c) {
                                      if (c.kind == btree::ChangeKind::kAdded) {
                                        ++m.delta.added;
                                      } else if (c.kind == btree::ChangeKind::kRemoved) {
                                        ++m.delta.deleted;
                                        return true;
                                      } else {
                                        ++m.delta.replaced;
                                      }
                                      fields.insert(c.fields.begin(), c.fields.end());
                                      for (const std::string& f : c.fields) {
                                        auto it = changed.find(f);
                                        if (it != changed.end()) it->second.push_back(c.anchor);
                                      }
                                      return true;
                                    }));
        for (const FieldSpec& f : st.schema.fields()) {
          if (ours.manifest.schema.Find(f.name) == nullptr) fields.insert(f.name);
        }
        m.delta.fields.assign(fields.begin(), fields.end());
        // Spatial indexes (§16.8): an index of a field the merged schema no longer has as
        // an embedding is left out (reported); the vectors the merge adds or replaces are
        // assigned to the cells of ours as an append's are, so searches see them.
        for (auto it = m.indexes.begin(); it != m.indexes.end();) {
          const FieldSpec* f = st.schema.Find(it->first);
          if (f == nullptr || f->type != FieldType::kEmbedding) {
            last.indexes_dropped.push_back(it->first);
            it = m.indexes.erase(it);
          } else {
            it = std::next(it);
          }
        }
        RETURN_IF_ERROR(vindex::IndexMerged(*impl_, st.index, changed, &m, &st.objects_written,
                                            &last.indexes_updated));
        out.manifest = std::move(m);
        out.min_time_ns = min_time;
        out.objects_written = st.objects_written;
        return out;
      },
      copts);
  if (report != nullptr) *report = last;
  if (result.ok() && last.up_to_date) result->attempts = 0;
  return result;
}

Result<CommitInfo> Dataset::Merge(std::string_view source, const MergeOptions& options,
                                  MergeReport* report) {
  return MergeMany({std::string(source)}, options, report);
}

Result<MergePolicy> ParseMergePolicy(std::string_view name) {
  if (name == "fail") return MergePolicy::kFail;
  if (name == "ours") return MergePolicy::kOurs;
  if (name == "theirs") return MergePolicy::kTheirs;
  return InvalidArgument("policy must be fail, ours or theirs, not " + Quote(name));
}

}  // namespace dreamdb
