// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Distance kernels. Per-ISA code is compiled with function-level target attributes (the
// build does not use -march=native), and the level is picked once at run time.
//
// The many-vs-many kernels use a 4x4 register tile: four rows of `a` against four rows of
// `b`, sixteen accumulators, so every loaded vector feeds four FMAs. The driver walks `b`
// in blocks that stay in L2 and `a` in groups of four that stay in L1.

#include "src/index/kernels/distance.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "src/base/encoding.h"

namespace dreamdb::vector {

std::string_view SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

namespace {

// ---------------------------------------------------------------------------------------
// Scalar kernels. Four independent partial sums so the compiler can vectorize/pipeline.

float L2SqrScalar(const float* a, const float* b, size_t dim) {
  float s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    for (int j = 0; j < 4; ++j) {
      const float d = a[i + j] - b[i + j];
      s[j] += d * d;
    }
  }
  for (; i < dim; ++i) {
    const float d = a[i] - b[i];
    s[0] += d * d;
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float DotScalar(const float* a, const float* b, size_t dim) {
  float s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    for (int j = 0; j < 4; ++j) s[j] += a[i + j] * b[i + j];
  }
  for (; i < dim; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// out[r] = dot(q, rows[r]) / L2Sqr(q, rows[r]) for four rows.
void DotRows4Scalar(const float* q, const float* const* rows, size_t dim, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = DotScalar(q, rows[r], dim);
}
void L2Rows4Scalar(const float* q, const float* const* rows, size_t dim, float* out) {
  for (int r = 0; r < 4; ++r) out[r] = L2SqrScalar(q, rows[r], dim);
}

// out[r*4 + c] = dot(a[r], b[c]).
void DotTile4x4Scalar(const float* const* a, const float* const* b, size_t dim, float* out) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) out[r * 4 + c] = DotScalar(a[r], b[c], dim);
  }
}

// ---------------------------------------------------------------------------------------
// AVX2 + FMA kernels.

__attribute__((target("avx2,fma"))) inline float HSum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, sums);
  sums = _mm_add_ss(sums, sh);
  return _mm_cvtss_f32(sums);
}

__attribute__((target("avx2,fma"))) float L2SqrAvx2(const float* a, const float* b, size_t dim) {
  __m256 s0 = _mm256_setzero_ps();
  __m256 s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
  }
  float s = HSum256(_mm256_add_ps(s0, s1));
  for (; i < dim; ++i) {
    const float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, size_t dim) {
  __m256 s0 = _mm256_setzero_ps();
  __m256 s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= dim; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  }
  float s = HSum256(_mm256_add_ps(s0, s1));
  for (; i < dim; ++i) s += a[i] * b[i];
  return s;
}

// One query against four rows: the query is loaded once per step for four FMAs, and the
// four chains hide the FMA latency.
__attribute__((target("avx2,fma"))) void DotRows4Avx2(const float* q, const float* const* rows,
                                                      size_t dim, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    for (int r = 0; r < 4; ++r) acc[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[r] + i), acc[r]);
  }
  for (int r = 0; r < 4; ++r) {
    float s = HSum256(acc[r]);
    for (size_t j = i; j < dim; ++j) s += q[j] * rows[r][j];
    out[r] = s;
  }
}

