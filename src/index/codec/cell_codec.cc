// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/codec/cell_codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "src/base/check.h"
#include "src/index/kernels/byte_io.h"
#include "src/index/kernels/fastscan.h"

namespace dreamdb::vector {
namespace {

static_assert(std::endian::native == std::endian::little, "byte formats assume little-endian");

constexpr char kCellMagic[4] = {'D', 'V', 'I', 'C'};
constexpr uint16_t kCellVersion = 1;    // rabitq cell codes (spec/20 §5)
constexpr uint16_t kCellVersionPq = 2;  // pq4 cell codes (spec/20 §8.3)
constexpr size_t kFactorBytes = 3 * kFastScanBlock * sizeof(float);  // add, rescale, error

Status Corrupt(std::string msg) { return Status(StatusCode::kCorrupt, std::move(msg)); }

size_t NumBlocks(size_t count) { return (count + kFastScanBlock - 1) / kFastScanBlock; }

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

EstimatorMetric EstMetric(Metric m) {
  return m == Metric::kL2 ? EstimatorMetric::kL2 : EstimatorMetric::kInnerProduct;
}

// ------------------------------------------------------------------ RaBitQ

class RaBitQCodec final : public CellCodec {
 public:
  RaBitQCodec(Metric metric, uint32_t dim, uint32_t bits, std::unique_ptr<Rotation> rotation,
              const std::vector<float>& centres)
      : CellCodec(Quantizer::kRaBitQ, metric, dim), bits_(bits), rotation_(std::move(rotation)) {
    DCHECK(bits_ >= 1 && bits_ <= 8 && rotation_ != nullptr);
    DCHECK(rotation_->padded_dim() == padded_dim());
    const uint32_t d = padded_dim();
    const size_t cells = centres.size() / dim;
    rotated_.assign(cells * d, 0);
    for (size_t c = 0; c < cells; ++c) rotation_->Apply(&centres[c * dim], &rotated_[c * d]);
  }

  uint32_t bits() const override { return bits_; }
  const Rotation* rotation() const override { return rotation_.get(); }
  const float* rotated_centre(uint32_t cell) const {
    return &rotated_[size_t{cell} * padded_dim()];
  }
  size_t SignBlockBytes() const override { return size_t{padded_dim()} / 4 * 16 + kFactorBytes; }
  // bits > 1: all `bits` planes of the full code (the top plane repeats the signs, so the
  // refined estimate is exact in the code, not limited by the 8-bit FastScan table).
  size_t PlaneBlockBytes() const override {
    return bits_ > 1 ? kFastScanBlock * size_t{bits_} * padded_dim() / 8 + kFactorBytes : 0;
  }

  void Encode(uint32_t cell, float* scratch, uint8_t* codes, const CellView& view,
              size_t pos) const override {
    const uint32_t d = padded_dim();
    const uint32_t ex = bits_ - 1;
    const auto lane = static_cast<uint32_t>(pos % kFastScanBlock);
    float* r = scratch + d;  // d
    rotation_->Apply(scratch, r);
    CodeFactors f1;
    CodeFactors fex;
    EncodeResidual(r, rotated_centre(cell), d, bits_, EstMetric(metric()), codes, &f1, &fex);
    uint8_t* signs = view.Signs(pos / kFastScanBlock);
    const uint32_t groups = d / 4;
    // Gathers bit b of 8 consecutive code bytes into one byte (bit j from byte j).
    auto gather = [codes](uint32_t i, uint32_t b) -> uint8_t {
      uint64_t w;
      std::memcpy(&w, codes + i, 8);
      return static_cast<uint8_t>((((w >> b) & 0x0101010101010101ULL) * 0x0102040810204080ULL) >>
                                  56);
    };
    for (uint32_t g = 0; g < groups; g += 2) {
      const uint8_t both = gather(4 * g, ex);
      SetFastScanNibble(signs, g, lane, both & 0x0f);
      SetFastScanNibble(signs, g + 1, lane, both >> 4);
    }
    PutFactors(signs + size_t{groups} * 16, lane, f1);
    if (ex == 0) return;
    const size_t lane_bytes = size_t{bits_} * d / 8;
    uint8_t* planes = view.Planes(pos / kFastScanBlock) + lane * lane_bytes;
    for (uint32_t b = 0; b < bits_; ++b) {
      uint8_t* plane = planes + size_t{b} * d / 8;
      for (uint32_t i = 0; i < d; i += 8) plane[i / 8] = gather(i, b);
    }
    PutFactors(view.Planes(pos / kFastScanBlock) + kFastScanBlock * lane_bytes, lane, fex);
  }

