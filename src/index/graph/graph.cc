// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Graph index: Vamana build, node block bytes and beam search (spec/22-graph-index.md).
//
// Build design notes (spec/22 §3):
//  - Work vectors: l2 and ip use the vectors as given, cosine the normalised ones; the
//    graph is built with squared L2 between work vectors for every metric (for ip the
//    graph is a proximity graph searched with the ip estimate).
//  - Insertion runs in batches whose boundaries depend only on n: every node of a batch is
//    searched against the graph frozen at the batch's start (in parallel), then the new
//    out-lists are applied in node order, then back-edges are grouped by target (sorted by
//    (target, source)) and each target's list is extended or pruned independently. So the
//    graph does not depend on the thread count.
//  - Invariants: every list holds distinct node ids != its owner; while building at most
//    cap = degree + ceil(0.3 degree) of them (back-edges are appended until a list would
//    pass cap, then it is pruned to `degree`), after Builder::Finish at most `degree`.
//    RobustPrune output is sorted by distance to the owner (ties by id).

#include "src/index/graph/graph.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <numeric>
#include <string>
#include <utility>

#include "src/base/check.h"
#include "src/base/encoding.h"
#include "src/index/kernels/byte_io.h"
#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/parallel.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

static_assert(std::endian::native == std::endian::little, "byte formats assume little-endian");

constexpr char kBlockMagic[4] = {'D', 'V', 'G', 'B'};
constexpr uint16_t kBlockVersion = 1;
constexpr size_t kBlockHeaderBytes = 32;
constexpr size_t kSumBytes = 16;
constexpr uint32_t kMaxDegree = 256;
constexpr uint32_t kMinDegree = 4;
constexpr uint32_t kMaxBuildList = 4096;
constexpr uint32_t kMaxBlockNodes = 4096;
constexpr uint32_t kMinBlockNodes = 16;
constexpr uint32_t kQueryBits = 4;  // bits of the query planes (PopcountDot)
// Screening a neighbour by its 1-bit lower bound uses this fraction of the error bound
// (spec/22 §5.2): 1 (the full bound) refined ~70% of the nodes met on SYN-768 200k, 0.5
// about half, at the same recall per ef; 0 (the bare 1-bit estimate) lost recall on
// SYN-128 (0.97 -> 0.86 at ef 16).
constexpr float kScreenSlack = 0.5f;
constexpr uint64_t kOrderStream = 0x47525048;   // "GRPH"
constexpr uint64_t kOrderStream2 = 0x47525032;  // "GRP2"

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
Status Corrupt(std::string msg) {
  return Status(StatusCode::kCorrupt, "graph node block: " + std::move(msg));
}

Bytes Sum16(ByteView data) {
  const ObjectId id = ObjectId::Of(data);
  return Bytes(reinterpret_cast<const char*>(id.digest().data()), kSumBytes);
}

EstimatorMetric EstMetric(Metric m) {
  return m == Metric::kL2 ? EstimatorMetric::kL2 : EstimatorMetric::kInnerProduct;
}

size_t CodeBytes(uint32_t bits, uint32_t d) { return size_t{bits} * d / 8 + (bits > 1 ? 24 : 12); }

Status CheckParams(const GraphParams& p) {
  if (p.dim == 0) return Invalid("GraphParams.dim must be > 0");
  if (p.dim > 65536)
    return Invalid("GraphParams.dim must be <= 65536, got " + std::to_string(p.dim));
  if (p.metric != Metric::kL2 && p.metric != Metric::kInnerProduct && p.metric != Metric::kCosine) {
    return Invalid("GraphParams.metric is not a known metric");
  }
  if (p.degree < kMinDegree || p.degree > kMaxDegree) {
    return Invalid("GraphParams.degree must be in 4..256, got " + std::to_string(p.degree));
  }
  if (p.build_list < p.degree || p.build_list > kMaxBuildList) {
    return Invalid("GraphParams.build_list must be in degree (" + std::to_string(p.degree) +
                   ")..4096, got " + std::to_string(p.build_list));
  }
  if (!(p.alpha >= 1.0f && p.alpha <= 4.0f)) {
    return Invalid("GraphParams.alpha must be in [1, 4], got " + std::to_string(p.alpha));
  }
  if (p.bits < 1 || p.bits > 8) {
    return Invalid("GraphParams.bits must be in 1..8, got " + std::to_string(p.bits));
  }
  if (p.rotation != RotationKind::kHadamard && p.rotation != RotationKind::kDense) {
    return Invalid("GraphParams.rotation is not a known rotation kind");
  }
  if (p.nodes_per_block < kMinBlockNodes || p.nodes_per_block > kMaxBlockNodes ||
      !std::has_single_bit(p.nodes_per_block)) {
    return Invalid("GraphParams.nodes_per_block must be a power of two in 16..4096, got " +
                   std::to_string(p.nodes_per_block));
  }
  return Status::Ok();
}

