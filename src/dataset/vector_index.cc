// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes of embedding fields: search (exact and IVF), build, assignment during
// appends, status, verify (spec/21-spatial-index.md).
#include "src/dataset/vector_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <future>
#include <limits>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/parallel.h"
#include "src/index/graph/graph.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/metric.h"

namespace dreamdb {
namespace vindex {
namespace {

using vector::Metric;

// ---------------------------------------------------------------------------------------
// Distances and scores (spec/21 §7.1): src/index/metric.h.

using vector::ScoreOf;

// q_norm2 = |q|^2 (computed once per query).
float Distance(Metric metric, const float* q, float q_norm2, const float* x, size_t dim) {
  if (metric != Metric::kCosine) return vector::ExactDistance(metric, q, x, dim);
  return vector::CosineDistance(vector::Dot(q, x, dim), q_norm2, vector::NormSqr(x, dim));
}

// ---------------------------------------------------------------------------------------
// Fetching field values of a version

// Values of one field for sorted unique anchors: per anchor, a column and row (or none).
struct FieldValues {
  std::vector<std::shared_ptr<const Column>> columns;
  std::vector<int32_t> col;  // per anchor: index into columns, -1 = no value
  std::vector<uint64_t> row;
  bool Has(size_t i) const { return col[i] >= 0 && columns[col[i]]->IsValid(row[i]); }
  const Column& ColumnOf(size_t i) const { return *columns[col[i]]; }
};

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

// Rows of one segment: whole (cached) when at least half its rows are needed, else the
// checksum blocks of those rows (spec/14 §9.5).
Result<std::pair<std::shared_ptr<const Column>, bool>> FetchSegmentRows(
    const DatasetImpl& impl, const FieldSpec& spec, const ObjectId& id,
    const std::vector<uint32_t>& rows) {
  if (auto hit = impl.segments()->Get(id)) {
    impl.CountHit();
    return std::make_pair(hit, true);
  }
  Store& store = impl.store();
  columnar::FetchRange fetch = [&store, &impl, id](uint64_t off, uint64_t len) -> Result<Bytes> {
    auto r = store.GetRange(id, off, len);
    if (r.ok()) impl.CountFetch(r->size());
    return r;
  };
  // The handle keeps the headers it opened (as a random take does): re-rank batches of
  // one search, and later searches, reopen the segment without a request.
  auto open = [&]() -> Result<columnar::SegmentReader> {
    if (auto header = impl.headers()->Get(id)) {
      return columnar::SegmentReader::Reopen(fetch, spec, std::move(header));
    }
    ASSIGN_OR_RETURN(auto opened, columnar::SegmentReader::Open(fetch, spec));
    auto header = opened.header();
    impl.headers()->Insert(id, header, columnar::SegmentReader::HeaderBytes(*header));
    return opened;
  };
  auto reader = open();
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

// Visits every (anchor, location, vector) of `field` in [start, end) of a version, in
// anchor order, a leaf at a time. Segments are fetched whole and kept while in use.
using VectorVisitor =
    std::function<Status(size_t n, const uint64_t* anchors, const ObjectId* const* segs,
                         const uint32_t* rows, const float* const* vecs)>;

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

template <typename T>
Result<std::shared_ptr<const T>> Load(const DatasetImpl& impl, const ObjectId& id,
                                      const std::function<Result<T>(ByteView)>& decode,
                                      const std::function<uint64_t(const T&)>& size,
                                      std::string_view what, bool count) {
  if (auto hit = impl.vectors()->Get<T>(id)) {
    if (count) impl.CountHit();
    return hit;
  }
  auto bytes = impl.store().Get(id);
  if (!bytes.ok()) return bytes.status().WithContext(std::string(what) + " " + id.ToString());
  if (count) impl.CountFetch(bytes->size());
  auto v = decode(*bytes);
  if (!v.ok()) return v.status().WithContext(std::string(what) + " " + id.ToString());
  auto shared = std::make_shared<const T>(std::move(*v));
  impl.vectors()->Insert(id, shared, size(*shared) + 64);
  return std::shared_ptr<const T>(shared);
}

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

Result<std::shared_ptr<const Bucket>> LoadBucket(const DatasetImpl& impl, const ObjectId& id) {
  return Load<Bucket>(
      impl, id, DecodeBucket,
      [](const Bucket& b) { return 20 * b.anchors.size() + b.codes.size(); }, "spatial bucket",
      true);
}

Result<Metric> MetricOf(std::string_view name) { return vector::ParseMetric(name); }

using ModelPtr = std::shared_ptr<const vector::IvfModel>;

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
Result<std::vector<std::vector<ObjectId>>> BucketsOf(const DatasetImpl& impl, const IndexObject& ix,
                                                     const std::vector<uint32_t>& cells) {
  std::vector<std::vector<ObjectId>> out(cells.size());
  std::map<uint32_t, std::shared_ptr<const DirPage>> pages;
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

// ---------------------------------------------------------------------------------------
// Search

// A re-ranked distance that is not finite (a vector with a NaN or infinite component)
// sorts last, like a missing value, so it never displaces a finite one (spec/21 §6.4).
float FiniteOrWorst(float d) {
  return std::isfinite(d) ? d : std::numeric_limits<float>::infinity();
}

struct Cand {
  uint64_t handle = 0;  // exact: the anchor; IVF: (bucket << 32) | entry
  uint64_t anchor = 0;
  float distance = 0;
  float score = 0;
};

struct SearchContext {
  const DatasetImpl* impl = nullptr;
  const Version* version = nullptr;
  const FieldSpec* spec = nullptr;
  Metric metric = Metric::kCosine;
  const SearchOptions* options = nullptr;
  std::vector<const FieldSpec*> filter_specs;  // per options->where
};

// Keeps the candidates (best first) that pass the scalar filters; at most k.
Result<std::vector<Cand>> ApplyFilters(const SearchContext& ctx, const std::vector<Cand>& cands,
                                       size_t k, std::vector<uint64_t>* rejected_handles) {
  if (ctx.options->where.empty()) {
    std::vector<Cand> out(cands.begin(), cands.begin() + std::min(k, cands.size()));
    return out;
  }
  std::vector<uint64_t> sorted;
  for (const auto& c : cands) sorted.push_back(c.anchor);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  btree::Tree tree(&ctx.impl->store(), ctx.impl->pages(), ctx.version->index);
  ASSIGN_OR_RETURN(auto entries, tree.LookupMany(sorted));
  std::vector<uint8_t> pass(sorted.size(), 1);
  for (size_t p = 0; p < ctx.options->where.size(); ++p) {
    ASSIGN_OR_RETURN(FieldValues fv, FetchField(*ctx.impl, entries, *ctx.filter_specs[p]));
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (!pass[i]) continue;
      if (!fv.Has(i) || !PredicateMatches(ctx.options->where[p], fv.ColumnOf(i), fv.row[i]))
        pass[i] = 0;
    }
  }
  std::vector<Cand> out;
  for (const auto& c : cands) {
    size_t i = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), c.anchor) -
                                   sorted.begin());
    if (!pass[i]) {
      if (rejected_handles != nullptr) rejected_handles->push_back(c.handle);
      continue;
    }
    if (out.size() < k) out.push_back(c);
  }
  return out;
}

// Brute force over every stored vector in the range, for all queries at once.
Status ExactSearch(const SearchContext& ctx, const float* queries, size_t nq, size_t dim,
                   std::vector<std::vector<Cand>>* results, uint64_t* scanned) {
  const SearchOptions& o = *ctx.options;
  std::vector<float> qnorm(nq);
  for (size_t q = 0; q < nq; ++q) qnorm[q] = vector::NormSqr(queries + q * dim, dim);
  std::vector<size_t> todo(nq);
  for (size_t q = 0; q < nq; ++q) todo[q] = q;
  size_t fetch = o.where.empty() ? o.k : std::max<size_t>(o.k * 4, 64);
  results->assign(nq, {});
  for (int round = 0; !todo.empty(); ++round) {
    using Heap = std::priority_queue<std::pair<float, uint64_t>>;  // max-heap on distance
    std::vector<Heap> heaps(todo.size());
    uint64_t seen = 0;
    RETURN_IF_ERROR(WalkVectors(*ctx.impl, *ctx.version, *ctx.spec, o.start, o.end,
                                [&](size_t n, const uint64_t* anchors, const ObjectId* const*,
                                    const uint32_t*, const float* const* vecs) -> Status {
                                  seen += n;
                                  auto work = [&](size_t b, size_t e) {
                                    for (size_t t = b; t < e; ++t) {
                                      const float* q = queries + todo[t] * dim;
                                      Heap& h = heaps[t];
                                      for (size_t i = 0; i < n; ++i) {
                                        float d =
                                            Distance(ctx.metric, q, qnorm[todo[t]], vecs[i], dim);
                                        // A vector with a NaN or infinite component (stored
                                        // by an older version) has no distance: it is never
                                        // a candidate, and a NaN in the heap would break its
                                        // ordering (spec/21 §7.4).
                                        if (!std::isfinite(d)) continue;
                                        if (h.size() < fetch) {
                                          h.emplace(d, anchors[i]);
                                        } else if (std::make_pair(d, anchors[i]) < h.top()) {
                                          h.pop();
                                          h.emplace(d, anchors[i]);
                                        }
                                      }
                                    }
                                  };
                                  const size_t parts = todo.size() > 1 ? 2 : 1;
                                  const size_t mid = parts == 2 ? todo.size() / 2 : todo.size();
                                  return ParallelFor(parts, o.threads, [&](size_t h) {
                                    work(h == 0 ? 0 : mid, h == 0 ? mid : todo.size());
                                    return Status::Ok();
                                  });
                                }));
    *scanned += seen * todo.size();
    std::vector<size_t> again;
    for (size_t t = 0; t < todo.size(); ++t) {
      std::vector<Cand> cands(heaps[t].size());
      for (size_t i = cands.size(); i-- > 0;) {
        auto [d, a] = heaps[t].top();
        heaps[t].pop();
        cands[i] = Cand{a, a, d, ScoreOf(ctx.metric, d)};
      }
      bool exhausted = cands.size() < fetch;
      ASSIGN_OR_RETURN(auto kept, ApplyFilters(ctx, cands, o.k, nullptr));
      (*results)[todo[t]] = std::move(kept);
      if ((*results)[todo[t]].size() < o.k && !exhausted) again.push_back(todo[t]);
    }
    todo = std::move(again);
    fetch *= 8;
  }
  return Status::Ok();
}

// The entries of one bucket or node page (borrowed), named by its object id.
struct EntryList {
  ObjectId id;
  const std::vector<uint64_t>* anchors = nullptr;
  const std::vector<uint64_t>* seg_tags = nullptr;
  const std::vector<uint32_t>* rows = nullptr;
};

// What decides the live entries of a version: its anchor index (the entries' anchors are
// looked up in it, and the values they point to are immutable). Versions that share a
// paged anchor index (an index build, a metadata commit) share their LiveEntries; an
// inline anchor index has no id of its own, so the manifest's stands for it.
ObjectId LiveVersionKey(const Version& v) {
  return v.index.inline_leaf != nullptr ? v.id : v.index.root;
}

// The LiveEntries of each list in this version, from the handle's cache; the missing ones
// computed together from one batched anchor lookup (no segment is read) and cached.
Result<std::vector<std::shared_ptr<const LiveEntries>>> LoadLive(
    const SearchContext& ctx, const std::vector<EntryList>& lists) {
  std::vector<std::shared_ptr<const LiveEntries>> out(lists.size());
  std::vector<size_t> missing;
  const ObjectId version_key = LiveVersionKey(*ctx.version);
  for (size_t i = 0; i < lists.size(); ++i) {
    out[i] = ctx.impl->vectors()->GetLive(LiveKey{version_key, lists[i].id});
    if (out[i] == nullptr) missing.push_back(i);
  }
  if (missing.empty()) return out;
  std::vector<uint64_t> sorted;
  for (size_t i : missing) {
    sorted.insert(sorted.end(), lists[i].anchors->begin(), lists[i].anchors->end());
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  btree::Tree tree(&ctx.impl->store(), ctx.impl->pages(), ctx.version->index);
  ASSIGN_OR_RETURN(auto locs, tree.LookupFieldMany(sorted, ctx.spec->name));
  for (size_t i : missing) {
    const EntryList& l = lists[i];
    const size_t n = l.anchors->size();
    auto state = std::make_shared<LiveEntries>();
    state->live.assign(n, 0);
    state->segment.assign(n, 0);
    state->row.assign(n, 0);
    std::unordered_map<ObjectId, uint32_t> slot;
    size_t live = 0;
    for (size_t e = 0; e < n; ++e) {
      const size_t j = static_cast<size_t>(
          std::lower_bound(sorted.begin(), sorted.end(), (*l.anchors)[e]) - sorted.begin());
      const std::optional<btree::FieldLoc>& loc = locs[j];
      if (!loc || SegmentTag(loc->segment) != (*l.seg_tags)[e] || loc->row != (*l.rows)[e]) {
        continue;
      }
      auto [it, added] = slot.emplace(loc->segment, static_cast<uint32_t>(state->segments.size()));
      if (added) state->segments.push_back(loc->segment);
      state->segment[e] = it->second;
      state->row[e] = loc->row;
      state->live[e] = 1;
      ++live;
    }
    state->all_live = live == n;
    ctx.impl->vectors()->InsertLive(LiveKey{version_key, l.id}, state);
    out[i] = std::move(state);
  }
  return out;
}

// The stored vectors at `keys`, from the handle's row cache; the missing ones read
// together, per segment the whole cached segment or verified ranged reads of just those
// rows (FetchSegmentRows), and cached. Null where the stored value is null.
Result<std::vector<std::shared_ptr<const std::vector<float>>>> LoadRows(
    const SearchContext& ctx, const std::vector<RowKey>& keys) {
  std::vector<std::shared_ptr<const std::vector<float>>> out(keys.size());
  std::map<ObjectId, std::vector<uint32_t>> need;
  for (size_t i = 0; i < keys.size(); ++i) {
    out[i] = ctx.impl->vectors()->GetRow(keys[i]);
    if (out[i] == nullptr) need[keys[i].segment].push_back(keys[i].row);
  }
  if (need.empty()) return out;
  std::vector<ObjectId> ids;
  for (auto& [id, rows] : need) {
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    ids.push_back(id);
  }
  std::vector<std::pair<std::shared_ptr<const Column>, bool>> got(ids.size());
  RETURN_IF_ERROR(ParallelFor(ids.size(), 8, [&](size_t i) -> Status {
    ASSIGN_OR_RETURN(got[i], FetchSegmentRows(*ctx.impl, *ctx.spec, ids[i], need.at(ids[i])));
    return Status::Ok();
  }));
  const size_t dim = ctx.spec->dim;
  std::unordered_map<RowKey, std::shared_ptr<const std::vector<float>>, RowKeyHash> read;
  for (size_t s = 0; s < ids.size(); ++s) {
    const std::vector<uint32_t>& rows = need.at(ids[s]);
    const Column& col = *got[s].first;
    for (size_t p = 0; p < rows.size(); ++p) {
      const uint64_t r = got[s].second ? rows[p] : p;  // whole segment, or just these rows
      if (r >= col.length()) {
        return Corrupt("the index points at row " + std::to_string(rows[p]) + " of segment " +
                       ids[s].ToString() + " which has " + std::to_string(col.length()) + " rows");
      }
      if (!col.IsValid(r)) continue;
      auto v = col.FloatsAt(r);
      if (v.size() != dim) {
        return Corrupt("the stored vector at row " + std::to_string(rows[p]) + " of segment " +
                       ids[s].ToString() + " has " + std::to_string(v.size()) +
                       " components, the field has " + std::to_string(dim));
      }
      auto vec = std::make_shared<const std::vector<float>>(v.begin(), v.end());
      const RowKey key{ids[s], rows[p]};
      ctx.impl->vectors()->InsertRow(key, vec);
      read.emplace(key, std::move(vec));
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (out[i] != nullptr) continue;
    auto it = read.find(keys[i]);
    if (it != read.end()) out[i] = it->second;
  }
  return out;
}

// The exact distances of re-rank candidates, each an entry of a LiveEntries (+inf when not
// live, null or not finite); their vectors are read in one LoadRows.
Status LiveDistances(const SearchContext& ctx, const vector::IvfModel& model, const float* q,
                     const std::vector<std::pair<const LiveEntries*, size_t>>& cands, float* out) {
  std::vector<RowKey> keys;
  std::vector<size_t> at;
  for (size_t i = 0; i < cands.size(); ++i) {
    out[i] = std::numeric_limits<float>::infinity();
    const auto& [s, e] = cands[i];
    if (!s->live[e]) continue;
    keys.push_back(s->RowOf(e));
    at.push_back(i);
  }
  ASSIGN_OR_RETURN(auto vecs, LoadRows(ctx, keys));
  for (size_t j = 0; j < vecs.size(); ++j) {
    if (vecs[j] != nullptr) out[at[j]] = FiniteOrWorst(model.ExactDistance(q, vecs[j]->data()));
  }
  return Status::Ok();
}

// Where the vectors of bucket entries `handles` ((bucket << 32) | entry) are, for buckets
// whose LiveEntries were not computed (a first touch, spec/21 §7.10): the row of each live
// entry, nullopt for a stale one; one batched lookup of their anchors.
Result<std::vector<std::optional<RowKey>>> LocateEntries(
    const SearchContext& ctx, const std::vector<std::shared_ptr<const Bucket>>& buckets,
    const std::vector<uint64_t>& handles) {
  std::vector<uint64_t> sorted;
  sorted.reserve(handles.size());
  for (uint64_t h : handles) sorted.push_back(buckets[h >> 32]->anchors[h & 0xffffffffu]);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  btree::Tree tree(&ctx.impl->store(), ctx.impl->pages(), ctx.version->index);
  ASSIGN_OR_RETURN(auto locs, tree.LookupFieldMany(sorted, ctx.spec->name));
  std::vector<std::optional<RowKey>> out(handles.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    const Bucket& b = *buckets[handles[i] >> 32];
    const size_t e = handles[i] & 0xffffffffu;
    const size_t j = static_cast<size_t>(
        std::lower_bound(sorted.begin(), sorted.end(), b.anchors[e]) - sorted.begin());
    const std::optional<btree::FieldLoc>& loc = locs[j];
    if (loc && SegmentTag(loc->segment) == b.seg_tags[e] && loc->row == b.rows[e]) {
      out[i] = RowKey{loc->segment, loc->row};
    }
  }
  return out;
}

// Re-rank distances of bucket handles ((bucket << 32) | entry): through the bucket's
// LiveEntries when computed, else by locating the candidates themselves; a stale
// candidate gets +inf and its handle is added to `stale`.
Status BucketDistances(const SearchContext& ctx, const vector::IvfModel& model, const float* q,
                       const std::vector<std::shared_ptr<const Bucket>>& buckets,
                       const std::vector<std::shared_ptr<const LiveEntries>>& states,
                       const uint64_t* ids, size_t n, float* out,
                       std::unordered_set<uint64_t>* stale) {
  std::vector<std::pair<const LiveEntries*, size_t>> known;
  std::vector<size_t> known_at;
  std::vector<uint64_t> unknown;
  std::vector<size_t> unknown_at;
  for (size_t i = 0; i < n; ++i) {
    out[i] = std::numeric_limits<float>::infinity();
    const LiveEntries* s = states[ids[i] >> 32].get();
    if (s != nullptr) {
      known.emplace_back(s, ids[i] & 0xffffffffu);
      known_at.push_back(i);
    } else {
      unknown.push_back(ids[i]);
      unknown_at.push_back(i);
    }
  }
  if (!known.empty()) {
    std::vector<float> d(known.size());
    RETURN_IF_ERROR(LiveDistances(ctx, model, q, known, d.data()));
    for (size_t j = 0; j < known.size(); ++j) out[known_at[j]] = d[j];
  }
  if (unknown.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto where, LocateEntries(ctx, buckets, unknown));
  std::vector<RowKey> keys;
  std::vector<size_t> at;
  for (size_t j = 0; j < unknown.size(); ++j) {
    if (where[j]) {
      keys.push_back(*where[j]);
      at.push_back(unknown_at[j]);
    } else {
      stale->insert(unknown[j]);
    }
  }
  ASSIGN_OR_RETURN(auto vecs, LoadRows(ctx, keys));
  for (size_t j = 0; j < vecs.size(); ++j) {
    if (vecs[j] != nullptr) out[at[j]] = FiniteOrWorst(model.ExactDistance(q, vecs[j]->data()));
  }
  return Status::Ok();
}

// Candidates (best first) without repeated anchors; every one is live (scans keep only
// live entries).
std::vector<Cand> Dedup(const std::vector<Cand>& cands) {
  std::vector<Cand> out;
  out.reserve(cands.size());
  std::unordered_set<uint64_t> seen;
  for (const Cand& c : cands) {
    if (seen.insert(c.anchor).second) out.push_back(c);
  }
  return out;
}

// The LiveEntries of buckets `which` (indices into `lists`) stored into `states`.
Status ComputeLive(const SearchContext& ctx, const std::vector<EntryList>& lists,
                   const std::vector<size_t>& which,
                   std::vector<std::shared_ptr<const LiveEntries>>* states) {
  if (which.empty()) return Status::Ok();
  std::vector<EntryList> sub;
  sub.reserve(which.size());
  for (size_t b : which) sub.push_back(lists[b]);
  ASSIGN_OR_RETURN(auto got, LoadLive(ctx, sub));
  for (size_t i = 0; i < which.size(); ++i) (*states)[which[i]] = std::move(got[i]);
  return Status::Ok();
}

// One query through the IVF index (spec/21 §7.2, §7.10). A bucket the handle's cache has
// seen before is scanned through its LiveEntries (stale entries skipped, re-rank vectors
// by location); a bucket touched for the first time is scanned whole and only the
// candidates it yields are located (one batched lookup), which keeps a one-shot search
// from looking up every probed entry. If any such candidate turns out stale, the live
// entries of every probed bucket are computed and the scan repeated, so a stale entry
// never displaces a live one from the answer.
Result<std::vector<Cand>> IvfSearchOne(const SearchContext& ctx, const vector::IvfModel& model,
                                       const IndexObject& ix, const float* q, uint32_t nprobe,
                                       const uint32_t* cell_sizes, uint64_t* scanned) {
  const SearchOptions& o = *ctx.options;
  std::unordered_set<uint64_t> rejected;  // handles the filters rejected
  size_t fetch = o.where.empty() ? o.k : std::max<size_t>(o.k * 4, 64);
  std::vector<std::shared_ptr<const Bucket>> buckets;
  std::vector<std::shared_ptr<const LiveEntries>> states;  // null: not computed (first touch)
  std::vector<EntryList> lists;
  std::vector<uint32_t> bucket_cell;
  bool loaded = false;
  std::vector<Cand> result;
  const bool ranged = o.start != 0 || o.end != UINT64_MAX;
  const ObjectId version_key = LiveVersionKey(*ctx.version);
  for (int round = 0; round < 12; ++round) {
    vector::SearchParams sp;
    sp.k = static_cast<uint32_t>(std::min<size_t>(fetch, UINT32_MAX));
    sp.nprobe = nprobe;
    sp.rerank = o.rerank;
    sp.cell_sizes = cell_sizes;
    ASSIGN_OR_RETURN(auto query, model.NewQuery(q, sp));
    if (!loaded) {
      const std::vector<uint32_t>& cells = query->probe_order();
      ASSIGN_OR_RETURN(auto ids, BucketsOf(*ctx.impl, ix, cells));
      std::vector<ObjectId> flat;
      for (size_t i = 0; i < cells.size(); ++i) {
        for (const auto& id : ids[i]) {
          flat.push_back(id);
          bucket_cell.push_back(cells[i]);
        }
      }
      ASSIGN_OR_RETURN(buckets, FetchBuckets(*ctx.impl, flat));
      lists.reserve(buckets.size());
      states.assign(buckets.size(), nullptr);
      std::vector<size_t> seen_before;
      for (size_t b = 0; b < buckets.size(); ++b) {
        if (buckets[b]->cell != bucket_cell[b]) {
          return Corrupt("spatial bucket " + flat[b].ToString() + " holds cell " +
                         std::to_string(buckets[b]->cell) + " but the directory lists it under " +
                         std::to_string(bucket_cell[b]));
        }
        RETURN_IF_ERROR(CheckBucketCodes(model, *buckets[b], flat[b]));
        lists.push_back(
            EntryList{flat[b], &buckets[b]->anchors, &buckets[b]->seg_tags, &buckets[b]->rows});
        const LiveKey key{version_key, flat[b]};
        states[b] = ctx.impl->vectors()->GetLive(key);
        if (states[b] == nullptr && ctx.impl->vectors()->TouchedBefore(key)) {
          seen_before.push_back(b);
        }
      }
      RETURN_IF_ERROR(ComputeLive(ctx, lists, seen_before, &states));
      loaded = true;
    }
    std::vector<uint64_t> handles;
    uint64_t total = 0;
    const std::function<bool(uint64_t)> keep = [&](uint64_t h) {
      const size_t b = h >> 32;
      const size_t e = h & 0xffffffffu;
      if (states[b] != nullptr && !states[b]->live[e]) return false;
      const uint64_t a = buckets[b]->anchors[e];
      return a >= o.start && a < o.end && (rejected.empty() || rejected.count(h) == 0);
    };
    for (size_t b = 0; b < buckets.size(); ++b) {
      const Bucket& bk = *buckets[b];
      handles.resize(bk.anchors.size());
      for (size_t i = 0; i < handles.size(); ++i) handles[i] = (uint64_t{b} << 32) | i;
      // Every entry of a bucket that is all live (or not yet known), with no range and
      // nothing rejected, is kept.
      const bool all = (states[b] == nullptr || states[b]->all_live) && !ranged && rejected.empty();
      RETURN_IF_ERROR(query->ScanCell(bk.cell, bk.codes, handles.data(), all ? nullptr : &keep));
      total += bk.anchors.size();
    }
    *scanned += total;
    std::unordered_set<uint64_t> stale;  // candidates of first-touch buckets found stale
    std::function<Status(const uint64_t*, size_t, float*)> exact = [&](const uint64_t* ids,
                                                                       size_t n, float* out) {
      return BucketDistances(ctx, model, q, buckets, states, ids, n, out, &stale);
    };
    ASSIGN_OR_RETURN(std::vector<vector::Neighbor> nn, query->Finish(o.rerank ? &exact : nullptr));
    if (!o.rerank) {
      std::vector<uint64_t> unknown;
      for (const auto& n : nn) {
        if (states[n.id >> 32] == nullptr) unknown.push_back(n.id);
      }
      if (!unknown.empty()) {
        ASSIGN_OR_RETURN(auto where, LocateEntries(ctx, buckets, unknown));
        for (size_t j = 0; j < unknown.size(); ++j) {
          if (!where[j]) stale.insert(unknown[j]);
        }
      }
    }
    if (!stale.empty()) {
      // Stale entries took places in the running top-k': compute every probed bucket's
      // live entries and scan again without them (spec/21 §6.2).
      std::vector<size_t> unknown;
      for (size_t b = 0; b < buckets.size(); ++b) {
        if (states[b] == nullptr) unknown.push_back(b);
      }
      RETURN_IF_ERROR(ComputeLive(ctx, lists, unknown, &states));
      continue;
    }
    std::vector<Cand> cands;
    cands.reserve(nn.size());
    for (const auto& n : nn) {
      uint64_t a = buckets[n.id >> 32]->anchors[n.id & 0xffffffffu];
      cands.push_back(Cand{n.id, a, n.distance, n.score});
    }
    const bool exhausted = cands.size() < fetch;
    std::vector<uint64_t> rej;
    ASSIGN_OR_RETURN(result, ApplyFilters(ctx, Dedup(cands), o.k, &rej));
    if (result.size() >= o.k) break;
    if (exhausted || rej.empty()) {
      // The probed cells hold fewer than k matches: widen the probe (spec/21 §7.2 step 6).
      // Handles name (bucket, entry) pairs, so they are reset with the buckets.
      const uint32_t current = nprobe != 0 ? nprobe : vector::DefaultNprobe(ix.cells);
      if (current >= ix.cells) break;
      nprobe = static_cast<uint32_t>(std::min<uint64_t>(ix.cells, uint64_t{current} * 4));
      loaded = false;
      buckets.clear();
      states.clear();
      lists.clear();
      bucket_cell.clear();
      rejected.clear();
      continue;
    }
    for (uint64_t h : rej) rejected.insert(h);
    fetch *= 4;
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Graph indexes (spec/21 §4.5, §5.6, §7.8)

// A decoded node page: its envelope (anchors, locations) and its node block.
struct NodePageData {
  NodePage page;
  std::shared_ptr<const vector::GraphNodeBlock> block;
};

// Handles of graph candidates: the node number with the top bit set (bucket entries of
// the tail use (bucket << 32) | entry, far below it).
constexpr uint64_t kNodeHandle = uint64_t{1} << 63;

Result<std::shared_ptr<const NodePageData>> LoadNodePage(const DatasetImpl& impl,
                                                         const ObjectId& id,
                                                         const vector::IvfModel& model) {
  return Load<NodePageData>(
      impl, id,
      [&model](ByteView bytes) -> Result<NodePageData> {
        NodePageData d;
        ASSIGN_OR_RETURN(d.page, DecodeNodePage(bytes));
        ASSIGN_OR_RETURN(d.block, vector::GraphNodeBlock::Decode(model, d.page.block));
        if (d.block->first() != d.page.first || d.block->count() != d.page.anchors.size()) {
          return Corrupt(
              "graph node page: its node block holds nodes " + std::to_string(d.block->first()) +
              " + " + std::to_string(d.block->count()) + ", the page says " +
              std::to_string(d.page.first) + " + " + std::to_string(d.page.anchors.size()));
        }
        d.page.block.clear();
        d.page.block.shrink_to_fit();
        return d;
      },
      [](const NodePageData& d) { return 20 * d.page.anchors.size() + d.block->MemoryBytes(); },
      "graph node page", true);
}

// Node pages of one index for one query, through the handle's spatial cache; Prefetch
// fetches missing pages in parallel (up to 8 requests in flight).
// Thread safety: one search at a time (GraphNodeSource contract); internally locked so
// that the prefetch workers may fill it.
class PagedNodeSource : public vector::GraphNodeSource {
 public:
  PagedNodeSource(const DatasetImpl& impl, const IndexObject& ix, const vector::IvfModel& model)
      : impl_(impl), graph_(*ix.graph), model_(model) {}

  Result<std::shared_ptr<const vector::GraphNodeBlock>> Block(uint32_t b) override {
    ASSIGN_OR_RETURN(auto page, Page(b));
    return page->block;
  }

  void Prefetch(const uint32_t* blocks, size_t n) override {
    std::vector<uint32_t> missing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < n; ++i) {
        if (blocks[i] < graph_.pages.size() && pages_.count(blocks[i]) == 0 &&
            std::find(missing.begin(), missing.end(), blocks[i]) == missing.end()) {
          missing.push_back(blocks[i]);
        }
      }
    }
    // Pages already in the handle's cache are taken now, without threads.
    std::vector<uint32_t> remote;
    for (uint32_t b : missing) {
      if (impl_.vectors()->Get<NodePageData>(graph_.pages[b]) != nullptr) {
        (void)Page(b);  // errors surface again from Block()
      } else {
        remote.push_back(b);
      }
    }
    missing = std::move(remote);
    if (missing.size() < 2) return;  // Block() fetches a single page when it is needed
    (void)ParallelFor(missing.size(), 8, [&](size_t i) {
      (void)Page(missing[i]);  // errors surface again from Block()
      return Status::Ok();
    });
  }

  Result<std::shared_ptr<const NodePageData>> Page(uint32_t b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pages_.find(b);
      if (it != pages_.end()) return it->second;
    }
    if (b >= graph_.pages.size()) {
      return Corrupt("graph index: node block " + std::to_string(b) + " is beyond its " +
                     std::to_string(graph_.pages.size()) + " node pages");
    }
    ASSIGN_OR_RETURN(auto page, LoadNodePage(impl_, graph_.pages[b], model_));
    const uint64_t first = uint64_t{b} * graph_.block;
    const uint64_t count = std::min<uint64_t>(graph_.block, graph_.nodes - first);
    if (page->page.first != first || page->page.anchors.size() != count) {
      return Corrupt("graph node page " + graph_.pages[b].ToString() + " holds nodes " +
                     std::to_string(page->page.first) + " + " +
                     std::to_string(page->page.anchors.size()) + ", expected " +
                     std::to_string(first) + " + " + std::to_string(count));
    }
    std::lock_guard<std::mutex> lock(mu_);
    pages_.emplace(b, page);
    return page;
  }

  // The page holding `node` (loaded by the search that visited it).
  Result<std::shared_ptr<const NodePageData>> PageOf(uint64_t node) {
    return Page(static_cast<uint32_t>(node / graph_.block));
  }
  uint32_t block() const { return graph_.block; }

 private:
  const DatasetImpl& impl_;
  const GraphInfo& graph_;
  const vector::IvfModel& model_;
  std::mutex mu_;
  std::unordered_map<uint32_t, std::shared_ptr<const NodePageData>> pages_;  // guarded by mu_
};

// One query through a graph index (spec/21 §7.8): the graph's top k' and the cell-0 tail's,
// merged; stale and filtered candidates dropped; ef widened x4 until k remain, else brute
// force. Walks and scans keep only entries live in this version (LiveEntries of the node
// pages and tail buckets), and re-rank reads its candidates' vectors (LoadRows).
Result<std::vector<Cand>> GraphSearchOne(const SearchContext& ctx, const vector::IvfModel& model,
                                         const IndexObject& ix, const float* q, uint64_t* scanned) {
  const SearchOptions& o = *ctx.options;
  const GraphInfo& g = *ix.graph;
  PagedNodeSource source(*ctx.impl, ix, model);
  std::unordered_set<uint64_t> rejected;  // handles the filters rejected
  size_t fetch = o.where.empty() ? o.k : std::max<size_t>(o.k * 4, 64);
  uint64_t ef = o.ef != 0 ? o.ef : vector::DefaultEf(static_cast<uint32_t>(fetch));
  // The tail: buckets of cell 0 (vectors appended since the build).
  ASSIGN_OR_RETURN(auto tail_ids, BucketsOf(*ctx.impl, ix, {0}));
  ASSIGN_OR_RETURN(auto buckets, FetchBuckets(*ctx.impl, tail_ids[0]));
  std::vector<EntryList> lists;
  for (size_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b]->cell != 0) {
      return Corrupt("spatial bucket " + tail_ids[0][b].ToString() + " holds cell " +
                     std::to_string(buckets[b]->cell) + " in a graph index (one cell)");
    }
    RETURN_IF_ERROR(CheckBucketCodes(model, *buckets[b], tail_ids[0][b]));
    lists.push_back(
        EntryList{tail_ids[0][b], &buckets[b]->anchors, &buckets[b]->seg_tags, &buckets[b]->rows});
  }
  ASSIGN_OR_RETURN(auto tail_states, LoadLive(ctx, lists));
  // Per node page visited: its page and LiveEntries.
  struct Visited {
    std::shared_ptr<const NodePageData> page;
    std::shared_ptr<const LiveEntries> live;
  };
  std::unordered_map<uint32_t, Visited> visited;
  auto visit = [&](uint64_t node) -> Result<const Visited*> {
    const auto b = static_cast<uint32_t>(node / g.block);
    auto it = visited.find(b);
    if (it == visited.end()) {
      Visited v;
      ASSIGN_OR_RETURN(v.page, source.PageOf(node));
      ASSIGN_OR_RETURN(auto live,
                       LoadLive(ctx, {EntryList{g.pages[b], &v.page->page.anchors,
                                                &v.page->page.seg_tags, &v.page->page.rows}}));
      v.live = std::move(live[0]);
      it = visited.emplace(b, std::move(v)).first;
    }
    return &it->second;
  };
  for (int round = 0;; ++round) {
    const auto k32 = static_cast<uint32_t>(std::min<size_t>(fetch, UINT32_MAX));
    std::vector<Cand> cands;
    // Graph.
    vector::GraphSearchParams gp;
    gp.k = k32;
    gp.ef = static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(ef, fetch), UINT32_MAX));
    gp.rerank = o.rerank;
    Status walk_error;
    std::function<bool(uint32_t)> keep_node = [&](uint32_t node) {
      auto v = visit(node);
      if (!v.ok()) {
        if (walk_error.ok()) walk_error = v.status();
        return false;
      }
      const size_t i = node - (*v)->page->page.first;
      if (!(*v)->live->live[i]) return false;
      const uint64_t a = (*v)->page->page.anchors[i];
      return a >= o.start && a < o.end &&
             (rejected.empty() || rejected.count(kNodeHandle | node) == 0);
    };
    std::function<Status(const uint64_t*, size_t, float*)> exact_nodes =
        [&](const uint64_t* ids, size_t n, float* out) -> Status {
      std::vector<std::pair<const LiveEntries*, size_t>> cands(n);
      for (size_t i = 0; i < n; ++i) {
        ASSIGN_OR_RETURN(const Visited* v, visit(ids[i]));
        cands[i] = {v->live.get(), ids[i] - v->page->page.first};
      }
      return LiveDistances(ctx, model, q, cands, out);
    };
    ASSIGN_OR_RETURN(std::vector<vector::Neighbor> nn,
                     vector::GraphSearch(model, g.block, g.entry, source, q, gp, &keep_node,
                                         o.rerank ? &exact_nodes : nullptr));
    RETURN_IF_ERROR(walk_error);
    const bool graph_exhausted = gp.ef >= g.nodes;
    for (const auto& n : nn) {
      ASSIGN_OR_RETURN(const Visited* v, visit(n.id));
      cands.push_back(Cand{kNodeHandle | n.id, v->page->page.anchors[n.id - v->page->page.first],
                           n.distance, n.score});
    }
    *scanned += std::min<uint64_t>(gp.ef, g.nodes);
    // Tail.
    if (!buckets.empty()) {
      vector::SearchParams sp;
      sp.k = k32;
      sp.nprobe = 1;
      sp.rerank = o.rerank;
      ASSIGN_OR_RETURN(auto query, model.NewQuery(q, sp));
      std::vector<uint64_t> handles;
      std::function<bool(uint64_t)> keep = [&](uint64_t h) {
        const size_t b = h >> 32;
        const size_t e = h & 0xffffffffu;
        if (!tail_states[b]->live[e]) return false;
        const uint64_t a = buckets[b]->anchors[e];
        return a >= o.start && a < o.end && (rejected.empty() || rejected.count(h) == 0);
      };
      for (size_t b = 0; b < buckets.size(); ++b) {
        const Bucket& bk = *buckets[b];
        handles.resize(bk.anchors.size());
        for (size_t i = 0; i < handles.size(); ++i) handles[i] = (uint64_t{b} << 32) | i;
        RETURN_IF_ERROR(query->ScanCell(0, bk.codes, handles.data(), &keep));
        *scanned += bk.anchors.size();
      }
      std::function<Status(const uint64_t*, size_t, float*)> exact = [&](const uint64_t* ids,
                                                                         size_t n, float* out) {
        // Tail buckets always have their LiveEntries: nothing is located, nothing stale.
        std::unordered_set<uint64_t> none;
        return BucketDistances(ctx, model, q, buckets, tail_states, ids, n, out, &none);
      };
      ASSIGN_OR_RETURN(std::vector<vector::Neighbor> tn,
                       query->Finish(o.rerank ? &exact : nullptr));
      for (const auto& n : tn) {
        cands.push_back(
            Cand{n.id, buckets[n.id >> 32]->anchors[n.id & 0xffffffffu], n.distance, n.score});
      }
    }
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Cand& a, const Cand& b) { return a.distance < b.distance; });
    if (cands.size() > fetch) cands.resize(fetch);
    std::vector<uint64_t> rej;
    ASSIGN_OR_RETURN(auto result, ApplyFilters(ctx, Dedup(cands), o.k, &rej));
    if (result.size() >= o.k) return result;
    if (graph_exhausted || round >= 16) {
      // The graph has been walked whole: brute force finds every match (spec/21 §7.8).
      std::vector<std::vector<Cand>> exact_out;
      RETURN_IF_ERROR(ExactSearch(ctx, q, 1, model.dim(), &exact_out, scanned));
      return exact_out[0];
    }
    for (uint64_t h : rej) rejected.insert(h);
    fetch *= 4;
    ef = std::min<uint64_t>(std::max<uint64_t>(ef, fetch) * 4, g.nodes);
  }
}

}  // namespace

