// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Random orthogonal rotations for RaBitQ (spec/20-vector-codes.md §rotation).
//
// Vectors of `dim` floats are zero-padded to padded_dim = dim rounded up to a multiple of 64
// and multiplied by an orthogonal padded_dim x padded_dim matrix P:
//   - kHadamard: four rounds of (seeded random sign flips, then a normalised fast
//     Walsh-Hadamard transform over a power-of-two window; the window is the first L
//     coordinates in even rounds and the last L in odd rounds, L = the largest power of two
//     <= padded_dim). O(D log D) per vector; only the seed is stored.
//   - kDense: a seeded Gaussian matrix orthonormalised by Gram-Schmidt (O(D^2) per vector);
//     the matrix itself is stored in the model.
//
// Thread safety: a Rotation is immutable after construction; Apply() may be called
// concurrently.

#ifndef DREAMDB_SRC_INDEX_KERNELS_ROTATION_H_
#define DREAMDB_SRC_INDEX_KERNELS_ROTATION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::vector {

enum class RotationKind : uint8_t { kHadamard = 0, kDense = 1 };

// dim rounded up to a multiple of 64 (>= 64).
uint32_t PaddedDim(uint32_t dim);

class Rotation {
 public:
  // kInvalidArgument if dim is 0 or above 65536.
  static Result<std::unique_ptr<Rotation>> Create(RotationKind kind, uint32_t dim, uint64_t seed);
  // A dense rotation from a stored padded_dim x padded_dim row-major matrix (deserialization).
  static Result<std::unique_ptr<Rotation>> FromDenseMatrix(uint32_t dim, uint64_t seed,
                                                           std::vector<float> matrix);

  RotationKind kind() const { return kind_; }
  uint32_t dim() const { return dim_; }
  uint32_t padded_dim() const { return padded_; }
  uint64_t seed() const { return seed_; }
  // Row-major padded_dim x padded_dim (kDense only; empty for kHadamard).
  const std::vector<float>& dense_matrix() const { return dense_; }

  // out[0..padded_dim) = P * pad(in[0..dim)). `in` and `out` must not overlap.
  void Apply(const float* in, float* out) const;
  // Same, for an input that is already padded_dim long.
  void ApplyPadded(const float* in, float* out) const;

 private:
  Rotation() = default;
  RotationKind kind_ = RotationKind::kHadamard;
  uint32_t dim_ = 0;
  uint32_t padded_ = 0;
  uint32_t window_ = 0;  // L
  uint64_t seed_ = 0;
  std::vector<float> signs_;  // 4 * padded_dim of +-1 (kHadamard)
  std::vector<float> dense_;  // kDense
};

// In-place unnormalised fast Walsh-Hadamard transform of n (a power of two) floats.
void Fwht(float* x, size_t n);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_ROTATION_H_
