// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Checks page encoding and decoding against the golden vectors of
// spec/11-anchor-index.md (spec/vectors/btree/vectors.json, made by generate.py with an
// independent CBOR encoder and Debian's b3sum). The file is found through
// DREAMDB_SOURCE_DIR (set by ctest) or, failing that, relative to this file.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "src/base/encoding.h"
#include "src/btree/btree.h"

namespace dreamdb::btree {
namespace {

// Just enough JSON for the vectors: objects, arrays, strings without escapes other than
// \" and \\, unsigned integers, null.
struct Json {
  enum class Kind { kNull, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  uint64_t number = 0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::string> keys;  // object: keys[i] -> values[i] (vectors, since Json is
  std::vector<Json> values;       // incomplete here)

  const Json& operator[](std::string_view key) const {
    static const Json kMissing;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return values[i];
    }
    return kMissing;
  }
  bool Has(std::string_view key) const {
    for (const std::string& k : keys) {
      if (k == key) return true;
    }
    return false;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view t) : t_(t) {}
  bool Parse(Json* out) {
    if (!Value(out)) return false;
    Space();
    return p_ == t_.size();
  }
  size_t pos() const { return p_; }

 private:
  void Space() {
    while (p_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[p_]))) ++p_;
  }
  bool Eat(char c) {
    Space();
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (p_ < t_.size() && t_[p_] != '"') {
      if (t_[p_] == '\\') ++p_;
      if (p_ < t_.size()) out->push_back(t_[p_++]);
    }
    return Eat('"');
  }
  bool Value(Json* out) {
    Space();
    if (p_ >= t_.size()) return false;
    const char c = t_[p_];
    if (c == '{') {
      out->kind = Json::Kind::kObject;
      ++p_;
      if (Eat('}')) return true;
      do {
        std::string key;
        Json v;
        if (!String(&key) || !Eat(':') || !Value(&v)) return false;
        out->keys.push_back(std::move(key));
        out->values.push_back(std::move(v));
      } while (Eat(','));
      return Eat('}');
    }
    if (c == '[') {
      out->kind = Json::Kind::kArray;
      ++p_;
      if (Eat(']')) return true;
      do {
        Json v;
        if (!Value(&v)) return false;
        out->array.push_back(std::move(v));
      } while (Eat(','));
      return Eat(']');
    }
    if (c == '"') {
      out->kind = Json::Kind::kString;
      return String(&out->string);
    }
    if (t_.substr(p_, 4) == "null") {
      p_ += 4;
      return true;
    }
    if (c < '0' || c > '9') return false;
    out->kind = Json::Kind::kNumber;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') {
      out->number = out->number * 10 + static_cast<uint64_t>(t_[p_++] - '0');
    }
    return true;
  }

  std::string_view t_;
  size_t p_ = 0;
};

