// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/codec/pq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/parallel.h"
#include "src/index/partition/kmeans.h"

namespace dreamdb::vector {
namespace {

Status Invalid(const std::string& msg) { return Status(StatusCode::kInvalidArgument, msg); }

}  // namespace

uint32_t DefaultPqSubspaces(uint32_t dim) {
  uint32_t m = dim % 4 == 0 ? dim / 4 : (dim % 2 == 0 ? dim / 2 : dim);
  while (m > kPqMaxSubspaces && m % 2 == 0) m /= 2;
  return m;
}

Result<PqCodec> PqCodec::Train(uint32_t dim, uint32_t m, const float* data, size_t n, uint64_t seed,
                               uint32_t iterations, uint32_t threads) {
  if (dim == 0) return Invalid("pq: dim must be > 0");
  if (m == 0) m = DefaultPqSubspaces(dim);
  if (m > kPqMaxSubspaces || dim % m != 0) {
    return Invalid("pq_m " + std::to_string(m) + " must divide dim " + std::to_string(dim) +
                   " and be at most " + std::to_string(kPqMaxSubspaces));
  }
  if (data == nullptr) return Invalid("pq: data pointer is null");
  if (n < kPqCentroids) {
    return Invalid("pq needs at least 16 training vectors, got " + std::to_string(n));
  }
  PqCodec c;
  c.dim_ = dim;
  c.m_ = m;
  c.groups_ = (m + 15) / 16 * 16;
  const uint32_t sd = dim / m;
  c.codebooks_.resize(size_t{m} * kPqCentroids * sd);
  std::vector<float> sub(n * sd);
  KMeansOptions o;
  o.iterations = iterations;
  o.threads = threads;
  for (uint32_t s = 0; s < m; ++s) {
    for (size_t i = 0; i < n; ++i) {
      std::copy_n(data + i * dim + size_t{s} * sd, sd, &sub[i * sd]);
    }
    o.seed = seed ^ (0x5051ULL << 32) ^ s;
    ASSIGN_OR_RETURN(std::vector<float> book, TrainKMeans(sub.data(), n, sd, kPqCentroids, o));
    std::copy(book.begin(), book.end(), &c.codebooks_[size_t{s} * kPqCentroids * sd]);
  }
  return c;
}

Result<PqCodec> PqCodec::FromCodebooks(uint32_t dim, uint32_t m, std::vector<float> codebooks) {
  if (dim == 0 || m == 0 || m > kPqMaxSubspaces || dim % m != 0) {
    return Invalid("pq: " + std::to_string(m) + " sub-spaces must divide dim " +
                   std::to_string(dim) + " and be in 1.." + std::to_string(kPqMaxSubspaces));
  }
  if (codebooks.size() != size_t{dim} * kPqCentroids) {
    return Invalid("pq: codebooks must be m x 16 x dim/m = " + std::to_string(size_t{dim} * 16) +
                   " floats, got " + std::to_string(codebooks.size()));
  }
  for (float v : codebooks) {
    if (!std::isfinite(v)) return Invalid("pq: codebook value is not finite (NaN or inf)");
  }
  PqCodec c;
  c.dim_ = dim;
  c.m_ = m;
  c.groups_ = (m + 15) / 16 * 16;
  c.codebooks_ = std::move(codebooks);
  return c;
}

void PqCodec::Encode(const float* v, uint8_t* code) const {
  const uint32_t sd = sub_dim();
  float d[kPqCentroids];
  for (uint32_t s = 0; s < m_; ++s) {
    L2SqrMany(v + size_t{s} * sd, centroid(s, 0), kPqCentroids, sd, d);
    uint8_t best = 0;
    for (uint8_t j = 1; j < kPqCentroids; ++j) {
      if (d[j] < d[best]) best = j;
    }
    code[s] = best;
  }
}

void PqCodec::EncodeInto(const float* v, uint8_t* block, uint32_t lane) const {
  uint8_t code[kPqMaxSubspaces];
  Encode(v, code);
  for (uint32_t s = 0; s < m_; ++s) SetFastScanNibble(block, s, lane, code[s]);
}

void PqCodec::Decode(const uint8_t* block, uint32_t lane, float* out) const {
  const uint32_t sd = sub_dim();
  for (uint32_t s = 0; s < m_; ++s) {
    const float* c = centroid(s, GetFastScanNibble(block, s, lane));
    std::copy_n(c, sd, out + size_t{s} * sd);
  }
}

void PqCodec::Table(const float* x, bool l2, float* table) const {
  const uint32_t sd = sub_dim();
  for (uint32_t s = 0; s < m_; ++s) {
    float* t = table + size_t{s} * kPqCentroids;
    if (l2) {
      L2SqrMany(x + size_t{s} * sd, centroid(s, 0), kPqCentroids, sd, t);
    } else {
      DotMany(x + size_t{s} * sd, centroid(s, 0), kPqCentroids, sd, t);
      for (uint32_t j = 0; j < kPqCentroids; ++j) t[j] = -t[j];
    }
  }
}

void PqCodec::QuantizeTable(const float* table, uint8_t* q, float* delta, float* base) const {
  float range = 0;
  double mins = 0;
  for (uint32_t s = 0; s < m_; ++s) {
    const float* t = table + size_t{s} * kPqCentroids;
    const auto [lo, hi] = std::minmax_element(t, t + kPqCentroids);
    range = std::max(range, *hi - *lo);
    mins += *lo;
  }
  const float step = range > 0 ? range / 255.0f : 1.0f;
  std::fill(q, q + BlockBytes(), 0);
  for (uint32_t s = 0; s < m_; ++s) {
    const float* t = table + size_t{s} * kPqCentroids;
    const float lo = *std::min_element(t, t + kPqCentroids);
    for (uint32_t j = 0; j < kPqCentroids; ++j) {
      const long v = std::lrint((t[j] - lo) / step);
      q[size_t{s} * 16 + j] = static_cast<uint8_t>(std::clamp<long>(v, 0, 255));
    }
  }
  *delta = step;
  *base = static_cast<float>(mins);
}

}  // namespace dreamdb::vector
