// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/vector/ivf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "src/base/encoding.h"
#include "src/vector/byte_io.h"
#include "src/vector/fastscan.h"
#include "src/vector/parallel.h"
#include "src/vector/rng.h"

namespace dreamdb::vector {
namespace {

static_assert(std::endian::native == std::endian::little, "byte formats assume little-endian");

constexpr char kModelMagic[4] = {'D', 'V', 'I', 'M'};
constexpr char kCellMagic[4] = {'D', 'V', 'I', 'C'};
constexpr uint16_t kModelVersion = 1;
constexpr uint16_t kCellVersion = 1;
constexpr uint16_t kCellVersionPq = 2;  // pq4 cell codes (spec/20 §8.3)
constexpr size_t kModelHeaderBytes = 32;
constexpr size_t kCellHeaderBytes = 16;
constexpr size_t kFactorBytes = 3 * kFastScanBlock * sizeof(float);  // add, rescale, error

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
Status Corrupt(std::string msg) { return Status(StatusCode::kCorrupt, std::move(msg)); }

EstimatorMetric EstMetric(Metric m) {
  return m == Metric::kL2 ? EstimatorMetric::kL2 : EstimatorMetric::kInnerProduct;
}

Status CheckVectors(const float* v, size_t n, uint32_t dim, const char* what) {
  if (n > 0 && v == nullptr) return Invalid(std::string(what) + " pointer is null");
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < dim; ++j) {
      if (!std::isfinite(v[i * dim + j])) {
        return Invalid(std::string(what) + " row " + std::to_string(i) + " column " +
                       std::to_string(j) + " is not finite (NaN or inf)");
      }
    }
  }
  return Status::Ok();
}

// Writes v / |v| to out; false for a zero vector.
bool Normalize(const float* v, uint32_t dim, float* out) {
  double s = 0;
  for (uint32_t j = 0; j < dim; ++j) s += static_cast<double>(v[j]) * v[j];
  if (!(s > 0)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (uint32_t j = 0; j < dim; ++j) out[j] = v[j] * inv;
  return true;
}

Status CheckCosineNonZero(const float* v, size_t n, uint32_t dim, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    bool zero = true;
    for (uint32_t j = 0; j < dim && zero; ++j) zero = v[i * dim + j] == 0;
    if (zero) {
      return Invalid(std::string(what) + " row " + std::to_string(i) +
                     " is a zero vector, which has no cosine similarity");
    }
  }
  return Status::Ok();
}

struct CellHeader {
  uint32_t bits;
  uint32_t d;
  uint32_t count;
};

}  // namespace

uint32_t PqRerankCandidates(uint32_t k) { return std::max<uint32_t>(200, 20 * k); }

uint32_t DefaultNprobe(uint32_t num_cells) {
  const auto scaled = static_cast<uint32_t>(std::lround(0.6 * std::sqrt(num_cells)));
  return std::min(num_cells, std::max<uint32_t>(8, scaled));
}

std::string_view AlgorithmName(IvfParams::Algorithm algorithm) {
  switch (algorithm) {
    case IvfParams::Algorithm::kIvf:
      return "ivf";
    case IvfParams::Algorithm::kImi:
      return "imi";
    case IvfParams::Algorithm::kLsh:
      return "lsh";
  }
  return "unknown";
}

Result<IvfParams::Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "ivf") return IvfParams::Algorithm::kIvf;
  if (name == "imi") return IvfParams::Algorithm::kImi;
  if (name == "lsh") return IvfParams::Algorithm::kLsh;
  return Invalid("unknown index algorithm " + Quote(name) + " (expected ivf, imi or lsh)");
}

std::string_view QuantizerName(IvfParams::Quantizer quantizer) {
  switch (quantizer) {
    case IvfParams::Quantizer::kRaBitQ:
      return "rabitq";
    case IvfParams::Quantizer::kPq4:
      return "pq4";
  }
  return "unknown";
}

Result<IvfParams::Quantizer> ParseQuantizer(std::string_view name) {
  if (name == "rabitq") return IvfParams::Quantizer::kRaBitQ;
  if (name == "pq4") return IvfParams::Quantizer::kPq4;
  return Invalid("unknown quantizer " + Quote(name) + " (expected rabitq or pq4)");
}

namespace {

using Algorithm = IvfParams::Algorithm;
constexpr uint16_t kModelVersionAlgorithms = 2;  // imi and lsh models (spec/20 §4)
constexpr uint16_t kModelVersionPq = 3;          // pq4 models, any algorithm (spec/20 §8.2)
using Quantizer = IvfParams::Quantizer;
constexpr uint32_t kMaxImiSize = 4096;
constexpr uint32_t kMaxLshPlanes = 16;
constexpr uint64_t kLshStream = 0x4c534850;      // "LSHP"
constexpr uint64_t kImiSecondSeed = 0x494d4932;  // "IMI2"

Status CheckParams(const IvfParams& params) {
  if (params.dim == 0) return Invalid("IvfParams.dim must be > 0");
  if (params.quantizer != Quantizer::kRaBitQ && params.quantizer != Quantizer::kPq4) {
    return Invalid("unknown quantizer " + std::to_string(static_cast<unsigned>(params.quantizer)));
  }
  if (params.quantizer == Quantizer::kRaBitQ && (params.bits < 1 || params.bits > 8)) {
    return Invalid("IvfParams.bits must be in 1..8, got " + std::to_string(params.bits));
  }
  if (params.rotation != RotationKind::kHadamard && params.rotation != RotationKind::kDense) {
    return Invalid("unknown rotation kind");
  }
  if (params.algorithm != Algorithm::kIvf && params.algorithm != Algorithm::kImi &&
      params.algorithm != Algorithm::kLsh) {
    return Invalid("unknown index algorithm " +
                   std::to_string(static_cast<unsigned>(params.algorithm)));
  }
  if (params.algorithm == Algorithm::kImi && params.dim < 2) {
    return Invalid("imi needs dim >= 2 (the vector is split in two halves), got dim " +
                   std::to_string(params.dim));
  }
  return Status::Ok();
}

// Copies coordinates [from, from + len) of n rows of width dim into a dense n x len array.
std::vector<float> Columns(const float* data, size_t n, uint32_t dim, uint32_t from, uint32_t len) {
  std::vector<float> out(n * len);
  for (size_t i = 0; i < n; ++i) {
    std::copy(data + i * dim + from, data + i * dim + from + len, &out[i * len]);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- model

Status IvfModel::Init() {
  const uint32_t dim = params_.dim;
  const uint32_t d = rotation_->padded_dim();
  i8_stride_ = (dim + 63) / 64 * 64;
  float cmax = 0;
  for (float v : centroids_) cmax = std::max(cmax, std::fabs(v));
  i8_scale_ = cmax > 0 ? cmax / 127.0f : 1.0f;
  // int8 ranking copies: ivf only (imi and lsh rank cells without scanning centres).
  const uint32_t i8_cells = params_.algorithm == Algorithm::kIvf ? params_.num_cells : 0;
  centroids_i8_.assign(size_t{i8_cells} * i8_stride_, 0);
  centroid_i8_sums_.assign(i8_cells, 0);
  for (uint32_t c = 0; c < i8_cells; ++c) {
    for (uint32_t j = 0; j < dim; ++j) {
      const auto v = static_cast<int8_t>(std::lrint(centroid(c)[j] / i8_scale_));
      centroids_i8_[size_t{c} * i8_stride_ + j] = v;
      centroid_i8_sums_[c] += v;
    }
  }
  lsh_plane_offset_.resize(lsh_bits_);
  for (uint32_t b = 0; b < lsh_bits_; ++b) {
    lsh_plane_offset_[b] = Dot(&lsh_planes_[size_t{b} * dim], lsh_offset_.data(), dim);
  }
  centroid_norms_.resize(params_.num_cells);
  const bool rotate = pq_ == nullptr;  // pq4 codes do not use the rotation
  rotated_.assign(rotate ? size_t{params_.num_cells} * d : 0, 0);
  for (uint32_t c = 0; c < params_.num_cells; ++c) {
    centroid_norms_[c] = NormSqr(centroid(c), dim);
    if (rotate) rotation_->Apply(centroid(c), &rotated_[size_t{c} * d]);
  }
  return Status::Ok();
}

Result<std::shared_ptr<const IvfModel>> IvfModel::WithPq(PqCodec codec) const {
  if (codec.dim() != params_.dim) {
    return Invalid("pq codec dim " + std::to_string(codec.dim()) + " does not match the model's " +
                   std::to_string(params_.dim));
  }
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params_;
  m->params_.quantizer = Quantizer::kPq4;
  m->params_.bits = 4;
  m->params_.rotation = RotationKind::kHadamard;
  m->params_.pq_subspaces = codec.m();
  m->centroids_ = centroids_;
  m->imi_s_ = imi_s_;
  m->imi_h1_ = imi_h1_;
  m->imi_a_ = imi_a_;
  m->imi_b_ = imi_b_;
  m->lsh_bits_ = lsh_bits_;
  m->lsh_planes_ = lsh_planes_;
  m->lsh_offset_ = lsh_offset_;
  m->pq_ = std::make_unique<const PqCodec>(std::move(codec));
  ASSIGN_OR_RETURN(m->rotation_,
                   Rotation::Create(RotationKind::kHadamard, params_.dim, params_.seed));
  RETURN_IF_ERROR(m->Init());
  return std::shared_ptr<const IvfModel>(std::move(m));
}

namespace {

// Normalised copy for cosine (the caller checked for zero vectors), else nullptr.
std::vector<float> NormalizedCopy(const IvfParams& params, const float* sample, size_t n) {
  std::vector<float> normed;
  if (params.metric != Metric::kCosine) return normed;
  normed.resize(n * params.dim);
  for (size_t i = 0; i < n; ++i) {
    Normalize(sample + i * params.dim, params.dim, &normed[i * params.dim]);
  }
  return normed;
}

Result<std::shared_ptr<const IvfModel>> TrainImi(const IvfParams& params, const float* sample,
                                                 size_t n) {
  uint32_t s = 0;
  if (params.num_cells == 0) {
    s = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(2 * std::pow(n, 0.25))));
  } else {
    s = static_cast<uint32_t>(std::ceil(std::sqrt(static_cast<double>(params.num_cells))));
    while (uint64_t{s} * s < params.num_cells) ++s;
    while (s > 1 && uint64_t{s - 1} * (s - 1) >= params.num_cells) --s;
  }
  if (s > kMaxImiSize) {
    return Invalid("imi codebook size " + std::to_string(s) + " exceeds " +
                   std::to_string(kMaxImiSize) + " (num_cells " + std::to_string(params.num_cells) +
                   ")");
  }
  s = static_cast<uint32_t>(std::min<size_t>(s, n));
  if (params.metric == Metric::kCosine) {
    RETURN_IF_ERROR(CheckCosineNonZero(sample, n, params.dim, "training vector"));
  }
  const std::vector<float> normed = NormalizedCopy(params, sample, n);
  const float* data = normed.empty() ? sample : normed.data();
  const uint32_t h1 = (params.dim + 1) / 2;
  const uint32_t h2 = params.dim - h1;
  KMeansOptions ko = params.kmeans;
  ko.spherical = false;  // the halves of unit vectors are not unit vectors
  ko.seed = params.seed;
  std::vector<float> half = Columns(data, n, params.dim, 0, h1);
  ASSIGN_OR_RETURN(std::vector<float> a, TrainKMeans(half.data(), n, h1, s, ko));
  half = Columns(data, n, params.dim, h1, h2);
  ko.seed = params.seed ^ kImiSecondSeed;
  ASSIGN_OR_RETURN(std::vector<float> b, TrainKMeans(half.data(), n, h2, s, ko));
  return IvfModel::FromImiCodebooks(params, s, std::move(a), std::move(b));
}

Result<std::shared_ptr<const IvfModel>> TrainLsh(const IvfParams& params, const float* sample,
                                                 size_t n) {
  uint32_t b = 0;
  if (params.num_cells == 0) {
    b = static_cast<uint32_t>(std::lround(std::log2(static_cast<double>(n)) / 2));
    b = std::clamp<uint32_t>(b, 1, kMaxLshPlanes);
  } else {
    while (b < 32 && (uint64_t{1} << b) < params.num_cells) ++b;
    b = std::max<uint32_t>(b, 1);
  }
  if (b > kMaxLshPlanes) {
    return Invalid("lsh with " + std::to_string(b) + " hyperplanes (num_cells " +
                   std::to_string(params.num_cells) + ") exceeds the maximum of " +
                   std::to_string(kMaxLshPlanes) + " (65536 cells)");
  }
  if (params.metric == Metric::kCosine) {
    RETURN_IF_ERROR(CheckCosineNonZero(sample, n, params.dim, "training vector"));
  }
  const uint32_t dim = params.dim;
  const std::vector<float> normed = NormalizedCopy(params, sample, n);
  const float* data = normed.empty() ? sample : normed.data();
  std::vector<float> planes(size_t{b} * dim);
  Rng rng(params.seed, kLshStream);
  for (float& v : planes) v = static_cast<float>(rng.Gaussian());
  std::vector<double> mean(dim, 0);
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < dim; ++j) mean[j] += data[i * dim + j];
  }
  std::vector<float> offset(dim);
  for (uint32_t j = 0; j < dim; ++j) offset[j] = static_cast<float>(mean[j] / n);
  // Cell centres: mean of the sample vectors of each pattern (offset when empty).
  const size_t cells = size_t{1} << b;
  std::vector<double> sums(cells * dim, 0);
  std::vector<size_t> counts(cells, 0);
  std::vector<float> off_dot(b);
  for (uint32_t p = 0; p < b; ++p) off_dot[p] = Dot(&planes[size_t{p} * dim], offset.data(), dim);
  for (size_t i = 0; i < n; ++i) {
    uint32_t pattern = 0;
    for (uint32_t p = 0; p < b; ++p) {
      if (Dot(&planes[size_t{p} * dim], data + i * dim, dim) - off_dot[p] > 0) pattern |= 1u << p;
    }
    ++counts[pattern];
    for (uint32_t j = 0; j < dim; ++j) sums[pattern * dim + j] += data[i * dim + j];
  }
  std::vector<float> centres(cells * dim);
  for (size_t c = 0; c < cells; ++c) {
    for (uint32_t j = 0; j < dim; ++j) {
      centres[c * dim + j] =
          counts[c] == 0 ? offset[j] : static_cast<float>(sums[c * dim + j] / counts[c]);
    }
  }
  return IvfModel::FromLsh(params, std::move(planes), std::move(offset), std::move(centres));
}

}  // namespace

