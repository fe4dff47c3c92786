// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/codec/rabitq.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

#include "src/index/kernels/fastscan.h"

namespace dreamdb::vector {
namespace {

constexpr int kGridPoints = 32;

// cos-objective pieces for magnitudes m at scale t: sum (m+1/2)|r|, sum (m+1/2)^2.
double Objective(double ip, double sq) { return sq > 0 ? ip / std::sqrt(sq) : 0; }

}  // namespace

void QuantizeMagnitudes(const float* abs_r, uint32_t d, uint32_t ex_bits, uint8_t* m) {
  const int max_m = static_cast<int>((1u << ex_bits) - 1);
  float vmax = 0;
  for (uint32_t i = 0; i < d; ++i) vmax = std::max(vmax, abs_r[i]);
  std::fill(m, m + d, 0);
  if (vmax <= 0) return;
  const double t_max = static_cast<double>(max_m + 1) / vmax;
  // m_i(t) = min(M, floor(t * a_i)) with t and the product in f32 (a_i >= 0, so the
  // truncating conversion is floor).
  auto level = [max_m](float t, float a) { return std::min(max_m, static_cast<int>(t * a)); };
  // Coarse grid t_k = t_max * k / G, k = 1..G; F evaluated with 8 f32 partial sums (lane
  // i % 8) added in lane order in binary64; ties keep the smaller k.
  int best_k = 1;
  double best = -1;
  for (int k = 1; k <= kGridPoints; ++k) {
    const auto t = static_cast<float>(t_max * k / kGridPoints);
    float acc_ip[8];
    float acc_sq[8];
    internal::GridLanes(abs_r, d, t, max_m, acc_ip, acc_sq);
    double ip = 0;
    double sq = 0;
    for (int j = 0; j < 8; ++j) {
      ip += acc_ip[j];
      sq += acc_sq[j];
    }
    const double obj = Objective(ip, sq);
    if (obj > best) {
      best = obj;
      best_k = k;
    }
  }
  // Exact sweep over the breakpoints in (t_lo, t_hi] (binary64): start at m_i(t_lo), apply
  // increments in order of their breakpoint t = (m_i + 1) / a_i (ties by coordinate), keep
  // the best prefix.
  const auto t_lo = static_cast<float>(t_max * (best_k - 1) / kGridPoints);
  const double t_hi = t_max * std::min(best_k + 1, kGridPoints) / kGridPoints;
  double ip = 0;
  double sq = 0;
  thread_local std::vector<std::pair<double, uint32_t>> events;
  events.clear();
  for (uint32_t i = 0; i < d; ++i) {
    m[i] = static_cast<uint8_t>(best_k == 1 ? 0 : level(t_lo, abs_r[i]));
    const double y = m[i] + 0.5;
    ip += y * abs_r[i];
    sq += y * y;
    if (abs_r[i] <= 0) continue;
    for (int next = m[i] + 1; next <= max_m; ++next) {
      const double t = next / static_cast<double>(abs_r[i]);
      if (t > t_hi) break;
      events.emplace_back(t, i);
    }
  }
  std::sort(events.begin(), events.end());
  best = Objective(ip, sq);
  size_t best_prefix = 0;
  thread_local std::vector<uint8_t> cur;
  cur.assign(m, m + d);
  for (size_t e = 0; e < events.size(); ++e) {
    const uint32_t i = events[e].second;
    const double y0 = cur[i] + 0.5;
    cur[i] = static_cast<uint8_t>(cur[i] + 1);
    const double y1 = y0 + 1;
    ip += abs_r[i];
    sq += y1 * y1 - y0 * y0;
    const double obj = Objective(ip, sq);
    if (obj > best) {
      best = obj;
      best_prefix = e + 1;
    }
  }
  for (size_t e = 0; e < best_prefix; ++e) ++m[events[e].second];
}

CodeFactors ComputeFactors(const float* r, const float* c_rot, const uint8_t* codes, uint32_t d,
                           uint32_t bits, bool top_bit_only, EstimatorMetric metric) {
  double ip_yr = 0;
  double ip_yc = 0;
  double norm_y2 = 0;
  double norm_r2 = 0;
  double ip_rc = 0;
  const double cb = top_bit_only ? 0.5 : ((1u << bits) - 1) * 0.5;
  for (uint32_t i = 0; i < d; ++i) {
    const uint32_t u = top_bit_only ? (codes[i] >> (bits - 1)) : codes[i];
    const double y = u - cb;
    ip_yr += y * r[i];
    ip_yc += y * c_rot[i];
    norm_y2 += y * y;
    norm_r2 += static_cast<double>(r[i]) * r[i];
    ip_rc += static_cast<double>(r[i]) * c_rot[i];
  }
  CodeFactors f;
  double rescale = 0;
  double err = 0;
  if (norm_r2 > 0 && ip_yr > 0) {
    rescale = norm_r2 / ip_yr;
    const double norm_r = std::sqrt(norm_r2);
    const double a = std::min(1.0, ip_yr / (std::sqrt(norm_y2) * norm_r));
    const double tan = std::sqrt(std::max(0.0, 1 - a * a)) / a;
    err = norm_r * tan * kRabitqEpsilon / std::sqrt(static_cast<double>(d) - 1);
  }
  if (metric == EstimatorMetric::kL2) {
    f.add = static_cast<float>(norm_r2 + 2 * rescale * ip_yc);
    f.rescale = static_cast<float>(-2 * rescale);
    f.error = static_cast<float>(2 * err);
  } else {
    f.add = static_cast<float>(-ip_rc + rescale * ip_yc);
    f.rescale = static_cast<float>(-rescale);
    f.error = static_cast<float>(err);
  }
  return f;
}

void EncodeResidual(const float* r, const float* c_rot, uint32_t d, uint32_t bits,
                    EstimatorMetric metric, uint8_t* codes, CodeFactors* f1, CodeFactors* fex) {
  const uint32_t ex = bits - 1;
  if (ex == 0) {
    for (uint32_t i = 0; i < d; ++i) codes[i] = r[i] > 0 ? 1 : 0;
  } else {
    thread_local std::vector<float> abs_r;
    abs_r.resize(d);
    for (uint32_t i = 0; i < d; ++i) abs_r[i] = std::fabs(r[i]);
    QuantizeMagnitudes(abs_r.data(), d, ex, codes);
    const uint32_t half = 1u << ex;
    for (uint32_t i = 0; i < d; ++i) {
      const uint32_t m = codes[i];
      codes[i] = static_cast<uint8_t>(r[i] > 0 ? half + m : half - 1 - m);
    }
  }
  *f1 = ComputeFactors(r, c_rot, codes, d, bits, /*top_bit_only=*/true, metric);
  *fex = ex == 0 ? *f1 : ComputeFactors(r, c_rot, codes, d, bits, false, metric);
}

void BuildQueryLut(const float* x, uint32_t d, QueryLut* out) {
  const uint32_t groups = d / 4;
  out->lut.resize(static_cast<size_t>(groups) * 16);
  thread_local std::vector<float> table;
  thread_local std::vector<float> lows;
  table.resize(static_cast<size_t>(groups) * 16);
  lows.resize(groups);
  float sum = 0;
  for (uint32_t i = 0; i < d; ++i) sum += x[i];
  out->sum = sum;
  float max_range = 0;
  float base = 0;
  for (uint32_t g = 0; g < groups; ++g) {
    const float* xg = x + 4 * g;
    float* t = &table[size_t{g} * 16];
    // t[v] = t[v without its lowest set bit] + x[lowest set bit].
    t[0] = 0;
    for (uint32_t v = 1; v < 16; ++v) t[v] = t[v & (v - 1)] + xg[std::countr_zero(v)];
    float lo = 0;
    float hi = 0;
    for (int j = 0; j < 4; ++j) (xg[j] < 0 ? lo : hi) += xg[j];
    lows[g] = lo;
    base += lo;
    max_range = std::max(max_range, hi - lo);
  }
  out->base = base;
  out->delta = max_range / 255.0f;
  if (max_range <= 0) {
    std::fill(out->lut.begin(), out->lut.end(), 0);
    return;
  }
  const float inv = 1.0f / out->delta;
  for (uint32_t g = 0; g < groups; ++g) {
    const float lo = lows[g];
    const float* t = &table[size_t{g} * 16];
    uint8_t* q = &out->lut[size_t{g} * 16];
    for (int v = 0; v < 16; ++v) {
      const float r = std::nearbyint((t[v] - lo) * inv);
      q[v] = static_cast<uint8_t>(std::clamp(r, 0.0f, 255.0f));
    }
  }
}

void BuildQueryPlanes(const float* x, uint32_t d, uint32_t qbits, QueryPlanes* out) {
  out->qbits = qbits;
  out->words = d / 64;
  out->planes.assign(size_t{qbits} * out->words, 0);
  float vmin = x[0];
  float vmax = x[0];
  float sum = 0;
  for (uint32_t i = 0; i < d; ++i) {
    vmin = std::min(vmin, x[i]);
    vmax = std::max(vmax, x[i]);
    sum += x[i];
  }
  out->sum = sum;
  out->vmin = vmin;
  const auto levels = static_cast<float>((1u << qbits) - 1);
  out->delta = vmax > vmin ? (vmax - vmin) / levels : 0.0f;
  if (out->delta <= 0) return;
  const float inv = 1.0f / out->delta;
  for (uint32_t i = 0; i < d; ++i) {
    const auto v =
        static_cast<uint32_t>(std::clamp(std::nearbyint((x[i] - vmin) * inv), 0.0f, levels));
    for (uint32_t j = 0; j < qbits; ++j) {
      out->planes[size_t{j} * out->words + i / 64] |= uint64_t{(v >> j) & 1} << (i % 64);
    }
  }
}

float PlanesIp(const QueryPlanes& q, const uint64_t* code) {
  uint64_t ones = 0;
  for (uint32_t w = 0; w < q.words; ++w) ones += std::popcount(code[w]);
  const uint64_t dot = PopcountDot(code, q.planes.data(), q.words, q.qbits);
  return q.delta * static_cast<float>(dot) + q.vmin * static_cast<float>(ones);
}

}  // namespace dreamdb::vector
