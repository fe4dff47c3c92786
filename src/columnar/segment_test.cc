// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/columnar/segment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "src/cbor/cbor.h"

namespace dreamdb::columnar {
namespace {

const FieldType kAllTypes[] = {FieldType::kInt64,  FieldType::kFloat64,     FieldType::kBool,
                               FieldType::kString, FieldType::kCategorical, FieldType::kTimestamp,
                               FieldType::kBlob,   FieldType::kEmbedding,   FieldType::kArray};

FieldSpec Spec(FieldType type, uint32_t dim = 4) {
  FieldSpec f;
  f.name = std::string("f_") + std::string(FieldTypeName(type));
  f.type = type;
  if (type == FieldType::kBlob) f.mime = "image/png";
  if (type == FieldType::kEmbedding) f.dim = dim;
  if (type == FieldType::kArray) {
    f.dtype = DType::kU8;
    f.shape = {2, 3};
  }
  return f;
}

// Deterministic pseudo-random columns. `max_bytes` bounds variable-width values.
Column MakeColumn(const FieldSpec& spec, uint64_t rows, double null_rate, uint64_t seed,
                  size_t max_bytes = 40) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution null(null_rate);
  Column c(spec);
  for (uint64_t r = 0; r < rows; ++r) {
    if (null(rng)) {
      c.AppendNull();
      continue;
    }
    uint64_t x = rng();
    switch (spec.type) {
      case FieldType::kInt64:
      case FieldType::kTimestamp:
        c.AppendInt64(static_cast<int64_t>(x));
        break;
      case FieldType::kFloat64:
        c.AppendFloat64(static_cast<double>(x % 100000) / 7.0);
        break;
      case FieldType::kBool:
        c.AppendBool(x & 1);
        break;
      case FieldType::kString:
      case FieldType::kBlob: {
        std::string s(x % (max_bytes + 1), '\0');
        for (char& ch : s) ch = static_cast<char>(rng());
        c.AppendBytes(s);
        break;
      }
      case FieldType::kCategorical:
        c.AppendBytes("label_" + std::to_string(x % 7));
        break;
      case FieldType::kEmbedding:
      case FieldType::kArray: {
        std::string v(spec.FixedWidth(), '\0');
        for (char& ch : v) ch = static_cast<char>(rng());
        if (spec.type == FieldType::kEmbedding) {
          // Keep floats finite so comparisons are plain.
          for (size_t i = 0; i < v.size(); i += 4) v[i + 3] = static_cast<char>(v[i + 3] & 0x3f);
        }
        c.AppendFixedBytes(v);
        break;
      }
    }
  }
  return c;
}

bool IsVar(FieldType t) {
  return t == FieldType::kString || t == FieldType::kBlob || t == FieldType::kCategorical;
}

// Row-by-row equality of `got` against rows `rows` of `want`, and equal field specs.
void ExpectRows(const Column& got, const Column& want, const std::vector<uint32_t>& rows) {
  ASSERT_EQ(got.length(), rows.size());
  EXPECT_EQ(got.field(), want.field());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(got.IsValid(i), want.IsValid(rows[i])) << "row " << rows[i];
    if (!got.IsValid(i)) continue;
    if (IsVar(want.type())) {
      ASSERT_EQ(got.BytesAt(i), want.BytesAt(rows[i])) << "row " << rows[i];
    } else {
      ASSERT_EQ(got.FixedAt(i), want.FixedAt(rows[i])) << "row " << rows[i];
    }
  }
}

void ExpectSameColumn(const Column& got, const Column& want) {
  std::vector<uint32_t> all(want.length());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  ExpectRows(got, want, all);
  // Columns built by the appenders are canonical: buffers are equal too.
  EXPECT_EQ(got.validity(), want.validity());
  EXPECT_EQ(got.values(), want.values());
  EXPECT_EQ(got.offsets(), want.offsets());
  EXPECT_EQ(got.data(), want.data());
}

// An in-memory object behind a FetchRange that counts what it serves.
struct MemObject {
  Bytes bytes;
  // Atomic: ReadRows fetches independent ranges from several threads.
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> served{0};
  FetchRange Fetcher() {
    return [this](uint64_t offset, uint64_t length) -> Result<Bytes> {
      ++requests;
      if (offset > bytes.size()) return InvalidArgument("offset past the end");
      Bytes out = bytes.substr(offset, length);
      served += out.size();
      return out;
    };
  }
};

Result<Column> ReadAllRanged(const Bytes& bytes, const FieldSpec& field) {
  MemObject obj{bytes};
  ASSIGN_OR_RETURN(SegmentReader reader, SegmentReader::Open(obj.Fetcher(), field));
  return reader.ReadAll();
}

Result<Column> ReadRowsRanged(const Bytes& bytes, const FieldSpec& field,
                              const std::vector<uint32_t>& rows) {
  MemObject obj{bytes};
  ASSIGN_OR_RETURN(SegmentReader reader, SegmentReader::Open(obj.Fetcher(), field));
  return reader.ReadRows(rows);
}

std::vector<uint32_t> AllRows(uint64_t n) {
  std::vector<uint32_t> rows(n);
  for (uint32_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

TEST(Segment, RoundTripEveryType) {
  for (FieldType type : kAllTypes) {
    for (double null_rate : {0.0, 0.25, 1.0}) {
      for (uint64_t rows : {0, 1, 7, 8, 9, 1000}) {
        SCOPED_TRACE(std::string(FieldTypeName(type)) + " nulls=" + std::to_string(null_rate) +
                     " rows=" + std::to_string(rows));
        FieldSpec spec = Spec(type);
        Column col = MakeColumn(spec, rows, null_rate, rows * 31 + 7);
        auto enc = EncodeSegment(col);
        ASSERT_TRUE(enc.ok()) << enc.status().ToString();
        EXPECT_EQ(enc->substr(0, 8), "DDBSEG01");
        auto dec = DecodeSegment(*enc, spec);
        ASSERT_TRUE(dec.ok()) << dec.status().ToString();
        ExpectSameColumn(*dec, col);
        // Deterministic: re-encoding the decoded column gives the same bytes.
        auto again = EncodeSegment(*dec);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(*again, *enc);
        auto ranged = ReadAllRanged(*enc, spec);
        ASSERT_TRUE(ranged.ok()) << ranged.status().ToString();
        ExpectSameColumn(*ranged, col);
        auto rows_read = ReadRowsRanged(*enc, spec, AllRows(rows));
        ASSERT_TRUE(rows_read.ok()) << rows_read.status().ToString();
        ExpectSameColumn(*rows_read, col);
      }
    }
  }
}

// The scan reads whole segments through ViewSegment: the same rows as DecodeSegment, with
// plain layouts viewed inside the object's bytes (no copy).
TEST(Segment, ViewSegmentMatchesDecodeForEveryType) {
  for (FieldType type : kAllTypes) {
    for (double null_rate : {0.0, 0.25, 1.0}) {
      for (uint64_t rows : {0, 1, 9, 1000}) {
        SCOPED_TRACE(std::string(FieldTypeName(type)) + " nulls=" + std::to_string(null_rate) +
                     " rows=" + std::to_string(rows));
        FieldSpec spec = Spec(type);
        Column col = MakeColumn(spec, rows, null_rate, rows * 17 + 3);
        auto enc = EncodeSegment(col);
        ASSERT_TRUE(enc.ok()) << enc.status().ToString();
        auto dec = DecodeSegment(*enc, spec);
        ASSERT_TRUE(dec.ok()) << dec.status().ToString();
        for (bool id_verified : {false, true}) {
          auto view = ViewSegment(*enc, spec, id_verified);
          ASSERT_TRUE(view.ok()) << view.status().ToString();
          EXPECT_EQ(view->rows, rows);
          EXPECT_EQ(view->validity, ByteView(dec->validity()));
          EXPECT_EQ(view->values, ByteView(dec->values()));
          EXPECT_EQ(view->offsets, ByteView(dec->offsets()));
          EXPECT_EQ(view->data, ByteView(dec->data()));
          const bool in_place = type != FieldType::kCategorical;
          EXPECT_EQ(view->decoded == nullptr, in_place);
          const ByteView buf = type == FieldType::kString || type == FieldType::kBlob ||
                                       type == FieldType::kCategorical
                                   ? view->offsets
                                   : view->values;
          if (in_place && !buf.empty()) {
            EXPECT_GE(buf.data(), enc->data());
            EXPECT_LE(buf.data() + buf.size(), enc->data() + enc->size());
          }
        }
      }
    }
  }
}

TEST(Segment, HeaderAndAlignment) {
  Column col = MakeColumn(Spec(FieldType::kString), 10, 0.3, 1);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  uint32_t header_len;
  std::memcpy(&header_len, enc->data() + 8, 4);
  auto header = cbor::Decode(ByteView(*enc).substr(28, header_len));
  ASSERT_TRUE(header.ok());
  const cbor::Map& m = header->map();
  EXPECT_EQ(m.Find("kind")->string_value(), "dreamdb.segment");
  EXPECT_EQ(m.Find("format")->raw_uint(), 3u);
  EXPECT_EQ(m.Find("type")->string_value(), "string");
  EXPECT_EQ(m.Find("rows")->raw_uint(), 10u);
  const cbor::Array& buffers = m.Find("buffers")->array();
  ASSERT_EQ(buffers.size(), 3u);
  const char* names[] = {"validity", "offsets", "data"};
  // `data` blocks are counted in values (spec/12 §4.4): about 256 bytes of them.
  const uint64_t data_len = buffers[2].map().Find("length")->raw_uint();
  uint64_t blocks[] = {256, 256,
                       std::clamp<uint64_t>(256 * 10 / std::max<uint64_t>(data_len, 1), 1, 10)};
  uint64_t end = 0;
  for (size_t i = 0; i < 3; ++i) {
    const cbor::Map& b = buffers[i].map();
    EXPECT_EQ(b.Find("name")->string_value(), names[i]);
    EXPECT_EQ(b.Find("offset")->raw_uint() % 8, 0u);
    EXPECT_EQ(b.Find("block")->raw_uint(), blocks[i]);
    end = b.Find("offset")->raw_uint() + b.Find("length")->raw_uint();
  }
  EXPECT_EQ(end, enc->size());
}

TEST(Segment, BlockSizes) {
  struct Case {
    FieldSpec spec;
    uint64_t values_block;
  };
  // Format 3 (spec/12 §4.4): as many whole rows as fit in 256 bytes, at least one.
  FieldSpec big = Spec(FieldType::kEmbedding, 1536);    // 6144 bytes/row: one row
  FieldSpec huge = Spec(FieldType::kEmbedding, 65536);  // 256 KiB/row: one row
  FieldSpec mid = Spec(FieldType::kEmbedding, 768);     // 3072 bytes/row: one row
  FieldSpec wide = Spec(FieldType::kEmbedding, 40);     // 160 bytes/row: one row
  FieldSpec small = Spec(FieldType::kEmbedding, 4);     // 16 bytes/row: 16 rows
  FieldSpec odd = Spec(FieldType::kArray);
  odd.shape = {3};  // 3 bytes/row: 85 rows
  const Case cases[] = {{Spec(FieldType::kInt64), 256},
                        {Spec(FieldType::kBool), 256},
                        {Spec(FieldType::kCategorical), 256},
                        {mid, 3072},
                        {big, 6144},
                        {huge, 262144},
                        {wide, 160},
                        {small, 256},
                        {odd, 255}};
  for (const Case& c : cases) {
    Column col = MakeColumn(c.spec, 2, 0.0, 3);
    auto enc = EncodeSegment(col);
    ASSERT_TRUE(enc.ok());
    uint32_t header_len;
    std::memcpy(&header_len, enc->data() + 8, 4);
    auto header = cbor::Decode(ByteView(*enc).substr(28, header_len));
    ASSERT_TRUE(header.ok());
    const cbor::Value& values = header->map().Find("buffers")->array()[0];
    EXPECT_EQ(values.map().Find("block")->raw_uint(), c.values_block)
        << FieldTypeName(c.spec.type) << " width " << c.spec.FixedWidth();
  }
}

TEST(Segment, LargeValues) {
  // Blobs spanning several 64 KiB data blocks, and embeddings larger than a block.
  FieldSpec blob = Spec(FieldType::kBlob);
  Column col = MakeColumn(blob, 12, 0.2, 5, 300000);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  auto dec = DecodeSegment(*enc, blob);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  ExpectSameColumn(*dec, col);
  for (uint32_t r = 0; r < 12; ++r) {
    auto one = ReadRowsRanged(*enc, blob, {r});
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    ExpectRows(*one, col, {r});
  }
  FieldSpec emb = Spec(FieldType::kEmbedding, 65536);
  Column ecol = MakeColumn(emb, 5, 0.2, 6);
  auto eenc = EncodeSegment(ecol);
  ASSERT_TRUE(eenc.ok());
  auto edec = DecodeSegment(*eenc, emb);
  ASSERT_TRUE(edec.ok());
  ExpectSameColumn(*edec, ecol);
  auto some = ReadRowsRanged(*eenc, emb, {1, 3, 3});
  ASSERT_TRUE(some.ok()) << some.status().ToString();
  ExpectRows(*some, ecol, {1, 3, 3});
}

TEST(Segment, ManyRows) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 200000, 0.01, 9);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  auto dec = DecodeSegment(*enc, spec);
  ASSERT_TRUE(dec.ok());
  ExpectSameColumn(*dec, col);
}