Result<std::shared_ptr<const IvfModel>> IvfModel::Train(const IvfParams& params,
                                                        const float* sample, size_t n) {
  RETURN_IF_ERROR(CheckParams(params));
  if (params.quantizer == Quantizer::kPq4) {
    const uint32_t m =
        params.pq_subspaces == 0 ? DefaultPqSubspaces(params.dim) : params.pq_subspaces;
    if (m > kPqMaxSubspaces || params.dim % m != 0) {
      return Invalid("IvfParams.pq_subspaces " + std::to_string(m) + " must divide dim " +
                     std::to_string(params.dim) + " and be at most " +
                     std::to_string(kPqMaxSubspaces));
    }
    if (n < kPqCentroids) {
      return Invalid("pq4 training needs at least 16 vectors, got " + std::to_string(n));
    }
    IvfParams coarse = params;
    coarse.quantizer = Quantizer::kRaBitQ;
    coarse.bits = 4;
    coarse.rotation = RotationKind::kHadamard;
    coarse.pq_subspaces = 0;
    ASSIGN_OR_RETURN(std::shared_ptr<const IvfModel> model, Train(coarse, sample, n));
    const uint32_t dim = params.dim;
    std::vector<uint32_t> cell(n);
    RETURN_IF_ERROR(model->Assign(sample, n, cell.data(), params.kmeans.threads));
    // Residuals o - c (cosine: of the normalised vector), as EncodePqInto computes them.
    std::vector<float> residual(n * dim);
    for (size_t i = 0; i < n; ++i) {
      float* r = &residual[i * dim];
      if (params.metric == Metric::kCosine) {
        Normalize(sample + i * dim, dim, r);
      } else {
        std::copy(sample + i * dim, sample + (i + 1) * dim, r);
      }
      const float* c = model->centroid(cell[i]);
      for (uint32_t j = 0; j < dim; ++j) r[j] -= c[j];
    }
    ASSIGN_OR_RETURN(PqCodec codec,
                     PqCodec::Train(dim, m, residual.data(), n, params.seed,
                                    params.kmeans.iterations, params.kmeans.threads));
    return model->WithPq(std::move(codec));
  }
  if (n == 0) return Invalid("IVF training needs at least one vector, got 0");
  RETURN_IF_ERROR(CheckVectors(sample, n, params.dim, "training vector"));
  if (params.algorithm == Algorithm::kImi) return TrainImi(params, sample, n);
  if (params.algorithm == Algorithm::kLsh) return TrainLsh(params, sample, n);
  uint32_t k = params.num_cells;
  if (k == 0) k = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(std::sqrt(n))));
  k = static_cast<uint32_t>(std::min<size_t>(k, n));
  std::vector<float> normed;
  const float* data = sample;
  if (params.metric == Metric::kCosine) {
    RETURN_IF_ERROR(CheckCosineNonZero(sample, n, params.dim, "training vector"));
    normed.resize(n * params.dim);
    for (size_t i = 0; i < n; ++i) {
      Normalize(sample + i * params.dim, params.dim, &normed[i * params.dim]);
    }
    data = normed.data();
  }
  KMeansOptions ko = params.kmeans;
  ko.seed = params.seed;
  ko.spherical = params.metric == Metric::kCosine;
  ASSIGN_OR_RETURN(std::vector<float> centroids, TrainKMeans(data, n, params.dim, k, ko));
  IvfParams p = params;
  p.num_cells = k;
  return FromCentroids(p, std::move(centroids));
}

Result<std::shared_ptr<const IvfModel>> IvfModel::FromCentroids(const IvfParams& params,
                                                                std::vector<float> centroids) {
  if (params.dim == 0) return Invalid("IvfParams.dim must be > 0");
  if (params.bits < 1 || params.bits > 8) {
    return Invalid("IvfParams.bits must be in 1..8, got " + std::to_string(params.bits));
  }
  if (params.algorithm != Algorithm::kIvf) {
    return Invalid("FromCentroids builds ivf models; use FromImiCodebooks or FromLsh");
  }
  if (params.quantizer != Quantizer::kRaBitQ) {
    return Invalid("FromCentroids builds rabitq models; use WithPq for pq4");
  }
  if (params.num_cells == 0 || centroids.size() != size_t{params.num_cells} * params.dim) {
    return Invalid("centroids must be num_cells x dim floats");
  }
  RETURN_IF_ERROR(CheckVectors(centroids.data(), params.num_cells, params.dim, "centroid"));
  if (params.rotation != RotationKind::kHadamard && params.rotation != RotationKind::kDense) {
    return Invalid("unknown rotation kind");
  }
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  if (params.metric == Metric::kCosine) {
    for (uint32_t c = 0; c < params.num_cells; ++c) {
      float* row = &centroids[size_t{c} * params.dim];
      if (!Normalize(row, params.dim, row)) row[0] = 1;  // degenerate: any unit vector
    }
  }
  m->centroids_ = std::move(centroids);
  ASSIGN_OR_RETURN(m->rotation_, Rotation::Create(params.rotation, params.dim, params.seed));
  RETURN_IF_ERROR(m->Init());
  return std::shared_ptr<const IvfModel>(std::move(m));
}

Result<std::shared_ptr<const IvfModel>> IvfModel::FromImiCodebooks(const IvfParams& params,
                                                                   uint32_t s,
                                                                   std::vector<float> first,
                                                                   std::vector<float> second) {
  RETURN_IF_ERROR(CheckParams(params));
  if (params.quantizer != Quantizer::kRaBitQ) {
    return Invalid("FromImiCodebooks builds rabitq models; use WithPq for pq4");
  }
  if (params.algorithm != Algorithm::kImi) return Invalid("FromImiCodebooks needs algorithm imi");
  if (s == 0 || s > kMaxImiSize) {
    return Invalid("imi codebook size must be in 1.." + std::to_string(kMaxImiSize) + ", got " +
                   std::to_string(s));
  }
  const uint32_t dim = params.dim;
  const uint32_t h1 = (dim + 1) / 2;
  const uint32_t h2 = dim - h1;
  if (first.size() != size_t{s} * h1 || second.size() != size_t{s} * h2) {
    return Invalid("imi codebooks must be s x ceil(dim/2) and s x floor(dim/2) floats");
  }
  RETURN_IF_ERROR(CheckVectors(first.data(), s, h1, "imi first codebook"));
  RETURN_IF_ERROR(CheckVectors(second.data(), s, h2, "imi second codebook"));
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  m->params_.num_cells = s * s;
  m->imi_s_ = s;
  m->imi_h1_ = h1;
  m->centroids_.resize(size_t{s} * s * dim);
  for (uint32_t i = 0; i < s; ++i) {
    for (uint32_t j = 0; j < s; ++j) {
      float* row = &m->centroids_[(size_t{i} * s + j) * dim];
      std::copy(&first[size_t{i} * h1], &first[size_t{i} * h1] + h1, row);
      std::copy(&second[size_t{j} * h2], &second[size_t{j} * h2] + h2, row + h1);
    }
  }
  m->imi_a_ = std::move(first);
  m->imi_b_ = std::move(second);
  ASSIGN_OR_RETURN(m->rotation_, Rotation::Create(params.rotation, dim, params.seed));
  RETURN_IF_ERROR(m->Init());
  return std::shared_ptr<const IvfModel>(std::move(m));
}

