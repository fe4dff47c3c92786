// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// What a cell stores per vector (spec/20 §5 RaBitQ cell codes, §8.3 PQ4 cell codes): the
// codec half of an IvfModel (src/index/ivf.h), apart from the partition that decides the
// cell (src/index/partition/partitioner.h) and from where cell blocks are stored
// (src/index/cell_source.h).
//
// A cell codes block is a 16-byte header ("DVIC", version, quantizer fields, count) and
// FastScan blocks of 32 vectors: first every block's "sign" section (RaBitQ: 1-bit codes +
// factors; PQ4: the 4-bit PQ codes), then every block's "plane" section (RaBitQ with
// bits > 1: all bit planes + full-code factors; none for PQ4). A codec encodes the residual
// o - c of a vector to its cell's centre, copies lanes between blocks, and makes a
// per-query CellScanner that scans blocks and keeps the running top-k.
//
//   RaBitQ  the residual, rotated, quantised with `bits` bits per coordinate; estimates
//           with an error bound (candidates pruned by their lower bound; re-ranked exactly
//           in order of it)
//   PQ4     product quantization, m sub-spaces of 16 centroids (pq.h); no error bound (the
//           PqRerankCandidates(k) best estimates are re-ranked)
//
// Thread safety: a CellCodec is immutable; const methods may run concurrently. A
// CellScanner is per query (one thread at a time) and borrows its codec.

#ifndef DREAMDB_SRC_INDEX_CODEC_CELL_CODEC_H_
#define DREAMDB_SRC_INDEX_CODEC_CELL_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "dreamdb/index_kinds.h"
#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/base/check.h"
#include "src/index/codec/pq.h"
#include "src/index/codec/rabitq.h"
#include "src/index/kernels/rotation.h"
#include "src/index/metric.h"
#include "src/index/search_params.h"

namespace dreamdb::vector {

inline constexpr size_t kCellHeaderBytes = 16;

// The two sections of a cell codes block (spec/20 §5), over its bytes after the header.
struct CellView {
  uint8_t* base;  // first byte after the header
  size_t blocks;
  size_t sign_bytes;
  size_t plane_bytes;
  uint8_t* Signs(size_t block) const {
    DCHECK(block < blocks);
    return base + block * sign_bytes;
  }
  uint8_t* Planes(size_t block) const {
    DCHECK(block < blocks && plane_bytes > 0);
    return base + blocks * sign_bytes + block * plane_bytes;
  }
};

// A cell of the partition, as a scan needs it.
struct CellRef {
  uint32_t index = 0;
  const float* centre = nullptr;  // dim floats
  float centre_norm2 = 0;
};

class CellScanner;

class CellCodec {
 public:
  virtual ~CellCodec() = default;

  // RaBitQ codes of `bits` (1..8) bits with `rotation` over cells with these centres
  // (num_cells x dim floats; the codec keeps their rotations).
  static std::unique_ptr<const CellCodec> RaBitQ(Metric metric, uint32_t dim, uint32_t bits,
                                                 std::unique_ptr<Rotation> rotation,
                                                 const std::vector<float>& centres);
  // PQ4 codes (codec.dim() == dim).
  static std::unique_ptr<const CellCodec> Pq4(Metric metric, PqCodec codec);

  Quantizer quantizer() const { return quantizer_; }
  Metric metric() const { return metric_; }
  uint32_t dim() const { return dim_; }
  uint32_t padded_dim() const { return padded_dim_; }
  // RaBitQ: bits per coordinate and the rotation; PQ4: the product quantizer.
  virtual uint32_t bits() const = 0;
  virtual const Rotation* rotation() const { return nullptr; }
  virtual const PqCodec* pq() const { return nullptr; }

  // Section sizes of one FastScan block of 32 vectors.
  virtual size_t SignBlockBytes() const = 0;
  virtual size_t PlaneBlockBytes() const = 0;