TEST(Segment, TypeMismatchIsInvalidArgument) {
  Column col = MakeColumn(Spec(FieldType::kEmbedding, 4), 3, 0.0, 1);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  auto r = DecodeSegment(*enc, Spec(FieldType::kEmbedding, 8));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("embedding(dim=4)"), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("embedding(dim=8)"), std::string::npos);
  r = DecodeSegment(*enc, Spec(FieldType::kString));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), Spec(FieldType::kInt64));
  EXPECT_EQ(reader.status().code(), StatusCode::kInvalidArgument);

  FieldSpec arr = Spec(FieldType::kArray);
  auto aenc = EncodeSegment(MakeColumn(arr, 2, 0.0, 1));
  ASSERT_TRUE(aenc.ok());
  FieldSpec arr2 = arr;
  arr2.shape = {3, 2};
  r = DecodeSegment(*aenc, arr2);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("array(u8, [2,3])"), std::string::npos);
  // Categorical and string are different types on disk.
  auto cenc = EncodeSegment(MakeColumn(Spec(FieldType::kCategorical), 2, 0.0, 1));
  ASSERT_TRUE(cenc.ok());
  EXPECT_EQ(DecodeSegment(*cenc, Spec(FieldType::kString)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Segment, EncodeErrors) {
  FieldSpec bad = Spec(FieldType::kEmbedding);
  bad.dim = 0;
  auto r = EncodeSegment(Column(bad));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(Segment, Categorical) {
  FieldSpec spec = Spec(FieldType::kCategorical);
  Column col(spec);
  for (const char* s : {"b", "a", "b", "", "c", "a"}) col.AppendBytes(s);
  col.AppendNull();
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  uint32_t header_len;
  std::memcpy(&header_len, enc->data() + 8, 4);
  auto header = cbor::Decode(ByteView(*enc).substr(28, header_len));
  ASSERT_TRUE(header.ok());
  const cbor::Array& buffers = header->map().Find("buffers")->array();
  ASSERT_EQ(buffers.size(), 4u);
  auto buf = [&](size_t i) {
    const cbor::Map& b = buffers[i].map();
    return enc->substr(b.Find("offset")->raw_uint(), b.Find("length")->raw_uint());
  };
  // Codes in first-occurrence order; the null row has code 0.
  uint32_t codes[] = {0, 1, 0, 2, 3, 1, 0};
  EXPECT_EQ(buf(1), std::string(reinterpret_cast<const char*>(codes), sizeof(codes)));
  EXPECT_EQ(buf(3), "bac");
  uint64_t dict_offsets[] = {0, 1, 2, 2, 3};
  EXPECT_EQ(buf(2), std::string(reinterpret_cast<const char*>(dict_offsets), sizeof(dict_offsets)));
  auto dec = DecodeSegment(*enc, spec);
  ASSERT_TRUE(dec.ok());
  ExpectSameColumn(*dec, col);
}

TEST(SegmentReader, OpenTakesOneRequest) {
  FieldSpec spec = Spec(FieldType::kFloat64);
  Column col = MakeColumn(spec, 20000, 0.0, 2);  // 160 KB, 625 blocks: 10 KB of sums
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  // The header is longer than 4 KiB here: exactly two requests.
  EXPECT_EQ(reader->stats().requests, 2u);
  EXPECT_EQ(reader->rows(), 20000u);
  EXPECT_EQ(reader->object_size(), enc->size());

  Column small = MakeColumn(spec, 1000, 0.0, 2);
  auto senc = EncodeSegment(small);
  ASSERT_TRUE(senc.ok());
  MemObject sobj{*senc};
  auto sreader = SegmentReader::Open(sobj.Fetcher(), spec);
  ASSERT_TRUE(sreader.ok());
  EXPECT_EQ(sreader->stats().requests, 1u);
  EXPECT_EQ(sreader->stats().bytes_fetched, 4096u);
  EXPECT_EQ(sobj.requests, 1u);
}

TEST(SegmentReader, RandomRowSetsMatchReadAll) {
  std::mt19937_64 rng(77);
  for (FieldType type : kAllTypes) {
    for (double null_rate : {0.0, 0.3}) {
      FieldSpec spec = Spec(type, 64);
      const uint64_t rows = 3000;
      Column col = MakeColumn(spec, rows, null_rate, 1234, 600);
      auto enc = EncodeSegment(col);
      ASSERT_TRUE(enc.ok());
      MemObject obj{*enc};
      auto reader = SegmentReader::Open(obj.Fetcher(), spec);
      ASSERT_TRUE(reader.ok()) << reader.status().ToString();
      auto all = reader->ReadAll();
      ASSERT_TRUE(all.ok()) << all.status().ToString();
      ExpectSameColumn(*all, col);
      for (int trial = 0; trial < 25; ++trial) {
        SCOPED_TRACE(std::string(FieldTypeName(type)) + " trial " + std::to_string(trial));
        std::vector<uint32_t> pick;
        int n = static_cast<int>(rng() % 60);
        if (trial % 5 == 0) {  // a contiguous run
          uint32_t start = rng() % rows;
          for (uint32_t r = start; r < std::min<uint64_t>(rows, start + n * 10); ++r)
            pick.push_back(r);
        } else {
          for (int i = 0; i < n; ++i) pick.push_back(rng() % rows);
          std::sort(pick.begin(), pick.end());  // duplicates kept
        }
        uint64_t before_requests = obj.requests;
        uint64_t before_bytes = obj.served;
        auto got = reader->ReadRows(pick);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        ExpectRows(*got, *all, pick);
        // The reader's stats agree with what the fetcher saw.
        EXPECT_EQ(reader->stats().requests, obj.requests);
        EXPECT_EQ(reader->stats().bytes_fetched, obj.served);
        // Never more than the whole object per ReadRows; no request at all for no rows.
        EXPECT_LE(obj.served - before_bytes, enc->size());
        if (pick.empty()) {
          EXPECT_EQ(obj.requests, before_requests);
        }
      }
    }
  }
}

TEST(SegmentReader, DenseReadFetchesLittleMoreThanTheValues) {
  for (FieldType type : {FieldType::kInt64, FieldType::kFloat64, FieldType::kTimestamp,
                         FieldType::kBool, FieldType::kEmbedding}) {
    FieldSpec spec = Spec(type, 16);
    const uint64_t rows = 100000;
    Column col = MakeColumn(spec, rows, 0.0, 4);
    auto enc = EncodeSegment(col);
    ASSERT_TRUE(enc.ok());
    MemObject obj{*enc};
    auto reader = SegmentReader::Open(obj.Fetcher(), spec);
    ASSERT_TRUE(reader.ok());
    const uint64_t header_bytes = reader->stats().bytes_fetched;
    for (uint32_t start : {0u, 12345u, 50000u, 99000u}) {
      std::vector<uint32_t> pick;
      for (uint32_t r = start; r < start + 1000; ++r) pick.push_back(r);
      uint64_t before = obj.served;
      uint64_t before_requests = obj.requests;
      auto got = reader->ReadRows(pick);
      ASSERT_TRUE(got.ok());
      ExpectRows(*got, col, pick);
      uint64_t value_bytes = got->values().size();
      uint64_t fetched = obj.served - before;
      EXPECT_LE(fetched, value_bytes * 3 / 2)
          << FieldTypeName(type) << " start " << start << " value bytes " << value_bytes;
      EXPECT_LE(obj.requests - before_requests, 1u);  // one coalesced range
    }
    // Header + dense read bound including the header fetch.
    EXPECT_LE(reader->stats().bytes_fetched,
              header_bytes + 4 * col.values().size() / rows * 1000 * 3 / 2);
  }
}

TEST(SegmentReader, CoalescesNearbyAndSplitsDistantRanges) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 1000000, 0.0, 8);  // 8 MB of values
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok());
  // Rows 40 KB apart: separate requests of one 256-byte block each.
  std::vector<uint32_t> far = {100000, 105000, 110000, 115000};
  uint64_t r0 = obj.requests, b0 = obj.served;
  ASSERT_TRUE(reader->ReadRows(far).ok());
  EXPECT_EQ(obj.requests - r0, 4u);
  EXPECT_EQ(obj.served - b0, 4 * 256u);
  // Rows 2 KB apart: one request spanning them.
  std::vector<uint32_t> near = {200000, 200256, 200512};
  r0 = obj.requests;
  b0 = obj.served;
  ASSERT_TRUE(reader->ReadRows(near).ok());
  EXPECT_EQ(obj.requests - r0, 1u);
  EXPECT_EQ(obj.served - b0, 2 * 2048u + 256u);
}

