// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/graph/graph.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/base/encoding.h"
#include "src/index/graph/graph_test_util.h"
#include "src/index/test_util.h"
#include "src/testing/golden.h"

namespace dreamdb::vector {
namespace {

using testing::BruteForce;
using testing::CheckRecall;
using testing::Clustered;
using testing::kDim;
using testing::Recall;
using testing::SmallParams;

TEST(GraphTest, RecallL2OneBit) { CheckRecall(Metric::kL2, 1, 1500, 0.3, 0.97); }
TEST(GraphTest, RecallIpFourBits) { CheckRecall(Metric::kInnerProduct, 4, 1500, 0.8, 0.97); }
TEST(GraphTest, RecallCosineEightBits) { CheckRecall(Metric::kCosine, 8, 1500, 0.9, 0.97); }

TEST(GraphTest, DeterministicWhateverTheThreadCount) {
  const std::vector<float> data = Clustered(600, 3, kDim);
  GraphParams p = SmallParams(Metric::kCosine, 4);
  std::vector<uint32_t> order1;
  std::vector<uint32_t> order2;
  auto a = GraphIndex::Build(p, data.data(), 600, 1, &order1);
  auto b = GraphIndex::Build(p, data.data(), 600, 2, &order2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(order1, order2);
  ASSERT_EQ((*a)->num_blocks(), (*b)->num_blocks());
  for (uint32_t i = 0; i < (*a)->num_blocks(); ++i) {
    EXPECT_EQ(*(*a)->EncodeBlock(i), *(*b)->EncodeBlock(i)) << "block " << i;
  }
  EXPECT_EQ((*a)->model().Serialize(), (*b)->model().Serialize());
  // Another seed gives another graph.
  p.seed = 8;
  auto c = GraphIndex::Build(p, data.data(), 600, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*(*a)->EncodeBlock(0), *(*c)->EncodeBlock(0));
}

TEST(GraphTest, GraphInvariants) {
  const std::vector<float> data = Clustered(1000, 4, kDim);
  auto index = GraphIndex::Build(SmallParams(Metric::kL2, 2), data.data(), 1000, 2);
  ASSERT_TRUE(index.ok());
  const GraphIndex& g = **index;
  EXPECT_EQ(g.size(), 1000u);
  EXPECT_EQ(g.num_blocks(), 1000u / 64 + 1);
  std::vector<bool> reached(1000, false);
  size_t edges = 0;
  for (uint32_t b = 0; b < g.num_blocks(); ++b) {
    auto blk = g.block(b);
    EXPECT_EQ(blk->first(), b * 64);
    for (uint32_t i = 0; i < blk->count(); ++i) {
      auto nb = blk->neighbors(i);
      EXPECT_LE(nb.size(), 16u);
      EXPECT_GE(nb.size(), 1u);
      std::set<uint32_t> distinct(nb.begin(), nb.end());
      EXPECT_EQ(distinct.size(), nb.size());
      for (uint32_t v : nb) {
        ASSERT_LT(v, 1000u);
        EXPECT_NE(v, blk->first() + i);
        reached[v] = true;
      }
      edges += nb.size();
    }
  }
  EXPECT_GT(edges, 1000u * 4);
  // Every node but (possibly) the entry has an in-edge.
  for (uint32_t v = 1; v < 1000; ++v) EXPECT_TRUE(reached[v]) << v;
}

TEST(GraphTest, BlockRoundTrip) {
  const std::vector<float> data = Clustered(300, 5, kDim);
  for (uint32_t bits : {1u, 3u, 8u}) {
    auto index = GraphIndex::Build(SmallParams(Metric::kInnerProduct, bits), data.data(), 300, 2);
    ASSERT_TRUE(index.ok());
    for (uint32_t b = 0; b < (*index)->num_blocks(); ++b) {
      Result<Bytes> bytes = (*index)->EncodeBlock(b);
      ASSERT_TRUE(bytes.ok());
      auto dec = GraphNodeBlock::Decode((*index)->model(), *bytes);
      ASSERT_TRUE(dec.ok()) << dec.status().ToString();
      const GraphNodeBlock& x = **dec;
      const GraphNodeBlock& y = *(*index)->block(b);
      EXPECT_EQ(x.Encode(), *bytes);
      ASSERT_EQ(x.count(), y.count());
      EXPECT_EQ(x.first(), y.first());
      for (uint32_t i = 0; i < x.count(); ++i) {
        EXPECT_TRUE(std::ranges::equal(x.neighbors(i), y.neighbors(i)));
        EXPECT_EQ(0, std::memcmp(x.signs(i), y.signs(i), 64 / 8));
        EXPECT_EQ(0, std::memcmp(x.lower_planes(i), y.lower_planes(i), (bits - 1) * 64 / 8));
        EXPECT_EQ(x.factors_full(i).add, y.factors_full(i).add);
        EXPECT_EQ(x.factors1(i).rescale, y.factors1(i).rescale);
      }
      EXPECT_GT(x.MemoryBytes(), 0u);
    }
    EXPECT_FALSE((*index)->EncodeBlock((*index)->num_blocks()).ok());
  }
}

// Serves decoded copies of a built index's blocks, counting requests and hints.
class DecodedSource : public GraphNodeSource {
 public:
  explicit DecodedSource(const GraphIndex& index) : index_(index) {}
  Result<std::shared_ptr<const GraphNodeBlock>> Block(uint32_t b) override {
    ++requests;
    if (b >= index_.num_blocks()) return Status(StatusCode::kCorrupt, "no such block");
    ASSIGN_OR_RETURN(Bytes bytes, index_.EncodeBlock(b));
    if (tamper) tamper(b, &bytes);
    return GraphNodeBlock::Decode(index_.model(), bytes);
  }
  void Prefetch(const uint32_t* blocks, size_t n) override {
    for (size_t i = 0; i < n; ++i) hinted.insert(blocks[i]);
  }
  const GraphIndex& index_;
  size_t requests = 0;
  std::set<uint32_t> hinted;
  std::function<void(uint32_t, Bytes*)> tamper;
};

TEST(GraphTest, SearchThroughSourceEqualsInMemory) {
  const std::vector<float> data = Clustered(1000, 6, kDim);
  const std::vector<float> queries = Clustered(10, 60, kDim);
  auto index = GraphIndex::Build(SmallParams(Metric::kCosine, 4), data.data(), 1000, 2);
  ASSERT_TRUE(index.ok());
  const GraphIndex& g = **index;
  for (bool rerank : {false, true}) {
    for (size_t q = 0; q < 10; ++q) {
      GraphSearchParams sp;
      sp.k = 5;
      sp.ef = 40;
      sp.rerank = rerank;
      GraphSearchStats stats;
      sp.stats = &stats;
      auto want = g.Search(&queries[q * kDim], sp);
      ASSERT_TRUE(want.ok());
      DecodedSource source(g);
      const std::function<Status(const uint64_t*, size_t, float*)> exact =
          [&](const uint64_t* ids, size_t n, float* out) {
            for (size_t i = 0; i < n; ++i) {
              out[i] = g.model().ExactDistance(&queries[q * kDim], g.raw(ids[i]));
            }
            return Status::Ok();
          };
      GraphSearchStats stats2;
      sp.stats = &stats2;
      auto got =
          GraphSearch(g.model(), 64, g.entry(), source, &queries[q * kDim], sp, nullptr, &exact);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(got->size(), want->size());
      for (size_t i = 0; i < got->size(); ++i) {
        EXPECT_EQ((*got)[i].id, (*want)[i].id);
        EXPECT_EQ((*got)[i].distance, (*want)[i].distance);
        EXPECT_EQ((*got)[i].score, (*want)[i].score);
      }
      EXPECT_EQ(source.requests, stats2.blocks);  // each block fetched once per search
      EXPECT_EQ(stats.blocks, stats2.blocks);
      EXPECT_GE(stats2.expanded, 5u);
      EXPECT_GE(stats2.estimated, stats2.expanded);
      EXPECT_EQ(stats2.exact > 0, rerank);
      EXPECT_LE(stats2.blocks, g.num_blocks());
      EXPECT_FALSE(source.hinted.empty());
    }
  }
}

TEST(GraphTest, FromPartsEqualsTheBuiltIndex) {
  const std::vector<float> data = Clustered(500, 12, kDim);
  const GraphParams p = SmallParams(Metric::kL2, 3);
  std::vector<uint32_t> order;
  auto built = GraphIndex::Build(p, data.data(), 500, 2, &order);
  ASSERT_TRUE(built.ok());
  auto model = IvfModel::Deserialize((*built)->model().Serialize());
  ASSERT_TRUE(model.ok());
  std::vector<std::shared_ptr<const GraphNodeBlock>> blocks;
  for (uint32_t b = 0; b < (*built)->num_blocks(); ++b) {
    auto blk = GraphNodeBlock::Decode(**model, *(*built)->EncodeBlock(b));
    ASSERT_TRUE(blk.ok());
    blocks.push_back(*blk);
  }
  std::vector<float> raw;
  for (uint32_t row : order) raw.insert(raw.end(), &data[row * kDim], &data[(row + 1) * kDim]);
  auto bad = GraphIndex::FromParts(p, *model, {blocks.begin(), blocks.end() - 1}, raw);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  GraphParams other = p;
  other.bits = 2;
  EXPECT_FALSE(GraphIndex::FromParts(other, *model, blocks, raw).ok());
  auto loaded = GraphIndex::FromParts(p, *model, blocks, raw);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  GraphSearchParams sp;
  sp.rerank = true;
  for (uint32_t q = 0; q < 5; ++q) {
    auto a = (*built)->Search(&data[q * 7 * kDim], sp);
    auto b = (*loaded)->Search(&data[q * 7 * kDim], sp);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size());
    for (size_t i = 0; i < a->size(); ++i) {
      EXPECT_EQ((*a)[i].id, (*b)[i].id);
      EXPECT_EQ((*a)[i].distance, (*b)[i].distance);
    }
  }
}

TEST(GraphTest, KeepFiltersResultsOnly) {
  const std::vector<float> data = Clustered(1000, 7, kDim);
  const std::vector<float> queries = Clustered(20, 70, kDim);
  std::vector<uint32_t> order;
  auto index = GraphIndex::Build(SmallParams(Metric::kL2, 4), data.data(), 1000, 2, &order);
  ASSERT_TRUE(index.ok());
  // Keep nodes whose input row is even; compare with brute force over those rows.
  const std::function<bool(uint32_t)> keep = [&](uint32_t node) { return order[node] % 2 == 0; };
  std::vector<float> even;
  std::vector<uint32_t> even_order;
  std::vector<uint32_t> node_of(1000);
  for (uint32_t i = 0; i < 1000; ++i) node_of[order[i]] = i;
  for (uint32_t row = 0; row < 1000; row += 2) {
    even.insert(even.end(), &data[row * kDim], &data[(row + 1) * kDim]);
  }
  auto truth = BruteForce((*index)->model(), even, queries, 10);
  for (auto& row : truth) {
    for (auto& id : row) id = node_of[id * 2];
  }
  GraphSearchParams sp;
  sp.ef = 96;
  sp.rerank = true;
  std::vector<std::vector<Neighbor>> got;
  for (size_t q = 0; q < 20; ++q) {
    auto r = (*index)->Search(&queries[q * kDim], sp, &keep);
    ASSERT_TRUE(r.ok());
    for (const Neighbor& nb : *r) EXPECT_EQ(order[nb.id] % 2, 0u);
    got.push_back(*r);
  }
  EXPECT_GE(Recall(got, truth), 0.9);
  // A filter rejecting everything gives no results, not an error.
  const std::function<bool(uint32_t)> none = [](uint32_t) { return false; };
  auto r = (*index)->Search(&queries[0], sp, &none);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(GraphTest, SmallGraphs) {
  // One vector, fewer vectors than k, and exactly one block.
  for (size_t n : {1, 3, 64}) {
    const std::vector<float> data = Clustered(n, 8, kDim);
    auto index = GraphIndex::Build(SmallParams(Metric::kCosine, 2), data.data(), n, 2);
    ASSERT_TRUE(index.ok()) << n;
    GraphSearchParams sp;
    sp.rerank = true;
    auto r = (*index)->Search(&data[0], sp);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->size(), std::min<size_t>(n, 10));
    EXPECT_NEAR((*r)[0].score, 1.0f, 1e-5);
  }
}

TEST(GraphTest, BadInputsAreClearErrors) {
  const std::vector<float> data = Clustered(200, 9, kDim);
  const GraphParams good = SmallParams(Metric::kCosine, 4);
  auto bad = [&](GraphParams p, const std::string& what) {
    auto r = GraphIndex::Build(p, data.data(), 200, 1);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << what;
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  };
  GraphParams p = good;
  p.dim = 0;
  bad(p, "dim");
  p = good;
  p.degree = 3;
  bad(p, "degree");
  p = good;
  p.build_list = 8;
  bad(p, "build_list");
  p = good;
  p.alpha = 0.5f;
  bad(p, "alpha");
  p = good;
  p.alpha = std::numeric_limits<float>::quiet_NaN();
  bad(p, "alpha");
  p = good;
  p.bits = 9;
  bad(p, "bits");
  p = good;
  p.nodes_per_block = 100;
  bad(p, "nodes_per_block");
  p = good;
  p.nodes_per_block = 8;
  bad(p, "nodes_per_block");
  EXPECT_EQ(GraphIndex::Build(good, data.data(), 0).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> nan = data;
  nan[5 * kDim + 3] = std::numeric_limits<float>::quiet_NaN();
  auto r = GraphIndex::Build(good, nan.data(), 200);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("row 5 column 3"), std::string::npos);
  std::vector<float> zero = data;
  std::fill(&zero[7 * kDim], &zero[8 * kDim], 0.0f);
  r = GraphIndex::Build(good, zero.data(), 200);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("zero vector"), std::string::npos);