Json LoadVectors() {
  std::filesystem::path root;
  if (const char* dir = std::getenv("DREAMDB_SOURCE_DIR")) {
    root = dir;
  } else {
    root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  }
  std::ifstream in(root / "spec/vectors/btree/vectors.json");
  EXPECT_TRUE(in.good()) << "cannot open " << (root / "spec/vectors/btree/vectors.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  Json doc;
  Parser parser(text);
  EXPECT_TRUE(parser.Parse(&doc)) << "bad JSON near byte " << parser.pos();
  return doc;
}

std::vector<uint64_t> U64s(const Json& j) {
  std::vector<uint64_t> v;
  for (const Json& x : j.array) v.push_back(x.number);
  return v;
}

std::vector<uint32_t> U32s(const Json& j) {
  std::vector<uint32_t> v;
  for (const Json& x : j.array) v.push_back(static_cast<uint32_t>(x.number));
  return v;
}

std::vector<ObjectId> Ids(const Json& j) {
  std::vector<ObjectId> v;
  for (const Json& x : j.array) {
    auto id = ObjectId::Parse(x.string);
    EXPECT_TRUE(id.ok()) << x.string;
    v.push_back(id.ok() ? *id : ObjectId());
  }
  return v;
}

Leaf LeafOf(const Json& d) {
  Leaf leaf;
  leaf.anchors = U64s(d["anchors"]);
  const Json& fields = d["fields"];
  for (size_t i = 0; i < fields.keys.size(); ++i) {
    const Json& f = fields.values[i];
    leaf.fields.push_back(
        LeafField{fields.keys[i], Ids(f["segments"]), U32s(f["seg"]), U32s(f["row"])});
  }
  std::sort(leaf.fields.begin(), leaf.fields.end(),
            [](const LeafField& a, const LeafField& b) { return cbor::KeyLess(a.name, b.name); });
  return leaf;
}

Node NodeOf(const Json& d) {
  return Node{static_cast<uint32_t>(d["level"].number), U64s(d["keys"]), Ids(d["children"]),
              U64s(d["counts"])};
}

Bytes FromHex(const std::string& hex) {
  auto b = HexDecode(hex);
  EXPECT_TRUE(b.has_value()) << hex;
  return b.value_or("");
}

TEST(BtreeVectorsTest, Pages) {
  Json doc = LoadVectors();
  ASSERT_GE(doc["pages"].array.size(), 4u);
  for (const Json& c : doc["pages"].array) {
    SCOPED_TRACE(c["name"].string);
    const Bytes want = FromHex(c["hex"].string);
    Result<Bytes> got = Internal("unset");
    Page expected;
    if (c["kind"].string == "leaf") {
      Leaf leaf = LeafOf(c["page"]);
      got = EncodeLeaf(leaf);
      expected = MakePage(std::move(leaf));
    } else {
      Node node = NodeOf(c["page"]);
      got = EncodeNode(node);
      expected = MakePage(std::move(node));
    }
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(HexEncode(*got), c["hex"].string);
    EXPECT_EQ(ObjectId::Of(want).ToString(), c["id"].string);
    auto page = DecodePage(want, "vector");
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_EQ(page->v, expected.v);
  }
}

TEST(BtreeVectorsTest, IndexRefs) {
  Json doc = LoadVectors();
  ASSERT_EQ(doc["index_refs"].array.size(), 3u);
  for (const Json& c : doc["index_refs"].array) {
    SCOPED_TRACE(c["name"].string);
    const Json& d = c["index_ref"];
    IndexRef ref;
    if (d.kind == Json::Kind::kNull) {
      ref = IndexRef::Empty();
    } else if (d.Has("inline")) {
      ref = IndexRef::Inline(LeafOf(d["inline"]));
    } else {
      auto root = ObjectId::Parse(d["root"].string);
      ASSERT_TRUE(root.ok());
      ref = IndexRef::Paged(*root, static_cast<uint32_t>(d["height"].number), d["count"].number);
    }
    auto bytes = cbor::Encode(IndexRefToCbor(ref));
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(HexEncode(*bytes), c["hex"].string);
    auto value = cbor::Decode(FromHex(c["hex"].string));
    ASSERT_TRUE(value.ok()) << value.status().ToString();
    auto back = IndexRefFromCbor(*value, "vector");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == ref);
  }
}

TEST(BtreeVectorsTest, InvalidPages) {
  Json doc = LoadVectors();
  ASSERT_GE(doc["invalid"].array.size(), 10u);
  for (const Json& c : doc["invalid"].array) {
    SCOPED_TRACE(c["name"].string);
    auto page = DecodePage(FromHex(c["hex"].string), "vector");
    ASSERT_FALSE(page.ok());
    EXPECT_EQ(StatusCodeName(page.status().code()), c["code"].string);
    EXPECT_NE(page.status().message().find(c["error"].string), std::string::npos)
        << page.status().ToString();
  }
}

}  // namespace
}  // namespace dreamdb::btree