TEST(SegmentReader, Errors) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 10, 0.0, 8);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader->ReadRows({3, 2}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reader->ReadRows({10}).status().code(), StatusCode::kInvalidArgument);
  auto empty = reader->ReadRows({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->length(), 0u);

  // Fetch errors pass through.
  FetchRange failing = [](uint64_t, uint64_t) -> Result<Bytes> { return Unavailable("down"); };
  EXPECT_EQ(SegmentReader::Open(failing, spec).status().code(), StatusCode::kUnavailable);

  // Truncated and over-long objects.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{27}, size_t{40}, enc->size() - 1}) {
    Bytes t = enc->substr(0, cut);
    EXPECT_EQ(DecodeSegment(t, spec).status().code(), StatusCode::kCorrupt) << cut;
    EXPECT_EQ(ReadAllRanged(t, spec).status().code(), StatusCode::kCorrupt) << cut;
  }
  Bytes longer = *enc + std::string(8, '\0');
  EXPECT_EQ(DecodeSegment(longer, spec).status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(ReadAllRanged(longer, spec).status().code(), StatusCode::kCorrupt);
}

// A stored segment shorter than its header says is damage: a ranged read of rows past the
// stored end (the backend refuses the range as invalid_argument) reports corrupt.
TEST(SegmentReader, TruncatedObjectOnRangedReadIsCorruptNotInvalidArgument) {
  FieldSpec spec = Spec(FieldType::kFloat64);
  Column col = MakeColumn(spec, 20000, 0.0, 2);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  obj.bytes.resize(obj.bytes.size() / 2);  // the object is cut after Open read the header
  auto rows = reader->ReadRows({19990});
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kCorrupt) << rows.status().ToString();
  EXPECT_NE(rows.status().message().find("truncated"), std::string::npos)
      << rows.status().ToString();
  EXPECT_EQ(reader->ReadAll().status().code(), StatusCode::kCorrupt);
  // Cut inside a long header: Open itself reports corrupt.
  MemObject cut{enc->substr(0, 5000)};
  EXPECT_EQ(SegmentReader::Open(cut.Fetcher(), spec).status().code(), StatusCode::kCorrupt);
}

// Recomputes every block sum and the header sum from the bytes as they are, so tests can
// make semantically wrong segments that pass the checksums.
Bytes Reseal(Bytes seg) {
  uint32_t header_len;
  std::memcpy(&header_len, seg.data() + 8, 4);
  auto header = cbor::Decode(ByteView(seg).substr(28, header_len));
  EXPECT_TRUE(header.ok());
  cbor::Map top = header->map();
  const bool format3 = top.Find("format")->raw_uint() == 3;
  cbor::Array buffers;
  uint64_t offsets_at = 0, offsets_len = 0;
  for (const cbor::Value& b : top.Find("buffers")->array()) {
    cbor::Map m = b.map();
    const std::string& name = m.Find("name")->string_value();
    uint64_t offset = m.Find("offset")->raw_uint();
    uint64_t length = m.Find("length")->raw_uint();
    uint64_t block = m.Find("block")->raw_uint();
    Bytes sums;
    auto add_sum = [&](uint64_t start, uint64_t len) {
      auto d = ObjectId::Of(ByteView(seg).substr(start, len)).digest();
      sums.append(reinterpret_cast<const char*>(d.data()), 16);
    };
    if (name == "offsets" || name == "dict_offsets") {
      offsets_at = offset;
      offsets_len = length;
    }
    if (format3 && (name == "data" || name == "dict_data")) {
      // Blocks of `block` whole values, cut by the offsets as they are (spec/12 §4.4);
      // bounds outside the buffer are clamped (the reader refuses them anyway).
      const uint64_t n = offsets_len / 8 - 1;
      auto entry = [&](uint64_t e) {
        uint64_t v;
        std::memcpy(&v, seg.data() + offsets_at + e * 8, 8);
        return std::min(v, length);
      };
      for (uint64_t k = 0; k * block < n; ++k) {
        uint64_t lo = entry(k * block), hi = std::max(lo, entry(std::min(n, (k + 1) * block)));
        add_sum(offset + lo, hi - lo);
      }
    } else {
      for (uint64_t o = 0; o < length; o += block) add_sum(offset + o, std::min(block, length - o));
    }
    m.Set("sums", cbor::Value::Bytes(sums));
    buffers.push_back(cbor::Value::FromMap(std::move(m)));
  }
  top.Set("buffers", cbor::Value::FromArray(std::move(buffers)));
  auto encoded = cbor::Encode(cbor::Value::FromMap(std::move(top)));
  EXPECT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->size(), header_len);
  seg.replace(28, header_len, *encoded);
  auto d = ObjectId::Of(*encoded).digest();
  seg.replace(12, 16, std::string(reinterpret_cast<const char*>(d.data()), 16));
  return seg;
}

// Offset of buffer `index` (in header order).
uint64_t BufferOffset(const Bytes& seg, size_t index) {
  uint32_t header_len;
  std::memcpy(&header_len, seg.data() + 8, 4);
  auto header = cbor::Decode(ByteView(seg).substr(28, header_len));
  return header->map().Find("buffers")->array()[index].map().Find("offset")->raw_uint();
}

bool LooksFramed(ByteView m) {
  if (m.substr(0, 3) != "DDB") return false;
  for (size_t i = 3; i < 6; ++i) {
    if (m[i] < 'A' || m[i] > 'Z') return false;
  }
  return m[6] >= '0' && m[6] <= '9' && m[7] >= '0' && m[7] <= '9';
}

uint64_t Align8(uint64_t x) { return (x + 7) / 8 * 8; }

// Re-lays out a segment after `pre` edits the header map (offsets, sums and the header
// sum are recomputed), then lets `post` edit the buffer entries in place; `post` must
// keep the header's length.
Bytes Rebuild(const Bytes& seg, const std::function<void(cbor::Map&)>& pre,
              const std::function<void(cbor::Array&)>& post = nullptr) {
  uint32_t header_len;
  std::memcpy(&header_len, seg.data() + 8, 4);
  auto header = cbor::Decode(ByteView(seg).substr(28, header_len));
  EXPECT_TRUE(header.ok());
  cbor::Map top = header->map();
  std::map<std::string, Bytes> data_of;
  for (const cbor::Value& b : top.Find("buffers")->array()) {
    const cbor::Map& m = b.map();
    data_of[m.Find("name")->string_value()] =
        seg.substr(m.Find("offset")->raw_uint(), m.Find("length")->raw_uint());
  }
  pre(top);
  std::vector<std::pair<cbor::Map, Bytes>> buffers;
  if (const cbor::Value* list = top.Find("buffers")) {
    for (const cbor::Value& b : list->array()) {
      buffers.emplace_back(b.map(), data_of[b.map().Find("name")->string_value()]);
    }
  }
  uint64_t header_end = 28;
  Bytes encoded;
  std::vector<uint64_t> offsets;
  for (int i = 0; i < 20; ++i) {
    cbor::Array list;
    offsets.clear();
    uint64_t pos = header_end;
    for (auto& [m, data] : buffers) {
      offsets.push_back(Align8(pos));
      m.Set("offset", cbor::Value::UInt(offsets.back()));
      list.push_back(cbor::Value::FromMap(m));
      pos = offsets.back() + data.size();
    }
    top.Set("buffers", cbor::Value::FromArray(list));
    encoded = *cbor::Encode(cbor::Value::FromMap(top));
    uint64_t end = 28 + encoded.size();
    bool stable = Align8(end) == Align8(header_end);
    header_end = end;
    if (stable) break;
  }
  if (post) {
    cbor::Array list = top.Find("buffers")->array();
    post(list);
    top.Set("buffers", cbor::Value::FromArray(list));
    Bytes again = *cbor::Encode(cbor::Value::FromMap(top));
    EXPECT_EQ(again.size(), encoded.size());
    encoded = again;
  }
  Bytes out = "DDBSEG01";
  uint32_t len = static_cast<uint32_t>(encoded.size());
  out.append(reinterpret_cast<const char*>(&len), 4);
  auto d = ObjectId::Of(encoded).digest();
  out.append(reinterpret_cast<const char*>(d.data()), 16);
  out += encoded;
  for (size_t i = 0; i < buffers.size(); ++i) {
    out.append(offsets[i] - out.size(), '\0');
    out += buffers[i].second;
  }
  return out;
}

