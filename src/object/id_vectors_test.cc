// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Checks ObjectId against the golden vectors of spec/04-object-ids.md
// (spec/vectors/ids/ids.json, digests from Debian's b3sum). The vectors file is found
// through DREAMDB_SOURCE_DIR (set by ctest) or, failing that, relative to this file.

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

namespace dreamdb {
namespace {

// A minimal JSON reader for the vectors file: objects, arrays, strings (with escapes;
// \u only for the BMP), non-negative integers, true/false/null. Enough for vectors and
// no new dependency. Parse errors fail the test with the byte offset.
struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  uint64_t number = 0;
  std::string string;
  std::vector<Json> array;
  // Object members as parallel vectors: std::vector allows the incomplete type Json,
  // std::map and std::pair do not.
  std::vector<std::string> keys;
  std::vector<Json> values;

  const Json* Find(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // A missing key reads as null, whose fields are empty: comparisons then fail loudly.
  const Json& operator[](std::string_view key) const {
    static const Json kMissing;
    const Json* v = Find(key);
    return v != nullptr ? *v : kMissing;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Result<Json> ParseDocument() {
    Json value;
    RETURN_IF_ERROR(ParseValue(&value, 0));
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing characters");
    return value;
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgument("vectors JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Status ParseValue(Json* out, int depth) {
    if (depth > 32) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out->kind = Json::Kind::kString;
      return ParseString(&out->string);
    }
    if (c >= '0' && c <= '9') {
      out->kind = Json::Kind::kNumber;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        out->number = out->number * 10 + static_cast<uint64_t>(text_[pos_++] - '0');
      }
      return Status::Ok();
    }
    if (Consume("true")) {
      out->kind = Json::Kind::kBool;
      out->boolean = true;
      return Status::Ok();
    }
    if (Consume("false")) {
      out->kind = Json::Kind::kBool;
      return Status::Ok();
    }
    if (Consume("null")) return Status::Ok();
    return Error(std::string("unexpected character ") + Quote(std::string(1, c)));
  }

  Status ParseObject(Json* out, int depth) {
    out->kind = Json::Kind::kObject;
    ++pos_;  // '{'
    SkipSpace();
    if (Consume("}")) return Status::Ok();
    while (true) {
      SkipSpace();
      std::string key;
      RETURN_IF_ERROR(ParseString(&key));
      SkipSpace();
      if (!Consume(":")) return Error("expected ':'");
      Json value;
      RETURN_IF_ERROR(ParseValue(&value, depth + 1));
      if (out->Has(key)) return Error("duplicate key " + Quote(key));
      out->keys.push_back(std::move(key));
      out->values.push_back(std::move(value));
      SkipSpace();
      if (Consume("}")) return Status::Ok();
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  Status ParseArray(Json* out, int depth) {
    out->kind = Json::Kind::kArray;
    ++pos_;  // '['
    SkipSpace();
    if (Consume("]")) return Status::Ok();
    while (true) {
      Json value;
      RETURN_IF_ERROR(ParseValue(&value, depth + 1));
      out->array.push_back(std::move(value));
      SkipSpace();
      if (Consume("]")) return Status::Ok();
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  Status ParseString(std::string* out) {
    if (!Consume("\"")) return Error("expected a string");
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return Status::Ok();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return Error("short \\u escape");
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = text_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') {
              cp |= static_cast<uint32_t>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
              cp |= static_cast<uint32_t>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
              cp |= static_cast<uint32_t>(h - 'A' + 10);
            } else {
              return Error("bad \\u escape");
            }
          }
          if (cp >= 0xd800 && cp <= 0xdfff) return Error("surrogates are not supported");
          if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::filesystem::path VectorsPath() {
  const char* source_dir = std::getenv("DREAMDB_SOURCE_DIR");
  std::filesystem::path root = source_dir != nullptr && *source_dir != '\0'
                                   ? std::filesystem::path(source_dir)
                                   : std::filesystem::path(__FILE__).parent_path() / ".." / "..";
  return root / "spec" / "vectors" / "ids" / "ids.json";
}

Result<Json> LoadVectors() {
  std::filesystem::path path = VectorsPath();
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path.string() + " (set DREAMDB_SOURCE_DIR)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto doc = JsonParser(buffer.str()).ParseDocument();
  if (!doc.ok()) return doc.status().WithContext(path.string());
  return doc;
}

// Loaded once per process. A load failure fails every test (a fixture's SetUpTestSuite
// failure would be reported as "skipped" by ctest, hiding a missing vectors file).
class IdVectorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static const Result<Json>* vectors = new Result<Json>(LoadVectors());
    ASSERT_TRUE(vectors->ok()) << vectors->status().ToString();
    doc_ = &vectors->value();
  }
  const Json& Doc() const { return *doc_; }

 private:
  const Json* doc_ = nullptr;
};

// Expands a valid case's input: either "input_hex" or an "input_pattern" that the vectors
// file defines ("byte i = i % M").
Result<Bytes> Input(const Json& c) {
  if (c.Has("input_hex")) {
    auto bytes = HexDecode(c["input_hex"].string);
    if (!bytes) return InvalidArgument("bad input_hex");
    return *bytes;
  }
  const Json& p = c["input_pattern"];
  const std::string prefix = "byte i = i % ";
  const std::string& pattern = p["pattern"].string;
  if (pattern.rfind(prefix, 0) != 0) return Unsupported("unknown pattern " + Quote(pattern));
  uint64_t modulus = std::strtoull(pattern.c_str() + prefix.size(), nullptr, 10);
  if (modulus == 0 || modulus > 256) return InvalidArgument("bad modulus in " + Quote(pattern));
  Bytes out(p["length"].number, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i % modulus);
  return out;
}

TEST_F(IdVectorsTest, FileHasEnoughCases) {
  EXPECT_GE(Doc()["valid"].array.size(), 20u);
  EXPECT_GE(Doc()["invalid_text"].array.size(), 10u);
  EXPECT_GE(Doc()["invalid_binary"].array.size(), 5u);
}

TEST_F(IdVectorsTest, ValidInputsHashToTheirIds) {
  for (const Json& c : Doc()["valid"].array) {
    SCOPED_TRACE(c["name"].string);
    auto input = Input(c);
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    ObjectId id = ObjectId::Of(*input);
    const auto& digest = id.digest();
    EXPECT_EQ(
        HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size())),
        c["blake3_hex"].string);
    EXPECT_EQ(HexEncode(id.ToBinary()), c["multihash_hex"].string);
    EXPECT_EQ(id.ToString(), c["text"].string);
    EXPECT_EQ(id.ToString().size(), ObjectId::kTextSize);
    EXPECT_EQ(id.ShardPrefix(), c["shard"].string);
    EXPECT_TRUE(id.Matches(*input));
    EXPECT_FALSE(id.is_null());
    // The CBOR form is the 34-byte byte string: header 0x58 0x22, then the multihash.
    EXPECT_EQ("5822" + HexEncode(id.ToBinary()), c["cbor_hex"].string);
  }
}

TEST_F(IdVectorsTest, IncrementalHashingMatches) {
  // Uneven pieces cross BLAKE3's 64-byte block and 1024-byte chunk boundaries.
  const size_t kPieces[] = {1, 63, 64, 1000, 1025, 4096};
  for (const Json& c : Doc()["valid"].array) {
    SCOPED_TRACE(c["name"].string);
    auto input = Input(c);
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    Hasher hasher;
    size_t offset = 0;
    for (size_t i = 0; offset < input->size(); ++i) {
      size_t n = std::min(kPieces[i % std::size(kPieces)], input->size() - offset);
      hasher.Update(ByteView(*input).substr(offset, n));
      offset += n;
    }
    EXPECT_EQ(hasher.Finish().ToString(), c["text"].string);
  }
}

TEST_F(IdVectorsTest, ValidTextAndBinaryFormsParse) {
  for (const Json& c : Doc()["valid"].array) {
    SCOPED_TRACE(c["name"].string);
    auto parsed = ObjectId::Parse(c["text"].string);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(parsed->ToString(), c["text"].string);
    auto binary = HexDecode(c["multihash_hex"].string);
    ASSERT_TRUE(binary.has_value());
    auto from_binary = ObjectId::FromBinary(*binary);
    ASSERT_TRUE(from_binary.ok()) << from_binary.status().ToString();
    EXPECT_EQ(*from_binary, *parsed);
  }
}

TEST_F(IdVectorsTest, NullId) {
  const Json& n = Doc()["null_id"];
  ObjectId null_id;
  EXPECT_TRUE(null_id.is_null());
  EXPECT_EQ(null_id.ToString(), n["text"].string);
  EXPECT_EQ(HexEncode(null_id.ToBinary()), n["multihash_hex"].string);
  EXPECT_EQ(null_id.ShardPrefix(), n["shard"].string);
  auto parsed = ObjectId::Parse(n["text"].string);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->is_null());
}

TEST_F(IdVectorsTest, InvalidTextIsRefusedWithTheSpecifiedCode) {
  for (const Json& c : Doc()["invalid_text"].array) {
    SCOPED_TRACE(c["name"].string + " " + Quote(c["text"].string));
    auto parsed = ObjectId::Parse(c["text"].string);
    ASSERT_FALSE(parsed.ok()) << "accepted";
    EXPECT_EQ(StatusCodeName(parsed.status().code()), c["error"].string)
        << parsed.status().ToString();
    EXPECT_FALSE(parsed.status().message().empty());
  }
}

TEST_F(IdVectorsTest, InvalidBinaryIsRefusedWithTheSpecifiedCode) {
  for (const Json& c : Doc()["invalid_binary"].array) {
    SCOPED_TRACE(c["name"].string);
    auto binary = HexDecode(c["binary_hex"].string);
    ASSERT_TRUE(binary.has_value());
    auto parsed = ObjectId::FromBinary(*binary);
    ASSERT_FALSE(parsed.ok()) << "accepted";
    EXPECT_EQ(StatusCodeName(parsed.status().code()), c["error"].string)
        << parsed.status().ToString();
  }
}

}  // namespace
}  // namespace dreamdb