  auto index = GraphIndex::Build(good, data.data(), 200, 1);
  ASSERT_TRUE(index.ok());
  GraphSearchParams sp;
  sp.k = 0;
  EXPECT_EQ((*index)->Search(data.data(), sp).status().code(), StatusCode::kInvalidArgument);
  sp.k = 10;
  std::vector<float> q(data.begin(), data.begin() + kDim);
  q[2] = std::numeric_limits<float>::infinity();
  auto s = (*index)->Search(q.data(), sp);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("not finite"), std::string::npos);
  std::fill(q.begin(), q.end(), 0.0f);
  s = (*index)->Search(q.data(), sp);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("zero vector"), std::string::npos);
  EXPECT_EQ((*index)->Search(nullptr, sp).status().code(), StatusCode::kInvalidArgument);
  // A model with more than one cell is not a graph quantizer.
  IvfParams ip;
  ip.dim = kDim;
  ip.num_cells = 4;
  auto model = IvfModel::Train(ip, data.data(), 200);
  ASSERT_TRUE(model.ok());
  DecodedSource source(**index);
  EXPECT_EQ(GraphSearch(**model, 64, 0, source, data.data(), sp).status().code(),
            StatusCode::kInvalidArgument);
}

// Rewrites the trailing checksum so that a field change reaches the field's own check.
void Reseal(Bytes* b) {
  const ObjectId id = ObjectId::Of(ByteView(*b).substr(0, b->size() - 16));
  std::memcpy(b->data() + b->size() - 16, id.digest().data(), 16);
}

