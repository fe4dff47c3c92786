// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "dreamdb/column.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace dreamdb {
namespace {

FieldSpec Spec(FieldType type, std::string name = "f") {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  if (type == FieldType::kBlob) f.mime = "application/octet-stream";
  if (type == FieldType::kEmbedding) f.dim = 3;
  if (type == FieldType::kArray) {
    f.dtype = DType::kU16;
    f.shape = {2, 2};
  }
  return f;
}

std::string U64s(std::initializer_list<uint64_t> v) {
  std::string out;
  for (uint64_t x : v) out.append(reinterpret_cast<const char*>(&x), 8);
  return out;
}

TEST(Column, Int64WithNulls) {
  Column c(Spec(FieldType::kInt64));
  EXPECT_EQ(c.length(), 0u);
  EXPECT_FALSE(c.has_nulls());
  c.AppendInt64(1);
  c.AppendInt64(-2);
  EXPECT_FALSE(c.has_nulls());
  EXPECT_TRUE(c.validity().empty());
  c.AppendNull();
  c.AppendInt64(INT64_MIN);
  ASSERT_EQ(c.length(), 4u);
  EXPECT_TRUE(c.has_nulls());
  EXPECT_EQ(c.NullCount(), 1u);
  EXPECT_EQ(c.validity(), std::string(1, '\x0b'));
  EXPECT_TRUE(c.IsValid(0));
  EXPECT_FALSE(c.IsValid(2));
  EXPECT_EQ(c.Int64At(1), -2);
  EXPECT_EQ(c.Int64At(2), 0);  // nulls hold zeros
  EXPECT_EQ(c.Int64At(3), INT64_MIN);
  EXPECT_EQ(c.values().size(), 32u);
  EXPECT_EQ(c.FixedAt(1).size(), 8u);
  EXPECT_EQ(c.ByteSize(), 33u);
}

TEST(Column, ValidityAcrossBytes) {
  Column c(Spec(FieldType::kBool));
  for (int i = 0; i < 20; ++i) c.AppendBool(i % 3 == 0);
  c.AppendNull();
  for (int i = 0; i < 5; ++i) c.AppendBool(true);
  EXPECT_EQ(c.validity().size(), 4u);
  EXPECT_EQ(c.NullCount(), 1u);
  for (int i = 0; i < 26; ++i) EXPECT_EQ(c.IsValid(i), i != 20) << i;
  EXPECT_TRUE(c.BoolAt(0));
  EXPECT_FALSE(c.BoolAt(1));
  // Bits past the end are zero.
  EXPECT_EQ(static_cast<uint8_t>(c.validity()[3]) >> 2, 0);
}

TEST(Column, AllNulls) {
  Column c(Spec(FieldType::kFloat64));
  for (int i = 0; i < 9; ++i) c.AppendNull();
  EXPECT_EQ(c.NullCount(), 9u);
  EXPECT_EQ(c.validity(), std::string(2, '\0'));
}

TEST(Column, Float64Timestamp) {
  Column f(Spec(FieldType::kFloat64));
  f.AppendFloat64(1.5);
  f.AppendFloat64(-0.0);
  EXPECT_EQ(f.Float64At(0), 1.5);
  EXPECT_TRUE(std::signbit(f.Float64At(1)));
  Column t(Spec(FieldType::kTimestamp));
  t.AppendInt64(1700000000000000000);
  EXPECT_EQ(t.Int64At(0), 1700000000000000000);
}

TEST(Column, Strings) {
  for (FieldType type : {FieldType::kString, FieldType::kBlob, FieldType::kCategorical}) {
    Column c(Spec(type));
    EXPECT_EQ(c.offsets(), U64s({0}));
    c.AppendBytes("ab");
    c.AppendNull();
    c.AppendBytes("");
    c.AppendBytes(std::string("x\0y", 3));
    ASSERT_EQ(c.length(), 4u);
    EXPECT_EQ(c.offsets(), U64s({0, 2, 2, 2, 5}));
    EXPECT_EQ(c.data(), std::string("abx\0y", 5));
    EXPECT_EQ(c.BytesAt(0), "ab");
    EXPECT_EQ(c.BytesAt(1), "");
    EXPECT_FALSE(c.IsValid(1));
    EXPECT_EQ(c.BytesAt(3), std::string("x\0y", 3));
    EXPECT_TRUE(c.values().empty());
  }
}

TEST(Column, EmbeddingAndArray) {
  Column e(Spec(FieldType::kEmbedding));
  float v[3] = {1, 2, 3};
  e.AppendFloats(v);
  e.AppendNull();
  EXPECT_EQ(e.values().size(), 24u);
  EXPECT_EQ(e.FloatsAt(0)[2], 3.0f);
  EXPECT_EQ(e.FloatsAt(1)[0], 0.0f);
  EXPECT_EQ(e.FixedAt(0).size(), 12u);

  Column a(Spec(FieldType::kArray));
  uint16_t x[4] = {1, 2, 3, 65535};
  a.AppendFixedBytes(std::string_view(reinterpret_cast<const char*>(x), 8));
  EXPECT_EQ(a.FixedAt(0), std::string_view(reinterpret_cast<const char*>(x), 8));
  // AppendFixedBytes works for any fixed-width type.
  Column i(Spec(FieldType::kInt64));
  int64_t seven = 7;
  i.AppendFixedBytes(std::string_view(reinterpret_cast<const char*>(&seven), 8));
  EXPECT_EQ(i.Int64At(0), 7);
}

// A random column of `type` with roughly `null_rate` nulls.
Column RandomColumn(FieldType type, int rows, double null_rate, std::mt19937_64* rng) {
  Column c(Spec(type));
  std::bernoulli_distribution null(null_rate);
  for (int r = 0; r < rows; ++r) {
    if (null(*rng)) {
      c.AppendNull();
      continue;
    }
    uint64_t x = (*rng)();
    switch (type) {
      case FieldType::kInt64:
        c.AppendInt64(static_cast<int64_t>(x));
        break;
      case FieldType::kBool:
        c.AppendBool(x & 1);
        break;
      case FieldType::kString:
        c.AppendBytes(std::string(x % 13, static_cast<char>('a' + x % 26)));
        break;
      case FieldType::kEmbedding: {
        float v[3] = {static_cast<float>(x % 100), 1.0f, -2.0f};
        c.AppendFloats(v);
        break;
      }
      default:
        break;
    }
  }
  return c;
}

void ExpectSameRows(const Column& a, uint64_t a_begin, const Column& b, uint64_t b_begin,
                    uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(a.IsValid(a_begin + i), b.IsValid(b_begin + i)) << i;
    if (a.type() == FieldType::kString) {
      EXPECT_EQ(a.BytesAt(a_begin + i), b.BytesAt(b_begin + i));
    } else {
      EXPECT_EQ(a.FixedAt(a_begin + i), b.FixedAt(b_begin + i));
    }
  }
}