DefaultSetting DefaultSettingOf(const IndexObject& ix, double recall) {
  DefaultSetting d;
  if (ix.calibration) {
    d.calibrated = true;
    const uint32_t s = recall > 0 ? PickSetting(*ix.calibration, recall) : ix.calibration->setting;
    (ix.graph ? d.ef : d.nprobe) = s;
  } else if (ix.graph) {
    d.ef = vector::DefaultEf(10);
  } else {
    d.nprobe = ix.nprobe != 0 ? ix.nprobe : vector::DefaultNprobe(ix.cells);
  }
  d.nprobe = std::min(d.nprobe, ix.cells);
  return d;
}

// ---------------------------------------------------------------------------------------
// Append assignment (spec/21 §6.1)

Status IndexAppend(DatasetImpl& impl, const Version& base, const std::vector<uint64_t>& row_anchors,
                   const std::vector<AppendedVectors>& vecs, dataset::Manifest* m,
                   uint64_t* objects_written) {
  m->indexes = base.manifest.indexes;
  for (auto it = m->indexes.begin(); it != m->indexes.end();) {
    const FieldSpec* f = m->schema.Find(it->first);
    if (f == nullptr || f->type != FieldType::kEmbedding) {
      it = m->indexes.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& v : vecs) {
    auto found = m->indexes.find(v.field);
    if (found == m->indexes.end()) continue;
    ASSIGN_OR_RETURN(auto ix, LoadIndex(impl, found->second));
    ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix->model));
    const size_t dim = ix->dim;
    const Column& col = *v.values;
    if (col.field().dim != dim) {
      return Internal("field " + Quote(v.field) + " has dim " + std::to_string(col.field().dim) +
                      " but its index has " + std::to_string(dim));
    }
    std::vector<uint64_t> rows;
    const bool cosine = model->params().metric == vector::Metric::kCosine;
    for (uint64_t r = 0; r < col.length(); ++r) {
      // A zero vector has no direction: cosine indexes leave it out (spec/21 §6.3).
      // Non-finite values (older versions' data met by a build's rebase; appends refuse
      // them) have no cell (spec/21 §6.4).
      if (col.IsValid(r) && AllFinite(col.FloatsAt(r).data(), dim) &&
          !(cosine && vector::NormSqr(col.FloatsAt(r).data(), dim) == 0)) {
        rows.push_back(r);
      }
    }
    if (rows.empty()) continue;
    std::vector<float> data(rows.size() * dim);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(data.data() + i * dim, col.FloatsAt(rows[i]).data(), dim * sizeof(float));
    }
    std::vector<uint32_t> cells(rows.size());
    {
      Status s = model->Assign(data.data(), rows.size(), cells.data());
      if (!s.ok()) return s.WithContext("field " + Quote(v.field));
    }
    std::map<uint32_t, std::vector<size_t>> by_cell;
    for (size_t i = 0; i < rows.size(); ++i) by_cell[cells[i]].push_back(i);
    IndexObject next = *ix;
    next.parents = {found->second};
    std::map<uint32_t, DirPage> touched;
    for (auto& [cell, members] : by_cell) {
      Bucket b;
      b.cell = cell;
      std::vector<float> cv(members.size() * dim);
      for (size_t j = 0; j < members.size(); ++j) {
        size_t i = members[j];
        uint64_t r = rows[i];
        b.anchors.push_back(row_anchors[r]);
        b.seg_tags.push_back(SegmentTag((*v.segments)[(*v.seg)[r]]));
        b.rows.push_back((*v.row)[r]);
        std::memcpy(cv.data() + j * dim, data.data() + i * dim, dim * sizeof(float));
      }
      ASSIGN_OR_RETURN(b.codes, model->EncodeCell(cell, cv.data(), members.size()));
      uint32_t p = cell / kCellsPerPage;
      auto t = touched.find(p);
      if (t == touched.end()) {
        ASSIGN_OR_RETURN(auto page, LoadPage(impl, ix->pages[p]));
        t = touched.emplace(p, *page).first;
      }
      std::vector<ObjectId>& list = t->second.buckets[cell - p * kCellsPerPage];
      next.entries += members.size();
      if (list.size() + 1 >= kMaxBucketsPerCell) {
        // Compaction (spec/21 §5.5): the cell's buckets and the new entries become one
        // bucket, so a query never fetches more than kMaxBucketsPerCell per cell.
        ASSIGN_OR_RETURN(auto olds, FetchBuckets(impl, list));
        Bucket merged;
        merged.cell = cell;
        for (size_t i = 0; i <= olds.size(); ++i) {
          const Bucket& part = i < olds.size() ? *olds[i] : b;
          merged.anchors.insert(merged.anchors.end(), part.anchors.begin(), part.anchors.end());
          merged.seg_tags.insert(merged.seg_tags.end(), part.seg_tags.begin(), part.seg_tags.end());
          merged.rows.insert(merged.rows.end(), part.rows.begin(), part.rows.end());
          if (i == 0) {
            merged.codes = part.codes;
          } else {
            RETURN_IF_ERROR(model->AppendCodes(&merged.codes, part.codes));
          }
        }
        next.buckets -= list.size();
        b = std::move(merged);
        list.clear();
      }
      ASSIGN_OR_RETURN(ObjectId bid, impl.store().Put(EncodeBucket(b)));
      ++*objects_written;
      list.push_back(bid);
      next.buckets += 1;
    }
    for (auto& [p, page] : touched) {
      ASSIGN_OR_RETURN(Bytes pb, EncodeDirPage(page));
      ASSIGN_OR_RETURN(next.pages[p], impl.store().Put(pb));
      ++*objects_written;
    }
    ASSIGN_OR_RETURN(Bytes ib, EncodeIndex(next));
    ASSIGN_OR_RETURN(ObjectId nid, impl.store().Put(ib));
    ++*objects_written;
    found->second = nid;
  }
  return Status::Ok();
}

