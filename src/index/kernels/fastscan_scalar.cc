// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Scalar kernels and the run-time dispatch (spec/20-vector-codes.md §cell codes).

#include <bit>
#include <cstring>

#include "src/base/check.h"
#include "src/index/kernels/fastscan.h"

namespace dreamdb::vector {
namespace internal {

void FastScanScalar(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out) {
  for (int v = 0; v < 32; ++v) out[v] = 0;
  for (size_t g = 0; g < groups; ++g) {
    const uint8_t* c = codes + g * 16;
    const uint8_t* t = lut + g * 16;
    for (int p = 0; p < 16; ++p) {
      out[p] += t[c[p] & 15];
      out[p + 16] += t[c[p] >> 4];
    }
  }
}

void PlaneLanesScalar(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d,
                      float* lanes) {
  for (uint32_t b = 0; b < num_planes; ++b) {
    const uint8_t* plane = planes + size_t{b} * (d / 8);
    float* out = lanes + 16 * b;
    for (int l = 0; l < 16; ++l) out[l] = 0;
    for (uint32_t i = 0; i < d; ++i) {
      if ((plane[i / 8] >> (i % 8)) & 1) out[i % 16] += x[i];
    }
  }
}

namespace {

// The popcount kernels' one body; inlined into each caller, so it compiles to the POPCNT
// instruction inside PopcountHw and to whatever the baseline offers elsewhere.
__attribute__((always_inline)) inline uint64_t PopcountSum(const uint64_t* code,
                                                           const uint64_t* qplanes, size_t words,
                                                           uint32_t qbits) {
  uint64_t total = 0;
  for (uint32_t j = 0; j < qbits; ++j) {
    uint64_t count = 0;
    const uint64_t* q = qplanes + j * words;
    for (size_t w = 0; w < words; ++w) count += std::popcount(code[w] & q[w]);
    total += count << j;
  }
  return total;
}

__attribute__((always_inline)) inline uint64_t CountBits(const uint64_t* w, size_t n) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += std::popcount(w[i]);
  return total;
}

}  // namespace

uint64_t PopcountScalar(const uint64_t* code, const uint64_t* qplanes, size_t words,
                        uint32_t qbits) {
  return PopcountSum(code, qplanes, words, qbits);
}

void GridLanesScalar(const float* a, uint32_t d, float t, int max_m, float* ip8, float* sq8) {
  for (int j = 0; j < 8; ++j) ip8[j] = sq8[j] = 0;
  for (uint32_t i = 0; i < d; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const float prod = t * a[i + j];
      int m = static_cast<int>(prod);
      m = m < max_m ? m : max_m;
      const float y = static_cast<float>(m) + 0.5f;
      const float p1 = y * a[i + j];
      const float p2 = y * y;
      ip8[j] += p1;
      sq8[j] += p2;
    }
  }
}

void GridLanes(const float* a, uint32_t d, float t, int max_m, float* ip8, float* sq8) {
  if (ActiveSimdLevel() >= SimdLevel::kAvx2) {
    GridLanesAvx2(a, d, t, max_m, ip8, sq8);
  } else {
    GridLanesScalar(a, d, t, max_m, ip8, sq8);
  }
}

uint32_t EstimateBlockScalar(const uint32_t* acc, const uint8_t* factors,
                             const BlockEstimateParams& p, float* est, float* lower) {
  float add[32];
  float rescale[32];
  float error[32];
  std::memcpy(add, factors, sizeof(add));
  std::memcpy(rescale, factors + 128, sizeof(rescale));
  std::memcpy(error, factors + 256, sizeof(error));
  uint32_t mask = 0;
  for (uint32_t l = 0; l < 32; ++l) {
    const float scaled = p.delta * static_cast<float>(acc[l]);
    const float ip = scaled + p.base;
    const float centered = ip - p.half_sum;
    const float term = rescale[l] * centered;
    const float head = add[l] + p.g_add;
    est[l] = head + term;
    const float slack = error[l] * p.g_err;
    lower[l] = est[l] - slack;
    mask |= static_cast<uint32_t>(lower[l] < p.threshold) << l;
  }
  return mask;
}

// The same sums with the POPCNT instruction (std::popcount compiles to a library call
// where the build's baseline lacks it).
__attribute__((target("popcnt"))) uint64_t PopcountHw(const uint64_t* code, const uint64_t* qplanes,
                                                      size_t words, uint32_t qbits) {
  return PopcountSum(code, qplanes, words, qbits);
}

__attribute__((target("popcnt"))) uint64_t PopcountWordsHw(const uint64_t* w, size_t n) {
  return CountBits(w, n);
}

bool CpuHasPopcnt() {
  static const bool has = __builtin_cpu_supports("popcnt");
  return has;
}

bool CpuHasVpopcntdq() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}

}  // namespace internal

void FastScanBlockAt(SimdLevel level, const uint8_t* codes, const uint8_t* lut, size_t groups,
                     uint32_t* out) {
  DCHECK(groups % 16 == 0);  // groups = d / 4 (RaBitQ) or m rounded up (PQ4)
  // Chunks of at most 256 groups keep the SIMD 16-bit accumulators from overflowing
  // (256 * 255 < 65536).
  uint32_t part[32];
  for (int v = 0; v < 32; ++v) out[v] = 0;
  for (size_t g0 = 0; g0 < groups; g0 += 256) {
    const size_t n = groups - g0 < 256 ? groups - g0 : 256;
    switch (level) {
      case SimdLevel::kAvx512:
        internal::FastScanAvx512(codes + g0 * 16, lut + g0 * 16, n, part);
        break;
      case SimdLevel::kAvx2:
        internal::FastScanAvx2(codes + g0 * 16, lut + g0 * 16, n, part);
        break;
      default:
        internal::FastScanScalar(codes + g0 * 16, lut + g0 * 16, n, part);
        break;
    }
    for (int v = 0; v < 32; ++v) out[v] += part[v];
  }
}