TEST(Column, AppendRange) {
  std::mt19937_64 rng(42);
  for (FieldType type :
       {FieldType::kInt64, FieldType::kBool, FieldType::kString, FieldType::kEmbedding}) {
    for (double null_rate : {0.0, 0.3}) {
      Column src = RandomColumn(type, 100, null_rate, &rng);
      for (int trial = 0; trial < 30; ++trial) {
        Column dst = RandomColumn(type, trial % 11, trial % 3 == 0 ? 0.5 : 0.0, &rng);
        Column before = dst;
        uint64_t begin = rng() % 101;
        uint64_t end = begin + rng() % (101 - begin);
        dst.AppendRange(src, begin, end);
        ASSERT_EQ(dst.length(), before.length() + end - begin);
        ExpectSameRows(dst, 0, before, 0, before.length());
        ExpectSameRows(dst, before.length(), src, begin, end - begin);
        // Invariant: a bitmap exists iff some row is null.
        EXPECT_EQ(dst.has_nulls(), dst.NullCount() > 0);
        if (dst.has_nulls()) {
          EXPECT_EQ(dst.validity().size(), (dst.length() + 7) / 8);
          if (dst.length() % 8) {
            EXPECT_EQ(static_cast<uint8_t>(dst.validity().back()) >> (dst.length() % 8), 0);
          }
        }
        // Same buffers as appending row by row through FromBuffers-equivalent appends.
        auto rebuilt = Column::FromBuffers(dst.field(), dst.length(), dst.validity(), dst.values(),
                                           dst.offsets(), dst.data());
        ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
      }
    }
  }
}

TEST(Column, AppendRangeAligned) {
  // Byte-aligned bitmap copy path, with set bits past `end` in the source.
  Column src(Spec(FieldType::kInt64));
  for (int i = 0; i < 16; ++i) {
    if (i == 3) {
      src.AppendNull();
    } else {
      src.AppendInt64(i);
    }
  }
  Column dst(Spec(FieldType::kInt64));
  dst.AppendRange(src, 0, 5);
  EXPECT_EQ(dst.validity(), std::string(1, '\x17'));
  dst.AppendRange(src, 8, 16);  // unaligned destination (5), no nulls in range
  EXPECT_EQ(dst.length(), 13u);
  EXPECT_EQ(dst.NullCount(), 1u);
  EXPECT_EQ(dst.Int64At(12), 15);
}