Status IndexMerged(DatasetImpl& impl, const btree::IndexRef& merged,
                   const std::map<std::string, std::vector<uint64_t>>& changed,
                   dataset::Manifest* m, uint64_t* objects_written,
                   std::vector<std::string>* updated) {
  constexpr size_t kChunk = 65536;
  btree::Tree tree(&impl.store(), impl.pages(), merged);
  for (const auto& [field, anchors] : changed) {
    if (anchors.empty() || m->indexes.count(field) == 0) continue;
    const FieldSpec* spec = m->schema.Find(field);
    if (spec == nullptr || spec->type != FieldType::kEmbedding) continue;
    for (size_t first = 0; first < anchors.size(); first += kChunk) {
      const size_t n = std::min(kChunk, anchors.size() - first);
      std::vector<uint64_t> chunk(anchors.begin() + static_cast<ptrdiff_t>(first),
                                  anchors.begin() + static_cast<ptrdiff_t>(first + n));
      ASSIGN_OR_RETURN(auto entries, tree.LookupMany(chunk));
      ASSIGN_OR_RETURN(FieldValues fv, FetchField(impl, entries, *spec));
      Column values(*spec);
      std::vector<ObjectId> segments;
      std::unordered_map<ObjectId, uint32_t> seg_of;
      std::vector<uint64_t> row_anchors;
      std::vector<uint32_t> seg, row;
      for (size_t i = 0; i < n; ++i) {
        const btree::FieldLoc* loc = entries[i] ? entries[i]->Find(field) : nullptr;
        if (loc == nullptr || !fv.Has(i)) continue;  // the value was removed
        auto [it, fresh] = seg_of.emplace(loc->segment, static_cast<uint32_t>(segments.size()));
        if (fresh) segments.push_back(loc->segment);
        values.AppendRange(fv.ColumnOf(i), fv.row[i], fv.row[i] + 1);
        row_anchors.push_back(chunk[i]);
        seg.push_back(it->second);
        row.push_back(loc->row);
      }
      if (row_anchors.empty()) continue;
      AppendedVectors vecs{field, &values, &segments, &seg, &row};
      Version base;  // IndexAppend starts from base.manifest.indexes
      base.manifest.indexes = m->indexes;
      RETURN_IF_ERROR(IndexAppend(impl, base, row_anchors, {vecs}, m, objects_written)
                          .WithContext("assigning merged vectors of field " + Quote(field) +
                                       " to its spatial index"));
    }
    updated->push_back(field);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Verify (spec/21 §9)

namespace {

// Checks one manifest's spatial indexes; see VerifyIndexes.
class IndexVerifier {
 public:
  IndexVerifier(VerifyMemo* memo,
                const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check,
                const std::function<Result<Bytes>(const ObjectId&)>& load,
                const std::function<void(std::string)>& problem)
      : memo_(*memo), check_(check), load_(load), problem_(problem) {}

  void Run(const dataset::Manifest& m) {
    for (const auto& [field, id] : m.indexes) {
      const std::string what = "spatial index of field '" + field + "'";
      auto facts = memo_.indexes.find(id);
      if (facts == memo_.indexes.end()) facts = memo_.indexes.emplace(id, First(id, what)).first;
      if (!facts->second.intact) continue;
      // Per manifest: the index must fit this manifest's schema (search reads the field's
      // declaration and feeds queries of its dim to the model).
      const FieldSpec* spec = m.schema.Find(field);
      if (facts->second.field != field) {
        problem_(what + " " + id.ToString() + " names field " + Quote(facts->second.field));
      }
      if (spec == nullptr || spec->type != FieldType::kEmbedding) {
        problem_(what + " " + id.ToString() + ": the manifest's schema has no embedding field " +
                 Quote(field));
      } else if (spec->dim != facts->second.dim) {
        problem_(what + " " + id.ToString() + " has dim " + std::to_string(facts->second.dim) +
                 " but field " + Quote(field) + " has dim " + std::to_string(spec->dim));
      }
    }
  }

 private:
  // The bytes of an object verify reads in a new role: fetched and hash-checked the first
  // time, fetched again when it was checked before in another role (an id listed as a
  // bucket that is really a model must still be decoded as a bucket). False (reported)
  // when missing or damaged.
  bool Fetch(const ObjectId& id, const std::string& what, Bytes* out) {
    const int c = check_(id, what, out);
    if (c > 0) return true;
    if (c < 0) return false;
    auto again = load_(id);
    if (!again.ok()) {
      problem_(what + " " + id.ToString() + ": " + again.status().ToString());
      return false;
    }
    *out = std::move(again).value();
    return true;
  }

  // The first visit of an index object: everything under it.
  VerifyMemo::IndexFacts First(const ObjectId& id, const std::string& what) {
    VerifyMemo::IndexFacts facts;
    Bytes bytes;
    if (!Fetch(id, what, &bytes)) return facts;
    auto ix = DecodeIndex(bytes);
    if (!ix.ok()) {
      problem_(what + " " + id.ToString() + ": " + ix.status().ToString());
      return facts;
    }
    facts = {true, ix->field, ix->dim};
    const std::string here = what + " " + id.ToString();
    std::shared_ptr<const vector::IvfModel> model = Model(ix->model, what + " model");
    if (model != nullptr) CheckModel(*ix, *model, here);
    if (ix->graph) Graph(*ix, model.get(), what);
    uint64_t entries = 0, buckets = 0;
    bool complete = true;
    for (size_t p = 0; p < ix->pages.size(); ++p) {
      const VerifyMemo::DirFacts& d = DirPage(ix->pages[p], model.get(), what);
      if (!d.intact) {
        complete = false;
        continue;
      }
      const uint64_t first = uint64_t{p} * kCellsPerPage;
      const uint64_t cells = std::min<uint64_t>(kCellsPerPage, ix->cells - first);
      if (d.first != first || d.cells != cells) {
        problem_(here + ": directory page " + ix->pages[p].ToString() + " holds cells " +
                 std::to_string(d.first) + " + " + std::to_string(d.cells) + ", expected " +
                 std::to_string(first) + " + " + std::to_string(cells));
      }
      entries += d.entries;
      buckets += d.buckets;
      complete = complete && d.complete;
    }
    if (complete && (entries != ix->entries || buckets != ix->buckets)) {
      problem_(here + " says " + std::to_string(ix->entries) + " entries in " +
               std::to_string(ix->buckets) + " buckets, found " + std::to_string(entries) + " in " +
               std::to_string(buckets));
    }
    return facts;
  }

  // The decoded model (from the memo, else fetched), or null when missing or damaged
  // (reported once).
  std::shared_ptr<const vector::IvfModel> Model(const ObjectId& id, const std::string& what) {
    if (memo_.bad_models.count(id) != 0) return nullptr;
    for (auto it = memo_.models.begin(); it != memo_.models.end(); ++it) {
      if (it->first == id) {
        memo_.models.splice(memo_.models.begin(), memo_.models, it);
        return it->second;
      }
    }
    Bytes bytes;
    const int c = check_(id, what, &bytes);
    if (c < 0) {
      memo_.bad_models.insert(id);
      return nullptr;
    }
    if (c == 0) {  // checked before, evicted from the memo since
      auto again = load_(id);
      if (!again.ok()) {
        problem_(what + " " + id.ToString() + ": " + again.status().ToString());
        memo_.bad_models.insert(id);
        return nullptr;
      }
      bytes = std::move(again).value();
    }
    auto model = vector::IvfModel::Deserialize(bytes);
    if (!model.ok()) {
      problem_(what + " " + id.ToString() + ": " + model.status().ToString());
      memo_.bad_models.insert(id);
      return nullptr;
    }
    memo_.models.emplace_front(id, *model);
    constexpr size_t kModelsKept = 4;
    if (memo_.models.size() > kModelsKept) memo_.models.pop_back();
    return *model;
  }

  void CheckModel(const IndexObject& ix, const vector::IvfModel& model, const std::string& here) {
    const auto& params = model.params();
    const bool pq = model.pq() != nullptr;
    const auto algorithm =
        ix.algorithm == "graph"
            ? vector::IvfParams::Algorithm::kIvf
            : vector::ParseAlgorithm(ix.algorithm).value_or(vector::IvfParams::Algorithm::kIvf);
    std::string diff;
    auto note = [&](const std::string& what, const std::string& index, const std::string& m) {
      if (index != m) diff += (diff.empty() ? "" : ", ") + what + " " + index + " vs " + m;
    };
    note("dim", std::to_string(ix.dim), std::to_string(model.dim()));
    note("cells", std::to_string(ix.cells), std::to_string(model.num_cells()));
    note("metric", ix.metric, std::string(vector::MetricName(params.metric)));
    note("bits", std::to_string(ix.bits), std::to_string(params.bits));
    note("quantizer", ix.quantizer, pq ? "pq4" : "rabitq");
    note("algorithm", std::string(vector::AlgorithmName(algorithm)),
         std::string(vector::AlgorithmName(model.algorithm())));
    if (!diff.empty())
      problem_(here + " does not match its model " + ix.model.ToString() + ": " + diff);
  }

  // The memo's facts of object `id` when already checked (*fresh stays null). Otherwise
  // new facts (not intact), then the object fetched (`fetch_what` names it to check_) and
  // decoded; a fetch or decode failure is reported once (as `name`: the decode error) and
  // leaves *fresh null; on success *fresh points at the new facts and *decoded holds the
  // object, for the caller to fill the facts from.
  template <typename Facts, typename T>
  const Facts& FetchOnce(std::unordered_map<ObjectId, Facts>& memo, const ObjectId& id,
                         const std::string& fetch_what, const std::string& name,
                         Result<T> (*decode)(ByteView), Facts** fresh, std::optional<T>* decoded) {
    auto it = memo.find(id);
    if (it != memo.end()) return it->second;
    Facts& f = memo[id];
    Bytes bytes;
    if (!Fetch(id, fetch_what, &bytes)) return f;
    auto v = decode(bytes);
    if (!v.ok()) {
      problem_(name + ": " + v.status().ToString());
      return f;
    }
    decoded->emplace(std::move(*v));
    *fresh = &f;
    return f;
  }

  // A directory page's facts; on its first visit, its buckets are fetched, decoded and
  // checked against the cell that lists them and (with the model) their codes.
  const VerifyMemo::DirFacts& DirPage(const ObjectId& id, const vector::IvfModel* model,
                                      const std::string& what) {
    VerifyMemo::DirFacts* fresh = nullptr;
    std::optional<vindex::DirPage> page;
    const VerifyMemo::DirFacts& known =
        FetchOnce(memo_.dir_pages, id, what + " directory page",
                  what + " directory page " + id.ToString(), DecodeDirPage, &fresh, &page);
    if (fresh == nullptr) return known;
    VerifyMemo::DirFacts& d = *fresh;
    d.intact = true;
    d.first = page->first;
    d.cells = static_cast<uint32_t>(page->buckets.size());
    for (size_t c = 0; c < page->buckets.size(); ++c) {
      const uint32_t cell = page->first + static_cast<uint32_t>(c);
      for (const auto& bid : page->buckets[c]) {
        ++d.buckets;
        const VerifyMemo::BucketFacts& b = Bucket(bid, model, what);
        if (!b.intact) {
          d.complete = false;
          continue;
        }
        d.entries += b.entries;
        if (b.cell != cell) {
          problem_(what + " bucket " + bid.ToString() + " holds cell " + std::to_string(b.cell) +
                   " but is listed under cell " + std::to_string(cell));
        }
      }
    }
    return d;
  }

  // A bucket's facts; the first time, fetched, decoded and its codes checked against the
  // model (one code per entry).
  const VerifyMemo::BucketFacts& Bucket(const ObjectId& id, const vector::IvfModel* model,
                                        const std::string& what) {
    VerifyMemo::BucketFacts* fresh = nullptr;
    std::optional<vindex::Bucket> b;
    const VerifyMemo::BucketFacts& known =
        FetchOnce(memo_.buckets, id, what + " bucket", what + " bucket " + id.ToString(),
                  DecodeBucket, &fresh, &b);
    if (fresh == nullptr) return known;
    VerifyMemo::BucketFacts& f = *fresh;
    f = {true, b->cell, b->anchors.size()};
    if (model == nullptr) return f;
    auto count = model->CellCount(b->codes);
    if (!count.ok()) {
      problem_(what + " bucket " + id.ToString() + ": " + count.status().ToString());
    } else if (*count != b->anchors.size()) {
      problem_(what + " bucket " + id.ToString() + " holds " + std::to_string(b->anchors.size()) +
               " entries but codes for " + std::to_string(*count));
    }
    return f;
  }

  // Node pages (spec/21 §9): each page's position in every index object that lists it;
  // the first time, its envelope, its node block (with the model) and its neighbour ids
  // against the graph's size.
  void Graph(const IndexObject& ix, const vector::IvfModel* model, const std::string& what) {
    const GraphInfo& g = *ix.graph;
    for (size_t p = 0; p < g.pages.size(); ++p) {
      const std::string here = what + " node page " + g.pages[p].ToString();
      const VerifyMemo::NodePageFacts& f = NodePage(g.pages[p], model, here);
      if (!f.intact) continue;
      const uint64_t first = uint64_t{p} * g.block;
      const uint64_t count = std::min<uint64_t>(g.block, g.nodes - first);
      if (f.first != first || f.count != count) {
        problem_(here + " holds nodes " + std::to_string(f.first) + " + " +
                 std::to_string(f.count) + ", expected " + std::to_string(first) + " + " +
                 std::to_string(count));
      }
      if (f.neighbours_below > g.nodes) {
        problem_(here + " has a neighbour " + std::to_string(f.neighbours_below - 1) +
                 " beyond the graph's " + std::to_string(g.nodes) + " nodes");
      }
    }
  }

  const VerifyMemo::NodePageFacts& NodePage(const ObjectId& id, const vector::IvfModel* model,
                                            const std::string& here) {
    VerifyMemo::NodePageFacts* fresh = nullptr;
    std::optional<vindex::NodePage> page;
    const VerifyMemo::NodePageFacts& known = FetchOnce(
        memo_.node_pages, id, here.substr(0, here.rfind(' ')), here, DecodeNodePage, &fresh, &page);
    if (fresh == nullptr) return known;
    VerifyMemo::NodePageFacts& f = *fresh;
    f = {true, page->first, page->anchors.size()};
    if (model == nullptr) return f;
    auto block = vector::GraphNodeBlock::Decode(*model, page->block);
    if (!block.ok()) {
      problem_(here + ": " + block.status().ToString());
      return f;
    }
    if ((*block)->first() != page->first || (*block)->count() != page->anchors.size()) {
      problem_(here + ": its node block does not match the page's nodes");
      return f;
    }
    // Checked against the size of every graph that lists the page (Graph above).
    for (uint32_t i = 0; i < (*block)->count(); ++i) {
      for (uint32_t n : (*block)->neighbors(i)) {
        f.neighbours_below = std::max<uint64_t>(f.neighbours_below, uint64_t{n} + 1);
      }
    }
    return f;
  }

  VerifyMemo& memo_;
  const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check_;
  const std::function<Result<Bytes>(const ObjectId&)>& load_;
  const std::function<void(std::string)>& problem_;
};

}  // namespace

void VerifyIndexes(const dataset::Manifest& m, VerifyMemo* memo,
                   const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check,
                   const std::function<Result<Bytes>(const ObjectId&)>& load,
                   const std::function<void(std::string)>& problem) {
  IndexVerifier(memo, check, load, problem).Run(m);
}

uint32_t DefaultIndexNprobe(vector::IvfParams::Algorithm algorithm, uint32_t cells) {
  if (algorithm == vector::IvfParams::Algorithm::kIvf) return 0;
  const auto scaled = static_cast<uint32_t>(std::lround(1.25 * std::sqrt(double(cells))));
  return std::min(cells, std::max<uint32_t>(16, scaled));
}

}  // namespace vindex

// ---------------------------------------------------------------------------------------
// Dataset API

namespace {

Result<const FieldSpec*> EmbeddingField(const Schema& schema, std::string_view field,
                                        std::string_view op) {
  const FieldSpec* f = schema.Find(field);
  if (f == nullptr) {
    std::string known;
    for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
    return InvalidArgument(std::string(op) + ": unknown field " + Quote(field) +
                           " (the schema has: " + known + ")");
  }
  if (f->type != FieldType::kEmbedding) {
    return InvalidArgument(std::string(op) + ": field " + Quote(field) + " is " +
                           std::string(FieldTypeName(f->type)) + ", not an embedding");
  }
  return f;
}

}  // namespace

Result<SearchResults> Dataset::Search(std::string_view field, const float* queries, size_t nq,
                                      size_t dim, const SearchOptions& options) const {
  auto version = impl_->current();
  const Schema& schema = version->manifest.schema;
  ASSIGN_OR_RETURN(const FieldSpec* spec, EmbeddingField(schema, field, "search"));
  if (options.k == 0) return InvalidArgument("search: k must be at least 1");
  if (nq == 0 || queries == nullptr) return InvalidArgument("search: no query vectors given");
  if (dim != spec->dim) {
    return InvalidArgument("search: the query has dimension " + std::to_string(dim) +
                           " but field " + Quote(field) + " has dim " + std::to_string(spec->dim));
  }
  for (size_t i = 0; i < nq * dim; ++i) {
    if (!std::isfinite(queries[i])) {
      return InvalidArgument("search: query " + std::to_string(i / dim) + " has a " +
                             (std::isnan(queries[i]) ? "NaN" : "infinite") + " component at " +
                             std::to_string(i % dim));
    }
  }
  if (options.start > options.end) {
    return InvalidArgument("search: start anchor " + std::to_string(options.start) +
                           " is after end anchor " + std::to_string(options.end));
  }
  if (!(options.recall >= 0 && options.recall <= 1)) {
    return InvalidArgument("search: recall must be in (0, 1], not " +
                           std::to_string(options.recall));
  }
  SearchOptions eff = options;  // with the setting resolved (graph: ef)
  vindex::SearchContext ctx;
  ctx.impl = impl_.get();
  ctx.version = version.get();
  ctx.spec = spec;
  ctx.options = &eff;
  for (const auto& p : options.where) {
    RETURN_IF_ERROR(CheckPredicate(schema, p));
    ctx.filter_specs.push_back(schema.Find(p.field));
  }
  // Projection.
  std::vector<FieldSpec> project;
  for (const auto& n : options.fields) {
    const FieldSpec* f = schema.Find(n);
    if (f == nullptr) {
      std::string known;
      for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
      return InvalidArgument("search: unknown field " + Quote(n) + " (the schema has: " + known +
                             ")");
    }
    if (std::any_of(project.begin(), project.end(),
                    [&](const FieldSpec& s) { return s.name == n; })) {
      return InvalidArgument("search: field " + Quote(n) + " is requested twice");
    }
    project.push_back(*f);
  }
  SearchResults out;
  auto idx = version->manifest.indexes.find(std::string(field));
  const bool use_index = !options.exact && idx != version->manifest.indexes.end();
  std::vector<std::vector<vindex::Cand>> per(nq);
  uint64_t scanned = 0;
  if (!use_index) {
    std::string metric = "cosine";
    if (spec->index) metric = spec->index->metric;
    if (idx != version->manifest.indexes.end()) {
      ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*impl_, idx->second));
      metric = ix->metric;
    }
    ASSIGN_OR_RETURN(ctx.metric, vindex::MetricOf(metric));
    out.metric = metric;
    RETURN_IF_ERROR(vindex::ExactSearch(ctx, queries, nq, dim, &per, &scanned));
  } else {
    ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*impl_, idx->second));
    ASSIGN_OR_RETURN(ctx.metric, vindex::MetricOf(ix->metric));
    ASSIGN_OR_RETURN(vindex::ModelPtr model, vindex::LoadModel(*impl_, ix->model));
    // Queries have the field's dim and the model reads that many floats of each.
    if (model->dim() != spec->dim || ix->dim != spec->dim || model->num_cells() != ix->cells) {
      return Corrupt("spatial index " + idx->second.ToString() + " of field " + Quote(field) +
                     " (dim " + std::to_string(ix->dim) + ", " + std::to_string(ix->cells) +
                     " cells) does not match its model (dim " + std::to_string(model->dim()) +
                     ", " + std::to_string(model->num_cells()) + " cells) or the field (dim " +
                     std::to_string(spec->dim) + ")");
    }
    out.metric = ix->metric;
    out.used_index = true;
    const bool graph = ix->graph.has_value();
    // The setting (spec/21 §7.9): the request's; else from the calibration (the stored
    // setting, or the one for the requested recall); else the built-in defaults.
    const vindex::DefaultSetting d = vindex::DefaultSettingOf(*ix, options.recall);
    uint32_t nprobe = std::min(options.nprobe != 0 ? options.nprobe : d.nprobe, ix->cells);
    out.nprobe = nprobe;
    if (graph) {
      out.nprobe = 0;
      const size_t fetch = options.where.empty() ? options.k : std::max<size_t>(options.k * 4, 64);
      const uint32_t ef_default =
          d.calibrated
              ? d.ef
              : vector::DefaultEf(static_cast<uint32_t>(std::min<size_t>(fetch, UINT32_MAX)));
      eff.ef = options.ef != 0 ? options.ef : ef_default;
      out.ef = eff.ef;
    }
    // imi and lsh leave many cells empty: skip them so they do not count toward nprobe.
    std::vector<uint32_t> cell_sizes;
    if (!graph && model->algorithm() != vector::IvfParams::Algorithm::kIvf) {
      ASSIGN_OR_RETURN(cell_sizes, vindex::CellBucketCounts(*impl_, *ix));
    }
    const uint32_t* sizes = cell_sizes.empty() ? nullptr : cell_sizes.data();
    std::atomic<uint64_t> total{0};
    const Status searched = vindex::ParallelFor(nq, options.threads, [&](size_t q) -> Status {
      uint64_t s = 0;
      if (graph) {
        ASSIGN_OR_RETURN(per[q], vindex::GraphSearchOne(ctx, *model, *ix, queries + q * dim, &s));
      } else {
        ASSIGN_OR_RETURN(
            per[q], vindex::IvfSearchOne(ctx, *model, *ix, queries + q * dim, nprobe, sizes, &s));
      }
      total += s;
      return Status::Ok();
    });
    RETURN_IF_ERROR(searched);
    scanned = total;
  }
  out.candidates = scanned;
  out.offsets.push_back(0);
  for (size_t q = 0; q < nq; ++q) {
    for (const auto& c : per[q]) {
      out.query.push_back(static_cast<uint32_t>(q));
      out.anchors.push_back(c.anchor);
      out.scores.push_back(c.score);
    }
    out.offsets.push_back(out.anchors.size());
  }
  if (!project.empty()) {
    std::vector<std::string> names;
    for (const auto& f : project) names.push_back(f.name);
    // Results come from this version, so every anchor is live in it.
    std::vector<uint64_t> sorted = out.anchors;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    btree::Tree tree(&impl_->store(), impl_->pages(), version->index);
    ASSIGN_OR_RETURN(auto entries, tree.LookupMany(sorted));
    for (const auto& f : project) {
      ASSIGN_OR_RETURN(vindex::FieldValues fv, vindex::FetchField(*impl_, entries, f));
      Column col(f);
      for (uint64_t a : out.anchors) {
        size_t i =
            static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), a) - sorted.begin());
        if (fv.Has(i)) {
          col.AppendRange(fv.ColumnOf(i), fv.row[i], fv.row[i] + 1);
        } else {
          col.AppendNull();
        }
      }
      out.columns.push_back(std::move(col));
    }
  }
  return out;
}

