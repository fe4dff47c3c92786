// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// AVX-512 kernels (compiled with target attributes; only called when the CPU has
// AVX-512 F/BW (and VPOPCNTDQ for the popcount kernel)).

#include <immintrin.h>

#include <cstring>

#include "src/index/kernels/fastscan.h"

namespace dreamdb::vector::internal {
namespace {

// Horizontal sum (stores and adds; gcc 12's _mm512_reduce_add_epi32 trips -Wuninitialized).
__attribute__((target("avx512f"))) int32_t SumLanes(__m512i v) {
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, v);
  int32_t s = 0;
  for (int32_t l : lanes) s += l;
  return s;
}

void Decode4(const uint16_t* a, const uint16_t* b, uint32_t* out) {
  for (int k = 0; k < 8; ++k) {
    uint32_t even = 0;
    uint32_t odd = 0;
    for (int l = 0; l < 4; ++l) {
      const uint16_t hi = b[l * 8 + k];
      even += static_cast<uint16_t>(a[l * 8 + k] - static_cast<uint16_t>(hi << 8));
      odd += hi;
    }
    out[2 * k] = even;
    out[2 * k + 1] = odd;
  }
}

}  // namespace

__attribute__((target("avx512f,avx512bw"))) void FastScanAvx512(const uint8_t* codes,
                                                                const uint8_t* lut, size_t groups,
                                                                uint32_t* out) {
  const __m512i mask = _mm512_set1_epi8(0x0f);
  __m512i lo_a = _mm512_setzero_si512();
  __m512i lo_b = _mm512_setzero_si512();
  __m512i hi_a = _mm512_setzero_si512();
  __m512i hi_b = _mm512_setzero_si512();
  for (size_t g = 0; g < groups; g += 4) {
    const __m512i c = _mm512_loadu_si512(codes + g * 16);
    const __m512i t = _mm512_loadu_si512(lut + g * 16);
    const __m512i rlo = _mm512_shuffle_epi8(t, _mm512_and_si512(c, mask));
    const __m512i rhi = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16(c, 4), mask));
    lo_a = _mm512_add_epi16(lo_a, rlo);
    lo_b = _mm512_add_epi16(lo_b, _mm512_srli_epi16(rlo, 8));
    hi_a = _mm512_add_epi16(hi_a, rhi);
    hi_b = _mm512_add_epi16(hi_b, _mm512_srli_epi16(rhi, 8));
  }
  alignas(64) uint16_t a[32];
  alignas(64) uint16_t b[32];
  _mm512_store_si512(a, lo_a);
  _mm512_store_si512(b, lo_b);
  Decode4(a, b, out);
  _mm512_store_si512(a, hi_a);
  _mm512_store_si512(b, hi_b);
  Decode4(a, b, out + 16);
}

namespace {

// N planes accumulate side by side in registers (independent chains hide the add latency).
template <uint32_t N>
__attribute__((target("avx512f"))) inline void PlaneLanesN(const uint8_t* planes, const float* x,
                                                           uint32_t d, float* lanes) {
  __m512 acc[N];
  for (uint32_t b = 0; b < N; ++b) acc[b] = _mm512_setzero_ps();
  const size_t stride = d / 8;
  for (uint32_t i = 0; i < d; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const uint8_t* p = planes + i / 8;
    for (uint32_t b = 0; b < N; ++b) {
      uint16_t m;
      std::memcpy(&m, p + b * stride, 2);
      acc[b] = _mm512_mask_add_ps(acc[b], m, acc[b], xv);
    }
  }
  for (uint32_t b = 0; b < N; ++b) _mm512_storeu_ps(lanes + 16 * b, acc[b]);
}

}  // namespace

__attribute__((target("avx512f"))) void PlaneLanesAvx512(const uint8_t* planes, uint32_t num_planes,
                                                         const float* x, uint32_t d, float* lanes) {
  switch (num_planes) {
    case 1:
      return PlaneLanesN<1>(planes, x, d, lanes);
    case 2:
      return PlaneLanesN<2>(planes, x, d, lanes);
    case 3:
      return PlaneLanesN<3>(planes, x, d, lanes);
    case 4:
      return PlaneLanesN<4>(planes, x, d, lanes);
    case 5:
      return PlaneLanesN<5>(planes, x, d, lanes);
    case 6:
      return PlaneLanesN<6>(planes, x, d, lanes);
    case 7:
      return PlaneLanesN<7>(planes, x, d, lanes);
    default:
      return PlaneLanesN<8>(planes, x, d, lanes);
  }
}

