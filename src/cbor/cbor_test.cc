// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/cbor/cbor.h"

#include <gtest/gtest.h>

#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "src/base/encoding.h"
#include "src/testing/golden.h"

namespace dreamdb::cbor {
namespace {

std::string Hex(std::string_view hex) {
  auto b = HexDecode(hex);
  EXPECT_TRUE(b.has_value()) << hex;
  return b.value_or("");
}

std::string EncHex(const Value& v) {
  Result<Bytes> b = Encode(v);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? HexEncode(*b) : "<error>";
}

// Decodes `hex`, expects success and a byte-identical re-encoding.
Value DecodeOk(std::string_view hex, const DecodeLimits& limits = {}) {
  Result<Value> v = Decode(Hex(hex), limits);
  EXPECT_TRUE(v.ok()) << hex << ": " << v.status().ToString();
  if (!v.ok()) return Value();
  EXPECT_EQ(EncHex(*v), hex);
  return *v;
}

// Expects kCorrupt whose message contains `rule`; returns the message.
std::string DecodeFails(std::string_view bytes, std::string_view rule,
                        const DecodeLimits& limits = {}) {
  Result<Value> v = Decode(bytes, limits);
  EXPECT_FALSE(v.ok()) << HexEncode(bytes) << " decoded to " << ToDiagnostic(*v);
  if (v.ok()) return "";
  EXPECT_EQ(v.status().code(), StatusCode::kCorrupt) << v.status().ToString();
  EXPECT_NE(v.status().message().find(rule), std::string::npos)
      << HexEncode(bytes) << ": got " << v.status().message() << ", want " << rule;
  EXPECT_NE(v.status().message().find(" at offset "), std::string::npos);
  return v.status().message();
}

std::string RejectHex(std::string_view hex, std::string_view rule) {
  return DecodeFails(Hex(hex), rule);
}

// ---------------------------------------------------------------------------------------
// RFC 8949 Appendix A examples inside the data model.

struct Example {
  Value value;
  const char* hex;
  const char* diag;
};

TEST(CborRfc8949, Integers) {
  const Example examples[] = {
      {Value::UInt(0), "00", "0"},
      {Value::UInt(1), "01", "1"},
      {Value::UInt(10), "0a", "10"},
      {Value::UInt(23), "17", "23"},
      {Value::UInt(24), "1818", "24"},
      {Value::UInt(25), "1819", "25"},
      {Value::UInt(100), "1864", "100"},
      {Value::UInt(1000), "1903e8", "1000"},
      {Value::UInt(1000000), "1a000f4240", "1000000"},
      {Value::UInt(1000000000000), "1b000000e8d4a51000", "1000000000000"},
      {Value::UInt(UINT64_MAX), "1bffffffffffffffff", "18446744073709551615"},
      {Value::NegativeRaw(UINT64_MAX), "3bffffffffffffffff", "-18446744073709551616"},
      {Value::Int(-1), "20", "-1"},
      {Value::Int(-10), "29", "-10"},
      {Value::Int(-100), "3863", "-100"},
      {Value::Int(-1000), "3903e7", "-1000"},
  };
  for (const auto& e : examples) {
    EXPECT_EQ(EncHex(e.value), e.hex);
    EXPECT_EQ(DecodeOk(e.hex), e.value) << e.hex;
    EXPECT_EQ(ToDiagnostic(e.value), e.diag);
  }
}

TEST(CborRfc8949, Floats) {
  const double inf = std::numeric_limits<double>::infinity();
  const Example examples[] = {
      {Value::Float(0.0), "f90000", "0.0"},
      {Value::Float(-0.0), "f98000", "-0.0"},
      {Value::Float(1.0), "f93c00", "1.0"},
      {Value::Float(1.1), "fb3ff199999999999a", "1.1"},
      {Value::Float(1.5), "f93e00", "1.5"},
      {Value::Float(65504.0), "f97bff", "65504.0"},
      {Value::Float(100000.0), "fa47c35000", "100000.0"},
      {Value::Float(3.4028234663852886e+38), "fa7f7fffff", "3.4028234663852886e+38"},
      {Value::Float(1.0e+300), "fb7e37e43c8800759c", "1e+300"},
      {Value::Float(5.960464477539063e-8), "f90001", "5.960464477539063e-08"},
      {Value::Float(0.00006103515625), "f90400", "6.103515625e-05"},
      {Value::Float(-4.0), "f9c400", "-4.0"},
      {Value::Float(-4.1), "fbc010666666666666", "-4.1"},
      {Value::Float(inf), "f97c00", "Infinity"},
      {Value::Float(std::nan("")), "f97e00", "NaN"},
      {Value::Float(-inf), "f9fc00", "-Infinity"},
  };
  for (const auto& e : examples) {
    EXPECT_EQ(EncHex(e.value), e.hex);
    EXPECT_EQ(DecodeOk(e.hex), e.value) << e.hex;
    EXPECT_EQ(ToDiagnostic(e.value), e.diag);
  }
}

TEST(CborRfc8949, SimpleStringsArraysMaps) {
  Array one_to_25;
  for (int i = 1; i <= 25; ++i) one_to_25.push_back(Value::UInt(i));
  const Example examples[] = {
      {Value::Bool(false), "f4", "false"},
      {Value::Bool(true), "f5", "true"},
      {Value::Null(), "f6", "null"},
      {Value::Bytes(""), "40", "h''"},
      {Value::Bytes(Hex("01020304")), "4401020304", "h'01020304'"},
      {Value::Text(""), "60", "\"\""},
      {Value::Text("a"), "6161", "\"a\""},
      {Value::Text("IETF"), "6449455446", "\"IETF\""},
      {Value::Text("\"\\"), "62225c", "\"\\\"\\\\\""},
      {Value::Text("\xc3\xbc"), "62c3bc", "\"\xc3\xbc\""},
      {Value::Text("\xe6\xb0\xb4"), "63e6b0b4", "\"\xe6\xb0\xb4\""},
      {Value::Text("\xf0\x90\x85\x91"), "64f0908591", "\"\xf0\x90\x85\x91\""},
      {Value::FromArray({}), "80", "[]"},
      {Value::FromArray({Value::UInt(1), Value::UInt(2), Value::UInt(3)}), "83010203", "[1, 2, 3]"},
      {Value::FromArray({Value::UInt(1), Value::FromArray({Value::UInt(2), Value::UInt(3)}),
                         Value::FromArray({Value::UInt(4), Value::UInt(5)})}),
       "8301820203820405", "[1, [2, 3], [4, 5]]"},
      {Value::FromArray(one_to_25), "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
       "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, "
       "24, 25]"},
      {Value::FromMap({}), "a0", "{}"},
      {Value::FromMap(
           {{"a", Value::UInt(1)}, {"b", Value::FromArray({Value::UInt(2), Value::UInt(3)})}}),
       "a26161016162820203", "{\"a\": 1, \"b\": [2, 3]}"},
      {Value::FromArray({Value::Text("a"), Value::FromMap({{"b", Value::Text("c")}})}),
       "826161a161626163", "[\"a\", {\"b\": \"c\"}]"},
      {Value::FromMap({{"e", Value::Text("E")},
                       {"d", Value::Text("D")},
                       {"c", Value::Text("C")},
                       {"b", Value::Text("B")},
                       {"a", Value::Text("A")}}),
       "a56161614161626142616361436164614461656145",
       "{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}"},
  };
  for (const auto& e : examples) {
    EXPECT_EQ(EncHex(e.value), e.hex);
    EXPECT_EQ(DecodeOk(e.hex), e.value) << e.hex;
    EXPECT_EQ(ToDiagnostic(e.value), e.diag);
  }
}

// ---------------------------------------------------------------------------------------
// Encoder rules.

TEST(CborEncode, MapKeysInCanonicalOrderShorterFirstThenBytewise) {
  Map m;
  m.Set("b", Value::UInt(1));
  m.Set("aa", Value::UInt(2));
  m.Set("a", Value::UInt(3));
  m.Set("", Value::UInt(4));
  m.Set("\xc3\xa9", Value::UInt(5));  // é: two bytes, sorts after "aa"
  m.Set("z", Value::UInt(6));
  std::vector<std::string> keys;
  for (const auto& [k, v] : m.entries()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"", "a", "b", "z", "aa", "\xc3\xa9"}));
  EXPECT_EQ(EncHex(Value::FromMap(m)),
            "a6600461610361620161"
            "7a0662616102"
            "62c3a905");
}