void FastScanBlock(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out) {
  FastScanBlockAt(ActiveSimdLevel(), codes, lut, groups, out);
}

bool HasInt8Dot() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return has && ActiveSimdLevel() == SimdLevel::kAvx512;
}

void DotManyU8I8(const uint8_t* u, const int8_t* rows, size_t n, size_t stride, int32_t* out) {
  internal::DotManyU8I8Vnni(u, rows, n, stride, out);
}

uint32_t EstimateBlockAt(SimdLevel level, const uint32_t* acc, const uint8_t* factors,
                         const BlockEstimateParams& p, float* est, float* lower) {
  if (level == SimdLevel::kAvx512)
    return internal::EstimateBlockAvx512(acc, factors, p, est, lower);
  return internal::EstimateBlockScalar(acc, factors, p, est, lower);
}

uint32_t EstimateBlock(const uint32_t* acc, const uint8_t* factors, const BlockEstimateParams& p,
                       float* est, float* lower) {
  return EstimateBlockAt(ActiveSimdLevel(), acc, factors, p, est, lower);
}

namespace {

void PlaneLanesAt(SimdLevel level, const uint8_t* planes, uint32_t num_planes, const float* x,
                  uint32_t d, float* lanes) {
  switch (level) {
    case SimdLevel::kAvx512:
      internal::PlaneLanesAvx512(planes, num_planes, x, d, lanes);
      break;
    case SimdLevel::kAvx2:
      internal::PlaneLanesAvx2(planes, num_planes, x, d, lanes);
      break;
    default:
      internal::PlaneLanesScalar(planes, num_planes, x, d, lanes);
      break;
  }
}

// The planes' lane sums combined as ExPlanesDot specifies: per plane, lanes 0..15 added in
// order, then sum_b 2^b * plane_sum_b in increasing b. The planes' chains are interleaved
// (each plane's additions stay in the same order, so every sum is rounded as before), which
// lets them run side by side instead of one long dependent chain.
template <uint32_t N>
float CombineLanes(const float* lanes) {
  float s[N];
  for (uint32_t b = 0; b < N; ++b) s[b] = 0;
  for (int l = 0; l < 16; ++l) {
    for (uint32_t b = 0; b < N; ++b) s[b] += lanes[16 * b + l];
  }
  float total = 0;
  for (uint32_t b = 0; b < N; ++b) total += static_cast<float>(1u << b) * s[b];
  return total;
}

float CombineLanes(const float* lanes, uint32_t num_planes) {
  switch (num_planes) {
    case 1:
      return CombineLanes<1>(lanes);
    case 2:
      return CombineLanes<2>(lanes);
    case 3:
      return CombineLanes<3>(lanes);
    case 4:
      return CombineLanes<4>(lanes);
    case 5:
      return CombineLanes<5>(lanes);
    case 6:
      return CombineLanes<6>(lanes);
    case 7:
      return CombineLanes<7>(lanes);
    default:
      return CombineLanes<8>(lanes);
  }
}

}  // namespace

float ExPlanesDotAt(SimdLevel level, const uint8_t* planes, uint32_t num_planes, const float* x,
                    uint32_t d) {
  float lanes[16 * 8];
  PlaneLanesAt(level, planes, num_planes, x, d, lanes);
  return CombineLanes(lanes, num_planes);
}

float ExPlanesDot(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d) {
  DCHECK(d % 64 == 0 && num_planes >= 1 && num_planes <= 8);
  return ExPlanesDotAt(ActiveSimdLevel(), planes, num_planes, x, d);
}

float ExPlanesDotSplit(const uint8_t* low, uint32_t low_planes, const uint8_t* top, const float* x,
                       uint32_t d) {
  DCHECK(d % 64 == 0 && low_planes <= 7);
  float lanes[16 * 8];
  const SimdLevel level = ActiveSimdLevel();
  if (low_planes > 0) PlaneLanesAt(level, low, low_planes, x, d, lanes);
  PlaneLanesAt(level, top, 1, x, d, lanes + 16 * low_planes);
  return CombineLanes(lanes, low_planes + 1);
}

uint64_t PopcountDotAt(SimdLevel level, const uint64_t* code, const uint64_t* qplanes, size_t words,
                       uint32_t qbits) {
  static const bool has_vpopcnt = internal::CpuHasVpopcntdq();
  if (level == SimdLevel::kAvx512 && has_vpopcnt && words % 8 == 0) {
    return internal::PopcountAvx512(code, qplanes, words, qbits);
  }
  if (level != SimdLevel::kScalar && internal::CpuHasPopcnt()) {
    return internal::PopcountHw(code, qplanes, words, qbits);
  }
  return internal::PopcountScalar(code, qplanes, words, qbits);
}

uint64_t PopcountDot(const uint64_t* code, const uint64_t* qplanes, size_t words, uint32_t qbits) {
  return PopcountDotAt(ActiveSimdLevel(), code, qplanes, words, qbits);
}

uint64_t PopcountWords(const uint64_t* w, size_t n) {
  if (internal::CpuHasPopcnt()) return internal::PopcountWordsHw(w, n);
  return internal::CountBits(w, n);
}

}  // namespace dreamdb::vector
