// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// IVF index with RaBitQ or PQ4 codes (spec/20-vector-codes.md): IvfModel is the composition
// of a structure, a codec and (at search time) a storage seam, each behind an interface:
//
// Structure (partition/partitioner.h, a Partitioner): cells from one of three partitioning
// algorithms (IvfParams::Algorithm: ivf = k-means centroids, the default; imi = inverted
// multi-index, pairs of half-vector centroids probed by the multi-sequence algorithm; lsh =
// random-hyperplane sign patterns, no k-means), each vector assigned to its cell, whose centre
// is the residual origin. Codec (codec/cell_codec.h, a CellCodec): the vector's residual to its
// centre, rotated and RaBitQ-quantised with `bits` bits per coordinate, or PQ4 codes. Storage
// (cell_source.h, a CellSource): one opaque "cell codes" byte block per cell (FastScan blocks
// of 32) plus the caller's parallel id array. The model and the cell codes blocks are byte
// formats (spec/20 §model, §cell codes); src/dataset/vector_index.h stores them as objects.
//
// Search (as RaBitQ-Library's IVF): the query is rotated once; the nprobe nearest cells
// are scanned with the FastScan 1-bit kernel, which gives an estimate and an error bound
// per vector; only vectors whose lower bound beats the current k-th distance get their
// extended-bit estimate (bits > 1) or are kept for exact re-ranking (rerank = true).
//
// With IvfParams::Quantizer::kPq4 the residuals are product-quantised instead (pq.h: 4-bit
// codes, FastScan blocks of 32): the scan sums an 8-bit table per sub-space; vectors whose
// 8-bit sum minus its worst-case rounding error beats the current threshold get the f32
// table sum (the exact distance to their reconstruction c + r^). PQ has no error bound, so
// rerank keeps a fixed number of candidates (SearchParams::rerank).
//
// Distances and scores: src/index/metric.h.

#ifndef DREAMDB_SRC_INDEX_IVF_H_
#define DREAMDB_SRC_INDEX_IVF_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dreamdb/index_kinds.h"
#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/index/codec/cell_codec.h"
#include "src/index/codec/pq.h"
#include "src/index/kernels/distance.h"
#include "src/index/kernels/rotation.h"
#include "src/index/metric.h"
#include "src/index/partition/kmeans.h"
#include "src/index/partition/partitioner.h"
#include "src/index/search_params.h"

namespace dreamdb::vector {

struct IvfParams {
  // How the space is partitioned into cells (spec/20 §4): every algorithm uses the same
  // RaBitQ cell codes (residual to the cell's centre) and the same Query machinery.
  //  kIvf: k-means centroids (num_cells; 0 = round(sqrt(n))).
  //  kImi: inverted multi-index. The vector is split in two halves (the first gets
  //        ceil(dim / 2) coordinates; dim must be >= 2), each with its own k-means codebook
  //        of s centroids; cell (i, j) = i * s + j, its centre is the concatenation of the
  //        two sub-centroids; num_cells = s * s with s = ceil(sqrt(num_cells)) (0 = s =
  //        round(2 n^(1/4)), about 4 sqrt(n) cells), s clamped to n and to <= 4096. Many cells
  //        are empty: pass SearchParams::cell_sizes so nprobe counts non-empty cells only.
  //  kLsh: no k-means: b random hyperplanes through the sample mean; a cell is the sign
  //        pattern (2^b cells; b = ceil(log2(num_cells)), 0 = round(log2(n) / 2), b <= 16);
  //        its centre is the mean of the training vectors with that pattern (the sample mean
  //        for an empty pattern).
  // (IndexAlgorithm::kGraph is not a cell partition: kInvalidArgument.)
  using Algorithm = IndexAlgorithm;
  uint32_t dim = 0;
  Metric metric = Metric::kCosine;
  // Number of cells; 0 = max(1, round(sqrt(n))) of the training call's n. Clamped to n.
  uint32_t num_cells = 0;
  // RaBitQ bits per dimension, 1..8 (1 = sign codes only). Bytes per vector: D / 8 + 12
  // when bits == 1, else (bits + 1) * D / 8 + 24; D = dim rounded up to a multiple of 64.
  uint32_t bits = 4;
  using Rotation = RotationKind;  // kHadamard (default, O(D log D)) or kDense (O(D^2))
  Rotation rotation = Rotation::kHadamard;
  // Drives the rotation and k-means (kmeans.seed is ignored: k-means uses `seed`).
  uint64_t seed = 0;
  KMeansOptions kmeans;
  Algorithm algorithm = Algorithm::kIvf;
  // How residuals are encoded (rabitq: spec/20 §3, §5; pq4: §8):
  //  kRaBitQ: RaBitQ codes with `bits` bits per coordinate (error-bounded estimates).
  //  kPq4: product quantization, pq_subspaces sub-vectors of the residual, 16 centroids
  //        each (4-bit codes, FastScan layout of src/index/codec/pq.h). `bits` and `rotation`
  //        are ignored: a pq4 model has bits == 4 and the Hadamard rotation (unused).
  using Quantizer = ::dreamdb::Quantizer;
  Quantizer quantizer = Quantizer::kRaBitQ;
  // kPq4: number of sub-vectors, 1..256 and dividing dim; 0 = DefaultPqSubspaces(dim).
  uint32_t pq_subspaces = 0;
};

// The public name tables (include/dreamdb/index_kinds.h).
inline std::string_view AlgorithmName(IndexAlgorithm algorithm) {
  return IndexAlgorithmName(algorithm);
}
using ::dreamdb::ParseQuantizer;
using ::dreamdb::QuantizerName;
// "ivf", "imi" or "lsh": the cell partitions (kInvalidArgument for "graph" and unknown names).
Result<IvfParams::Algorithm> ParseAlgorithm(std::string_view name);

// Trained, immutable model: centroids + rotation + quantizer parameters.
// Thread safety: immutable after construction; every const method may be called
// concurrently. A Query is single-threaded.
class IvfModel {
 public:
  class Query;