TEST(CborEncode, KeyLess) {
  EXPECT_TRUE(KeyLess("", "a"));
  EXPECT_TRUE(KeyLess("b", "aa"));
  EXPECT_TRUE(KeyLess("a", "b"));
  EXPECT_TRUE(KeyLess("\x7f", "\x80"));  // bytewise means unsigned
  EXPECT_FALSE(KeyLess("a", "a"));
  EXPECT_FALSE(KeyLess("aa", "b"));
}

TEST(CborEncode, SetReplacesAndAppendSortedRefusesDisorder) {
  Map m{{"a", Value::UInt(1)}};
  m.Set("a", Value::UInt(2));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(*m.Find("a"), Value::UInt(2));
  EXPECT_TRUE(m.AppendSorted("b", Value::UInt(3)));
  EXPECT_FALSE(m.AppendSorted("b", Value::UInt(4)));  // duplicate
  EXPECT_FALSE(m.AppendSorted("a", Value::UInt(4)));  // out of order
  EXPECT_TRUE(m.AppendSorted("aa", Value::UInt(4)));
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.Find("c"), nullptr);
}

TEST(CborEncode, IntegerBoundaries) {
  EXPECT_EQ(EncHex(Value::UInt(23)), "17");
  EXPECT_EQ(EncHex(Value::UInt(24)), "1818");
  EXPECT_EQ(EncHex(Value::UInt(255)), "18ff");
  EXPECT_EQ(EncHex(Value::UInt(256)), "190100");
  EXPECT_EQ(EncHex(Value::UInt(65535)), "19ffff");
  EXPECT_EQ(EncHex(Value::UInt(65536)), "1a00010000");
  EXPECT_EQ(EncHex(Value::UInt(0xffffffffu)), "1affffffff");
  EXPECT_EQ(EncHex(Value::UInt(0x100000000u)), "1b0000000100000000");
  EXPECT_EQ(EncHex(Value::Int(std::numeric_limits<int64_t>::min())), "3b7fffffffffffffff");
  EXPECT_EQ(EncHex(Value::Int(std::numeric_limits<int64_t>::max())), "1b7fffffffffffffff");
  EXPECT_EQ(Value::Int(-1), Value::NegativeRaw(0));
}