bool Normalize(const float* v, uint32_t dim, float* out) {
  double s = 0;
  for (uint32_t j = 0; j < dim; ++j) s += static_cast<double>(v[j]) * v[j];
  if (!(s > 0)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (uint32_t j = 0; j < dim; ++j) out[j] = v[j] * inv;
  return true;
}

// Internal distance -> Neighbor: MakeNeighbor (src/index/metric.h).

// ---------------------------------------------------------------- Vamana build

struct DistId {
  float dist;
  uint32_t id;
  bool operator<(const DistId& o) const { return dist < o.dist || (dist == o.dist && id < o.id); }
};

class Builder {
 public:
  Builder(const float* vecs, size_t n, uint32_t dim, const GraphParams& p, uint32_t threads)
      : vecs_(vecs),
        n_(n),
        dim_(dim),
        r_(p.degree),
        cap_(p.degree + (3 * p.degree + 9) / 10),
        l_(p.build_list),
        threads_(threads),
        adj_(n * cap_),
        deg_(n, 0) {}

  float Dist(uint32_t a, uint32_t b) const {
    return L2Sqr(vecs_ + size_t{a} * dim_, vecs_ + size_t{b} * dim_, dim_);
  }

  struct BeamEntry {
    float dist;
    uint32_t id;
    bool expanded;
    bool Before(const BeamEntry& o) const { return dist < o.dist || (dist == o.dist && id < o.id); }
  };
  struct Scratch {
    std::vector<uint32_t> seen;  // epoch per node
    uint32_t epoch = 0;
    std::vector<BeamEntry> beam;
    std::vector<DistId> visited;
    std::vector<DistId> cand;
    std::vector<uint8_t> pruned;
    std::vector<uint32_t> out;
  };

  uint32_t Medoid() const {
    std::vector<double> mean(dim_, 0);
    for (size_t i = 0; i < n_; ++i) {
      for (uint32_t j = 0; j < dim_; ++j) mean[j] += vecs_[i * dim_ + j];
    }
    std::vector<float> m(dim_);
    for (uint32_t j = 0; j < dim_; ++j)
      m[j] = static_cast<float>(mean[j] / static_cast<double>(n_));
    DistId best{std::numeric_limits<float>::infinity(), 0};
    for (size_t i = 0; i < n_; ++i) {
      const DistId c{L2Sqr(m.data(), vecs_ + i * dim_, dim_), static_cast<uint32_t>(i)};
      if (c < best) best = c;
    }
    return best.id;
  }

  // Greedy beam search for node p from the entry; fills s.visited with the expanded nodes.
  void Search(uint32_t p, uint32_t entry, Scratch& s) const {
    if (++s.epoch == 0) {
      std::fill(s.seen.begin(), s.seen.end(), 0);
      s.epoch = 1;
    }
    s.beam.clear();
    s.visited.clear();
    s.beam.push_back({Dist(p, entry), entry, false});
    s.seen[entry] = s.epoch;
    size_t cur = 0;
    while (cur < s.beam.size()) {
      s.beam[cur].expanded = true;
      const DistId node{s.beam[cur].dist, s.beam[cur].id};
      s.visited.push_back(node);
      const uint32_t* nb = &adj_[size_t{node.id} * cap_];
      const uint32_t cnt = deg_[node.id];
      size_t next = s.beam.size();
      for (uint32_t j = 0; j < cnt; ++j) {
        const uint32_t v = nb[j];
        if (s.seen[v] == s.epoch) continue;
        s.seen[v] = s.epoch;
        const BeamEntry c{Dist(p, v), v, false};
        if (s.beam.size() >= l_ && !c.Before(s.beam.back())) continue;
        const auto it =
            std::upper_bound(s.beam.begin(), s.beam.end(), c,
                             [](const BeamEntry& a, const BeamEntry& b) { return a.Before(b); });
        next = std::min(next, static_cast<size_t>(it - s.beam.begin()));
        s.beam.insert(it, c);
        if (s.beam.size() > l_) s.beam.pop_back();
      }
      // Entries before `next` are unchanged (expanded up to cur); the first unexpanded one
      // is at `next` or after cur.
      size_t after = cur + 1;
      while (after < s.beam.size() && s.beam[after].expanded) ++after;
      cur = std::min(next, after);
      while (cur < s.beam.size() && s.beam[cur].expanded) ++cur;
    }
  }

  // RobustPrune (DiskANN): s.cand holds (distance to p, id); writes at most r_ ids to s.out.
  void Prune(uint32_t p, float alpha, Scratch& s) const {
    auto& c = s.cand;
    std::sort(c.begin(), c.end());
    // Distinct ids, not p (equal ids have equal distances, so they are adjacent).
    size_t w = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i].id == p) continue;
      if (w > 0 && c[w - 1].id == c[i].id) continue;
      c[w++] = c[i];
    }
    c.resize(w);
    s.out.clear();
    s.pruned.assign(c.size(), 0);
    for (size_t i = 0; i < c.size() && s.out.size() < r_; ++i) {
      if (s.pruned[i] != 0) continue;
      s.out.push_back(c[i].id);
      for (size_t j = i + 1; j < c.size(); ++j) {
        if (s.pruned[j] != 0) continue;
        if (alpha * Dist(c[i].id, c[j].id) <= c[j].dist) s.pruned[j] = 1;
      }
    }
  }

  // One pass over `order` with the given alpha; batches of at most max_batch nodes,
  // doubling from 1 when `grow`.
  void Pass(const std::vector<uint32_t>& order, uint32_t entry, float alpha, bool grow,
            size_t max_batch, uint64_t done_before, uint64_t total,
            const std::function<void(uint64_t, uint64_t)>* progress) {
    const uint32_t workers = ResolveThreads(threads_);
    std::vector<Scratch> scratch(workers);
    for (Scratch& s : scratch) s.seen.assign(n_, 0);
    std::vector<std::vector<uint32_t>> outs;
    std::vector<std::pair<uint32_t, uint32_t>> back;  // (target, source)
    size_t batch = grow ? 1 : max_batch;
    for (size_t start = 0; start < n_;) {
      const size_t end = std::min(n_, start + batch);
      const size_t m = end - start;
      outs.assign(m, {});
      ParallelFor(m, threads_, 1, [&](size_t b, size_t e, size_t worker) {
        Scratch& s = scratch[worker];
        for (size_t i = b; i < e; ++i) {
          const uint32_t p = order[start + i];
          Search(p, entry, s);
          s.cand = s.visited;
          for (uint32_t j = 0; j < deg_[p]; ++j) {
            const uint32_t v = adj_[size_t{p} * cap_ + j];
            s.cand.push_back({Dist(p, v), v});
          }
          Prune(p, alpha, s);
          outs[i] = s.out;
        }
      });
      back.clear();
      for (size_t i = 0; i < m; ++i) {
        const uint32_t p = order[start + i];
        std::copy(outs[i].begin(), outs[i].end(), &adj_[size_t{p} * cap_]);
        deg_[p] = static_cast<uint32_t>(outs[i].size());
        for (uint32_t v : outs[i]) back.emplace_back(v, p);
      }
      std::sort(back.begin(), back.end());
      back.erase(std::unique(back.begin(), back.end()), back.end());
      // Group starts.
      std::vector<size_t> groups;
      for (size_t i = 0; i < back.size(); ++i) {
        if (i == 0 || back[i].first != back[i - 1].first) groups.push_back(i);
      }
      groups.push_back(back.size());
      ParallelFor(groups.size() - 1, threads_, 64, [&](size_t b, size_t e, size_t worker) {
        Scratch& s = scratch[worker];
        for (size_t g = b; g < e; ++g) {
          const uint32_t j = back[groups[g]].first;
          uint32_t* list = &adj_[size_t{j} * cap_];
          uint32_t cnt = deg_[j];
          s.out.clear();
          for (size_t i = groups[g]; i < groups[g + 1]; ++i) {
            const uint32_t p = back[i].second;
            if (std::find(list, list + cnt, p) == list + cnt) s.out.push_back(p);
          }
          if (cnt + s.out.size() <= cap_) {
            for (uint32_t p : s.out) list[cnt++] = p;
            deg_[j] = cnt;
            continue;
          }
          s.cand.clear();
          for (uint32_t i = 0; i < cnt; ++i) s.cand.push_back({Dist(j, list[i]), list[i]});
          for (uint32_t p : s.out) s.cand.push_back({Dist(j, p), p});
          Prune(j, alpha, s);
          std::copy(s.out.begin(), s.out.end(), list);
          deg_[j] = static_cast<uint32_t>(s.out.size());
        }
      });
      start = end;
      if (progress != nullptr && *progress) (*progress)(done_before + end, total);
      if (grow) batch = std::min(max_batch, batch * 2);
    }
  }

  // Prunes the lists that grew past the degree bound (back-edges may fill a list up to
  // cap_ = R + ceil(0.3 R) before it is pruned back to R, as DiskANN's slack factor).
  void Finish(float alpha) {
    const uint32_t workers = ResolveThreads(threads_);
    std::vector<Scratch> scratch(workers);
    ParallelFor(n_, threads_, 256, [&](size_t b, size_t e, size_t worker) {
      Scratch& s = scratch[worker];
      for (size_t j = b; j < e; ++j) {
        if (deg_[j] <= r_) continue;
        uint32_t* list = &adj_[j * cap_];
        s.cand.clear();
        for (uint32_t i = 0; i < deg_[j]; ++i) {
          s.cand.push_back({Dist(static_cast<uint32_t>(j), list[i]), list[i]});
        }
        Prune(static_cast<uint32_t>(j), alpha, s);
        std::copy(s.out.begin(), s.out.end(), list);
        deg_[j] = static_cast<uint32_t>(s.out.size());
      }
    });
  }

  uint32_t stride() const { return cap_; }
  const std::vector<uint32_t>& adj() const { return adj_; }
  const std::vector<uint32_t>& deg() const { return deg_; }

 private:
  const float* vecs_;
  size_t n_;
  uint32_t dim_;
  uint32_t r_;
  uint32_t cap_;
  uint32_t l_;
  uint32_t threads_;
  std::vector<uint32_t> adj_;  // n x r
  std::vector<uint32_t> deg_;
};

