// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// `verify`: every object reachable from every ref is present and intact (spec/14 §6).
#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/btree/page.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/reach.h"
#include "src/dataset/vector_index.h"

namespace dreamdb {
namespace {

class Verifier {
 public:
  // What decoding a segment as one shape of declaration found (the shape, not the whole
  // FieldSpec, is kept: verify holds one of these per distinct segment).
  struct SegmentFacts {
    FieldType type = FieldType::kInt64;
    uint32_t dim = 0;
    DType dtype = DType::kF32;
    std::vector<uint32_t> shape;
    bool intact = false;
    uint64_t rows = 0;
    // Whether a segment decoded as this shape decodes the same as `spec` (spec/12 §5.2
    // compares the type and its parameters, not the name or the declared index).
    bool SameShape(const FieldSpec& spec) const {
      return type == spec.type && dim == spec.dim && dtype == spec.dtype && shape == spec.shape;
    }
  };

  Verifier(Store& store, const std::function<void(uint64_t)>& progress,
           const ReachedVisitor* reached = nullptr,
           const std::unordered_set<ObjectId>* pruned = nullptr, VerifyShard shard = {},
           const LeafFilter* leaves = nullptr, const FieldRetentionPolicy* fields = nullptr)
      : store_(store),
        progress_(progress),
        reached_(reached),
        pruned_(pruned),
        shard_(shard),
        leaves_(leaves),
        fields_(fields) {}

  // Whether this shard checks segment `id` (spec/14 §12.6); counts the others once.
  bool Mine(const ObjectId& id) {
    if (shard_.of <= 1) return true;
    const auto& d = id.digest();
    const uint64_t x =
        (uint64_t{d[0]} << 24) | (uint64_t{d[1]} << 16) | (uint64_t{d[2]} << 8) | d[3];
    if (((x * shard_.of) >> 32) == shard_.shard) return true;
    if (skipped_.insert(id).second) ++report_.segments_skipped;
    return false;
  }

  // Whether segment `id` is walked (fetched, checked, reported): in GC's pass (a filter) and
  // in this verify shard.
  bool WalkLeaf(const ObjectId& id) { return (leaves_ == nullptr || (*leaves_)(id)) && Mine(id); }

  // Fetches (and so hash-verifies) an object once. False if missing or corrupt.
  bool Check(const ObjectId& id, const std::string& what, Bytes* out = nullptr) {
    if (!seen_.insert(id).second && out == nullptr) return true;
    auto bytes = store_.Get(id);
    if (!bytes.ok()) {
      report_.problems.push_back(what + " " + id.ToString() + ": " + bytes.status().ToString());
      return false;
    }
    Count(id, bytes->size());
    if (out != nullptr) *out = std::move(*bytes);
    return true;
  }

  void Count(const ObjectId& id, uint64_t size) {
    if (counted_.insert(id).second) {
      ++report_.objects;
      report_.bytes += size;
      if (reached_ != nullptr) (*reached_)(id, size);
    }
    if (progress_ && report_.objects % 1000 == 0) progress_(report_.objects);
  }

  // A segment of a field the version being walked was cut from (spec/06 §6.12). GC does
  // not reach it through this version; verify checks it, and a missing one is the field's
  // reclaimed value, not a problem.
  void CutSegment(const ObjectId& id, const std::string& field) {
    if (fields_->skip) {
      if (fields_->skipped) fields_->skipped(id, current_dataset_, field);
      return;
    }
    if (!WalkLeaf(id) || !seen_.insert(id).second) return;
    auto bytes = store_.Get(id);
    if (bytes.status().code() == StatusCode::kNotFound) {
      if (retained_seen_.insert(current_manifest_.ToString() + "/" + field).second) {
        report_.retained_without.push_back({current_manifest_, field});
      }
      return;
    }
    if (!bytes.ok()) {
      Problem("segment of field '" + field + "' " + id.ToString() + ": " +
              bytes.status().ToString());
      return;
    }
    Count(id, bytes->size());
  }