__attribute__((target("avx512f"))) uint32_t EstimateBlockAvx512(const uint32_t* acc,
                                                                const uint8_t* factors,
                                                                const BlockEstimateParams& p,
                                                                float* est, float* lower) {
  const __m512 delta = _mm512_set1_ps(p.delta);
  const __m512 base = _mm512_set1_ps(p.base);
  const __m512 half_sum = _mm512_set1_ps(p.half_sum);
  const __m512 g_add = _mm512_set1_ps(p.g_add);
  const __m512 g_err = _mm512_set1_ps(p.g_err);
  const __m512 thr = _mm512_set1_ps(p.threshold);
  uint32_t mask = 0;
  for (int h = 0; h < 2; ++h) {
    const __m512 a = _mm512_maskz_cvtepu32_ps(0xffff, _mm512_loadu_si512(acc + 16 * h));
    const __m512 add = _mm512_loadu_ps(factors + 64 * h);
    const __m512 rescale = _mm512_loadu_ps(factors + 128 + 64 * h);
    const __m512 error = _mm512_loadu_ps(factors + 256 + 64 * h);
    const __m512 ip = _mm512_add_ps(_mm512_mul_ps(delta, a), base);
    const __m512 term = _mm512_mul_ps(rescale, _mm512_sub_ps(ip, half_sum));
    const __m512 e = _mm512_add_ps(_mm512_add_ps(add, g_add), term);
    const __m512 lo = _mm512_sub_ps(e, _mm512_mul_ps(error, g_err));
    _mm512_storeu_ps(est + 16 * h, e);
    _mm512_storeu_ps(lower + 16 * h, lo);
    mask |= static_cast<uint32_t>(_mm512_cmp_ps_mask(lo, thr, _CMP_LT_OQ)) << (16 * h);
  }
  return mask;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void DotManyU8I8Vnni(const uint8_t* u,
                                                                            const int8_t* rows,
                                                                            size_t n, size_t stride,
                                                                            int32_t* out) {
  size_t r = 0;
  for (; r + 4 <= n; r += 4) {
    const int8_t* row = rows + r * stride;
    __m512i a0 = _mm512_setzero_si512();
    __m512i a1 = _mm512_setzero_si512();
    __m512i a2 = _mm512_setzero_si512();
    __m512i a3 = _mm512_setzero_si512();
    for (size_t j = 0; j < stride; j += 64) {
      const __m512i qv = _mm512_loadu_si512(u + j);
      a0 = _mm512_dpbusd_epi32(a0, qv, _mm512_loadu_si512(row + j));
      a1 = _mm512_dpbusd_epi32(a1, qv, _mm512_loadu_si512(row + stride + j));
      a2 = _mm512_dpbusd_epi32(a2, qv, _mm512_loadu_si512(row + 2 * stride + j));
      a3 = _mm512_dpbusd_epi32(a3, qv, _mm512_loadu_si512(row + 3 * stride + j));
    }
    out[r] = SumLanes(a0);
    out[r + 1] = SumLanes(a1);
    out[r + 2] = SumLanes(a2);
    out[r + 3] = SumLanes(a3);
  }
  for (; r < n; ++r) {
    const int8_t* row = rows + r * stride;
    __m512i a = _mm512_setzero_si512();
    for (size_t j = 0; j < stride; j += 64) {
      a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512(u + j), _mm512_loadu_si512(row + j));
    }
    out[r] = SumLanes(a);
  }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) uint64_t PopcountAvx512(const uint64_t* code,
                                                                           const uint64_t* qplanes,
                                                                           size_t words,
                                                                           uint32_t qbits) {
  uint64_t total = 0;
  for (uint32_t j = 0; j < qbits; ++j) {
    __m512i acc = _mm512_setzero_si512();
    const uint64_t* q = qplanes + j * words;
    for (size_t w = 0; w < words; w += 8) {
      const __m512i c = _mm512_loadu_si512(code + w);
      const __m512i p = _mm512_loadu_si512(q + w);
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(c, p)));
    }
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, acc);
    uint64_t count = 0;
    for (uint64_t l : lanes) count += l;
    total += count << j;
  }
  return total;
}

}  // namespace dreamdb::vector::internal