// ---------------------------------------------------------------- search scratch

// Open-addressing map from u32 keys (node or block numbers) to values, cleared in O(1) by an
// epoch. Sized by what a search touches, not by the (unknown, possibly corrupt) id range, so
// memory stays small and hot in cache.
template <typename V>
class IdMap {
 public:
  void Clear() {
    if (++epoch_ == 0) {
      std::fill(stamp_.begin(), stamp_.end(), 0);
      epoch_ = 1;
    }
    size_ = 0;
    if (stamp_.empty()) Resize(1024);
  }
  // The value of `key`, or nullptr.
  V* Find(uint32_t key) {
    for (size_t i = Hash(key);; i = (i + 1) & mask_) {
      if (stamp_[i] != epoch_) return nullptr;
      if (keys_[i] == key) return &vals_[i];
    }
  }
  // Inserts key (value-initialised) if absent; returns {value, inserted}.
  std::pair<V*, bool> Insert(uint32_t key) {
    if (2 * (size_ + 1) > stamp_.size()) Grow();
    for (size_t i = Hash(key);; i = (i + 1) & mask_) {
      if (stamp_[i] != epoch_) {
        stamp_[i] = epoch_;
        keys_[i] = key;
        vals_[i] = V{};
        ++size_;
        return {&vals_[i], true};
      }
      if (keys_[i] == key) return {&vals_[i], false};
    }
  }

 private:
  size_t Hash(uint32_t key) const {
    return static_cast<size_t>((uint64_t{key} * 0x9E3779B97F4A7C15ULL) >> shift_) & mask_;
  }
  void Resize(size_t slots) {
    stamp_.assign(slots, 0);
    keys_.assign(slots, 0);
    vals_.assign(slots, V{});
    mask_ = slots - 1;
    shift_ = 64 - static_cast<uint32_t>(std::countr_zero(slots));
    epoch_ = 1;
  }
  void Grow() {
    std::vector<uint32_t> stamp = std::move(stamp_);
    std::vector<uint32_t> keys = std::move(keys_);
    std::vector<V> vals = std::move(vals_);
    const uint32_t epoch = epoch_;
    Resize(stamp.size() * 2);
    size_ = 0;
    for (size_t i = 0; i < stamp.size(); ++i) {
      if (stamp[i] == epoch) *Insert(keys[i]).first = vals[i];
    }
  }
  std::vector<uint32_t> stamp_;
  std::vector<uint32_t> keys_;
  std::vector<V> vals_;
  size_t mask_ = 0;
  uint32_t shift_ = 64;
  uint32_t epoch_ = 0;
  size_t size_ = 0;
};

struct SearchScratch {
  IdMap<const GraphNodeBlock*> table;  // block number -> block (held below)
  std::vector<std::shared_ptr<const GraphNodeBlock>> held;
  IdMap<uint8_t> seen;  // nodes met
  std::vector<float> qn;
  std::vector<float> x;
  QueryPlanes planes;
  struct Cand {
    float est;
    uint32_t id;
    bool expanded;
  };
  std::vector<Cand> beam;
  struct Result {
    float lower;
    float est;
    uint32_t id;
  };
  std::vector<Result> results;
  std::vector<std::pair<float, uint64_t>> heap;  // max-heap (distance, id), size <= k
  std::vector<uint32_t> prefetch;
  std::vector<uint32_t> fresh;
  struct Survivor {
    float lower;  // screening bound (-inf while the beam was not full)
    uint32_t id;
    const GraphNodeBlock* blk;
  };
  std::vector<Survivor> survivors;
  bool in_use = false;
};

// A scratch per nesting level per thread (GraphSearch is reentrant: `keep` or `exact` may
// search again).
class ScratchLease {
 public:
  ScratchLease() {
    thread_local std::vector<std::unique_ptr<SearchScratch>> pool;
    for (auto& s : pool) {
      if (!s->in_use) {
        s_ = s.get();
        break;
      }
    }
    if (s_ == nullptr) {
      pool.push_back(std::make_unique<SearchScratch>());
      s_ = pool.back().get();
    }
    s_->in_use = true;
  }
  ~ScratchLease() {
    s_->held.clear();
    s_->in_use = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  SearchScratch& operator*() const { return *s_; }

 private:
  SearchScratch* s_ = nullptr;
};

void PushHeap(std::vector<std::pair<float, uint64_t>>& heap, size_t k, float dist, uint64_t id) {
  const std::pair<float, uint64_t> e(dist, id);
  if (heap.size() < k) {
    heap.push_back(e);
    std::push_heap(heap.begin(), heap.end());
  } else if (e < heap.front()) {
    std::pop_heap(heap.begin(), heap.end());
    heap.back() = e;
    std::push_heap(heap.begin(), heap.end());
  }
}

}  // namespace

uint32_t DefaultEf(uint32_t k) { return std::max<uint32_t>(64, 2 * k); }

// ---------------------------------------------------------------- node block bytes

size_t GraphNodeBlock::MemoryBytes() const {
  return sizeof(*this) + offsets_.capacity() * sizeof(uint32_t) +
         nbrs_.capacity() * sizeof(uint32_t) + codes_.capacity() * sizeof(uint64_t);
}