  // The fields version `id` of `dataset` is walked without (sorted; empty: walked whole).
  std::vector<std::string> CutFields(const dataset::Manifest& m, const ObjectId& id,
                                     const std::string& dataset) const {
    std::vector<std::string> out;
    if (fields_ == nullptr || fields_->whole.count(id) != 0) return out;
    auto it = fields_->cuts.find(dataset);
    if (it == fields_->cuts.end()) return out;
    for (const FieldCut& c : it->second) {
      if (m.time_ns < c.cutoff_ns) out.push_back(c.field);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  void Problem(std::string p) { report_.problems.push_back(std::move(p)); }

  // The index of manifest `m` (spec/14 §12.3 step 3): every page read and checked against
  // its parent, and every leaf entry's location checked against the segment it names: the
  // segment is present, intact, decodes as the field's declaration, and has the row.
  // Pages already checked through an earlier manifest are skipped with everything under
  // them, so verify reads each page and segment once however long the history.
  void Index(const btree::IndexRef& ref, const std::string& what, const dataset::Manifest& m) {
    btree::PageVisitor pages = PageVisitor(what);
    // Leaves name every field of the version: look each up once per manifest, not by a
    // scan of the schema per leaf field.
    FieldsByName fields;
    for (const FieldSpec& f : m.schema.fields()) fields.emplace(f.name, &f);
    Status s = btree::VisitLeaves(
        store_, &page_cache_, ref,
        [&](const btree::Leaf& leaf) -> Status {
          Leaf(leaf, what, m, fields);
          return Status::Ok();
        },
        &pages);
    if (!s.ok()) Problem(what + ": " + s.ToString());
  }

  // The tombstone set (step 4): every page read and checked like the index's; its leaves
  // name no fields (spec/11 §6.1).
  void Tombstones(const btree::IndexRef& ref, const std::string& what) {
    btree::PageVisitor pages = PageVisitor(what);
    Status s = btree::VisitLeaves(
        store_, &page_cache_, ref,
        [&](const btree::Leaf& leaf) -> Status {
          if (!leaf.fields.empty()) {
            Problem(what + ": the leaf starting at anchor " + std::to_string(leaf.anchors[0]) +
                    " names field " + Quote(leaf.fields[0].name) + " (tombstone leaves have none)");
          }
          return Status::Ok();
        },
        &pages);
    if (!s.ok()) Problem(what + ": " + s.ToString());
  }

  btree::PageVisitor PageVisitor(const std::string& what) {
    return [this, what](const ObjectId& page, uint32_t) -> Result<bool> {
      // A page walked whole covers every cut walk of it; a cut walk covers only walks
      // with the same cut.
      if (cut_ == nullptr
              ? !seen_pages_.insert(page).second
              : seen_pages_.count(page) != 0 || !seen_cut_pages_[cut_key_].insert(page).second) {
        return false;
      }
      // Fetched, hash-checked and decoded once: the walk below takes the decoded page
      // from page_cache_ instead of reading it again (a page it cannot decode is not
      // cached, so the walk reads it and reports why).
      Bytes bytes;
      if (Check(page, what + " page", &bytes)) {
        auto decoded = btree::DecodePage(bytes, "btree page " + page.ToString());
        if (decoded.ok()) {
          page_cache_.Insert(page, std::make_shared<const btree::Page>(std::move(*decoded)));
        }
      }
      return true;
    };
  }

  using FieldsByName = std::unordered_map<std::string_view, const FieldSpec*>;

  // A segment of a leaf whose facts are not known yet: fetched and decoded together with
  // the leaf's others (Resolve), then checked in leaf order.
  struct Pending {
    const btree::LeafField* field;
    const FieldSpec* spec;
    size_t j;
    uint32_t max_row;
    size_t at;
  };

  void Leaf(const btree::Leaf& leaf, const std::string& what, const dataset::Manifest& m,
            const FieldsByName& fields) {
    std::vector<Pending> pending;
    for (const btree::LeafField& f : leaf.fields) {
      if (cut_ != nullptr && std::binary_search(cut_->begin(), cut_->end(), f.name)) {
        for (const ObjectId& seg : f.segments) CutSegment(seg, f.name);
        continue;
      }
      auto found = fields.find(f.name);
      const FieldSpec* spec = found == fields.end() ? nullptr : found->second;
      if (spec == nullptr) {
        if (!std::binary_search(m.dropped.begin(), m.dropped.end(), f.name)) {
          Problem(what + ": the leaf starting at anchor " + std::to_string(leaf.anchors[0]) +
                  " holds field " + Quote(f.name) + ", which is neither in the schema nor dropped");
        }
        // A dropped field's segments stay reachable (spec/14 §5): present and intact.
        for (const ObjectId& seg : f.segments) {
          if (WalkLeaf(seg)) Check(seg, "segment of field '" + f.name + "'");
        }
        continue;
      }
      // The largest row each segment is asked for, and the first anchor asking for it.
      std::vector<uint32_t> max_row(f.segments.size(), 0);
      std::vector<size_t> at(f.segments.size(), SIZE_MAX);
      for (size_t i = 0; i < leaf.size(); ++i) {
        const uint32_t j = f.seg[i];
        if (j == btree::kNoSegment) continue;
        if (at[j] == SIZE_MAX || f.row[i] > max_row[j]) {
          max_row[j] = f.row[i];
          at[j] = i;
        }
      }
      // Shared work across versions: a copy-on-write leaf keeps its field's segment list
      // and appends to it, so the leaf of the version before (walked next) names a prefix
      // of this list. The segments of the longest prefix this field's last leaf checked,
      // asked for no higher row than then, were checked: they are skipped without a lookup.
      FieldMemo& memo = memo_[f.name];
      size_t j0 = 0;
      if (memo.shape.SameShape(*spec)) {
        const size_t n = std::min(f.segments.size(), memo.segments.size());
        while (j0 < n && f.segments[j0] == memo.segments[j0] &&
               (at[j0] == SIZE_MAX || max_row[j0] <= memo.max_row[j0])) {
          ++j0;
        }
      }
      for (size_t j = j0; j < f.segments.size(); ++j) {
        if (!WalkLeaf(f.segments[j])) continue;
        if (const SegmentFacts* known = Known(f.segments[j], *spec)) {
          RowCheck(leaf, what, f, j, known, max_row[j], at[j]);
        } else {
          pending.push_back({&f, spec, j, max_row[j], at[j]});
        }
      }
      if (j0 < f.segments.size()) {
        memo.shape = SegmentFacts{spec->type, spec->dim, spec->dtype, spec->shape, true, 0};
        memo.segments = f.segments;
        memo.max_row = std::move(max_row);
      }
    }
    Resolve(leaf, what, pending);
  }

  void RowCheck(const btree::Leaf& leaf, const std::string& what, const btree::LeafField& f,
                size_t j, const SegmentFacts* facts, uint32_t max_row, size_t at) {
    if (!facts->intact || at == SIZE_MAX || max_row < facts->rows) return;
    Problem(what + ": the entry for anchor " + std::to_string(leaf.anchors[at]) +
            " points at row " + std::to_string(max_row) + " of segment " +
            f.segments[j].ToString() + " (field '" + f.name + "'), which has " +
            std::to_string(facts->rows) + " rows");
  }

  // The facts of segment `id` decoded as `spec`'s shape, when known.
  const SegmentFacts* Known(const ObjectId& id, const FieldSpec& spec) {
    auto it = segments_.find(id);
    if (it == segments_.end()) return nullptr;
    for (const SegmentFacts& f : it->second) {
      if (f.SameShape(spec)) return &f;
    }
    return nullptr;
  }

  // The pending segments of one leaf: fetched (hash-checked) and decoded on the I/O pool,
  // up to kParallelSegments at once (each worker holds one segment's bytes), then checked
  // in leaf order exactly as SegmentRows would.
  static constexpr size_t kParallelSegments = 4;
  struct Fetched {
    Status status;
    uint64_t size = 0;
    Status decoded;
    uint64_t rows = 0;
  };
  void Resolve(const btree::Leaf& leaf, const std::string& what,
               const std::vector<Pending>& pending) {
    if (pending.empty()) return;
    std::vector<Fetched> fetched(pending.size());
    if (pending.size() > 1) {
      IoPool::ParallelFor(
          pending.size(),
          [&](size_t i) {
            const Pending& p = pending[i];
            auto bytes = store_.Get(p.field->segments[p.j]);
            fetched[i].status = bytes.status();
            if (!bytes.ok()) return;
            fetched[i].size = bytes->size();
            auto col = columnar::DecodeSegment(*bytes, *p.spec);
            fetched[i].decoded = col.status();
            if (col.ok()) fetched[i].rows = col->length();
          },
          kParallelSegments);
    }
    for (size_t i = 0; i < pending.size(); ++i) {
      const Pending& p = pending[i];
      const ObjectId& id = p.field->segments[p.j];
      // Asked again now, as the one-at-a-time walk would (GC's budget may have run out).
      if (!WalkLeaf(id)) continue;
      const SegmentFacts* facts = Known(id, *p.spec);
      if (facts == nullptr) {
        facts = pending.size() > 1 ? Record(id, *p.spec, fetched[i]) : FactsOf(id, *p.spec);
      }
      RowCheck(leaf, what, *p.field, p.j, facts, p.max_row, p.at);
    }
  }

  // What fetching and decoding `id` as `spec` found, recorded as SegmentRows records it.
  const SegmentFacts* Record(const ObjectId& id, const FieldSpec& spec, const Fetched& got) {
    seen_.insert(id);
    SegmentFacts facts{spec.type, spec.dim, spec.dtype, spec.shape, false, 0};
    if (!got.status.ok()) {
      Problem("segment of field '" + spec.name + "' " + id.ToString() + ": " +
              got.status.ToString());
    } else {
      Count(id, got.size);
      if (got.decoded.ok()) {
        facts.intact = true;
        facts.rows = got.rows;
      } else {
        Problem("segment " + id.ToString() + " (field '" + spec.name +
                "'): " + got.decoded.ToString());
      }
    }
    std::vector<SegmentFacts>& all = segments_[id];
    all.push_back(std::move(facts));
    return &all.back();
  }

  const SegmentFacts* FactsOf(const ObjectId& id, const FieldSpec& spec) {
    SegmentRows(id, spec);
    return Known(id, spec);
  }

  // The rows of segment `id` decoded as `spec`: fetched whole and decoded the first time
  // it is named with a declaration of that shape; nullopt (reported once) when missing,
  // damaged or not of that shape.
  std::optional<uint64_t> SegmentRows(const ObjectId& id, const FieldSpec& spec) {
    if (!Mine(id)) return std::nullopt;  // another shard's
    std::vector<SegmentFacts>& all = segments_[id];
    for (const SegmentFacts& f : all) {
      if (f.SameShape(spec)) {
        return f.intact ? std::optional<uint64_t>(f.rows) : std::nullopt;
      }
    }
    SegmentFacts facts{spec.type, spec.dim, spec.dtype, spec.shape, false, 0};
    Bytes bytes;
    if (Check(id, "segment of field '" + spec.name + "'", &bytes)) {
      auto col = columnar::DecodeSegment(bytes, spec);
      if (col.ok()) {
        facts.intact = true;
        facts.rows = col->length();
      } else {
        Problem("segment " + id.ToString() + " (field '" + spec.name +
                "'): " + col.status().ToString());
      }
    }
    all.push_back(facts);
    return facts.intact ? std::optional<uint64_t>(facts.rows) : std::nullopt;
  }

  void Manifests(const ObjectId& head, const std::string& ref) {
    std::vector<ObjectId> stack{head};
    while (!stack.empty()) {
      ObjectId id = stack.back();
      stack.pop_back();
      if (seen_manifests_.count(id)) continue;
      seen_manifests_.insert(id);
      Bytes bytes;
      if (!Check(id, "manifest (from ref '" + ref + "')", &bytes)) continue;
      auto m = dataset::DecodeManifest(bytes);
      if (!m.ok()) {
        Problem("manifest " + id.ToString() + ": " + m.status().ToString());
        continue;
      }
      if (genesis_seen_.insert(m->genesis).second) {
        Bytes g;
        if (Check(m->genesis, "genesis of manifest " + id.ToString(), &g)) {
          auto gen = dataset::DecodeGenesis(g);
          if (!gen.ok()) {
            Problem("genesis " + m->genesis.ToString() + ": " + gen.status().ToString());
          } else {
            genesis_name_[m->genesis] = gen->name;
          }
        }
      }
      auto gname = genesis_name_.find(m->genesis);
      if (gname != genesis_name_.end() && ref.substr(0, ref.find('/')) != gname->second) {
        Problem("manifest " + id.ToString() + " (from ref '" + ref + "') belongs to dataset '" +
                gname->second + "'");
      }
      FieldShapes(*m, id);
      const std::string dataset = gname != genesis_name_.end() ? gname->second : std::string();
      const std::vector<std::string> cut = CutFields(*m, id, dataset);
      if (cut.empty()) {
        Content(*m, id);
      } else {
        // Walked after every whole version (FinishCut), so what a whole version shares
        // with it is reached whole first.
        deferred_.push_back(id);
        if (fields_->cut) {
          for (const std::string& f : cut) fields_->cut(id, dataset, f);
        }
      }
      if (pruned_ != nullptr && pruned_->count(id) != 0) continue;  // history pruned (§6.10)
      for (const auto& p : m->parents) stack.push_back(p);
    }
  }

  // The versions cut by per-field retention, each walked without its cut fields. Called
  // once, after every root's Manifests.
  void FinishCut() {
    for (const ObjectId& id : deferred_) {
      auto bytes = store_.Get(id);
      auto m =
          bytes.ok() ? dataset::DecodeManifest(*bytes) : Result<dataset::Manifest>(bytes.status());
      if (!m.ok()) {
        Problem("manifest " + id.ToString() + ": " + m.status().ToString());
        continue;
      }
      auto gname = genesis_name_.find(m->genesis);
      current_dataset_ = gname != genesis_name_.end() ? gname->second : std::string();
      current_manifest_ = id;
      const std::vector<std::string> cut = CutFields(*m, id, current_dataset_);
      cut_ = &cut;
      cut_key_.clear();
      for (const std::string& f : cut) cut_key_ += current_dataset_ + "/" + f + "\n";
      Content(*m, id);
      cut_ = nullptr;
    }
    deferred_.clear();
  }

  // A version's index, tombstones and spatial indexes (the spatial index of a cut field
  // is not walked: its buckets hold the field's values).
  void Content(const dataset::Manifest& m, const ObjectId& id) {
    auto index = btree::IndexRefFromCbor(m.index, "manifest " + id.ToString() + " index");
    if (index.ok() && index->count != m.count) {
      Problem("manifest " + id.ToString() + " says count " + std::to_string(m.count) +
              " but its index holds " + std::to_string(index->count) + " entries");
    }
    if (index.ok()) {
      Index(*index, "index of manifest " + id.ToString(), m);
    } else {
      Problem(index.status().ToString());
    }
    auto tombs = btree::IndexRefFromCbor(m.tombstones, "manifest " + id.ToString());
    if (tombs.ok()) {
      Tombstones(*tombs, "tombstones of manifest " + id.ToString());
    } else {
      Problem(tombs.status().ToString());
    }
    if (m.indexes.empty() || shard_.shard != 0) return;
    if (cut_ == nullptr) {
      SpatialIndexes(m);
      return;
    }
    dataset::Manifest kept = m;
    for (const std::string& f : *cut_) kept.indexes.erase(f);
    if (!kept.indexes.empty()) SpatialIndexes(kept);
  }

  // A field keeps its type, dim, dtype and shape in every version of a dataset (spec/10
  // §4): leaves and segments shared between versions are checked under one version's
  // schema only, so another version may not declare them differently.
  void FieldShapes(const dataset::Manifest& m, const ObjectId& id) {
    auto& shapes = field_shapes_[m.genesis];
    for (const FieldSpec& f : m.schema.fields()) {
      auto [it, inserted] =
          shapes.emplace(f.name, SegmentFacts{f.type, f.dim, f.dtype, f.shape, false, 0});
      if (!inserted && !it->second.SameShape(f)) {
        Problem("manifest " + id.ToString() + " declares field " + Quote(f.name) + " as " +
                std::string(FieldTypeName(f.type)) + " (dim " + std::to_string(f.dim) +
                ") but another version of the dataset declares it as " +
                std::string(FieldTypeName(it->second.type)) + " (dim " +
                std::to_string(it->second.dim) + ")");
      }
    }
  }

  // Spatial indexes (spec/21-spatial-index.md §9): each object once per run.
  void SpatialIndexes(const dataset::Manifest& m) {
    vindex::VerifyIndexes(
        m, &spatial_,
        [&](const ObjectId& id, const std::string& what, Bytes* out) -> int {
          if (seen_.count(id)) return 0;
          return Check(id, what, out) ? 1 : -1;
        },
        [&](const ObjectId& id) { return store_.Get(id); },
        [&](std::string p) { Problem(std::move(p)); });
  }

  VerifyReport& report() { return report_; }

 private:
  Store& store_;
  const std::function<void(uint64_t)>& progress_;
  const ReachedVisitor* reached_;
  const std::unordered_set<ObjectId>* pruned_;
  const VerifyShard shard_;
  const LeafFilter* leaves_;
  const FieldRetentionPolicy* fields_;
  VerifyReport report_;
  // Per-field retention: the versions walked after the whole ones, the cut of the one
  // being walked (null: whole) and the pages each distinct cut has walked.
  std::vector<ObjectId> deferred_;
  const std::vector<std::string>* cut_ = nullptr;
  std::string cut_key_;
  std::string current_dataset_;
  ObjectId current_manifest_;
  std::unordered_map<std::string, std::unordered_set<ObjectId>> seen_cut_pages_;
  std::unordered_set<std::string> retained_seen_;
  std::unordered_set<ObjectId> skipped_;  // segments left to other shards
  std::unordered_set<ObjectId> seen_;
  std::unordered_set<ObjectId> seen_pages_;
  std::unordered_set<ObjectId> seen_manifests_;
  std::unordered_set<ObjectId> counted_;
  std::unordered_set<ObjectId> genesis_seen_;
  std::unordered_map<ObjectId, std::string> genesis_name_;
  // Per segment: one entry per shape it was decoded as (almost always one).
  std::unordered_map<ObjectId, std::vector<SegmentFacts>> segments_;
  // Per dataset (genesis): each field's shape as first declared.
  std::unordered_map<ObjectId, std::unordered_map<std::string, SegmentFacts>> field_shapes_;
  vindex::VerifyMemo spatial_;
  // Per field name: the segment list of the last leaf whose segments were checked, and the
  // highest row checked in each (Leaf).
  struct FieldMemo {
    SegmentFacts shape{FieldType::kInt64, 0, DType::kF32, {}, false, 0};
    std::vector<ObjectId> segments;
    std::vector<uint32_t> max_row;
  };
  std::unordered_map<std::string, FieldMemo> memo_;
  // Pages the visitor fetched and decoded, for the walk that follows it to take.
  btree::PageCache page_cache_{size_t{32} << 20};
};

}  // namespace

VerifyReport WalkReachable(Store& store, const std::vector<RefValue>& roots,
                           const ReachedVisitor& reached,
                           const std::function<void(uint64_t)>& progress,
                           const std::unordered_set<ObjectId>* pruned, const LeafFilter* leaves,
                           const FieldRetentionPolicy* fields) {
  Verifier v(store, progress, &reached, pruned, VerifyShard{}, leaves, fields);
  for (const auto& r : roots) {
    ++v.report().refs;
    v.Manifests(r.target, r.name);
  }
  v.FinishCut();
  return std::move(v.report());
}

bool IsPrunedMarker(const RefValue& r) {
  constexpr std::string_view kPruned = "/pruned/";
  const size_t at = r.name.find(kPruned);
  // `<dataset>/pruned/<id>`: the dataset is the first name segment (a branch or lease
  // name containing "pruned/" is not a marker).
  return at != std::string::npos && at == r.name.find('/') &&
         std::string_view(r.name).substr(at + kPruned.size()) == r.target.ToString();
}

Status ListPruned(Store& store, std::string_view name, std::unordered_set<ObjectId>* out) {
  const std::string prefix = name.empty() ? "" : std::string(name) + "/";
  return store.ListRefs(prefix, [&](const RefValue& r) {
    if (IsPrunedMarker(r)) out->insert(r.target);
    return true;
  });
}

Result<VerifyReport> Verify(Store& store, std::string_view name,
                            const std::function<void(uint64_t)>& progress) {
  return Verify(store, name, progress, VerifyShard{});
}

Result<VerifyReport> Verify(Store& store, std::string_view name,
                            const std::function<void(uint64_t)>& progress,
                            const VerifyShard& shard) {
  if (shard.of == 0 || shard.shard >= shard.of) {
    return InvalidArgument("verify shard " + std::to_string(shard.shard) + " of " +
                           std::to_string(shard.of) + ": need 0 <= shard < of");
  }
  std::string prefix = name.empty() ? "" : std::string(name) + "/";
  if (!name.empty()) RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  std::unordered_set<ObjectId> pruned;
  RETURN_IF_ERROR(ListPruned(store, name, &pruned));
  std::vector<RefValue> refs;
  // Versions made before a field's pruned-fields marker may lack that field (spec/06
  // §6.12): what is missing there is reported as reclaimed, not as a problem.
  FieldRetentionPolicy fields;
  fields.skip = false;
  std::map<std::pair<std::string, std::string>, int64_t> cutoffs;
  // Refs are few compared with objects; collect them so the walk does not hold a listing open.
  RETURN_IF_ERROR(store.ListRefs(prefix, [&](const RefValue& r) {
    if (r.name.find("/branches/") != std::string::npos ||
        r.name.find("/snapshots/") != std::string::npos) {
      refs.push_back(r);
      fields.whole.insert(r.target);
    } else if (auto f = ParseFieldRetentionRef(r.name); f && f->marker) {
      int64_t& c = cutoffs[{f->dataset, f->field}];
      c = std::max(c, f->value);
    }
    return true;
  }));
  for (const auto& [key, cutoff_ms] : cutoffs) {
    fields.cuts[key.first].push_back({key.second, static_cast<uint64_t>(cutoff_ms) * 1000000});
  }
  Verifier v(store, progress, nullptr, &pruned, shard, nullptr, &fields);
  if (!name.empty() && refs.empty()) {
    return NotFound("dataset " + Quote(name) + " does not exist in " + store.uri());
  }
  // The state walked: the refs, in name order, and their targets.
  std::sort(refs.begin(), refs.end(),
            [](const RefValue& a, const RefValue& b) { return a.name < b.name; });
  Hasher roots;
  for (const auto& r : refs) roots.Update(r.name + "=" + r.target.ToString() + "\n");
  v.report().roots = roots.Finish();
  for (const auto& r : refs) {
    ++v.report().refs;
    v.Manifests(r.target, r.name);
  }
  v.FinishCut();
  if (progress) progress(v.report().objects);
  return std::move(v.report());
}

}  // namespace dreamdb