  // A block of `count` zero codes (header filled in).
  Bytes EmptyCell(uint32_t count) const;
  // The count of a block; kCorrupt if the block is malformed or of another codec.
  Result<uint32_t> CellCount(ByteView codes) const;
  // Sets the count field of a block (its size must already fit).
  static void SetCount(Bytes* codes, uint32_t count);
  CellView View(const char* data, uint32_t count) const;

  // Encodes the residual of one vector to `cell`'s centre into position `pos` of a block.
  // scratch: at least 2 * padded_dim() floats, the residual in the first dim() (clobbered);
  // code: padded_dim() bytes.
  virtual void Encode(uint32_t cell, float* scratch, uint8_t* code, const CellView& view,
                      size_t pos) const = 0;
  // Copies the code at position `from` of `src` to position `to` of `dst`.
  virtual void CopyLane(const CellView& src, size_t from, const CellView& dst, size_t to) const = 0;

  // The codec's section of the model bytes (spec/20 §4 after the partition body: PQ4 its
  // codebooks, RaBitQ a dense rotation's matrix).
  virtual void SerializeSection(Bytes* out) const = 0;
  virtual std::unique_ptr<CellScanner> NewScanner() const = 0;
  // Heap bytes.
  virtual size_t MemoryBytes() const = 0;

 protected:
  CellCodec(Quantizer quantizer, Metric metric, uint32_t dim)
      : quantizer_(quantizer), metric_(metric), dim_(dim), padded_dim_(PaddedDim(dim)) {}
  // Header bytes 6..11 (spec/20 §5, §8.3): version, bits/quantizer, dimension/sub-spaces.
  virtual uint16_t version() const = 0;
  virtual uint8_t header_byte6() const = 0;
  virtual uint32_t header_word8() const = 0;

 private:
  Quantizer quantizer_;
  Metric metric_;
  uint32_t dim_;
  uint32_t padded_dim_;
};

// One query's scan of cell blocks and its running top-k.
class CellScanner {
 public:
  virtual ~CellScanner() = default;

  // Starts a query: qn (dim floats; unit length for cosine), q_norm2 = |qn|^2. Reuses the
  // buffers (no allocation once warm).
  void Reset(const float* qn, float q_norm2, uint32_t k, bool rerank);
  // Scans a block of `count` codes (count from CellCount) of `cell`; ids[i] is the id of
  // position i; keep (optional) filters ids.
  virtual Status Scan(const CellRef& cell, ByteView codes, uint32_t count, const uint64_t* ids,
                      const KeepFn* keep) = 0;
  // The final top-k, best first (ties by id): see IvfModel::Query::Finish.
  virtual Result<std::vector<Neighbor>> Finish(const ExactFn* exact,
                                               const PrefetchFn* prefetch) = 0;
  // The ids of the running top-k (with rerank: what sets the pruning bound), in no order.
  void HeapIds(std::vector<uint64_t>* out) const;

  uint64_t scanned() const { return scanned_; }
  uint64_t refined() const { return refined_; }

 protected:
  CellScanner(Metric metric, uint32_t dim) : metric_(metric), dim_(dim) {}
  // Per-query preparation of the codec (after the common state is reset).
  virtual void Start() = 0;
  float Threshold() const;
  void Push(float dist, uint64_t id);
  // Re-scores `ids` through `exact` in batches and pushes their internal distances.
  Status RerankBatch(const ExactFn& exact, std::vector<uint64_t>* ids);

  Metric metric_;
  uint32_t dim_;
  std::vector<float> qn_;
  float q_norm2_ = 0;
  uint32_t k_ = 0;
  bool rerank_ = false;
  std::vector<std::pair<float, uint64_t>> heap_;  // max-heap of (distance, id)
  size_t heap_limit_ = 0;
  uint64_t scanned_ = 0;
  uint64_t refined_ = 0;
  std::vector<float> dists_;  // RerankBatch scratch
};

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_CODEC_CELL_CODEC_H_