TEST(Batch, NumRowsAndFind) {
  Batch b;
  EXPECT_EQ(b.num_rows(), 0u);
  b.anchors = {1, 2, 3};
  EXPECT_EQ(b.num_rows(), 3u);
  Column x(Spec(FieldType::kInt64, "x"));
  x.AppendInt64(1);
  x.AppendInt64(2);
  x.AppendInt64(3);
  b.columns.push_back(x);
  b.columns.push_back(Column(Spec(FieldType::kString, "y")));
  EXPECT_EQ(b.num_rows(), 3u);
  ASSERT_NE(b.Find("y"), nullptr);
  EXPECT_EQ(b.Find("y")->type(), FieldType::kString);
  EXPECT_EQ(b.Find("z"), nullptr);
}

TEST(FromBuffers, Valid) {
  auto c = Column::FromBuffers(Spec(FieldType::kInt64), 2, "", U64s({5, 6}), "", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Int64At(1), 6);
  // A bitmap with no nulls is dropped; bits past the end are cleared.
  c = Column::FromBuffers(Spec(FieldType::kInt64), 2, "\xff", U64s({5, 6}), "", "");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_nulls());
  c = Column::FromBuffers(Spec(FieldType::kInt64), 2, "\xfd", U64s({5, 0}), "", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->validity(), "\x01");
  EXPECT_EQ(c->NullCount(), 1u);
  auto s = Column::FromBuffers(Spec(FieldType::kString), 2, "", "", U64s({0, 1, 3}), "abc");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->BytesAt(1), "bc");
  auto z = Column::FromBuffers(Spec(FieldType::kString), 0, "", "", U64s({0}), "");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->length(), 0u);
}

TEST(FromBuffers, Errors) {
  struct Case {
    FieldSpec field;
    uint64_t length;
    std::string validity, values, offsets, data;
    const char* substr;
  };
  FieldSpec bad_emb = Spec(FieldType::kEmbedding);
  bad_emb.dim = 0;
  const Case cases[] = {
      {Spec(FieldType::kInt64), 2, "", U64s({1}), "", "", "values buffer has 8 bytes"},
      {Spec(FieldType::kInt64), 2, std::string("\x01\x00", 2), U64s({1, 2}), "", "",
       "validity bitmap has 2"},
      {Spec(FieldType::kInt64), 0, std::string(1, 0), "", "", "", "validity bitmap has 1"},
      {Spec(FieldType::kInt64), 1, "", U64s({1}), U64s({0, 0}), "", "no offsets or data"},
      {Spec(FieldType::kBool), 2, "", std::string("\x01\x02", 2), "", "", "neither 0 nor 1"},
      {bad_emb, 1, "", "", "", "", "invalid field spec"},
      {Spec(FieldType::kEmbedding), 1, "", std::string(8, '\0'), "", "", "values buffer"},
      {Spec(FieldType::kString), 2, "", "", U64s({0, 1}), "a", "offsets buffer has 16"},
      {Spec(FieldType::kString), 1, "", "", U64s({1, 1}), "a", "offsets[0] must be 0"},
      {Spec(FieldType::kString), 2, "", "", U64s({0, 2, 1}), "ab", "offsets decrease at entry 2"},
      {Spec(FieldType::kString), 1, "", "", U64s({0, 1}), "ab", "data buffer has 2"},
      {Spec(FieldType::kBlob), 1, "", "x", U64s({0, 0}), "", "no values buffer"},
  };
  for (const Case& c : cases) {
    auto r = Column::FromBuffers(c.field, c.length, c.validity, c.values, c.offsets, c.data);
    ASSERT_FALSE(r.ok()) << c.substr;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.substr), std::string::npos)
        << r.status().ToString() << " (wanted " << c.substr << ")";
    EXPECT_NE(r.status().message().find("column 'f'"), std::string::npos);
  }
}

TEST(ColumnDeathTest, TypeMismatchAborts) {
  Column c(Spec(FieldType::kString));
  EXPECT_DEATH(c.AppendInt64(1), "AppendInt64 needs an int64");
  Column e(Spec(FieldType::kEmbedding));
  float v[2] = {1, 2};
  EXPECT_DEATH(e.AppendFloats(v), "differs from the embedding dim");
}

}  // namespace
}  // namespace dreamdb