TEST(CborEncode, FloatShortestExactForm) {
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, -24))), "f90001");  // half subnormal
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, -14))), "f90400");  // half min normal
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, -25))), "fa33000000");
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, -149))), "fa00000001");  // f32 subnormal
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, -150))), "fb3690000000000000");
  EXPECT_EQ(EncHex(Value::Float(65520.0)), "fa477ff000");  // needs 11 mantissa bits
  EXPECT_EQ(EncHex(Value::Float(65536.0)), "fa47800000");  // beyond the half range
  EXPECT_EQ(EncHex(Value::Float(3.0 * std::ldexp(1.0, -24))), "f90003");
  EXPECT_EQ(EncHex(Value::Float(std::ldexp(1.0, 128))), "fb47f0000000000000");
  EXPECT_EQ(EncHex(Value::Float(std::numeric_limits<double>::denorm_min())), "fb0000000000000001");
  EXPECT_EQ(EncHex(Value::Float(std::numeric_limits<double>::max())), "fb7fefffffffffffff");
  EXPECT_EQ(EncHex(Value::Float(-std::nan("0x123"))), "f97e00");  // every NaN is f97e00
  EXPECT_EQ(EncHex(Value::Float(0.1f)), "fa3dcccccd");
}

TEST(CborEncode, RejectsInvalidUtf8TextAndKeys) {
  Result<Bytes> r = Encode(Value::Text("\xff"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos);
  Result<Bytes> k = Encode(Value::FromMap({{"\xed\xa0\x80", Value::Null()}}));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("map key"), std::string::npos);
  // Byte strings may hold anything.
  EXPECT_EQ(EncHex(Value::Bytes("\xff")), "41ff");
}

Value Nested(size_t depth) {
  Value v = Value::FromArray({});
  for (size_t i = 1; i < depth; ++i) v = Value::FromArray({std::move(v)});
  return v;
}