Result<std::shared_ptr<const IvfModel>> IvfModel::FromLsh(const IvfParams& params,
                                                          std::vector<float> planes,
                                                          std::vector<float> offset,
                                                          std::vector<float> centres) {
  RETURN_IF_ERROR(CheckParams(params));
  if (params.quantizer != Quantizer::kRaBitQ) {
    return Invalid("FromLsh builds rabitq models; use WithPq for pq4");
  }
  if (params.algorithm != Algorithm::kLsh) return Invalid("FromLsh needs algorithm lsh");
  const uint32_t dim = params.dim;
  const size_t b = planes.size() / dim;
  if (planes.size() % dim != 0 || b == 0 || b > kMaxLshPlanes) {
    return Invalid("lsh needs 1.." + std::to_string(kMaxLshPlanes) +
                   " hyperplanes of dim floats, got " + std::to_string(planes.size()) + " floats");
  }
  const size_t cells = size_t{1} << b;
  if (offset.size() != dim || centres.size() != cells * dim) {
    return Invalid("lsh offset must have dim floats and centres 2^b x dim floats");
  }
  RETURN_IF_ERROR(CheckVectors(planes.data(), b, dim, "lsh hyperplane"));
  RETURN_IF_ERROR(CheckVectors(offset.data(), 1, dim, "lsh offset"));
  RETURN_IF_ERROR(CheckVectors(centres.data(), cells, dim, "lsh centre"));
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  m->params_.num_cells = static_cast<uint32_t>(cells);
  m->lsh_bits_ = static_cast<uint32_t>(b);
  m->lsh_planes_ = std::move(planes);
  m->lsh_offset_ = std::move(offset);
  m->centroids_ = std::move(centres);
  ASSIGN_OR_RETURN(m->rotation_, Rotation::Create(params.rotation, dim, params.seed));
  RETURN_IF_ERROR(m->Init());
  return std::shared_ptr<const IvfModel>(std::move(m));
}

uint32_t IvfModel::LshPattern(const float* v, float* margins) const {
  uint32_t pattern = 0;
  for (uint32_t p = 0; p < lsh_bits_; ++p) {
    const float m =
        Dot(&lsh_planes_[size_t{p} * params_.dim], v, params_.dim) - lsh_plane_offset_[p];
    if (margins != nullptr) margins[p] = m;
    if (m > 0) pattern |= 1u << p;
  }
  return pattern;
}

Bytes IvfModel::Serialize() const {
  Bytes out;
  const uint32_t d = padded_dim();
  out.reserve(kModelHeaderBytes + centroids_.size() * 4 + rotation_->dense_matrix().size() * 4);
  const Algorithm algo = params_.algorithm;
  out.append(kModelMagic, 4);
  // rabitq: ivf models keep format version 1 (algorithm byte zero); imi and lsh use
  // version 2. pq4 models (any algorithm) are version 3 with byte 10 = quantizer.
  const bool pq = pq_ != nullptr;
  Put<uint16_t>(&out, pq ? kModelVersionPq
                         : (algo == Algorithm::kIvf ? kModelVersion : kModelVersionAlgorithms));
  Put<uint8_t>(&out, static_cast<uint8_t>(params_.metric));
  Put<uint8_t>(&out, static_cast<uint8_t>(params_.rotation));
  Put<uint8_t>(&out, static_cast<uint8_t>(params_.bits));
  Put<uint8_t>(&out, static_cast<uint8_t>(algo));
  Put<uint8_t>(&out, static_cast<uint8_t>(pq ? Quantizer::kPq4 : Quantizer::kRaBitQ));
  out.append(1, '\0');
  Put<uint32_t>(&out, params_.dim);
  Put<uint32_t>(&out, d);
  Put<uint32_t>(&out, params_.num_cells);
  Put<uint64_t>(&out, params_.seed);
  if (algo == Algorithm::kImi) {
    Put<uint32_t>(&out, imi_s_);
    Put<uint32_t>(&out, imi_h1_);
    for (float v : imi_a_) Put<float>(&out, v);
    for (float v : imi_b_) Put<float>(&out, v);
  } else if (algo == Algorithm::kLsh) {
    Put<uint32_t>(&out, lsh_bits_);
    Put<uint32_t>(&out, 0);
    for (float v : lsh_planes_) Put<float>(&out, v);
    for (float v : lsh_offset_) Put<float>(&out, v);
    for (float v : centroids_) Put<float>(&out, v);
  } else {
    for (float v : centroids_) Put<float>(&out, v);
  }
  if (pq) {
    Put<uint32_t>(&out, pq_->m());
    Put<uint32_t>(&out, 0);
    for (float v : pq_->codebooks()) Put<float>(&out, v);
  }
  for (float v : rotation_->dense_matrix()) Put<float>(&out, v);
  return out;
}