__attribute__((target("avx2,fma"))) void L2Rows4Avx2(const float* q, const float* const* rows,
                                                     size_t dim, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    for (int r = 0; r < 4; ++r) {
      const __m256 d = _mm256_sub_ps(qv, _mm256_loadu_ps(rows[r] + i));
      acc[r] = _mm256_fmadd_ps(d, d, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float s = HSum256(acc[r]);
    for (size_t j = i; j < dim; ++j) s += (q[j] - rows[r][j]) * (q[j] - rows[r][j]);
    out[r] = s;
  }
}

__attribute__((target("avx2,fma"))) void DotTile4x4Avx2(const float* const* a,
                                                        const float* const* b, size_t dim,
                                                        float* out) {
  __m256 acc[4][4];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 b0 = _mm256_loadu_ps(b[0] + i);
    const __m256 b1 = _mm256_loadu_ps(b[1] + i);
    const __m256 b2 = _mm256_loadu_ps(b[2] + i);
    const __m256 b3 = _mm256_loadu_ps(b[3] + i);
    for (int r = 0; r < 4; ++r) {
      const __m256 av = _mm256_loadu_ps(a[r] + i);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(av, b3, acc[r][3]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      float s = HSum256(acc[r][c]);
      for (size_t j = i; j < dim; ++j) s += a[r][j] * b[c][j];
      out[r * 4 + c] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------
// AVX-512 kernels. Tails use masked loads, so there is no scalar remainder loop.

#define DREAMDB_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

// Horizontal sum (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header).
DREAMDB_AVX512_TARGET inline float HSum512(__m512 v) {
  // The masked extract takes an explicit (zero) source, unlike the plain one.
  const __m512d vd = _mm512_castps_pd(v);
  const __m256 lo = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, vd, 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, vd, 1));
  __m256 s = _mm256_add_ps(lo, hi);
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

DREAMDB_AVX512_TARGET float L2SqrAvx512(const float* a, const float* b, size_t dim) {
  __m512 s0 = _mm512_setzero_ps();
  __m512 s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps();
  __m512 s3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    const __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    const __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
    s2 = _mm512_fmadd_ps(d2, d2, s2);
    s3 = _mm512_fmadd_ps(d3, d3, s3);
  }
  s0 = _mm512_add_ps(s0, s2);
  s1 = _mm512_add_ps(s1, s3);
  for (; i + 32 <= dim; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  for (; i + 16 <= dim; i += 16) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1);
    const __m512 d0 =
        _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(d0, d0, s1);
  }
  return HSum512(_mm512_add_ps(s0, s1));
}

DREAMDB_AVX512_TARGET float DotAvx512(const float* a, const float* b, size_t dim) {
  __m512 s0 = _mm512_setzero_ps();
  __m512 s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps();
  __m512 s3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  s0 = _mm512_add_ps(s0, s2);
  s1 = _mm512_add_ps(s1, s3);
  for (; i + 32 <= dim; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= dim; i += 16) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return HSum512(_mm512_add_ps(s0, s1));
}

DREAMDB_AVX512_TARGET void DotRows4Avx512(const float* q, const float* const* rows, size_t dim,
                                          float* out) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 qv = _mm512_loadu_ps(q + i);
    for (int r = 0; r < 4; ++r) acc[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(rows[r] + i), acc[r]);
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1);
    const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
    for (int r = 0; r < 4; ++r) {
      acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, rows[r] + i), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = HSum512(acc[r]);
}

DREAMDB_AVX512_TARGET void L2Rows4Avx512(const float* q, const float* const* rows, size_t dim,
                                         float* out) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 qv = _mm512_loadu_ps(q + i);
    for (int r = 0; r < 4; ++r) {
      const __m512 d = _mm512_sub_ps(qv, _mm512_loadu_ps(rows[r] + i));
      acc[r] = _mm512_fmadd_ps(d, d, acc[r]);
    }
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1);
    const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
    for (int r = 0; r < 4; ++r) {
      const __m512 d = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, rows[r] + i));
      acc[r] = _mm512_fmadd_ps(d, d, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = HSum512(acc[r]);
}

DREAMDB_AVX512_TARGET void DotTile4x4Avx512(const float* const* a, const float* const* b,
                                            size_t dim, float* out) {
  __m512 acc[4][4];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 b0 = _mm512_loadu_ps(b[0] + i);
    const __m512 b1 = _mm512_loadu_ps(b[1] + i);
    const __m512 b2 = _mm512_loadu_ps(b[2] + i);
    const __m512 b3 = _mm512_loadu_ps(b[3] + i);
    for (int r = 0; r < 4; ++r) {
      const __m512 av = _mm512_loadu_ps(a[r] + i);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
    }
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1);
    const __m512 b0 = _mm512_maskz_loadu_ps(m, b[0] + i);
    const __m512 b1 = _mm512_maskz_loadu_ps(m, b[1] + i);
    const __m512 b2 = _mm512_maskz_loadu_ps(m, b[2] + i);
    const __m512 b3 = _mm512_maskz_loadu_ps(m, b[3] + i);
    for (int r = 0; r < 4; ++r) {
      const __m512 av = _mm512_maskz_loadu_ps(m, a[r] + i);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
    }
  }
  // Reduce 16 vectors to 16 scalars.
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) out[r * 4 + c] = HSum512(acc[r][c]);
  }
}

#undef DREAMDB_AVX512_TARGET

// ---------------------------------------------------------------------------------------
// Dispatch.

struct Kernels {
  float (*l2)(const float*, const float*, size_t);
  float (*dot)(const float*, const float*, size_t);
  void (*tile)(const float* const*, const float* const*, size_t, float*);
  void (*dot_rows4)(const float*, const float* const*, size_t, float*);
  void (*l2_rows4)(const float*, const float* const*, size_t, float*);
};

