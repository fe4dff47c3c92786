// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/kernels/fastscan.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <vector>

#include "src/index/kernels/rng.h"
#include "src/index/kernels/simd_test_util.h"

namespace dreamdb::vector {
namespace {

// Every level this CPU runs; the ones it lacks are named in the test log.
std::vector<SimdLevel> Levels() { return testing::TestableLevels(); }

TEST(FastScanTest, AllLevelsMatchTheDefinition) {
  for (size_t groups : {16, 64, 192, 256, 512, 640}) {
    Rng rng(groups);
    std::vector<uint8_t> codes(groups * 16);
    std::vector<uint8_t> lut(groups * 16);
    for (auto& c : codes) c = static_cast<uint8_t>(rng.Next());
    for (auto& t : lut) t = static_cast<uint8_t>(rng.Next());
    uint32_t want[32];
    for (uint32_t v = 0; v < 32; ++v) {
      uint32_t s = 0;
      for (uint32_t g = 0; g < groups; ++g)
        s += lut[g * 16 + GetFastScanNibble(codes.data(), g, v)];
      want[v] = s;
    }
    for (SimdLevel level : Levels()) {
      uint32_t got[32];
      FastScanBlockAt(level, codes.data(), lut.data(), groups, got);
      for (int v = 0; v < 32; ++v) {
        EXPECT_EQ(got[v], want[v]) << SimdLevelName(level) << " groups " << groups << " v " << v;
      }
    }
  }
}

TEST(FastScanTest, SaturatedTablesDoNotOverflow) {
  const size_t groups = 512;
  std::vector<uint8_t> codes(groups * 16, 0xff);
  std::vector<uint8_t> lut(groups * 16, 255);
  for (SimdLevel level : Levels()) {
    uint32_t got[32];
    FastScanBlockAt(level, codes.data(), lut.data(), groups, got);
    for (int v = 0; v < 32; ++v) EXPECT_EQ(got[v], 255u * groups) << SimdLevelName(level);
  }
}

TEST(FastScanTest, NibbleLayout) {
  std::vector<uint8_t> block(16 * 16, 0);
  SetFastScanNibble(block.data(), 3, 5, 0xa);
  SetFastScanNibble(block.data(), 3, 21, 0x7);
  EXPECT_EQ(block[3 * 16 + 5], 0x7a);
  EXPECT_EQ(GetFastScanNibble(block.data(), 3, 5), 0xa);
  EXPECT_EQ(GetFastScanNibble(block.data(), 3, 21), 0x7);
}

TEST(FastScanTest, ExPlanesDotIsIdenticalAtAllLevels) {
  for (uint32_t d : {64u, 128u, 768u}) {
    for (uint32_t ex = 1; ex <= 8; ++ex) {
      Rng rng(d * 10 + ex);
      std::vector<uint8_t> planes(ex * d / 8);
      for (auto& p : planes) p = static_cast<uint8_t>(rng.Next());
      std::vector<float> x(d);
      for (auto& v : x) v = static_cast<float>(rng.Gaussian());
      double want = 0;
      for (uint32_t i = 0; i < d; ++i) {
        uint32_t e = 0;
        for (uint32_t b = 0; b < ex; ++b) e |= ((planes[b * d / 8 + i / 8] >> (i % 8)) & 1u) << b;
        want += static_cast<double>(e) * x[i];
      }
      const float ref = ExPlanesDotAt(SimdLevel::kScalar, planes.data(), ex, x.data(), d);
      EXPECT_NEAR(ref, want, 1e-3 * (1 << ex) * d);
      for (SimdLevel level : Levels()) {
        EXPECT_EQ(ExPlanesDotAt(level, planes.data(), ex, x.data(), d), ref)
            << SimdLevelName(level) << " d " << d << " ex " << ex;
      }
    }
  }
}

// The planes' lane sums are combined with their chains interleaved; the result must be bit
// for bit the plane-by-plane order the spec states (search results and stored calibrations
// depend on it), and the split form (the graph's sign plane apart from its lower planes)
// must equal the planes laid out together.
TEST(FastScanTest, ExPlanesDotKeepsThePlaneByPlaneOrderAndTheSplitFormAgrees) {
  for (uint32_t d : {64u, 128u, 768u}) {
    for (uint32_t ex = 1; ex <= 8; ++ex) {
      Rng rng(d * 31 + ex);
      std::vector<uint8_t> planes(ex * d / 8);
      for (auto& p : planes) p = static_cast<uint8_t>(rng.Next());
      std::vector<float> x(d);
      for (auto& v : x) v = static_cast<float>(rng.Gaussian()) * 1e3f;
      float lanes[16 * 8];
      internal::PlaneLanesScalar(planes.data(), ex, x.data(), d, lanes);
      float want = 0;
      for (uint32_t b = 0; b < ex; ++b) {
        float sum = 0;
        for (int l = 0; l < 16; ++l) sum += lanes[16 * b + l];
        want += static_cast<float>(1u << b) * sum;
      }
      // The lower planes apart from the top one, as a graph node block stores them.
      std::vector<uint8_t> low(planes.begin(), planes.begin() + (ex - 1) * d / 8);
      std::vector<uint8_t> top(planes.begin() + (ex - 1) * d / 8, planes.end());
      for (SimdLevel level : Levels()) {
        const SimdLevel before = ActiveSimdLevel();
        SetSimdLevelForTesting(level);
        EXPECT_EQ(ExPlanesDotAt(level, planes.data(), ex, x.data(), d), want)
            << SimdLevelName(level) << " d " << d << " ex " << ex;
        EXPECT_EQ(ExPlanesDotSplit(low.data(), ex - 1, top.data(), x.data(), d), want)
            << SimdLevelName(level) << " d " << d << " ex " << ex;
        SetSimdLevelForTesting(before);
      }
    }
  }
}

TEST(FastScanTest, PopcountWordsCountsEverySetBit) {
  Rng rng(9);
  for (size_t n : {0u, 1u, 3u, 12u}) {
    std::vector<uint64_t> w(n);
    uint64_t want = 0;
    for (auto& v : w) {
      v = rng.Next();
      for (int i = 0; i < 64; ++i) want += (v >> i) & 1;
    }
    EXPECT_EQ(PopcountWords(w.data(), n), want) << n << " words";
  }
}

TEST(FastScanTest, PopcountDotMatchesDefinition) {
  for (size_t words : {1u, 8u, 12u, 16u}) {
    Rng rng(words);
    std::vector<uint64_t> code(words);
    std::vector<uint64_t> q(4 * words);
    for (auto& c : code) c = rng.Next();
    for (auto& c : q) c = rng.Next();
    uint64_t want = 0;
    for (uint32_t j = 0; j < 4; ++j) {
      for (size_t w = 0; w < words; ++w)
        want += uint64_t(std::popcount(code[w] & q[j * words + w])) << j;
    }
    for (SimdLevel level : Levels()) {
      EXPECT_EQ(PopcountDotAt(level, code.data(), q.data(), words, 4), want);
    }
  }
}

}  // namespace
}  // namespace dreamdb::vector