Result<std::shared_ptr<const IvfModel>> IvfModel::Deserialize(ByteView bytes) {
  if (bytes.size() < kModelHeaderBytes || std::memcmp(bytes.data(), kModelMagic, 4) != 0) {
    return Corrupt("IVF model: missing 'DVIM' header");
  }
  const char* p = bytes.data();
  const uint16_t version = Get<uint16_t>(p + 4);
  if (version > kModelVersionPq) {
    return Status(StatusCode::kUnsupported, "IVF model format version " + std::to_string(version) +
                                                " is newer than " +
                                                std::to_string(kModelVersionPq));
  }
  if (version == 0) return Corrupt("IVF model: version 0");
  const uint8_t metric = Get<uint8_t>(p + 6);
  const uint8_t rot = Get<uint8_t>(p + 7);
  const uint8_t bits = Get<uint8_t>(p + 8);
  const uint8_t algo = Get<uint8_t>(p + 9);
  const uint8_t quant = Get<uint8_t>(p + 10);
  if (version == kModelVersion && algo != 0) {
    return Corrupt("IVF model: reserved bytes not zero");
  }
  if (version == kModelVersionPq) {
    if (algo > 2) {
      return Status(StatusCode::kUnsupported,
                    "IVF model: unknown index algorithm " + std::to_string(algo) +
                        " (written by a newer version; this reader knows ivf, imi, lsh)");
    }
    if (quant == 0) return Corrupt("IVF model: version 3 with quantizer rabitq (versions 1, 2)");
    if (quant > 1) {
      return Status(StatusCode::kUnsupported,
                    "IVF model: unknown quantizer " + std::to_string(quant) +
                        " (written by a newer version; this reader knows rabitq, pq4)");
    }
    if (bits != 4 || rot != 0) return Corrupt("IVF model: pq4 model needs bits 4, rotation 0");
  } else if (quant != 0) {
    return Corrupt("IVF model: reserved bytes not zero");
  }
  if (version == kModelVersionAlgorithms) {
    if (algo == 0) return Corrupt("IVF model: version 2 with algorithm ivf (ivf is version 1)");
    if (algo > 2) {
      return Status(StatusCode::kUnsupported,
                    "IVF model: unknown index algorithm " + std::to_string(algo) +
                        " (written by a newer version; this reader knows ivf, imi, lsh)");
    }
  }
  if (p[11] != 0) return Corrupt("IVF model: reserved bytes not zero");
  const uint32_t dim = Get<uint32_t>(p + 12);
  const uint32_t d = Get<uint32_t>(p + 16);
  const uint32_t cells = Get<uint32_t>(p + 20);
  const uint64_t seed = Get<uint64_t>(p + 24);
  if (metric > 2) return Corrupt("IVF model: unknown metric " + std::to_string(metric));
  if (rot > 1) return Corrupt("IVF model: unknown rotation " + std::to_string(rot));
  if (bits < 1 || bits > 8) return Corrupt("IVF model: bits " + std::to_string(bits));
  if (dim == 0 || dim > 65536 || d != PaddedDim(dim)) return Corrupt("IVF model: bad dimension");
  if (cells == 0) return Corrupt("IVF model: zero cells");
  const size_t nm = rot == 1 ? size_t{d} * d : 0;
  IvfParams params;
  params.dim = dim;
  params.metric = static_cast<Metric>(metric);
  params.num_cells = cells;
  params.bits = bits;
  params.rotation = static_cast<RotationKind>(rot);
  params.seed = seed;
  params.algorithm = static_cast<Algorithm>(algo);
  // Body sizes (in floats) per algorithm; `extra` = bytes of the algorithm's own header.
  size_t extra = 0;
  size_t floats = 0;
  uint32_t s = 0;
  uint32_t b = 0;
  if (params.algorithm == Algorithm::kIvf) {
    floats = size_t{cells} * dim;
  } else {
    extra = 8;
    if (bytes.size() < kModelHeaderBytes + extra) return Corrupt("IVF model: truncated");
    const uint32_t a0 = Get<uint32_t>(p + kModelHeaderBytes);
    const uint32_t a1 = Get<uint32_t>(p + kModelHeaderBytes + 4);
    if (params.algorithm == Algorithm::kImi) {
      s = a0;
      if (dim < 2 || s == 0 || s > kMaxImiSize || uint64_t{s} * s != cells || a1 != (dim + 1) / 2) {
        return Corrupt("IVF model: imi header (s " + std::to_string(s) + ", split " +
                       std::to_string(a1) + ") does not match dim/num_cells");
      }
      floats = size_t{s} * dim;
    } else {
      b = a0;
      if (b == 0 || b > kMaxLshPlanes || (uint64_t{1} << b) != cells || a1 != 0) {
        return Corrupt("IVF model: lsh header (planes " + std::to_string(b) +
                       ") does not match num_cells");
      }
      floats = (size_t{b} + 1 + cells) * dim;
    }
  }
  // pq4: u32 m, u32 0, then m x 16 x (dim / m) codebook floats after the algorithm body.
  size_t pq_bytes = 0;
  uint32_t pq_m = 0;
  if (version == kModelVersionPq) {
    const size_t at = kModelHeaderBytes + extra + floats * 4;
    if (bytes.size() < at + 8) return Corrupt("IVF model: truncated pq4 section");
    pq_m = Get<uint32_t>(p + at);
    if (pq_m == 0 || pq_m > kPqMaxSubspaces || dim % pq_m != 0 || Get<uint32_t>(p + at + 4) != 0) {
      return Corrupt("IVF model: pq4 sub-spaces " + std::to_string(pq_m) + " for dim " +
                     std::to_string(dim));
    }
    pq_bytes = 8 + size_t{dim} * kPqCentroids * 4;
  }
  if (bytes.size() != kModelHeaderBytes + extra + (floats + nm) * 4 + pq_bytes) {
    return Corrupt("IVF model: size " + std::to_string(bytes.size()) + " does not match header");
  }
  const char* body = p + kModelHeaderBytes + extra;
  std::vector<float> values(floats);
  std::memcpy(values.data(), body, floats * 4);
  for (float v : values) {
    if (!std::isfinite(v)) return Corrupt("IVF model: centroid not finite");
  }
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  if (params.algorithm == Algorithm::kImi) {
    const uint32_t h1 = (dim + 1) / 2;
    std::vector<float> first(values.begin(), values.begin() + size_t{s} * h1);
    std::vector<float> second(values.begin() + size_t{s} * h1, values.end());
    // Rebuilds the concatenated centres exactly as FromImiCodebooks does.
    m->imi_s_ = s;
    m->imi_h1_ = h1;
    m->centroids_.resize(size_t{cells} * dim);
    for (uint32_t i = 0; i < s; ++i) {
      for (uint32_t j = 0; j < s; ++j) {
        float* row = &m->centroids_[(size_t{i} * s + j) * dim];
        std::copy(&first[size_t{i} * h1], &first[size_t{i} * h1] + h1, row);
        std::copy(&second[size_t{j} * (dim - h1)], &second[size_t{j} * (dim - h1)] + (dim - h1),
                  row + h1);
      }
    }
    m->imi_a_ = std::move(first);
    m->imi_b_ = std::move(second);
  } else if (params.algorithm == Algorithm::kLsh) {
    m->lsh_bits_ = b;
    m->lsh_planes_.assign(values.begin(), values.begin() + size_t{b} * dim);
    m->lsh_offset_.assign(values.begin() + size_t{b} * dim, values.begin() + size_t{b + 1} * dim);
    m->centroids_.assign(values.begin() + size_t{b + 1} * dim, values.end());
  } else {
    m->centroids_ = std::move(values);
  }
  if (version == kModelVersionPq) {
    std::vector<float> books(size_t{dim} * kPqCentroids);
    std::memcpy(books.data(), body + floats * 4 + 8, books.size() * 4);
    Result<PqCodec> codec = PqCodec::FromCodebooks(dim, pq_m, std::move(books));
    if (!codec.ok()) return Corrupt("IVF model: " + codec.status().message());
    m->params_.quantizer = Quantizer::kPq4;
    m->params_.pq_subspaces = pq_m;
    m->pq_ = std::make_unique<const PqCodec>(std::move(*codec));
  }
  if (rot == 1) {
    std::vector<float> matrix(nm);
    std::memcpy(matrix.data(), body + floats * 4 + pq_bytes, nm * 4);
    ASSIGN_OR_RETURN(m->rotation_, Rotation::FromDenseMatrix(dim, seed, std::move(matrix)));
  } else {
    ASSIGN_OR_RETURN(m->rotation_, Rotation::Create(RotationKind::kHadamard, dim, seed));
  }
  RETURN_IF_ERROR(m->Init());
  return std::shared_ptr<const IvfModel>(std::move(m));
}
Status IvfModel::Assign(const float* vecs, size_t n, uint32_t* cells, uint32_t threads) const {
  RETURN_IF_ERROR(CheckVectors(vecs, n, params_.dim, "vector"));
  const uint32_t dim = params_.dim;
  if (params_.algorithm != Algorithm::kIvf) {
    if (params_.metric == Metric::kCosine) {
      RETURN_IF_ERROR(CheckCosineNonZero(vecs, n, dim, "vector"));
    }
    // imi: nearest sub-centroid of each half (l2 and cosine: L2; ip: largest dot), which
    // is the nearest concatenated centre since distances add over the halves.
    const Metric sub_metric =
        params_.metric == Metric::kInnerProduct ? Metric::kInnerProduct : Metric::kL2;
    ParallelFor(n, threads, 256, [&](size_t b, size_t e, size_t) {
      constexpr size_t kChunk = 256;
      std::vector<float> buf(kChunk * dim);
      std::vector<uint32_t> ia(kChunk);
      std::vector<uint32_t> ib(kChunk);
      for (size_t s0 = b; s0 < e; s0 += kChunk) {
        const size_t cnt = std::min(kChunk, e - s0);
        const float* rows = vecs + s0 * dim;
        if (params_.metric == Metric::kCosine) {
          for (size_t i = 0; i < cnt; ++i) Normalize(rows + i * dim, dim, &buf[i * dim]);
          rows = buf.data();
        }
        if (params_.algorithm == Algorithm::kLsh) {
          for (size_t i = 0; i < cnt; ++i) cells[s0 + i] = LshPattern(rows + i * dim, nullptr);
          continue;
        }
        const uint32_t h1 = imi_h1_;
        const uint32_t h2 = dim - h1;
        std::vector<float> half = Columns(rows, cnt, dim, 0, h1);
        AssignNearest(imi_a_.data(), imi_s_, half.data(), cnt, h1, sub_metric, ia.data());
        half = Columns(rows, cnt, dim, h1, h2);
        AssignNearest(imi_b_.data(), imi_s_, half.data(), cnt, h2, sub_metric, ib.data());
        for (size_t i = 0; i < cnt; ++i) cells[s0 + i] = ia[i] * imi_s_ + ib[i];
      }
    });
    return Status::Ok();
  }
  if (params_.metric != Metric::kCosine) {
    ParallelFor(n, threads, 256, [&](size_t b, size_t e, size_t) {
      AssignNearest(centroids_.data(), params_.num_cells, vecs + b * dim, e - b, dim,
                    params_.metric, cells + b);
    });
    return Status::Ok();
  }
  RETURN_IF_ERROR(CheckCosineNonZero(vecs, n, dim, "vector"));
  ParallelFor(n, threads, 256, [&](size_t b, size_t e, size_t) {
    constexpr size_t kChunk = 256;
    std::vector<float> buf(kChunk * dim);
    for (size_t s = b; s < e; s += kChunk) {
      const size_t m = std::min(kChunk, e - s);
      for (size_t i = 0; i < m; ++i) Normalize(vecs + (s + i) * dim, dim, &buf[i * dim]);
      AssignNearest(centroids_.data(), params_.num_cells, buf.data(), m, dim, params_.metric,
                    cells + s);
    }
  });
  return Status::Ok();
}

// ---------------------------------------------------------------- cell codes

// pq4: the FastScan blocks of PQ codes take the place of the sign blocks; no plane section.
size_t IvfModel::SignBlockBytes() const {
  if (pq_ != nullptr) return pq_->BlockBytes();
  return size_t{padded_dim()} / 4 * 16 + kFactorBytes;
}

size_t IvfModel::PlaneBlockBytes() const {
  if (pq_ != nullptr) return 0;
  // bits > 1: all `bits` planes of the full code (the top plane repeats the signs, so the
  // refined estimate is exact in the code, not limited by the 8-bit FastScan table).
  const size_t bits = params_.bits;
  return bits > 1 ? kFastScanBlock * bits * padded_dim() / 8 + kFactorBytes : 0;
}

namespace {

void PutFactors(uint8_t* area, uint32_t lane, const CodeFactors& f) {
  std::memcpy(area + 4 * lane, &f.add, 4);
  std::memcpy(area + 4 * (32 + lane), &f.rescale, 4);
  std::memcpy(area + 4 * (64 + lane), &f.error, 4);
}

CodeFactors GetFactors(const uint8_t* area, uint32_t lane) {
  CodeFactors f;
  std::memcpy(&f.add, area + 4 * lane, 4);
  std::memcpy(&f.rescale, area + 4 * (32 + lane), 4);
  std::memcpy(&f.error, area + 4 * (64 + lane), 4);
  return f;
}

size_t NumBlocks(size_t count) { return (count + kFastScanBlock - 1) / kFastScanBlock; }

}  // namespace

// The two sections of a cell codes block (spec/20 §5): signs+factors1 blocks, then
// planes+factorsB blocks.
struct IvfModel::CellView {
  uint8_t* base;  // first byte after the header
  size_t blocks;
  size_t sign_bytes;
  size_t plane_bytes;
  uint8_t* Signs(size_t block) const { return base + block * sign_bytes; }
  uint8_t* Planes(size_t block) const { return base + blocks * sign_bytes + block * plane_bytes; }
};

