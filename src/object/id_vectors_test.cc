// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Checks ObjectId against the golden vectors of spec/04-object-ids.md
// (spec/vectors/ids/ids.json, digests from Debian's b3sum).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/base/encoding.h"
#include "src/testing/golden.h"

namespace dreamdb {
namespace {

using Json = nlohmann::ordered_json;

// spec/vectors/ids/ids.json, loaded once per process. A load failure fails every test.
const Json& Doc() {
  static const Json* doc = new Json(testing::LoadGoldenJson("spec/vectors/ids/ids.json"));
  return *doc;
}

// Expands a valid case's input: either "input_hex" or an "input_pattern" that the vectors
// file defines ("byte i = i % M").
Result<Bytes> Input(const Json& c) {
  if (c.contains("input_hex")) {
    auto bytes = HexDecode(c.at("input_hex").get<std::string>());
    if (!bytes) return InvalidArgument("bad input_hex");
    return *bytes;
  }
  const Json& p = c.at("input_pattern");
  const std::string prefix = "byte i = i % ";
  const std::string& pattern = p.at("pattern").get<std::string>();
  if (pattern.rfind(prefix, 0) != 0) return Unsupported("unknown pattern " + Quote(pattern));
  uint64_t modulus = std::strtoull(pattern.c_str() + prefix.size(), nullptr, 10);
  if (modulus == 0 || modulus > 256) return InvalidArgument("bad modulus in " + Quote(pattern));
  Bytes out(p.at("length").get<uint64_t>(), '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i % modulus);
  return out;
}

TEST(IdVectorsTest, FileHasEnoughCases) {
  EXPECT_GE(Doc().at("valid").size(), 20u);
  EXPECT_GE(Doc().at("invalid_text").size(), 10u);
  EXPECT_GE(Doc().at("invalid_binary").size(), 5u);
}

TEST(IdVectorsTest, ValidInputsHashToTheirIds) {
  for (const Json& c : Doc().at("valid")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto input = Input(c);
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    ObjectId id = ObjectId::Of(*input);
    const auto& digest = id.digest();
    EXPECT_EQ(
        HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size())),
        c.at("blake3_hex").get<std::string>());
    EXPECT_EQ(HexEncode(id.ToBinary()), c.at("multihash_hex").get<std::string>());
    EXPECT_EQ(id.ToString(), c.at("text").get<std::string>());
    EXPECT_EQ(id.ToString().size(), ObjectId::kTextSize);
    EXPECT_EQ(id.ShardPrefix(), c.at("shard").get<std::string>());
    EXPECT_TRUE(id.Matches(*input));
    EXPECT_FALSE(id.is_null());
    // The CBOR form is the 34-byte byte string: header 0x58 0x22, then the multihash.
    EXPECT_EQ("5822" + HexEncode(id.ToBinary()), c.at("cbor_hex").get<std::string>());
  }
}

TEST(IdVectorsTest, IncrementalHashingMatches) {
  // Uneven pieces cross BLAKE3's 64-byte block and 1024-byte chunk boundaries.
  const size_t kPieces[] = {1, 63, 64, 1000, 1025, 4096};
  for (const Json& c : Doc().at("valid")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto input = Input(c);
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    Hasher hasher;
    size_t offset = 0;
    for (size_t i = 0; offset < input->size(); ++i) {
      size_t n = std::min(kPieces[i % std::size(kPieces)], input->size() - offset);
      hasher.Update(ByteView(*input).substr(offset, n));
      offset += n;
    }
    EXPECT_EQ(hasher.Finish().ToString(), c.at("text").get<std::string>());
  }
}

TEST(IdVectorsTest, ValidTextAndBinaryFormsParse) {
  for (const Json& c : Doc().at("valid")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto parsed = ObjectId::Parse(c.at("text").get<std::string>());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(parsed->ToString(), c.at("text").get<std::string>());
    auto binary = HexDecode(c.at("multihash_hex").get<std::string>());
    ASSERT_TRUE(binary.has_value());
    auto from_binary = ObjectId::FromBinary(*binary);
    ASSERT_TRUE(from_binary.ok()) << from_binary.status().ToString();
    EXPECT_EQ(*from_binary, *parsed);
  }
}

TEST(IdVectorsTest, NullId) {
  const Json& n = Doc().at("null_id");
  ObjectId null_id;
  EXPECT_TRUE(null_id.is_null());
  EXPECT_EQ(null_id.ToString(), n.at("text").get<std::string>());
  EXPECT_EQ(HexEncode(null_id.ToBinary()), n.at("multihash_hex").get<std::string>());
  EXPECT_EQ(null_id.ShardPrefix(), n.at("shard").get<std::string>());
  auto parsed = ObjectId::Parse(n.at("text").get<std::string>());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->is_null());
}

TEST(IdVectorsTest, InvalidTextIsRefusedWithTheSpecifiedCode) {
  for (const Json& c : Doc().at("invalid_text")) {
    SCOPED_TRACE(c.at("name").get<std::string>() + " " + Quote(c.at("text").get<std::string>()));
    auto parsed = ObjectId::Parse(c.at("text").get<std::string>());
    ASSERT_FALSE(parsed.ok()) << "accepted";
    EXPECT_EQ(StatusCodeName(parsed.status().code()), c.at("error").get<std::string>())
        << parsed.status().ToString();
    EXPECT_FALSE(parsed.status().message().empty());
  }
}

TEST(IdVectorsTest, InvalidBinaryIsRefusedWithTheSpecifiedCode) {
  for (const Json& c : Doc().at("invalid_binary")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto binary = HexDecode(c.at("binary_hex").get<std::string>());
    ASSERT_TRUE(binary.has_value());
    auto parsed = ObjectId::FromBinary(*binary);
    ASSERT_FALSE(parsed.ok()) << "accepted";
    EXPECT_EQ(StatusCodeName(parsed.status().code()), c.at("error").get<std::string>())
        << parsed.status().ToString();
  }
}

}  // namespace
}  // namespace dreamdb
