// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// SYN: the synthetic embedding distribution of the vector-search targets
// (design/TARGETS.md "Vector search"; SYN-768 = dim 768, cosine).
//
//   U   random orthogonal dim x dim (modified Gram-Schmidt QR of a Gaussian matrix)
//   λᵢ  = i^(-decay), i = 1..dim (decay 0.75), normalised to Σλᵢ² = 1
//   B   = U · diag(λ)
//   K   centres cₖ = B·gₖ (gₖ standard Gaussian), K = round(√n_base) by default,
//       picked with Dirichlet(1) weights
//   row = normalise(c_k + B·g) = normalise(B·(gₖ + g)), k drawn from the weights
//
// Everything derives from `seed` with a platform-independent generator (rng.h): the model
// (U, centres, weights) from the seed, row r of stream s from (seed, s, r). Stream 0 is the
// base set, stream 1 the queries (same distribution, independent draws). Any row range can
// be generated independently, so big sets are produced in chunks and in parallel.
// Rows are bit-identical for a given SIMD level (distance.h); across levels they agree to
// float rounding (the B·g product sums in a different order).
//
// Thread safety: a built SynGenerator is immutable; Generate may run concurrently.

#ifndef DREAMDB_SRC_INDEX_SYN_H_
#define DREAMDB_SRC_INDEX_SYN_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::vector {

struct SynParams {
  uint32_t dim = 768;
  // Size of the base set; sets the default number of centres.
  uint64_t n_base = 200000;
  uint32_t num_centers = 0;  // 0 = round(sqrt(n_base)), at least 1
  double decay = 0.75;       // spectrum exponent
  uint64_t seed = 0;
};

inline constexpr uint64_t kSynBaseStream = 0;
inline constexpr uint64_t kSynQueryStream = 1;

class SynGenerator {
 public:
  // kInvalidArgument for dim == 0 or > 65536, n_base == 0, non-finite/negative decay.
  // Cost: O(dim³) for the QR (≈0.5 s at dim 768).
  static Result<SynGenerator> Create(const SynParams& params);

  const SynParams& params() const { return params_; }
  uint32_t num_centers() const { return num_centers_; }

  // Writes rows [first, first + n) of `stream` (row-major n x dim, unit L2 norm) to out.
  // Uses up to `threads` threads (0 = hardware).
  void Generate(uint64_t stream, uint64_t first, size_t n, float* out, uint32_t threads = 0) const;
  std::vector<float> GenerateVector(uint64_t stream, uint64_t first, size_t n,
                                    uint32_t threads = 0) const;

 private:
  SynGenerator() = default;
  SynParams params_;
  uint32_t num_centers_ = 0;
  std::vector<float> basis_;        // B, row-major dim x dim
  std::vector<float> center_g_;     // gₖ, K x dim
  std::vector<double> cumulative_;  // cumulative Dirichlet weights, K entries, last = 1
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_SYN_H_