void IvfModel::EncodeInto(uint32_t cell, const float* v, const CellView& view, size_t pos,
                          float* scratch, uint8_t* codes) const {
  const uint32_t dim = params_.dim;
  const uint32_t d = padded_dim();
  const uint32_t bits = params_.bits;
  const uint32_t ex = bits - 1;
  const auto lane = static_cast<uint32_t>(pos % kFastScanBlock);
  float* tmp = scratch;    // dim
  float* r = scratch + d;  // d
  const float* c = centroid(cell);
  if (params_.metric == Metric::kCosine) {
    Normalize(v, dim, tmp);
    for (uint32_t j = 0; j < dim; ++j) tmp[j] -= c[j];
  } else {
    for (uint32_t j = 0; j < dim; ++j) tmp[j] = v[j] - c[j];
  }
  rotation_->Apply(tmp, r);
  CodeFactors f1;
  CodeFactors fex;
  EncodeResidual(r, &rotated_[size_t{cell} * d], d, bits, EstMetric(params_.metric), codes, &f1,
                 &fex);
  uint8_t* signs = view.Signs(pos / kFastScanBlock);
  const uint32_t groups = d / 4;
  // Gathers bit b of 8 consecutive code bytes into one byte (bit j from byte j).
  auto gather = [codes](uint32_t i, uint32_t b) -> uint8_t {
    uint64_t w;
    std::memcpy(&w, codes + i, 8);
    return static_cast<uint8_t>((((w >> b) & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56);
  };
  for (uint32_t g = 0; g < groups; g += 2) {
    const uint8_t both = gather(4 * g, ex);
    SetFastScanNibble(signs, g, lane, both & 0x0f);
    SetFastScanNibble(signs, g + 1, lane, both >> 4);
  }
  PutFactors(signs + size_t{groups} * 16, lane, f1);
  if (ex == 0) return;
  const size_t lane_bytes = size_t{bits} * d / 8;
  uint8_t* planes = view.Planes(pos / kFastScanBlock) + lane * lane_bytes;
  for (uint32_t b = 0; b < bits; ++b) {
    uint8_t* plane = planes + size_t{b} * d / 8;
    for (uint32_t i = 0; i < d; i += 8) plane[i / 8] = gather(i, b);
  }
  PutFactors(view.Planes(pos / kFastScanBlock) + kFastScanBlock * lane_bytes, lane, fex);
}

void IvfModel::EncodePqInto(uint32_t cell, const float* v, const CellView& view, size_t pos,
                            float* scratch) const {
  const uint32_t dim = params_.dim;
  const float* c = centroid(cell);
  if (params_.metric == Metric::kCosine) {
    Normalize(v, dim, scratch);
  } else {
    std::copy(v, v + dim, scratch);
  }
  for (uint32_t j = 0; j < dim; ++j) scratch[j] -= c[j];
  pq_->EncodeInto(scratch, view.Signs(pos / kFastScanBlock),
                  static_cast<uint32_t>(pos % kFastScanBlock));
}

namespace {

uint32_t PqM(const IvfModel& m) { return m.pq() != nullptr ? m.pq()->m() : 0; }

// pq_m: 0 for a rabitq model (version 1 blocks), else the model's sub-spaces (version 2).
Result<CellHeader> ParseCell(ByteView codes, uint32_t pq_m, uint32_t bits, uint32_t d,
                             size_t sign_bytes, size_t plane_bytes) {
  if (codes.size() < kCellHeaderBytes || std::memcmp(codes.data(), kCellMagic, 4) != 0) {
    return Corrupt("cell codes: missing 'DVIC' header");
  }
  const char* p = codes.data();
  const uint16_t version = Get<uint16_t>(p + 4);
  if (version > kCellVersionPq) {
    return Status(StatusCode::kUnsupported, "cell codes format version " + std::to_string(version) +
                                                " is newer than " + std::to_string(kCellVersionPq));
  }
  CellHeader h{Get<uint8_t>(p + 6), Get<uint32_t>(p + 8), Get<uint32_t>(p + 12)};
  if (version == 0 || p[7] != 0) return Corrupt("cell codes: bad version or reserved byte");
  if (version == kCellVersionPq && pq_m == 0) {
    return Corrupt("cell codes: a pq4 block (version 2) given to a rabitq model");
  }
  if (version == kCellVersion && pq_m != 0) {
    return Corrupt("cell codes: a rabitq block (version 1) given to a pq4 model");
  }
  if (version == kCellVersionPq) {
    // byte 6 = quantizer (1 = pq4), offset 8 = sub-spaces.
    if (h.bits != 1 || h.d != pq_m) {
      return Corrupt("cell codes: pq4 header (quantizer " + std::to_string(h.bits) +
                     ", sub-spaces " + std::to_string(h.d) + ") does not match the model (1, " +
                     std::to_string(pq_m) + ")");
    }
  } else if (h.bits != bits || h.d != d) {
    return Corrupt("cell codes: bits/dimension (" + std::to_string(h.bits) + ", " +
                   std::to_string(h.d) + ") do not match the model (" + std::to_string(bits) +
                   ", " + std::to_string(d) + ")");
  }
  if (codes.size() != kCellHeaderBytes + NumBlocks(h.count) * (sign_bytes + plane_bytes)) {
    return Corrupt("cell codes: size " + std::to_string(codes.size()) + " does not match count " +
                   std::to_string(h.count));
  }
  return h;
}

void SetCount(Bytes* codes, uint32_t count) { std::memcpy(codes->data() + 12, &count, 4); }

}  // namespace

IvfModel::CellView IvfModel::View(const char* data, uint32_t count) const {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): read-only users never write.
  auto* base = reinterpret_cast<uint8_t*>(const_cast<char*>(data)) + kCellHeaderBytes;
  return CellView{base, NumBlocks(count), SignBlockBytes(), PlaneBlockBytes()};
}

Result<uint32_t> IvfModel::CellCount(ByteView codes) const {
  ASSIGN_OR_RETURN(CellHeader h, ParseCell(codes, PqM(*this), params_.bits, padded_dim(),
                                           SignBlockBytes(), PlaneBlockBytes()));
  return h.count;
}

Bytes IvfModel::EmptyCell(uint32_t count) const {
  Bytes out;
  out.append(kCellMagic, 4);
  if (pq_ != nullptr) {
    Put<uint16_t>(&out, kCellVersionPq);
    Put<uint8_t>(&out, static_cast<uint8_t>(Quantizer::kPq4));
    Put<uint8_t>(&out, 0);
    Put<uint32_t>(&out, pq_->m());
  } else {
    Put<uint16_t>(&out, kCellVersion);
    Put<uint8_t>(&out, static_cast<uint8_t>(params_.bits));
    Put<uint8_t>(&out, 0);
    Put<uint32_t>(&out, padded_dim());
  }
  Put<uint32_t>(&out, count);
  out.resize(kCellHeaderBytes + NumBlocks(count) * (SignBlockBytes() + PlaneBlockBytes()), '\0');
  return out;
}

Result<Bytes> IvfModel::EncodeCell(uint32_t cell, const float* vecs, size_t n) const {
  Bytes out = EmptyCell(0);
  RETURN_IF_ERROR(AppendToCell(cell, &out, vecs, n));
  return out;
}

Status IvfModel::AppendToCell(uint32_t cell, Bytes* codes, const float* vecs, size_t n) const {
  if (cell >= params_.num_cells) {
    return Invalid("cell " + std::to_string(cell) + " out of range (num_cells " +
                   std::to_string(params_.num_cells) + ")");
  }
  RETURN_IF_ERROR(CheckVectors(vecs, n, params_.dim, "vector"));
  if (params_.metric == Metric::kCosine) {
    RETURN_IF_ERROR(CheckCosineNonZero(vecs, n, params_.dim, "vector"));
  }
  const size_t sb = SignBlockBytes();
  const size_t pb = PlaneBlockBytes();
  ASSIGN_OR_RETURN(CellHeader h, ParseCell(*codes, PqM(*this), params_.bits, padded_dim(), sb, pb));
  if (size_t{h.count} + n > std::numeric_limits<uint32_t>::max()) {
    return Invalid("cell codes block would exceed 2^32 - 1 vectors");
  }
  const size_t total = h.count + n;
  const size_t old_blocks = NumBlocks(h.count);
  const size_t new_blocks = NumBlocks(total);
  if (new_blocks > old_blocks) {
    // Grow both sections: zero sign blocks go after the old sign blocks, zero plane blocks
    // at the end.
    const size_t grow = new_blocks - old_blocks;
    codes->insert(kCellHeaderBytes + old_blocks * sb, grow * sb, '\0');
    codes->append(grow * pb, '\0');
  }
  SetCount(codes, static_cast<uint32_t>(total));
  const CellView view = View(codes->data(), static_cast<uint32_t>(total));
  const uint32_t d = padded_dim();
  std::vector<float> scratch(size_t{2} * d);
  std::vector<uint8_t> code(d);
  for (size_t i = 0; i < n; ++i) {
    if (pq_ != nullptr) {
      EncodePqInto(cell, vecs + i * params_.dim, view, h.count + i, scratch.data());
    } else {
      EncodeInto(cell, vecs + i * params_.dim, view, h.count + i, scratch.data(), code.data());
    }
  }
  return Status::Ok();
}

void IvfModel::CopyLane(const CellView& src, size_t from, const CellView& dst, size_t to) const {
  const uint32_t d = padded_dim();
  const uint32_t groups = d / 4;
  const auto sl = static_cast<uint32_t>(from % kFastScanBlock);
  const auto dl = static_cast<uint32_t>(to % kFastScanBlock);
  const uint8_t* ss = src.Signs(from / kFastScanBlock);
  uint8_t* ds = dst.Signs(to / kFastScanBlock);
  if (pq_ != nullptr) {
    for (uint32_t s = 0; s < pq_->m(); ++s) {
      SetFastScanNibble(ds, s, dl, GetFastScanNibble(ss, s, sl));
    }
    return;
  }
  for (uint32_t g = 0; g < groups; ++g) SetFastScanNibble(ds, g, dl, GetFastScanNibble(ss, g, sl));
  PutFactors(ds + size_t{groups} * 16, dl, GetFactors(ss + size_t{groups} * 16, sl));
  if (params_.bits == 1) return;
  const size_t lane_bytes = size_t{params_.bits} * d / 8;
  const uint8_t* sp = src.Planes(from / kFastScanBlock);
  uint8_t* dp = dst.Planes(to / kFastScanBlock);
  std::memcpy(dp + dl * lane_bytes, sp + sl * lane_bytes, lane_bytes);
  PutFactors(dp + kFastScanBlock * lane_bytes, dl,
             GetFactors(sp + kFastScanBlock * lane_bytes, sl));
}

Result<Bytes> IvfModel::SelectFromCell(ByteView codes,
                                       const std::vector<uint32_t>& positions) const {
  ASSIGN_OR_RETURN(CellHeader h, ParseCell(codes, PqM(*this), params_.bits, padded_dim(),
                                           SignBlockBytes(), PlaneBlockBytes()));
  for (uint32_t p : positions) {
    if (p >= h.count) {
      return Invalid("position " + std::to_string(p) + " out of range (count " +
                     std::to_string(h.count) + ")");
    }
  }
  Bytes out = EmptyCell(static_cast<uint32_t>(positions.size()));
  const CellView src = View(codes.data(), h.count);
  const CellView dst = View(out.data(), static_cast<uint32_t>(positions.size()));
  for (size_t i = 0; i < positions.size(); ++i) CopyLane(src, positions[i], dst, i);
  return out;
}

Status IvfModel::AppendCodes(Bytes* dst, ByteView src) const {
  const size_t sb = SignBlockBytes();
  const size_t pb = PlaneBlockBytes();
  ASSIGN_OR_RETURN(CellHeader hs, ParseCell(src, PqM(*this), params_.bits, padded_dim(), sb, pb));
  ASSIGN_OR_RETURN(CellHeader hd, ParseCell(*dst, PqM(*this), params_.bits, padded_dim(), sb, pb));
  if (size_t{hd.count} + hs.count > std::numeric_limits<uint32_t>::max()) {
    return Invalid("cell codes block would exceed 2^32 - 1 vectors");
  }
  const auto total = static_cast<uint32_t>(hd.count + hs.count);
  Bytes out = EmptyCell(total);
  const CellView to = View(out.data(), total);
  const CellView a = View(dst->data(), hd.count);
  const CellView b = View(src.data(), hs.count);
  for (size_t i = 0; i < hd.count; ++i) CopyLane(a, i, to, i);
  for (size_t i = 0; i < hs.count; ++i) CopyLane(b, i, to, hd.count + i);
  *dst = std::move(out);
  return Status::Ok();
}

// ---------------------------------------------------------------- query

float IvfModel::ExactDistance(const float* q, const float* v) const {
  const uint32_t dim = params_.dim;
  switch (params_.metric) {
    case Metric::kL2:
      return L2Sqr(q, v, dim);
    case Metric::kInnerProduct:
      return -Dot(q, v, dim);
    case Metric::kCosine: {
      const float nq = NormSqr(q, dim);
      const float nv = NormSqr(v, dim);
      if (nq <= 0 || nv <= 0) return 1.0f;
      return 1.0f - Dot(q, v, dim) / std::sqrt(nq * nv);
    }
  }
  return 0;
}

Result<std::unique_ptr<IvfModel::Query>> IvfModel::NewQuery(const float* q,
                                                            const SearchParams& params) const {
  std::unique_ptr<Query> query(new Query(this));
  RETURN_IF_ERROR(query->Reset(q, params));
  return query;
}

Status IvfModel::Query::Reset(const float* q, const SearchParams& params) {
  const IvfModel& m = *model_;
  const uint32_t dim = m.params_.dim;
  const uint32_t d = m.padded_dim();
  const uint32_t cells = m.params_.num_cells;
  if (params.k == 0) return Invalid("k must be > 0");
  if (q == nullptr) return Invalid("query pointer is null");
  RETURN_IF_ERROR(CheckVectors(q, 1, dim, "query"));
  params_ = params;
  qn_.resize(dim);
  if (m.params_.metric == Metric::kCosine) {
    if (!Normalize(q, dim, qn_.data())) {
      return Invalid("query is a zero vector, which has no cosine similarity");
    }
  } else {
    std::copy(q, q + dim, qn_.begin());
  }
  q_norm2_ = NormSqr(qn_.data(), dim);
  heap_limit_ = params.k;
  if (const PqCodec* pq = m.pq_.get(); pq != nullptr) {
    if (params.rerank) heap_limit_ = std::max<size_t>(params.k, PqRerankCandidates(params.k));
    pq_table_.resize(size_t{pq->m()} * kPqCentroids);
    pq_q8_.resize(pq->BlockBytes());
    pq_x_.resize(dim);
    if (m.params_.metric != Metric::kL2) {
      // ip, cosine: -<q_s, C_s,j> does not depend on the cell; built once.
      pq->Table(qn_.data(), false, pq_table_.data());
      pq->QuantizeTable(pq_table_.data(), pq_q8_.data(), &pq_delta_, &pq_base_);
    }
  } else {
    x_.resize(d);
    m.rotation_->Apply(qn_.data(), x_.data());
    BuildQueryLut(x_.data(), d, &lut_);
  }
  heap_.clear();
  cands_.clear();
  scanned_ = 0;
  refined_ = 0;
  nprobe_ = params.nprobe == 0 ? DefaultNprobe(cells) : std::min(params.nprobe, cells);
  if (m.params_.algorithm == Algorithm::kImi) {
    ProbeImi(params.cell_sizes);
    return Status::Ok();
  }
  if (m.params_.algorithm == Algorithm::kLsh) {
    ProbeLsh(params.cell_sizes);
    return Status::Ok();
  }
  if (const CentroidIndex* index = m.ProbeIndex(); index != nullptr) {
    // Many cells: the two-level centroid index finds the candidates, already ranked by their
    // f32 distance (spec/20 §6.4). With cell_sizes, ask for more until nprobe are non-empty.
    const uint32_t* sizes = params.cell_sizes;
    uint32_t want = nprobe_;
    for (;;) {
      index->Search(qn_.data(), want, &order_, &cand_dist_, /*exact_scan=*/want >= cells);
      probe_.clear();
      for (uint32_t c : order_) {
        if (probe_.size() == nprobe_) break;
        if (sizes == nullptr || sizes[c] != 0) probe_.push_back(c);
      }
      if (probe_.size() == nprobe_ || want >= cells) break;
      want = std::min(cells, std::max(want * 2, want + 16));
    }
    nprobe_ = static_cast<uint32_t>(probe_.size());
    return Status::Ok();
  }
  cell_dot_.resize(cells);
  cell_dist_.resize(cells);
  if (HasInt8Dot()) {
    // Rank with int8: u = round(q / s_q) + 128, <u, c8> - 128 sum(c8) ~ <q, c> / (s_q s_c).
    float qmax = 0;
    for (float v : qn_) qmax = std::max(qmax, std::fabs(v));
    const float s_q = qmax > 0 ? qmax / 127.0f : 1.0f;
    q_u8_.assign(m.i8_stride_, 128);
    for (uint32_t j = 0; j < dim; ++j) {
      q_u8_[j] = static_cast<uint8_t>(std::lrint(qn_[j] / s_q) + 128);
    }
    cell_i32_.resize(cells);
    DotManyU8I8(q_u8_.data(), m.centroids_i8_.data(), cells, m.i8_stride_, cell_i32_.data());
    const float scale = s_q * m.i8_scale_;
    for (uint32_t c = 0; c < cells; ++c) {
      cell_dot_[c] = scale * static_cast<float>(cell_i32_[c] - 128 * m.centroid_i8_sums_[c]);
    }
  } else {
    DotMany(qn_.data(), m.centroids_.data(), cells, dim, cell_dot_.data());
  }
  for (uint32_t c = 0; c < cells; ++c) {
    cell_dist_[c] = m.params_.metric == Metric::kL2
                        ? q_norm2_ + m.centroid_norms_[c] - 2 * cell_dot_[c]
                        : -cell_dot_[c];
  }
  order_.resize(cells);
  std::iota(order_.begin(), order_.end(), 0u);
  if (params.cell_sizes != nullptr) {
    const uint32_t* sizes = params.cell_sizes;
    std::erase_if(order_, [sizes](uint32_t c) { return sizes[c] == 0; });
    nprobe_ = std::min<uint32_t>(nprobe_, static_cast<uint32_t>(order_.size()));
  }
  auto less = [this](uint32_t a, uint32_t b) {
    return cell_dist_[a] < cell_dist_[b] || (cell_dist_[a] == cell_dist_[b] && a < b);
  };
  std::partial_sort(order_.begin(), order_.begin() + nprobe_, order_.end(), less);
  probe_.assign(order_.begin(), order_.begin() + nprobe_);
  return Status::Ok();
}

const CentroidIndex* IvfModel::ProbeIndex() const {
  if (params_.algorithm != Algorithm::kIvf ||
      params_.num_cells <= CentroidIndexOptions{}.exact_threshold) {
    return nullptr;
  }
  std::call_once(probe_index_once_, [this] {
    CentroidIndexOptions options;
    options.seed = params_.seed;
    Result<CentroidIndex> index = CentroidIndex::Build(centroids_.data(), params_.num_cells,
                                                       params_.dim, params_.metric, options);
    if (index.ok()) probe_index_ = std::make_unique<const CentroidIndex>(std::move(*index));
  });
  return probe_index_.get();
}

// Multi-sequence algorithm (Babenko & Lempitsky): both halves' sub-centroids sorted by
// their distance to the query half; a min-heap over index pairs (a, b) into the two sorted
// lists, seeded with (0, 0); popping (a, b) pushes (a, b + 1) and, when b == 0, (a + 1, 0),
// so each pair is pushed once, after a pair that is not farther. Pairs pop in increasing
// d1 + d2 (ties by cell number among the pairs in the heap). O(s dim + nprobe log nprobe).
void IvfModel::Query::ProbeImi(const uint32_t* sizes) {
  const IvfModel& m = *model_;
  const uint32_t s = m.imi_s_;
  const uint32_t h1 = m.imi_h1_;
  const uint32_t h[2] = {h1, m.params_.dim - h1};
  const float* book[2] = {m.imi_a_.data(), m.imi_b_.data()};
  const float* qh[2] = {qn_.data(), qn_.data() + h1};
  for (int half = 0; half < 2; ++half) {
    std::vector<float>& dist = sub_dist_[half];
    dist.resize(s);
    if (m.params_.metric == Metric::kInnerProduct) {
      DotMany(qh[half], book[half], s, h[half], dist.data());
      for (float& v : dist) v = -v;
    } else {
      L2SqrMany(qh[half], book[half], s, h[half], dist.data());
    }
    std::vector<uint32_t>& ord = sub_order_[half];
    ord.resize(s);
    std::iota(ord.begin(), ord.end(), 0u);
    std::sort(ord.begin(), ord.end(), [&dist](uint32_t a, uint32_t b) {
      return dist[a] < dist[b] || (dist[a] == dist[b] && a < b);
    });
  }
  const std::vector<float>& d0 = sub_dist_[0];
  const std::vector<float>& d1 = sub_dist_[1];
  const std::vector<uint32_t>& o0 = sub_order_[0];
  const std::vector<uint32_t>& o1 = sub_order_[1];
  struct Entry {
    float dist;
    uint32_t cell;
    uint32_t a;
    uint32_t b;
  };
  auto greater = [](const Entry& x, const Entry& y) {
    return x.dist > y.dist || (x.dist == y.dist && x.cell > y.cell);
  };
  auto make = [&](uint32_t a, uint32_t b) {
    return Entry{d0[o0[a]] + d1[o1[b]], o0[a] * s + o1[b], a, b};
  };
  std::vector<Entry> heap;
  heap.push_back(make(0, 0));
  probe_.clear();
  while (!heap.empty() && probe_.size() < nprobe_) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    const Entry e = heap.back();
    heap.pop_back();
    if (sizes == nullptr || sizes[e.cell] != 0) probe_.push_back(e.cell);
    if (e.b + 1 < s) {
      heap.push_back(make(e.a, e.b + 1));
      std::push_heap(heap.begin(), heap.end(), greater);
    }
    if (e.b == 0 && e.a + 1 < s) {
      heap.push_back(make(e.a + 1, 0));
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  }
  nprobe_ = static_cast<uint32_t>(probe_.size());
}

// Cells in order of the Hamming distance between their sign pattern and the query's, ties
// by the sum of |margin| over the differing planes (a flip across a hyperplane the query is
// close to is cheaper), then by cell number.
void IvfModel::Query::ProbeLsh(const uint32_t* sizes) {
  const IvfModel& m = *model_;
  const uint32_t b = m.lsh_bits_;
  margins_.resize(b);
  const uint32_t pattern = m.LshPattern(qn_.data(), margins_.data());
  const uint32_t cells = m.params_.num_cells;
  cell_dist_.resize(cells);
  cell_dot_.resize(cells);  // reused: Hamming distance per cell
  order_.clear();
  for (uint32_t c = 0; c < cells; ++c) {
    if (sizes != nullptr && sizes[c] == 0) continue;
    const uint32_t diff = c ^ pattern;
    float cost = 0;
    for (uint32_t p = 0; p < b; ++p) {
      if ((diff >> p) & 1u) cost += std::fabs(margins_[p]);
    }
    cell_dot_[c] = static_cast<float>(std::popcount(diff));
    cell_dist_[c] = cost;
    order_.push_back(c);
  }
  nprobe_ = std::min<uint32_t>(nprobe_, static_cast<uint32_t>(order_.size()));
  auto less = [this](uint32_t x, uint32_t y) {
    if (cell_dot_[x] != cell_dot_[y]) return cell_dot_[x] < cell_dot_[y];
    if (cell_dist_[x] != cell_dist_[y]) return cell_dist_[x] < cell_dist_[y];
    return x < y;
  };
  std::partial_sort(order_.begin(), order_.begin() + nprobe_, order_.end(), less);
  probe_.assign(order_.begin(), order_.begin() + nprobe_);
}

float IvfModel::Query::Threshold() const {
  return heap_.size() < heap_limit_ ? std::numeric_limits<float>::infinity() : heap_.front().first;
}

void IvfModel::Query::Push(float dist, uint64_t id) {
  const std::pair<float, uint64_t> e(dist, id);
  if (heap_.size() < heap_limit_) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end());
  } else if (e < heap_.front()) {
    std::pop_heap(heap_.begin(), heap_.end());
    heap_.back() = e;
    std::push_heap(heap_.begin(), heap_.end());
  }
}