Bytes GraphNodeBlock::Encode() const {
  Bytes out;
  const size_t edges = nbrs_.size();
  const size_t adj_bytes = 4 * size_t{count_} + 4 * edges;
  const size_t pad = (8 - adj_bytes % 8) % 8;
  out.reserve(kBlockHeaderBytes + adj_bytes + pad + count_ * CodeBytes(bits_, d_) + kSumBytes);
  out.append(kBlockMagic, 4);
  Put<uint16_t>(&out, kBlockVersion);
  Put<uint8_t>(&out, static_cast<uint8_t>(bits_));
  Put<uint8_t>(&out, 0);
  Put<uint32_t>(&out, d_);
  Put<uint32_t>(&out, first_);
  Put<uint32_t>(&out, count_);
  Put<uint32_t>(&out, degree_);
  Put<uint32_t>(&out, static_cast<uint32_t>(edges));
  Put<uint32_t>(&out, 0);
  for (uint32_t i = 0; i < count_; ++i) Put<uint32_t>(&out, offsets_[i + 1] - offsets_[i]);
  for (uint32_t v : nbrs_) Put<uint32_t>(&out, v);
  out.append(pad, '\0');
  const size_t plane_words = size_t{bits_} * (d_ / 64);
  for (uint32_t i = 0; i < count_; ++i) {
    // Planes 0 .. B-1 (the sign plane last), then the factors.
    out.append(reinterpret_cast<const char*>(lower_planes(i)), plane_words * 8 - d_ / 8);
    out.append(reinterpret_cast<const char*>(signs(i)), d_ / 8);
    out.append(reinterpret_cast<const char*>(signs(i) + d_ / 64), bits_ > 1 ? 24 : 12);
  }
  out += Sum16(out);
  return out;
}

Result<std::shared_ptr<const GraphNodeBlock>> GraphNodeBlock::Decode(const IvfModel& model,
                                                                     ByteView bytes) {
  if (bytes.size() < 6 || std::memcmp(bytes.data(), kBlockMagic, 4) != 0) {
    return Corrupt("missing 'DVGB' magic");
  }
  const char* p = bytes.data();
  const auto version = Get<uint16_t>(p + 4);
  if (version > kBlockVersion) {
    return Status(StatusCode::kUnsupported,
                  "graph node block format version " + std::to_string(version) +
                      " is newer than this reader (knows up to " + std::to_string(kBlockVersion) +
                      "); upgrade DreamDB");
  }
  if (version == 0) return Corrupt("version 0 is not valid");
  if (bytes.size() < kBlockHeaderBytes + kSumBytes) {
    return Corrupt("size " + std::to_string(bytes.size()) + " is shorter than the header");
  }
  const uint32_t bits = Get<uint8_t>(p + 6);
  const uint32_t d = Get<uint32_t>(p + 8);
  const uint32_t first = Get<uint32_t>(p + 12);
  const uint32_t count = Get<uint32_t>(p + 16);
  const uint32_t degree = Get<uint32_t>(p + 20);
  const uint32_t edges = Get<uint32_t>(p + 24);
  if (p[7] != 0) return Corrupt("reserved byte 7 is not zero");
  if (Get<uint32_t>(p + 28) != 0) return Corrupt("reserved bytes 28..31 are not zero");
  if (bits != model.params().bits || d != model.padded_dim()) {
    return Corrupt("bits/padded dimension (" + std::to_string(bits) + ", " + std::to_string(d) +
                   ") do not match the model (" + std::to_string(model.params().bits) + ", " +
                   std::to_string(model.padded_dim()) + ")");
  }
  if (count == 0 || count > kMaxBlockNodes) {
    return Corrupt("node count " + std::to_string(count) + " is outside 1..4096");
  }
  if (uint64_t{first} + count > (uint64_t{1} << 32)) {
    return Corrupt("nodes " + std::to_string(first) + " + " + std::to_string(count) +
                   " exceed 2^32");
  }
  if (degree < kMinDegree || degree > kMaxDegree) {
    return Corrupt("degree bound " + std::to_string(degree) + " is outside 4..256");
  }
  if (uint64_t{edges} > uint64_t{count} * degree) {
    return Corrupt("edge count " + std::to_string(edges) + " exceeds count x degree");
  }
  const size_t adj_bytes = 4 * size_t{count} + 4 * size_t{edges};
  const size_t pad = (8 - adj_bytes % 8) % 8;
  const size_t code_bytes = CodeBytes(bits, d);
  const size_t want = kBlockHeaderBytes + adj_bytes + pad + count * code_bytes + kSumBytes;
  if (bytes.size() != want) {
    return Corrupt("size " + std::to_string(bytes.size()) + " does not match " +
                   std::to_string(want) + " for " + std::to_string(count) + " nodes and " +
                   std::to_string(edges) + " edges");
  }
  const ByteView body = bytes.substr(0, bytes.size() - kSumBytes);
  if (Sum16(body) != bytes.substr(bytes.size() - kSumBytes)) return Corrupt("checksum mismatch");
  std::shared_ptr<GraphNodeBlock> b(new GraphNodeBlock());
  b->first_ = first;
  b->count_ = count;
  b->degree_ = degree;
  b->bits_ = bits;
  b->d_ = d;
  b->offsets_.resize(size_t{count} + 1);
  const char* q = p + kBlockHeaderBytes;
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const auto c = Get<uint32_t>(q + 4 * size_t{i});
    if (c > degree) {
      return Corrupt("node " + std::to_string(uint64_t{first} + i) + " has " + std::to_string(c) +
                     " neighbours, more than the degree bound " + std::to_string(degree));
    }
    b->offsets_[i] = static_cast<uint32_t>(total);
    total += c;
  }
  if (total != edges) {
    return Corrupt("neighbour counts add up to " + std::to_string(total) + ", not the edge count " +
                   std::to_string(edges));
  }
  b->offsets_[count] = edges;
  q += 4 * size_t{count};
  b->nbrs_.resize(edges);
  if (edges > 0) std::memcpy(b->nbrs_.data(), q, 4 * size_t{edges});
  q += 4 * size_t{edges};
  for (size_t i = 0; i < pad; ++i) {
    if (q[i] != 0) return Corrupt("padding after the neighbour lists is not zero");
  }
  q += pad;
  b->AllocateCodes();
  for (uint32_t i = 0; i < count; ++i) {
    for (uint32_t pl = 0; pl < bits; ++pl) {
      std::memcpy(b->MutablePlane(i, pl), q, d / 8);
      q += d / 8;
    }
    float* f = b->MutableFactors(i);
    std::memcpy(f, q, bits > 1 ? 24 : 12);
    q += bits > 1 ? 24 : 12;
    if (bits == 1) std::copy(f, f + 3, f + 3);
    for (int j = 0; j < 6; ++j) {
      if (!std::isfinite(f[j])) {
        return Corrupt("node " + std::to_string(uint64_t{first} + i) + " has a non-finite factor");
      }
    }
  }
  return std::shared_ptr<const GraphNodeBlock>(std::move(b));
}

