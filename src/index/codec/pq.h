// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Product quantization with 4-bit codes scanned by FastScan: the `pq4` quantizer of IvfModel
// (IvfParams::Quantizer::kPq4; spec/20 §8 defines its model and cell codes bytes).
//
// PqCodec: the vector (dim coordinates) is split into m sub-spaces of dim / m consecutive
// coordinates; each has a codebook of 16 centroids (k-means). A code is one nibble per
// sub-space. Codes of 32 vectors are packed into a FastScan block (fastscan.h layout: the
// nibble of sub-space s is "group" s; m is padded to a multiple of 16 with zero nibbles,
// whose table entries are zero), so the ADC scan is the same vpshufb kernel as RaBitQ's
// 1-bit codes, with runtime dispatch (scalar, AVX2, AVX-512; bit-identical). IvfModel trains
// it on the residuals o - c of its cells and uses it to encode and scan cells.
//
// Thread safety: PqCodec is immutable after construction; const methods may be called
// concurrently.

#ifndef DREAMDB_SRC_INDEX_CODEC_PQ_H_
#define DREAMDB_SRC_INDEX_CODEC_PQ_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dreamdb/status.h"

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

  // A codec from stored codebooks (m x 16 x dim/m floats): kInvalidArgument if m does not
  // divide dim, m > 256, the size is wrong or a value is not finite.
  static Result<PqCodec> FromCodebooks(uint32_t dim, uint32_t m, std::vector<float> codebooks);

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

  // m x 16 x sub_dim floats, sub-space major.
  const std::vector<float>& codebooks() const { return codebooks_; }

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

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_CODEC_PQ_H_