template <typename T>
void PutAt(Bytes* b, size_t off, T v) {
  std::memcpy(b->data() + off, &v, sizeof(T));
}

TEST(GraphTest, CorruptBlocksAreRejected) {
  const std::vector<float> data = Clustered(100, 10, kDim);
  auto index = GraphIndex::Build(SmallParams(Metric::kL2, 2), data.data(), 100, 1);
  ASSERT_TRUE(index.ok());
  const IvfModel& model = (*index)->model();
  const Bytes good = *(*index)->EncodeBlock(0);
  ASSERT_TRUE(GraphNodeBlock::Decode(model, good).ok());
  const uint32_t count = 64;
  uint32_t edges = 0;
  std::memcpy(&edges, good.data() + 24, 4);
  auto expect = [&](Bytes b, bool reseal, StatusCode code, const std::string& what) {
    if (reseal) Reseal(&b);
    auto r = GraphNodeBlock::Decode(model, b);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), code) << what << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  };
  Bytes b = good;
  b[0] = 'X';
  expect(b, true, StatusCode::kCorrupt, "magic");
  expect(good.substr(0, 3), false, StatusCode::kCorrupt, "magic");
  b = good;
  PutAt<uint16_t>(&b, 4, 2);
  expect(b, true, StatusCode::kUnsupported, "version 2");
  b = good;
  PutAt<uint16_t>(&b, 4, 0);
  expect(b, true, StatusCode::kCorrupt, "version 0");
  b = good;
  b[6] = 3;
  expect(b, true, StatusCode::kCorrupt, "bits");
  b = good;
  b[7] = 1;
  expect(b, true, StatusCode::kCorrupt, "reserved");
  b = good;
  PutAt<uint32_t>(&b, 8, 128);
  expect(b, true, StatusCode::kCorrupt, "padded dimension");
  b = good;
  PutAt<uint32_t>(&b, 16, 0);
  expect(b, true, StatusCode::kCorrupt, "node count");
  b = good;
  PutAt<uint32_t>(&b, 16, 5000);
  expect(b, true, StatusCode::kCorrupt, "node count");
  b = good;
  PutAt<uint32_t>(&b, 12, 0xffffffffu);
  expect(b, true, StatusCode::kCorrupt, "exceed 2^32");
  b = good;
  PutAt<uint32_t>(&b, 20, 2);
  expect(b, true, StatusCode::kCorrupt, "degree bound");
  b = good;
  PutAt<uint32_t>(&b, 24, count * 16 + 1);
  expect(b, true, StatusCode::kCorrupt, "edge count");
  b = good;
  PutAt<uint32_t>(&b, 24, edges + 2);
  expect(b, true, StatusCode::kCorrupt, "size");
  b = good;
  PutAt<uint32_t>(&b, 28, 1);
  expect(b, true, StatusCode::kCorrupt, "reserved");
  b = good;
  b.push_back('\0');
  expect(b, true, StatusCode::kCorrupt, "size");
  b = good;
  b[b.size() - 40] ^= 1;  // a factor byte, checksum not fixed
  expect(b, false, StatusCode::kCorrupt, "checksum");
  // Node 0 claims 17 neighbours (degree 16), node 1 one fewer: the sum still matches.
  b = good;
  uint32_t c0 = 0;
  std::memcpy(&c0, b.data() + 32, 4);
  uint32_t c1 = 0;
  std::memcpy(&c1, b.data() + 36, 4);
  PutAt<uint32_t>(&b, 32, 17);
  PutAt<uint32_t>(&b, 36, c1 - (17 - c0));
  expect(b, true, StatusCode::kCorrupt, "more than the degree bound");
  b = good;
  PutAt<uint32_t>(&b, 32, c0 - 1);
  expect(b, true, StatusCode::kCorrupt, "add up to");
  // Padding: present when count + edges is odd.
  const size_t adj = 32 + 4 * size_t{count} + 4 * size_t{edges};
  if ((count + edges) % 2 == 1) {
    b = good;
    b[adj] = 1;
    expect(b, true, StatusCode::kCorrupt, "padding");
  }
  // A NaN factor: the first node's 1-bit add follows its planes.
  b = good;
  const size_t pad = (count + edges) % 2 == 1 ? 4 : 0;
  PutAt<float>(&b, adj + pad + 2 * 64 / 8, std::numeric_limits<float>::quiet_NaN());
  expect(b, true, StatusCode::kCorrupt, "non-finite factor");
  // Another model (other bits) refuses the block.
  GraphParams p = SmallParams(Metric::kL2, 3);
  auto other = GraphIndex::Build(p, data.data(), 100, 1);
  ASSERT_TRUE(other.ok());
  auto r = GraphNodeBlock::Decode((*other)->model(), good);
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("do not match the model"), std::string::npos);
}

