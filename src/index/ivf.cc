// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/ivf.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "src/base/check.h"
#include "src/base/encoding.h"
#include "src/index/cell_source.h"
#include "src/index/kernels/byte_io.h"
#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/parallel.h"

namespace dreamdb::vector {
namespace {

static_assert(std::endian::native == std::endian::little, "byte formats assume little-endian");

constexpr char kModelMagic[4] = {'D', 'V', 'I', 'M'};
constexpr uint16_t kModelVersion = 1;
constexpr uint16_t kModelVersionAlgorithms = 2;  // imi and lsh models (spec/20 §4)
constexpr uint16_t kModelVersionPq = 3;          // pq4 models, any algorithm (spec/20 §8.2)
constexpr size_t kModelHeaderBytes = 32;
using Algorithm = IvfParams::Algorithm;

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }
Status Corrupt(std::string msg) { return Status(StatusCode::kCorrupt, std::move(msg)); }

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

// Normalised copy for cosine (the caller checked for zero vectors), else empty.
std::vector<float> NormalizedCopy(const IvfParams& params, const float* sample, size_t n) {
  std::vector<float> normed;
  if (params.metric != Metric::kCosine) return normed;
  normed.resize(n * params.dim);
  for (size_t i = 0; i < n; ++i) {
    Normalize(sample + i * params.dim, params.dim, &normed[i * params.dim]);
  }
  return normed;
}

}  // namespace

uint32_t PqRerankCandidates(uint32_t k) { return std::max<uint32_t>(200, 20 * k); }

uint32_t DefaultNprobe(uint32_t num_cells) {
  const auto scaled = static_cast<uint32_t>(std::lround(0.6 * std::sqrt(num_cells)));
  return std::min(num_cells, std::max<uint32_t>(8, scaled));
}

Result<IvfParams::Algorithm> ParseAlgorithm(std::string_view name) {
  Result<IndexAlgorithm> a = ParseIndexAlgorithm(name);
  if (!a.ok() || *a == IndexAlgorithm::kGraph) {
    return Invalid("unknown index algorithm " + Quote(name) + " (expected ivf, imi or lsh)");
  }
  return *a;
}

// ---------------------------------------------------------------- model

IvfModel::IvfModel()
    : instance_([] {
        static std::atomic<uint64_t> next{1};
        return next.fetch_add(1, std::memory_order_relaxed);
      }()) {}

const Rotation& IvfModel::rotation() const {
  DCHECK(codec_->rotation() != nullptr);
  return *codec_->rotation();
}

size_t IvfModel::MemoryBytes() const {
  return sizeof(*this) + partition_->MemoryBytes() + codec_->MemoryBytes();
}

Result<std::shared_ptr<const IvfModel>> IvfModel::Compose(
    const IvfParams& params, std::shared_ptr<const Partitioner> partition) {
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  m->params_.num_cells = partition->num_cells();
  ASSIGN_OR_RETURN(std::unique_ptr<Rotation> rotation,
                   Rotation::Create(params.rotation, params.dim, params.seed));
  m->codec_ = CellCodec::RaBitQ(params.metric, params.dim, params.bits, std::move(rotation),
                                partition->centres());
  m->partition_ = std::move(partition);
  return std::shared_ptr<const IvfModel>(std::move(m));
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
  m->partition_ = partition_;  // immutable: shared
  m->codec_ = CellCodec::Pq4(params_.metric, std::move(codec));
  return std::shared_ptr<const IvfModel>(std::move(m));
}

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
    // Residuals o - c (cosine: of the normalised vector), as AppendToCell computes them.
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
  if (params.metric == Metric::kCosine) {
    RETURN_IF_ERROR(CheckCosineNonZero(sample, n, params.dim, "training vector"));
  }
  const std::vector<float> normed = NormalizedCopy(params, sample, n);
  const float* rows = normed.empty() ? sample : normed.data();
  ASSIGN_OR_RETURN(std::unique_ptr<const Partitioner> partition,
                   Partitioner::Train(params.algorithm, params.metric, params.dim, params.num_cells,
                                      params.seed, params.kmeans, rows, n));
  return Compose(params, std::move(partition));
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
  if (params.rotation != RotationKind::kHadamard && params.rotation != RotationKind::kDense) {
    return Invalid("unknown rotation kind");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<const Partitioner> partition,
                   Partitioner::KMeans(params.metric, params.dim, params.seed, std::move(centroids),
                                       /*normalize=*/true));
  return Compose(params, std::move(partition));
}