TEST(Segment, HeaderRules) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 50, 0.2, 4);
  const Bytes seg = *EncodeSegment(col);
  // Rebuild without edits reproduces the encoder's bytes.
  EXPECT_EQ(Rebuild(seg, [](cbor::Map&) {}), seg);

  // Unknown header and buffer keys are ignored (spec/08-versioning.md §4.2).
  Bytes extra = Rebuild(seg, [](cbor::Map& m) {
    m.Set("stats", cbor::Value::Text("min/max some day"));
    cbor::Array list = m.Find("buffers")->array();
    list[0].mutable_map().Set("hint", cbor::Value::UInt(1));
    m.Set("buffers", cbor::Value::FromArray(list));
  });
  auto dec = DecodeSegment(extra, spec);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  ExpectSameColumn(*dec, col);
  auto ranged = ReadRowsRanged(extra, spec, {3, 4, 40});
  ASSERT_TRUE(ranged.ok()) << ranged.status().ToString();

  struct Case {
    std::function<void(cbor::Map&)> pre;
    std::function<void(cbor::Array&)> post;
    StatusCode code;
    const char* substr;
  };
  auto set = [](const char* key, const cbor::Value& v) -> std::function<void(cbor::Map&)> {
    return [key, v](cbor::Map& m) { m.Set(key, v); };
  };
  auto none = [](cbor::Map&) {};
  const Case cases[] = {
      {set("kind", cbor::Value::Text("dreamdb.other")), nullptr, StatusCode::kCorrupt, "kind"},
      {set("format", cbor::Value::UInt(4)), nullptr, StatusCode::kUnsupported,
       "segment format 4 is newer than this build reads (1, 2 and 3)"},
      {set("format", cbor::Value::UInt(2)), nullptr, StatusCode::kCorrupt,
       "missing required key 'encoding'"},
      {set("type", cbor::Value::Text("decimal")), nullptr, StatusCode::kUnsupported,
       "unknown type 'decimal'"},
      {set("rows", cbor::Value::UInt(51)), nullptr, StatusCode::kCorrupt, "length is"},
      {set("rows", cbor::Value::UInt(uint64_t{1} << 33)), nullptr, StatusCode::kCorrupt, "exceeds"},
      {set("rows", cbor::Value::Text("50")), nullptr, StatusCode::kCorrupt, "rows"},
      {set("dim", cbor::Value::UInt(4)), nullptr, StatusCode::kCorrupt,
       "'dim' does not apply to type int64"},
      {[](cbor::Map& m) { m = cbor::Map(); }, nullptr, StatusCode::kCorrupt, "kind"},
      {[](cbor::Map& m) {
         cbor::Array list = m.Find("buffers")->array();
         list.pop_back();
         m.Set("buffers", cbor::Value::FromArray(list));
       },
       nullptr, StatusCode::kCorrupt, "buffer 0 is 'validity', expected 'values'"},
      {[](cbor::Map& m) {
         cbor::Array list = m.Find("buffers")->array();
         std::swap(list[0], list[1]);
         m.Set("buffers", cbor::Value::FromArray(list));
       },
       nullptr, StatusCode::kCorrupt, "expected 'validity'"},
      {none, [](cbor::Array& l) { l[1].mutable_map().Set("block", cbor::Value::UInt(512)); },
       StatusCode::kCorrupt, "block size is 512, expected 256"},
      {none,
       [](cbor::Array& l) {
         uint64_t off = l[1].map().Find("offset")->raw_uint();
         l[1].mutable_map().Set("offset", cbor::Value::UInt(off + 8));
       },
       StatusCode::kCorrupt, "offset is"},
      {none, [](cbor::Array& l) { l[1].mutable_map().Set("length", cbor::Value::UInt(392)); },
       StatusCode::kCorrupt, "length is 392, expected 400"},
      {none,
       [](cbor::Array& l) {
         Bytes sums = l[1].map().Find("sums")->string_value();
         sums[0] ^= 1;
         l[1].mutable_map().Set("sums", cbor::Value::Bytes(sums));
       },
       StatusCode::kCorrupt, "checksum mismatch in buffer 'values' block 0"},
      {[](cbor::Map& m) {
         cbor::Array list = m.Find("buffers")->array();
         list[1].mutable_map().Set("sums", cbor::Value::Bytes(""));
         m.Set("buffers", cbor::Value::FromArray(list));
       },
       nullptr, StatusCode::kCorrupt, "bytes of sums"},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    Bytes bad = Rebuild(seg, cases[i].pre, cases[i].post);
    auto r = DecodeSegment(bad, spec);
    EXPECT_EQ(r.status().code(), cases[i].code) << i << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(cases[i].substr), std::string::npos)
        << i << ": " << r.status().ToString() << " (wanted " << cases[i].substr << ")";
    auto all = ReadAllRanged(bad, spec);
    EXPECT_EQ(all.status().code(), cases[i].code) << i << ": " << all.status().ToString();
  }

  // Magic numbers (spec/02-object-model.md §2.3).
  Bytes m = seg;
  m.replace(0, 8, "DDBSEG02");
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kUnsupported);
  m.replace(0, 8, "DDBSEG00");
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kCorrupt);
  m.replace(0, 8, "DDBIDX01");
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kUnsupported);
  m.replace(0, 8, "PK\x03\x04zzzz");
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kCorrupt);
  // Header length out of range.
  m = seg;
  m.replace(8, 4, std::string("\0\0\0\x10", 4));
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kCorrupt);
  m.replace(8, 4, std::string(4, '\0'));
  EXPECT_EQ(DecodeSegment(m, spec).status().code(), StatusCode::kCorrupt);
}

void ExpectCorruptEverywhere(const Bytes& seg, const FieldSpec& spec, std::string_view substr) {
  auto whole = DecodeSegment(seg, spec);
  EXPECT_EQ(whole.status().code(), StatusCode::kCorrupt) << whole.status().ToString();
  EXPECT_NE(whole.status().message().find(substr), std::string::npos) << whole.status().ToString();
  auto all = ReadAllRanged(seg, spec);
  EXPECT_EQ(all.status().code(), StatusCode::kCorrupt) << all.status().ToString();
  // The scan's view checks the canonical form too, with or without the block sums.
  for (bool id_verified : {false, true}) {
    auto view = ViewSegment(seg, spec, id_verified);
    EXPECT_EQ(view.status().code(), StatusCode::kCorrupt) << view.status().ToString();
    EXPECT_NE(view.status().message().find(substr), std::string::npos) << view.status().ToString();
  }
}

TEST(Segment, ResealIsIdentityOnValidSegments) {
  auto enc = EncodeSegment(MakeColumn(Spec(FieldType::kString), 50, 0.2, 3));
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(Reseal(*enc), *enc);
}

TEST(Segment, NonCanonicalContentIsCorrupt) {
  {  // bool value 2
    FieldSpec spec = Spec(FieldType::kBool);
    Column col(spec);
    col.AppendBool(true);
    col.AppendBool(false);
    Bytes seg = *EncodeSegment(col);
    seg[BufferOffset(seg, 0) + 1] = 2;
    seg = Reseal(seg);
    ExpectCorruptEverywhere(seg, spec, "not 0 or 1");
    EXPECT_EQ(ReadRowsRanged(seg, spec, {1}).status().code(), StatusCode::kCorrupt);
    EXPECT_TRUE(ReadRowsRanged(seg, spec, {0}).ok());
  }
  {  // a null row holding a value
    FieldSpec spec = Spec(FieldType::kInt64);
    Column col(spec);
    col.AppendInt64(5);
    col.AppendNull();
    Bytes seg = *EncodeSegment(col);
    seg[BufferOffset(seg, 1) + 8] = 1;
    seg = Reseal(seg);
    ExpectCorruptEverywhere(seg, spec, "null row 1 has a non-zero value");
    EXPECT_EQ(ReadRowsRanged(seg, spec, {1}).status().code(), StatusCode::kCorrupt);
  }
  {  // a validity buffer without nulls
    FieldSpec spec = Spec(FieldType::kInt64);
    Column col(spec);
    col.AppendInt64(5);
    col.AppendNull();
    Bytes seg = *EncodeSegment(col);
    seg[BufferOffset(seg, 0)] = 3;
    seg = Reseal(seg);
    ExpectCorruptEverywhere(seg, spec, "no row is null");
  }
  {  // validity bits past the end
    FieldSpec spec = Spec(FieldType::kInt64);
    Column col(spec);
    col.AppendInt64(5);
    col.AppendNull();
    Bytes seg = *EncodeSegment(col);
    seg[BufferOffset(seg, 0)] = 0x11;
    seg = Reseal(seg);
    ExpectCorruptEverywhere(seg, spec, "past the last row");
  }
  {  // decreasing offsets
    FieldSpec spec = Spec(FieldType::kString);
    Column col(spec);
    col.AppendBytes("abc");
    col.AppendBytes("de");
    Bytes seg = *EncodeSegment(col);
    seg[BufferOffset(seg, 0) + 8] = 6;  // offsets {0, 6, 5}
    seg = Reseal(seg);
    ExpectCorruptEverywhere(seg, spec, "never decrease");
    EXPECT_EQ(ReadRowsRanged(seg, spec, {0}).status().code(), StatusCode::kCorrupt);
  }
  {  // categorical codes out of first-occurrence order, and past the dictionary
    FieldSpec spec = Spec(FieldType::kCategorical);
    Column col(spec);
    col.AppendBytes("x");
    col.AppendBytes("y");
    Bytes seg = *EncodeSegment(col);
    Bytes swapped = seg;
    swapped[BufferOffset(seg, 0)] = 1;
    swapped[BufferOffset(seg, 0) + 4] = 0;
    swapped = Reseal(swapped);
    ExpectCorruptEverywhere(swapped, spec, "first-occurrence");
    Bytes past = seg;
    past[BufferOffset(seg, 0) + 4] = 2;
    past = Reseal(past);
    ExpectCorruptEverywhere(past, spec, "code 2");
    EXPECT_EQ(ReadRowsRanged(past, spec, {1}).status().code(), StatusCode::kCorrupt);
    Bytes dup = seg;  // dictionary "x","x"
    dup[BufferOffset(seg, 2) + 1] = 'x';
    dup = Reseal(dup);
    ExpectCorruptEverywhere(dup, spec, "repeats");
  }
}