// ---------------------------------------------------------------- search

Result<std::vector<Neighbor>> GraphSearch(
    const IvfModel& model, uint32_t nodes_per_block, uint32_t entry, GraphNodeSource& source,
    const float* q, const GraphSearchParams& params, const std::function<bool(uint32_t)>* keep,
    const std::function<Status(const uint64_t*, size_t, float*)>* exact) {
  if (params.k == 0) return Invalid("k must be > 0");
  if (q == nullptr) return Invalid("query pointer is null");
  if (nodes_per_block == 0) return Invalid("nodes_per_block must be > 0");
  const IvfParams& mp = model.params();
  if (mp.num_cells != 1 || mp.algorithm != IvfParams::Algorithm::kIvf) {
    return Invalid("a graph index needs a one-cell ivf model, got " + std::to_string(mp.num_cells) +
                   " cells");
  }
  const uint32_t dim = mp.dim;
  const uint32_t d = model.padded_dim();
  const uint32_t words = d / 64;
  const uint32_t bits = mp.bits;
  for (uint32_t j = 0; j < dim; ++j) {
    if (!std::isfinite(q[j])) {
      return Invalid("query column " + std::to_string(j) + " is not finite (NaN or inf)");
    }
  }
  ScratchLease lease;
  SearchScratch& s = *lease;
  s.qn.resize(dim);
  if (mp.metric == Metric::kCosine) {
    if (!Normalize(q, dim, s.qn.data())) {
      return Invalid("query is a zero vector, which has no cosine similarity");
    }
  } else {
    std::copy(q, q + dim, s.qn.begin());
  }
  s.x.resize(d);
  model.rotation().Apply(s.qn.data(), s.x.data());
  BuildQueryPlanes(s.x.data(), d, kQueryBits, &s.planes);
  const float* c = model.centroid(0);
  const float dot = Dot(s.qn.data(), c, dim);
  const float l2 = std::max(0.0f, NormSqr(s.qn.data(), dim) + NormSqr(c, dim) - 2 * dot);
  const float g_add = mp.metric == Metric::kL2 ? l2 : -dot;
  const float g_err = std::sqrt(l2);
  const float sum = s.planes.sum;
  const float half_sum = 0.5f * sum;
  const float pdelta = s.planes.delta;
  const float pvmin = s.planes.vmin;
  const uint64_t* qplanes = s.planes.planes.data();

  const uint32_t k = params.k;
  const uint32_t ef = std::max(k, params.ef == 0 ? DefaultEf(k) : params.ef);
  GraphSearchStats stats;

  // Block of node v (loads it on first use); nullptr and an error status otherwise.
  Status error;
  auto block_of = [&](uint32_t b) -> const GraphNodeBlock* {
    if (const GraphNodeBlock** hit = s.table.Find(b); hit != nullptr) return *hit;
    Result<std::shared_ptr<const GraphNodeBlock>> r = source.Block(b);
    if (!r.ok()) {
      error = r.status();
      return nullptr;
    }
    std::shared_ptr<const GraphNodeBlock> blk = std::move(r).value();
    if (blk == nullptr || blk->first() != uint64_t{b} * nodes_per_block ||
        blk->count() > nodes_per_block || blk->bits() != bits || blk->padded_dim() != d) {
      error = Corrupt("block " + std::to_string(b) + " does not hold nodes from " +
                      std::to_string(uint64_t{b} * nodes_per_block) + " with this model's codes");
      return nullptr;
    }
    const GraphNodeBlock* raw = blk.get();
    *s.table.Insert(b).first = raw;
    s.held.push_back(std::move(blk));
    ++stats.blocks;
    return raw;
  };
  auto est1_of = [&](const GraphNodeBlock* blk, uint32_t local) -> float {
    const uint64_t* sg = blk->signs(local);
    const uint64_t ones = PopcountWords(sg, words);
    const uint64_t pd = PopcountDot(sg, qplanes, words, kQueryBits);
    const float ip = pdelta * static_cast<float>(pd) + pvmin * static_cast<float>(ones);
    const CodeFactors f = blk->factors1(local);
    return f.add + g_add + f.rescale * (ip - half_sum);
  };
  // The full-code estimate: <u, x> exactly in the code (ExPlanesDot).
  auto est_full = [&](const GraphNodeBlock* blk, uint32_t local) -> float {
    // The sign plane is the top plane (bits - 1); the lower planes follow the factors.
    const float ipx =
        ExPlanesDotSplit(reinterpret_cast<const uint8_t*>(blk->lower_planes(local)), bits - 1,
                         reinterpret_cast<const uint8_t*>(blk->signs(local)), s.x.data(), d);
    return EstimateDistance(blk->factors_full(local), g_add, ipx, sum, bits);
  };
  s.table.Clear();
  s.seen.Clear();
  auto mark_seen = [&](uint32_t v) -> bool {  // true if newly seen
    return s.seen.Insert(v).second;
  };
  auto locate = [&](uint32_t v, uint32_t from, const GraphNodeBlock** blk,
                    uint32_t* local) -> bool {
    const uint32_t b = v / nodes_per_block;
    *blk = block_of(b);
    if (*blk == nullptr) return false;
    *local = v - (*blk)->first();
    if (*local >= (*blk)->count()) {
      error =
          Status(StatusCode::kCorrupt, "graph: node " + std::to_string(from) + " has neighbour " +
                                           std::to_string(v) + ", beyond the graph");
      return false;
    }
    return true;
  };

  s.beam.clear();
  s.results.clear();
  s.heap.clear();
  {
    const GraphNodeBlock* blk = nullptr;
    uint32_t local = 0;
    if (!locate(entry, entry, &blk, &local)) {
      if (error.code() == StatusCode::kCorrupt) {
        return Status(StatusCode::kCorrupt,
                      "graph: entry node " + std::to_string(entry) + ": " + error.message());
      }
      return error;
    }
    mark_seen(entry);
    s.beam.push_back({est_full(blk, local), entry, false});
    ++stats.estimated;
    ++stats.refined;
  }
  const bool rerank = params.rerank;
  size_t cur = 0;
  while (cur < s.beam.size()) {
    const uint32_t u = s.beam[cur].id;
    s.beam[cur].expanded = true;
    const GraphNodeBlock* ublk = nullptr;
    uint32_t ulocal = 0;
    if (!locate(u, u, &ublk, &ulocal)) return error;
    ++stats.expanded;
    // Result list: the expanded node's full-code estimate (computed when it was met).
    if (keep == nullptr || (*keep)(u)) {
      const CodeFactors fx = ublk->factors_full(ulocal);
      const float est = s.beam[cur].est;
      if (rerank) {
        const float err = fx.error * g_err;
        const float bound =
            s.heap.size() < k ? std::numeric_limits<float>::infinity() : s.heap.front().first;
        if (est - err < bound) {
          PushHeap(s.heap, k, est + err, u);
          s.results.push_back({est - err, est, u});
        }
      } else {
        PushHeap(s.heap, k, est, u);
      }
    }
    // The next node to expand (most likely): its neighbour list is fetched while this
    // one's neighbours are screened.
    for (size_t j = cur + 1; j < s.beam.size(); ++j) {
      if (s.beam[j].expanded) continue;
      if (const GraphNodeBlock** nb = s.table.Find(s.beam[j].id / nodes_per_block)) {
        (*nb)->PrefetchNeighbors(s.beam[j].id - (*nb)->first());
      }
      break;
    }
    const std::span<const uint32_t> nbrs = ublk->neighbors(ulocal);
    // Unseen neighbours; hint the source with the blocks it does not have yet. Ids are
    // validated (their block exists and holds them) before they index the seen array.
    s.fresh.clear();
    s.prefetch.clear();
    for (uint32_t v : nbrs) {
      if (s.seen.Find(v) != nullptr) continue;
      s.fresh.push_back(v);
      const uint32_t b = v / nodes_per_block;
      if (s.table.Find(b) == nullptr) s.prefetch.push_back(b);
    }
    if (!s.prefetch.empty()) {
      std::sort(s.prefetch.begin(), s.prefetch.end());
      s.prefetch.erase(std::unique(s.prefetch.begin(), s.prefetch.end()), s.prefetch.end());
      source.Prefetch(s.prefetch.data(), s.prefetch.size());
    }
    size_t nf = 0;
    for (uint32_t v : s.fresh) {
      const GraphNodeBlock* blk = nullptr;
      uint32_t local = 0;
      if (!locate(v, u, &blk, &local)) return error;
      if (!mark_seen(v)) continue;  // a duplicate in the list
      __builtin_prefetch(blk->signs(local));
      __builtin_prefetch(blk->signs(local) + words + 2);  // the factors' end
      s.fresh[nf++] = v;
    }
    s.fresh.resize(nf);
    // Each new neighbour: the 1-bit estimate and its lower bound (popcount kernel); only a
    // node whose lower bound beats the beam's worst gets the full-code estimate it is
    // ranked by (spec/22 §5.2). Two phases: screen all against the worst at the start
    // (prefetching the survivors' planes), then re-check each against the current worst.
    s.survivors.clear();
    for (uint32_t v : s.fresh) {
      const GraphNodeBlock* blk = *s.table.Find(v / nodes_per_block);
      const uint32_t local = v - blk->first();
      ++stats.estimated;
      float lower = -std::numeric_limits<float>::infinity();
      if (s.beam.size() >= ef) {
        lower = est1_of(blk, local) - kScreenSlack * blk->factors1(local).error * g_err;
        if (lower >= s.beam.back().est) continue;
      }
      if (bits > 1) {
        const uint64_t* lp = blk->lower_planes(local);
        for (uint32_t w = 0; w < (bits - 1) * words; w += 8) __builtin_prefetch(lp + w);
      }
      s.survivors.push_back({lower, v, blk});
    }
    size_t next = s.beam.size();
    for (const SearchScratch::Survivor& sv : s.survivors) {
      if (s.beam.size() >= ef && sv.lower >= s.beam.back().est) continue;
      const uint32_t v = sv.id;
      const float est = est_full(sv.blk, v - sv.blk->first());
      ++stats.refined;
      if (s.beam.size() >= ef && est >= s.beam.back().est) continue;
      const SearchScratch::Cand cand{est, v, false};
      const auto it =
          std::upper_bound(s.beam.begin(), s.beam.end(), cand,
                           [](const SearchScratch::Cand& a, const SearchScratch::Cand& b) {
                             return a.est < b.est || (a.est == b.est && a.id < b.id);
                           });
      const auto pos = static_cast<size_t>(it - s.beam.begin());
      s.beam.insert(it, cand);
      sv.blk->PrefetchOffsets(v - sv.blk->first());
      if (s.beam.size() > ef) s.beam.pop_back();
      next = std::min(next, pos);
    }
    // The next unexpanded candidate: either a newly inserted one or the first after cur.
    size_t after = cur + 1;
    while (after < s.beam.size() && s.beam[after].expanded) ++after;
    cur = std::min(next, after);
    while (cur < s.beam.size() && s.beam[cur].expanded) ++cur;
  }

  std::vector<Neighbor> out;
  const Metric metric = mp.metric;
  if (params.bound_ids != nullptr) {
    params.bound_ids->clear();
    for (const auto& e : s.heap) params.bound_ids->push_back(e.second);
  }
  if (!rerank) {
    std::sort_heap(s.heap.begin(), s.heap.end());
    out.reserve(s.heap.size());
    for (const auto& [dist, id] : s.heap) out.push_back(MakeNeighbor(metric, id, dist));
    if (params.stats != nullptr) *params.stats = stats;
    return out;
  }
  // Re-rank (spec/20 §6.5): candidates whose lower bound is below the k-th upper bound,
  // exact distances in order of lower bound until none can enter the top-k.
  const float bound =
      s.heap.size() < k ? std::numeric_limits<float>::infinity() : s.heap.front().first;
  std::erase_if(s.results, [bound](const SearchScratch::Result& r) { return r.lower >= bound; });
  if (exact == nullptr || !*exact) {
    std::sort(s.results.begin(), s.results.end(),
              [](const SearchScratch::Result& a, const SearchScratch::Result& b) {
                return a.est < b.est || (a.est == b.est && a.id < b.id);
              });
    for (size_t i = 0; i < s.results.size() && i < k; ++i) {
      out.push_back(MakeNeighbor(metric, s.results[i].id, s.results[i].est));
    }
    if (params.stats != nullptr) *params.stats = stats;
    return out;
  }
  std::sort(s.results.begin(), s.results.end(),
            [](const SearchScratch::Result& a, const SearchScratch::Result& b) {
              return a.lower < b.lower || (a.lower == b.lower && a.id < b.id);
            });
  s.heap.clear();
  const float offset = metric == Metric::kCosine ? 1.0f : 0.0f;
  const size_t batch = std::max<size_t>(16, k);
  std::vector<uint64_t> ids;
  std::vector<float> dists;
  auto threshold = [&]() {
    return s.heap.size() < k ? std::numeric_limits<float>::infinity() : s.heap.front().first;
  };
  size_t i = 0;
  while (i < s.results.size() && s.results[i].lower < threshold()) {
    ids.clear();
    while (i < s.results.size() && ids.size() < batch && s.results[i].lower < threshold()) {
      ids.push_back(s.results[i++].id);
    }
    dists.resize(ids.size());
    RETURN_IF_ERROR((*exact)(ids.data(), ids.size(), dists.data()));
    stats.exact += static_cast<uint32_t>(ids.size());
    for (size_t j = 0; j < ids.size(); ++j) PushHeap(s.heap, k, dists[j] - offset, ids[j]);
  }
  std::sort_heap(s.heap.begin(), s.heap.end());
  for (const auto& [dist, id] : s.heap) out.push_back(MakeNeighbor(metric, id, dist));
  if (params.stats != nullptr) *params.stats = stats;
  return out;
}

