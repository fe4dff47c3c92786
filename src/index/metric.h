// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The distance and score rules of every metric, in one place (spec/20 §1, spec/21 §7.1).
//
//   metric   internal distance (searches)   public distance (Neighbor::distance)   score
//   l2       |o - q|^2                      |o - q|^2                              |o - q|
//   ip       -<o, q>                        -<o, q>                                <o, q>
//   cosine   -cos(o, q)                     1 - cos(o, q)                          cos(o, q)
//
// Smaller is better for both distances; the score is the metric's natural value (larger is
// better for ip and cosine, smaller for l2). Internal distances are what the codecs estimate
// (cosine works on unit vectors, so it is an inner product); public distances are what
// exact re-ranking, brute force and results carry. A zero vector has cosine 0.
//
// Thread safety: pure functions.

#ifndef DREAMDB_SRC_INDEX_METRIC_H_
#define DREAMDB_SRC_INDEX_METRIC_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "src/index/kernels/distance.h"

namespace dreamdb::vector {

// Public distance from an internal one (l2: clamped at 0, rounding can make it negative).
inline float PublicDistance(Metric metric, float internal) {
  switch (metric) {
    case Metric::kL2:
      return std::max(0.0f, internal);
    case Metric::kInnerProduct:
      return internal;
    case Metric::kCosine:
      return 1.0f + internal;
  }
  return internal;
}

// Internal distance from a public one.
inline float InternalDistance(Metric metric, float distance) {
  return metric == Metric::kCosine ? distance - 1.0f : distance;
}

// Score from a public distance.
inline float ScoreOf(Metric metric, float distance) {
  switch (metric) {
    case Metric::kL2:
      return std::sqrt(std::max(0.0f, distance));
    case Metric::kInnerProduct:
      return -distance;
    case Metric::kCosine:
      return 1.0f - distance;
  }
  return 0;
}

// Cosine public distance from the dot product and both squared norms.
inline float CosineDistance(float dot, float a_norm2, float b_norm2) {
  if (a_norm2 <= 0 || b_norm2 <= 0) return 1.0f;
  return 1.0f - dot / std::sqrt(a_norm2 * b_norm2);
}

// Exact public distance between two raw vectors.
inline float ExactDistance(Metric metric, const float* a, const float* b, size_t dim) {
  switch (metric) {
    case Metric::kL2:
      return L2Sqr(a, b, dim);
    case Metric::kInnerProduct:
      return -Dot(a, b, dim);
    case Metric::kCosine:
      return CosineDistance(Dot(a, b, dim), NormSqr(a, dim), NormSqr(b, dim));
  }
  return 0;
}

struct Neighbor {
  uint64_t id = 0;
  float distance = 0;  // public distance: smaller is better
  float score = 0;     // L2 distance, inner product, or cosine similarity
};

// A result from an internal distance. The cosine score is -internal (not 1 - public, which
// would round twice).
inline Neighbor MakeNeighbor(Metric metric, uint64_t id, float internal) {
  Neighbor n;
  n.id = id;
  n.distance = PublicDistance(metric, internal);
  n.score = metric == Metric::kL2 ? std::sqrt(n.distance) : -internal;
  return n;
}

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_METRIC_H_