Result<IndexInfo> Dataset::IndexStatus(std::string_view field) const {
  auto version = impl_->current();
  ASSIGN_OR_RETURN(const FieldSpec* spec,
                   EmbeddingField(version->manifest.schema, field, "index status"));
  IndexInfo info;
  info.field = std::string(field);
  info.dim = spec->dim;
  if (spec->index) {
    info.algorithm = spec->index->algorithm;
    info.quantizer = spec->index->quantizer;
    info.metric = spec->index->metric;
    info.bits = spec->index->bits;
    info.cells = spec->index->cells;
  }
  // Live values of the field: anchor-index leaves only, no segments.
  btree::Tree tree(&impl_->store(), impl_->pages(), version->index);
  btree::Cursor cursor = tree.Scan();
  for (;;) {
    ASSIGN_OR_RETURN(auto span, cursor.NextLeaf());
    if (!span) break;
    const btree::LeafField* lf = span->leaf->FindField(spec->name);
    if (lf == nullptr) continue;
    for (size_t i = span->begin; i < span->end; ++i) {
      if (lf->seg[i] != btree::kNoSegment) ++info.live;
    }
  }
  auto it = version->manifest.indexes.find(std::string(field));
  if (it == version->manifest.indexes.end()) return info;
  ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*impl_, it->second));
  info.built = true;
  info.index = it->second;
  info.model = ix->model;
  info.algorithm = ix->algorithm;
  info.metric = ix->metric;
  info.bits = ix->bits;
  info.cells = ix->cells;
  info.nprobe = ix->nprobe;
  info.quantizer = ix->quantizer;
  info.entries = ix->entries;
  info.buckets = ix->buckets;
  if (ix->graph) {
    info.nodes = ix->graph->nodes;
    info.tail = ix->entries;
    info.entries = ix->graph->nodes + ix->entries;
    info.degree = ix->graph->degree;
  }
  info.stale = info.entries > info.live ? info.entries - info.live : 0;
  const vindex::DefaultSetting d = vindex::DefaultSettingOf(*ix, 0);
  info.nprobe = d.nprobe;
  info.ef = d.ef;
  if (ix->calibration) {
    const vindex::Calibration& c = *ix->calibration;
    info.calibration_queries = c.queries;
    info.calibration_k = c.k;
    for (const auto& [setting, recall] : c.curve) {
      info.calibration_curve.emplace_back(setting, recall / 10000.0);
      if (setting == c.setting) info.calibration_recall = recall / 10000.0;
    }
  }
  return info;
}