  // Trains on n sample vectors (row-major n x params.dim). kInvalidArgument for dim == 0,
  // n == 0, bits outside 1..8 (rabitq), NaN/inf, or (cosine) a zero vector. pq4: the
  // partition is trained as for rabitq, then the PqCodec on the residuals o - c of the
  // sample (cosine: of the normalised vectors); needs n >= 16 and pq_subspaces dividing dim.
  static Result<std::shared_ptr<const IvfModel>> Train(const IvfParams& params, const float* sample,
                                                       size_t n);
  // Builds a model from given centroids (num_cells x dim, row-major; cosine centroids are
  // normalised here). These three builders make rabitq models (params.quantizer must be
  // kRaBitQ); WithPq turns one into a pq4 model.
  static Result<std::shared_ptr<const IvfModel>> FromCentroids(const IvfParams& params,
                                                               std::vector<float> centroids);
  // An imi model from its two codebooks: s x ceil(dim/2) and s x floor(dim/2) floats,
  // row-major (params.algorithm must be kImi; params.num_cells is set to s * s).
  static Result<std::shared_ptr<const IvfModel>> FromImiCodebooks(const IvfParams& params,
                                                                  uint32_t s,
                                                                  std::vector<float> first,
                                                                  std::vector<float> second);
  // An lsh model from b hyperplanes (b x dim), the offset they pass through (dim) and the
  // 2^b cell centres (2^b x dim). params.algorithm must be kLsh; num_cells is set to 2^b.
  static Result<std::shared_ptr<const IvfModel>> FromLsh(const IvfParams& params,
                                                         std::vector<float> planes,
                                                         std::vector<float> offset,
                                                         std::vector<float> centres);
  // A pq4 model with this model's partition and `codec` (codec.dim() == dim()).
  Result<std::shared_ptr<const IvfModel>> WithPq(PqCodec codec) const;
  // An ivf model equal to this one (metric, bits, rotation, seed, quantizer and pq4
  // codebooks) but for its centroid table: `centroids` (num_cells' x dim, row-major, taken
  // bit for bit; cosine centroids must already be unit length). A cell whose centroid is
  // unchanged keeps its codes valid, since a cell's codes depend only on its centroid and
  // the codec (index maintenance, spec/21 §8.7). kInvalidArgument for a non-ivf model, an
  // empty table or one that is not a multiple of dim.
  Result<std::shared_ptr<const IvfModel>> WithCentroids(const std::vector<float>& centroids) const;

  // spec/20 §model. Deserialize returns kCorrupt for malformed bytes and kUnsupported for
  // a newer format version. params().kmeans is not stored (defaults after Deserialize).
  Bytes Serialize() const;
  static Result<std::shared_ptr<const IvfModel>> Deserialize(ByteView bytes);

  // An ivf model of one cell with this centre (dim floats; unit length for cosine, as
  // FromCentroids): the graph index's codec origin (spec/22 §2). params.algorithm,
  // quantizer and num_cells are ignored (ivf, rabitq, 1).
  static Result<std::shared_ptr<const IvfModel>> SingleCell(const IvfParams& params,
                                                            std::vector<float> centre);