constexpr Kernels kScalarKernels{L2SqrScalar, DotScalar, DotTile4x4Scalar, DotRows4Scalar,
                                 L2Rows4Scalar};
constexpr Kernels kAvx2Kernels{L2SqrAvx2, DotAvx2, DotTile4x4Avx2, DotRows4Avx2, L2Rows4Avx2};
constexpr Kernels kAvx512Kernels{L2SqrAvx512, DotAvx512, DotTile4x4Avx512, DotRows4Avx512,
                                 L2Rows4Avx512};

// The most CpuSimdLevel() reports: tests lower it to run as on a CPU without AVX-512 or
// AVX2 (CapCpuSimdLevelForTesting). A constant-initialized atomic, so it may be set from a
// static initializer of another translation unit.
std::atomic<int>& CpuCap() {
  static constinit std::atomic<int> cap{static_cast<int>(SimdLevel::kAvx512)};
  return cap;
}

SimdLevel DetectCpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return SimdLevel::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

SimdLevel InitialLevel() {
  SimdLevel level = CpuSimdLevel();
  const char* env = std::getenv("DREAMDB_SIMD");  // NOLINT(concurrency-mt-unsafe)
  if (env != nullptr && *env != '\0') {
    const std::string_view v(env);
    SimdLevel want = level;
    if (v == "scalar") {
      want = SimdLevel::kScalar;
    } else if (v == "avx2") {
      want = SimdLevel::kAvx2;
    } else if (v == "avx512") {
      want = SimdLevel::kAvx512;
    }
    level = std::min(level, want);
  }
  return level;
}

std::atomic<int>& LevelSlot() {
  static std::atomic<int> slot{static_cast<int>(InitialLevel())};
  return slot;
}

const Kernels& Active() {
  switch (static_cast<SimdLevel>(LevelSlot().load(std::memory_order_relaxed))) {
    case SimdLevel::kAvx512:
      return kAvx512Kernels;
    case SimdLevel::kAvx2:
      return kAvx2Kernels;
    case SimdLevel::kScalar:
      break;
  }
  return kScalarKernels;
}

// Rows of `b` per cache block (768-d f32: 128 rows = 384 KiB, fits L2).
size_t BlockRows(size_t dim) {
  const size_t bytes = std::max<size_t>(dim, 1) * sizeof(float);
  return std::clamp<size_t>((size_t{384} << 10) / bytes / 4 * 4, 4, 1024);
}

// out[i*ldo + j] = dot(a_i, b_j) for i < na, j < nb.
void PairwiseDotImpl(const Kernels& kern, const float* a, size_t na, const float* b, size_t nb,
                     size_t dim, float* out, size_t ldo) {
  const size_t block = BlockRows(dim);
  float tile[16];
  for (size_t j0 = 0; j0 < nb; j0 += block) {
    const size_t j1 = std::min(nb, j0 + block);
    for (size_t i = 0; i < na; i += 4) {
      const float* ap[4];
      for (size_t r = 0; r < 4; ++r) ap[r] = a + std::min(i + r, na - 1) * dim;
      const size_t nr = std::min<size_t>(4, na - i);
      for (size_t j = j0; j < j1; j += 4) {
        const float* bp[4];
        for (size_t c = 0; c < 4; ++c) bp[c] = b + std::min(j + c, j1 - 1) * dim;
        const size_t nc = std::min<size_t>(4, j1 - j);
        kern.tile(ap, bp, dim, tile);
        for (size_t r = 0; r < nr; ++r) {
          for (size_t c = 0; c < nc; ++c) out[(i + r) * ldo + j + c] = tile[r * 4 + c];
        }
      }
    }
  }
}

}  // namespace

SimdLevel CpuSimdLevel() {
  static const SimdLevel detected = DetectCpu();
  return std::min(detected, static_cast<SimdLevel>(CpuCap().load(std::memory_order_relaxed)));
}

SimdLevel DetectedSimdLevel() {
  static const SimdLevel detected = DetectCpu();
  return detected;
}

SimdLevel CapCpuSimdLevelForTesting(SimdLevel max) {
  CpuCap().store(static_cast<int>(max), std::memory_order_relaxed);
  const SimdLevel cpu = CpuSimdLevel();
  if (ActiveSimdLevel() > cpu) LevelSlot().store(static_cast<int>(cpu), std::memory_order_relaxed);
  return cpu;
}

SimdLevel ActiveSimdLevel() {
  return static_cast<SimdLevel>(LevelSlot().load(std::memory_order_relaxed));
}

