// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/syn.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "src/index/kernels/distance.h"
#include "src/index/kernels/parallel.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

constexpr uint64_t kStreamBasis = 0x5359'4e00'0000'0001ULL;
constexpr uint64_t kStreamCenters = 0x5359'4e00'0000'0002ULL;
constexpr uint64_t kStreamWeights = 0x5359'4e00'0000'0003ULL;
// Row streams are (seed ^ kRowSalt ^ stream, row) so they never collide with the above.
constexpr uint64_t kRowSalt = 0x726f'7773'0000'0000ULL;

// Random orthogonal matrix (rows orthonormal) by modified Gram-Schmidt in double.
std::vector<double> RandomOrthogonal(uint32_t dim, uint64_t seed) {
  const size_t d = dim;
  std::vector<double> q(d * d);
  Rng rng(seed, kStreamBasis);
  for (double& v : q) v = rng.Gaussian();
  for (size_t i = 0; i < d; ++i) {
    double* qi = q.data() + i * d;
    for (int pass = 0; pass < 2; ++pass) {  // re-orthogonalise once for stability
      for (size_t j = 0; j < i; ++j) {
        const double* qj = q.data() + j * d;
        double dot = 0;
        for (size_t t = 0; t < d; ++t) dot += qi[t] * qj[t];
        for (size_t t = 0; t < d; ++t) qi[t] -= dot * qj[t];
      }
    }
    double norm = 0;
    for (size_t t = 0; t < d; ++t) norm += qi[t] * qi[t];
    norm = std::sqrt(norm);
    for (size_t t = 0; t < d; ++t) qi[t] /= norm;
  }
  return q;
}

}  // namespace

Result<SynGenerator> SynGenerator::Create(const SynParams& params) {
  if (params.dim == 0 || params.dim > 65536) {
    return InvalidArgument("SYN: dimension " + std::to_string(params.dim) +
                           " out of range 1..65536");
  }
  if (params.n_base == 0) return InvalidArgument("SYN: n_base must be at least 1");
  if (!std::isfinite(params.decay) || params.decay < 0) {
    return InvalidArgument("SYN: decay must be finite and >= 0, got " +
                           std::to_string(params.decay));
  }
  SynGenerator g;
  g.params_ = params;
  g.num_centers_ = params.num_centers != 0
                       ? params.num_centers
                       : static_cast<uint32_t>(std::max<double>(
                             1.0, std::round(std::sqrt(static_cast<double>(params.n_base)))));
  const size_t d = params.dim;
  // Spectrum, normalised to unit energy.
  std::vector<double> lambda(d);
  double energy = 0;
  for (size_t i = 0; i < d; ++i) {
    lambda[i] = std::pow(static_cast<double>(i + 1), -params.decay);
    energy += lambda[i] * lambda[i];
  }
  for (double& l : lambda) l /= std::sqrt(energy);
  // B = U · diag(λ): column t of U scaled by λ_t. U's rows from Gram-Schmidt are
  // orthonormal, so U (as a matrix of those rows) is orthogonal.
  const std::vector<double> u = RandomOrthogonal(params.dim, params.seed);
  g.basis_.resize(d * d);
  for (size_t r = 0; r < d; ++r) {
    for (size_t t = 0; t < d; ++t)
      g.basis_[r * d + t] = static_cast<float>(u[r * d + t] * lambda[t]);
  }
  const size_t k = g.num_centers_;
  g.center_g_.resize(k * d);
  Rng crng(params.seed, kStreamCenters);
  for (float& v : g.center_g_) v = static_cast<float>(crng.Gaussian());
  // Dirichlet(1) = normalised Exponential(1) draws.
  Rng wrng(params.seed, kStreamWeights);
  g.cumulative_.resize(k);
  double total = 0;
  for (size_t i = 0; i < k; ++i) {
    total += wrng.Exponential();
    g.cumulative_[i] = total;
  }
  for (double& c : g.cumulative_) c /= total;
  g.cumulative_.back() = 1.0;
  return g;
}

void SynGenerator::Generate(uint64_t stream, uint64_t first, size_t n, float* out,
                            uint32_t threads) const {
  const size_t d = params_.dim;
  constexpr size_t kChunk = 256;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  ParallelFor(chunks, threads, 1, [&](size_t cb, size_t ce, size_t) {
    std::vector<float> latent(kChunk * d);
    for (size_t c = cb; c < ce; ++c) {
      const size_t r0 = c * kChunk;
      const size_t m = std::min(kChunk, n - r0);
      for (size_t r = 0; r < m; ++r) {
        Rng rng(params_.seed ^ kRowSalt ^ stream, first + r0 + r);
        const double u = rng.Uniform();
        const size_t center = std::min<size_t>(
            std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin(),
            num_centers_ - 1);
        const float* cg = center_g_.data() + center * d;
        float* l = latent.data() + r * d;
        for (size_t t = 0; t < d; ++t) l[t] = cg[t] + static_cast<float>(rng.Gaussian());
      }
      // x = B·l: out[r][j] = row_j(B) · l_r.
      float* o = out + r0 * d;
      PairwiseDot(latent.data(), m, basis_.data(), d, d, o);
      for (size_t r = 0; r < m; ++r) {
        float* x = o + r * d;
        const float n2 = NormSqr(x, d);
        const float inv = n2 > 0 ? 1.0f / std::sqrt(n2) : 0.0f;
        for (size_t t = 0; t < d; ++t) x[t] *= inv;
      }
    }
  });
}

std::vector<float> SynGenerator::GenerateVector(uint64_t stream, uint64_t first, size_t n,
                                                uint32_t threads) const {
  std::vector<float> out(n * params_.dim);
  Generate(stream, first, n, out.data(), threads);
  return out;
}

}  // namespace dreamdb::vector