  const IvfParams& params() const { return params_; }
  uint32_t num_cells() const { return params_.num_cells; }
  uint32_t dim() const { return params_.dim; }
  uint32_t padded_dim() const { return codec_->padded_dim(); }
  // The structure and the codec this model composes.
  const Partitioner& partition() const { return *partition_; }
  const CellCodec& codec() const { return *codec_; }
  // The cell's centre (ivf: centroid; imi: concatenated sub-centroids; lsh: cell mean).
  const float* centroid(uint32_t cell) const { return partition_->centre(cell); }
  IvfParams::Algorithm algorithm() const { return params_.algorithm; }
  // imi: codebook size s and the first half's length; lsh: number of hyperplanes b.
  uint32_t imi_size() const { return partition_->imi_size(); }
  uint32_t imi_split() const { return partition_->imi_split(); }
  uint32_t lsh_planes() const { return partition_->lsh_planes(); }
  // The RaBitQ rotation. REQUIRES: a rabitq model (pq4 codes are not rotated).
  const Rotation& rotation() const;
  IvfParams::Quantizer quantizer() const { return params_.quantizer; }
  // The pq4 codec (nullptr for rabitq models).
  const PqCodec* pq() const { return codec_->pq(); }
  // Heap bytes of the partition and the codec.
  size_t MemoryBytes() const;

  // Nearest cell of each of n vectors (n x dim). kInvalidArgument for NaN/inf or (cosine)
  // zero vectors. Uses up to `threads` threads (0 = hardware).
  Status Assign(const float* vecs, size_t n, uint32_t* cells, uint32_t threads = 0) const;

  // Encodes n vectors of ONE cell into a cell codes block (spec/20 §cell codes). The i-th
  // vector occupies position i. Deterministic: the bytes depend only on the model and the
  // vectors, and EncodeCell(a ++ b) == AppendToCell(EncodeCell(a), b).
  Result<Bytes> EncodeCell(uint32_t cell, const float* vecs, size_t n) const;
  // Appends n vectors to an existing block of the same cell (positions count .. count+n).
  Status AppendToCell(uint32_t cell, Bytes* codes, const float* vecs, size_t n) const;
  // Number of vectors in a cell codes block (kCorrupt if malformed for this model).
  Result<uint32_t> CellCount(ByteView codes) const;
  // A new block holding the vectors of `codes` at `positions` (in that order): compaction,
  // tombstone removal. Concatenating blocks = select all of a, then AppendCodes(b).
  Result<Bytes> SelectFromCell(ByteView codes, const std::vector<uint32_t>& positions) const;
  // Appends all vectors of block `src` to block `dst` (both of this model).
  Status AppendCodes(Bytes* dst, ByteView src) const;

  // Starts a query (q has dim floats). kInvalidArgument for k == 0, NaN/inf, or a zero
  // query with the cosine metric.
  Result<std::unique_ptr<Query>> NewQuery(const float* q, const SearchParams& params) const;

  // Exact distance (the Neighbor::distance convention) between a raw vector and a query.
  float ExactDistance(const float* q, const float* v) const;

 private:
  friend class Query;
  friend class IvfIndex;
  IvfModel();
  // Builds the RaBitQ codec over the partition (rotation from params).
  static Result<std::shared_ptr<const IvfModel>> Compose(
      const IvfParams& params, std::shared_ptr<const Partitioner> partition);
  Bytes EmptyCell(uint32_t count) const { return codec_->EmptyCell(count); }

  // Unique per model object in this process (an address can be reused after a model is
  // freed): what a cached Query checks before reusing its partition and codec state.
  const uint64_t instance_;
  IvfParams params_;
  std::shared_ptr<const Partitioner> partition_;  // shared by a model and its WithPq
  std::unique_ptr<const CellCodec> codec_;
};

// Per-query state: the query, the partition's probe order, the codec's scanner (rotated
// query or tables, running top-k).
// Thread safety: not thread-safe; one per thread. Borrows the model (must outlive it).
class IvfModel::Query {
 public:
  // The nprobe nearest cells, nearest first (spec/20 §6.4: ivf by centroid distance, imi
  // by summed half distances, lsh by Hamming distance then margin); without empty cells
  // when SearchParams::cell_sizes was given.
  const std::vector<uint32_t>& probe_order() const { return probe_; }
  const SearchParams& params() const { return params_; }

  // Restarts the query with a new vector (reuses all buffers; no allocation once warm).
  Status Reset(const float* q, const SearchParams& params);

  // Scans one cell's codes block; ids[i] is the id of the block's i-th vector; `keep`
  // (optional) filters ids (tombstones, anchor range, scalar predicates). Any cell of the
  // model may be scanned, probed or not. kCorrupt if the block does not match the model.
  Status ScanCell(uint32_t cell, ByteView codes, const uint64_t* ids, const KeepFn* keep = nullptr);

