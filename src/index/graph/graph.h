// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Graph index (Vamana, as DiskANN) with RaBitQ node codes (spec/22-graph-index.md).
//
// For moderate sizes: every vector is a node with up to `degree` out-edges; a query walks
// the graph from the entry node (the medoid) with a beam of `ef` candidates ranked by their
// full-code RaBitQ estimates. A node met while the beam is full is first screened by its
// 1-bit estimate's lower bound, computed with the per-vector popcount kernel (PopcountDot
// against QueryPlanes); only survivors get the full-code estimate (ExPlanesDot). Expanded
// nodes form the result list, whose best candidates are re-ranked exactly through a
// callback (as IvfModel::Query::Finish).
//
// The quantizer is an IvfModel with one cell whose centre is the data mean (so the model
// object's bytes are exactly spec/20 §4, and a dataset appends vectors that are not yet
// in the graph as ordinary cell-0 codes, scanned with FastScan). Node codes are per-vector
// (not FastScan blocks): B bit planes of the code (plane B-1 is the sign plane, read by
// PopcountDot as 64-bit words) and both factor triples.
//
// Storage: nodes are cut into blocks of `nodes_per_block` consecutive node numbers; a node
// block (spec/22 §4) holds, per node, its neighbour list and its code. A search reads
// blocks through a GraphNodeSource (in memory here; paged objects with a byte-bounded cache
// in src/dataset). Node numbers are assigned by the builder block by block, each block a
// breadth-first ball of the graph (spec/22 §3.3) starting at the medoid (node 0, the
// entry), so neighbours tend to share blocks and a query from object storage touches few.
//
// Thread safety: GraphIndex and GraphNodeBlock are immutable after construction; const
// methods may be called concurrently. A GraphNodeSource is used by one search at a time
// unless its implementation says otherwise. GraphSearch is reentrant.

#ifndef DREAMDB_SRC_INDEX_GRAPH_GRAPH_H_
#define DREAMDB_SRC_INDEX_GRAPH_GRAPH_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/base/check.h"
#include "src/index/codec/rabitq.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/kernels/rotation.h"

namespace dreamdb::vector {

struct GraphParams {
  uint32_t dim = 0;
  Metric metric = Metric::kCosine;
  uint32_t degree = 32;       // R: maximum out-degree (4..256)
  uint32_t build_list = 128;  // L: beam width while building (degree..4096)
  float alpha = 1.2f;         // robust-prune slack of the second pass (1..4)
  uint32_t bits = 4;          // RaBitQ bits of the node codes, 1..8
  RotationKind rotation = RotationKind::kHadamard;
  uint64_t seed = 0;
  uint32_t nodes_per_block = 256;  // nodes per node block (a power of two, 16..4096)
};

// Counters of one search (for tuning and benchmarks).
struct GraphSearchStats {
  uint32_t blocks = 0;     // distinct node blocks fetched from the source
  uint32_t expanded = 0;   // nodes whose neighbour lists were read
  uint32_t estimated = 0;  // nodes met (each gets a 1-bit estimate or, early on, a full one)
  uint32_t refined = 0;    // full-code estimates computed
  uint32_t exact = 0;      // exact distances asked from the `exact` callback
};

struct GraphSearchParams {
  uint32_t k = 10;
  uint32_t ef = 0;      // beam width; 0 = DefaultEf(k); raised to k when smaller
  bool rerank = false;  // exact re-rank through the `exact` callback
  // Optional: receives the counters of the search (borrowed; written before returning).
  GraphSearchStats* stats = nullptr;
  // Optional: receives the nodes of the running top-k after the walk (with rerank, the k
  // best upper bounds, which set the re-rank bound), in no order. A caller that finds some
  // are not results (deleted records) excludes them with `keep` and searches again: they
  // tightened the bound, so a node they pruned may belong in the answer.
  std::vector<uint32_t>* bound_ids = nullptr;
};

// ef used when GraphSearchParams::ef == 0: max(64, 2 k).
uint32_t DefaultEf(uint32_t k);

// One decoded node block. Node numbers are global; node `first() + i` is local i.
class GraphNodeBlock {
 public:
  // kCorrupt for malformed bytes (naming what is wrong), kUnsupported for a newer version.
  // Neighbour ids are not checked against the graph's size here (GraphSearch does).
  static Result<std::shared_ptr<const GraphNodeBlock>> Decode(const IvfModel& model,
                                                              ByteView bytes);
  // spec/22 §4 bytes (Decode(Encode()) re-encodes to the same bytes).
  Bytes Encode() const;