  void CopyLane(const CellView& src, size_t from, const CellView& dst, size_t to) const override {
    const uint32_t d = padded_dim();
    const uint32_t groups = d / 4;
    const auto sl = static_cast<uint32_t>(from % kFastScanBlock);
    const auto dl = static_cast<uint32_t>(to % kFastScanBlock);
    const uint8_t* ss = src.Signs(from / kFastScanBlock);
    uint8_t* ds = dst.Signs(to / kFastScanBlock);
    for (uint32_t g = 0; g < groups; ++g) {
      SetFastScanNibble(ds, g, dl, GetFastScanNibble(ss, g, sl));
    }
    PutFactors(ds + size_t{groups} * 16, dl, GetFactors(ss + size_t{groups} * 16, sl));
    if (bits_ == 1) return;
    const size_t lane_bytes = size_t{bits_} * d / 8;
    const uint8_t* sp = src.Planes(from / kFastScanBlock);
    uint8_t* dp = dst.Planes(to / kFastScanBlock);
    std::memcpy(dp + dl * lane_bytes, sp + sl * lane_bytes, lane_bytes);
    PutFactors(dp + kFastScanBlock * lane_bytes, dl,
               GetFactors(sp + kFastScanBlock * lane_bytes, sl));
  }

  void SerializeSection(Bytes* out) const override {
    for (float v : rotation_->dense_matrix()) Put<float>(out, v);
  }
  std::unique_ptr<CellScanner> NewScanner() const override;
  size_t MemoryBytes() const override {
    return sizeof(*this) + sizeof(Rotation) + rotated_.capacity() * sizeof(float) +
           rotation_->dense_matrix().capacity() * sizeof(float) +
           4 * size_t{padded_dim()} * sizeof(float);  // Hadamard signs
  }

 protected:
  uint16_t version() const override { return kCellVersion; }
  uint8_t header_byte6() const override { return static_cast<uint8_t>(bits_); }
  uint32_t header_word8() const override { return padded_dim(); }

 private:
  uint32_t bits_;
  std::unique_ptr<Rotation> rotation_;
  std::vector<float> rotated_;  // num_cells x D, P c
};

// Search (as RaBitQ-Library's IVF): the query is rotated once; each scanned block goes
// through the FastScan 1-bit kernel, which gives an estimate and an error bound per vector;
// only vectors whose lower bound beats the current k-th distance get their extended-bit
// estimate (bits > 1) or are kept for exact re-ranking (rerank).
class RaBitQScanner final : public CellScanner {
 public:
  explicit RaBitQScanner(const RaBitQCodec* codec)
      : CellScanner(codec->metric(), codec->dim()), c_(codec) {}