  // Final top-k, best first (ties by id). With params.rerank, `exact(ids, n, out)` must
  // write the exact distances (Neighbor::distance convention, e.g. via
  // IvfModel::ExactDistance) of n candidate ids; it is called with batches in order of
  // increasing lower bound until no remaining candidate can enter the top-k. Without
  // rerank (or exact == nullptr) the estimates are returned. Errors from `exact` are
  // returned. The query may be Reset() and reused afterwards. `prefetch` (optional, with
  // `exact`) is called once before the first batch with every candidate the re-rank may
  // score, in the order it would score them: a caller whose exact distances cost a round
  // trip per batch (vectors on a remote store) reads a prefix of them at once. It changes
  // neither which candidates are scored nor the result; its error is returned.
  Result<std::vector<Neighbor>> Finish(const ExactFn* exact = nullptr,
                                       const PrefetchFn* prefetch = nullptr);

  // The ids of the running top-k after scanning (with rerank, the k best upper bounds,
  // which set the pruning bound; pq4 with rerank, the re-rank pool), in no order. A caller
  // that finds some of them are not results (deleted or superseded records) must exclude
  // them with ScanCell's `keep` and scan again after Reset: they tightened the bound, so
  // candidates they pruned may belong in the answer.
  void ScanHeapIds(std::vector<uint64_t>* out) const { scanner_->HeapIds(out); }

  // Counters for tuning: vectors scanned, extended estimates computed.
  uint64_t scanned() const { return scanner_->scanned(); }
  uint64_t refined() const { return scanner_->refined(); }

 private:
  friend class IvfModel;
  friend class IvfIndex;
  explicit Query(const IvfModel* model)
      : model_(model),
        instance_(model->instance_),
        prober_(model->partition_->NewProber()),
        scanner_(model->codec_->NewScanner()) {}

  const IvfModel* model_;
  uint64_t instance_;  // model_->instance_ when the query was made
  SearchParams params_;
  std::vector<float> qn_;  // the query (normalised for cosine), dim
  std::vector<uint32_t> probe_;
  std::unique_ptr<Prober> prober_;
  std::unique_ptr<CellScanner> scanner_;
};

// Convenience in-memory index for tests and benchmarks: model + per-cell codes + ids
// (+ optional raw vectors for re-ranking).
// Thread safety: const methods (Search, SearchBatch, MemoryBytes) may run concurrently;
// Add needs exclusive access.
class IvfIndex {
 public:
  // Trains a model on all n vectors (k-means subsamples), assigns and encodes them.
  // ids == nullptr means ids 0..n-1. keep_raw keeps the f32 vectors for rerank.
  static Result<std::unique_ptr<IvfIndex>> Build(const IvfParams& params, const float* data,
                                                 size_t n, const uint64_t* ids, bool keep_raw,
                                                 uint32_t threads = 0);
  // An empty index over an existing model.
  static std::unique_ptr<IvfIndex> Create(std::shared_ptr<const IvfModel> model, bool keep_raw);

  // Assigns and appends n vectors. kInvalidArgument for bad vectors or (keep_raw) an id
  // that is already present.
  Status Add(const float* data, size_t n, const uint64_t* ids, uint32_t threads = 0);

  Result<std::vector<Neighbor>> Search(const float* q, const SearchParams& params,
                                       const KeepFn* keep = nullptr) const;
  // nq queries (row-major), run in parallel over `threads` threads (0 = hardware).
  Result<std::vector<std::vector<Neighbor>>> SearchBatch(const float* qs, size_t nq,
                                                         const SearchParams& params,
                                                         uint32_t threads = 0) const;

  // Heap bytes: model + codes + ids (+ raw vectors and their id map).
  size_t MemoryBytes() const;
  size_t size() const { return s_.size; }
  const IvfModel& model() const { return *model_; }
  std::shared_ptr<const IvfModel> shared_model() const { return model_; }
  ByteView cell_codes(uint32_t cell) const { return s_.cells[cell].codes; }
  const std::vector<uint64_t>& cell_ids(uint32_t cell) const { return s_.cells[cell].ids; }

  // What the in-memory CellSource reads: per cell its codes block and ids, and (keep_raw)
  // the raw vectors for re-ranking.
  struct Cell {
    Bytes codes;
    std::vector<uint64_t> ids;
  };
  struct Storage {
    uint32_t dim = 0;
    Metric metric = Metric::kCosine;
    bool keep_raw = false;
    std::vector<Cell> cells;
    size_t size = 0;
    std::vector<float> raw;                         // keep_raw: row per added vector
    std::vector<float> raw_norm2;                   // keep_raw, cosine: |row|^2 per row
    std::unordered_map<uint64_t, size_t> raw_rows;  // id -> row
    bool raw_dense = true;  // every id so far equals its row (then row = id, no lookup)
  };

 private:
  IvfIndex() = default;
  std::shared_ptr<const IvfModel> model_;
  Storage s_;
  std::vector<uint32_t> cell_sizes_;  // passed as SearchParams::cell_sizes (imi, lsh)
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_IVF_H_
