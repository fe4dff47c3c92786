// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: search (exact and IVF), the live entries of buckets, and the
// Dataset::Search / IndexStatus entry points (spec/21 §6.2, §7).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
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

// A re-ranked distance that is not finite (a vector with a NaN or infinite component)
// sorts last, like a missing value, so it never displaces a finite one (spec/21 §6.4).
float FiniteOrWorst(float d) {
  return std::isfinite(d) ? d : std::numeric_limits<float>::infinity();
}

// Re-rank candidates whose vectors a one-shot search on an object store reads at once,
// before the first batch (IvfSearchOne). Two batches of 16: the re-rank of a k=10 query
// rarely needs a third (and the rest cost a round trip each, as before).
constexpr size_t kRerankPrefetch = 32;

// What decides the live entries of a version: its anchor index (the entries' anchors are
// looked up in it, and the values they point to are immutable). Versions that share a
// paged anchor index (an index build, a metadata commit) share their LiveEntries; an
// inline anchor index has no id of its own, so the manifest's stands for it.
ObjectId LiveVersionKey(const Version& v) {
  return v.index.inline_leaf != nullptr ? v.id : v.index.root;
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

}  // namespace

// ---------------------------------------------------------------------------------------
// Search

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
  // With segment hints (a one-shot search on an object store), the vectors are read where
  // the buckets say they were written while the anchor index says where they are now: a
  // guess at an entry's current location costs no round trip of its own. What it read is
  // in the row cache, so the reads below find the live ones there; a stale entry's guess
  // is never used (and a guess that fails is left for the reads below to report).
  std::vector<RowKey> guess;
  for (uint64_t h : unknown) {
    const Bucket& b = *buckets[h >> 32];
    const size_t e = h & 0xffffffffu;
    for (const SegmentHint& hint : ctx.segment_hints) {
      if (hint.tag == b.seg_tags[e]) {
        guess.push_back(RowKey{hint.id, b.rows[e]});
        break;
      }
    }
  }
  std::vector<std::optional<RowKey>> where;
  RETURN_IF_ERROR(ParallelFor(guess.empty() ? 1 : 2, 2, [&](size_t t) -> Status {
    if (t == 1) {
      (void)LoadRows(ctx, guess);
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(where, LocateEntries(ctx, buckets, unknown));
    return Status::Ok();
  }));
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

// The buckets of an IVF/IMI/LSH index and their live entries in one version, by cell, as
// the searches of a warm handle met them (spec/21 §7.10): a query takes its probed cells'
// buckets and live entries by position under one lock instead of through the directory
// pages and the LRUs for every bucket of every query. Cells are filled whole (all their
// buckets) and live entries only go from unknown to known, so nothing in it changes once
// set. It is an entry of the spatial cache charged up front with what the whole index's
// buckets and live entries come to; an index too large for a quarter of the cache has
// none.
// Thread safety: the cells are guarded by mu; any number of searches may share one.
struct IvfWarm {
  struct Cell {
    bool filled = false;
    std::vector<ObjectId> ids;
    std::vector<std::shared_ptr<const Bucket>> buckets;
    std::vector<std::shared_ptr<const LiveEntries>> live;  // null: not computed yet
  };
  explicit IvfWarm(size_t n) : cells(n) {}
  mutable std::mutex mu;
  mutable std::vector<Cell> cells;  // guarded by mu
};

namespace {

std::shared_ptr<const IvfWarm> IvfWarmOf(const SearchContext& ctx, const IndexObject& ix,
                                         const vector::IvfModel& model) {
  if (ctx.index_id == nullptr) return nullptr;
  const ObjectId id = WarmStateKey("ivf", ctx);
  if (auto hit = ctx.impl->vectors()->Get<IvfWarm>(id)) return hit;
  // An entry's share: its code (at most bits x padded dim bits plus factors), its anchor,
  // location tag and row (20 bytes) in the bucket, 9 bytes of live entries; per bucket and
  // cell, their vectors and shared pointers.
  const uint64_t per_entry = uint64_t{model.params().bits} * model.padded_dim() / 8 + 32 + 20 + 9;
  const uint64_t bytes = ix.entries * per_entry + ix.buckets * 160 + uint64_t{ix.cells} * 96;
  if (bytes > ctx.impl->vectors()->ObjectCapacity() / 4) return nullptr;
  auto warm = std::make_shared<const IvfWarm>(ix.cells);
  ctx.impl->vectors()->Insert<IvfWarm>(id, warm, bytes);
  return warm;
}

// Records the live entries computed for buckets at `slot` (cell, position) in the warm
// state, where it does not know them yet.
void KeepLive(const IvfWarm* warm, const std::vector<std::pair<uint32_t, uint32_t>>& slot,
              const std::vector<std::shared_ptr<const LiveEntries>>& states) {
  if (warm == nullptr) return;
  std::lock_guard<std::mutex> lock(warm->mu);
  for (size_t b = 0; b < states.size(); ++b) {
    if (states[b] == nullptr || slot[b].first >= warm->cells.size()) continue;
    IvfWarm::Cell& c = warm->cells[slot[b].first];
    if (c.filled && c.live[slot[b].second] == nullptr) c.live[slot[b].second] = states[b];
  }
}

}  // namespace

ObjectId WarmStateKey(std::string_view kind, const SearchContext& ctx) {
  std::string key = "dreamdb warm state ";
  key += kind;
  key += '\n';
  const ObjectId version = LiveVersionKey(*ctx.version);
  const auto& a = ctx.index_id->digest();
  const auto& b = version.digest();
  key.append(reinterpret_cast<const char*>(a.data()), a.size());
  key.append(reinterpret_cast<const char*>(b.data()), b.size());
  return ObjectId::Of(key);
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
  std::vector<std::pair<uint32_t, uint32_t>> warm_slot;  // per bucket: (cell, position)
  const std::shared_ptr<const IvfWarm> warm = IvfWarmOf(ctx, ix, model);
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
      // Per probed cell: its buckets from the warm state, or fetched (and then kept there).
      std::vector<IvfWarm::Cell> fetched(cells.size());  // the cells the warm state lacks
      std::vector<uint32_t> missing;                     // positions in `cells`
      if (warm != nullptr) {
        std::lock_guard<std::mutex> lock(warm->mu);
        for (size_t i = 0; i < cells.size(); ++i) {
          if (cells[i] >= warm->cells.size() || !warm->cells[cells[i]].filled) {
            missing.push_back(static_cast<uint32_t>(i));
          }
        }
      } else {
        missing.resize(cells.size());
        std::iota(missing.begin(), missing.end(), 0u);
      }
      if (!missing.empty()) {
        std::vector<uint32_t> which;
        which.reserve(missing.size());
        for (uint32_t i : missing) which.push_back(cells[i]);
        ASSIGN_OR_RETURN(auto ids, BucketsOf(*ctx.impl, ix, which));
        std::vector<ObjectId> all;
        for (const auto& l : ids) all.insert(all.end(), l.begin(), l.end());
        // The hinted segments' headers come with the buckets (one round trip, not two).
        std::vector<std::shared_ptr<const Bucket>> got;
        RETURN_IF_ERROR(ParallelFor(ctx.segment_hints.empty() ? 1 : 2, 2, [&](size_t t) -> Status {
          if (t == 1) {
            PrefetchSegmentHeaders(*ctx.impl, *ctx.spec, ctx.segment_hints);
            return Status::Ok();
          }
          ASSIGN_OR_RETURN(got, FetchBuckets(*ctx.impl, all));
          return Status::Ok();
        }));
        size_t at = 0;
        for (size_t m = 0; m < missing.size(); ++m) {
          IvfWarm::Cell& c = fetched[missing[m]];
          c.ids = std::move(ids[m]);
          for (const ObjectId& bid : c.ids) {
            const std::shared_ptr<const Bucket>& bk = got[at++];
            if (bk->cell != which[m]) {
              return Corrupt("spatial bucket " + bid.ToString() + " holds cell " +
                             std::to_string(bk->cell) + " but the directory lists it under " +
                             std::to_string(which[m]));
            }
            RETURN_IF_ERROR(CheckBucketCodes(model, *bk, bid));
            c.buckets.push_back(bk);
          }
          c.live.assign(c.buckets.size(), nullptr);
          c.filled = true;
        }
      }
      // In probe order: every probed bucket, with its live entries when known.
      std::vector<ObjectId> flat;
      {
        std::unique_lock<std::mutex> lock;
        if (warm != nullptr) lock = std::unique_lock<std::mutex>(warm->mu);
        for (size_t i = 0; i < cells.size(); ++i) {
          const IvfWarm::Cell* c = &fetched[i];
          if (warm != nullptr && cells[i] < warm->cells.size()) {
            IvfWarm::Cell& w = warm->cells[cells[i]];
            if (!w.filled && c->filled) w = *c;
            if (w.filled) c = &w;
          }
          for (size_t j = 0; j < c->buckets.size(); ++j) {
            flat.push_back(c->ids[j]);
            bucket_cell.push_back(cells[i]);
            buckets.push_back(c->buckets[j]);
            warm_slot.emplace_back(cells[i], static_cast<uint32_t>(j));
            states.push_back(c->live[j]);
          }
        }
      }
      std::vector<size_t> seen_before;
      for (size_t b = 0; b < buckets.size(); ++b) {
        if (states[b] != nullptr) continue;
        const LiveKey key{version_key, flat[b]};
        states[b] = ctx.impl->vectors()->GetLive(key);
        if (states[b] == nullptr && ctx.impl->vectors()->TouchedBefore(key)) {
          seen_before.push_back(b);
        }
      }
      lists.reserve(buckets.size());
      for (size_t b = 0; b < buckets.size(); ++b) {
        lists.push_back(
            EntryList{flat[b], &buckets[b]->anchors, &buckets[b]->seg_tags, &buckets[b]->rows});
      }
      RETURN_IF_ERROR(ComputeLive(ctx, lists, seen_before, &states));
      KeepLive(warm.get(), warm_slot, states);
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
    // A one-shot search on an object store reads the vectors of the re-rank's likeliest
    // candidates at once, where each batch would cost a round trip: the batches then find
    // them in the row cache. Without hints (a local store, a warm handle) nothing is read
    // ahead.
    const std::function<Status(const uint64_t*, size_t)> prefetch = [&](const uint64_t* ids,
                                                                        size_t n) {
      n = std::min(n, kRerankPrefetch);
      std::vector<uint64_t> cold;
      for (size_t i = 0; i < n; ++i) {
        if (states[ids[i] >> 32] == nullptr) cold.push_back(ids[i]);
      }
      if (cold.empty()) return Status::Ok();
      std::vector<float> unused(cold.size());
      std::unordered_set<uint64_t> unused_stale;
      return BucketDistances(ctx, model, q, buckets, states, cold.data(), cold.size(),
                             unused.data(), &unused_stale);
    };
    const bool read_ahead = o.rerank && !ctx.segment_hints.empty();
    ASSIGN_OR_RETURN(std::vector<vector::Neighbor> nn,
                     query->Finish(o.rerank ? &exact : nullptr, read_ahead ? &prefetch : nullptr));
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
      KeepLive(warm.get(), warm_slot, states);
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
      warm_slot.clear();
      rejected.clear();
      continue;
    }
    for (uint64_t h : rej) rejected.insert(h);
    fetch *= 4;
  }
  return result;
}

}  // namespace dreamdb::vindex