namespace vindex {
namespace {

// The next setting a calibration measures: +1 up to 8, then +25% (8, 10, 12, 15, 18, ...).
uint32_t NextSetting(uint32_t s) { return s < 8 ? s + 1 : s + std::max<uint32_t>(1, s / 4); }

// Calibration (spec/21 §8.5): recall@k of `ix` (its objects already put) against brute
// force over `version`, on a sample of the vectors it indexes, per setting; stores the
// curve and the setting reaching kCalibrationTarget in ix->calibration. Each sample vector
// is a query whose own record is left out of both answers (it would match itself), so
// the sample measures how well the index finds a vector's neighbours among the others.
constexpr uint32_t kCalibrationK = 10;
constexpr double kCalibrationTarget = 0.95;
constexpr uint32_t kCalibrationQueries = 200;
// Brute force over the sample costs queries x values x dim multiply-adds; above this
// budget the sample shrinks (to no fewer than 50 queries).
constexpr uint64_t kCalibrationBudget = uint64_t{1} << 34;
// The largest beam width a graph's calibration tries.
constexpr uint32_t kMaxCalibratedEf = 2048;
// Graphs of fewer values are not calibrated (and hold no sample out): their default beam
// width, DefaultEf (64 for k = 10), covers a large part of them.
constexpr uint64_t kGraphCalibrationMinNodes = 5000;

// The calibration sample size for `values` indexed vectors of `dim` (0: none).
uint64_t CalibrationQueries(const BuildIndexOptions& options, uint64_t values, size_t dim) {
  uint64_t nq =
      options.calibration_queries != 0 ? options.calibration_queries : kCalibrationQueries;
  if (options.calibration_queries == 0) {
    nq = std::clamp<uint64_t>(kCalibrationBudget / std::max<uint64_t>(1, values * dim), 50, nq);
  }
  return std::min<uint64_t>(nq, values / 2);
}

// A graph's sample (spec/21 §8.5) is held out of the graph and stored in its tail: a
// sample vector that were a node would lead the walk to its neighbours along its own
// edges and overstate recall (12k Gaussian 32-d: ef 15 reaches 0.95 on such a sample,
// fresh queries need 48). Held out, the sample vectors are queries the graph has not seen.
struct HeldOut {
  std::vector<uint64_t> anchors;
  std::vector<float> vectors;
};

// `held`: the graph's held-out sample (graph indexes; null otherwise).
Status Calibrate(const DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                 const BuildIndexOptions& options, IndexObject* ix, const HeldOut* held) {
  if (!options.calibrate) return Status::Ok();
  const bool graph = ix->graph.has_value();
  if (graph && (held == nullptr || held->anchors.empty())) return Status::Ok();
  const uint64_t values = ix->entries;
  const size_t dim = ix->dim;
  uint64_t nq = graph ? held->anchors.size() : CalibrationQueries(options, values, dim);
  if (nq == 0) return Status::Ok();
  ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix->model));
  ASSIGN_OR_RETURN(const Metric metric, MetricOf(ix->metric));
  const bool cosine = metric == Metric::kCosine;
  std::vector<uint64_t> self;
  std::vector<float> queries;
  if (graph) {
    self = held->anchors;
    queries = held->vectors;
  } else {
    // The sample: every stride-th indexed value in anchor order.
    const uint64_t stride = values / nq;
    uint64_t seen = 0;
    RETURN_IF_ERROR(WalkVectors(impl, version, spec, 0, UINT64_MAX,
                                [&](size_t n, const uint64_t* anchors, const ObjectId* const*,
                                    const uint32_t*, const float* const* vecs) -> Status {
                                  for (size_t i = 0; i < n && self.size() < nq; ++i) {
                                    if (!AllFinite(vecs[i], dim)) continue;
                                    if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;
                                    if (seen++ % stride != stride / 2) continue;
                                    self.push_back(anchors[i]);
                                    queries.insert(queries.end(), vecs[i], vecs[i] + dim);
                                  }
                                  return Status::Ok();
                                }));
  }
  nq = self.size();
  if (nq == 0) return Status::Ok();
  SearchOptions so;
  so.k = kCalibrationK + 1;
  so.threads = options.threads == 1 ? 1 : 2;
  SearchContext ctx;
  ctx.impl = &impl;
  ctx.version = &version;
  ctx.spec = &spec;
  ctx.metric = metric;
  ctx.options = &so;
  // The k nearest others of each sample vector.
  auto others = [&](const std::vector<Cand>& cands, size_t q) {
    std::vector<uint64_t> out;
    for (const Cand& c : cands) {
      if (c.anchor != self[q] && out.size() < kCalibrationK) out.push_back(c.anchor);
    }
    return out;
  };
  std::vector<std::vector<Cand>> exact;
  uint64_t scanned = 0;
  RETURN_IF_ERROR(ExactSearch(ctx, queries.data(), nq, dim, &exact, &scanned));
  std::vector<std::vector<uint64_t>> truth(nq);
  uint64_t relevant = 0;
  for (size_t q = 0; q < nq; ++q) {
    truth[q] = others(exact[q], q);
    std::sort(truth[q].begin(), truth[q].end());
    relevant += truth[q].size();
  }
  if (relevant == 0) return Status::Ok();
  std::vector<uint32_t> sizes;
  if (!graph && model->algorithm() != vector::IvfParams::Algorithm::kIvf) {
    ASSIGN_OR_RETURN(sizes, CellBucketCounts(impl, *ix));
  }
  const uint32_t* cell_sizes = sizes.empty() ? nullptr : sizes.data();
  // ivf/imi/lsh: cells probed, 1 .. cells; graph: beam width, k .. the graph's size
  // (at most kMaxCalibratedEf).
  const uint32_t max_setting = graph ? static_cast<uint32_t>(std::clamp<uint64_t>(
                                           ix->graph->nodes, kCalibrationK, kMaxCalibratedEf))
                                     : ix->cells;
  Calibration c;
  c.k = kCalibrationK;
  c.queries = static_cast<uint32_t>(nq);
  c.target = static_cast<uint32_t>(std::lround(kCalibrationTarget * 10000));
  // Hits of queries [b, e) at one setting.
  auto hits_of = [&](uint32_t setting, size_t b, size_t e) -> Result<uint64_t> {
    uint64_t hits = 0, s = 0;
    SearchOptions at = so;  // the graph's beam width travels in the options
    at.ef = setting;
    SearchContext here = ctx;
    here.options = &at;
    for (size_t q = b; q < e; ++q) {
      const float* qv = queries.data() + q * dim;
      std::vector<Cand> got;
      if (graph) {
        ASSIGN_OR_RETURN(got, GraphSearchOne(here, *model, *ix, qv, &s));
      } else {
        ASSIGN_OR_RETURN(got, IvfSearchOne(here, *model, *ix, qv, setting, cell_sizes, &s));
      }
      for (uint64_t a : others(got, q)) {
        hits += std::binary_search(truth[q].begin(), truth[q].end(), a) ? 1 : 0;
      }
    }
    return hits;
  };
  for (uint32_t setting = graph ? kCalibrationK : 1;; setting = NextSetting(setting)) {
    setting = std::min(setting, max_setting);
    uint64_t half_hits[2] = {0, 0};
    const Status measured = ParallelFor(2, so.threads, [&](size_t h) -> Status {
      ASSIGN_OR_RETURN(half_hits[h], hits_of(setting, h == 0 ? 0 : nq / 2, h == 0 ? nq / 2 : nq));
      return Status::Ok();
    });
    RETURN_IF_ERROR(measured);
    const uint64_t hits = half_hits[0] + half_hits[1];
    const auto recall = static_cast<uint32_t>(hits * 10000 / relevant);
    c.curve.emplace_back(setting, recall);
    // Enough points to pick a setting for recall 0.99 (with its margin) too.
    if (recall >= 9950 || setting >= max_setting) break;
  }
  c.setting = PickSetting(c, kCalibrationTarget);
  ix->calibration = std::move(c);
  return Status::Ok();
}

