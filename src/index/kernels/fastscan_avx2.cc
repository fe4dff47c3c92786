// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// AVX2 kernels (compiled with a target attribute; only called when the CPU has AVX2).

#include <immintrin.h>

#include <cstring>

#include "src/index/kernels/fastscan.h"

namespace dreamdb::vector::internal {
namespace {

// Turns per-128-bit-lane 16-bit accumulators into 16 vector sums. `a` accumulated the
// shuffled bytes as 16-bit words (low byte + 256 * high byte, mod 2^16), `b` the high bytes.
// Word k of a lane covers bytes 2k (even vector) and 2k + 1 (odd vector).
void Decode(const uint16_t* a, const uint16_t* b, int lanes, uint32_t* out) {
  for (int k = 0; k < 8; ++k) {
    uint32_t even = 0;
    uint32_t odd = 0;
    for (int l = 0; l < lanes; ++l) {
      const uint16_t hi = b[l * 8 + k];
      even += static_cast<uint16_t>(a[l * 8 + k] - static_cast<uint16_t>(hi << 8));
      odd += hi;
    }
    out[2 * k] = even;
    out[2 * k + 1] = odd;
  }
}

}  // namespace

__attribute__((target("avx2"))) void FastScanAvx2(const uint8_t* codes, const uint8_t* lut,
                                                  size_t groups, uint32_t* out) {
  const __m256i mask = _mm256_set1_epi8(0x0f);
  __m256i lo_a = _mm256_setzero_si256();
  __m256i lo_b = _mm256_setzero_si256();
  __m256i hi_a = _mm256_setzero_si256();
  __m256i hi_b = _mm256_setzero_si256();
  for (size_t g = 0; g < groups; g += 2) {
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + g * 16));
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + g * 16));
    const __m256i rlo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, mask));
    const __m256i rhi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), mask));
    lo_a = _mm256_add_epi16(lo_a, rlo);
    lo_b = _mm256_add_epi16(lo_b, _mm256_srli_epi16(rlo, 8));
    hi_a = _mm256_add_epi16(hi_a, rhi);
    hi_b = _mm256_add_epi16(hi_b, _mm256_srli_epi16(rhi, 8));
  }
  alignas(32) uint16_t a[16];
  alignas(32) uint16_t b[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(a), lo_a);
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), lo_b);
  Decode(a, b, 2, out);
  _mm256_store_si256(reinterpret_cast<__m256i*>(a), hi_a);
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), hi_b);
  Decode(a, b, 2, out + 16);
}

__attribute__((target("avx2"))) void PlaneLanesAvx2(const uint8_t* planes, uint32_t num_planes,
                                                    const float* x, uint32_t d, float* lanes) {
  const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const size_t stride = d / 8;
  for (uint32_t b = 0; b < num_planes; ++b) {
    const uint8_t* plane = planes + b * stride;
    __m256 acc0 = _mm256_setzero_ps();  // lanes 0..7
    __m256 acc1 = _mm256_setzero_ps();  // lanes 8..15
    for (uint32_t i = 0; i < d; i += 16) {
      const __m256i b0 = _mm256_set1_epi32(plane[i / 8]);
      const __m256i b1 = _mm256_set1_epi32(plane[i / 8 + 1]);
      const __m256 m0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b0, bits), bits));
      const __m256 m1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b1, bits), bits));
      const __m256 x0 = _mm256_loadu_ps(x + i);
      const __m256 x1 = _mm256_loadu_ps(x + i + 8);
      acc0 = _mm256_blendv_ps(acc0, _mm256_add_ps(acc0, x0), m0);
      acc1 = _mm256_blendv_ps(acc1, _mm256_add_ps(acc1, x1), m1);
    }
    _mm256_storeu_ps(lanes + 16 * b, acc0);
    _mm256_storeu_ps(lanes + 16 * b + 8, acc1);
  }
}

__attribute__((target("avx2"))) void GridLanesAvx2(const float* a, uint32_t d, float t, int max_m,
                                                   float* ip8, float* sq8) {
  const __m256 tv = _mm256_set1_ps(t);
  const __m256i mm = _mm256_set1_epi32(max_m);
  const __m256 half = _mm256_set1_ps(0.5f);
  __m256 acc_ip = _mm256_setzero_ps();
  __m256 acc_sq = _mm256_setzero_ps();
  for (uint32_t i = 0; i < d; i += 8) {
    const __m256 av = _mm256_loadu_ps(a + i);
    const __m256i m = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_mul_ps(tv, av)), mm);
    const __m256 y = _mm256_add_ps(_mm256_cvtepi32_ps(m), half);
    acc_ip = _mm256_add_ps(acc_ip, _mm256_mul_ps(y, av));
    acc_sq = _mm256_add_ps(acc_sq, _mm256_mul_ps(y, y));
  }
  _mm256_storeu_ps(ip8, acc_ip);
  _mm256_storeu_ps(sq8, acc_sq);
}

namespace {

// One butterfly stage inside 8 lanes: lanes with bit `h` clear get x + partner, the others
// partner - x (= a - b with a the lower lane), exactly the scalar operations.
__attribute__((target("avx2"))) inline __m256 Stage(__m256 x, __m256 partner, int odd_mask) {
  const __m256 sum = _mm256_add_ps(x, partner);
  const __m256 diff = _mm256_sub_ps(partner, x);
  switch (odd_mask) {
    case 0xaa:
      return _mm256_blend_ps(sum, diff, 0xaa);
    case 0xcc:
      return _mm256_blend_ps(sum, diff, 0xcc);
    default:
      return _mm256_blend_ps(sum, diff, 0xf0);
  }
}

}  // namespace

__attribute__((target("avx2"))) void FwhtAvx2(float* x, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    v = Stage(v, _mm256_permute_ps(v, 0xb1), 0xaa);          // h = 1: swap neighbours
    v = Stage(v, _mm256_permute_ps(v, 0x4e), 0xcc);          // h = 2: swap pairs
    v = Stage(v, _mm256_permute2f128_ps(v, v, 0x01), 0xf0);  // h = 4: swap halves
    _mm256_storeu_ps(x + i, v);
  }
  for (size_t h = 8; h < n; h *= 2) {
    for (size_t i = 0; i < n; i += 2 * h) {
      for (size_t j = i; j < i + h; j += 8) {
        const __m256 a = _mm256_loadu_ps(x + j);
        const __m256 b = _mm256_loadu_ps(x + j + h);
        _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
      }
    }
  }
}

}  // namespace dreamdb::vector::internal
