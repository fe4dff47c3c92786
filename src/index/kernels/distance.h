// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// f32 distance kernels for vector search: L2 squared and inner product, one-vs-one,
// many-vs-many (blocked) and nearest-centroid assignment.
//
// Each kernel has a scalar, an AVX2+FMA and an AVX-512 implementation, chosen once at run
// time with __builtin_cpu_supports. The environment variable DREAMDB_SIMD=scalar|avx2|avx512
// forces a level (capped by what the CPU supports); tests use it to check the levels agree.
// Only these run-time-dispatched functions use AVX2 or AVX-512 instructions (per-function
// target attributes), so the library runs on any x86-64-v2 CPU.
//
// Thread safety: all functions are pure and may be called concurrently.

#ifndef DREAMDB_SRC_INDEX_KERNELS_DISTANCE_H_
#define DREAMDB_SRC_INDEX_KERNELS_DISTANCE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dreamdb/index_kinds.h"
#include "dreamdb/status.h"

namespace dreamdb::vector {

// The public enum and its name table (include/dreamdb/index_kinds.h).
using ::dreamdb::Metric;
using ::dreamdb::MetricName;
using ::dreamdb::ParseMetric;

enum class SimdLevel : uint8_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
std::string_view SimdLevelName(SimdLevel level);
// The level in use: the best the CPU supports, or DREAMDB_SIMD if set (capped by the CPU).
SimdLevel ActiveSimdLevel();
// The best level the CPU supports (ignores DREAMDB_SIMD; lowered by
// CapCpuSimdLevelForTesting).
SimdLevel CpuSimdLevel();
// The best level the CPU supports, as detected (ignores every override).
SimdLevel DetectedSimdLevel();
// Forces a level for this process (tests). Capped by CpuSimdLevel(); returns the level set.
SimdLevel SetSimdLevelForTesting(SimdLevel level);
// Makes this process act as on a CPU whose best level is `max` (tests: a machine without
// AVX-512, or without AVX2): CpuSimdLevel() reports at most `max` and the active level is
// lowered to it. Never raises anything above what the CPU has. Returns CpuSimdLevel().
SimdLevel CapCpuSimdLevelForTesting(SimdLevel max);

// Squared Euclidean distance.
float L2Sqr(const float* a, const float* b, size_t dim);
// Inner product.
float Dot(const float* a, const float* b, size_t dim);
// Squared L2 norm of one vector.
float NormSqr(const float* a, size_t dim);

// Distances from one query to n contiguous vectors (row-major n x dim).
void L2SqrMany(const float* q, const float* data, size_t n, size_t dim, float* out);
void DotMany(const float* q, const float* data, size_t n, size_t dim, float* out);

// out[i*nb + j] = L2Sqr(a_i, b_j) for all pairs (blocked; used by k-means/assign).
// a is na x dim, b is nb x dim, both row-major. Computed as |a|²+|b|²-2a·b with a blocked
// GEMM-like kernel, so results may differ from L2Sqr() by float rounding (never negative).
void PairwiseL2Sqr(const float* a, size_t na, const float* b, size_t nb, size_t dim, float* out);
// out[i*nb + j] = Dot(a_i, b_j) (blocked).
void PairwiseDot(const float* a, size_t na, const float* b, size_t nb, size_t dim, float* out);

// For each of n vectors, the index of the nearest of k centroids. kL2 and kCosine use L2
// (cosine data and centroids are normalised first by the caller); kInnerProduct picks the
// max dot. dist_out (optional) receives the L2² distance (kL2/kCosine) or the negated dot
// (kInnerProduct), so smaller is better for every metric. Single-threaded; callers split
// the rows across threads. REQUIRES k >= 1.
void AssignNearest(const float* centroids, size_t k, const float* data, size_t n, size_t dim,
                   Metric metric, uint32_t* out, float* dist_out = nullptr);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_DISTANCE_H_
