// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// `verify`: every object reachable from every ref is present and intact (spec/14 §6).
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/reach.h"
#include "src/dataset/vector_index.h"

namespace dreamdb {
namespace {

class Verifier {
 public:
  Verifier(Store& store, const std::function<void(uint64_t)>& progress,
           const ReachedVisitor* reached = nullptr)
      : store_(store), progress_(progress), reached_(reached) {}

  // Fetches (and so hash-verifies) an object once. False if missing or corrupt.
  bool Check(const ObjectId& id, const std::string& what, Bytes* out = nullptr) {
    if (!seen_.insert(id).second && out == nullptr) return true;
    auto bytes = store_.Get(id);
    if (!bytes.ok()) {
      report_.problems.push_back(what + " " + id.ToString() + ": " + bytes.status().ToString());
      return false;
    }
    if (counted_.insert(id).second) {
      ++report_.objects;
      report_.bytes += bytes->size();
      if (reached_ != nullptr) (*reached_)(id, bytes->size());
    }
    if (progress_ && report_.objects % 1000 == 0) progress_(report_.objects);
    if (out != nullptr) *out = std::move(*bytes);
    return true;
  }

  void Problem(std::string p) { report_.problems.push_back(std::move(p)); }

  void Tree(const btree::IndexRef& ref, const std::string& what, const Schema* schema) {
    btree::PageVisitor pages = [&](const ObjectId& page, uint32_t) -> Result<bool> {
      if (seen_pages_.count(page)) return false;
      seen_pages_.insert(page);
      Check(page, what + " page");
      return true;
    };
    if (schema == nullptr) {
      Status s = btree::VisitPages(store_, nullptr, ref, pages);
      if (!s.ok()) Problem(what + ": " + s.ToString());
      return;
    }
    // Pages already checked (shared with an earlier manifest) are skipped with everything
    // under them, so verify reads each page and segment once however long the history.
    Status s = btree::VisitSegments(
        store_, nullptr, ref,
        [&](std::string_view field, const ObjectId& seg) -> Status {
          if (seen_.count(seg)) return Status::Ok();
          Bytes bytes;
          if (!Check(seg, "segment of field '" + std::string(field) + "'", &bytes)) {
            return Status::Ok();
          }
          const FieldSpec* spec = schema->Find(field);
          if (spec != nullptr) {
            auto col = columnar::DecodeSegment(bytes, *spec);
            if (!col.ok()) Problem("segment " + seg.ToString() + ": " + col.status().ToString());
          }
          return Status::Ok();
        },
        &pages);
    if (!s.ok()) Problem(what + ": " + s.ToString());
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
      auto index = btree::IndexRefFromCbor(m->index, "manifest " + id.ToString() + " index");
      if (index.ok() && index->count != m->count) {
        Problem("manifest " + id.ToString() + " says count " + std::to_string(m->count) +
                " but its index holds " + std::to_string(index->count) + " entries");
      }
      if (index.ok()) {
        Tree(*index, "index of manifest " + id.ToString(), &m->schema);
      } else {
        Problem(index.status().ToString());
      }
      auto tombs = btree::IndexRefFromCbor(m->tombstones, "manifest " + id.ToString());
      if (tombs.ok()) {
        Tree(*tombs, "tombstones of manifest " + id.ToString(), nullptr);
      } else {
        Problem(tombs.status().ToString());
      }
      if (!m->indexes.empty()) SpatialIndexes(*m);
      for (const auto& p : m->parents) stack.push_back(p);
    }
  }

  // Spatial indexes (spec/21-spatial-index.md §9): each object once per run.
  void SpatialIndexes(const dataset::Manifest& m) {
    vindex::VerifyIndexes(
        m,
        [&](const ObjectId& id, const std::string& what, Bytes* out) -> int {
          if (seen_.count(id)) return 0;
          return Check(id, what, out) ? 1 : -1;
        },
        [&](std::string p) { Problem(std::move(p)); });
  }

  VerifyReport& report() { return report_; }

 private:
  Store& store_;
  const std::function<void(uint64_t)>& progress_;
  const ReachedVisitor* reached_;
  VerifyReport report_;
  std::unordered_set<ObjectId> seen_;
  std::unordered_set<ObjectId> seen_pages_;
  std::unordered_set<ObjectId> seen_manifests_;
  std::unordered_set<ObjectId> counted_;
  std::unordered_set<ObjectId> genesis_seen_;
  std::unordered_map<ObjectId, std::string> genesis_name_;
};

}  // namespace

VerifyReport WalkReachable(Store& store, const std::vector<RefValue>& roots,
                           const ReachedVisitor& reached,
                           const std::function<void(uint64_t)>& progress) {
  Verifier v(store, progress, &reached);
  for (const auto& r : roots) {
    ++v.report().refs;
    v.Manifests(r.target, r.name);
  }
  return std::move(v.report());
}

Result<VerifyReport> Verify(Store& store, std::string_view name,
                            const std::function<void(uint64_t)>& progress) {
  Verifier v(store, progress);
  std::string prefix = name.empty() ? "" : std::string(name) + "/";
  if (!name.empty()) RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  std::vector<RefValue> refs;
  // Refs are few compared with objects; collect them so the walk does not hold a listing open.
  RETURN_IF_ERROR(store.ListRefs(prefix, [&](const RefValue& r) {
    if (r.name.find("/branches/") != std::string::npos ||
        r.name.find("/snapshots/") != std::string::npos) {
      refs.push_back(r);
    }
    return true;
  }));
  if (!name.empty() && refs.empty()) {
    return NotFound("dataset " + Quote(name) + " does not exist in " + store.uri());
  }
  for (const auto& r : refs) {
    ++v.report().refs;
    v.Manifests(r.target, r.name);
  }
  if (progress) progress(v.report().objects);
  return std::move(v.report());
}

}  // namespace dreamdb