TEST(GraphTest, SearchRejectsBlocksThatDoNotFit) {
  const std::vector<float> data = Clustered(300, 11, kDim);
  auto index = GraphIndex::Build(SmallParams(Metric::kCosine, 1), data.data(), 300, 1);
  ASSERT_TRUE(index.ok());
  const GraphIndex& g = **index;
  GraphSearchParams sp;
  // A neighbour id beyond the graph (a valid block otherwise).
  DecodedSource source(g);
  source.tamper = [](uint32_t b, Bytes* bytes) {
    if (b != 0) return;
    PutAt<uint32_t>(bytes, 32 + 4 * 64, 1000000);  // first neighbour of node 0
    Reseal(bytes);
  };
  auto r = GraphSearch(g.model(), 64, g.entry(), source, data.data(), sp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  // The source refuses the block number, or the last block does not hold the id.
  DecodedSource source2(g);
  source2.tamper = [](uint32_t b, Bytes* bytes) {
    if (b != 0) return;
    PutAt<uint32_t>(bytes, 32 + 4 * 64, 299 + 20);
    Reseal(bytes);
  };
  r = GraphSearch(g.model(), 64, g.entry(), source2, data.data(), sp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("beyond the graph"), std::string::npos)
      << r.status().message();
  // Wrong nodes_per_block: block 1 does not start at node 32.
  DecodedSource source3(g);
  r = GraphSearch(g.model(), 32, g.entry(), source3, data.data(), sp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  // Entry beyond the graph.
  DecodedSource source4(g);
  r = GraphSearch(g.model(), 64, 5000, source4, data.data(), sp);
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
}

// ---------------------------------------------------------------- golden vectors
//
// spec/vectors/graph/graph.txt (spec/22 §6). To regenerate after a deliberate change:
//   DREAMDB_UPDATE_GOLDEN=1 build/dev/src/index/index_graph_test --gtest_filter='GraphGolden*'

struct GoldenCase {
  std::string name;
  Metric metric;
  uint32_t bits;
  uint64_t seed;
  uint32_t dim;
  uint32_t n;
};

// Exact binary fractions (their decimal form is exact); distinct rows (41 is prime).
float GoldenValue(uint32_t i, uint32_t j) {
  return static_cast<float>(static_cast<int>((i * 17 + j * 7 + i * j * 3 + i * i) % 41) - 20) /
         8.0f;
}
float GoldenQuery(uint32_t j) {
  return static_cast<float>(static_cast<int>((j * 11 + 3) % 9) - 4) / 4.0f;
}

std::string GoldenFloats(const std::vector<float>& v) {
  std::string s;
  char buf[32];
  for (float x : v) {
    std::snprintf(buf, sizeof(buf), " %.9g", static_cast<double>(x));
    s += buf;
  }
  return s;
}

// Build distances use the f32 kernels of distance.h, whose SIMD levels may round
// differently, so the golden graphs are generated with the scalar kernels.
struct ScalarKernels {
  ScalarKernels() : prev(ActiveSimdLevel()) { SetSimdLevelForTesting(SimdLevel::kScalar); }
  ~ScalarKernels() { SetSimdLevelForTesting(prev); }
  ScalarKernels(const ScalarKernels&) = delete;
  ScalarKernels& operator=(const ScalarKernels&) = delete;
  SimdLevel prev;
};

std::string GenerateGolden() {
  const ScalarKernels scalar;
  const std::vector<GoldenCase> cases = {
      {"l2-3bit", Metric::kL2, 3, 3, 10, 40},
      {"cosine-1bit", Metric::kCosine, 1, 5, 70, 40},
  };
  std::ostringstream out;
  out << "# Golden vectors of spec/22-graph-index.md, generated by src/vector/graph_test.cc.\n"
         "# Per case: build parameters, the input rows, model = the one-cell IvfModel bytes\n"
         "# (spec/20 §4), order = input row of each node, block = each node block (§4), a query\n"
         "# with k and ef, results = node and distance pairs from the full-code estimates, and\n"
         "# reranked = the same with exact re-ranking (§5). check.py re-derives them from the\n"
         "# spec.\n";
  for (const GoldenCase& c : cases) {
    GraphParams p;
    p.dim = c.dim;
    p.metric = c.metric;
    p.bits = c.bits;
    p.seed = c.seed;
    p.degree = 4;
    p.build_list = 8;
    p.alpha = 1.2f;
    p.nodes_per_block = 16;
    std::vector<float> data(size_t{c.n} * c.dim);
    for (uint32_t i = 0; i < c.n; ++i) {
      for (uint32_t j = 0; j < c.dim; ++j) data[size_t{i} * c.dim + j] = GoldenValue(i, j);
    }
    std::vector<uint32_t> order;
    auto index = GraphIndex::Build(p, data.data(), c.n, 2, &order);
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    if (!index.ok()) return "";
    out << "case " << c.name << "\nmetric " << MetricName(c.metric) << "\nbits " << c.bits
        << "\nseed " << c.seed << "\ndim " << c.dim << "\nn " << c.n
        << "\ndegree 4\nbuild_list 8\nalpha 1.2\nnodes_per_block 16\n";
    for (uint32_t i = 0; i < c.n; ++i) {
      out << "vector"
          << GoldenFloats(
                 std::vector<float>(&data[size_t{i} * c.dim], &data[size_t{i + 1} * c.dim]))
          << "\n";
    }
    out << "model " << HexEncode((*index)->model().Serialize()) << "\norder";
    for (uint32_t r : order) out << " " << r;
    out << "\n";
    for (uint32_t b = 0; b < (*index)->num_blocks(); ++b) {
      out << "block " << HexEncode(*(*index)->EncodeBlock(b)) << "\n";
    }
    std::vector<float> q(c.dim);
    for (uint32_t j = 0; j < c.dim; ++j) q[j] = GoldenQuery(j);
    out << "query" << GoldenFloats(q) << "\nk 5\nef 12\n";
    for (bool rerank : {false, true}) {
      GraphSearchParams sp;
      sp.k = 5;
      sp.ef = 12;
      sp.rerank = rerank;
      auto r = (*index)->Search(q.data(), sp);
      EXPECT_TRUE(r.ok());
      if (!r.ok()) return "";
      out << (rerank ? "reranked" : "results");
      char buf[64];
      for (const Neighbor& nb : *r) {
        std::snprintf(buf, sizeof(buf), " %u %.9g", static_cast<unsigned>(nb.id),
                      static_cast<double>(nb.distance));
        out << buf;
      }
      out << "\n";
    }
  }
  return out.str();
}

constexpr char kGolden[] = "spec/vectors/graph/graph.txt";

TEST(GraphGoldenTest, MatchTheGoldenFile) {
  dreamdb::testing::CompareGoldenText(GenerateGolden(), kGolden);
}

// The golden blocks decode with the golden model and re-encode to the same bytes.
TEST(GraphGoldenTest, GoldenBlocksDecode) {
  std::shared_ptr<const IvfModel> model;
  int blocks = 0;
  for (const auto& [key, hex] : dreamdb::testing::LoadGoldenLines(kGolden, {"model", "block"})) {
    auto bytes = HexDecode(hex);
    ASSERT_TRUE(bytes.has_value());
    if (key == "model") {
      auto m = IvfModel::Deserialize(*bytes);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      model = *m;
    } else {
      ASSERT_NE(model, nullptr);
      auto blk = GraphNodeBlock::Decode(*model, *bytes);
      ASSERT_TRUE(blk.ok()) << blk.status().ToString();
      EXPECT_EQ((*blk)->Encode(), *bytes);
      ++blocks;
    }
  }
  EXPECT_EQ(blocks, 6);
}

}  // namespace
}  // namespace dreamdb::vector
