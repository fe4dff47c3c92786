// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/partition/partitioner.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "src/base/check.h"
#include "src/index/kernels/byte_io.h"
#include "src/index/kernels/fastscan.h"
#include "src/index/kernels/rng.h"

namespace dreamdb::vector {
namespace {

constexpr uint64_t kLshStream = 0x4c534850;      // "LSHP"
constexpr uint64_t kImiSecondSeed = 0x494d4932;  // "IMI2"

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }

Status CheckFinite(const float* v, size_t n, uint32_t dim, const char* what) {
  for (size_t i = 0; i < n * dim; ++i) {
    if (!std::isfinite(v[i])) {
      return Invalid(std::string(what) + " row " + std::to_string(i / dim) + " column " +
                     std::to_string(i % dim) + " is not finite (NaN or inf)");
    }
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

// ------------------------------------------------------------------ ivf (k-means)

class KMeansPartitioner final : public Partitioner {
 public:
  KMeansPartitioner(Metric metric, uint32_t dim, uint64_t seed, std::vector<float> centroids)
      : Partitioner(IndexAlgorithm::kIvf, metric, dim, std::move(centroids)), seed_(seed) {
    i8_stride_ = (dim + 63) / 64 * 64;
    float cmax = 0;
    for (float v : centres_) cmax = std::max(cmax, std::fabs(v));
    i8_scale_ = cmax > 0 ? cmax / 127.0f : 1.0f;
    centres_i8_.assign(size_t{num_cells_} * i8_stride_, 0);
    centre_i8_sums_.assign(num_cells_, 0);
    for (uint32_t c = 0; c < num_cells_; ++c) {
      for (uint32_t j = 0; j < dim; ++j) {
        const auto v = static_cast<int8_t>(std::lrint(centre(c)[j] / i8_scale_));
        centres_i8_[size_t{c} * i8_stride_ + j] = v;
        centre_i8_sums_[c] += v;
      }
    }
  }

  void AssignRows(const float* rows, size_t n, uint32_t* cells) const override {
    AssignNearest(centres_.data(), num_cells_, rows, n, dim_, metric_, cells);
  }
  void SerializeBody(Bytes* out) const override {
    for (float v : centres_) Put<float>(out, v);
  }
  std::unique_ptr<Prober> NewProber() const override;
  size_t MemoryBytes() const override {
    return Partitioner::MemoryBytes() + centres_i8_.capacity() +
           centre_i8_sums_.capacity() * sizeof(int32_t);
  }

  // More than CentroidIndexOptions::exact_threshold cells: the two-level centroid index used
  // for probing, built on first use (nullptr below the threshold or if the build failed;
  // probing then scans all centroids).
  const CentroidIndex* ProbeIndex() const {
    if (num_cells_ <= CentroidIndexOptions{}.exact_threshold) return nullptr;
    std::call_once(probe_index_once_, [this] {
      CentroidIndexOptions options;
      options.seed = seed_;
      Result<CentroidIndex> index =
          CentroidIndex::Build(centres_.data(), num_cells_, dim_, metric_, options);
      if (index.ok()) probe_index_ = std::make_unique<const CentroidIndex>(std::move(*index));
    });
    return probe_index_.get();
  }

  // Centroids as int8 (one global scale), rows padded to i8_stride_ (a multiple of 64):
  // with AVX-512 VNNI, probing ranks cells with them (4x fewer bytes and instructions than
  // f32); the codecs always use the f32 centres.
  std::vector<int8_t> centres_i8_;
  std::vector<int32_t> centre_i8_sums_;
  float i8_scale_ = 0;
  uint32_t i8_stride_ = 0;

 private:
  uint64_t seed_;
  mutable std::once_flag probe_index_once_;
  mutable std::unique_ptr<const CentroidIndex> probe_index_;
};

class KMeansProber final : public Prober {
 public:
  explicit KMeansProber(const KMeansPartitioner* p) : p_(p) {}
  void Probe(const float* qn, float q_norm2, uint32_t nprobe, const uint32_t* sizes,
             std::vector<uint32_t>* probe) override {
    const KMeansPartitioner& m = *p_;
    const uint32_t dim = m.dim();
    const uint32_t cells = m.num_cells();
    probe->clear();
    if (const CentroidIndex* index = m.ProbeIndex(); index != nullptr) {
      // Many cells: the two-level centroid index finds the candidates, already ranked by
      // their f32 distance (spec/20 §6.4). With sizes, ask for more until nprobe are
      // non-empty.
      uint32_t want = nprobe;
      for (;;) {
        index->Search(qn, want, &order_, &cand_dist_, /*exact_scan=*/want >= cells);
        probe->clear();
        for (uint32_t c : order_) {
          if (probe->size() == nprobe) break;
          if (sizes == nullptr || sizes[c] != 0) probe->push_back(c);
        }
        if (probe->size() == nprobe || want >= cells) break;
        want = std::min(cells, std::max(want * 2, want + 16));
      }
      return;
    }
    cell_dot_.resize(cells);
    cell_dist_.resize(cells);
    if (HasInt8Dot()) {
      // Rank with int8: u = round(q / s_q) + 128, <u, c8> - 128 sum(c8) ~ <q, c> / (s_q s_c).
      float qmax = 0;
      for (uint32_t j = 0; j < dim; ++j) qmax = std::max(qmax, std::fabs(qn[j]));
      const float s_q = qmax > 0 ? qmax / 127.0f : 1.0f;
      q_u8_.assign(m.i8_stride_, 128);
      for (uint32_t j = 0; j < dim; ++j) {
        q_u8_[j] = static_cast<uint8_t>(std::lrint(qn[j] / s_q) + 128);
      }
      cell_i32_.resize(cells);
      DotManyU8I8(q_u8_.data(), m.centres_i8_.data(), cells, m.i8_stride_, cell_i32_.data());
      const float scale = s_q * m.i8_scale_;
      for (uint32_t c = 0; c < cells; ++c) {
        cell_dot_[c] = scale * static_cast<float>(cell_i32_[c] - 128 * m.centre_i8_sums_[c]);
      }
    } else {
      DotMany(qn, m.centres().data(), cells, dim, cell_dot_.data());
    }
    for (uint32_t c = 0; c < cells; ++c) {
      cell_dist_[c] = m.metric() == Metric::kL2 ? q_norm2 + m.centre_norm2(c) - 2 * cell_dot_[c]
                                                : -cell_dot_[c];
    }
    order_.resize(cells);
    std::iota(order_.begin(), order_.end(), 0u);
    if (sizes != nullptr) {
      std::erase_if(order_, [sizes](uint32_t c) { return sizes[c] == 0; });
      nprobe = std::min<uint32_t>(nprobe, static_cast<uint32_t>(order_.size()));
    }
    auto less = [this](uint32_t a, uint32_t b) {
      return cell_dist_[a] < cell_dist_[b] || (cell_dist_[a] == cell_dist_[b] && a < b);
    };
    std::partial_sort(order_.begin(), order_.begin() + nprobe, order_.end(), less);
    probe->assign(order_.begin(), order_.begin() + nprobe);
  }

 private:
  const KMeansPartitioner* p_;
  std::vector<uint8_t> q_u8_;  // int8-quantised query + 128, padded to the i8 stride
  std::vector<int32_t> cell_i32_;
  std::vector<float> cell_dist_;  // per cell: probing distance
  std::vector<float> cell_dot_;   // per cell: <q, c> (int8-approximate with VNNI)
  std::vector<uint32_t> order_;
  std::vector<float> cand_dist_;  // via the centroid index: candidate distances
};

std::unique_ptr<Prober> KMeansPartitioner::NewProber() const {
  return std::make_unique<KMeansProber>(this);
}

// ------------------------------------------------------------------ imi

class ImiPartitioner final : public Partitioner {
 public:
  ImiPartitioner(Metric metric, uint32_t dim, uint32_t s, std::vector<float> first,
                 std::vector<float> second, std::vector<float> centres)
      : Partitioner(IndexAlgorithm::kImi, metric, dim, std::move(centres)),
        s_(s),
        h1_((dim + 1) / 2),
        a_(std::move(first)),
        b_(std::move(second)) {}

  uint32_t imi_size() const override { return s_; }
  uint32_t imi_split() const override { return h1_; }

  // Nearest sub-centroid of each half (l2 and cosine: L2; ip: largest dot), which is the
  // nearest concatenated centre since distances add over the halves.
  void AssignRows(const float* rows, size_t n, uint32_t* cells) const override {
    const Metric sub_metric =
        metric_ == Metric::kInnerProduct ? Metric::kInnerProduct : Metric::kL2;
    const uint32_t h2 = dim_ - h1_;
    std::vector<uint32_t> ia(n);
    std::vector<uint32_t> ib(n);
    std::vector<float> half = Columns(rows, n, dim_, 0, h1_);
    AssignNearest(a_.data(), s_, half.data(), n, h1_, sub_metric, ia.data());
    half = Columns(rows, n, dim_, h1_, h2);
    AssignNearest(b_.data(), s_, half.data(), n, h2, sub_metric, ib.data());
    for (size_t i = 0; i < n; ++i) cells[i] = ia[i] * s_ + ib[i];
  }
  void SerializeBody(Bytes* out) const override {
    Put<uint32_t>(out, s_);
    Put<uint32_t>(out, h1_);
    for (float v : a_) Put<float>(out, v);
    for (float v : b_) Put<float>(out, v);
  }
  std::unique_ptr<Prober> NewProber() const override;
  size_t MemoryBytes() const override {
    return Partitioner::MemoryBytes() + (a_.capacity() + b_.capacity()) * sizeof(float);
  }

  uint32_t s_;
  uint32_t h1_;
  std::vector<float> a_;  // s x h1
  std::vector<float> b_;  // s x (dim - h1)
};

// Multi-sequence algorithm (Babenko & Lempitsky): both halves' sub-centroids sorted by
// their distance to the query half; a min-heap over index pairs (a, b) into the two sorted
// lists, seeded with (0, 0); popping (a, b) pushes (a, b + 1) and, when b == 0, (a + 1, 0),
// so each pair is pushed once, after a pair that is not farther. Pairs pop in increasing
// d1 + d2 (ties by cell number among the pairs in the heap). O(s dim + nprobe log nprobe).
class ImiProber final : public Prober {
 public:
  explicit ImiProber(const ImiPartitioner* p) : p_(p) {}
  void Probe(const float* qn, float /*q_norm2*/, uint32_t nprobe, const uint32_t* sizes,
             std::vector<uint32_t>* probe) override {
    const ImiPartitioner& m = *p_;
    const uint32_t s = m.s_;
    const uint32_t h1 = m.h1_;
    const uint32_t h[2] = {h1, m.dim() - h1};
    const float* book[2] = {m.a_.data(), m.b_.data()};
    const float* qh[2] = {qn, qn + h1};
    for (int half = 0; half < 2; ++half) {
      std::vector<float>& dist = sub_dist_[half];
      dist.resize(s);
      if (m.metric() == Metric::kInnerProduct) {
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
    auto greater = [](const Entry& x, const Entry& y) {
      return x.dist > y.dist || (x.dist == y.dist && x.cell > y.cell);
    };
    auto make = [&](uint32_t a, uint32_t b) {
      return Entry{d0[o0[a]] + d1[o1[b]], o0[a] * s + o1[b], a, b};
    };
    heap_.clear();
    heap_.push_back(make(0, 0));
    probe->clear();
    while (!heap_.empty() && probe->size() < nprobe) {
      std::pop_heap(heap_.begin(), heap_.end(), greater);
      const Entry e = heap_.back();
      heap_.pop_back();
      if (sizes == nullptr || sizes[e.cell] != 0) probe->push_back(e.cell);
      if (e.b + 1 < s) {
        heap_.push_back(make(e.a, e.b + 1));
        std::push_heap(heap_.begin(), heap_.end(), greater);
      }
      if (e.b == 0 && e.a + 1 < s) {
        heap_.push_back(make(e.a + 1, 0));
        std::push_heap(heap_.begin(), heap_.end(), greater);
      }
    }
  }

 private:
  struct Entry {
    float dist;
    uint32_t cell;
    uint32_t a;
    uint32_t b;
  };
  const ImiPartitioner* p_;
  std::vector<float> sub_dist_[2];      // per sub-centroid distance of each half
  std::vector<uint32_t> sub_order_[2];  // sub-centroids sorted by that distance
  std::vector<Entry> heap_;
};

std::unique_ptr<Prober> ImiPartitioner::NewProber() const {
  return std::make_unique<ImiProber>(this);
}

// ------------------------------------------------------------------ lsh

class LshPartitioner final : public Partitioner {
 public:
  LshPartitioner(Metric metric, uint32_t dim, uint32_t b, std::vector<float> planes,
                 std::vector<float> offset, std::vector<float> centres)
      : Partitioner(IndexAlgorithm::kLsh, metric, dim, std::move(centres)),
        b_(b),
        planes_(std::move(planes)),
        offset_(std::move(offset)) {
    plane_offset_.resize(b_);
    for (uint32_t p = 0; p < b_; ++p) {
      plane_offset_[p] = Dot(&planes_[size_t{p} * dim], offset_.data(), dim);
    }
  }

  uint32_t lsh_planes() const override { return b_; }
  uint32_t Pattern(const float* v, float* margins) const {
    uint32_t pattern = 0;
    for (uint32_t p = 0; p < b_; ++p) {
      const float m = Dot(&planes_[size_t{p} * dim_], v, dim_) - plane_offset_[p];
      if (margins != nullptr) margins[p] = m;
      if (m > 0) pattern |= 1u << p;
    }
    return pattern;
  }
  void AssignRows(const float* rows, size_t n, uint32_t* cells) const override {
    for (size_t i = 0; i < n; ++i) cells[i] = Pattern(rows + i * dim_, nullptr);
  }
  void SerializeBody(Bytes* out) const override {
    Put<uint32_t>(out, b_);
    Put<uint32_t>(out, 0);
    for (float v : planes_) Put<float>(out, v);
    for (float v : offset_) Put<float>(out, v);
    for (float v : centres_) Put<float>(out, v);
  }
  std::unique_ptr<Prober> NewProber() const override;
  size_t MemoryBytes() const override {
    return Partitioner::MemoryBytes() +
           (planes_.capacity() + offset_.capacity() + plane_offset_.capacity()) * sizeof(float);
  }

 private:
  uint32_t b_;
  std::vector<float> planes_;        // b x dim
  std::vector<float> offset_;        // dim
  std::vector<float> plane_offset_;  // <plane, offset> per plane
};

// Cells in order of the Hamming distance between their sign pattern and the query's, ties
// by the sum of |margin| over the differing planes (a flip across a hyperplane the query is
// close to is cheaper), then by cell number.
class LshProber final : public Prober {
 public:
  explicit LshProber(const LshPartitioner* p) : p_(p) {}
  void Probe(const float* qn, float /*q_norm2*/, uint32_t nprobe, const uint32_t* sizes,
             std::vector<uint32_t>* probe) override {
    const LshPartitioner& m = *p_;
    const uint32_t b = m.lsh_planes();
    margins_.resize(b);
    const uint32_t pattern = m.Pattern(qn, margins_.data());
    const uint32_t cells = m.num_cells();
    cost_.resize(cells);
    hamming_.resize(cells);
    order_.clear();
    for (uint32_t c = 0; c < cells; ++c) {
      if (sizes != nullptr && sizes[c] == 0) continue;
      const uint32_t diff = c ^ pattern;
      float cost = 0;
      for (uint32_t p = 0; p < b; ++p) {
        if ((diff >> p) & 1u) cost += std::fabs(margins_[p]);
      }
      hamming_[c] = static_cast<float>(std::popcount(diff));
      cost_[c] = cost;
      order_.push_back(c);
    }
    nprobe = std::min<uint32_t>(nprobe, static_cast<uint32_t>(order_.size()));
    auto less = [this](uint32_t x, uint32_t y) {
      if (hamming_[x] != hamming_[y]) return hamming_[x] < hamming_[y];
      if (cost_[x] != cost_[y]) return cost_[x] < cost_[y];
      return x < y;
    };
    std::partial_sort(order_.begin(), order_.begin() + nprobe, order_.end(), less);
    probe->assign(order_.begin(), order_.begin() + nprobe);
  }

 private:
  const LshPartitioner* p_;
  std::vector<float> margins_;  // signed distance to each hyperplane
  std::vector<float> cost_;
  std::vector<float> hamming_;
  std::vector<uint32_t> order_;
};

std::unique_ptr<Prober> LshPartitioner::NewProber() const {
  return std::make_unique<LshProber>(this);
}

}  // namespace

Partitioner::Partitioner(IndexAlgorithm algorithm, Metric metric, uint32_t dim,
                         std::vector<float> centres)
    : algorithm_(algorithm),
      metric_(metric),
      dim_(dim),
      num_cells_(static_cast<uint32_t>(centres.size() / dim)),
      centres_(std::move(centres)) {
  DCHECK(dim_ > 0 && centres_.size() == size_t{num_cells_} * dim_);
  centre_norms_.resize(num_cells_);
  for (uint32_t c = 0; c < num_cells_; ++c) centre_norms_[c] = NormSqr(centre(c), dim_);
}

size_t Partitioner::MemoryBytes() const {
  return (centres_.capacity() + centre_norms_.capacity()) * sizeof(float);
}

Result<std::unique_ptr<const Partitioner>> Partitioner::KMeans(Metric metric, uint32_t dim,
                                                               uint64_t seed,
                                                               std::vector<float> centroids,
                                                               bool normalize) {
  if (dim == 0 || centroids.empty() || centroids.size() % dim != 0) {
    return Invalid("centroids must be num_cells x dim floats");
  }
  const size_t cells = centroids.size() / dim;
  RETURN_IF_ERROR(CheckFinite(centroids.data(), cells, dim, "centroid"));
  if (normalize && metric == Metric::kCosine) {
    for (size_t c = 0; c < cells; ++c) {
      float* row = &centroids[c * dim];
      double s = 0;
      for (uint32_t j = 0; j < dim; ++j) s += static_cast<double>(row[j]) * row[j];
      if (!(s > 0)) {
        row[0] = 1;  // degenerate: any unit vector
        continue;
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(s));
      for (uint32_t j = 0; j < dim; ++j) row[j] *= inv;
    }
  }
  return std::unique_ptr<const Partitioner>(
      new KMeansPartitioner(metric, dim, seed, std::move(centroids)));
}

Result<std::unique_ptr<const Partitioner>> Partitioner::SingleCell(Metric metric, uint32_t dim,
                                                                   uint64_t seed,
                                                                   std::vector<float> centre) {
  if (centre.size() != dim) return Invalid("a single cell's centre must have dim floats");
  return KMeans(metric, dim, seed, std::move(centre), /*normalize=*/true);
}

Result<std::unique_ptr<const Partitioner>> Partitioner::Imi(Metric metric, uint32_t dim, uint32_t s,
                                                            std::vector<float> first,
                                                            std::vector<float> second) {
  if (dim < 2) {
    return Invalid("imi needs dim >= 2 (the vector is split in two halves), got dim " +
                   std::to_string(dim));
  }
  if (s == 0 || s > kMaxImiSize) {
    return Invalid("imi codebook size must be in 1.." + std::to_string(kMaxImiSize) + ", got " +
                   std::to_string(s));
  }
  const uint32_t h1 = (dim + 1) / 2;
  const uint32_t h2 = dim - h1;
  if (first.size() != size_t{s} * h1 || second.size() != size_t{s} * h2) {
    return Invalid("imi codebooks must be s x ceil(dim/2) and s x floor(dim/2) floats");
  }
  RETURN_IF_ERROR(CheckFinite(first.data(), s, h1, "imi first codebook"));
  RETURN_IF_ERROR(CheckFinite(second.data(), s, h2, "imi second codebook"));
  std::vector<float> centres(size_t{s} * s * dim);
  for (uint32_t i = 0; i < s; ++i) {
    for (uint32_t j = 0; j < s; ++j) {
      float* row = &centres[(size_t{i} * s + j) * dim];
      std::copy(&first[size_t{i} * h1], &first[size_t{i} * h1] + h1, row);
      std::copy(&second[size_t{j} * h2], &second[size_t{j} * h2] + h2, row + h1);
    }
  }
  return std::unique_ptr<const Partitioner>(
      new ImiPartitioner(metric, dim, s, std::move(first), std::move(second), std::move(centres)));
}

Result<std::unique_ptr<const Partitioner>> Partitioner::Lsh(Metric metric, uint32_t dim,
                                                            std::vector<float> planes,
                                                            std::vector<float> offset,
                                                            std::vector<float> centres) {
  const size_t b = dim == 0 ? 0 : planes.size() / dim;
  if (dim == 0 || planes.size() % dim != 0 || b == 0 || b > kMaxLshPlanes) {
    return Invalid("lsh needs 1.." + std::to_string(kMaxLshPlanes) +
                   " hyperplanes of dim floats, got " + std::to_string(planes.size()) + " floats");
  }
  const size_t cells = size_t{1} << b;
  if (offset.size() != dim || centres.size() != cells * dim) {
    return Invalid("lsh offset must have dim floats and centres 2^b x dim floats");
  }
  RETURN_IF_ERROR(CheckFinite(planes.data(), b, dim, "lsh hyperplane"));
  RETURN_IF_ERROR(CheckFinite(offset.data(), 1, dim, "lsh offset"));
  RETURN_IF_ERROR(CheckFinite(centres.data(), cells, dim, "lsh centre"));
  return std::unique_ptr<const Partitioner>(
      new LshPartitioner(metric, dim, static_cast<uint32_t>(b), std::move(planes),
                         std::move(offset), std::move(centres)));
}

namespace {

Result<std::unique_ptr<const Partitioner>> TrainImi(Metric metric, uint32_t dim, uint32_t num_cells,
                                                    uint64_t seed, const KMeansOptions& options,
                                                    const float* data, size_t n) {
  uint32_t s = 0;
  if (num_cells == 0) {
    s = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(2 * std::pow(n, 0.25))));
  } else {
    s = static_cast<uint32_t>(std::ceil(std::sqrt(static_cast<double>(num_cells))));
    while (uint64_t{s} * s < num_cells) ++s;
    while (s > 1 && uint64_t{s - 1} * (s - 1) >= num_cells) --s;
  }
  if (s > kMaxImiSize) {
    return Invalid("imi codebook size " + std::to_string(s) + " exceeds " +
                   std::to_string(kMaxImiSize) + " (num_cells " + std::to_string(num_cells) + ")");
  }
  s = static_cast<uint32_t>(std::min<size_t>(s, n));
  const uint32_t h1 = (dim + 1) / 2;
  const uint32_t h2 = dim - h1;
  KMeansOptions ko = options;
  ko.spherical = false;  // the halves of unit vectors are not unit vectors
  ko.seed = seed;
  std::vector<float> half = Columns(data, n, dim, 0, h1);
  ASSIGN_OR_RETURN(std::vector<float> a, TrainKMeans(half.data(), n, h1, s, ko));
  half = Columns(data, n, dim, h1, h2);
  ko.seed = seed ^ kImiSecondSeed;
  ASSIGN_OR_RETURN(std::vector<float> b, TrainKMeans(half.data(), n, h2, s, ko));
  return Partitioner::Imi(metric, dim, s, std::move(a), std::move(b));
}

Result<std::unique_ptr<const Partitioner>> TrainLsh(Metric metric, uint32_t dim, uint32_t num_cells,
                                                    uint64_t seed, const float* data, size_t n) {
  uint32_t b = 0;
  if (num_cells == 0) {
    b = static_cast<uint32_t>(std::lround(std::log2(static_cast<double>(n)) / 2));
    b = std::clamp<uint32_t>(b, 1, kMaxLshPlanes);
  } else {
    while (b < 32 && (uint64_t{1} << b) < num_cells) ++b;
    b = std::max<uint32_t>(b, 1);
  }
  if (b > kMaxLshPlanes) {
    return Invalid("lsh with " + std::to_string(b) + " hyperplanes (num_cells " +
                   std::to_string(num_cells) + ") exceeds the maximum of " +
                   std::to_string(kMaxLshPlanes) + " (65536 cells)");
  }
  std::vector<float> planes(size_t{b} * dim);
  Rng rng(seed, kLshStream);
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
  return Partitioner::Lsh(metric, dim, std::move(planes), std::move(offset), std::move(centres));
}

}  // namespace

Result<std::unique_ptr<const Partitioner>> Partitioner::Train(IndexAlgorithm algorithm,
                                                              Metric metric, uint32_t dim,
                                                              uint32_t num_cells, uint64_t seed,
                                                              const KMeansOptions& ko,
                                                              const float* rows, size_t n) {
  DCHECK(n > 0 && rows != nullptr);
  switch (algorithm) {
    case IndexAlgorithm::kImi:
      return TrainImi(metric, dim, num_cells, seed, ko, rows, n);
    case IndexAlgorithm::kLsh:
      return TrainLsh(metric, dim, num_cells, seed, rows, n);
    case IndexAlgorithm::kIvf:
      break;
    case IndexAlgorithm::kGraph:
      return Invalid("a graph is not a cell partition (use the graph index)");
  }
  uint32_t k = num_cells;
  if (k == 0) k = std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(std::sqrt(n))));
  k = static_cast<uint32_t>(std::min<size_t>(k, n));
  KMeansOptions options = ko;
  options.seed = seed;
  options.spherical = metric == Metric::kCosine;
  ASSIGN_OR_RETURN(std::vector<float> centroids, TrainKMeans(rows, n, dim, k, options));
  return KMeans(metric, dim, seed, std::move(centroids), /*normalize=*/true);
}

}  // namespace dreamdb::vector