// Bytes verified against the object id are hashed once: ViewSegment with id_verified skips
// the block sums (a flipped value byte is caught by the id, before it), and checks them
// when the id was not verified (a store with verify_reads off).
TEST(Segment, ViewSegmentChecksBlockSumsOnlyWhenTheIdDidNot) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 100, 0.0, 5);
  Bytes seg = *EncodeSegment(col);
  seg[BufferOffset(seg, 0)] ^= 1;  // the first value, sums not resealed
  EXPECT_EQ(DecodeSegment(seg, spec).status().code(), StatusCode::kCorrupt);
  auto unverified = ViewSegment(seg, spec, /*id_verified=*/false);
  EXPECT_EQ(unverified.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(unverified.status().message().find("checksum mismatch"), std::string::npos);
  auto verified = ViewSegment(seg, spec, /*id_verified=*/true);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->values.size(), 800u);
}

// Flips each byte of small segments: the whole-object decode, the ranged ReadAll and a
// ranged read of the rows covering the byte all report kCorrupt.
TEST(Segment, EverySingleByteCorruptionIsDetected) {
  constexpr uint32_t kRows = 19;  // three validity bytes, the last one partial
  for (FieldType type : kAllTypes) {
    for (double null_rate : {0.0, 0.3}) {
      FieldSpec spec = Spec(type);
      Column col = MakeColumn(spec, kRows, null_rate, 99, 10);
      Bytes seg = *EncodeSegment(col);
      uint32_t header_len;
      std::memcpy(&header_len, seg.data() + 8, 4);
      const uint64_t first_buffer = BufferOffset(seg, 0);
      const size_t value_buffer = (null_rate > 0) ? 1 : 0;
      const uint64_t values_at = BufferOffset(seg, value_buffer);
      std::vector<std::pair<uint64_t, uint64_t>> buffer_ranges;
      {
        auto hdr = cbor::Decode(ByteView(seg).substr(28, header_len));
        for (const cbor::Value& b : hdr->map().Find("buffers")->array()) {
          buffer_ranges.emplace_back(b.map().Find("offset")->raw_uint(),
                                     b.map().Find("length")->raw_uint());
        }
      }
      for (size_t i = 0; i < seg.size(); ++i) {
        {
          const uint8_t flip = (i % 2 == 0) ? 0x01 : 0x80;
          Bytes bad = seg;
          bad[i] = static_cast<char>(bad[i] ^ flip);
          SCOPED_TRACE(std::string(FieldTypeName(type)) + " byte " + std::to_string(i) + " of " +
                       std::to_string(seg.size()));
          // A magic that still names a framed type is unsupported (spec/02 §2.3).
          const bool framed_magic = i < 8 && LooksFramed(ByteView(bad).substr(0, 8));
          auto code_ok = [&](StatusCode c) {
            return c == StatusCode::kCorrupt || (framed_magic && c == StatusCode::kUnsupported);
          };
          auto whole = DecodeSegment(bad, spec);
          ASSERT_FALSE(whole.ok());
          EXPECT_TRUE(code_ok(whole.status().code())) << whole.status().ToString();
          auto all = ReadAllRanged(bad, spec);
          ASSERT_FALSE(all.ok());
          EXPECT_TRUE(code_ok(all.status().code())) << all.status().ToString();
          if (i >= first_buffer) {
            auto rows = ReadRowsRanged(bad, spec, AllRows(kRows));
            // Padding bytes between buffers are covered by ReadAll (and the object id).
            if (rows.ok()) {
              // Only inter-buffer padding escapes a full ranged read; ReadAll (and the
              // object id) cover it.
              bool in_buffer = false;
              for (const auto& [off, len] : buffer_ranges) in_buffer |= (i >= off && i < off + len);
              EXPECT_FALSE(in_buffer);
            } else {
              EXPECT_EQ(rows.status().code(), StatusCode::kCorrupt) << rows.status().ToString();
            }
          }
          const uint64_t w = (type == FieldType::kCategorical) ? 4 : spec.FixedWidth();
          if (w > 0 && i >= values_at && i < values_at + kRows * w) {
            uint32_t row = static_cast<uint32_t>((i - values_at) / w);
            auto one = ReadRowsRanged(bad, spec, {row});
            EXPECT_EQ(one.status().code(), StatusCode::kCorrupt) << one.status().ToString();
          }
        }
      }
    }
  }
}

// ---- sq8: embeddings of raw = false fields (spec/12-segments.md §9) ----

FieldSpec Sq8Spec(uint32_t dim) {
  FieldSpec f = Spec(FieldType::kEmbedding, dim);
  f.optional = true;
  IndexSpec ix;
  ix.keep_raw = false;
  f.index = ix;
  return f;
}

// Gaussian-ish embeddings (sums of uniforms), nulls at `null_rate`.
Column MakeVectors(const FieldSpec& spec, uint64_t rows, double null_rate, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution null(null_rate);
  std::uniform_real_distribution<float> u(-1.0F, 1.0F);
  Column c(spec);
  std::vector<float> v(spec.dim);
  for (uint64_t r = 0; r < rows; ++r) {
    if (null(rng)) {
      c.AppendNull();
      continue;
    }
    const float scale = static_cast<float>(r % 5 + 1);
    for (float& x : v) x = scale * (u(rng) + u(rng) + u(rng));
    c.AppendFloats(v);
  }
  return c;
}

cbor::Map HeaderOf(const Bytes& seg) {
  uint32_t header_len;
  std::memcpy(&header_len, seg.data() + 8, 4);
  auto header = cbor::Decode(ByteView(seg).substr(28, header_len));
  EXPECT_TRUE(header.ok());
  return header->map();
}

// The normative bound of §9.2: |x - x^| <= (max - min) / 510 + 2^-22 x max(|min|, |max|).
void ExpectWithinBound(const Column& got, const Column& want) {
  ASSERT_EQ(got.length(), want.length());
  for (uint64_t r = 0; r < want.length(); ++r) {
    ASSERT_EQ(got.IsValid(r), want.IsValid(r)) << "row " << r;
    if (!want.IsValid(r)) continue;
    std::span<const float> x = want.FloatsAt(r);
    std::span<const float> y = got.FloatsAt(r);
    const float lo = *std::min_element(x.begin(), x.end());
    const float hi = *std::max_element(x.begin(), x.end());
    const double bound = (static_cast<double>(hi) - lo) / 510.0 +
                         std::ldexp(std::max(std::fabs(lo), std::fabs(hi)), -22);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound)
          << "row " << r << " index " << i << ": " << x[i] << " -> " << y[i];
      ASSERT_GE(y[i], lo);
      ASSERT_LE(y[i], hi);
    }
    // The row's min and max are exact.
    EXPECT_EQ(*std::min_element(y.begin(), y.end()), lo);
    EXPECT_EQ(*std::max_element(y.begin(), y.end()), hi);
  }
}

TEST(Sq8, RoundTripWithinTheBound) {
  for (uint32_t dim : {1u, 4u, 100u, 768u}) {
    for (double null_rate : {0.0, 0.25, 1.0}) {
      for (uint64_t rows : {0, 1, 9, 300}) {
        SCOPED_TRACE("dim=" + std::to_string(dim) + " nulls=" + std::to_string(null_rate) +
                     " rows=" + std::to_string(rows));
        FieldSpec spec = Sq8Spec(dim);
        Column col = MakeVectors(spec, rows, null_rate, rows * 7 + dim);
        auto enc = EncodeSegment(col);
        ASSERT_TRUE(enc.ok()) << enc.status().ToString();
        EXPECT_EQ(enc->substr(0, 8), "DDBSEG01");
        cbor::Map h = HeaderOf(*enc);
        EXPECT_EQ(h.Find("format")->raw_uint(), 3u);
        EXPECT_EQ(h.Find("encoding")->string_value(), "sq8");
        auto dec = DecodeSegment(*enc, spec);
        ASSERT_TRUE(dec.ok()) << dec.status().ToString();
        EXPECT_EQ(dec->field(), spec);
        ExpectWithinBound(*dec, col);
        // The decoder reads either encoding whatever the field declares about raw.
        FieldSpec plain = spec;
        plain.index.reset();
        auto dec_plain = DecodeSegment(*enc, plain);
        ASSERT_TRUE(dec_plain.ok()) << dec_plain.status().ToString();
        EXPECT_EQ(dec_plain->values(), dec->values());
        // Deterministic, and stable under re-encoding of what it decodes.
        EXPECT_EQ(*EncodeSegment(col), *enc);
        auto again = EncodeSegment(*dec);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(*again, *enc);
        auto ranged = ReadAllRanged(*enc, spec);
        ASSERT_TRUE(ranged.ok()) << ranged.status().ToString();
        EXPECT_EQ(ranged->values(), dec->values());
        EXPECT_EQ(ranged->validity(), dec->validity());
        auto rows_read = ReadRowsRanged(*enc, plain, AllRows(rows));
        ASSERT_TRUE(rows_read.ok()) << rows_read.status().ToString();
        EXPECT_EQ(rows_read->values(), dec->values());
        EXPECT_EQ(rows_read->validity(), dec->validity());
      }
    }
  }
}

