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
#include "src/testing/golden.h"

namespace dreamdb::btree {
namespace {

using Json = nlohmann::ordered_json;

Json LoadVectors() { return testing::LoadGoldenJson("spec/vectors/btree/vectors.json"); }

std::vector<uint64_t> U64s(const Json& j) {
  std::vector<uint64_t> v;
  for (const Json& x : j) v.push_back(x.get<uint64_t>());
  return v;
}

std::vector<uint32_t> U32s(const Json& j) {
  std::vector<uint32_t> v;
  for (const Json& x : j) v.push_back(static_cast<uint32_t>(x.get<uint64_t>()));
  return v;
}

std::vector<ObjectId> Ids(const Json& j) {
  std::vector<ObjectId> v;
  for (const Json& x : j) {
    auto id = ObjectId::Parse(x.get<std::string>());
    EXPECT_TRUE(id.ok()) << x.get<std::string>();
    v.push_back(id.ok() ? *id : ObjectId());
  }
  return v;
}

Leaf LeafOf(const Json& d) {
  Leaf leaf;
  leaf.anchors = U64s(d.at("anchors"));
  const Json& fields = d.at("fields");
  for (const auto& [name, f] : fields.items()) {
    leaf.fields.push_back(
        LeafField{name, Ids(f.at("segments")), U32s(f.at("seg")), U32s(f.at("row"))});
  }
  std::sort(leaf.fields.begin(), leaf.fields.end(),
            [](const LeafField& a, const LeafField& b) { return cbor::KeyLess(a.name, b.name); });
  return leaf;
}

Node NodeOf(const Json& d) {
  return Node{static_cast<uint32_t>(d.at("level").get<uint64_t>()), U64s(d.at("keys")),
              Ids(d.at("children")), U64s(d.at("counts"))};
}

Bytes FromHex(const std::string& hex) {
  auto b = HexDecode(hex);
  EXPECT_TRUE(b.has_value()) << hex;
  return b.value_or("");
}

TEST(BtreeVectorsTest, Pages) {
  Json doc = LoadVectors();
  ASSERT_GE(doc.at("pages").size(), 4u);
  for (const Json& c : doc.at("pages")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const Bytes want = FromHex(c.at("hex").get<std::string>());
    Result<Bytes> got = Internal("unset");
    Page expected;
    if (c.at("kind").get<std::string>() == "leaf") {
      Leaf leaf = LeafOf(c.at("page"));
      got = EncodeLeaf(leaf);
      expected = MakePage(std::move(leaf));
    } else {
      Node node = NodeOf(c.at("page"));
      got = EncodeNode(node);
      expected = MakePage(std::move(node));
    }
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(HexEncode(*got), c.at("hex").get<std::string>());
    EXPECT_EQ(ObjectId::Of(want).ToString(), c.at("id").get<std::string>());
    auto page = DecodePage(want, "vector");
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_EQ(page->v, expected.v);
  }
}

TEST(BtreeVectorsTest, IndexRefs) {
  Json doc = LoadVectors();
  ASSERT_EQ(doc.at("index_refs").size(), 3u);
  for (const Json& c : doc.at("index_refs")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const Json& d = c.at("index_ref");
    IndexRef ref;
    if (d.is_null()) {
      ref = IndexRef::Empty();
    } else if (d.contains("inline")) {
      ref = IndexRef::Inline(LeafOf(d.at("inline")));
    } else {
      auto root = ObjectId::Parse(d.at("root").get<std::string>());
      ASSERT_TRUE(root.ok());
      ref = IndexRef::Paged(*root, static_cast<uint32_t>(d.at("height").get<uint64_t>()),
                            d.at("count").get<uint64_t>());
    }
    auto bytes = cbor::Encode(IndexRefToCbor(ref));
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(HexEncode(*bytes), c.at("hex").get<std::string>());
    auto value = cbor::Decode(FromHex(c.at("hex").get<std::string>()));
    ASSERT_TRUE(value.ok()) << value.status().ToString();
    auto back = IndexRefFromCbor(*value, "vector");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == ref);
  }
}

TEST(BtreeVectorsTest, InvalidPages) {
  Json doc = LoadVectors();
  ASSERT_GE(doc.at("invalid").size(), 10u);
  for (const Json& c : doc.at("invalid")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto page = DecodePage(FromHex(c.at("hex").get<std::string>()), "vector");
    ASSERT_FALSE(page.ok());
    EXPECT_EQ(StatusCodeName(page.status().code()), c.at("code").get<std::string>());
    EXPECT_NE(page.status().message().find(c.at("error").get<std::string>()), std::string::npos)
        << page.status().ToString();
  }
}

}  // namespace
}  // namespace dreamdb::btree
