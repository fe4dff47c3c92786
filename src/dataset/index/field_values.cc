// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: fetching a field's values and loading spatial objects through the
// handle's cache (spec/21 §7.10).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/index/parallel.h"
#include "src/index/graph/graph.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/metric.h"

namespace dreamdb::vindex {

namespace {

Result<std::shared_ptr<const Column>> FetchSegmentWhole(const DatasetImpl& impl,
                                                        const FieldSpec& spec, const ObjectId& id) {
  if (auto hit = impl.segments()->Get(id)) {
    impl.CountHit();
    return hit;
  }
  auto bytes = impl.store().Get(id);
  if (!bytes.ok()) return bytes.status().WithContext("segment for field " + Quote(spec.name));
  impl.CountFetch(bytes->size());
  auto col = columnar::DecodeSegment(*bytes, spec);
  if (!col.ok()) return SegmentReadError(col.status(), id);
  auto shared = std::make_shared<const Column>(std::move(*col));
  impl.segments()->Insert(id, shared);
  return std::shared_ptr<const Column>(shared);
}

Result<std::shared_ptr<const Bucket>> LoadBucket(const DatasetImpl& impl, const ObjectId& id) {
  return Load<Bucket>(
      impl, id, DecodeBucket,
      [](const Bucket& b) { return 20 * b.anchors.size() + b.codes.size(); }, "spatial bucket",
      true);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Distances and scores (spec/21 §7.1): src/index/metric.h.

// q_norm2 = |q|^2 (computed once per query).
float Distance(Metric metric, const float* q, float q_norm2, const float* x, size_t dim) {
  if (metric != Metric::kCosine) return vector::ExactDistance(metric, q, x, dim);
  return vector::CosineDistance(vector::Dot(q, x, dim), q_norm2, vector::NormSqr(x, dim));
}

// ---------------------------------------------------------------------------------------
// Fetching field values of a version

// The handle keeps the headers it opened (as a random take does): re-rank batches of one
// search, and later searches, reopen the segment without a request.
Result<columnar::SegmentReader> OpenSegment(const DatasetImpl& impl, const FieldSpec& spec,
                                            const ObjectId& id, uint64_t min_rows) {
  Store& store = impl.store();
  columnar::FetchRange fetch = [&store, &impl, id](uint64_t off, uint64_t len) -> Result<Bytes> {
    auto r = store.GetRange(id, off, len);
    if (r.ok()) impl.CountFetch(r->size());
    return r;
  };
  if (auto header = impl.headers()->Get(id)) {
    return columnar::SegmentReader::Reopen(std::move(fetch), spec, std::move(header));
  }
  // On an object store the first request brings the whole header with the rows' blocks
  // when the segment is small (one round, not two).
  const uint64_t first = IsLocalStore(store) || min_rows == 0
                             ? columnar::kSegmentFirstFetchBytes
                             : columnar::SpeculativeFirstFetchBytes(spec, min_rows);
  ASSIGN_OR_RETURN(auto opened, columnar::SegmentReader::Open(std::move(fetch), spec, first));
  auto header = opened.header();
  impl.headers()->Insert(id, header, columnar::SegmentReader::HeaderBytes(*header));
  return opened;
}

std::vector<SegmentHint> SampleFieldSegments(const DatasetImpl& impl, const Version& v,
                                             const FieldSpec& spec) {
  std::vector<SegmentHint> out;
  if (IsLocalStore(impl.store()) || !v.index.is_paged() || v.index.height != 2) return out;
  auto root = btree::FetchPage(impl.store(), impl.pages(), v.index.root);
  if (!root.ok()) return out;
  const btree::Node* node = std::get_if<btree::Node>(&(*root)->v);
  if (node == nullptr || node->children.empty()) return out;
  const size_t n = node->children.size();
  const size_t take = std::min(n, kSampledLeaves);
  std::vector<std::shared_ptr<const btree::Page>> leaves(take);
  IoPool::ParallelFor(take, [&](size_t i) {
    // Evenly spread, the first and the last leaf included.
    const size_t child = take == 1 ? 0 : i * (n - 1) / (take - 1);
    auto page = btree::FetchPage(impl.store(), impl.pages(), node->children[child]);
    if (page.ok()) leaves[i] = std::move(*page);
  });
  std::map<ObjectId, uint32_t> rows;  // segment -> highest row seen + 1
  for (const auto& page : leaves) {
    const btree::Leaf* leaf = page == nullptr ? nullptr : std::get_if<btree::Leaf>(&page->v);
    const btree::LeafField* lf = leaf == nullptr ? nullptr : leaf->FindField(spec.name);
    if (lf == nullptr) continue;
    for (size_t i = 0; i < lf->seg.size(); ++i) {
      if (lf->seg[i] == btree::kNoSegment || lf->seg[i] >= lf->segments.size()) continue;
      uint32_t& r = rows[lf->segments[lf->seg[i]]];
      r = std::max(r, lf->row[i] + 1);
    }
  }
  if (rows.size() > kHintedSegments) return out;  // many commits' segments: no guess
  for (const auto& [id, r] : rows) out.push_back(SegmentHint{id, SegmentTag(id), r});
  return out;
}

void PrefetchSegmentHeaders(const DatasetImpl& impl, const FieldSpec& spec,
                            const std::vector<SegmentHint>& segments) {
  std::vector<const SegmentHint*> todo;
  for (const SegmentHint& h : segments) {
    if (impl.headers()->Get(h.id) == nullptr && impl.segments()->Get(h.id) == nullptr) {
      todo.push_back(&h);
    }
  }
  IoPool::ParallelFor(todo.size(),
                      [&](size_t i) { (void)OpenSegment(impl, spec, todo[i]->id, todo[i]->rows); });
}

// Rows of one segment: whole (cached) when at least half its rows are needed, else the
// checksum blocks of those rows (spec/14 §9.5).
Result<std::pair<std::shared_ptr<const Column>, bool>> FetchSegmentRows(
    const DatasetImpl& impl, const FieldSpec& spec, const ObjectId& id,
    const std::vector<uint32_t>& rows) {
  if (auto hit = impl.segments()->Get(id)) {
    impl.CountHit();
    return std::make_pair(hit, true);
  }
  auto reader = OpenSegment(impl, spec, id, rows.empty() ? 0 : rows.back() + 1);
  if (!reader.ok()) return SegmentReadError(reader.status(), id);
  if (!rows.empty() && rows.back() >= reader->rows()) {
    return Corrupt("the index points at row " + std::to_string(rows.back()) + " of segment " +
                   id.ToString() + " which has " + std::to_string(reader->rows()) + " rows");
  }
  if (rows.size() * 2 >= reader->rows()) {
    auto col = reader->ReadAll();
    if (!col.ok()) return SegmentReadError(col.status(), id);
    auto shared = std::make_shared<const Column>(std::move(*col));
    impl.segments()->Insert(id, shared);
    return std::make_pair(std::shared_ptr<const Column>(shared), true);
  }
  auto col = reader->ReadRows(rows);
  if (!col.ok()) return SegmentReadError(col.status(), id);
  return std::make_pair(std::make_shared<const Column>(std::move(*col)), false);
}

Result<FieldValues> FetchField(const DatasetImpl& impl,
                               const std::vector<std::optional<btree::Entry>>& entries,
                               const FieldSpec& spec) {
  FieldValues out;
  out.col.assign(entries.size(), -1);
  out.row.assign(entries.size(), 0);
  std::map<ObjectId, std::vector<uint32_t>> need;
  for (const auto& e : entries) {
    if (!e) continue;
    if (const btree::FieldLoc* loc = e->Find(spec.name)) need[loc->segment].push_back(loc->row);
  }
  std::vector<ObjectId> ids;
  for (auto& [id, rows] : need) {
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    ids.push_back(id);
  }
  std::vector<std::pair<std::shared_ptr<const Column>, bool>> got(ids.size());
  std::vector<size_t> missing;  // segments not cached whole
  for (size_t i = 0; i < ids.size(); ++i) {
    if (auto hit = impl.segments()->Get(ids[i])) {
      impl.CountHit();
      got[i] = {std::move(hit), true};
    } else {
      missing.push_back(i);
    }
  }
  const Status fetched = ParallelFor(missing.size(), 16, [&](size_t m) -> Status {
    const size_t i = missing[m];
    ASSIGN_OR_RETURN(got[i], FetchSegmentRows(impl, spec, ids[i], need.at(ids[i])));
    return Status::Ok();
  });
  RETURN_IF_ERROR(fetched);
  std::unordered_map<ObjectId, size_t> slot;
  for (size_t i = 0; i < ids.size(); ++i) {
    slot[ids[i]] = out.columns.size();
    out.columns.push_back(got[i].first);
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i]) continue;
    const btree::FieldLoc* loc = entries[i]->Find(spec.name);
    if (loc == nullptr) continue;
    size_t s = slot.at(loc->segment);
    uint64_t r = loc->row;
    if (!got[s].second) {
      const auto& rs = need.at(loc->segment);
      r = static_cast<uint64_t>(std::lower_bound(rs.begin(), rs.end(), loc->row) - rs.begin());
    } else if (r >= got[s].first->length()) {
      return Corrupt("index entry for anchor " + std::to_string(entries[i]->anchor) +
                     " points past the end of segment " + loc->segment.ToString());
    }
    out.col[i] = static_cast<int32_t>(s);
    out.row[i] = r;
  }
  return out;
}

Status WalkVectors(const DatasetImpl& impl, const Version& v, const FieldSpec& spec, uint64_t start,
                   uint64_t end, const VectorVisitor& visit) {
  btree::Tree tree(&impl.store(), impl.pages(), v.index);
  btree::Cursor cursor = tree.Scan(start, end);
  std::unordered_map<ObjectId, std::shared_ptr<const Column>> pins;
  std::vector<uint64_t> anchors;
  std::vector<const ObjectId*> segs;
  std::vector<uint32_t> rows;
  std::vector<const float*> vecs;
  for (;;) {
    ASSIGN_OR_RETURN(auto span, cursor.NextLeaf());
    if (!span) break;
    const btree::LeafField* lf = span->leaf->FindField(spec.name);
    if (lf == nullptr) continue;
    std::unordered_map<ObjectId, std::shared_ptr<const Column>> next;
    anchors.clear();
    segs.clear();
    rows.clear();
    vecs.clear();
    for (size_t i = span->begin; i < span->end; ++i) {
      if (lf->seg[i] == btree::kNoSegment) continue;
      const ObjectId& seg = lf->segments[lf->seg[i]];
      auto it = next.find(seg);
      if (it == next.end()) {
        auto p = pins.find(seg);
        std::shared_ptr<const Column> col;
        if (p != pins.end()) {
          col = p->second;
        } else {
          ASSIGN_OR_RETURN(col, FetchSegmentWhole(impl, spec, seg));
        }
        it = next.emplace(seg, std::move(col)).first;
      }
      const Column& col = *it->second;
      uint32_t row = lf->row[i];
      if (row >= col.length()) {
        return Corrupt("index entry for anchor " + std::to_string(span->leaf->anchors[i]) +
                       " points past the end of segment " + seg.ToString());
      }
      if (!col.IsValid(row)) continue;
      anchors.push_back(span->leaf->anchors[i]);
      segs.push_back(&seg);
      rows.push_back(row);
      vecs.push_back(col.FloatsAt(row).data());
    }
    pins = std::move(next);
    if (!anchors.empty()) {
      RETURN_IF_ERROR(visit(anchors.size(), anchors.data(), segs.data(), rows.data(), vecs.data()));
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Loading spatial objects (through the handle's object cache)

Result<std::shared_ptr<const IndexObject>> LoadIndex(const DatasetImpl& impl, const ObjectId& id) {
  return Load<IndexObject>(
      impl, id, DecodeIndex,
      [](const IndexObject& ix) { return 200 + 40 * (ix.pages.size() + ix.parents.size()); },
      "spatial index", false);
}

Result<std::shared_ptr<const DirPage>> LoadPage(const DatasetImpl& impl, const ObjectId& id) {
  return Load<DirPage>(
      impl, id, DecodeDirPage,
      [](const DirPage& p) {
        uint64_t n = 0;
        for (const auto& c : p.buckets) n += 24 + 34 * c.size();
        return n;
      },
      "spatial directory page", true);
}

Result<Metric> MetricOf(std::string_view name) { return vector::ParseMetric(name); }

Result<ModelPtr> LoadModel(const DatasetImpl& impl, const ObjectId& id) {
  if (auto hit = impl.vectors()->Get<vector::IvfModel>(id)) {
    impl.CountHit();
    return hit;
  }
  auto bytes = impl.store().Get(id);
  if (!bytes.ok()) return bytes.status().WithContext("spatial model " + id.ToString());
  impl.CountFetch(bytes->size());
  auto model = vector::IvfModel::Deserialize(*bytes);
  if (!model.ok()) return model.status().WithContext("spatial model " + id.ToString());
  impl.vectors()->Insert(id, *model, bytes->size() * 2);
  return *model;
}

// The bucket ids of `cells` (any order) in an index: one directory page per page touched.
Status PrefetchPages(const DatasetImpl& impl, const IndexObject& ix,
                     const std::vector<uint32_t>& which) {
  std::vector<uint32_t> missing;
  for (uint32_t p : which) {
    if (p < ix.pages.size() && impl.vectors()->Get<DirPage>(ix.pages[p]) == nullptr) {
      missing.push_back(p);
    }
  }
  return ParallelFor(missing.size(), 16, [&](size_t i) -> Status {
    return LoadPage(impl, ix.pages[missing[i]]).status();
  });
}

Result<std::vector<std::vector<ObjectId>>> BucketsOf(const DatasetImpl& impl, const IndexObject& ix,
                                                     const std::vector<uint32_t>& cells) {
  std::vector<std::vector<ObjectId>> out(cells.size());
  std::map<uint32_t, std::shared_ptr<const DirPage>> pages;
  // The pages of all the cells at once (one round trip on a remote store, not one each).
  std::vector<uint32_t> touched;
  for (uint32_t c : cells) {
    if (c < ix.cells) touched.push_back(c / kCellsPerPage);
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  if (touched.size() > 1) RETURN_IF_ERROR(PrefetchPages(impl, ix, touched));
  for (size_t i = 0; i < cells.size(); ++i) {
    uint32_t c = cells[i];
    if (c >= ix.cells) return Corrupt("cell " + std::to_string(c) + " is out of range");
    uint32_t p = c / kCellsPerPage;
    auto it = pages.find(p);
    if (it == pages.end()) {
      ASSIGN_OR_RETURN(auto page, LoadPage(impl, ix.pages[p]));
      if (page->first != p * kCellsPerPage) {
        return Corrupt("spatial directory page " + ix.pages[p].ToString() + " starts at cell " +
                       std::to_string(page->first) + ", expected " +
                       std::to_string(p * kCellsPerPage));
      }
      it = pages.emplace(p, std::move(page)).first;
    }
    uint32_t local = c - p * kCellsPerPage;
    if (local >= it->second->buckets.size()) {
      return Corrupt("spatial directory page " + ix.pages[p].ToString() + " lacks cell " +
                     std::to_string(c));
    }
    out[i] = it->second->buckets[local];
  }
  return out;
}

// Per cell, the number of buckets the directory lists (spec/21 §7.2): nonzero iff the cell
// has entries, since every bucket holds at least one. The directory does not store entry
// counts; bucket counts are enough for SearchParams::cell_sizes, which only skips cells
// whose size is 0. Costs one pass over the (cached) directory pages per Search call.
Result<std::vector<uint32_t>> CellBucketCounts(const DatasetImpl& impl, const IndexObject& ix) {
  std::vector<uint32_t> out(ix.cells, 0);
  for (size_t p = 0; p < ix.pages.size(); ++p) {
    ASSIGN_OR_RETURN(auto page, LoadPage(impl, ix.pages[p]));
    for (size_t i = 0; i < page->buckets.size(); ++i) {
      const size_t c = size_t{page->first} + i;
      if (c >= out.size()) {
        return Corrupt("spatial directory page " + ix.pages[p].ToString() + " lists cell " +
                       std::to_string(c) + " beyond the index's " + std::to_string(ix.cells));
      }
      out[c] = static_cast<uint32_t>(page->buckets[i].size());
    }
  }
  return out;
}

// A bucket's codes hold one vector per entry (scans index the entries by code position).
Status CheckBucketCodes(const vector::IvfModel& model, const Bucket& b, const ObjectId& id) {
  auto count = model.CellCount(b.codes);
  if (!count.ok()) return count.status().WithContext("spatial bucket " + id.ToString());
  if (*count != b.anchors.size()) {
    return Corrupt("spatial bucket " + id.ToString() + " holds " +
                   std::to_string(b.anchors.size()) + " entries but codes for " +
                   std::to_string(*count));
  }
  return Status::Ok();
}

// Buckets through the cache; the ones not cached are fetched in parallel (up to 32 in
// flight: a cold search on a remote store pays about buckets/32 round trips). A warm
// search takes every bucket from the cache without a pool task.
Result<std::vector<std::shared_ptr<const Bucket>>> FetchBuckets(const DatasetImpl& impl,
                                                                const std::vector<ObjectId>& ids) {
  std::vector<std::shared_ptr<const Bucket>> out(ids.size());
  std::vector<size_t> missing;
  for (size_t i = 0; i < ids.size(); ++i) {
    out[i] = impl.vectors()->Get<Bucket>(ids[i]);
    if (out[i] != nullptr) {
      impl.CountHit();
    } else {
      missing.push_back(i);
    }
  }
  const Status fetched = ParallelFor(missing.size(), 32, [&](size_t i) -> Status {
    ASSIGN_OR_RETURN(out[missing[i]], LoadBucket(impl, ids[missing[i]]));
    return Status::Ok();
  });
  RETURN_IF_ERROR(fetched);
  return out;
}

}  // namespace dreamdb::vindex