namespace dreamdb {

using vindex::EmbeddingField;

namespace {
// A cold search fetches the whole directory with the model when it has at most this many
// pages (1,024 cells each): small enough that fetching unprobed pages costs less than a
// round trip.
constexpr size_t kPrefetchedDirectoryPages = 4;
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
    ctx.index_id = &idx->second;
    vindex::ModelPtr model = impl_->vectors()->Get<vector::IvfModel>(ix->model);
    if (model != nullptr) {
      impl_->CountHit();  // as LoadModel counts a cached model
    } else {
      // Cold: the model and a small directory are fetched together (one round trip on a
      // remote store, not two); the probed cells' pages are then in the cache.
      std::vector<uint32_t> pages;
      if (ix->pages.size() <= kPrefetchedDirectoryPages) {
        pages.resize(ix->pages.size());
        std::iota(pages.begin(), pages.end(), 0u);
      }
      // On an object store a few anchor-index leaves come too: the segments they name are
      // where the re-rank's vectors most likely are (vindex::SampleFieldSegments).
      const bool hint = !ix->graph.has_value() && !IsLocalStore(impl_->store());
      RETURN_IF_ERROR(vindex::ParallelFor(hint ? 3 : 2, 3, [&](size_t h) -> Status {
        if (h == 1) return vindex::PrefetchPages(*impl_, *ix, pages);
        if (h == 2) {
          ctx.segment_hints = vindex::SampleFieldSegments(*impl_, *version, *spec);
          return Status::Ok();
        }
        ASSIGN_OR_RETURN(model, vindex::LoadModel(*impl_, ix->model));
        return Status::Ok();
      }));
    }
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
  return IndexStatus(field, IndexStatusOptions{});
}

Result<IndexInfo> Dataset::IndexStatus(std::string_view field,
                                       const IndexStatusOptions& options) const {
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
  if (!ix->graph) {
    if (options.balance) RETURN_IF_ERROR(vindex::MeasureBalance(*impl_, *ix, &info));
    if (options.sample != 0) {
      RETURN_IF_ERROR(vindex::MeasureDrift(*impl_, *version, *spec, *ix, options.sample, &info));
    }
  }
  return info;
}

}  // namespace dreamdb