  Status Scan(const CellRef& cell, ByteView codes, uint32_t count, const uint64_t* ids,
              const KeepFn* keep) override {
    const RaBitQCodec& m = *c_;
    const uint32_t dim = m.dim();
    const uint32_t d = m.padded_dim();
    const uint32_t bits = m.bits();
    const CellView view = m.View(codes.data(), count);
    // Exact (f32) for the estimator (a partition may rank cells with int8 approximations).
    const float dot = Dot(qn_.data(), cell.centre, dim);
    const float l2 = std::max(0.0f, q_norm2_ + cell.centre_norm2 - 2 * dot);
    const float g_add = metric_ == Metric::kL2 ? l2 : -dot;
    const float g_err = std::sqrt(l2);
    const float sum = lut_.sum;
    const float half_sum = 0.5f * sum;
    const size_t groups = d / 4;
    const size_t lane_bytes = size_t{bits} * d / 8;
    uint32_t acc[kFastScanBlock];
    float lower[kFastScanBlock];
    float est1[kFastScanBlock];
    scanned_ += count;
    for (size_t b = 0; b < view.blocks; ++b) {
      const uint8_t* signs = view.Signs(b);
      FastScanBlock(signs, lut_.lut.data(), groups, acc);
      const auto lanes =
          static_cast<uint32_t>(std::min<size_t>(kFastScanBlock, count - b * kFastScanBlock));
      float threshold = Threshold();
      // Candidates of this block against the threshold at its start (it only decreases, so
      // each is re-checked below); their plane rows are prefetched together.
      const BlockEstimateParams ep{lut_.delta, lut_.base, half_sum, g_add, g_err, threshold};
      uint32_t mask = EstimateBlock(acc, signs + groups * 16, ep, est1, lower);
      if (lanes < kFastScanBlock) mask &= (1u << lanes) - 1;
      uint32_t cand[kFastScanBlock];
      uint32_t nc = 0;
      for (; mask != 0; mask &= mask - 1) {
        cand[nc++] = static_cast<uint32_t>(std::countr_zero(mask));
      }
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
        if (rerank_) {
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

  Result<std::vector<Neighbor>> Finish(const ExactFn* exact, const PrefetchFn* prefetch) override {
    std::vector<Neighbor> out;
    if (!rerank_) {
      std::sort_heap(heap_.begin(), heap_.end());
      out.reserve(heap_.size());
      for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(metric_, id, dist));
      heap_.clear();
      return out;
    }
    const float bound = Threshold();
    std::erase_if(cands_, [bound](const Candidate& c) { return c.lower >= bound; });
    if (exact == nullptr || !*exact) {
      std::sort(cands_.begin(), cands_.end(), [](const Candidate& a, const Candidate& b) {
        return a.est < b.est || (a.est == b.est && a.id < b.id);
      });
      for (size_t i = 0; i < cands_.size() && i < k_; ++i) {
        out.push_back(MakeNeighbor(metric_, cands_[i].id, cands_[i].est));
      }
      return out;
    }
    std::sort(cands_.begin(), cands_.end(), [](const Candidate& a, const Candidate& b) {
      return a.lower < b.lower || (a.lower == b.lower && a.id < b.id);
    });
    if (prefetch != nullptr && *prefetch) {
      // Every candidate below the bound may be scored (the bound only tightens).
      ids_.clear();
      const float start_bound = Threshold();
      for (const Candidate& c : cands_) {
        if (c.lower >= start_bound) break;
        ids_.push_back(c.id);
      }
      RETURN_IF_ERROR((*prefetch)(ids_.data(), ids_.size()));
    }
    heap_.clear();
    const size_t batch = std::max<size_t>(16, k_);
    size_t i = 0;
    while (i < cands_.size() && cands_[i].lower < Threshold()) {
      ids_.clear();
      while (i < cands_.size() && ids_.size() < batch && cands_[i].lower < Threshold()) {
        ids_.push_back(cands_[i++].id);
      }
      RETURN_IF_ERROR(RerankBatch(*exact, &ids_));
    }
    std::sort_heap(heap_.begin(), heap_.end());
    for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(metric_, id, dist));
    heap_.clear();
    return out;
  }

 private:
  struct Candidate {
    float lower;
    float est;
    uint64_t id;
  };
  void Start() override {
    const uint32_t d = c_->padded_dim();
    x_.resize(d);
    c_->rotation()->Apply(qn_.data(), x_.data());
    BuildQueryLut(x_.data(), d, &lut_);
    cands_.clear();
  }

  const RaBitQCodec* c_;
  std::vector<float> x_;  // P q, D
  QueryLut lut_;
  std::vector<Candidate> cands_;  // rerank candidates
  std::vector<uint64_t> ids_;
};

std::unique_ptr<CellScanner> RaBitQCodec::NewScanner() const {
  return std::make_unique<RaBitQScanner>(this);
}

// ------------------------------------------------------------------ PQ4

class Pq4Codec final : public CellCodec {
 public:
  Pq4Codec(Metric metric, PqCodec pq)
      : CellCodec(Quantizer::kPq4, metric, pq.dim()), pq_(std::move(pq)) {}