  uint32_t first() const { return first_; }
  uint32_t count() const { return count_; }
  uint32_t degree() const { return degree_; }
  uint32_t bits() const { return bits_; }
  uint32_t padded_dim() const { return d_; }
  std::span<const uint32_t> neighbors(uint32_t local) const {
    DCHECK(local < count_);
    return {nbrs_.data() + offsets_[local], offsets_[local + 1] - offsets_[local]};
  }
  // Cache hints for a search that will soon expand node `local`: its entry in the offsets
  // (when it joins the beam), then its neighbour list (just before it is expanded).
  void PrefetchOffsets(uint32_t local) const { __builtin_prefetch(offsets_.data() + local); }
  void PrefetchNeighbors(uint32_t local) const {
    const uint32_t* p = nbrs_.data() + offsets_[local];
    __builtin_prefetch(p);
    __builtin_prefetch(p + 16);
  }
  // The code's B bit planes (padded_dim / 64 words each; plane B-1 is the sign plane).
  // The code's sign plane (bit i of word i / 64 = s_i; padded_dim / 64 words) and its
  // other B - 1 bit planes (plane b = bit b of u_i, b < B - 1; none when B == 1), in the
  // ExPlanesDot layout (fastscan.h).
  const uint64_t* signs(uint32_t local) const {
    DCHECK(local < count_);
    return codes_.data() + align_ + size_t{local} * stride_;
  }
  const uint64_t* lower_planes(uint32_t local) const { return signs(local) + d_ / 64 + 3; }
  // Factors of the 1-bit code and of the full B-bit code (equal when B == 1).
  CodeFactors factors1(uint32_t local) const { return Factors(local, 0); }
  CodeFactors factors_full(uint32_t local) const { return Factors(local, 3); }
  // Heap bytes (for cache accounting).
  size_t MemoryBytes() const;

 private:
  friend class GraphIndex;
  GraphNodeBlock() = default;
  GraphNodeBlock(const GraphNodeBlock&) = delete;  // codes_ alignment is per allocation
  GraphNodeBlock& operator=(const GraphNodeBlock&) = delete;
  uint32_t first_ = 0;
  uint32_t count_ = 0;
  uint32_t degree_ = 0;
  uint32_t bits_ = 0;
  uint32_t d_ = 0;
  std::vector<uint32_t> offsets_;  // count + 1
  std::vector<uint32_t> nbrs_;
  // Per node, stride_ words (a multiple of 8: 64-byte aligned): the sign plane, the 6 f32
  // factors (1-bit add, rescale, error; full-code triple) in 3 words, then the B - 1 lower
  // planes. The 1-bit estimate reads only the first D/8 + 24 bytes (two lines at D = 768).
  std::vector<uint64_t> codes_;
  size_t stride_ = 0;
  size_t align_ = 0;  // words skipped at the start of codes_ so node 0 is 64-byte aligned
  void AllocateCodes() {
    stride_ = Stride(bits_, d_);
    codes_.assign(size_t{count_} * stride_ + 8, 0);
    align_ = (8 - (reinterpret_cast<uintptr_t>(codes_.data()) / 8) % 8) % 8;
  }
  static size_t Stride(uint32_t bits, uint32_t d) {
    return (size_t{bits} * (d / 64) + 3 + 7) / 8 * 8;
  }
  CodeFactors Factors(uint32_t local, int at) const {
    float f[6];
    std::memcpy(f, signs(local) + d_ / 64, sizeof(f));
    return CodeFactors{f[at], f[at + 1], f[at + 2]};
  }
  float* MutableFactors(uint32_t local) {
    return reinterpret_cast<float*>(codes_.data() + align_ + size_t{local} * stride_ + d_ / 64);
  }
  uint64_t* MutablePlane(uint32_t local, uint32_t b) {  // b < bits; bits - 1 = signs
    uint64_t* base = codes_.data() + align_ + size_t{local} * stride_;
    return b + 1 == bits_ ? base : base + d_ / 64 + 3 + size_t{b} * (d_ / 64);
  }
};

// Where a search gets node blocks.
class GraphNodeSource {
 public:
  virtual ~GraphNodeSource() = default;
  // Block b holds nodes [b * nodes_per_block, (b + 1) * nodes_per_block) (the last block
  // may hold fewer). For b past the last block it must return an error (kCorrupt: a
  // neighbour id beyond the graph).
  virtual Result<std::shared_ptr<const GraphNodeBlock>> Block(uint32_t b) = 0;
  // A hint: these blocks are about to be needed (a paged source may fetch them in
  // parallel). The default does nothing.
  virtual void Prefetch(const uint32_t* blocks, size_t n) {
    (void)blocks;
    (void)n;
  }
};

// Beam search. Neighbor::id is the node number. `keep(node)` (optional) filters results
// (rejected nodes are still walked through); `exact` as IvfModel::Query::Finish (called
// only with params.rerank; without it the estimates are returned). kInvalidArgument for
// k == 0, NaN/inf, a zero cosine query, nodes_per_block == 0; kCorrupt for a block that
// does not fit (wrong first node, a neighbour id beyond the graph) and the source's errors.
Result<std::vector<Neighbor>> GraphSearch(
    const IvfModel& model, uint32_t nodes_per_block, uint32_t entry, GraphNodeSource& source,
    const float* q, const GraphSearchParams& params,
    const std::function<bool(uint32_t)>* keep = nullptr,
    const std::function<Status(const uint64_t*, size_t, float*)>* exact = nullptr);

// A built graph over n vectors, in memory (its blocks decoded, plus the raw vectors in
// node order for exact re-ranking).
class GraphIndex {
 public:
  // Builds over n vectors (row-major n x dim): the one-cell model (mean), the Vamana graph
  // (two passes: alpha 1, then params.alpha), nodes renumbered for block locality (node 0 =
  // the medoid) and the node codes. `order[i]` (out, optional) receives the input row of node i.
  // Deterministic for a given seed and input, whatever `threads` (0 = hardware).
  // kInvalidArgument for n == 0 or n >= 2^32, bad params, NaN/inf, (cosine) zero vectors.
  static Result<std::unique_ptr<GraphIndex>> Build(
      const GraphParams& params, const float* data, size_t n, uint32_t threads = 0,
      std::vector<uint32_t>* order = nullptr,
      const std::function<void(uint64_t done, uint64_t total)>* progress = nullptr);