TEST(Sq8, ExactByteLayout) {
  FieldSpec spec = Sq8Spec(4);
  Column col(spec);
  const std::vector<float> r0 = {-0.0F, 1.0F, 2.0F, 3.0F};
  const std::vector<float> r2 = {5.0F, 5.0F, 5.0F, 5.0F};
  const std::vector<float> r3 = {-0.0F, -1.0F, 0.25F, -0.5F};
  col.AppendFloats(r0);
  col.AppendNull();
  col.AppendFloats(r2);
  col.AppendFloats(r3);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  cbor::Map h = HeaderOf(*enc);
  EXPECT_EQ(h.Find("kind")->string_value(), "dreamdb.segment");
  EXPECT_EQ(h.Find("type")->string_value(), "embedding");
  EXPECT_EQ(h.Find("dim")->raw_uint(), 4u);
  EXPECT_EQ(h.Find("rows")->raw_uint(), 4u);
  EXPECT_EQ(h.size(), 7u);  // kind format encoding type rows dim buffers
  const cbor::Array& buffers = h.Find("buffers")->array();
  ASSERT_EQ(buffers.size(), 3u);
  const char* names[] = {"validity", "scales", "codes"};
  const uint64_t lengths[] = {1, 32, 16};
  const uint64_t blocks[] = {256, 256, 256};
  for (size_t i = 0; i < 3; ++i) {
    const cbor::Map& b = buffers[i].map();
    EXPECT_EQ(b.Find("name")->string_value(), names[i]);
    EXPECT_EQ(b.Find("length")->raw_uint(), lengths[i]);
    EXPECT_EQ(b.Find("block")->raw_uint(), blocks[i]);
  }
  EXPECT_EQ(enc->substr(BufferOffset(*enc, 0), 1), "\x0d");
  auto f32 = [](float lo, float hi) {
    Bytes b(8, '\0');
    std::memcpy(b.data(), &lo, 4);
    std::memcpy(b.data() + 4, &hi, 4);
    return b;
  };
  // Row 1 is null: zero scales and codes. -0 is stored as +0.
  EXPECT_EQ(enc->substr(BufferOffset(*enc, 1), 32),
            f32(0, 3) + Bytes(8, '\0') + f32(5, 5) + f32(-1, 0.25F));
  // Row 0: x * 255 / 3; row 3: (x + 1) * 255 / 1.25 = 204, 0, 255, 102.
  EXPECT_EQ(enc->substr(BufferOffset(*enc, 2), 16), Bytes("\x00\x55\xaa\xff", 4) + Bytes(4, '\0') +
                                                        Bytes(4, '\0') +
                                                        Bytes("\xcc\x00\xff\x66", 4));
  EXPECT_EQ(enc->size(), BufferOffset(*enc, 2) + 16);
  auto dec = DecodeSegment(*enc, spec);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  auto row = [&](uint64_t r) {
    std::span<const float> s = dec->FloatsAt(r);
    return std::vector<float>(s.begin(), s.end());
  };
  EXPECT_EQ(row(0), r0);
  EXPECT_FALSE(std::signbit(row(0)[0]));
  EXPECT_FALSE(dec->IsValid(1));
  EXPECT_EQ(row(2), r2);
  EXPECT_EQ(row(3), (std::vector<float>{0.0F, -1.0F, 0.25F, -0.5F}));
  EXPECT_FALSE(std::signbit(row(3)[0]));
}

TEST(Sq8, BlockSizesFollowTheFixedWidthRule) {
  // codes: w = dim; scales: w = 8 (format 3, spec/12 §4.4: whole rows in 256 bytes, at
  // least one).
  const std::pair<uint32_t, uint64_t> cases[] = {{4, 256},     {100, 200},   {768, 768},
                                                 {1536, 1536}, {5000, 5000}, {65536, 65536}};
  for (auto [dim, block] : cases) {
    Column col = MakeVectors(Sq8Spec(dim), 2, 0.0, 3);
    auto enc = EncodeSegment(col);
    ASSERT_TRUE(enc.ok());
    const cbor::Map h = HeaderOf(*enc);
    const cbor::Array& buffers = h.Find("buffers")->array();
    ASSERT_EQ(buffers.size(), 2u);
    EXPECT_EQ(buffers[0].map().Find("block")->raw_uint(), 256u);
    EXPECT_EQ(buffers[1].map().Find("block")->raw_uint(), block) << "dim " << dim;
  }
}

TEST(Sq8, AboutFourTimesSmaller) {
  FieldSpec spec = Sq8Spec(768);
  FieldSpec raw = spec;
  raw.index->keep_raw = true;
  Column col = MakeVectors(spec, 1000, 0.0, 5);
  Column raw_col(raw);
  raw_col.AppendRange(col, 0, col.length());
  auto sq8 = EncodeSegment(col);
  auto f32 = EncodeSegment(raw_col);
  ASSERT_TRUE(sq8.ok() && f32.ok());
  // 776 vs 3072 bytes per row, plus headers (16 bytes of block sum per row in both:
  // format 3 makes each wide row its own block): 792 vs 3088, 3.9x.
  EXPECT_LT(sq8->size() * 38, f32->size() * 10) << sq8->size() << " vs " << f32->size();
  EXPECT_GT(sq8->size(), 776u * 1000);
  // raw = true is format 3 without an encoding, the same bytes as no declared index.
  FieldSpec none = raw;
  none.index.reset();
  Column none_col(none);
  none_col.AppendRange(col, 0, col.length());
  EXPECT_EQ(*EncodeSegment(none_col), *f32);
  const cbor::Map h = HeaderOf(*f32);
  EXPECT_EQ(h.Find("format")->raw_uint(), 3u);
  EXPECT_EQ(h.Find("encoding"), nullptr);
  // The field given to EncodeSegment chooses the encoding, not the column's own spec.
  EXPECT_EQ(*EncodeSegment(none_col, spec), *sq8);
  EXPECT_EQ(*EncodeSegment(col, none), *f32);
  FieldSpec other = Sq8Spec(4);
  EXPECT_EQ(EncodeSegment(col, other).status().code(), StatusCode::kInvalidArgument);
}