Result<std::shared_ptr<const IvfModel>> IvfModel::SingleCell(const IvfParams& params,
                                                             std::vector<float> centre) {
  IvfParams p = params;
  p.algorithm = Algorithm::kIvf;
  p.quantizer = Quantizer::kRaBitQ;
  p.num_cells = 1;
  RETURN_IF_ERROR(CheckParams(p));
  ASSIGN_OR_RETURN(std::unique_ptr<const Partitioner> partition,
                   Partitioner::SingleCell(p.metric, p.dim, p.seed, std::move(centre)));
  return Compose(p, std::move(partition));
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
  ASSIGN_OR_RETURN(
      std::unique_ptr<const Partitioner> partition,
      Partitioner::Imi(params.metric, params.dim, s, std::move(first), std::move(second)));
  return Compose(params, std::move(partition));
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
  ASSIGN_OR_RETURN(std::unique_ptr<const Partitioner> partition,
                   Partitioner::Lsh(params.metric, params.dim, std::move(planes), std::move(offset),
                                    std::move(centres)));
  return Compose(params, std::move(partition));
}

Bytes IvfModel::Serialize() const {
  Bytes out;
  const uint32_t d = padded_dim();
  out.reserve(kModelHeaderBytes + partition_->centres().size() * 4);
  const Algorithm algo = params_.algorithm;
  out.append(kModelMagic, 4);
  // rabitq: ivf models keep format version 1 (algorithm byte zero); imi and lsh use
  // version 2. pq4 models (any algorithm) are version 3 with byte 10 = quantizer.
  const bool pq = codec_->quantizer() == Quantizer::kPq4;
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
  partition_->SerializeBody(&out);  // spec/20 §4
  codec_->SerializeSection(&out);   // pq4 codebooks (§8.2) or a dense rotation's matrix
  return out;
}