// Commits a built index (spec/21 §8.1 step 6), rebasing onto a moved branch (§8.2).
Result<CommitInfo> CommitBuiltIndex(DatasetImpl& impl,
                                    const std::shared_ptr<const Version>& version,
                                    const FieldSpec& spec, const ObjectId& ix_id, uint64_t objects,
                                    const BuildProgress& progress, const CommitOptions& commit) {
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const std::string_view field = spec.name;
  report("commit", 0, 1);
  const ObjectId built_from = version->id;
  const std::string fname(field);
  auto result = impl.Commit(
      [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
        DatasetImpl::Built out;
        out.manifest = base.manifest;
        out.manifest.delta = {};
        if (base.id == built_from) {
          out.manifest.indexes[fname] = ix_id;
          return out;
        }
        // The branch moved while the index was built (spec/21 §8.2): assign the values
        // written since, like an append would have (§6.1); deletes need nothing (§6.2).
        const FieldSpec* now = base.manifest.schema.Find(fname);
        if (now == nullptr || now->type != FieldType::kEmbedding || now->dim != spec.dim) {
          return Conflict("index build: field " + Quote(fname) +
                          " was dropped or changed while the index was built");
        }
        std::vector<uint64_t> moved;
        RETURN_IF_ERROR(btree::Diff(
            impl.store(), impl.pages(), version->index, base.index, [&](const btree::Change& c) {
              if (c.kind != btree::ChangeKind::kRemoved &&
                  std::find(c.fields.begin(), c.fields.end(), fname) != c.fields.end()) {
                moved.push_back(c.anchor);
              }
              return true;
            }));
        out.manifest.indexes[fname] = ix_id;
        std::map<std::string, std::vector<uint64_t>> changed{{fname, std::move(moved)}};
        std::vector<std::string> updated;
        RETURN_IF_ERROR(vindex::IndexMerged(impl, base.index, changed, &out.manifest,
                                            &out.objects_written, &updated));
        return out;
      },
      commit);
  if (result.ok()) result->objects_written += objects;
  report("commit", 1, 1);
  return result;
}