TEST(Sq8, RangedReadFetchesOnlyTheRowsBlocks) {
  FieldSpec spec = Sq8Spec(768);
  Column col = MakeVectors(spec, 8000, 0.1, 8);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  ASSERT_GT(enc->size(), 6'000'000u);
  auto whole = DecodeSegment(*enc, spec);
  ASSERT_TRUE(whole.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const SegmentReadStats opened = reader->stats();  // the header (block sums) is ~130 KB
  const std::vector<uint32_t> rows = {3, 3, 4007, 7999};
  auto got = reader->ReadRows(rows);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectRows(*got, *whole, rows);
  // Per distant row: its validity, scales and codes blocks (at most 3 requests). Codes
  // blocks are one row (768 bytes), scales and validity blocks 256 bytes; coalescing
  // may add gaps of at most 4 KiB.
  EXPECT_LE(reader->stats().requests - opened.requests, 3u * 3);
  EXPECT_LE(reader->stats().bytes_fetched - opened.bytes_fetched,
            3u * (768 + 256 + 256) + 3 * 4096);
  // The whole segment is far larger than the header and the blocks read.
  EXPECT_GT(enc->size(), 40 * reader->stats().bytes_fetched);
}

TEST(Sq8, NonFiniteValuesAreRefusedNamingTheRow) {
  FieldSpec spec = Sq8Spec(4);
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Column col(spec);
    col.AppendFloats(std::vector<float>{1, 2, 3, 4});
    col.AppendNull();
    col.AppendFloats(std::vector<float>{1, 2, bad, 4});
    auto enc = EncodeSegment(col);
    EXPECT_EQ(enc.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(enc.status().message().find("row 2"), std::string::npos) << enc.status().ToString();
    EXPECT_NE(enc.status().message().find("index 2"), std::string::npos);
    EXPECT_NE(enc.status().message().find("'f_embedding'"), std::string::npos);
  }
  // The same values are fine with raw = true.
  FieldSpec raw = spec;
  raw.index->keep_raw = true;
  Column col(raw);
  col.AppendFloats(std::vector<float>{1, 2, std::nanf(""), 4});
  EXPECT_TRUE(EncodeSegment(col).ok());
}

// Writes `bytes` over the segment at `at`, then reseals the sums.
Bytes Patch(Bytes seg, uint64_t at, const Bytes& bytes) {
  seg.replace(at, bytes.size(), bytes);
  return Reseal(seg);
}

Bytes F32Pair(float lo, float hi) {
  Bytes b(8, '\0');
  std::memcpy(b.data(), &lo, 4);
  std::memcpy(b.data() + 4, &hi, 4);
  return b;
}

TEST(Sq8, NonCanonicalContentIsCorrupt) {
  FieldSpec spec = Sq8Spec(4);
  Column col(spec);
  col.AppendFloats(std::vector<float>{0, 1, 2, 3});
  col.AppendNull();
  col.AppendFloats(std::vector<float>{5, 5, 5, 5});
  const Bytes seg = *EncodeSegment(col);
  const uint64_t scales = BufferOffset(seg, 1);
  const uint64_t codes = BufferOffset(seg, 2);
  struct Case {
    Bytes bad;
    const char* substr;
    uint32_t row;
  };
  const float nan = std::nanf("");
  const Case cases[] = {
      {Patch(seg, scales, F32Pair(nan, 3)), "row 0 has sq8 min", 0},
      {Patch(seg, scales, F32Pair(0, std::numeric_limits<float>::infinity())), "row 0", 0},
      {Patch(seg, scales, F32Pair(3, 0)), "min <= max", 0},
      {Patch(seg, scales, F32Pair(-0.0F, 3)), "negative zero", 0},
      {Patch(seg, scales + 16, F32Pair(-0.0F, -0.0F)), "negative zero", 2},
      {Patch(seg, codes, Bytes("\x01", 1)), "codes 1..255", 0},
      {Patch(seg, codes + 3, Bytes("\xfe", 1)), "codes 0..254", 0},
      {Patch(seg, codes + 9, Bytes("\x01", 1)), "min == max", 2},
      {Patch(seg, scales + 8, Bytes("\x01", 1)), "null row 1", 1},
      {Patch(seg, codes + 4, Bytes("\x01", 1)), "null row 1", 1},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    ExpectCorruptEverywhere(cases[i].bad, spec, cases[i].substr);
    auto one = ReadRowsRanged(cases[i].bad, spec, {cases[i].row});
    EXPECT_EQ(one.status().code(), StatusCode::kCorrupt) << one.status().ToString();
  }
  // Only the rows read are checked by a ranged read.
  EXPECT_TRUE(ReadRowsRanged(cases[0].bad, spec, {2}).ok());
}

TEST(Sq8, HeaderRules) {
  FieldSpec spec = Sq8Spec(4);
  Column col = MakeVectors(spec, 50, 0.2, 4);
  const Bytes seg = *EncodeSegment(col);
  EXPECT_EQ(Rebuild(seg, [](cbor::Map&) {}), seg);
  auto set = [](const char* key, const cbor::Value& v) -> std::function<void(cbor::Map&)> {
    return [key, v](cbor::Map& m) { m.Set(key, v); };
  };
  struct Case {
    std::function<void(cbor::Map&)> pre;
    std::function<void(cbor::Array&)> post;
    StatusCode code;
    const char* substr;
  };
  auto none = [](cbor::Map&) {};
  const Case cases[] = {
      {set("encoding", cbor::Value::Text("sq4")), nullptr, StatusCode::kUnsupported,
       "encoding 'sq4'"},
      {set("encoding", cbor::Value::UInt(8)), nullptr, StatusCode::kCorrupt, "encoding"},
      {[](cbor::Map& m) {
         cbor::Map copy;
         for (const auto& [k, v] : m.entries()) {
           if (k != "encoding") copy.Set(k, v);
         }
         m = copy;
       },
       // Format 3 without an encoding holds values as stored: a values buffer.
       nullptr, StatusCode::kCorrupt, "1 or 2 buffers, not 3"},
      {[](cbor::Map& m) {
         cbor::Map copy;
         for (const auto& [k, v] : m.entries()) {
           if (k != "encoding") copy.Set(k, v);
         }
         copy.Set("format", cbor::Value::UInt(2));
         m = copy;
       },
       nullptr, StatusCode::kCorrupt, "missing required key 'encoding'"},
      {set("format", cbor::Value::UInt(4)), nullptr, StatusCode::kUnsupported,
       "segment format 4 is newer than this build reads (1, 2 and 3)"},
      // Format 1 ignores `encoding` and expects a values buffer.
      {set("format", cbor::Value::UInt(1)), nullptr, StatusCode::kCorrupt, "1 or 2 buffers, not 3"},
      {none, [](cbor::Array& l) { l[2].mutable_map().Set("block", cbor::Value::UInt(260)); },
       StatusCode::kCorrupt, "buffer 'codes' block size is 260, expected 256"},
      {none, [](cbor::Array& l) { l[1].mutable_map().Set("block", cbor::Value::UInt(512)); },
       StatusCode::kCorrupt, "buffer 'scales' block size is 512, expected 256"},
      {none, [](cbor::Array& l) { l[2].mutable_map().Set("length", cbor::Value::UInt(196)); },
       StatusCode::kCorrupt, "buffer 'codes' length is 196, expected 200"},
      {none, [](cbor::Array& l) { l[1].mutable_map().Set("length", cbor::Value::UInt(392)); },
       StatusCode::kCorrupt, "buffer 'scales' length is 392, expected 400"},
      {[](cbor::Map& m) {
         cbor::Array list = m.Find("buffers")->array();
         std::swap(list[1], list[2]);
         m.Set("buffers", cbor::Value::FromArray(list));
       },
       nullptr, StatusCode::kCorrupt, "buffer 1 is 'codes', expected 'scales'"},
      {none,
       [](cbor::Array& l) {
         Bytes sums = l[2].map().Find("sums")->string_value();
         sums[0] ^= 1;
         l[2].mutable_map().Set("sums", cbor::Value::Bytes(sums));
       },
       StatusCode::kCorrupt, "checksum mismatch in buffer 'codes' block 0"},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    Bytes bad = Rebuild(seg, cases[i].pre, cases[i].post);
    auto r = DecodeSegment(bad, spec);
    EXPECT_EQ(r.status().code(), cases[i].code) << i << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(cases[i].substr), std::string::npos)
        << i << ": " << r.status().ToString() << " (wanted " << cases[i].substr << ")";
    auto all = ReadAllRanged(bad, spec);
    EXPECT_EQ(all.status().code(), cases[i].code) << i << ": " << all.status().ToString();
  }
  // sq8 applies only to embeddings.
  FieldSpec ints = Spec(FieldType::kInt64);
  const Bytes int_seg = *EncodeSegment(MakeColumn(ints, 5, 0.0, 1));
  Bytes bad = Rebuild(int_seg, [](cbor::Map& m) {
    m.Set("format", cbor::Value::UInt(2));
    m.Set("encoding", cbor::Value::Text("sq8"));
  });
  auto r = DecodeSegment(bad, ints);
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << r.status().ToString();
  EXPECT_NE(r.status().message().find("applies to embeddings"), std::string::npos);
  // A format-1 embedding with an `encoding` key reads as format 1 (unknown keys are
  // ignored, spec/08-versioning.md §4.2); in format 3 the key means sq8.
  FieldSpec plain = Spec(FieldType::kEmbedding, 4);
  Column pc = MakeColumn(plain, 5, 0.0, 2);
  // (dim 4: format 1 and 3 cut the same 256-byte blocks, so only the header differs.)
  Bytes with_key = Rebuild(*EncodeSegment(pc), [](cbor::Map& m) {
    m.Set("format", cbor::Value::UInt(1));
    m.Set("encoding", cbor::Value::Text("sq8"));
  });
  auto d = DecodeSegment(with_key, plain);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectSameColumn(*d, pc);
  // Truncated objects.
  for (size_t cut : {seg.size() - 1, seg.size() - 200, size_t{100}}) {
    Bytes t = seg.substr(0, cut);
    EXPECT_EQ(DecodeSegment(t, spec).status().code(), StatusCode::kCorrupt);
    EXPECT_EQ(ReadAllRanged(t, spec).status().code(), StatusCode::kCorrupt);
  }
}

TEST(Sq8, EverySingleByteCorruptionIsDetected) {
  constexpr uint32_t kRows = 19;
  for (double null_rate : {0.0, 0.3}) {
    FieldSpec spec = Sq8Spec(4);
    Column col = MakeVectors(spec, kRows, null_rate, 99);
    const Bytes seg = *EncodeSegment(col);
    const uint64_t first_buffer = BufferOffset(seg, 0);
    for (size_t i = 0; i < seg.size(); ++i) {
      Bytes bad = seg;
      bad[i] = static_cast<char>(bad[i] ^ ((i % 2 == 0) ? 0x01 : 0x80));
      SCOPED_TRACE("byte " + std::to_string(i) + " of " + std::to_string(seg.size()));
      const bool framed_magic = i < 8 && LooksFramed(ByteView(bad).substr(0, 8));
      auto code_ok = [&](StatusCode c) {
        return c == StatusCode::kCorrupt || (framed_magic && c == StatusCode::kUnsupported);
      };
      auto whole = DecodeSegment(bad, spec);
      ASSERT_FALSE(whole.ok());
      EXPECT_TRUE(code_ok(whole.status().code())) << whole.status().ToString();
      auto all = ReadAllRanged(bad, spec);
      ASSERT_FALSE(all.ok());
      EXPECT_TRUE(code_ok(all.status().code())) << all.status().ToString();
      if (i >= first_buffer) {
        auto rows = ReadRowsRanged(bad, spec, AllRows(kRows));
        if (!rows.ok()) {
          EXPECT_EQ(rows.status().code(), StatusCode::kCorrupt) << rows.status().ToString();
        }
      }
    }
  }
}

// ---- Format 3: the verification unit (spec/12-segments.md §4.4) ----

// Format 1 cut a 768-d embedding into 16-row blocks: a random read of one value fetched
// and hashed 48 KiB for 3 KiB. Format 3 makes each wide value its own block.
TEST(SegmentFormat3, RandomWideValueReadFetchesOnlyTheValue) {
  FieldSpec spec = Spec(FieldType::kEmbedding, 768);
  Column col = MakeColumn(spec, 200, 0.0, 11);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok());
  for (uint32_t r : {0u, 37u, 199u}) {
    const uint64_t b0 = obj.served;
    auto got = reader->ReadRows({r});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectRows(*got, col, {r});
    EXPECT_EQ(obj.served - b0, 768u * 4) << "row " << r;
  }
}