Result<std::shared_ptr<const IvfModel>> IvfModel::WithCentroids(
    const std::vector<float>& centroids) const {
  if (params_.algorithm != Algorithm::kIvf) {
    return Invalid("WithCentroids needs an ivf model, not " +
                   std::string(AlgorithmName(params_.algorithm)));
  }
  const size_t dim = params_.dim;
  if (centroids.empty() || centroids.size() % dim != 0 || centroids.size() / dim > UINT32_MAX) {
    return Invalid("centroids must be num_cells x dim floats");
  }
  // The serialized model with the table replaced: header (num_cells patched), the new
  // centroids, then the codec's section unchanged, decoded as stored bytes are (no
  // normalisation), so every kept centroid stays bit-identical.
  const Bytes old = Serialize();
  const size_t old_body = size_t{params_.num_cells} * dim * 4;
  Bytes out(old.data(), kModelHeaderBytes);
  const auto cells = static_cast<uint32_t>(centroids.size() / dim);
  std::memcpy(out.data() + 20, &cells, 4);  // little-endian hosts only (spec/20 header)
  for (float v : centroids) Put<float>(&out, v);
  out.append(old.data() + kModelHeaderBytes + old_body, old.size() - kModelHeaderBytes - old_body);
  return Deserialize(out);
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
  auto build = [&]() -> Result<std::unique_ptr<const Partitioner>> {
    if (params.algorithm == Algorithm::kImi) {
      const uint32_t h1 = (dim + 1) / 2;
      std::vector<float> first(values.begin(), values.begin() + size_t{s} * h1);
      std::vector<float> second(values.begin() + size_t{s} * h1, values.end());
      return Partitioner::Imi(params.metric, dim, s, std::move(first), std::move(second));
    }
    if (params.algorithm == Algorithm::kLsh) {
      std::vector<float> planes(values.begin(), values.begin() + size_t{b} * dim);
      std::vector<float> offset(values.begin() + size_t{b} * dim,
                                values.begin() + size_t{b + 1} * dim);
      std::vector<float> centres(values.begin() + size_t{b + 1} * dim, values.end());
      return Partitioner::Lsh(params.metric, dim, std::move(planes), std::move(offset),
                              std::move(centres));
    }
    return Partitioner::KMeans(params.metric, dim, seed, std::move(values), /*normalize=*/false);
  };
  Result<std::unique_ptr<const Partitioner>> built = build();
  if (!built.ok()) return Corrupt("IVF model: " + built.status().message());
  std::shared_ptr<const Partitioner> partition = std::move(built).value();
  std::shared_ptr<IvfModel> m(new IvfModel());
  m->params_ = params;
  if (version == kModelVersionPq) {
    std::vector<float> books(size_t{dim} * kPqCentroids);
    std::memcpy(books.data(), body + floats * 4 + 8, books.size() * 4);
    Result<PqCodec> codec = PqCodec::FromCodebooks(dim, pq_m, std::move(books));
    if (!codec.ok()) return Corrupt("IVF model: " + codec.status().message());
    m->params_.quantizer = Quantizer::kPq4;
    m->params_.pq_subspaces = pq_m;
    m->codec_ = CellCodec::Pq4(params.metric, std::move(*codec));
  } else {
    std::unique_ptr<Rotation> rotation;
    if (rot == 1) {
      std::vector<float> matrix(nm);
      std::memcpy(matrix.data(), body + floats * 4 + pq_bytes, nm * 4);
      ASSIGN_OR_RETURN(rotation, Rotation::FromDenseMatrix(dim, seed, std::move(matrix)));
    } else {
      ASSIGN_OR_RETURN(rotation, Rotation::Create(RotationKind::kHadamard, dim, seed));
    }
    m->codec_ =
        CellCodec::RaBitQ(params.metric, dim, bits, std::move(rotation), partition->centres());
  }
  m->partition_ = std::move(partition);
  return std::shared_ptr<const IvfModel>(std::move(m));
}

Status IvfModel::Assign(const float* vecs, size_t n, uint32_t* cells, uint32_t threads) const {
  RETURN_IF_ERROR(CheckVectors(vecs, n, params_.dim, "vector"));
  const uint32_t dim = params_.dim;
  const bool cosine = params_.metric == Metric::kCosine;
  if (cosine) RETURN_IF_ERROR(CheckCosineNonZero(vecs, n, dim, "vector"));
  if (!cosine && params_.algorithm == Algorithm::kIvf) {
    ParallelFor(n, threads, 256, [&](size_t b, size_t e, size_t) {
      partition_->AssignRows(vecs + b * dim, e - b, cells + b);
    });
    return Status::Ok();
  }
  ParallelFor(n, threads, 256, [&](size_t b, size_t e, size_t) {
    constexpr size_t kChunk = 256;
    std::vector<float> buf(cosine ? kChunk * dim : 0);
    for (size_t s = b; s < e; s += kChunk) {
      const size_t cnt = std::min(kChunk, e - s);
      const float* rows = vecs + s * dim;
      if (cosine) {
        for (size_t i = 0; i < cnt; ++i) Normalize(rows + i * dim, dim, &buf[i * dim]);
        rows = buf.data();
      }
      partition_->AssignRows(rows, cnt, cells + s);
    }
  });
  return Status::Ok();
}

// ---------------------------------------------------------------- cell codes