// Vectors a graph build may hold in memory (spec/21 §8.4, §10).
constexpr uint64_t kGraphBuildMaxBytes = uint64_t{4} << 30;

// A graph index build (spec/21 §8.4): all live vectors in memory, GraphIndex::Build, node
// pages, an empty one-cell directory, the index object, the commit.
Result<CommitInfo> BuildGraphIndex(DatasetImpl& impl, const std::shared_ptr<const Version>& version,
                                   const FieldSpec& spec, const BuildIndexOptions& options,
                                   Metric metric, uint32_t bits, const BuildProgress& progress,
                                   const CommitOptions& commit) {
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const std::string& field = spec.name;
  const size_t dim = spec.dim;
  vector::GraphParams gp;
  gp.dim = static_cast<uint32_t>(dim);
  gp.metric = metric;
  gp.bits = bits;
  gp.seed = options.seed;
  if (options.degree != 0) gp.degree = options.degree;
  if (gp.degree < 4 || gp.degree > 256) {
    return InvalidArgument("index build: graph degree must be 4 to 256, got " +
                           std::to_string(gp.degree));
  }
  gp.build_list =
      options.build_list != 0 ? options.build_list : std::max<uint32_t>(gp.build_list, gp.degree);
  if (gp.build_list < gp.degree) {
    return InvalidArgument("index build: graph build_list (" + std::to_string(gp.build_list) +
                           ") must be at least the degree (" + std::to_string(gp.degree) + ")");
  }
  const bool cosine = metric == Metric::kCosine;
  const uint64_t n_est = version->manifest.count;
  std::vector<uint64_t> anchors, tags;
  std::vector<uint32_t> rows;
  std::vector<float> data;
  report("read", 0, n_est);
  RETURN_IF_ERROR(WalkVectors(
      impl, *version, spec, 0, UINT64_MAX,
      [&](size_t n, const uint64_t* a, const ObjectId* const* segs, const uint32_t* r,
          const float* const* vecs) -> Status {
        for (size_t i = 0; i < n; ++i) {
          if (!AllFinite(vecs[i], dim)) continue;                      // left out (spec/21 §6.4)
          if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;  // spec/21 §6.3
          if ((data.size() + dim) * sizeof(float) > kGraphBuildMaxBytes) {
            return InvalidArgument(
                "index build: field " + Quote(field) +
                " holds more than 4 GiB of vectors, too many for a graph index (built in "
                "memory); use --algorithm ivf, whose build memory is bounded");
          }
          anchors.push_back(a[i]);
          tags.push_back(SegmentTag(*segs[i]));
          rows.push_back(r[i]);
          data.insert(data.end(), vecs[i], vecs[i] + dim);
        }
        report("read", anchors.size(), n_est);
        return Status::Ok();
      }));
  const size_t n = anchors.size();
  if (n == 0) {
    return InvalidArgument("index build: field " + Quote(field) +
                           " has no values to build a graph on; append records first");
  }
  // The calibration sample, held out of the graph (see HeldOut): every stride-th value in
  // anchor order, moved to the end of the arrays so the graph is built on the others.
  HeldOut held;
  std::vector<uint64_t> held_tags;
  std::vector<uint32_t> held_rows;
  const uint64_t nq =
      options.calibrate && n >= kGraphCalibrationMinNodes ? CalibrationQueries(options, n, dim) : 0;
  if (nq != 0 && n - nq >= 2) {
    const uint64_t stride = n / nq;
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i % stride == stride / 2 && held.anchors.size() < nq) {
        held.anchors.push_back(anchors[i]);
        held_tags.push_back(tags[i]);
        held_rows.push_back(rows[i]);
        held.vectors.insert(held.vectors.end(), data.begin() + i * dim,
                            data.begin() + (i + 1) * dim);
        continue;
      }
      if (kept != i) {
        anchors[kept] = anchors[i];
        tags[kept] = tags[i];
        rows[kept] = rows[i];
        std::copy(data.begin() + i * dim, data.begin() + (i + 1) * dim, data.begin() + kept * dim);
      }
      ++kept;
    }
    anchors.resize(kept);
    tags.resize(kept);
    rows.resize(kept);
    data.resize(kept * dim);
  }
  const size_t nodes = anchors.size();
  std::vector<uint32_t> order;
  std::function<void(uint64_t, uint64_t)> build_progress = [&](uint64_t done, uint64_t total) {
    report("build", done, total);
  };
  ASSIGN_OR_RETURN(auto graph, vector::GraphIndex::Build(gp, data.data(), nodes, options.threads,
                                                         &order, &build_progress));
  data.clear();
  data.shrink_to_fit();
  if (order.size() != nodes) return Internal("graph build returned no node order");
  std::shared_ptr<const vector::IvfModel> model = graph->shared_model();
  Bytes model_bytes = model->Serialize();
  ASSIGN_OR_RETURN(ObjectId model_id, impl.store().Put(model_bytes));
  impl.vectors()->Insert(model_id, model, model_bytes.size() * 2);
  uint64_t objects = 1;
  const uint32_t block = graph->params().nodes_per_block;
  const uint32_t num_blocks = graph->num_blocks();
  std::vector<ObjectId> node_pages(num_blocks);
  std::atomic<uint64_t> written{0};
  const Status pages_put = ParallelFor(num_blocks, 2, [&](size_t bi) -> Status {
    const auto b = static_cast<uint32_t>(bi);
    NodePage page;
    page.first = b * block;
    const size_t end = std::min<size_t>(nodes, size_t{page.first} + block);
    for (size_t i = page.first; i < end; ++i) {
      const uint32_t row = order[i];
      page.anchors.push_back(anchors[row]);
      page.seg_tags.push_back(tags[row]);
      page.rows.push_back(rows[row]);
    }
    ASSIGN_OR_RETURN(page.block, graph->EncodeBlock(b));
    ASSIGN_OR_RETURN(node_pages[b], impl.store().Put(EncodeNodePage(page)));
    report("assign", written.fetch_add(end - page.first) + (end - page.first), nodes);
    return Status::Ok();
  });
  RETURN_IF_ERROR(pages_put);
  objects += num_blocks;
  DirPage dir;
  dir.first = 0;
  dir.buckets.resize(1);
  if (!held.anchors.empty()) {
    // The held-out sample is the graph's tail: cell 0's one bucket (spec/21 §4.5, §8.5).
    Bucket tail;
    tail.cell = 0;
    tail.anchors = held.anchors;
    tail.seg_tags = held_tags;
    tail.rows = held_rows;
    ASSIGN_OR_RETURN(tail.codes, model->EncodeCell(0, held.vectors.data(), held.anchors.size()));
    Bytes tail_bytes = EncodeBucket(tail);
    ASSIGN_OR_RETURN(ObjectId tail_id, impl.store().Put(tail_bytes));
    ++objects;
    impl.vectors()->Insert(tail_id, std::make_shared<const Bucket>(std::move(tail)),
                           tail_bytes.size() + 64);
    dir.buckets[0].push_back(tail_id);
  }
  ASSIGN_OR_RETURN(Bytes dir_bytes, EncodeDirPage(dir));
  ASSIGN_OR_RETURN(ObjectId dir_id, impl.store().Put(dir_bytes));
  ++objects;
  IndexObject ix;
  ix.field = field;
  ix.algorithm = "graph";
  ix.metric = std::string(vector::MetricName(metric));
  ix.bits = bits;
  ix.dim = static_cast<uint32_t>(dim);
  ix.cells = 1;
  ix.nprobe = 0;
  ix.model = model_id;
  if (auto old = version->manifest.indexes.find(field); old != version->manifest.indexes.end()) {
    ix.parents = {old->second};
  }
  ix.pages = {dir_id};
  ix.entries = held.anchors.size();
  ix.buckets = held.anchors.empty() ? 0 : 1;
  GraphInfo g;
  g.entry = graph->entry();
  g.nodes = nodes;
  g.degree = graph->params().degree;
  g.block = block;
  g.pages = std::move(node_pages);
  ix.graph = std::move(g);
  report("calibrate", 0, 1);
  RETURN_IF_ERROR(Calibrate(impl, *version, spec, options, &ix, &held));
  report("calibrate", 1, 1);
  ASSIGN_OR_RETURN(Bytes ib, EncodeIndex(ix));
  ASSIGN_OR_RETURN(ObjectId ix_id, impl.store().Put(ib));
  ++objects;
  return CommitBuiltIndex(impl, version, spec, ix_id, objects, progress, commit);
}

}  // namespace
}  // namespace vindex

