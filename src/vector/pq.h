// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Product quantization with 4-bit codes scanned by FastScan (issue 4: an alternative
// quantizer for users coming from IVF-PQ, to compare with RaBitQ).
//
// PqCodec: the vector (dim coordinates) is split into m sub-spaces of dim / m consecutive
// coordinates; each has a codebook of 16 centroids (k-means). A code is one nibble per
// sub-space. Codes of 32 vectors are packed into a FastScan block (fastscan.h layout: the
// nibble of sub-space s is "group" s; m is padded to a multiple of 16 with zero nibbles,
// whose table entries are zero), so the ADC scan is the same vpshufb kernel as RaBitQ's
// 1-bit codes, with runtime dispatch (scalar, AVX2, AVX-512; bit-identical).
//
// IvfPqIndex: an in-memory IVF-PQ index for tests and benchmarks: the coarse partition is an
// IvfModel (its cells and probe order), the residuals o - c are PQ-encoded. Search: for each
// probed cell, a 16-entry distance table per sub-space (l2: |(q - c)_s - C_s,j|^2; ip and
// cosine: -<q_s, C_s,j>, plus -<q, c> per cell), quantised to uint8 (per sub-space minimum
// subtracted, one global step = largest range / 255), accumulated by FastScan; the best
// max(4k, 40) estimates are re-scored with the f32 reconstruction c + r^ (no rerank), or the
// best max(20k, 200) with the exact distance of the raw vectors (rerank). The PQ codes are an
// in-memory format only: no model or cell bytes are defined for them yet (spec/20 §8).
//
// Thread safety: PqCodec and IvfPqIndex are immutable after construction; const methods may
// be called concurrently.

#ifndef DREAMDB_SRC_VECTOR_PQ_H_
#define DREAMDB_SRC_VECTOR_PQ_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/vector/ivf.h"

namespace dreamdb::vector {

inline constexpr uint32_t kPqCentroids = 16;
inline constexpr uint32_t kPqMaxSubspaces = 256;  // keeps FastScan's 16-bit sums exact

// Default number of sub-spaces: dim / 4 when 4 divides dim, else dim / 2 when 2 does, else
// dim (sub-spaces of 4, 2 or 1 coordinates), capped by halving while above kPqMaxSubspaces
// and still dividing dim.
uint32_t DefaultPqSubspaces(uint32_t dim);

class PqCodec {
 public:
  // Trains m codebooks of 16 centroids on n vectors (n x dim). m == 0 = DefaultPqSubspaces.
  // kInvalidArgument if m does not divide dim, m > 256, n < 16, or NaN/inf values.
  static Result<PqCodec> Train(uint32_t dim, uint32_t m, const float* data, size_t n, uint64_t seed,
                               uint32_t iterations = 12, uint32_t threads = 0);

  uint32_t dim() const { return dim_; }
  uint32_t m() const { return m_; }
  uint32_t sub_dim() const { return dim_ / m_; }
  // m rounded up to a multiple of 16 (FastScan groups).
  uint32_t groups() const { return groups_; }
  // Bytes of one FastScan block of 32 codes: 16 * groups().
  size_t BlockBytes() const { return size_t{16} * groups_; }
  // Centroid j of sub-space s (sub_dim floats).
  const float* centroid(uint32_t s, uint32_t j) const {
    return &codebooks_[(size_t{s} * kPqCentroids + j) * sub_dim()];
  }

  // The m nibbles (one per byte) of v: the nearest centroid per sub-space (ties: lower j).
  void Encode(const float* v, uint8_t* code) const;
  // Writes the code of v into lane `lane` (0..31) of a block (BlockBytes bytes).
  void EncodeInto(const float* v, uint8_t* block, uint32_t lane) const;
  // Reconstruction of lane `lane` of a block (dim floats).
  void Decode(const uint8_t* block, uint32_t lane, float* out) const;

  // f32 table (m x 16): l2 -> |x_s - C_s,j|^2, otherwise -<x_s, C_s,j>.
  void Table(const float* x, bool l2, float* table) const;
  // uint8 table (groups x 16, padding zero) with table ~ delta * q + base per code sum.
  void QuantizeTable(const float* table, uint8_t* q, float* delta, float* base) const;

  size_t MemoryBytes() const { return sizeof(*this) + codebooks_.capacity() * sizeof(float); }

 private:
  uint32_t dim_ = 0;
  uint32_t m_ = 0;
  uint32_t groups_ = 0;
  std::vector<float> codebooks_;  // m x 16 x sub_dim
};

class IvfPqIndex {
 public:
  // Trains the coarse model (params: dim, metric, num_cells, algorithm, seed, kmeans; bits
  // and rotation are unused) and the PQ codebooks on the residuals of all n vectors, then
  // encodes them. ids == nullptr means 0..n-1; keep_raw keeps the vectors for rerank.
  static Result<std::unique_ptr<IvfPqIndex>> Build(const IvfParams& params, uint32_t pq_m,
                                                   const float* data, size_t n, const uint64_t* ids,
                                                   bool keep_raw, uint32_t threads = 0);

  // SearchParams::rerank re-scores the candidates with the raw vectors (needs keep_raw,
  // else kInvalidArgument).
  Result<std::vector<Neighbor>> Search(const float* q, const SearchParams& params) const;

  size_t MemoryBytes() const;
  size_t size() const { return size_; }
  const IvfModel& model() const { return *model_; }
  const PqCodec& codec() const { return codec_; }
  ByteView cell_codes(uint32_t cell) const { return cells_[cell].codes; }

 private:
  struct Cell {
    Bytes codes;  // ceil(count / 32) blocks
    std::vector<uint64_t> ids;
    std::vector<size_t> raw_rows;  // keep_raw: row of each position in raw_
  };
  IvfPqIndex() = default;
  std::shared_ptr<const IvfModel> model_;
  PqCodec codec_;
  bool keep_raw_ = false;
  std::vector<Cell> cells_;
  std::vector<uint32_t> cell_sizes_;
  size_t size_ = 0;
  std::vector<float> raw_;  // keep_raw: n x dim (normalised for cosine)
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_VECTOR_PQ_H_