Result<uint32_t> IvfModel::CellCount(ByteView codes) const { return codec_->CellCount(codes); }

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
  const CellCodec& codec = *codec_;
  const size_t sb = codec.SignBlockBytes();
  const size_t pb = codec.PlaneBlockBytes();
  ASSIGN_OR_RETURN(uint32_t count, codec.CellCount(*codes));
  if (size_t{count} + n > std::numeric_limits<uint32_t>::max()) {
    return Invalid("cell codes block would exceed 2^32 - 1 vectors");
  }
  const size_t total = count + n;
  const size_t old_blocks = (size_t{count} + kFastScanBlock - 1) / kFastScanBlock;
  const size_t new_blocks = (total + kFastScanBlock - 1) / kFastScanBlock;
  if (new_blocks > old_blocks) {
    // Grow both sections: zero sign blocks go after the old sign blocks, zero plane blocks
    // at the end.
    const size_t grow = new_blocks - old_blocks;
    codes->insert(kCellHeaderBytes + old_blocks * sb, grow * sb, '\0');
    codes->append(grow * pb, '\0');
  }
  CellCodec::SetCount(codes, static_cast<uint32_t>(total));
  const CellView view = codec.View(codes->data(), static_cast<uint32_t>(total));
  const uint32_t dim = params_.dim;
  const uint32_t d = padded_dim();
  std::vector<float> scratch(size_t{2} * d);
  std::vector<uint8_t> code(d);
  const float* c = centroid(cell);
  for (size_t i = 0; i < n; ++i) {
    // The residual o - c (cosine: of the normalised vector) in the scratch's first dim floats.
    const float* v = vecs + i * dim;
    if (params_.metric == Metric::kCosine) {
      Normalize(v, dim, scratch.data());
    } else {
      std::copy(v, v + dim, scratch.begin());
    }
    for (uint32_t j = 0; j < dim; ++j) scratch[j] -= c[j];
    codec.Encode(cell, scratch.data(), code.data(), view, count + i);
  }
  return Status::Ok();
}

Result<Bytes> IvfModel::SelectFromCell(ByteView codes,
                                       const std::vector<uint32_t>& positions) const {
  ASSIGN_OR_RETURN(uint32_t count, codec_->CellCount(codes));
  for (uint32_t p : positions) {
    if (p >= count) {
      return Invalid("position " + std::to_string(p) + " out of range (count " +
                     std::to_string(count) + ")");
    }
  }
  Bytes out = EmptyCell(static_cast<uint32_t>(positions.size()));
  const CellView src = codec_->View(codes.data(), count);
  const CellView dst = codec_->View(out.data(), static_cast<uint32_t>(positions.size()));
  for (size_t i = 0; i < positions.size(); ++i) codec_->CopyLane(src, positions[i], dst, i);
  return out;
}

Status IvfModel::AppendCodes(Bytes* dst, ByteView src) const {
  ASSIGN_OR_RETURN(uint32_t ns, codec_->CellCount(src));
  ASSIGN_OR_RETURN(uint32_t nd, codec_->CellCount(*dst));
  if (size_t{nd} + ns > std::numeric_limits<uint32_t>::max()) {
    return Invalid("cell codes block would exceed 2^32 - 1 vectors");
  }
  const auto total = static_cast<uint32_t>(nd + ns);
  Bytes out = EmptyCell(total);
  const CellView to = codec_->View(out.data(), total);
  const CellView a = codec_->View(dst->data(), nd);
  const CellView b = codec_->View(src.data(), ns);
  for (size_t i = 0; i < nd; ++i) codec_->CopyLane(a, i, to, i);
  for (size_t i = 0; i < ns; ++i) codec_->CopyLane(b, i, to, nd + i);
  *dst = std::move(out);
  return Status::Ok();
}

// ---------------------------------------------------------------- query