Result<CommitInfo> Dataset::BuildIndex(std::string_view field, const BuildIndexOptions& options,
                                       const BuildProgress& progress, const CommitOptions& commit) {
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  auto version = impl_->current();
  ASSIGN_OR_RETURN(const FieldSpec* spec_ptr,
                   EmbeddingField(version->manifest.schema, field, "index build"));
  const FieldSpec spec = *spec_ptr;
  IndexSpec declared = spec.index.value_or(IndexSpec{});
  // raw = false: the field's segments hold 8-bit reconstructions (spec/12-segments.md §9);
  // training and re-ranking read them through the same decoders.
  std::string metric_name = options.metric.empty() ? declared.metric : options.metric;
  auto metric = vindex::MetricOf(metric_name);
  if (!metric.ok()) return InvalidArgument("index build: " + metric.status().message());
  uint32_t bits = options.bits != 0 ? options.bits : declared.bits;
  if (bits < 1 || bits > 8) {
    return InvalidArgument("index build: bits must be 1 to 8, got " + std::to_string(bits));
  }
  if (options.chunk_rows == 0) return InvalidArgument("index build: chunk_rows must be >= 1");
  const std::string algorithm_name =
      options.algorithm.empty() ? declared.algorithm : options.algorithm;
  const std::string quantizer_name =
      options.quantizer.empty() ? declared.quantizer : options.quantizer;
  auto quantizer = vector::ParseQuantizer(quantizer_name);
  if (!quantizer.ok()) return InvalidArgument("index build: " + quantizer.status().message());
  if (algorithm_name == "graph") {
    if (*quantizer != vector::IvfParams::Quantizer::kRaBitQ) {
      return InvalidArgument("index build: quantizer " + Quote(quantizer_name) +
                             " does not apply to a graph index (its nodes carry RaBitQ codes); "
                             "use --algorithm ivf with pq4");
    }
    return vindex::BuildGraphIndex(*impl_, version, spec, options, *metric, bits, progress, commit);
  }
  auto algorithm = vector::ParseAlgorithm(algorithm_name);
  if (!algorithm.ok()) return InvalidArgument("index build: " + algorithm.status().message());
  const bool is_ivf = *algorithm == vector::IvfParams::Algorithm::kIvf;
  const size_t dim = spec.dim;
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const bool cosine = *metric == vector::Metric::kCosine;
  // Pass 1: a seeded reservoir sample of the field's vectors.
  uint64_t n_est = version->manifest.count;
  uint32_t cells = options.cells != 0 ? options.cells : declared.cells;
  // imi/lsh: 0 stays 0 (IvfModel::Train picks the algorithm's default and clamps it).
  if (cells == 0 && is_ivf) {
    cells = static_cast<uint32_t>(std::max<double>(1.0, std::round(std::sqrt(double(n_est)))));
  }
  // imi trains two codebooks of s ~ sqrt(cells) centroids; lsh trains no k-means.
  const uint64_t train_k =
      is_ivf ? cells
             : static_cast<uint64_t>(std::ceil(std::sqrt(double(std::max<uint32_t>(cells, 1)))));
  uint64_t sample_cap =
      options.sample != 0
          ? options.sample
          : std::min<uint64_t>(std::max<uint64_t>(uint64_t{64} * train_k, 20000), 131072);
  std::vector<float> sample;
  uint64_t seen = 0;
  std::mt19937_64 rng(options.seed ^ 0x5eed5eedULL);
  RETURN_IF_ERROR(vindex::WalkVectors(
      *impl_, *version, spec, 0, UINT64_MAX,
      [&](size_t n, const uint64_t*, const ObjectId* const*, const uint32_t*,
          const float* const* vecs) -> Status {
        for (size_t i = 0; i < n; ++i) {
          if (!vindex::AllFinite(vecs[i], dim)) continue;              // left out (spec/21 §6.4)
          if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;  // spec/21 §6.3
          if (sample.size() < sample_cap * dim) {
            sample.insert(sample.end(), vecs[i], vecs[i] + dim);
          } else {
            uint64_t j = std::uniform_int_distribution<uint64_t>(0, seen)(rng);
            if (j < sample_cap) std::memcpy(sample.data() + j * dim, vecs[i], dim * sizeof(float));
          }
          ++seen;
        }
        report("sample", seen, n_est);
        return Status::Ok();
      }));
  if (seen == 0) {
    return InvalidArgument("index build: field " + Quote(field) +
                           " has no values to train on; append records first");
  }
  if (options.cells == 0 && declared.cells == 0 && is_ivf) {
    cells = static_cast<uint32_t>(std::max<double>(1.0, std::round(std::sqrt(double(seen)))));
  }
  const size_t sample_n = sample.size() / dim;
  if (is_ivf && cells > sample_n) cells = static_cast<uint32_t>(sample_n);
  vector::IvfParams params;
  params.algorithm = *algorithm;
  params.dim = static_cast<uint32_t>(dim);
  params.metric = *metric;
  params.num_cells = cells;
  params.bits = bits;
  params.quantizer = *quantizer;
  params.seed = options.seed;
  params.kmeans.seed = options.seed;
  params.kmeans.threads = options.threads;
  params.kmeans.spherical = *metric == vector::Metric::kCosine;
  report("train", 0, 1);
  ASSIGN_OR_RETURN(vindex::ModelPtr model,
                   vector::IvfModel::Train(params, sample.data(), sample_n));
  sample.clear();
  sample.shrink_to_fit();
  report("train", 1, 1);
  Bytes model_bytes = model->Serialize();
  ASSIGN_OR_RETURN(ObjectId model_id, impl_->store().Put(model_bytes));
  impl_->vectors()->Insert(model_id, model, model_bytes.size() * 2);
  uint64_t objects = 1;
  // Pass 2: assign in chunks; each chunk puts one bucket per touched cell.
  const uint32_t num_cells = model->num_cells();
  std::vector<std::vector<ObjectId>> dir(num_cells);
  vindex::IndexObject ix;
  ix.field = std::string(field);
  ix.algorithm = std::string(vector::AlgorithmName(*algorithm));
  ix.nprobe = vindex::DefaultIndexNprobe(*algorithm, num_cells);
  ix.metric = std::string(vector::MetricName(*metric));
  ix.bits = model->params().bits;
  ix.quantizer = std::string(vector::QuantizerName(*quantizer));
  ix.dim = static_cast<uint32_t>(dim);
  ix.cells = num_cells;
  ix.model = model_id;
  if (auto old = version->manifest.indexes.find(std::string(field));
      old != version->manifest.indexes.end()) {
    ix.parents = {old->second};
  }
  std::vector<uint64_t> c_anchors, c_tags;
  std::vector<uint32_t> c_rows;
  std::vector<float> c_data;
  uint64_t assigned = 0;
  // Encoded entries wait per cell until `flush_bytes` accumulate (or the end), then each
  // cell with entries becomes one bucket: one bucket per cell for N * code bytes below
  // the bound (spec/21 §5.4), with memory bounded by it and by one chunk of vectors.
  struct PendingCell {
    vindex::Bucket b;
    bool any = false;
  };
  std::vector<PendingCell> pending(num_cells);
  uint64_t pending_bytes = 0;
  const uint64_t flush_bytes = options.flush_bytes != 0 ? options.flush_bytes : uint64_t{256} << 20;
  auto write_pending = [&]() -> Status {
    std::vector<uint32_t> cells_with;
    for (uint32_t c = 0; c < num_cells; ++c) {
      if (pending[c].any) cells_with.push_back(c);
    }
    std::vector<ObjectId> ids(cells_with.size());
    const Status buckets_put = vindex::ParallelFor(cells_with.size(), 2, [&](size_t g) -> Status {
      ASSIGN_OR_RETURN(ids[g], impl_->store().Put(vindex::EncodeBucket(pending[cells_with[g]].b)));
      return Status::Ok();
    });
    RETURN_IF_ERROR(buckets_put);
    for (size_t g = 0; g < cells_with.size(); ++g) {
      dir[cells_with[g]].push_back(ids[g]);
      pending[cells_with[g]] = PendingCell{};
    }
    objects += cells_with.size();
    ix.buckets += cells_with.size();
    pending_bytes = 0;
    return Status::Ok();
  };
  auto flush = [&]() -> Status {
    const size_t n = c_anchors.size();
    if (n == 0) return Status::Ok();
    std::vector<uint32_t> cell_of(n);
    RETURN_IF_ERROR(model->Assign(c_data.data(), n, cell_of.data()));
    std::map<uint32_t, std::vector<size_t>> by_cell;
    for (size_t i = 0; i < n; ++i) by_cell[cell_of[i]].push_back(i);
    std::vector<std::pair<uint32_t, std::vector<size_t>>> groups(by_cell.begin(), by_cell.end());
    std::vector<Bytes> codes(groups.size());
    const Status encoded = vindex::ParallelFor(groups.size(), 2, [&](size_t g) -> Status {
      const auto& [cell, members] = groups[g];
      std::vector<float> cv(members.size() * dim);
      for (size_t j = 0; j < members.size(); ++j) {
        std::memcpy(cv.data() + j * dim, c_data.data() + members[j] * dim, dim * sizeof(float));
      }
      ASSIGN_OR_RETURN(codes[g], model->EncodeCell(cell, cv.data(), members.size()));
      return Status::Ok();
    });
    RETURN_IF_ERROR(encoded);
    for (size_t g = 0; g < groups.size(); ++g) {
      const auto& [cell, members] = groups[g];
      PendingCell& p = pending[cell];
      const uint64_t code_bytes = codes[g].size();
      p.b.cell = cell;
      for (size_t i : members) {
        p.b.anchors.push_back(c_anchors[i]);
        p.b.seg_tags.push_back(c_tags[i]);
        p.b.rows.push_back(c_rows[i]);
      }
      if (!p.any) {
        p.b.codes = std::move(codes[g]);
        p.any = true;
      } else {
        RETURN_IF_ERROR(model->AppendCodes(&p.b.codes, codes[g]));
      }
      pending_bytes += code_bytes + 20 * members.size();
    }
    ix.entries += n;
    assigned += n;
    report("assign", assigned, seen);
    c_anchors.clear();
    c_tags.clear();
    c_rows.clear();
    c_data.clear();
    if (pending_bytes >= flush_bytes) RETURN_IF_ERROR(write_pending());
    return Status::Ok();
  };
  RETURN_IF_ERROR(
      vindex::WalkVectors(*impl_, *version, spec, 0, UINT64_MAX,
                          [&](size_t n, const uint64_t* anchors, const ObjectId* const* segs,
                              const uint32_t* rows, const float* const* vecs) -> Status {
                            for (size_t i = 0; i < n; ++i) {
                              if (!vindex::AllFinite(vecs[i], dim)) continue;  // §6.4
                              if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;
                              c_anchors.push_back(anchors[i]);
                              c_tags.push_back(vindex::SegmentTag(*segs[i]));
                              c_rows.push_back(rows[i]);
                              c_data.insert(c_data.end(), vecs[i], vecs[i] + dim);
                              if (c_anchors.size() >= options.chunk_rows) RETURN_IF_ERROR(flush());
                            }
                            return Status::Ok();
                          }));
  RETURN_IF_ERROR(flush());
  RETURN_IF_ERROR(write_pending());
  for (uint32_t p = 0; p * vindex::kCellsPerPage < num_cells; ++p) {
    vindex::DirPage page;
    page.first = p * vindex::kCellsPerPage;
    uint32_t end = std::min<uint32_t>(num_cells, page.first + vindex::kCellsPerPage);
    for (uint32_t c = page.first; c < end; ++c) page.buckets.push_back(std::move(dir[c]));
    ASSIGN_OR_RETURN(Bytes pb, vindex::EncodeDirPage(page));
    ASSIGN_OR_RETURN(ObjectId pid, impl_->store().Put(pb));
    ix.pages.push_back(pid);
    ++objects;
  }
  report("calibrate", 0, 1);
  RETURN_IF_ERROR(vindex::Calibrate(*impl_, *version, spec, options, &ix, nullptr));
  report("calibrate", 1, 1);
  ASSIGN_OR_RETURN(Bytes ib, vindex::EncodeIndex(ix));
  ASSIGN_OR_RETURN(ObjectId ix_id, impl_->store().Put(ib));
  ++objects;
  return vindex::CommitBuiltIndex(*impl_, version, spec, ix_id, objects, progress, commit);
}

// ---------------------------------------------------------------------------------------
// Predicates

std::string_view PredicateOpName(Predicate::Op op) {
  switch (op) {
    case Predicate::Op::kEq:
      return "==";
    case Predicate::Op::kNe:
      return "!=";
    case Predicate::Op::kLt:
      return "<";
    case Predicate::Op::kLe:
      return "<=";
    case Predicate::Op::kGt:
      return ">";
    case Predicate::Op::kGe:
      return ">=";
    case Predicate::Op::kIn:
      return "in";
  }
  return "?";
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Result<ScalarValue> ParseValue(std::string_view t, std::string_view whole) {
  t = Trim(t);
  if (t.empty()) return InvalidArgument("filter " + Quote(whole) + ": a value is missing");
  if (t.size() >= 2 && (t.front() == '\'' || t.front() == '"') && t.back() == t.front()) {
    return ScalarValue(std::string(t.substr(1, t.size() - 2)));
  }
  if (t == "true") return ScalarValue(true);
  if (t == "false") return ScalarValue(false);
  std::string s(t);
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end == s.c_str() + s.size()) return ScalarValue(static_cast<int64_t>(i));
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (errno == 0 && end == s.c_str() + s.size() && std::isfinite(d)) return ScalarValue(d);
  for (char c : t) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
          c == '/' || c == ':')) {
      return InvalidArgument("filter " + Quote(whole) + ": cannot read value " + Quote(t) +
                             " (quote text values)");
    }
  }
  return ScalarValue(std::string(t));
}

}  // namespace

Result<Predicate> ParsePredicate(std::string_view text) {
  std::string_view t = Trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_')) ++i;
  Predicate p;
  p.field = std::string(t.substr(0, i));
  if (p.field.empty()) {
    return InvalidArgument("filter " + Quote(text) +
                           ": expected FIELD OP VALUE, e.g. \"label == 3\"");
  }
  std::string_view rest = Trim(t.substr(i));
  static const std::pair<std::string_view, Predicate::Op> kOps[] = {
      {"==", Predicate::Op::kEq}, {"!=", Predicate::Op::kNe}, {"<=", Predicate::Op::kLe},
      {">=", Predicate::Op::kGe}, {"<", Predicate::Op::kLt},  {">", Predicate::Op::kGt},
      {"=", Predicate::Op::kEq}};
  bool found = false;
  for (const auto& [name, op] : kOps) {
    if (rest.starts_with(name)) {
      p.op = op;
      rest.remove_prefix(name.size());
      found = true;
      break;
    }
  }
  if (!found && (rest.starts_with("in ") || rest.starts_with("in("))) {
    p.op = Predicate::Op::kIn;
    rest = Trim(rest.substr(2));
    if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
      return InvalidArgument("filter " + Quote(text) + ": 'in' needs a list like (1, 2, 3)");
    }
    rest = rest.substr(1, rest.size() - 2);
    // Split on commas outside quotes.
    size_t b = 0;
    char quote = 0;
    for (size_t k = 0; k <= rest.size(); ++k) {
      char c = k < rest.size() ? rest[k] : ',';
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == ',') {
        ASSIGN_OR_RETURN(ScalarValue v, ParseValue(rest.substr(b, k - b), text));
        p.values.push_back(std::move(v));
        b = k + 1;
      }
    }
    return p;
  }
  if (!found) {
    return InvalidArgument("filter " + Quote(text) +
                           ": expected an operator (==, !=, <, <=, >, >=, in) after " +
                           Quote(p.field));
  }
  ASSIGN_OR_RETURN(ScalarValue v, ParseValue(rest, text));
  p.values.push_back(std::move(v));
  return p;
}

}  // namespace dreamdb