Status IvfModel::Query::ScanCell(uint32_t cell, ByteView codes, const uint64_t* ids,
                                 const std::function<bool(uint64_t)>* keep) {
  const IvfModel& m = *model_;
  if (cell >= m.params_.num_cells) {
    return Invalid("cell " + std::to_string(cell) + " out of range (num_cells " +
                   std::to_string(m.params_.num_cells) + ")");
  }
  const uint32_t d = m.padded_dim();
  const uint32_t bits = m.params_.bits;
  ASSIGN_OR_RETURN(CellHeader h,
                   ParseCell(codes, PqM(m), bits, d, m.SignBlockBytes(), m.PlaneBlockBytes()));
  if (h.count > 0 && ids == nullptr) return Invalid("ids pointer is null");
  if (m.pq_ != nullptr) return ScanPq(cell, codes, h.count, ids, keep);
  const CellView view = m.View(codes.data(), h.count);
  // Exact (f32) for the estimator; cell_dot_ may hold int8 values used for ranking.
  const float dot = Dot(qn_.data(), m.centroid(cell), m.params_.dim);
  const float l2 = std::max(0.0f, q_norm2_ + m.centroid_norms_[cell] - 2 * dot);
  const float g_add = m.params_.metric == Metric::kL2 ? l2 : -dot;
  const float g_err = std::sqrt(l2);
  const float sum = lut_.sum;
  const float half_sum = 0.5f * sum;
  const size_t groups = d / 4;
  const size_t lane_bytes = size_t{bits} * d / 8;
  uint32_t acc[kFastScanBlock];
  float lower[kFastScanBlock];
  float est1[kFastScanBlock];
  scanned_ += h.count;
  for (size_t b = 0; b < view.blocks; ++b) {
    const uint8_t* signs = view.Signs(b);
    FastScanBlock(signs, lut_.lut.data(), groups, acc);
    const auto lanes =
        static_cast<uint32_t>(std::min<size_t>(kFastScanBlock, h.count - b * kFastScanBlock));
    float threshold = Threshold();
    // Candidates of this block against the threshold at its start (it only decreases, so
    // each is re-checked below); their plane rows are prefetched together.
    const BlockEstimateParams ep{lut_.delta, lut_.base, half_sum, g_add, g_err, threshold};
    uint32_t mask = EstimateBlock(acc, signs + groups * 16, ep, est1, lower);
    if (lanes < kFastScanBlock) mask &= (1u << lanes) - 1;
    uint32_t cand[kFastScanBlock];
    uint32_t nc = 0;
    for (; mask != 0; mask &= mask - 1) cand[nc++] = static_cast<uint32_t>(std::countr_zero(mask));
    if (nc == 0) continue;
    if (bits > 1) {
      const uint8_t* planes = view.Planes(b);
      for (uint32_t i = 0; i < nc; ++i) {
        const uint8_t* row = planes + cand[i] * lane_bytes;
        for (size_t off = 0; off < lane_bytes; off += 64) __builtin_prefetch(row + off);
      }
      for (size_t off = 0; off < kFactorBytes; off += 64) {
        __builtin_prefetch(planes + kFastScanBlock * lane_bytes + off);
      }
    }
    for (uint32_t ci = 0; ci < nc; ++ci) {
      const uint32_t lane = cand[ci];
      if (lower[lane] >= threshold) continue;
      const uint64_t id = ids[b * kFastScanBlock + lane];
      if (keep != nullptr && !(*keep)(id)) continue;
      float est = est1[lane];
      float err = est1[lane] - lower[lane];
      if (bits > 1) {
        const uint8_t* planes = view.Planes(b);
        const CodeFactors fx = GetFactors(planes + kFastScanBlock * lane_bytes, lane);
        const float ipx = ExPlanesDot(planes + lane * lane_bytes, bits, x_.data(), d);
        est = EstimateDistance(fx, g_add, ipx, sum, bits);
        err = fx.error * g_err;
        ++refined_;
      }
      if (params_.rerank) {
        if (est - err >= Threshold()) continue;
        Push(est + err, id);
        cands_.push_back({est - err, est, id});
      } else {
        Push(est, id);
      }
      threshold = Threshold();
    }
  }
  return Status::Ok();
}