float IvfModel::ExactDistance(const float* q, const float* v) const {
  return vector::ExactDistance(params_.metric, q, v, params_.dim);
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
  const float q_norm2 = NormSqr(qn_.data(), dim);
  scanner_->Reset(qn_.data(), q_norm2, params.k, params.rerank);
  const uint32_t nprobe =
      params.nprobe == 0 ? DefaultNprobe(cells) : std::min(params.nprobe, cells);
  prober_->Probe(qn_.data(), q_norm2, nprobe, params.cell_sizes, &probe_);
  DCHECK(probe_.size() <= nprobe);
  return Status::Ok();
}

Status IvfModel::Query::ScanCell(uint32_t cell, ByteView codes, const uint64_t* ids,
                                 const KeepFn* keep) {
  const IvfModel& m = *model_;
  if (cell >= m.params_.num_cells) {
    return Invalid("cell " + std::to_string(cell) + " out of range (num_cells " +
                   std::to_string(m.params_.num_cells) + ")");
  }
  ASSIGN_OR_RETURN(uint32_t count, m.codec_->CellCount(codes));
  if (count > 0 && ids == nullptr) return Invalid("ids pointer is null");
  const CellRef ref{cell, m.partition_->centre(cell), m.partition_->centre_norm2(cell)};
  return scanner_->Scan(ref, codes, count, ids, keep);
}

Result<std::vector<Neighbor>> IvfModel::Query::Finish(const ExactFn* exact,
                                                      const PrefetchFn* prefetch) {
  return scanner_->Finish(exact, prefetch);
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
  for (Cell& c : index->s_.cells) {
    c.codes.shrink_to_fit();
    c.ids.shrink_to_fit();
  }
  return index;
}

std::unique_ptr<IvfIndex> IvfIndex::Create(std::shared_ptr<const IvfModel> model, bool keep_raw) {
  std::unique_ptr<IvfIndex> index(new IvfIndex());
  index->s_.keep_raw = keep_raw;
  index->s_.dim = model->dim();
  index->s_.metric = model->params().metric;
  index->s_.cells.resize(model->num_cells());
  index->cell_sizes_.assign(model->num_cells(), 0);
  for (Cell& c : index->s_.cells) {
    c.codes = model->codec().EmptyCell(0);
  }
  index->model_ = std::move(model);
  return index;
}

