// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/btree/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>

#include "src/store/memory/memory_backend.h"

namespace dreamdb::btree::test {

TestStore MakeTestStore() {
  MemoryBackends inner = NewMemoryBackends();
  TestStore t;
  t.backend = std::make_shared<FaultInjectingBackend>(inner.objects, inner.refs);
  t.store = Store::FromBackends("memory://btree-test", t.backend, t.backend);
  return t;
}

ObjectId Seg(int k) {
  // Hashing is cheap, but tests ask for millions of ids: keep the first few thousand.
  static const std::vector<ObjectId> kCached = [] {
    std::vector<ObjectId> ids;
    for (int i = 0; i < 2048; ++i) ids.push_back(ObjectId::Of("segment " + std::to_string(i)));
    return ids;
  }();
  if (k >= 0 && k < static_cast<int>(kCached.size())) return kCached[k];
  return ObjectId::Of("segment " + std::to_string(k));
}

Entry ToEntry(uint64_t anchor, const ModelEntry& fields) {
  Entry e;
  e.anchor = anchor;
  for (const auto& [name, loc] : fields) e.fields.emplace_back(name, loc);
  std::sort(e.fields.begin(), e.fields.end(),
            [](const auto& a, const auto& b) { return cbor::KeyLess(a.first, b.first); });
  return e;
}

void ApplyToModel(const Batch& batch, Model* model) {
  for (size_t i = 0; i < batch.anchors.size(); ++i) {
    ModelEntry& m = (*model)[batch.anchors[i]];
    if (!batch.replace.empty() && batch.replace[i] != 0) m.clear();
    for (const BatchField& f : batch.fields) {
      if (f.seg[i] == kNoSegment) continue;
      m[f.name] = FieldLoc{f.segments[f.seg[i]], f.row[i]};
    }
  }
}

std::vector<Entry> ScanAll(const Tree& tree, size_t prefetch) {
  std::vector<Entry> out;
  Cursor c = tree.Scan(0, UINT64_MAX, ScanOptions{prefetch});
  while (true) {
    auto e = c.Next();
    if (!e.ok()) {
      ADD_FAILURE_AT(__FILE__, __LINE__);
      break;
    }
    if (!e->has_value()) break;
    out.push_back(std::move(**e));
  }
  return out;
}

std::vector<Entry> ModelEntries(const Model& model) { return ModelEntries(model, 0, UINT64_MAX); }

std::vector<Entry> ModelEntries(const Model& model, uint64_t start, uint64_t end) {
  std::vector<Entry> out;
  for (auto it = model.lower_bound(start); it != model.end() && it->first < end; ++it) {
    out.push_back(ToEntry(it->first, it->second));
  }
  return out;
}

Entry BatchGen::RandomEntry(uint64_t anchor, bool allow_empty) {
  Entry e;
  e.anchor = anchor;
  while (true) {
    for (const std::string& name : fields) {
      if (rng() % 2 == 0) continue;
      e.fields.emplace_back(name, FieldLoc{Seg(static_cast<int>(rng() % segments)),
                                           static_cast<uint32_t>(rng() % 100000)});
    }
    if (allow_empty || !e.fields.empty()) break;
  }
  std::sort(e.fields.begin(), e.fields.end(),
            [](const auto& a, const auto& b) { return cbor::KeyLess(a.first, b.first); });
  return e;
}

std::vector<uint64_t> BatchGen::DistinctAnchors(size_t n, uint64_t lo, uint64_t hi) {
  std::set<uint64_t> s;
  std::uniform_int_distribution<uint64_t> d(lo, hi - 1);
  while (s.size() < n && s.size() < hi - lo) s.insert(d(rng));
  return std::vector<uint64_t>(s.begin(), s.end());
}

Batch BatchGen::MakeBatch(const std::vector<uint64_t>& sorted_anchors) {
  // Column-wise (like the dataset layer builds batches); each anchor gets at least one field.
  Batch b;
  const size_t n = sorted_anchors.size();
  b.anchors = sorted_anchors;
  for (const std::string& name : fields) {
    BatchField f;
    f.name = name;
    for (int k = 0; k < segments; ++k) f.segments.push_back(Seg(k));
    f.seg.assign(n, kNoSegment);
    f.row.assign(n, 0);
    b.fields.push_back(std::move(f));
  }
  for (size_t i = 0; i < n; ++i) {
    bool any = false;
    while (!any) {
      for (BatchField& f : b.fields) {
        if (rng() % 2 == 0) continue;
        f.seg[i] = static_cast<uint32_t>(rng() % segments);
        f.row[i] = static_cast<uint32_t>(rng() % 100000);
        any = true;
      }
    }
  }
  return b;
}

}  // namespace dreamdb::btree::test