// pq4 (spec/20 §8.4): FastScan over the 8-bit tables. Without rerank, a lane whose 8-bit
// estimate minus the worst-case rounding of its m table entries (m * delta / 2, plus one
// delta for the f32 arithmetic) beats the k-th best gets the f32 table sum, which is
// pushed; with rerank the PqRerankCandidates(k) best 8-bit estimates are kept.
Status IvfModel::Query::ScanPq(uint32_t cell, ByteView codes, uint32_t count, const uint64_t* ids,
                               const std::function<bool(uint64_t)>* keep) {
  const IvfModel& m = *model_;
  const PqCodec& pq = *m.pq_;
  const uint32_t dim = m.params_.dim;
  if (count == 0) return Status::Ok();
  scanned_ += count;
  const float* centre = m.centroid(cell);
  float offset = 0;
  if (m.params_.metric == Metric::kL2) {
    for (uint32_t j = 0; j < dim; ++j) pq_x_[j] = qn_[j] - centre[j];
    pq.Table(pq_x_.data(), true, pq_table_.data());
    pq.QuantizeTable(pq_table_.data(), pq_q8_.data(), &pq_delta_, &pq_base_);
  } else {
    offset = -Dot(qn_.data(), centre, dim);
  }
  const uint32_t sub = pq.m();
  // With rerank the candidates are keyed by the 8-bit estimate itself (they are all
  // re-scored exactly), so there is no slack and no f32 sum.
  const bool rerank = params_.rerank;
  const float slack = rerank ? 0.0f : pq_delta_ * (0.5f * static_cast<float>(sub) + 1.0f);
  const float base = pq_base_ + offset;
  const size_t bb = pq.BlockBytes();
  const auto* blocks = reinterpret_cast<const uint8_t*>(codes.data()) + kCellHeaderBytes;
  const float* table = pq_table_.data();
  uint32_t acc[kFastScanBlock];
  float threshold = Threshold();
  for (size_t b = 0; b * kFastScanBlock < count; ++b) {
    const uint8_t* block = blocks + b * bb;
    FastScanBlock(block, pq_q8_.data(), pq.groups(), acc);
    const auto lanes =
        static_cast<uint32_t>(std::min<size_t>(kFastScanBlock, count - b * kFastScanBlock));
    for (uint32_t lane = 0; lane < lanes; ++lane) {
      const float approx = pq_delta_ * static_cast<float>(acc[lane]) + base;
      if (approx - slack >= threshold) continue;
      const uint64_t id = ids[b * kFastScanBlock + lane];
      if (keep != nullptr && !(*keep)(id)) continue;
      if (rerank) {
        Push(approx, id);
        threshold = Threshold();
        continue;
      }
      // f32 table sum in increasing sub-space order (nibble s of the lane: byte 16 s + lane % 16,
      // low half for lanes 0..15, high half for 16..31).
      const uint8_t* col = block + (lane & 15u);
      const uint32_t shift = lane < 16 ? 0 : 4;
      float est = offset;
      for (uint32_t s = 0; s < sub; ++s) {
        est += table[size_t{s} * kPqCentroids + ((col[size_t{s} * 16] >> shift) & 15u)];
      }
      ++refined_;
      Push(est, id);
      threshold = Threshold();
    }
  }
  return Status::Ok();
}

Result<std::vector<Neighbor>> IvfModel::Query::FinishPq(
    const std::function<Status(const uint64_t*, size_t, float*)>* exact) {
  std::vector<Neighbor> out;
  std::sort_heap(heap_.begin(), heap_.end());  // best estimate first, ties by id
  if (!params_.rerank || exact == nullptr || !*exact) {
    for (size_t i = 0; i < heap_.size() && i < params_.k; ++i) {
      out.push_back(MakeNeighbor(heap_[i].second, heap_[i].first));
    }
    heap_.clear();
    return out;
  }
  // Every kept candidate (up to PqRerankCandidates(k)) is re-scored: PQ has no error bound.
  std::vector<std::pair<float, uint64_t>> cands;
  cands.swap(heap_);
  heap_limit_ = params_.k;
  const float offset = model_->params_.metric == Metric::kCosine ? 1.0f : 0.0f;
  const size_t batch = std::max<size_t>(16, params_.k);
  std::vector<uint64_t> ids;
  std::vector<float> dists;
  for (size_t i = 0; i < cands.size();) {
    ids.clear();
    while (i < cands.size() && ids.size() < batch) ids.push_back(cands[i++].second);
    dists.resize(ids.size());
    RETURN_IF_ERROR((*exact)(ids.data(), ids.size(), dists.data()));
    for (size_t j = 0; j < ids.size(); ++j) Push(dists[j] - offset, ids[j]);
  }
  std::sort_heap(heap_.begin(), heap_.end());
  for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(id, dist));
  heap_.clear();
  return out;
}

Neighbor IvfModel::Query::MakeNeighbor(uint64_t id, float dist) const {
  Neighbor n;
  n.id = id;
  switch (model_->params_.metric) {
    case Metric::kL2:
      n.distance = std::max(0.0f, dist);
      n.score = std::sqrt(n.distance);
      break;
    case Metric::kInnerProduct:
      n.distance = dist;
      n.score = -dist;
      break;
    case Metric::kCosine:
      n.distance = 1.0f + dist;
      n.score = -dist;
      break;
  }
  return n;
}