SimdLevel SetSimdLevelForTesting(SimdLevel level) {
  const SimdLevel set = std::min(level, CpuSimdLevel());
  LevelSlot().store(static_cast<int>(set), std::memory_order_relaxed);
  return set;
}

float L2Sqr(const float* a, const float* b, size_t dim) { return Active().l2(a, b, dim); }

float Dot(const float* a, const float* b, size_t dim) { return Active().dot(a, b, dim); }

float NormSqr(const float* a, size_t dim) { return Active().dot(a, a, dim); }

namespace {

// Four rows per kernel call; the tail repeats the last row and drops the extra results.
template <typename Rows4>
void ManyRows(Rows4 rows4, const float* q, const float* data, size_t n, size_t dim, float* out) {
  size_t i = 0;
  const float* rows[4];
  for (; i + 4 <= n; i += 4) {
    for (size_t r = 0; r < 4; ++r) rows[r] = data + (i + r) * dim;
    rows4(q, rows, dim, out + i);
  }
  if (i < n) {
    float tmp[4];
    for (size_t r = 0; r < 4; ++r) rows[r] = data + std::min(i + r, n - 1) * dim;
    rows4(q, rows, dim, tmp);
    for (size_t r = 0; i + r < n; ++r) out[i + r] = tmp[r];
  }
}

}  // namespace

void L2SqrMany(const float* q, const float* data, size_t n, size_t dim, float* out) {
  ManyRows(Active().l2_rows4, q, data, n, dim, out);
}

void DotMany(const float* q, const float* data, size_t n, size_t dim, float* out) {
  ManyRows(Active().dot_rows4, q, data, n, dim, out);
}

void PairwiseDot(const float* a, size_t na, const float* b, size_t nb, size_t dim, float* out) {
  if (na == 0 || nb == 0) return;
  PairwiseDotImpl(Active(), a, na, b, nb, dim, out, nb);
}

void PairwiseL2Sqr(const float* a, size_t na, const float* b, size_t nb, size_t dim, float* out) {
  if (na == 0 || nb == 0) return;
  const Kernels& k = Active();
  PairwiseDotImpl(k, a, na, b, nb, dim, out, nb);
  std::vector<float> bn(nb);
  for (size_t j = 0; j < nb; ++j) bn[j] = k.dot(b + j * dim, b + j * dim, dim);
  for (size_t i = 0; i < na; ++i) {
    const float an = k.dot(a + i * dim, a + i * dim, dim);
    float* row = out + i * nb;
    for (size_t j = 0; j < nb; ++j) row[j] = std::max(0.0f, an + bn[j] - 2.0f * row[j]);
  }
}

void AssignNearest(const float* centroids, size_t k, const float* data, size_t n, size_t dim,
                   Metric metric, uint32_t* out, float* dist_out) {
  if (n == 0 || k == 0) return;
  const Kernels& kern = Active();
  const bool ip = metric == Metric::kInnerProduct;
  std::vector<float> cn(k);
  if (!ip) {
    for (size_t j = 0; j < k; ++j) cn[j] = kern.dot(centroids + j * dim, centroids + j * dim, dim);
  }
  // Rows per chunk: keep the dot buffer around 4 MiB whatever k is.
  const size_t rows = std::clamp<size_t>((size_t{1} << 20) / k / 4 * 4, 4, 256);
  std::vector<float> dots(rows * k);
  for (size_t i0 = 0; i0 < n; i0 += rows) {
    const size_t m = std::min(rows, n - i0);
    PairwiseDotImpl(kern, data + i0 * dim, m, centroids, k, dim, dots.data(), k);
    for (size_t r = 0; r < m; ++r) {
      const float* row = dots.data() + r * k;
      uint32_t best = 0;
      float best_d = std::numeric_limits<float>::infinity();
      for (size_t j = 0; j < k; ++j) {
        // L2: |x|² is constant per row, so compare |c|² - 2x·c; IP: compare -x·c.
        const float d = ip ? -row[j] : cn[j] - 2.0f * row[j];
        if (d < best_d) {
          best_d = d;
          best = static_cast<uint32_t>(j);
        }
      }
      out[i0 + r] = best;
      if (dist_out != nullptr) {
        if (ip) {
          dist_out[i0 + r] = best_d;
        } else {
          const float* x = data + (i0 + r) * dim;
          dist_out[i0 + r] = std::max(0.0f, best_d + kern.dot(x, x, dim));
        }
      }
    }
  }
}

}  // namespace dreamdb::vector