// ---------------------------------------------------------------- in-memory index

namespace {

class MemorySource : public GraphNodeSource {
 public:
  explicit MemorySource(const std::vector<std::shared_ptr<const GraphNodeBlock>>& blocks)
      : blocks_(blocks) {}
  Result<std::shared_ptr<const GraphNodeBlock>> Block(uint32_t b) override {
    if (b >= blocks_.size()) {
      return Status(StatusCode::kCorrupt, "graph: block " + std::to_string(b) +
                                              " is beyond the last block " +
                                              std::to_string(blocks_.size() - 1));
    }
    return blocks_[b];
  }

 private:
  const std::vector<std::shared_ptr<const GraphNodeBlock>>& blocks_;
};

}  // namespace

Result<std::unique_ptr<GraphIndex>> GraphIndex::Build(
    const GraphParams& params, const float* data, size_t n, uint32_t threads,
    std::vector<uint32_t>* order,
    const std::function<void(uint64_t done, uint64_t total)>* progress) {
  RETURN_IF_ERROR(CheckParams(params));
  if (n == 0) return Invalid("a graph index needs at least one vector, got 0");
  if (n >= (uint64_t{1} << 32)) return Invalid("a graph index holds fewer than 2^32 vectors");
  if (data == nullptr) return Invalid("vector pointer is null");
  const uint32_t dim = params.dim;
  for (size_t i = 0; i < n * dim; ++i) {
    if (!std::isfinite(data[i])) {
      return Invalid("vector row " + std::to_string(i / dim) + " column " +
                     std::to_string(i % dim) + " is not finite (NaN or inf)");
    }
  }
  // Work vectors (cosine: normalised) and the mean (the model's one centre).
  std::vector<float> normed;
  const float* work = data;
  if (params.metric == Metric::kCosine) {
    normed.resize(n * dim);
    for (size_t i = 0; i < n; ++i) {
      if (!Normalize(data + i * dim, dim, &normed[i * dim])) {
        return Invalid("vector row " + std::to_string(i) +
                       " is a zero vector, which has no cosine similarity");
      }
    }
    work = normed.data();
  }
  std::vector<double> mean(dim, 0);
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < dim; ++j) mean[j] += work[i * dim + j];
  }
  std::vector<float> centre(dim);
  for (uint32_t j = 0; j < dim; ++j)
    centre[j] = static_cast<float>(mean[j] / static_cast<double>(n));
  // The codec origin: a one-cell partition at the mean (spec/22 §2).
  IvfParams ip;
  ip.dim = dim;
  ip.metric = params.metric;
  ip.bits = params.bits;
  ip.rotation = params.rotation;
  ip.seed = params.seed;
  ASSIGN_OR_RETURN(std::shared_ptr<const IvfModel> model,
                   IvfModel::SingleCell(ip, std::move(centre)));

  // Vamana: random insertion order, medoid entry, pass 1 (alpha 1), pass 2 (alpha).
  Builder builder(work, n, dim, params, threads);
  const uint32_t medoid = builder.Medoid();
  auto permutation = [n](uint64_t seed, uint64_t stream) {
    std::vector<uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    Rng rng(seed, stream);
    for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.Below(i)]);
    return perm;
  };
  const size_t max_batch = std::clamp<size_t>(n / 50, 1, 10000);
  const uint64_t total = 2 * uint64_t{n};
  builder.Pass(permutation(params.seed, kOrderStream), medoid, 1.0f, /*grow=*/true, max_batch, 0,
               total, progress);
  builder.Pass(permutation(params.seed, kOrderStream2), medoid, params.alpha, /*grow=*/false,
               max_batch, n, total, progress);
  builder.Finish(params.alpha);
  const std::vector<uint32_t>& adj = builder.adj();
  const std::vector<uint32_t>& deg = builder.deg();
  const uint32_t r = params.degree;
  const uint32_t stride = builder.stride();

  // Renumber for block locality (spec/22 §3.3): each block is filled by a breadth-first
  // search from a seed, limited to the block's free places; neighbours that did not fit
  // queue up (in discovery order) as seeds of the next blocks. The first seed is the
  // medoid (node 0); when the queue runs dry, the first unnumbered input row.
  std::vector<uint32_t> new_of(n, UINT32_MAX);
  std::vector<uint32_t> old_of;
  old_of.reserve(n);
  {
    const uint32_t npb = params.nodes_per_block;
    std::deque<uint32_t> frontier = {medoid};
    std::vector<uint32_t> ball;
    size_t next_input = 0;
    auto assign = [&](uint32_t v) {
      new_of[v] = static_cast<uint32_t>(old_of.size());
      old_of.push_back(v);
    };
    while (old_of.size() < n) {
      uint32_t seed = UINT32_MAX;
      while (!frontier.empty() && seed == UINT32_MAX) {
        if (new_of[frontier.front()] == UINT32_MAX) seed = frontier.front();
        frontier.pop_front();
      }
      if (seed == UINT32_MAX) {
        while (new_of[next_input] != UINT32_MAX) ++next_input;
        seed = static_cast<uint32_t>(next_input);
      }
      const size_t room = npb - old_of.size() % npb;
      ball.assign(1, seed);
      assign(seed);
      for (size_t head = 0; head < ball.size(); ++head) {
        const uint32_t u = ball[head];
        for (uint32_t j = 0; j < deg[u]; ++j) {
          const uint32_t v = adj[size_t{u} * stride + j];
          if (new_of[v] != UINT32_MAX) continue;
          if (ball.size() < room) {
            assign(v);
            ball.push_back(v);
          } else {
            frontier.push_back(v);
          }
        }
      }
    }
  }

  std::unique_ptr<GraphIndex> index(new GraphIndex());
  index->params_ = params;
  index->model_ = model;
  index->size_ = n;
  index->raw_.resize(n * dim);
  for (size_t i = 0; i < n; ++i) {
    std::copy(data + size_t{old_of[i]} * dim, data + size_t{old_of[i] + 1} * dim,
              &index->raw_[i * dim]);
  }
  const uint32_t npb = params.nodes_per_block;
  const size_t num_blocks = (n + npb - 1) / npb;
  index->blocks_.resize(num_blocks);
  const uint32_t d = model->padded_dim();
  const uint32_t bits = params.bits;
  const float* c = model->centroid(0);
  std::vector<float> c_rot(d);
  model->rotation().Apply(c, c_rot.data());
  ParallelFor(num_blocks, threads, 1, [&](size_t bb, size_t be, size_t) {
    std::vector<float> tmp(dim);
    std::vector<float> res(d);
    std::vector<uint8_t> codes(d);
    for (size_t b = bb; b < be; ++b) {
      std::shared_ptr<GraphNodeBlock> blk(new GraphNodeBlock());
      const size_t first = b * npb;
      const auto count = static_cast<uint32_t>(std::min<size_t>(npb, n - first));
      blk->first_ = static_cast<uint32_t>(first);
      blk->count_ = count;
      blk->degree_ = r;
      blk->bits_ = bits;
      blk->d_ = d;
      blk->offsets_.resize(size_t{count} + 1);
      blk->AllocateCodes();
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t old = old_of[first + i];
        blk->offsets_[i] = static_cast<uint32_t>(blk->nbrs_.size());
        for (uint32_t j = 0; j < deg[old]; ++j) {
          blk->nbrs_.push_back(new_of[adj[size_t{old} * stride + j]]);
        }
        const float* v = work + size_t{old} * dim;
        for (uint32_t j = 0; j < dim; ++j) tmp[j] = v[j] - c[j];
        model->rotation().Apply(tmp.data(), res.data());
        CodeFactors f1;
        CodeFactors fx;
        EncodeResidual(res.data(), c_rot.data(), d, bits, EstMetric(params.metric), codes.data(),
                       &f1, &fx);
        for (uint32_t pl = 0; pl < bits; ++pl) {
          uint64_t* plane = blk->MutablePlane(i, pl);
          for (uint32_t t = 0; t < d; ++t) {
            plane[t / 64] |= uint64_t{(codes[t] >> pl) & 1u} << (t % 64);
          }
        }
        float* f = blk->MutableFactors(i);
        f[0] = f1.add;
        f[1] = f1.rescale;
        f[2] = f1.error;
        f[3] = fx.add;
        f[4] = fx.rescale;
        f[5] = fx.error;
      }
      blk->offsets_[count] = static_cast<uint32_t>(blk->nbrs_.size());
      blk->nbrs_.shrink_to_fit();
      index->blocks_[b] = std::move(blk);
    }
  });
  if (order != nullptr) *order = std::move(old_of);
  return index;
}

