// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for graph node blocks (spec/22 §4, magic `DVGB`). The first input byte
// picks the mode; the rest is the block.
//   bit 0: rewrite the trailing 16-byte checksum before decoding, so that the fuzzer gets
//          past it and exercises the field checks behind it;
//   bit 1: the model: 0 = dim 10, B = 3 (D = 64); 1 = dim 70, B = 1 (D = 128) (those of
//          spec/vectors/graph/graph.txt, whose blocks are the seeds).
// Properties (abort otherwise): Decode errors are kCorrupt or kUnsupported; an accepted
// block re-encodes to the input; walking it (every neighbour list and code, then a search
// that serves it as the only block, 4096 nodes per block) reads in bounds and fails only
// with kCorrupt (a neighbour or entry beyond the graph, a block not at a multiple of 4096).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dreamdb/object_id.h"
#include "src/index/graph/graph.h"

namespace {

using dreamdb::ByteView;
using dreamdb::ObjectId;
using dreamdb::Result;
using dreamdb::Status;
using dreamdb::StatusCode;
namespace vector = dreamdb::vector;
using dreamdb::vector::GraphNodeBlock;
using dreamdb::vector::IvfModel;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "graph_block_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::shared_ptr<const IvfModel> MakeModel(uint32_t dim, uint32_t bits, vector::Metric metric) {
  vector::IvfParams p;
  p.dim = dim;
  p.metric = metric;
  p.num_cells = 1;
  p.bits = bits;
  p.seed = bits;
  std::vector<float> centre(dim, 0.5f);
  auto m = IvfModel::FromCentroids(p, centre);
  if (!m.ok()) Fail("FromCentroids", m.status().ToString());
  return *m;
}

const IvfModel& Model(int which) {
  static const auto* models = new std::shared_ptr<const IvfModel>[2] {
    MakeModel(10, 3, vector::Metric::kL2), MakeModel(70, 1, vector::Metric::kCosine)
  };
  return *models[which];
}

class OneBlock : public vector::GraphNodeSource {
 public:
  explicit OneBlock(std::shared_ptr<const GraphNodeBlock> b) : b_(std::move(b)) {}
  Result<std::shared_ptr<const GraphNodeBlock>> Block(uint32_t b) override {
    if (b != b_->first() / 4096) return Status(StatusCode::kCorrupt, "no such block");
    return b_;
  }

 private:
  std::shared_ptr<const GraphNodeBlock> b_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((mode & 1) != 0 && in.size() >= 16) {
    const ObjectId id = ObjectId::Of(ByteView(in).substr(0, in.size() - 16));
    std::memcpy(in.data() + in.size() - 16, id.digest().data(), 16);
  }
  const IvfModel& model = Model((mode >> 1) & 1);
  auto blk = GraphNodeBlock::Decode(model, in);
  if (!blk.ok()) {
    const StatusCode c = blk.status().code();
    if (c != StatusCode::kCorrupt && c != StatusCode::kUnsupported) {
      Fail("Decode", "unexpected error code: " + blk.status().ToString());
    }
    return 0;
  }
  const GraphNodeBlock& b = **blk;
  if (b.Encode() != in) Fail("Decode", "accepted a block that does not re-encode to its bytes");
  // Walk: every list and code.
  uint64_t sum = 0;
  const uint32_t words = b.padded_dim() / 64;
  for (uint32_t i = 0; i < b.count(); ++i) {
    for (uint32_t v : b.neighbors(i)) sum += v;
    for (uint32_t w = 0; w < words; ++w) sum += b.signs(i)[w];
    for (uint32_t w = 0; w < (b.bits() - 1) * words; ++w) sum += b.lower_planes(i)[w];
    sum += static_cast<uint64_t>(b.factors1(i).add != 0) + (b.factors_full(i).error != 0);
  }
  // Search it as the only block.
  OneBlock source(*blk);
  std::vector<float> q(model.dim(), 0.25f);
  q[0] = 1;
  vector::GraphSearchParams sp;
  sp.k = 3;
  sp.ef = 8;
  sp.rerank = (mode & 4) != 0;
  const std::function<Status(const uint64_t*, size_t, float*)> exact = [](const uint64_t*, size_t n,
                                                                          float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(i);
    return Status::Ok();
  };
  auto r = vector::GraphSearch(model, 4096, b.first(), source, q.data(), sp, nullptr, &exact);
  if (!r.ok() && r.status().code() != StatusCode::kCorrupt) {
    Fail("GraphSearch", "unexpected error code: " + r.status().ToString());
  }
  if (r.ok() && r->size() > 3) Fail("GraphSearch", "more than k results");
  return sum == 42 ? 1 : 0;  // keeps the walk from being optimised away
}
