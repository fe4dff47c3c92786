#include "src/dataset/manifest.h"

#include <gtest/gtest.h>

namespace dreamdb::dataset {
namespace {

TEST(ManifestTest, RoundTripAndCanonical) {
  Manifest m;
  m.genesis = ObjectId::Of("g");
  m.parents = {ObjectId::Of("p1"), ObjectId::Of("p2")};
  ASSERT_TRUE(m.schema.AddInt64("x").ok());
  m.count = 7;
  m.next_anchor = 9;
  m.meta = {{"b", "2"}, {"a", "1"}};
  m.writer = "w";
  m.time_ns = 123;
  m.message = "msg";
  m.delta.added = 7;
  m.delta.fields = {"x"};
  auto bytes = EncodeManifest(m);
  ASSERT_TRUE(bytes.ok());
  auto back = DecodeManifest(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->parents, m.parents);
  EXPECT_EQ(back->count, 7u);
  EXPECT_EQ(back->meta, m.meta);
  EXPECT_EQ(back->schema, m.schema);
  EXPECT_EQ(*EncodeManifest(*back), *bytes);
  EXPECT_EQ(PeekKind(*bytes), "dreamdb.manifest");
}

TEST(ManifestTest, RejectsWrongKindAndNewerFormat) {
  Genesis g;
  g.name = "d";
  g.nonce = std::string(16, 'n');
  ASSERT_TRUE(g.schema.AddInt64("x").ok());
  Bytes gb = *EncodeGenesis(g);
  EXPECT_EQ(DecodeManifest(gb).status().code(), StatusCode::kInvalidArgument);
  auto v = *cbor::Decode(gb);
  v.mutable_map().Set("format", cbor::Value::UInt(2));
  EXPECT_EQ(DecodeGenesis(*cbor::Encode(v)).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(DecodeGenesis("garbage").status().code(), StatusCode::kCorrupt);
}

TEST(ManifestTest, Names) {
  EXPECT_TRUE(ValidateDatasetName("my-data_1.v2").ok());
  EXPECT_FALSE(ValidateDatasetName("").ok());
  EXPECT_FALSE(ValidateDatasetName(".hidden").ok());
  EXPECT_FALSE(ValidateDatasetName("a/b").ok());
  EXPECT_FALSE(ValidateDatasetName(std::string(101, 'a')).ok());
  EXPECT_TRUE(ValidateBranchName("sweep/run-001").ok());
  EXPECT_FALSE(ValidateBranchName("a//b").ok());
  EXPECT_FALSE(ValidateBranchName("../x").ok());
  EXPECT_EQ(BranchRef("d", "main"), "d/branches/main");
  EXPECT_EQ(SnapshotRef("d", "v1"), "d/snapshots/v1");
}

}  // namespace
}  // namespace dreamdb::dataset
