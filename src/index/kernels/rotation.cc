// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/kernels/rotation.h"

#include <cmath>
#include <cstring>
#include <string>

#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

constexpr int kHadamardRounds = 4;
// Stream ids that separate the sign bits from the dense Gaussian draws (spec/20 §rotation).
constexpr uint64_t kSignStream = 0x5349474e;   // "SIGN"
constexpr uint64_t kDenseStream = 0x44454e53;  // "DENS"

}  // namespace

uint32_t PaddedDim(uint32_t dim) { return dim == 0 ? 64 : (dim + 63) / 64 * 64; }

void Fwht(float* x, size_t n) {
  if (n >= 8 && ActiveSimdLevel() >= SimdLevel::kAvx2) {
    internal::FwhtAvx2(x, n);
    return;
  }
  for (size_t h = 1; h < n; h *= 2) {
    for (size_t i = 0; i < n; i += 2 * h) {
      for (size_t j = i; j < i + h; ++j) {
        const float a = x[j];
        const float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
}

Result<std::unique_ptr<Rotation>> Rotation::Create(RotationKind kind, uint32_t dim, uint64_t seed) {
  if (dim == 0 || dim > 65536) {
    return Status(StatusCode::kInvalidArgument,
                  "rotation dimension must be in 1..65536, got " + std::to_string(dim));
  }
  std::unique_ptr<Rotation> r(new Rotation());
  r->kind_ = kind;
  r->dim_ = dim;
  r->padded_ = PaddedDim(dim);
  r->seed_ = seed;
  const uint32_t d = r->padded_;
  uint32_t window = 1;
  while (window * 2 <= d) window *= 2;
  r->window_ = window;
  if (kind == RotationKind::kHadamard) {
    // Sign j (j = round * D + i) is bit j % 64 of the (j / 64)-th output of
    // Rng(seed, kSignStream); a set bit means -1.
    Rng rng(seed, kSignStream);
    r->signs_.resize(static_cast<size_t>(kHadamardRounds) * d);
    uint64_t word = 0;
    for (size_t j = 0; j < r->signs_.size(); ++j) {
      if (j % 64 == 0) word = rng.Next();
      r->signs_[j] = ((word >> (j % 64)) & 1) != 0 ? -1.0f : 1.0f;
    }
    return r;
  }
  if (kind != RotationKind::kDense) {
    return Status(StatusCode::kInvalidArgument, "unknown rotation kind");
  }
  // Rows of a Gaussian matrix (row-major draws from Rng(seed, kDenseStream).Gaussian()),
  // orthonormalised in order by classical Gram-Schmidt applied twice, in double.
  Rng rng(seed, kDenseStream);
  std::vector<double> m(static_cast<size_t>(d) * d);
  for (double& v : m) v = rng.Gaussian();
  for (size_t i = 0; i < d; ++i) {
    double* row = &m[i * d];
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t k = 0; k < i; ++k) {
        const double* prev = &m[k * d];
        double dot = 0;
        for (size_t j = 0; j < d; ++j) dot += row[j] * prev[j];
        for (size_t j = 0; j < d; ++j) row[j] -= dot * prev[j];
      }
    }
    double norm = 0;
    for (size_t j = 0; j < d; ++j) norm += row[j] * row[j];
    norm = std::sqrt(norm);
    for (size_t j = 0; j < d; ++j) row[j] /= norm;
  }
  r->dense_.resize(m.size());
  for (size_t i = 0; i < m.size(); ++i) r->dense_[i] = static_cast<float>(m[i]);
  return r;
}

Result<std::unique_ptr<Rotation>> Rotation::FromDenseMatrix(uint32_t dim, uint64_t seed,
                                                            std::vector<float> matrix) {
  if (dim == 0 || dim > 65536) {
    return Status(StatusCode::kInvalidArgument,
                  "rotation dimension must be in 1..65536, got " + std::to_string(dim));
  }
  const uint32_t d = PaddedDim(dim);
  if (matrix.size() != static_cast<size_t>(d) * d) {
    return Status(StatusCode::kCorrupt, "dense rotation matrix has the wrong size");
  }
  for (float v : matrix) {
    if (!std::isfinite(v)) return Status(StatusCode::kCorrupt, "dense rotation matrix not finite");
  }
  std::unique_ptr<Rotation> r(new Rotation());
  r->kind_ = RotationKind::kDense;
  r->dim_ = dim;
  r->padded_ = d;
  r->seed_ = seed;
  uint32_t window = 1;
  while (window * 2 <= d) window *= 2;
  r->window_ = window;
  r->dense_ = std::move(matrix);
  return r;
}

void Rotation::Apply(const float* in, float* out) const {
  if (kind_ == RotationKind::kDense) {
    const size_t d = padded_;
    for (size_t i = 0; i < d; ++i) {
      const float* row = &dense_[i * d];
      float acc = 0;
      for (size_t j = 0; j < dim_; ++j) acc += row[j] * in[j];
      out[i] = acc;
    }
    return;
  }
  std::memcpy(out, in, sizeof(float) * dim_);
  std::memset(out + dim_, 0, sizeof(float) * (padded_ - dim_));
  const float scale = 1.0f / std::sqrt(static_cast<float>(window_));
  for (int round = 0; round < kHadamardRounds; ++round) {
    const float* s = &signs_[static_cast<size_t>(round) * padded_];
    for (size_t i = 0; i < padded_; ++i) out[i] *= s[i];
    float* w = (round % 2 == 0) ? out : out + (padded_ - window_);
    Fwht(w, window_);
    for (size_t i = 0; i < window_; ++i) w[i] *= scale;
  }
}

void Rotation::ApplyPadded(const float* in, float* out) const {
  if (kind_ == RotationKind::kDense) {
    const size_t d = padded_;
    for (size_t i = 0; i < d; ++i) {
      const float* row = &dense_[i * d];
      float acc = 0;
      for (size_t j = 0; j < d; ++j) acc += row[j] * in[j];
      out[i] = acc;
    }
    return;
  }
  // Hadamard: the padding coordinates of `in` take part like any other.
  std::memcpy(out, in, sizeof(float) * padded_);
  const float scale = 1.0f / std::sqrt(static_cast<float>(window_));
  for (int round = 0; round < kHadamardRounds; ++round) {
    const float* s = &signs_[static_cast<size_t>(round) * padded_];
    for (size_t i = 0; i < padded_; ++i) out[i] *= s[i];
    float* w = (round % 2 == 0) ? out : out + (padded_ - window_);
    Fwht(w, window_);
    for (size_t i = 0; i < window_; ++i) w[i] *= scale;
  }
}

}  // namespace dreamdb::vector