TEST(CborEncode, DepthLimit) {
  EXPECT_TRUE(Encode(Nested(kDefaultMaxDepth)).ok());
  Result<Bytes> r = Encode(Nested(kDefaultMaxDepth + 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper"), std::string::npos);
}

TEST(CborEncode, EncodeToAppends) {
  Bytes out = "x";
  ASSERT_TRUE(EncodeTo(Value::UInt(1), &out).ok());
  EXPECT_EQ(out, "x\x01");
}

// ---------------------------------------------------------------------------------------
// Decoder rejection rules: one test per rule of spec/03-cbor.md §5.

TEST(CborDecodeRejects, UnexpectedEndOfInput) {
  DecodeFails("", "unexpected end of input");
  RejectHex("18", "unexpected end of input");
  RejectHex("1901", "unexpected end of input");
  RejectHex("1b00000000000000", "unexpected end of input");
  RejectHex("f97e", "unexpected end of input");
  RejectHex("fb3ff1999999", "unexpected end of input");
  RejectHex("a16161", "unexpected end of input");  // map value missing
}

TEST(CborDecodeRejects, NonMinimalIntegerEncoding) {
  RejectHex("1817", "non-minimal integer encoding");
  RejectHex("1800", "non-minimal integer encoding");
  RejectHex("1900ff", "non-minimal integer encoding");
  RejectHex("1a0000ffff", "non-minimal integer encoding");
  RejectHex("1b00000000ffffffff", "non-minimal integer encoding");
  RejectHex("3817", "non-minimal integer encoding");
  RejectHex("3b00000000ffffffff", "non-minimal integer encoding");
  // The message names the rule and the offset of the offending item.
  EXPECT_EQ(RejectHex("830102"
                      "1803",
                      "non-minimal integer encoding"),
            "cbor: non-minimal integer encoding at offset 3");
}

TEST(CborDecodeRejects, NonMinimalLengthEncoding) {
  RejectHex("5801ff", "non-minimal length encoding");
  RejectHex("780161", "non-minimal length encoding");
  RejectHex("79000161", "non-minimal length encoding");
  RejectHex("980101", "non-minimal length encoding");
  RejectHex("b801616101", "non-minimal length encoding");
  RejectHex(
      "a1"
      "780161"
      "01",
      "non-minimal length encoding");  // in a map key
}

TEST(CborDecodeRejects, IndefiniteLength) {
  RejectHex("5f4101ff", "indefinite length not allowed");
  RejectHex("7f6161ff", "indefinite length not allowed");
  RejectHex("9f01ff", "indefinite length not allowed");
  RejectHex("bf616101ff", "indefinite length not allowed");
  RejectHex("9fff", "indefinite length not allowed");
}

TEST(CborDecodeRejects, UnexpectedBreakCode) {
  RejectHex("ff", "unexpected break code");
  RejectHex("81ff", "unexpected break code");
}

TEST(CborDecodeRejects, ReservedAdditionalInformation) {
  RejectHex("1c", "reserved additional information");
  RejectHex("3d", "reserved additional information");
  RejectHex("5e", "reserved additional information");
  RejectHex("fc", "reserved additional information");
  RejectHex("1f", "reserved additional information");
}

TEST(CborDecodeRejects, Tags) {
  RejectHex("c074323031332d30332d32315432303a30343a30305a", "tags not allowed");
  RejectHex("c249010000000000000000", "tags not allowed");
  RejectHex("d9d9f700", "tags not allowed");
  RejectHex("81c100", "tags not allowed");
}

TEST(CborDecodeRejects, Undefined) { RejectHex("f7", "undefined not allowed"); }

TEST(CborDecodeRejects, SimpleValues) {
  RejectHex("e0", "simple value not allowed");
  RejectHex("f3", "simple value not allowed");
  RejectHex("f820", "simple value not allowed");
  RejectHex("f8ff", "simple value not allowed");
  RejectHex("f814", "simple value not allowed");  // false, non-minimally
}

TEST(CborDecodeRejects, MapKeyNotText) {
  RejectHex("a10102", "map key is not a text string");
  RejectHex("a1416101", "map key is not a text string");
  RejectHex("a18001", "map key is not a text string");
  RejectHex("a1f601", "map key is not a text string");
}

TEST(CborDecodeRejects, DuplicateMapKey) {
  RejectHex("a2616101616102", "duplicate map key");
  RejectHex("a3616101616202616103", "map keys not in canonical order");
}

TEST(CborDecodeRejects, UnsortedMapKeys) {
  RejectHex("a2616201616102", "map keys not in canonical order");
  RejectHex("a262616101616202", "map keys not in canonical order");  // "aa" before "b"
  RejectHex("a2616101600002", "map keys not in canonical order");    // "a" before ""
}

TEST(CborDecodeRejects, InvalidUtf8) {
  RejectHex("61ff", "invalid UTF-8");
  RejectHex("6180", "invalid UTF-8");        // lone continuation
  RejectHex("62c080", "invalid UTF-8");      // overlong NUL
  RejectHex("62c1bf", "invalid UTF-8");      // overlong
  RejectHex("63e08080", "invalid UTF-8");    // overlong 3-byte
  RejectHex("64f0808080", "invalid UTF-8");  // overlong 4-byte
  RejectHex("63eda080", "invalid UTF-8");    // U+D800 surrogate
  RejectHex("63edbfbf", "invalid UTF-8");    // U+DFFF surrogate
  RejectHex("64f4908080", "invalid UTF-8");  // U+110000
  RejectHex("64f5808080", "invalid UTF-8");
  RejectHex("61c3", "invalid UTF-8");      // truncated sequence
  RejectHex("62e282", "invalid UTF-8");    // truncated inside the string
  RejectHex("63e2822a", "invalid UTF-8");  // bad continuation
  RejectHex("a161ff01", "invalid UTF-8");  // in a map key
  // Offset of the bad byte: 9-byte ASCII prefix exercises the 8-byte fast path.
  EXPECT_EQ(RejectHex("6a"
                      "616263646566676869"
                      "ff",
                      "invalid UTF-8"),
            "cbor: invalid UTF-8 at offset 10");
  // Boundaries that are valid.
  DecodeOk("63ed9fbf");    // U+D7FF
  DecodeOk("63ee8080");    // U+E000
  DecodeOk("64f48fbfbf");  // U+10FFFF
  DecodeOk("627f00");      // DEL and NUL are valid UTF-8
}

TEST(CborDecodeRejects, LengthBeyondInput) {
  RejectHex("4501020304", "length beyond end of input");
  RejectHex("7affffffff61", "length beyond end of input");
  RejectHex("5bffffffffffffffff00", "length beyond end of input");
  RejectHex("9bffffffffffffffff", "length beyond end of input");
  RejectHex("bbffffffffffffffff", "length beyond end of input");
  RejectHex("830102", "length beyond end of input");
  RejectHex("a2616101", "length beyond end of input");  // 2 entries need >= 4 bytes
  // A nested container may not claim bytes its parent still owes its siblings.
  RejectHex("828101", "length beyond end of input");
}

TEST(CborDecodeRejects, TrailingBytes) {
  EXPECT_EQ(RejectHex("0000", "trailing bytes"), "cbor: trailing bytes at offset 1");
  RejectHex("8000", "trailing bytes");
  RejectHex("f6f6", "trailing bytes");
}

TEST(CborDecodeRejects, FloatNotInShortestForm) {
  RejectHex("fa3fc00000", "float not in shortest form");          // 1.5
  RejectHex("fb3ff8000000000000", "float not in shortest form");  // 1.5
  RejectHex("fb40f86a0000000000", "float not in shortest form");  // 100000.0
  RejectHex("fb0000000000000000", "float not in shortest form");  // 0.0
  RejectHex("fa80000000", "float not in shortest form");          // -0.0
  RejectHex("fa7f800000", "float not in shortest form");          // Infinity
  RejectHex("fbfff0000000000000", "float not in shortest form");  // -Infinity
  RejectHex("fa33800000", "float not in shortest form");          // 2^-24
}

TEST(CborDecodeRejects, NonCanonicalNaN) {
  RejectHex("f97e01", "non-canonical NaN");
  RejectHex("f97c01", "non-canonical NaN");
  RejectHex("f9fe00", "non-canonical NaN");
  RejectHex("f97fff", "non-canonical NaN");
  RejectHex("fa7fc00000", "non-canonical NaN");
  RejectHex("fb7ff8000000000000", "non-canonical NaN");
  RejectHex("fb7ff0000000000001", "non-canonical NaN");
}

// ---------------------------------------------------------------------------------------
// Limits.

TEST(CborLimits, DepthLimit) {
  std::string ok(kDefaultMaxDepth - 1, '\x81');
  ok.push_back('\x80');
  EXPECT_TRUE(Decode(ok).ok());
  std::string deep(kDefaultMaxDepth, '\x81');
  deep.push_back('\x80');
  EXPECT_EQ(DecodeFails(deep, "nesting depth exceeds max_depth"),
            "cbor: nesting depth exceeds max_depth (max_depth 64) at offset 64");
  DecodeLimits three;
  three.max_depth = 3;
  EXPECT_TRUE(Decode(Hex("81a1616180"), three).ok());
  DecodeFails(Hex("8181a1616180"), "nesting depth exceeds max_depth", three);
  DecodeLimits zero;
  zero.max_depth = 0;
  EXPECT_TRUE(Decode(Hex("01"), zero).ok());
  DecodeFails(Hex("80"), "nesting depth exceeds max_depth", zero);
}

TEST(CborLimits, HundredThousandDeepNestingDoesNotOverflowTheStack) {
  constexpr size_t kDepth = 100000;
  std::string arrays(kDepth - 1, '\x81');
  arrays.push_back('\x80');
  DecodeFails(arrays, "nesting depth exceeds max_depth");
  std::string maps;
  for (size_t i = 0; i < kDepth; ++i) maps += "\xa1\x60";
  maps.push_back('\xf6');
  DecodeFails(maps, "nesting depth exceeds max_depth");

  // With the limit raised the decoder (iterative) accepts it; the value can be compared,
  // printed and destroyed without recursion, and Encode refuses it cleanly.
  DecodeLimits unlimited;
  unlimited.max_depth = kDepth;
  Result<Value> v = Decode(arrays, unlimited);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, Nested(kDepth));  // a distinct tree: compared level by level
  EXPECT_EQ(ToDiagnostic(*v).substr(0, 4), "[[[[");
  EXPECT_EQ(Encode(*v).status().code(), StatusCode::kInvalidArgument);
  Result<Value> m = Decode(maps, unlimited);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  *v = Value();  // assignment tears the old tree down iteratively too
}

TEST(CborLimits, MaxInputBytes) {
  DecodeLimits limits;
  limits.max_input_bytes = 3;
  EXPECT_TRUE(Decode(Hex("190100"), limits).ok());
  DecodeFails(Hex("1a00010000"), "input exceeds max_input_bytes", limits);
}

TEST(CborLimits, MaxItems) {
  DecodeLimits limits;
  limits.max_items = 4;
  EXPECT_TRUE(Decode(Hex("8281018102"), limits).ok());  // [[1], [2]]: 2 + 1 + 1 items
  DecodeFails(Hex("8501020304"
                  "05"),
              "item count exceeds max_items", limits);
  DecodeFails(Hex("828201028101"), "item count exceeds max_items", limits);
  DecodeFails(Hex("a3616101616202616303"), "item count exceeds max_items",
              DecodeLimits{.max_items = 2});
}

TEST(CborLimits, HugeDeclaredCountsDoNotAllocate) {
  // Each level claims as many items as the rest of the input could hold at most; the
  // check against bytes still owed to the parents rejects the second level.
  std::string input = Hex("9a00100000");  // array of 2^20 items
  input += Hex("9a000fffff");             // first item: array of 2^20 - 1 items
  input += std::string(1 << 20, '\x00');
  DecodeFails(input, "length beyond end of input");
}

// ---------------------------------------------------------------------------------------
// Value API.

TEST(CborValue, TypedAccessors) {
  Value m = Value::FromMap({{"count", Value::UInt(7)}, {"name", Value::Text("x")}});
  ASSERT_TRUE(m.AsMap("obj").ok());
  const Map& map = **m.AsMap("obj");
  EXPECT_EQ(*(*Require(map, "count"))->AsUInt("obj.count"), 7u);
  Result<const Value*> missing = Require(map, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);

  Result<uint64_t> bad = Value::Text("7").AsUInt("manifest.count");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(bad.status().message(),
            "cbor: manifest.count: expected unsigned integer, got text string");

  EXPECT_EQ(*Value::Int(-5).AsInt("i"), -5);
  EXPECT_EQ(*Value::UInt(5).AsInt("i"), 5);
  EXPECT_EQ(*Value::Int(INT64_MIN).AsInt("i"), INT64_MIN);
  EXPECT_FALSE(Value::UInt(uint64_t{1} << 63).AsInt("i").ok());
  EXPECT_FALSE(Value::NegativeRaw(uint64_t{1} << 63).AsInt("i").ok());
  EXPECT_FALSE(Value::Int(-1).AsUInt("u").ok());
  EXPECT_EQ(*Value::Bool(true).AsBool("b"), true);
  EXPECT_FALSE(Value::UInt(1).AsFloat("f").ok());
  EXPECT_EQ(*Value::Float(2.5).AsFloat("f"), 2.5);
  EXPECT_EQ(*Value::Text("t").AsText("t"), "t");
  EXPECT_FALSE(Value::Text("t").AsBytes("b").ok());
  EXPECT_EQ(*Value::Bytes("b").AsBytes("b"), "b");
  EXPECT_FALSE(Value::Null().AsArray("a").ok());
  EXPECT_TRUE(Value::Null().is_null());
}

TEST(CborValue, EqualityIsEncodingEquality) {
  EXPECT_EQ(Value::Float(std::nan("1")), Value::Float(-std::nan("2")));
  EXPECT_NE(Value::Float(0.0), Value::Float(-0.0));
  EXPECT_NE(Value::UInt(1), Value::Float(1.0));
  EXPECT_NE(Value::Text("a"), Value::Bytes("a"));
  EXPECT_NE(Value::UInt(0), Value::Int(-1));
  EXPECT_NE(Value::FromMap({{"a", Value::UInt(1)}}), Value::FromMap({{"b", Value::UInt(1)}}));
  EXPECT_NE(Value::FromArray({Value::UInt(1)}), Value::FromArray({Value::UInt(2)}));
  EXPECT_EQ(Map({{"a", Value::UInt(1)}}), Map({{"a", Value::UInt(1)}}));
}

TEST(CborValue, CopiesAreIndependent) {
  Value a = Value::FromArray({Value::UInt(1)});
  Value b = a;
  b.mutable_array().push_back(Value::UInt(2));
  EXPECT_EQ(a.array().size(), 1u);
  EXPECT_EQ(b.array().size(), 2u);
  Value m = Value::FromMap({{"k", Value::UInt(1)}});
  Value n = m;
  n.mutable_map().Set("k", Value::UInt(2));
  EXPECT_EQ(*m.map().Find("k"), Value::UInt(1));
  EXPECT_EQ(*n.map().Find("k"), Value::UInt(2));
  Value moved = std::move(a);
  EXPECT_TRUE(a.is_null());  // NOLINT(bugprone-use-after-move): documented
  EXPECT_EQ(moved.array().size(), 1u);
}

TEST(CborValue, ObjectIds) {
  ObjectId id = ObjectId::Of("abc");
  Value v = IdValue(id);
  EXPECT_EQ(v.type(), Type::kBytes);
  EXPECT_EQ(EncHex(v),
            "5822"
            "1e20"
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  Result<ObjectId> back = AsId(v, "parent");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
  Result<ObjectId> text = AsId(Value::Text(id.ToString()), "parent");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kCorrupt);
  Result<ObjectId> short_id = AsId(Value::Bytes("\x1e\x20\x01"), "parent");
  ASSERT_FALSE(short_id.ok());
  EXPECT_EQ(short_id.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(short_id.status().message().find("parent"), std::string::npos);
}

TEST(CborValue, Diagnostic) {
  Value v = Value::FromMap({{"a", Value::FromArray({Value::Float(0.5), Value::Bytes("\x01")})},
                            {"b\n", Value::Int(-3)},
                            {"c", Value::Float(1e16)},
                            {"d", Value::Float(1e15)},
                            {"e", Value::Float(0.0001)},
                            {"f", Value::Float(0.00001)}});
  EXPECT_EQ(ToDiagnostic(v),
            "{\"a\": [0.5, h'01'], \"c\": 1e+16, \"d\": 1000000000000000.0, \"e\": 0.0001, "
            "\"f\": 1e-05, \"b\\n\": -3}");
}

// ---------------------------------------------------------------------------------------
// Round trips.

class RandomValues {
 public:
  explicit RandomValues(uint64_t seed) : rng_(seed) {}

  Value Make(int depth) {
    int kind = Pick(depth > 0 ? 10 : 8);
    switch (kind) {
      case 0:
        return Value::UInt(RandomUInt());
      case 1:
        return Value::NegativeRaw(RandomUInt());
      case 2:
        return Value::Bytes(RandomBytes());
      case 3:
        return Value::Text(RandomText());
      case 4:
        return Value::Bool(Pick(2) == 1);
      case 5:
        return Value::Null();
      case 6:
      case 7:
        return Value::Float(RandomDouble());
      case 8: {
        Array a;
        for (int i = Pick(6); i > 0; --i) a.push_back(Make(depth - 1));
        return Value::FromArray(std::move(a));
      }
      default: {
        Map m;
        for (int i = Pick(6); i > 0; --i) m.Set(RandomText(), Make(depth - 1));
        return Value::FromMap(std::move(m));
      }
    }
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  uint64_t RandomUInt() {
    // Mostly around the head-size boundaries.
    static constexpr uint64_t kEdges[] = {0,     23,    24,          255,          256,
                                          65535, 65536, 0xffffffffu, 0x100000000u, UINT64_MAX};
    if (Pick(2) == 0) return kEdges[Pick(10)] - static_cast<uint64_t>(Pick(2));
    return rng_() >> Pick(64);
  }

  double RandomDouble() {
    switch (Pick(6)) {
      case 0:
        return std::bit_cast<double>(rng_());  // any bit pattern, NaNs included
      case 1:
        return std::bit_cast<float>(static_cast<uint32_t>(rng_()));
      case 2: {  // any binary16 value
        const uint16_t h = static_cast<uint16_t>(rng_());
        const int e = (h >> 10) & 31, m = h & 1023;
        double d = e == 0    ? std::ldexp(m, -24)
                   : e == 31 ? (m ? std::nan("") : std::numeric_limits<double>::infinity())
                             : std::ldexp(m + 1024, e - 25);
        return (h & 0x8000) ? -d : d;
      }
      case 3:
        return static_cast<double>(static_cast<int64_t>(rng_()) >> Pick(64));
      case 4:
        return Pick(2) ? -0.0 : 0.0;
      default:
        return std::ldexp(static_cast<double>(Pick(2048)), Pick(300) - 150);
    }
  }

  std::string RandomBytes() {
    std::string s(static_cast<size_t>(Pick(4) == 0 ? Pick(300) : Pick(30)), '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }

  std::string RandomText() {
    std::string s;
    for (int i = Pick(12); i > 0; --i) {
      uint32_t cp;
      switch (Pick(4)) {
        case 0:
          cp = static_cast<uint32_t>(Pick(0x80));
          break;
        case 1:
          cp = 0x80 + static_cast<uint32_t>(Pick(0x800 - 0x80));
          break;
        case 2:
          cp = 0x800 + static_cast<uint32_t>(Pick(0x10000 - 0x800));
          if (cp >= 0xd800 && cp <= 0xdfff) cp = 'x';
          break;
        default:
          cp = 0x10000 + static_cast<uint32_t>(Pick(0x110000 - 0x10000));
      }
      AppendUtf8(cp, &s);
    }
    return s;
  }

  static void AppendUtf8(uint32_t cp, std::string* s) {
    if (cp < 0x80) {
      s->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s->push_back(static_cast<char>(0xc0 | cp >> 6));
      s->push_back(static_cast<char>(0x80 | (cp & 63)));
    } else if (cp < 0x10000) {
      s->push_back(static_cast<char>(0xe0 | cp >> 12));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 63)));
      s->push_back(static_cast<char>(0x80 | (cp & 63)));
    } else {
      s->push_back(static_cast<char>(0xf0 | cp >> 18));
      s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 63)));
      s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 63)));
      s->push_back(static_cast<char>(0x80 | (cp & 63)));
    }
  }

  std::mt19937_64 rng_;
};

