// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// How an IVF-family index cuts the space into cells (spec/20 §4): the structure half of an
// IvfModel (src/index/ivf.h), apart from the codec that encodes a cell's vectors
// (src/index/codec/cell_codec.h) and from where cells are stored (src/index/cell_source.h).
//
// A Partitioner assigns each vector to a cell and, per query, orders the cells to probe.
// Every cell has a centre (the residual origin the codec encodes against):
//   ivf   k-means centroids; probing ranks the centroids by distance (int8 with AVX-512
//         VNNI, through a two-level centroid index above CentroidIndexOptions::exact_threshold)
//   imi   inverted multi-index: two codebooks of s half-vector centroids, cell (i, j) =
//         i * s + j, centre = their concatenation; probing is the multi-sequence algorithm
//   lsh   b random hyperplanes through an offset; cell = sign pattern, centre = the mean of
//         the training vectors with that pattern; probing by Hamming distance, then margin
//   one   a single cell (the graph index's codec origin): an ivf partition of one centroid
//
// Inputs to Assign and Probe are already checked (finite) and, for cosine, normalised.
//
// Thread safety: immutable after construction; const methods may run concurrently. A
// Prober is per query (one thread at a time).

#ifndef DREAMDB_SRC_INDEX_PARTITION_PARTITIONER_H_
#define DREAMDB_SRC_INDEX_PARTITION_PARTITIONER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dreamdb/index_kinds.h"
#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/base/check.h"
#include "src/index/kernels/distance.h"
#include "src/index/partition/centroid_index.h"
#include "src/index/partition/kmeans.h"

namespace dreamdb::vector {

// imi codebook size and lsh hyperplane limits (spec/20 §4).
inline constexpr uint32_t kMaxImiSize = 4096;
inline constexpr uint32_t kMaxLshPlanes = 16;

// Per-query probing state (reused across queries: no allocation once warm).
class Prober {
 public:
  virtual ~Prober() = default;
  // The `nprobe` nearest cells to qn (dim floats; unit length for cosine; q_norm2 = |qn|^2),
  // nearest first; cells with sizes[c] == 0 are skipped (sizes optional, num_cells entries).
  // Fewer than nprobe when there are not enough (non-empty) cells.
  virtual void Probe(const float* qn, float q_norm2, uint32_t nprobe, const uint32_t* sizes,
                     std::vector<uint32_t>* probe) = 0;
};

class Partitioner {
 public:
  virtual ~Partitioner() = default;

  // ivf from num_cells x dim centroids. `normalize`: cosine centroids are made unit length
  // (a zero one becomes e_0), as trained models are; a stored model passes false.
  static Result<std::unique_ptr<const Partitioner>> KMeans(Metric metric, uint32_t dim,
                                                           uint64_t seed,
                                                           std::vector<float> centroids,
                                                           bool normalize);
  // A single cell with the given centre (dim floats; made unit length for cosine, as KMeans
  // with normalize).
  static Result<std::unique_ptr<const Partitioner>> SingleCell(Metric metric, uint32_t dim,
                                                               uint64_t seed,
                                                               std::vector<float> centre);
  // imi from its two codebooks (s x ceil(dim/2), s x floor(dim/2)).
  static Result<std::unique_ptr<const Partitioner>> Imi(Metric metric, uint32_t dim, uint32_t s,
                                                        std::vector<float> first,
                                                        std::vector<float> second);
  // lsh from b hyperplanes (b x dim), their offset (dim) and 2^b centres.
  static Result<std::unique_ptr<const Partitioner>> Lsh(Metric metric, uint32_t dim,
                                                        std::vector<float> planes,
                                                        std::vector<float> offset,
                                                        std::vector<float> centres);
  // Trains `algorithm` (ivf, imi or lsh) on n sample rows (finite; for cosine, normalised).
  // num_cells 0 = the algorithm's default (src/index/ivf.h IvfParams).
  static Result<std::unique_ptr<const Partitioner>> Train(IndexAlgorithm algorithm, Metric metric,
                                                          uint32_t dim, uint32_t num_cells,
                                                          uint64_t seed, const KMeansOptions& ko,
                                                          const float* rows, size_t n);

  IndexAlgorithm algorithm() const { return algorithm_; }
  Metric metric() const { return metric_; }
  uint32_t dim() const { return dim_; }
  uint32_t num_cells() const { return num_cells_; }
  const float* centre(uint32_t cell) const {
    DCHECK(cell < num_cells_);
    return &centres_[size_t{cell} * dim_];
  }
  const std::vector<float>& centres() const { return centres_; }
  float centre_norm2(uint32_t cell) const { return centre_norms_[cell]; }
  // imi: codebook size s and the first half's length; lsh: hyperplanes b (else 0).
  virtual uint32_t imi_size() const { return 0; }
  virtual uint32_t imi_split() const { return 0; }
  virtual uint32_t lsh_planes() const { return 0; }

  // Cells of n rows (single-threaded; callers split rows across threads).
  virtual void AssignRows(const float* rows, size_t n, uint32_t* cells) const = 0;
  // The algorithm's body of the model bytes (spec/20 §4: after the 32-byte header).
  virtual void SerializeBody(Bytes* out) const = 0;
  virtual std::unique_ptr<Prober> NewProber() const = 0;
  // Heap bytes.
  virtual size_t MemoryBytes() const;

 protected:
  Partitioner(IndexAlgorithm algorithm, Metric metric, uint32_t dim, std::vector<float> centres);

  IndexAlgorithm algorithm_;
  Metric metric_;
  uint32_t dim_;
  uint32_t num_cells_;
  std::vector<float> centres_;       // num_cells x dim
  std::vector<float> centre_norms_;  // |c|^2
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_PARTITION_PARTITIONER_H_