Status IvfIndex::Add(const float* data, size_t n, const uint64_t* ids, uint32_t threads) {
  const uint32_t dim = model_->dim();
  std::vector<uint32_t> assign(n);
  RETURN_IF_ERROR(model_->Assign(data, n, assign.data(), threads));
  std::vector<uint64_t> id_of(n);
  for (size_t i = 0; i < n; ++i) id_of[i] = ids != nullptr ? ids[i] : s_.size + i;
  if (s_.keep_raw) {
    for (size_t i = 0; i < n; ++i) {
      if (s_.raw_rows.count(id_of[i]) != 0) {
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
      Cell& cell = s_.cells[c];
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
    cell_sizes_[c] = static_cast<uint32_t>(s_.cells[c].ids.size());
  }
  if (s_.keep_raw) {
    s_.raw.insert(s_.raw.end(), data, data + n * dim);
    if (model_->params().metric == Metric::kCosine) {
      for (size_t i = 0; i < n; ++i) s_.raw_norm2.push_back(NormSqr(data + i * dim, dim));
    }
    for (size_t i = 0; i < n; ++i) {
      s_.raw_rows[id_of[i]] = s_.size + i;
      s_.raw_dense = s_.raw_dense && id_of[i] == s_.size + i;
    }
  }
  s_.size += n;
  return Status::Ok();
}

namespace {

// IvfIndex's cells and raw vectors as a CellSource.
class MemoryCellSource final : public CellSource {
 public:
  explicit MemoryCellSource(const IvfIndex::Storage& s) : s_(s) {}
  Result<CellData> Cell(uint32_t cell) override {
    DCHECK(cell < s_.cells.size());
    return CellData{s_.cells[cell].codes, s_.cells[cell].ids.data()};
  }
  Status ExactDistances(const float* q, const uint64_t* ids, size_t n, float* out) override {
    if (!s_.keep_raw) {
      return Invalid("rerank needs the raw vectors: build the index with keep_raw");
    }
    const uint32_t dim = s_.dim;
    // Cosine: the ExactDistance arithmetic with |q|^2 and the rows' |v|^2 computed once.
    const bool cosine = s_.metric == Metric::kCosine;
    if (cosine && q != q_) {
      q_ = q;
      nq_ = NormSqr(q, dim);
    }
    for (size_t i = 0; i < n; ++i) {
      size_t row = ids[i];
      if (!s_.raw_dense || row >= s_.size) {
        auto it = s_.raw_rows.find(ids[i]);
        if (it == s_.raw_rows.end()) return Status(StatusCode::kInternal, "rerank: unknown id");
        row = it->second;
      }
      const float* v = &s_.raw[row * dim];
      out[i] = cosine ? CosineDistance(Dot(q, v, dim), nq_, s_.raw_norm2[row])
                      : ExactDistance(s_.metric, q, v, dim);
    }
    return Status::Ok();
  }

 private:
  const IvfIndex::Storage& s_;
  const float* q_ = nullptr;
  float nq_ = 0;
};

}  // namespace

Result<std::vector<Neighbor>> SearchCells(IvfModel::Query& query, CellSource& source,
                                          const float* q, const KeepFn* keep) {
  const std::vector<uint32_t>& probe = query.probe_order();
  source.Prefetch(probe.data(), probe.size());
  for (uint32_t c : probe) {
    ASSIGN_OR_RETURN(CellData cell, source.Cell(c));
    RETURN_IF_ERROR(query.ScanCell(c, cell.codes, cell.ids, keep));
  }
  if (!query.params().rerank) return query.Finish();
  const ExactFn exact = [&](const uint64_t* ids, size_t n, float* out) -> Status {
    return source.ExactDistances(q, ids, n, out);
  };
  return query.Finish(&exact);
}

Result<std::vector<Neighbor>> IvfIndex::Search(const float* q, const SearchParams& params,
                                               const KeepFn* keep) const {
  if (params.rerank && !s_.keep_raw) {
    return Invalid("rerank needs the raw vectors: build the index with keep_raw");
  }
  SearchParams sp = params;
  if (sp.cell_sizes == nullptr && model_->algorithm() != IvfParams::Algorithm::kIvf) {
    sp.cell_sizes = cell_sizes_.data();  // imi/lsh: nprobe counts non-empty cells
  }
  // A query per thread, reused while it is for this very model (not just this address).
  thread_local std::unique_ptr<IvfModel::Query> cached;
  if (cached == nullptr || cached->model_ != model_.get() ||
      cached->instance_ != model_->instance_) {
    ASSIGN_OR_RETURN(cached, model_->NewQuery(q, sp));
  } else {
    RETURN_IF_ERROR(cached->Reset(q, sp));
  }
  MemoryCellSource source(s_);
  return SearchCells(*cached, source, q, keep);
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
  size_t bytes = sizeof(*this) + model_->MemoryBytes();
  bytes += s_.cells.capacity() * sizeof(Cell) + cell_sizes_.capacity() * sizeof(uint32_t);
  for (const Cell& c : s_.cells) {
    bytes += c.codes.capacity() + c.ids.capacity() * sizeof(uint64_t);
  }
  bytes += (s_.raw.capacity() + s_.raw_norm2.capacity()) * sizeof(float);
  bytes += s_.raw_rows.size() * (sizeof(std::pair<const uint64_t, size_t>) + 2 * sizeof(void*));
  bytes += s_.raw_rows.bucket_count() * sizeof(void*);
  return bytes;
}

}  // namespace dreamdb::vector