  uint32_t bits() const override { return 4; }
  const PqCodec* pq() const override { return &pq_; }
  // The FastScan blocks of PQ codes take the place of the sign blocks; no plane section.
  size_t SignBlockBytes() const override { return pq_.BlockBytes(); }
  size_t PlaneBlockBytes() const override { return 0; }

  void Encode(uint32_t /*cell*/, float* scratch, uint8_t* /*code*/, const CellView& view,
              size_t pos) const override {
    pq_.EncodeInto(scratch, view.Signs(pos / kFastScanBlock),
                   static_cast<uint32_t>(pos % kFastScanBlock));
  }
  void CopyLane(const CellView& src, size_t from, const CellView& dst, size_t to) const override {
    const auto sl = static_cast<uint32_t>(from % kFastScanBlock);
    const auto dl = static_cast<uint32_t>(to % kFastScanBlock);
    const uint8_t* ss = src.Signs(from / kFastScanBlock);
    uint8_t* ds = dst.Signs(to / kFastScanBlock);
    for (uint32_t s = 0; s < pq_.m(); ++s)
      SetFastScanNibble(ds, s, dl, GetFastScanNibble(ss, s, sl));
  }
  // u32 m, u32 0, then m x 16 x (dim / m) codebook floats (spec/20 §8.2).
  void SerializeSection(Bytes* out) const override {
    Put<uint32_t>(out, pq_.m());
    Put<uint32_t>(out, 0);
    for (float v : pq_.codebooks()) Put<float>(out, v);
  }
  std::unique_ptr<CellScanner> NewScanner() const override;
  size_t MemoryBytes() const override { return sizeof(*this) + pq_.MemoryBytes(); }

 protected:
  uint16_t version() const override { return kCellVersionPq; }
  // byte 6 = quantizer (1 = pq4), offset 8 = sub-spaces.
  uint8_t header_byte6() const override { return static_cast<uint8_t>(Quantizer::kPq4); }
  uint32_t header_word8() const override { return pq_.m(); }

 private:
  PqCodec pq_;
};

// pq4 (spec/20 §8.4): FastScan over the 8-bit tables. Without rerank, a lane whose 8-bit
// estimate minus the worst-case rounding of its m table entries (m * delta / 2, plus one
// delta for the f32 arithmetic) beats the k-th best gets the f32 table sum, which is
// pushed; with rerank the PqRerankCandidates(k) best 8-bit estimates are kept.
class Pq4Scanner final : public CellScanner {
 public:
  explicit Pq4Scanner(const Pq4Codec* codec)
      : CellScanner(codec->metric(), codec->dim()), c_(codec) {}