Result<std::vector<Neighbor>> IvfModel::Query::Finish(
    const std::function<Status(const uint64_t*, size_t, float*)>* exact) {
  if (model_->pq_ != nullptr) return FinishPq(exact);
  std::vector<Neighbor> out;
  if (!params_.rerank) {
    std::sort_heap(heap_.begin(), heap_.end());
    out.reserve(heap_.size());
    for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(id, dist));
    heap_.clear();
    return out;
  }
  const float bound = Threshold();
  std::erase_if(cands_, [bound](const Candidate& c) { return c.lower >= bound; });
  if (exact == nullptr || !*exact) {
    std::sort(cands_.begin(), cands_.end(), [](const Candidate& a, const Candidate& b) {
      return a.est < b.est || (a.est == b.est && a.id < b.id);
    });
    for (size_t i = 0; i < cands_.size() && i < params_.k; ++i) {
      out.push_back(MakeNeighbor(cands_[i].id, cands_[i].est));
    }
    return out;
  }
  std::sort(cands_.begin(), cands_.end(), [](const Candidate& a, const Candidate& b) {
    return a.lower < b.lower || (a.lower == b.lower && a.id < b.id);
  });
  heap_.clear();
  const float offset = model_->params_.metric == Metric::kCosine ? 1.0f : 0.0f;
  const size_t batch = std::max<size_t>(16, params_.k);
  std::vector<uint64_t> ids;
  std::vector<float> dists;
  size_t i = 0;
  while (i < cands_.size() && cands_[i].lower < Threshold()) {
    ids.clear();
    while (i < cands_.size() && ids.size() < batch && cands_[i].lower < Threshold()) {
      ids.push_back(cands_[i++].id);
    }
    dists.resize(ids.size());
    RETURN_IF_ERROR((*exact)(ids.data(), ids.size(), dists.data()));
    for (size_t j = 0; j < ids.size(); ++j) Push(dists[j] - offset, ids[j]);
  }
  std::sort_heap(heap_.begin(), heap_.end());
  for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(id, dist));
  heap_.clear();
  return out;
}

// ---------------------------------------------------------------- in-memory index

Result<std::unique_ptr<IvfIndex>> IvfIndex::Build(const IvfParams& params, const float* data,
                                                  size_t n, const uint64_t* ids, bool keep_raw,
                                                  uint32_t threads) {
  IvfParams p = params;
  p.kmeans.threads = threads;
  ASSIGN_OR_RETURN(std::shared_ptr<const IvfModel> model, IvfModel::Train(p, data, n));
  std::unique_ptr<IvfIndex> index = Create(std::move(model), keep_raw);
  RETURN_IF_ERROR(index->Add(data, n, ids, threads));
  for (Cell& c : index->cells_) {
    c.codes.shrink_to_fit();
    c.ids.shrink_to_fit();
  }
  return index;
}

std::unique_ptr<IvfIndex> IvfIndex::Create(std::shared_ptr<const IvfModel> model, bool keep_raw) {
  std::unique_ptr<IvfIndex> index(new IvfIndex());
  index->keep_raw_ = keep_raw;
  index->cells_.resize(model->num_cells());
  index->cell_sizes_.assign(model->num_cells(), 0);
  for (Cell& c : index->cells_) {
    c.codes = model->EmptyCell(0);
  }
  index->model_ = std::move(model);
  return index;
}

Status IvfIndex::Add(const float* data, size_t n, const uint64_t* ids, uint32_t threads) {
  const uint32_t dim = model_->dim();
  std::vector<uint32_t> assign(n);
  RETURN_IF_ERROR(model_->Assign(data, n, assign.data(), threads));
  std::vector<uint64_t> id_of(n);
  for (size_t i = 0; i < n; ++i) id_of[i] = ids != nullptr ? ids[i] : size_ + i;
  if (keep_raw_) {
    for (size_t i = 0; i < n; ++i) {
      if (raw_rows_.count(id_of[i]) != 0) {
        return Invalid("id " + std::to_string(id_of[i]) + " is already in the index");
      }
    }
  }
  // Group by cell, keeping input order within a cell.
  const uint32_t cells = model_->num_cells();
  std::vector<size_t> start(cells + 1, 0);
  for (uint32_t c : assign) ++start[c + 1];
  for (uint32_t c = 0; c < cells; ++c) start[c + 1] += start[c];
  std::vector<size_t> order(n);
  {
    std::vector<size_t> fill(start.begin(), start.end() - 1);
    for (size_t i = 0; i < n; ++i) order[fill[assign[i]]++] = i;
  }
  std::vector<Status> errors(cells);
  ParallelFor(cells, threads, 1, [&](size_t b, size_t e, size_t) {
    std::vector<float> buf;
    for (size_t c = b; c < e; ++c) {
      const size_t m = start[c + 1] - start[c];
      if (m == 0) continue;
      buf.resize(m * dim);
      Cell& cell = cells_[c];
      for (size_t i = 0; i < m; ++i) {
        const size_t row = order[start[c] + i];
        std::copy(data + row * dim, data + (row + 1) * dim, &buf[i * dim]);
        cell.ids.push_back(id_of[row]);
      }
      errors[c] = model_->AppendToCell(static_cast<uint32_t>(c), &cell.codes, buf.data(), m);
    }
  });
  for (const Status& s : errors) RETURN_IF_ERROR(s);
  for (uint32_t c = 0; c < cells; ++c) {
    cell_sizes_[c] = static_cast<uint32_t>(cells_[c].ids.size());
  }
  if (keep_raw_) {
    raw_.insert(raw_.end(), data, data + n * dim);
    if (model_->params().metric == Metric::kCosine) {
      for (size_t i = 0; i < n; ++i) raw_norm2_.push_back(NormSqr(data + i * dim, dim));
    }
    for (size_t i = 0; i < n; ++i) {
      raw_rows_[id_of[i]] = size_ + i;
      raw_dense_ = raw_dense_ && id_of[i] == size_ + i;
    }
  }
  size_ += n;
  return Status::Ok();
}

Result<std::vector<Neighbor>> IvfIndex::Search(const float* q, const SearchParams& params,
                                               const std::function<bool(uint64_t)>* keep) const {
  if (params.rerank && !keep_raw_) {
    return Invalid("rerank needs the raw vectors: build the index with keep_raw");
  }
  SearchParams sp = params;
  if (sp.cell_sizes == nullptr && model_->algorithm() != IvfParams::Algorithm::kIvf) {
    sp.cell_sizes = cell_sizes_.data();  // imi/lsh: nprobe counts non-empty cells
  }
  thread_local std::unique_ptr<IvfModel::Query> cached;
  if (cached == nullptr || cached->model_ != model_.get()) {
    ASSIGN_OR_RETURN(cached, model_->NewQuery(q, sp));
  } else {
    RETURN_IF_ERROR(cached->Reset(q, sp));
  }
  IvfModel::Query& query = *cached;
  for (uint32_t c : query.probe_order()) {
    RETURN_IF_ERROR(query.ScanCell(c, cells_[c].codes, cells_[c].ids.data(), keep));
  }
  if (!params.rerank) return query.Finish();
  const uint32_t dim = model_->dim();
  // Cosine: ExactDistance's arithmetic with |q|^2 and the rows' |v|^2 computed once.
  const bool cosine = model_->params().metric == Metric::kCosine;
  const float nq = cosine ? NormSqr(q, dim) : 0.0f;
  const std::function<Status(const uint64_t*, size_t, float*)> exact =
      [&](const uint64_t* ids, size_t n, float* out) -> Status {
    for (size_t i = 0; i < n; ++i) {
      size_t row = ids[i];
      if (!raw_dense_ || row >= size_) {
        auto it = raw_rows_.find(ids[i]);
        if (it == raw_rows_.end()) return Status(StatusCode::kInternal, "rerank: unknown id");
        row = it->second;
      }
      const float* v = &raw_[row * dim];
      if (cosine) {
        const float nv = raw_norm2_[row];
        out[i] = nq <= 0 || nv <= 0 ? 1.0f : 1.0f - Dot(q, v, dim) / std::sqrt(nq * nv);
      } else {
        out[i] = model_->ExactDistance(q, v);
      }
    }
    return Status::Ok();
  };
  return query.Finish(&exact);
}

Result<std::vector<std::vector<Neighbor>>> IvfIndex::SearchBatch(const float* qs, size_t nq,
                                                                 const SearchParams& params,
                                                                 uint32_t threads) const {
  std::vector<std::vector<Neighbor>> out(nq);
  std::vector<Status> errors(nq);
  const uint32_t dim = model_->dim();
  ParallelFor(nq, threads, 1, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; ++i) {
      Result<std::vector<Neighbor>> r = Search(qs + i * dim, params);
      if (r.ok()) {
        out[i] = std::move(r).value();
      } else {
        errors[i] = r.status();
      }
    }
  });
  for (const Status& s : errors) RETURN_IF_ERROR(s);
  return out;
}

size_t IvfIndex::MemoryBytes() const {
  const IvfModel& m = *model_;
  size_t bytes = sizeof(*this) + sizeof(IvfModel) + sizeof(Rotation);
  bytes += m.params().num_cells * (size_t{m.dim()} + 1) * sizeof(float);  // centres, |c|^2
  bytes += m.rotated_.capacity() * sizeof(float);
  bytes += m.centroids_i8_.capacity() + m.centroid_i8_sums_.capacity() * sizeof(int32_t);
  bytes += m.rotation().dense_matrix().capacity() * sizeof(float);
  bytes += 4 * size_t{m.padded_dim()} * sizeof(float);  // Hadamard signs
  bytes += cells_.capacity() * sizeof(Cell) + cell_sizes_.capacity() * sizeof(uint32_t);
  bytes += (m.imi_a_.capacity() + m.imi_b_.capacity() + m.lsh_planes_.capacity() +
            m.lsh_offset_.capacity()) *
           sizeof(float);
  for (const Cell& c : cells_) {
    bytes += c.codes.capacity() + c.ids.capacity() * sizeof(uint64_t);
  }
  if (m.pq() != nullptr) bytes += m.pq()->MemoryBytes();
  bytes += (raw_.capacity() + raw_norm2_.capacity()) * sizeof(float);
  bytes += raw_rows_.size() * (sizeof(std::pair<const uint64_t, size_t>) + 2 * sizeof(void*));
  bytes += raw_rows_.bucket_count() * sizeof(void*);
  return bytes;
}

}  // namespace dreamdb::vector
