// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Kernels over RaBitQ codes (spec/20-vector-codes.md §cell codes):
//   - FastScan: 1-bit codes of 32 vectors stored as 4-bit nibbles (one per group of 4
//     coordinates), scored against an 8-bit 16-entry table per group with byte shuffles.
//     Block layout: for group g, 16 bytes at offset 16 g; byte p holds the nibble of vector
//     p in its low half and of vector p + 16 in its high half. Nibble bit j = sign bit of
//     coordinate 4 g + j.
//   - ExPlanesDot: sum_i e_i x_i for an extended code stored as bit planes.
//   - PopcountDot: per-vector 1-bit code against a bit-plane quantized query (AND + popcount),
//     for one-at-a-time visits (graph search).
// Each kernel has scalar, AVX2 and AVX-512 versions chosen at run time (ActiveSimdLevel(),
// DREAMDB_SIMD forces one); all levels return bit-identical results.
//
// Thread safety: all functions are pure.

#ifndef DREAMDB_SRC_INDEX_KERNELS_FASTSCAN_H_
#define DREAMDB_SRC_INDEX_KERNELS_FASTSCAN_H_

#include <cstddef>
#include <cstdint>

#include "src/base/check.h"
#include "src/index/kernels/distance.h"

namespace dreamdb::vector {

inline constexpr uint32_t kFastScanBlock = 32;

// Writes out[v] = sum_g lut[16 g + nibble(v, g)] for the 32 vectors v of one block.
// `groups` = d / 4, a multiple of 16.
void FastScanBlock(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out);
void FastScanBlockAt(SimdLevel level, const uint8_t* codes, const uint8_t* lut, size_t groups,
                     uint32_t* out);

// Layout helpers for one block's nibble area.
inline void SetFastScanNibble(uint8_t* block, uint32_t group, uint32_t lane, uint8_t nibble) {
  DCHECK(lane < kFastScanBlock);
  uint8_t& b = block[group * 16 + (lane & 15)];
  if (lane < 16) {
    b = static_cast<uint8_t>((b & 0xf0) | (nibble & 0x0f));
  } else {
    b = static_cast<uint8_t>((b & 0x0f) | (nibble << 4));
  }
}
inline uint8_t GetFastScanNibble(const uint8_t* block, uint32_t group, uint32_t lane) {
  DCHECK(lane < kFastScanBlock);
  const uint8_t b = block[group * 16 + (lane & 15)];
  return lane < 16 ? (b & 0x0f) : (b >> 4);
}

// sum_i e_i x_i where e_i = sum_b 2^b * bit(i of plane b); plane b is d bits at
// planes + b * d / 8 (bit i = byte i / 8, bit i % 8). d is a multiple of 64.
// Summation order (identical at every level): per plane, 16 lane sums (lane = i % 16)
// accumulated in increasing i, then added lane 0..15, then planes combined as
// sum_b 2^b * plane_sum_b in increasing b.
float ExPlanesDot(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d);
float ExPlanesDotAt(SimdLevel level, const uint8_t* planes, uint32_t num_planes, const float* x,
                    uint32_t d);
// ExPlanesDot of `low_planes` planes at `low` (planes 0 .. low_planes - 1) and one more plane
// at `top` (plane low_planes), which need not follow them in memory; bit for bit the value
// of ExPlanesDot over the same planes laid out together.
float ExPlanesDotSplit(const uint8_t* low, uint32_t low_planes, const uint8_t* top, const float* x,
                       uint32_t d);

// sum_j 2^j popcount(code AND qplanes[j]) over `words` 64-bit words, j < qbits.
uint64_t PopcountDot(const uint64_t* code, const uint64_t* qplanes, size_t words, uint32_t qbits);
uint64_t PopcountDotAt(SimdLevel level, const uint64_t* code, const uint64_t* qplanes, size_t words,
                       uint32_t qbits);
// The number of set bits in n words (the POPCNT instruction where the CPU has it).
uint64_t PopcountWords(const uint64_t* w, size_t n);

// 1-bit estimates of one FastScan block (spec/20 §6.2): for lane l,
//   ip = delta * acc[l] + base;  est[l] = (add[l] + g_add) + rescale[l] * (ip - half_sum);
//   lower[l] = est[l] - error[l] * g_err
// (each operation rounded separately, identical at every level). `factors` is the
// block's add[32], rescale[32], error[32]. Returns the mask of lanes with lower < threshold.
struct BlockEstimateParams {
  float delta, base, half_sum, g_add, g_err, threshold;
};
uint32_t EstimateBlock(const uint32_t* acc, const uint8_t* factors, const BlockEstimateParams& p,
                       float* est, float* lower);
uint32_t EstimateBlockAt(SimdLevel level, const uint32_t* acc, const uint8_t* factors,
                         const BlockEstimateParams& p, float* est, float* lower);

// Probing: out[i] = sum_j u_j * rows[i][j] for n rows of int8 with stride `stride` (a
// multiple of 64, zero-padded) and an unsigned 8-bit query u. Exact integer arithmetic.
// Only available with AVX-512 VNNI (HasInt8Dot()); callers fall back to f32 otherwise.
bool HasInt8Dot();
void DotManyU8I8(const uint8_t* u, const int8_t* rows, size_t n, size_t stride, int32_t* out);

namespace internal {
void DotManyU8I8Vnni(const uint8_t* u, const int8_t* rows, size_t n, size_t stride, int32_t* out);
uint32_t EstimateBlockScalar(const uint32_t* acc, const uint8_t* factors,
                             const BlockEstimateParams& p, float* est, float* lower);
uint32_t EstimateBlockAvx512(const uint32_t* acc, const uint8_t* factors,
                             const BlockEstimateParams& p, float* est, float* lower);
// Per-ISA entry points (fastscan_scalar.cc, fastscan_avx2.cc, fastscan_avx512.cc).
void FastScanScalar(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out);
void FastScanAvx2(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out);
void FastScanAvx512(const uint8_t* codes, const uint8_t* lut, size_t groups, uint32_t* out);
// Writes the 16 lane sums of each of `planes` planes (lanes[16 b + l], see ExPlanesDot).
void PlaneLanesScalar(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d,
                      float* lanes);
void PlaneLanesAvx2(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d,
                    float* lanes);
void PlaneLanesAvx512(const uint8_t* planes, uint32_t num_planes, const float* x, uint32_t d,
                      float* lanes);
uint64_t PopcountScalar(const uint64_t* code, const uint64_t* qplanes, size_t words,
                        uint32_t qbits);
uint64_t PopcountAvx512(const uint64_t* code, const uint64_t* qplanes, size_t words,
                        uint32_t qbits);
uint64_t PopcountHw(const uint64_t* code, const uint64_t* qplanes, size_t words, uint32_t qbits);
uint64_t PopcountWordsHw(const uint64_t* w, size_t n);
bool CpuHasPopcnt();
bool CpuHasVpopcntdq();
// Encoder helper (rabitq.cc): 8 f32 lane sums (lane = i % 8) of y_i * a_i and y_i^2 for
// y_i = min(max_m, trunc(t * a_i)) + 0.5, mul and add rounded separately (no FMA), so the
// AVX2 and scalar versions agree bit for bit.
void GridLanesScalar(const float* a, uint32_t d, float t, int max_m, float* ip8, float* sq8);
void GridLanesAvx2(const float* a, uint32_t d, float t, int max_m, float* ip8, float* sq8);
void GridLanes(const float* a, uint32_t d, float t, int max_m, float* ip8, float* sq8);
// Unnormalised in-place FWHT of n floats (n a power of two >= 8), the same butterflies as
// Fwht() in rotation.cc, so results are identical.
void FwhtAvx2(float* x, size_t n);
}  // namespace internal

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_FASTSCAN_H_