  Status Scan(const CellRef& cell, ByteView codes, uint32_t count, const uint64_t* ids,
              const KeepFn* keep) override {
    const PqCodec& pq = *c_->pq();
    const uint32_t dim = c_->dim();
    if (count == 0) return Status::Ok();
    scanned_ += count;
    const float* centre = cell.centre;
    float offset = 0;
    if (metric_ == Metric::kL2) {
      for (uint32_t j = 0; j < dim; ++j) x_[j] = qn_[j] - centre[j];
      pq.Table(x_.data(), true, table_.data());
      pq.QuantizeTable(table_.data(), q8_.data(), &delta_, &base_);
    } else {
      offset = -Dot(qn_.data(), centre, dim);
    }
    const uint32_t sub = pq.m();
    // With rerank the candidates are keyed by the 8-bit estimate itself (they are all
    // re-scored exactly), so there is no slack and no f32 sum.
    const bool rerank = rerank_;
    const float slack = rerank ? 0.0f : delta_ * (0.5f * static_cast<float>(sub) + 1.0f);
    const float base = base_ + offset;
    const size_t bb = pq.BlockBytes();
    const auto* blocks = reinterpret_cast<const uint8_t*>(codes.data()) + kCellHeaderBytes;
    const float* table = table_.data();
    uint32_t acc[kFastScanBlock];
    float threshold = Threshold();
    for (size_t b = 0; b * kFastScanBlock < count; ++b) {
      const uint8_t* block = blocks + b * bb;
      FastScanBlock(block, q8_.data(), pq.groups(), acc);
      const auto lanes =
          static_cast<uint32_t>(std::min<size_t>(kFastScanBlock, count - b * kFastScanBlock));
      for (uint32_t lane = 0; lane < lanes; ++lane) {
        const float approx = delta_ * static_cast<float>(acc[lane]) + base;
        if (approx - slack >= threshold) continue;
        const uint64_t id = ids[b * kFastScanBlock + lane];
        if (keep != nullptr && !(*keep)(id)) continue;
        if (rerank) {
          Push(approx, id);
          threshold = Threshold();
          continue;
        }
        // f32 table sum in increasing sub-space order (nibble s of the lane: byte 16 s +
        // lane % 16, low half for lanes 0..15, high half for 16..31).
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

  Result<std::vector<Neighbor>> Finish(const ExactFn* exact, const PrefetchFn* prefetch) override {
    std::vector<Neighbor> out;
    std::sort_heap(heap_.begin(), heap_.end());  // best estimate first, ties by id
    if (!rerank_ || exact == nullptr || !*exact) {
      for (size_t i = 0; i < heap_.size() && i < k_; ++i) {
        out.push_back(MakeNeighbor(metric_, heap_[i].second, heap_[i].first));
      }
      heap_.clear();
      return out;
    }
    // Every kept candidate (up to PqRerankCandidates(k)) is re-scored: PQ has no error bound.
    std::vector<std::pair<float, uint64_t>> cands;
    cands.swap(heap_);
    heap_limit_ = k_;
    if (prefetch != nullptr && *prefetch) {
      ids_.clear();
      for (const auto& c : cands) ids_.push_back(c.second);
      RETURN_IF_ERROR((*prefetch)(ids_.data(), ids_.size()));
    }
    const size_t batch = std::max<size_t>(16, k_);
    for (size_t i = 0; i < cands.size();) {
      ids_.clear();
      while (i < cands.size() && ids_.size() < batch) ids_.push_back(cands[i++].second);
      RETURN_IF_ERROR(RerankBatch(*exact, &ids_));
    }
    std::sort_heap(heap_.begin(), heap_.end());
    for (const auto& [dist, id] : heap_) out.push_back(MakeNeighbor(metric_, id, dist));
    heap_.clear();
    return out;
  }

 private:
  void Start() override {
    const PqCodec& pq = *c_->pq();
    if (rerank_) heap_limit_ = std::max<size_t>(k_, PqRerankCandidates(k_));
    table_.resize(size_t{pq.m()} * kPqCentroids);
    q8_.resize(pq.BlockBytes());
    x_.resize(c_->dim());
    if (metric_ != Metric::kL2) {
      // ip, cosine: -<q_s, C_s,j> does not depend on the cell; built once.
      pq.Table(qn_.data(), false, table_.data());
      pq.QuantizeTable(table_.data(), q8_.data(), &delta_, &base_);
    }
  }

  const Pq4Codec* c_;
  // f32 table (m x 16) and its 8-bit copy (groups x 16); ip/cosine: built once per query,
  // l2: per scanned cell (tables of q - c).
  std::vector<float> table_;
  std::vector<uint8_t> q8_;
  std::vector<float> x_;
  float delta_ = 0;
  float base_ = 0;
  std::vector<uint64_t> ids_;
};

std::unique_ptr<CellScanner> Pq4Codec::NewScanner() const {
  return std::make_unique<Pq4Scanner>(this);
}

}  // namespace

std::unique_ptr<const CellCodec> CellCodec::RaBitQ(Metric metric, uint32_t dim, uint32_t bits,
                                                   std::unique_ptr<Rotation> rotation,
                                                   const std::vector<float>& centres) {
  return std::make_unique<const RaBitQCodec>(metric, dim, bits, std::move(rotation), centres);
}

std::unique_ptr<const CellCodec> CellCodec::Pq4(Metric metric, PqCodec codec) {
  return std::make_unique<const Pq4Codec>(metric, std::move(codec));
}

Bytes CellCodec::EmptyCell(uint32_t count) const {
  Bytes out;
  out.append(kCellMagic, 4);
  Put<uint16_t>(&out, version());
  Put<uint8_t>(&out, header_byte6());
  Put<uint8_t>(&out, 0);
  Put<uint32_t>(&out, header_word8());
  Put<uint32_t>(&out, count);
  out.resize(kCellHeaderBytes + NumBlocks(count) * (SignBlockBytes() + PlaneBlockBytes()), '\0');
  return out;
}

Result<uint32_t> CellCodec::CellCount(ByteView codes) const {
  if (codes.size() < kCellHeaderBytes || std::memcmp(codes.data(), kCellMagic, 4) != 0) {
    return Corrupt("cell codes: missing 'DVIC' header");
  }
  const char* p = codes.data();
  const uint16_t v = Get<uint16_t>(p + 4);
  if (v > kCellVersionPq) {
    return Status(StatusCode::kUnsupported, "cell codes format version " + std::to_string(v) +
                                                " is newer than " + std::to_string(kCellVersionPq));
  }
  const uint32_t byte6 = Get<uint8_t>(p + 6);
  const uint32_t word8 = Get<uint32_t>(p + 8);
  const uint32_t count = Get<uint32_t>(p + 12);
  if (v == 0 || p[7] != 0) return Corrupt("cell codes: bad version or reserved byte");
  const bool pq = quantizer() == Quantizer::kPq4;
  if (v == kCellVersionPq && !pq) {
    return Corrupt("cell codes: a pq4 block (version 2) given to a rabitq model");
  }
  if (v == kCellVersion && pq) {
    return Corrupt("cell codes: a rabitq block (version 1) given to a pq4 model");
  }
  if (pq) {
    if (byte6 != 1 || word8 != header_word8()) {
      return Corrupt("cell codes: pq4 header (quantizer " + std::to_string(byte6) +
                     ", sub-spaces " + std::to_string(word8) + ") does not match the model (1, " +
                     std::to_string(header_word8()) + ")");
    }
  } else if (byte6 != bits() || word8 != padded_dim()) {
    return Corrupt("cell codes: bits/dimension (" + std::to_string(byte6) + ", " +
                   std::to_string(word8) + ") do not match the model (" + std::to_string(bits()) +
                   ", " + std::to_string(padded_dim()) + ")");
  }
  if (codes.size() !=
      kCellHeaderBytes + NumBlocks(count) * (SignBlockBytes() + PlaneBlockBytes())) {
    return Corrupt("cell codes: size " + std::to_string(codes.size()) + " does not match count " +
                   std::to_string(count));
  }
  return count;
}

void CellCodec::SetCount(Bytes* codes, uint32_t count) {
  DCHECK(codes->size() >= kCellHeaderBytes);
  std::memcpy(codes->data() + 12, &count, 4);
}

CellView CellCodec::View(const char* data, uint32_t count) const {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): read-only users never write.
  auto* base = reinterpret_cast<uint8_t*>(const_cast<char*>(data)) + kCellHeaderBytes;
  return CellView{base, NumBlocks(count), SignBlockBytes(), PlaneBlockBytes()};
}

// ------------------------------------------------------------------ scanner

void CellScanner::Reset(const float* qn, float q_norm2, uint32_t k, bool rerank) {
  DCHECK(k > 0);
  qn_.assign(qn, qn + dim_);
  q_norm2_ = q_norm2;
  k_ = k;
  rerank_ = rerank;
  heap_limit_ = k;
  heap_.clear();
  scanned_ = 0;
  refined_ = 0;
  Start();
}

void CellScanner::HeapIds(std::vector<uint64_t>* out) const {
  out->clear();
  for (const auto& e : heap_) out->push_back(e.second);
}

float CellScanner::Threshold() const {
  return heap_.size() < heap_limit_ ? std::numeric_limits<float>::infinity() : heap_.front().first;
}

void CellScanner::Push(float dist, uint64_t id) {
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

Status CellScanner::RerankBatch(const ExactFn& exact, std::vector<uint64_t>* ids) {
  dists_.resize(ids->size());
  RETURN_IF_ERROR(exact(ids->data(), ids->size(), dists_.data()));
  for (size_t j = 0; j < ids->size(); ++j) Push(InternalDistance(metric_, dists_[j]), (*ids)[j]);
  return Status::Ok();
}

}  // namespace dreamdb::vector