Result<std::unique_ptr<GraphIndex>> GraphIndex::FromParts(
    const GraphParams& params, std::shared_ptr<const IvfModel> model,
    std::vector<std::shared_ptr<const GraphNodeBlock>> blocks, std::vector<float> raw) {
  RETURN_IF_ERROR(CheckParams(params));
  if (model == nullptr || model->dim() != params.dim || model->params().bits != params.bits ||
      model->num_cells() != 1 || model->params().metric != params.metric) {
    return Invalid("the model does not match the graph parameters (dim, bits, metric, 1 cell)");
  }
  if (raw.empty() || raw.size() % params.dim != 0) {
    return Invalid("raw vectors must be n x dim floats with n > 0");
  }
  const size_t n = raw.size() / params.dim;
  const uint32_t npb = params.nodes_per_block;
  if (blocks.size() != (n + npb - 1) / npb) {
    return Invalid("expected " + std::to_string((n + npb - 1) / npb) + " blocks for " +
                   std::to_string(n) + " nodes, got " + std::to_string(blocks.size()));
  }
  for (size_t b = 0; b < blocks.size(); ++b) {
    const GraphNodeBlock* blk = blocks[b].get();
    if (blk == nullptr || blk->first() != b * npb ||
        blk->count() != std::min<size_t>(npb, n - b * npb) || blk->bits() != params.bits ||
        blk->padded_dim() != model->padded_dim()) {
      return Invalid("block " + std::to_string(b) + " does not fit the graph");
    }
  }
  std::unique_ptr<GraphIndex> index(new GraphIndex());
  index->params_ = params;
  index->model_ = std::move(model);
  index->size_ = n;
  index->blocks_ = std::move(blocks);
  index->raw_ = std::move(raw);
  return index;
}

