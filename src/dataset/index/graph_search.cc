// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: search through a graph index (spec/21 §4.5, §5.6, §7.8).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
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

// The node pages of one graph index and their LiveEntries in one version, by block number,
// as the searches of a warm handle met them: a walk reaches a block's page and live flags
// by index under one lock instead of through the LRUs' hashes and locks for every block of
// every query (spec/21 §7.10). Slots only go from empty to filled, so a pointer taken from
// one stays valid while the GraphWarm is held. It lives in the spatial cache like a decoded
// object, charged up front with what the whole graph's pages and live flags come to (the
// most it can pin), so the cache stays within its bound even if the pages it holds are
// evicted from the LRU; a graph too large for that gets no warm state and is searched
// through the LRUs as before.
// Thread safety: the slots are guarded by mu; any number of searches may share one.
struct GraphWarm {
  explicit GraphWarm(size_t blocks) : pages(blocks), live(blocks) {}
  mutable std::mutex mu;
  mutable std::vector<std::shared_ptr<const NodePageData>> pages;  // guarded by mu
  mutable std::vector<std::shared_ptr<const LiveEntries>> live;    // guarded by mu
};

namespace {

// The GraphWarm of index ctx.index_id in ctx's version: from the cache, else new (and
// cached); null for a graph whose pages could not all stay in the cache.
std::shared_ptr<const GraphWarm> WarmOf(const SearchContext& ctx, const GraphInfo& g,
                                        const vector::IvfModel& model) {
  const ObjectId id = WarmStateKey("graph", ctx);
  if (auto hit = ctx.impl->vectors()->Get<GraphWarm>(id)) return hit;
  // A node's share of its page: 20 bytes of envelope, its neighbour list and its code
  // (GraphNodeBlock::MemoryBytes, LoadNodePage), 9 bytes of live flags and location; plus
  // the slots.
  const uint64_t code_bytes = uint64_t{model.params().bits} * model.padded_dim() / 8 + 24;
  const uint64_t per_node = 20 + 4 * (uint64_t{g.degree} + 1) + code_bytes + 9;
  const uint64_t bytes = uint64_t{g.nodes} * per_node + 32 * g.pages.size() + 256;
  if (bytes > ctx.impl->vectors()->ObjectCapacity() / 4) return nullptr;
  auto warm = std::make_shared<const GraphWarm>(g.pages.size());
  ctx.impl->vectors()->Insert<GraphWarm>(id, warm, bytes);
  return warm;
}

}  // namespace

// Node pages of one index for one query, through the handle's GraphWarm when it has one,
// else through the spatial cache; Prefetch fetches missing pages in parallel (up to 8
// requests in flight).
// Thread safety: one search at a time (GraphNodeSource contract); internally locked so
// Prefetch's parallel loads may fill it concurrently.
class PagedNodeSource : public vector::GraphNodeSource {
 public:
  PagedNodeSource(const DatasetImpl& impl, const IndexObject& ix, const vector::IvfModel& model,
                  std::shared_ptr<const GraphWarm> warm)
      : impl_(impl), graph_(*ix.graph), model_(model), warm_(std::move(warm)) {}

  Result<std::shared_ptr<const vector::GraphNodeBlock>> Block(uint32_t b) override {
    ASSIGN_OR_RETURN(auto page, Page(b));
    return page->block;
  }

  void Prefetch(const uint32_t* blocks, size_t n) override {
    std::vector<uint32_t> missing;
    {
      std::unique_lock<std::mutex> lock(warm_ != nullptr ? warm_->mu : mu_);
      for (size_t i = 0; i < n; ++i) {
        if (blocks[i] < graph_.pages.size() && Held(blocks[i]) == nullptr &&
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
      std::unique_lock<std::mutex> lock(warm_ != nullptr ? warm_->mu : mu_);
      if (auto held = Held(b)) return held;
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
    if (warm_ != nullptr) {
      std::lock_guard<std::mutex> lock(warm_->mu);
      if (warm_->pages[b] == nullptr) warm_->pages[b] = page;
      return warm_->pages[b];
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
  // The page of block b this source holds, or null. Called with the lock held.
  std::shared_ptr<const NodePageData> Held(uint32_t b) const {
    if (warm_ != nullptr) return b < warm_->pages.size() ? warm_->pages[b] : nullptr;
    auto it = pages_.find(b);
    return it == pages_.end() ? nullptr : it->second;
  }

  const DatasetImpl& impl_;
  const GraphInfo& graph_;
  const vector::IvfModel& model_;
  std::shared_ptr<const GraphWarm> warm_;  // null: no warm state (pages_ instead)
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
  std::shared_ptr<const GraphWarm> warm;
  if (ctx.index_id != nullptr) warm = WarmOf(ctx, g, model);
  PagedNodeSource source(*ctx.impl, ix, model, warm);
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
  // Per node page visited: its page and LiveEntries (held by the GraphWarm when there is
  // one, else by `holders`), by block number.
  struct Visited {
    const NodePageData* page = nullptr;
    const LiveEntries* live = nullptr;
  };
  std::vector<Visited> visited(g.pages.size());
  std::vector<std::shared_ptr<const void>> holders;
  auto visit = [&](uint64_t node) -> Result<const Visited*> {
    const uint64_t b = node / g.block;
    if (b >= visited.size()) {
      return Corrupt("graph index: node " + std::to_string(node) + " is beyond its " +
                     std::to_string(g.pages.size()) + " node pages");
    }
    Visited& v = visited[b];
    if (v.live != nullptr) return &v;
    ASSIGN_OR_RETURN(auto page, source.PageOf(node));
    std::shared_ptr<const LiveEntries> live;
    if (warm != nullptr) {
      std::lock_guard<std::mutex> lock(warm->mu);
      live = warm->live[b];
    }
    if (live == nullptr) {
      ASSIGN_OR_RETURN(
          auto got, LoadLive(ctx, {EntryList{g.pages[b], &page->page.anchors, &page->page.seg_tags,
                                             &page->page.rows}}));
      live = std::move(got[0]);
      if (warm != nullptr) {
        std::lock_guard<std::mutex> lock(warm->mu);
        if (warm->live[b] == nullptr) warm->live[b] = live;
        live = warm->live[b];
      }
    }
    v.page = page.get();
    v.live = live.get();
    if (warm == nullptr) {
      holders.push_back(std::move(page));
      holders.push_back(std::move(live));
    }
    return &v;
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
        cands[i] = {v->live, ids[i] - v->page->page.first};
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

}  // namespace dreamdb::vindex