TEST(CborRoundTrip, RandomValuesSeeded) {
  RandomValues gen(20240601);
  for (int i = 0; i < 3000; ++i) {
    Value v = gen.Make(5);
    Result<Bytes> b = Encode(v);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    Result<Value> back = Decode(*b);
    ASSERT_TRUE(back.ok()) << ToDiagnostic(v) << ": " << back.status().ToString();
    ASSERT_EQ(*back, v) << ToDiagnostic(v);
    Result<Bytes> again = Encode(*back);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(*again, *b);
  }
}

// encode(decode(b)) == b for every accepted b: mutate valid encodings byte by byte.
TEST(CborRoundTrip, EveryAcceptedMutationReencodesIdentically) {
  RandomValues gen(7);
  std::mt19937_64 rng(11);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 300; ++i) {
    Result<Bytes> b = Encode(gen.Make(3));
    ASSERT_TRUE(b.ok());
    for (int j = 0; j < 20; ++j) {
      Bytes m = *b;
      switch (rng() % 4) {
        case 0:
          m[rng() % m.size()] = static_cast<char>(rng());
          break;
        case 1:
          m[rng() % m.size()] ^= static_cast<char>(1 << (rng() % 8));
          break;
        case 2:
          m.insert(m.begin() + static_cast<ptrdiff_t>(rng() % (m.size() + 1)),
                   static_cast<char>(rng()));
          break;
        default:
          m.erase(m.begin() + static_cast<ptrdiff_t>(rng() % m.size()));
          break;
      }
      Result<Value> v = Decode(m);
      if (!v.ok()) {
        ++rejected;
        ASSERT_EQ(v.status().code(), StatusCode::kCorrupt);
        continue;
      }
      ++accepted;
      Result<Bytes> again = Encode(*v);
      ASSERT_TRUE(again.ok()) << HexEncode(m);
      ASSERT_EQ(HexEncode(*again), HexEncode(m));
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

// ---------------------------------------------------------------------------------------
// Golden vectors (spec/vectors/cbor, generated with cbor2 as the oracle).

std::vector<testing::GoldenRecord> LoadVectors(const std::string& file) {
  return testing::LoadGoldenRecords("spec/vectors/cbor/" + file);
}

TEST(CborGoldenVectors, Valid) {
  auto vectors = LoadVectors("valid.json");
  ASSERT_GE(vectors.size(), 30u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.at("name"));
    Result<Value> value = Decode(Hex(v.at("hex")));
    ASSERT_TRUE(value.ok()) << value.status().ToString();
    EXPECT_EQ(EncHex(*value), v.at("hex"));
    EXPECT_EQ(ToDiagnostic(*value), v.at("diag"));
  }
}

TEST(CborGoldenVectors, Invalid) {
  auto vectors = LoadVectors("invalid.json");
  ASSERT_GE(vectors.size(), 30u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.at("name"));
    DecodeFails(Hex(v.at("hex")), v.at("reason"));
  }
}

}  // namespace
}  // namespace dreamdb::cbor