Result<Bytes> GraphIndex::EncodeBlock(uint32_t b) const {
  if (b >= blocks_.size()) {
    return Invalid("block " + std::to_string(b) + " out of range (num_blocks " +
                   std::to_string(blocks_.size()) + ")");
  }
  return blocks_[b]->Encode();
}

Result<std::vector<Neighbor>> GraphIndex::Search(const float* q, const GraphSearchParams& params,
                                                 const std::function<bool(uint32_t)>* keep) const {
  MemorySource source(blocks_);
  const uint32_t dim = params_.dim;
  const std::function<Status(const uint64_t*, size_t, float*)> exact =
      [&](const uint64_t* ids, size_t n, float* out) -> Status {
    for (size_t i = 0; i < n; ++i) {  // overlap the misses of the batch's vectors
      if (ids[i] >= size_) return Status(StatusCode::kInternal, "rerank: unknown node");
      const float* v = &raw_[ids[i] * dim];
      for (uint32_t j = 0; j < dim; j += 16) __builtin_prefetch(v + j);
    }
    for (size_t i = 0; i < n; ++i) {
      out[i] = model_->ExactDistance(q, &raw_[ids[i] * dim]);
    }
    return Status::Ok();
  };
  return GraphSearch(*model_, params_.nodes_per_block, entry(), source, q, params, keep,
                     params.rerank ? &exact : nullptr);
}

size_t GraphIndex::GraphBytes() const {
  size_t bytes = blocks_.capacity() * sizeof(blocks_[0]);
  for (const auto& b : blocks_) bytes += b->MemoryBytes();
  return bytes;
}

size_t GraphIndex::MemoryBytes() const {
  const IvfModel& m = *model_;
  size_t bytes = sizeof(*this) + sizeof(IvfModel) + sizeof(Rotation);
  bytes += (size_t{m.dim()} + m.padded_dim() + 1) * sizeof(float);
  bytes += m.rotation().dense_matrix().capacity() * sizeof(float);
  bytes += 4 * size_t{m.padded_dim()} * sizeof(float);
  bytes += GraphBytes();
  bytes += raw_.capacity() * sizeof(float);
  return bytes;
}

}  // namespace dreamdb::vector
