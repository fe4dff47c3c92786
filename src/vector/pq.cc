// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/vector/pq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "src/vector/fastscan.h"
#include "src/vector/kmeans.h"
#include "src/vector/parallel.h"

namespace dreamdb::vector {
namespace {

Status Invalid(const std::string& msg) { return Status(StatusCode::kInvalidArgument, msg); }

bool UnitCopy(const float* v, uint32_t dim, float* out) {
  const float n2 = NormSqr(v, dim);
  if (!(n2 > 0) || !std::isfinite(n2)) return false;
  const float inv = 1.0f / std::sqrt(n2);
  for (uint32_t j = 0; j < dim; ++j) out[j] = v[j] * inv;
  return true;
}

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
  std::vector<uint8_t> code(m_);
  Encode(v, code.data());
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

// ---------------------------------------------------------------- IvfPqIndex

Result<std::unique_ptr<IvfPqIndex>> IvfPqIndex::Build(const IvfParams& params, uint32_t pq_m,
                                                      const float* data, size_t n,
                                                      const uint64_t* ids, bool keep_raw,
                                                      uint32_t threads) {
  if (data == nullptr) return Invalid("data pointer is null");
  const uint32_t dim = params.dim;
  if (dim == 0) return Invalid("dim must be > 0");
  const uint32_t m = pq_m == 0 ? DefaultPqSubspaces(dim) : pq_m;
  if (m > kPqMaxSubspaces || dim % m != 0) {
    return Invalid("pq_m " + std::to_string(m) + " must divide dim " + std::to_string(dim) +
                   " and be at most " + std::to_string(kPqMaxSubspaces));
  }
  IvfParams coarse = params;
  coarse.bits = 1;  // the RaBitQ side of the model is not used
  ASSIGN_OR_RETURN(std::shared_ptr<const IvfModel> model, IvfModel::Train(coarse, data, n));
  std::vector<uint32_t> cell(n);
  RETURN_IF_ERROR(model->Assign(data, n, cell.data(), threads));
  // Residuals (cosine: of the normalised vector).
  const bool cosine = params.metric == Metric::kCosine;
  std::vector<float> unit;
  const float* vecs = data;
  if (cosine) {
    unit.resize(n * dim);
    for (size_t i = 0; i < n; ++i) {
      if (!UnitCopy(data + i * dim, dim, &unit[i * dim])) {
        return Invalid("vector " + std::to_string(i) + " is a zero vector");
      }
    }
    vecs = unit.data();
  }
  std::vector<float> residual(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const float* c = model->centroid(cell[i]);
    for (uint32_t j = 0; j < dim; ++j) residual[i * dim + j] = vecs[i * dim + j] - c[j];
  }
  ASSIGN_OR_RETURN(PqCodec codec, PqCodec::Train(dim, m, residual.data(), n, params.seed,
                                                 params.kmeans.iterations, threads));
  std::unique_ptr<IvfPqIndex> index(new IvfPqIndex());
  index->model_ = model;
  index->codec_ = std::move(codec);
  index->keep_raw_ = keep_raw;
  const uint32_t cells = model->num_cells();
  index->cells_.resize(cells);
  index->cell_sizes_.assign(cells, 0);
  for (size_t i = 0; i < n; ++i) ++index->cell_sizes_[cell[i]];
  const size_t bb = index->codec_.BlockBytes();
  for (uint32_t c = 0; c < cells; ++c) {
    const size_t blocks = (index->cell_sizes_[c] + kFastScanBlock - 1) / kFastScanBlock;
    index->cells_[c].codes.assign(blocks * bb, '\0');
    index->cells_[c].ids.reserve(index->cell_sizes_[c]);
  }
  std::vector<uint32_t> pos(n);
  for (size_t i = 0; i < n; ++i) {
    Cell& c = index->cells_[cell[i]];
    pos[i] = static_cast<uint32_t>(c.ids.size());
    c.ids.push_back(ids == nullptr ? i : ids[i]);
    if (keep_raw) c.raw_rows.push_back(i);
  }
  // Each vector writes its own nibbles; lanes of one block share bytes, so parallelise by
  // cell.
  const PqCodec& pq = index->codec_;
  std::vector<std::vector<size_t>> members(cells);
  for (size_t i = 0; i < n; ++i) members[cell[i]].push_back(i);
  ParallelFor(cells, threads, 1, [&](size_t b, size_t e, size_t) {
    for (size_t c = b; c < e; ++c) {
      auto* codes = reinterpret_cast<uint8_t*>(index->cells_[c].codes.data());
      for (size_t i : members[c]) {
        pq.EncodeInto(&residual[i * dim], codes + (pos[i] / kFastScanBlock) * bb,
                      pos[i] % kFastScanBlock);
      }
    }
  });
  if (keep_raw) index->raw_.assign(vecs, vecs + n * dim);
  index->size_ = n;
  return index;
}

Result<std::vector<Neighbor>> IvfPqIndex::Search(const float* q, const SearchParams& params) const {
  if (params.rerank && !keep_raw_) {
    return Invalid("rerank needs the raw vectors (build with keep_raw)");
  }
  const uint32_t dim = model_->dim();
  const Metric metric = model_->params().metric;
  SearchParams probe_params = params;
  probe_params.rerank = false;
  probe_params.cell_sizes = cell_sizes_.data();
  ASSIGN_OR_RETURN(std::unique_ptr<IvfModel::Query> query, model_->NewQuery(q, probe_params));
  std::vector<float> qn(q, q + dim);
  if (metric == Metric::kCosine && !UnitCopy(q, dim, qn.data())) {
    return Invalid("query is a zero vector, which has no cosine similarity");
  }
  const bool l2 = metric == Metric::kL2;
  const PqCodec& pq = codec_;
  const size_t bb = pq.BlockBytes();
  std::vector<float> table(size_t{pq.m()} * kPqCentroids);
  std::vector<uint8_t> qtable(bb);
  std::vector<float> x(dim);
  float delta = 0;
  float base = 0;
  if (!l2) {
    pq.Table(qn.data(), false, table.data());
    pq.QuantizeTable(table.data(), qtable.data(), &delta, &base);
  }
  // Candidates re-scored after the uint8 scan: max(4k, 40), or max(20k, 200) with rerank.
  const size_t keep = params.rerank ? std::max<size_t>(size_t{20} * params.k, 200)
                                    : std::max<size_t>(size_t{4} * params.k, 40);
  // Max-heap of (estimate, cell, position).
  struct Cand {
    float est;
    uint32_t cell;
    uint32_t pos;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.est < b.est; };
  std::vector<Cand> heap;
  heap.reserve(keep + 1);
  uint32_t acc[kFastScanBlock];
  for (uint32_t c : query->probe_order()) {
    const Cell& cell = cells_[c];
    const size_t count = cell.ids.size();
    if (count == 0) continue;
    const float* centre = model_->centroid(c);
    float offset = 0;
    if (l2) {
      for (uint32_t j = 0; j < dim; ++j) x[j] = qn[j] - centre[j];
      pq.Table(x.data(), true, table.data());
      pq.QuantizeTable(table.data(), qtable.data(), &delta, &base);
    } else {
      offset = -Dot(qn.data(), centre, dim);
    }
    const auto* codes = reinterpret_cast<const uint8_t*>(cell.codes.data());
    for (size_t b = 0; b * kFastScanBlock < count; ++b) {
      FastScanBlock(codes + b * bb, qtable.data(), pq.groups(), acc);
      const size_t lanes = std::min<size_t>(kFastScanBlock, count - b * kFastScanBlock);
      for (size_t l = 0; l < lanes; ++l) {
        const float est = delta * static_cast<float>(acc[l]) + base + offset;
        if (heap.size() < keep) {
          heap.push_back({est, c, static_cast<uint32_t>(b * kFastScanBlock + l)});
          std::push_heap(heap.begin(), heap.end(), worse);
        } else if (est < heap.front().est) {
          std::pop_heap(heap.begin(), heap.end(), worse);
          heap.back() = {est, c, static_cast<uint32_t>(b * kFastScanBlock + l)};
          std::push_heap(heap.begin(), heap.end(), worse);
        }
      }
    }
  }
  // Re-score the candidates: exact (rerank) or the f32 reconstruction c + r^.
  std::vector<Neighbor> out;
  out.reserve(heap.size());
  std::vector<float> rec(dim);
  for (const Cand& cand : heap) {
    const Cell& cell = cells_[cand.cell];
    Neighbor nb;
    nb.id = cell.ids[cand.pos];
    float internal = 0;  // l2: |q - o|^2; ip, cosine: -<q, o>
    if (params.rerank) {
      const float* v = &raw_[cell.raw_rows[cand.pos] * dim];
      internal = l2 ? L2Sqr(qn.data(), v, dim) : -Dot(qn.data(), v, dim);
    } else {
      const auto* codes = reinterpret_cast<const uint8_t*>(cell.codes.data());
      pq.Decode(codes + (cand.pos / kFastScanBlock) * bb, cand.pos % kFastScanBlock, rec.data());
      const float* centre = model_->centroid(cand.cell);
      for (uint32_t j = 0; j < dim; ++j) rec[j] += centre[j];
      internal = l2 ? L2Sqr(qn.data(), rec.data(), dim) : -Dot(qn.data(), rec.data(), dim);
    }
    switch (metric) {
      case Metric::kL2:
        nb.distance = std::max(0.0f, internal);
        nb.score = std::sqrt(nb.distance);
        break;
      case Metric::kInnerProduct:
        nb.distance = internal;
        nb.score = -internal;
        break;
      case Metric::kCosine:
        nb.distance = 1.0f + internal;
        nb.score = -internal;
        break;
    }
    out.push_back(nb);
  }
  std::sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
  });
  if (out.size() > params.k) out.resize(params.k);
  return out;
}

size_t IvfPqIndex::MemoryBytes() const {
  size_t total = sizeof(*this) + codec_.MemoryBytes();
  const IvfModel& m = *model_;
  total += size_t{m.num_cells()} * m.dim() * sizeof(float) * 2;  // centroids (+ rotated copy)
  total += cells_.capacity() * sizeof(Cell) + cell_sizes_.capacity() * sizeof(uint32_t);
  for (const Cell& c : cells_) {
    total += c.codes.capacity() + c.ids.capacity() * sizeof(uint64_t) +
             c.raw_rows.capacity() * sizeof(size_t);
  }
  total += raw_.capacity() * sizeof(float);
  return total;
}

}  // namespace dreamdb::vector
