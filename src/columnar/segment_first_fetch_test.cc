// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// SegmentReader::Open with a larger first request (SpeculativeFirstFetchBytes): what an
// object store reader asks for so that a segment's header, and a small segment's blocks,
// come in one round trip. The extra bytes are verified block by block exactly as fetched
// blocks are.

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "src/columnar/segment.h"

namespace dreamdb::columnar {
namespace {

struct Object {
  Bytes bytes;
  std::atomic<int> requests{0};
  FetchRange Fetcher() {
    return [this](uint64_t off, uint64_t len) -> Result<Bytes> {
      ++requests;
      if (off > bytes.size()) return InvalidArgument("offset past the end");
      return bytes.substr(off, len);
    };
  }
};

FieldSpec Int64Field() {
  FieldSpec f;
  f.name = "label";
  f.type = FieldType::kInt64;
  return f;
}

FieldSpec StringField() {
  FieldSpec f;
  f.name = "tag";
  f.type = FieldType::kString;
  return f;
}

FieldSpec EmbeddingField(uint32_t dim) {
  FieldSpec f;
  f.name = "emb";
  f.type = FieldType::kEmbedding;
  f.dim = dim;
  return f;
}

Bytes Encode(const FieldSpec& f, uint64_t rows) {
  Column c(f);
  for (uint64_t i = 0; i < rows; ++i) {
    if (f.type == FieldType::kInt64) c.AppendInt64(static_cast<int64_t>(i * 7));
    if (f.type == FieldType::kString) c.AppendBytes("tag-" + std::to_string(100000000 + i));
    if (f.type == FieldType::kEmbedding) {
      std::vector<float> v(f.dim, static_cast<float>(i));
      c.AppendFloats(v);
    }
  }
  auto enc = EncodeSegment(c);
  EXPECT_TRUE(enc.ok()) << enc.status().ToString();
  return *enc;
}

std::vector<uint32_t> EveryNth(uint32_t rows, uint32_t n) {
  std::vector<uint32_t> out;
  for (uint32_t r = 3; r < rows; r += n) out.push_back(r);
  return out;
}

// A small segment: one request brings header and blocks; ReadRows asks for nothing more,
// even for strings (offsets, then values, used to be two more rounds).
TEST(SegmentFirstFetchTest, ASmallSegmentIsReadInOneRequest) {
  for (const FieldSpec& f : {Int64Field(), StringField()}) {
    constexpr uint32_t kRows = 20000;
    Object obj;
    obj.bytes = Encode(f, kRows);
    const std::vector<uint32_t> rows = EveryNth(kRows, 20);
    const uint64_t first = SpeculativeFirstFetchBytes(f, rows.back() + 1);
    EXPECT_GE(first, obj.bytes.size()) << f.name;  // the estimate covers the object
    auto reader = SegmentReader::Open(obj.Fetcher(), f, first);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    auto got = reader->ReadRows(rows);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(obj.requests.load(), 1) << f.name;
    // The same values as a reader that starts with 4 KiB.
    Object plain;
    plain.bytes = obj.bytes;
    auto want = SegmentReader::Open(plain.Fetcher(), f)->ReadRows(rows);
    ASSERT_TRUE(want.ok());
    EXPECT_GT(plain.requests.load(), 1);
    ASSERT_EQ(got->length(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (f.type == FieldType::kInt64) {
        ASSERT_EQ(got->Int64At(i), want->Int64At(i));
      } else {
        ASSERT_EQ(got->BytesAt(i), want->BytesAt(i));
      }
    }
  }
}

// A large segment: the first request holds the whole header (no second request for its
// rest), and ReadRows fetches only blocks.
TEST(SegmentFirstFetchTest, ALargeSegmentsHeaderComesInTheFirstRequest) {
  const FieldSpec f = EmbeddingField(128);
  constexpr uint32_t kRows = 4000;  // 2 MB of values, one block per row: a 64 KiB header
  Object obj;
  obj.bytes = Encode(f, kRows);
  const uint64_t first = SpeculativeFirstFetchBytes(f, kRows);
  EXPECT_LT(first, obj.bytes.size() / 4);
  auto reader = SegmentReader::Open(obj.Fetcher(), f, first);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(obj.requests.load(), 1);
  Object four_k;
  four_k.bytes = obj.bytes;
  ASSERT_TRUE(SegmentReader::Open(four_k.Fetcher(), f).ok());
  EXPECT_EQ(four_k.requests.load(), 2);  // 4 KiB, then the rest of the header
  auto got = reader->ReadRows({17, 3999});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->FloatsAt(1)[0], 3999.0F);
}

// Bytes that came with the header are data like any other: a damaged block among them is
// reported, not returned.
TEST(SegmentFirstFetchTest, DamageInBytesThatCameWithTheHeaderIsDetected) {
  const FieldSpec f = Int64Field();
  constexpr uint32_t kRows = 2000;
  Object obj;
  obj.bytes = Encode(f, kRows);
  // Flip a byte of the last row's value (the values buffer ends the object).
  obj.bytes[obj.bytes.size() - 3] ^= 0x5A;
  auto reader = SegmentReader::Open(obj.Fetcher(), f, SpeculativeFirstFetchBytes(f, kRows));
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(obj.requests.load(), 1);
  auto bad = reader->ReadRows({kRows - 1});
  EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt) << bad.status().ToString();
  EXPECT_EQ(obj.requests.load(), 1);  // checked from the bytes the first request brought
  auto good = reader->ReadRows({0, 1});
  EXPECT_TRUE(good.ok()) << good.status().ToString();
}

}  // namespace
}  // namespace dreamdb::columnar
