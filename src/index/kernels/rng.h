// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// A small, fully specified pseudo-random generator (SplitMix64) with uniform, Gaussian and
// exponential draws. Unlike <random>'s distributions its output is identical on every
// platform and standard library, which keeps k-means and the SYN generator reproducible.
//
// Thread safety: a Rng is a value; use one per thread.

#ifndef DREAMDB_SRC_INDEX_KERNELS_RNG_H_
#define DREAMDB_SRC_INDEX_KERNELS_RNG_H_

#include <cmath>
#include <cstdint>

namespace dreamdb::vector {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // Derives an independent stream from (seed, stream), e.g. one per row or per thread.
  Rng(uint64_t seed, uint64_t stream) : state_(Mix(seed ^ Mix(stream + 0x632be59bd9b4e019ULL))) {}

  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix(state_);
  }
  // Uniform in [0, n) (Lemire's multiply-shift; bias < n / 2^64, negligible here).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1].
  double UniformOpen() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }
  // Standard normal (Box-Muller; one draw per call, the pair's second half is discarded).
  double Gaussian() {
    const double u1 = UniformOpen();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Exponential(1).
  double Exponential() { return -std::log(UniformOpen()); }

 private:
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_RNG_H_