  // An index from stored parts (e.g. blocks decoded from objects): num_blocks =
  // ceil(n / nodes_per_block) blocks of `model`, block b starting at node b *
  // nodes_per_block, and the n x dim raw vectors in node order. kInvalidArgument if they do
  // not fit together.
  static Result<std::unique_ptr<GraphIndex>> FromParts(
      const GraphParams& params, std::shared_ptr<const IvfModel> model,
      std::vector<std::shared_ptr<const GraphNodeBlock>> blocks, std::vector<float> raw);

  const GraphParams& params() const { return params_; }
  const IvfModel& model() const { return *model_; }
  std::shared_ptr<const IvfModel> shared_model() const { return model_; }
  uint32_t entry() const { return 0; }
  size_t size() const { return size_; }
  uint32_t num_blocks() const { return static_cast<uint32_t>(blocks_.size()); }
  std::shared_ptr<const GraphNodeBlock> block(uint32_t b) const { return blocks_[b]; }
  // spec/22 §4 node block bytes of block b (kInvalidArgument if b >= num_blocks()).
  Result<Bytes> EncodeBlock(uint32_t b) const;
  // The raw vector of a node (as given to Build).
  const float* raw(uint32_t node) const { return &raw_[size_t{node} * params_.dim]; }

  // In-memory search (ids = node numbers); rerank uses the raw vectors of the build.
  Result<std::vector<Neighbor>> Search(const float* q, const GraphSearchParams& params,
                                       const std::function<bool(uint32_t)>* keep = nullptr) const;
  // Heap bytes: model + decoded blocks + raw vectors.
  size_t MemoryBytes() const;
  // Heap bytes of the decoded blocks only (graph + codes, without the raw vectors).
  size_t GraphBytes() const;

 private:
  GraphIndex() = default;
  GraphParams params_;
  std::shared_ptr<const IvfModel> model_;
  size_t size_ = 0;
  std::vector<std::shared_ptr<const GraphNodeBlock>> blocks_;
  std::vector<float> raw_;  // n x dim, node order
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_GRAPH_GRAPH_H_