// Format 1 cut variable-width data into 64 KiB blocks: one 50 KiB blob cost up to
// 128 KiB. Format 3 blocks are runs of whole values; a value of 256 bytes or more is its
// own block, found through its offsets entries.
TEST(SegmentFormat3, RandomBlobReadFetchesAtMostTheValueAndItsOffsets) {
  FieldSpec spec = Spec(FieldType::kBlob);
  Column col(spec);
  for (int r = 0; r < 40; ++r) col.AppendBytes(std::string(50000 + r * 37, static_cast<char>(r)));
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok());
  reader->set_coalesce_gaps(false);
  for (uint32_t r : {0u, 21u, 39u}) {
    const uint64_t b0 = obj.served;
    auto got = reader->ReadRows({r});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectRows(*got, col, {r});
    const uint64_t value = col.BytesAt(r).size();
    EXPECT_LE(obj.served - b0, value + 2 * 256) << "row " << r;  // the value + its offsets
    EXPECT_LE(obj.served - b0, value * 12 / 10) << "row " << r;
  }
}

// Short strings share blocks of about 256 bytes; a value whose block bounds lie in
// different offsets blocks still reads (every entry used is verified).
TEST(SegmentFormat3, SmallStringsShareBlocksAndReadOneByOne) {
  for (FieldType type : {FieldType::kString, FieldType::kCategorical}) {
    FieldSpec spec = Spec(type);
    spec.optional = true;
    Column col = MakeColumn(spec, 3000, 0.1, 5);
    auto enc = EncodeSegment(col);
    ASSERT_TRUE(enc.ok());
    auto whole = DecodeSegment(*enc, spec);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    MemObject obj{*enc};
    auto reader = SegmentReader::Open(obj.Fetcher(), spec);
    ASSERT_TRUE(reader.ok());
    reader->set_coalesce_gaps(false);
    for (uint32_t r = 0; r < 3000; r += 97) {
      const uint64_t b0 = obj.served;
      auto got = reader->ReadRows({r});
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ExpectRows(*got, *whole, {r});
      // validity, up to 3 offsets blocks, one data block (~256 bytes, values <= 40 bytes)
      // or, for categorical, codes and the dictionary's blocks.
      EXPECT_LE(obj.served - b0, 6 * 256u + 2 * 40) << "row " << r;
    }
  }
}

// On a local store a ranged read reads no gap bytes: nearby rows cost their blocks only.
TEST(SegmentFormat3, WithoutGapCoalescingOnlyVerifiedBytesAreRead) {
  FieldSpec spec = Spec(FieldType::kInt64);
  Column col = MakeColumn(spec, 10000, 0.0, 3);
  auto enc = EncodeSegment(col);
  ASSERT_TRUE(enc.ok());
  MemObject obj{*enc};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  ASSERT_TRUE(reader.ok());
  reader->set_coalesce_gaps(false);
  std::vector<uint32_t> rows;
  for (uint32_t r = 5; r < 10000; r += 200) rows.push_back(r);  // 1,600 bytes apart
  const uint64_t b0 = obj.served;
  auto got = reader->ReadRows(rows);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectRows(*got, col, rows);
  EXPECT_EQ(obj.served - b0, rows.size() * 256);
}

// PlanRows names exactly the blocks ReadRows needs first; a caller may fetch them with the
// gaps between them (one request) and Supply the result. ReadRows then makes no request,
// verifies every block it uses, and ignores the gap bytes: damage there changes nothing,
// damage in a used block is corrupt. For every type, with nulls.
TEST(SegmentReader, SuppliedCoveringRangeIsVerifiedBlockByBlock) {
  for (FieldType type : {FieldType::kInt64, FieldType::kFloat64, FieldType::kBool,
                         FieldType::kString, FieldType::kCategorical, FieldType::kEmbedding}) {
    SCOPED_TRACE(static_cast<int>(type));
    FieldSpec spec = Spec(type);
    spec.optional = true;
    Column col = MakeColumn(spec, 6000, 0.2, 11);
    auto enc = EncodeSegment(col);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    std::vector<uint32_t> rows;
    for (uint32_t r = 7; r < 6000; r += 150) rows.push_back(r);
    auto read_with = [&](const Bytes& served, uint64_t* requests) -> Result<Column> {
      MemObject obj{served};
      MemObject clean{*enc};
      ASSIGN_OR_RETURN(SegmentReader reader, SegmentReader::Open(clean.Fetcher(), spec));
      ASSIGN_OR_RETURN(SegmentReader ranged,
                       SegmentReader::Reopen(obj.Fetcher(), spec, reader.header()));
      ASSIGN_OR_RETURN(auto plan, ranged.PlanRows(rows));
      EXPECT_FALSE(plan.empty());
      const uint64_t start = plan.front().start, end = plan.back().end;
      RETURN_IF_ERROR(ranged.Supply(start, end - start, obj.Fetcher()(start, end - start)));
      const uint64_t before = obj.requests.load();
      auto got = ranged.ReadRows(rows);
      *requests = obj.requests.load() - before;
      return got;
    };
    uint64_t requests = 0;
    auto got = read_with(*enc, &requests);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectRows(*got, col, rows);
    // Fixed-width values come from the supplied range alone; strings and categoricals
    // read their values (or dictionary) in later rounds.
    const bool one_round = type != FieldType::kString && type != FieldType::kCategorical;
    if (one_round) {
      EXPECT_EQ(requests, 0u);
    }

    // A byte in the first gap between planned ranges: unused, so harmless.
    MemObject probe{*enc};
    auto reader = SegmentReader::Open(probe.Fetcher(), spec);
    ASSERT_TRUE(reader.ok());
    auto plan = reader->PlanRows(rows);
    ASSERT_TRUE(plan.ok());
    for (size_t i = 1; i < plan->size(); ++i) {
      if ((*plan)[i].start > (*plan)[i - 1].end) {
        Bytes gap_damaged = *enc;
        gap_damaged[(*plan)[i - 1].end] ^= 1;
        auto g = read_with(gap_damaged, &requests);
        ASSERT_TRUE(g.ok()) << g.status().ToString();
        ExpectRows(*g, col, rows);
        break;
      }
    }
    // The last byte of a planned range is in a block ReadRows uses.
    Bytes block_damaged = *enc;
    block_damaged[plan->back().end - 1] ^= 1;
    auto bad = read_with(block_damaged, &requests);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt) << bad.status().ToString();
  }
}

// Rewrites the header's `format` (and the header sum), keeping everything else.
Bytes WithFormat(const Bytes& seg, uint64_t format) {
  uint32_t header_len;
  std::memcpy(&header_len, seg.data() + 8, 4);
  auto header = cbor::Decode(ByteView(seg).substr(28, header_len));
  EXPECT_TRUE(header.ok());
  cbor::Map m = header->map();
  m.Set("format", cbor::Value::UInt(format));
  Bytes encoded = *cbor::Encode(cbor::Value::FromMap(std::move(m)));
  Bytes out = seg.substr(0, 8);
  uint32_t len = static_cast<uint32_t>(encoded.size());
  out.append(reinterpret_cast<const char*>(&len), 4);
  auto digest = ObjectId::Of(encoded).digest();
  out.append(reinterpret_cast<const char*>(digest.data()), 16);
  out += encoded;
  out += seg.substr(28 + header_len);
  return out;
}

// A segment of a format newer than this build is `unsupported`, and the message names
// the format (a reader that predates format 3 says "segment format 3 (this build reads 1
// and 2)").
TEST(SegmentFormat3, NewerFormatIsUnsupportedNamingTheVersion) {
  FieldSpec spec = Spec(FieldType::kInt64);
  auto enc = EncodeSegment(MakeColumn(spec, 10, 0.0, 1));
  ASSERT_TRUE(enc.ok());
  Bytes newer = WithFormat(*enc, 4);
  auto got = DecodeSegment(newer, spec);
  ASSERT_EQ(got.status().code(), StatusCode::kUnsupported) << got.status().ToString();
  EXPECT_NE(got.status().message().find("segment format 4 is newer than this build reads"),
            std::string::npos)
      << got.status().ToString();
  MemObject obj{newer};
  auto reader = SegmentReader::Open(obj.Fetcher(), spec);
  EXPECT_EQ(reader.status().code(), StatusCode::kUnsupported);
  // Format 0 never existed: damage, not a newer writer.
  EXPECT_EQ(DecodeSegment(WithFormat(*enc, 0), spec).status().code(), StatusCode::kCorrupt);
}

// Format 3 block rules are checked: a format 3 header with format 1's block sizes (or the
// reverse) is corrupt, and a flipped data byte is found by a single-row read.
TEST(SegmentFormat3, BlockSizesOfAnotherFormatAreCorrupt) {
  FieldSpec spec = Spec(FieldType::kEmbedding, 768);
  auto enc = EncodeSegment(MakeColumn(spec, 40, 0.0, 2));
  ASSERT_TRUE(enc.ok());
  auto as_format1 = DecodeSegment(WithFormat(*enc, 1), spec);
  EXPECT_EQ(as_format1.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(as_format1.status().message().find("block size is 3072, expected 49152"),
            std::string::npos)
      << as_format1.status().ToString();

  FieldSpec blob = Spec(FieldType::kBlob);
  Column col(blob);
  for (int r = 0; r < 8; ++r) col.AppendBytes(std::string(1000, static_cast<char>('a' + r)));
  auto seg = EncodeSegment(col);
  ASSERT_TRUE(seg.ok());
  Bytes damaged = *seg;
  damaged[damaged.size() - 1000 * 3 - 5] ^= 1;  // inside row 4's value
  MemObject obj{damaged};
  auto reader = SegmentReader::Open(obj.Fetcher(), blob);
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE(reader->ReadRows({3}).ok());
  auto bad = reader->ReadRows({4});
  EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(bad.status().message().find("checksum mismatch in buffer 'data' block 4"),
            std::string::npos)
      << bad.status().ToString();
}

}  // namespace
}  // namespace dreamdb::columnar
