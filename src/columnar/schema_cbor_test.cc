// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/columnar/schema_cbor.h"

#include <gtest/gtest.h>

#include <string>

#include "src/base/encoding.h"

namespace dreamdb::columnar {
namespace {

Schema AllTypes() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("a").ok());
  EXPECT_TRUE(s.AddFloat64("b", true).ok());
  EXPECT_TRUE(s.AddBool("c").ok());
  EXPECT_TRUE(s.AddString("d", true).ok());
  EXPECT_TRUE(s.AddCategorical("e").ok());
  EXPECT_TRUE(s.AddTimestamp("f").ok());
  EXPECT_TRUE(s.AddBlob("g", "image/png", true).ok());
  EXPECT_TRUE(s.AddEmbedding("h", 4).ok());
  EXPECT_TRUE(s.AddArray("i", DType::kU8, {2, 3}).ok());
  return s;
}

TEST(SchemaCbor, RoundTrip) {
  Schema s = AllTypes();
  s.set_version(3);
  cbor::Value v = SchemaToCbor(s);
  auto bytes = cbor::Encode(v);
  ASSERT_TRUE(bytes.ok());
  auto decoded = cbor::Decode(*bytes);
  ASSERT_TRUE(decoded.ok());
  auto back = SchemaFromCbor(*decoded);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(SchemaFromCbor(SchemaToCbor(Schema()))->version(), 1u);
}

TEST(SchemaCbor, Diagnostic) {
  Schema s;
  ASSERT_TRUE(s.AddEmbedding("emb", 4).ok());
  ASSERT_TRUE(s.AddTimestamp("t", true).ok());
  ASSERT_TRUE(s.AddArray("px", DType::kU8, {2, 3}).ok());
  ASSERT_TRUE(s.AddBlob("img", "image/png").ok());
  EXPECT_EQ(
      cbor::ToDiagnostic(SchemaToCbor(s)),
      R"({"fields": [{"dim": 4, "name": "emb", "type": "embedding", "optional": false}, )"
      R"({"name": "t", "type": "timestamp", "unit": "ns", "optional": true}, )"
      R"({"name": "px", "type": "array", "dtype": "u8", "shape": [2, 3], "optional": false}, )"
      R"({"mime": "image/png", "name": "img", "type": "blob", "optional": false}], "version": 1})");
}

cbor::Value Field(cbor::Map m) { return cbor::Value::FromMap(std::move(m)); }

cbor::Value SchemaWith(cbor::Value field, uint64_t version = 1) {
  cbor::Map m;
  m.Set("version", cbor::Value::UInt(version));
  m.Set("fields", cbor::Value::FromArray({std::move(field)}));
  return cbor::Value::FromMap(std::move(m));
}

cbor::Map Base(std::string name, std::string type) {
  cbor::Map m;
  m.Set("name", cbor::Value::Text(std::move(name)));
  m.Set("type", cbor::Value::Text(std::move(type)));
  m.Set("optional", cbor::Value::Bool(false));
  return m;
}

void ExpectError(const cbor::Value& v, StatusCode code, std::string_view substr) {
  auto r = SchemaFromCbor(v);
  ASSERT_FALSE(r.ok()) << cbor::ToDiagnostic(v);
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(substr), std::string::npos) << r.status().ToString();
}

TEST(SchemaCbor, Errors) {
  ExpectError(cbor::Value::UInt(1), StatusCode::kCorrupt, "schema");
  {
    cbor::Map m;
    m.Set("fields", cbor::Value::FromArray({}));
    ExpectError(cbor::Value::FromMap(m), StatusCode::kCorrupt, "version");
    m.Set("version", cbor::Value::UInt(0));
    ExpectError(cbor::Value::FromMap(m), StatusCode::kCorrupt, "version must be");
    m.Set("version", cbor::Value::UInt(1));
    m.Set("zzz", cbor::Value::UInt(1));  // unknown keys are ignored
    EXPECT_TRUE(SchemaFromCbor(cbor::Value::FromMap(m)).ok());
  }
  ExpectError(SchemaWith(Field(Base("x", "image"))), StatusCode::kUnsupported,
              "unknown type 'image'");
  ExpectError(SchemaWith(Field(Base("bad name", "int64"))), StatusCode::kCorrupt,
              "invalid field name");
  {
    cbor::Map m = Base("x", "int64");
    m.Set("dim", cbor::Value::UInt(3));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt,
                "key 'dim' does not apply to type int64");
    m = Base("x", "int64");
    m.Set("colour", cbor::Value::UInt(3));  // unknown keys are ignored
    auto r = SchemaFromCbor(SchemaWith(Field(m)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->fields()[0].type, FieldType::kInt64);
    m = Base("x", "string");
    m.Set("unit", cbor::Value::Text("ns"));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "key 'unit' does not apply");
  }
  {
    cbor::Map m = Base("x", "embedding");
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "dim");
    m.Set("dim", cbor::Value::UInt(0));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "bad dim");
    m.Set("dim", cbor::Value::UInt(70000));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "1 to 65536");
  }
  {
    cbor::Map m = Base("x", "timestamp");
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "unit");
    m.Set("unit", cbor::Value::Text("ms"));
    ExpectError(SchemaWith(Field(m)), StatusCode::kUnsupported, "unit 'ms'");
  }
  {
    cbor::Map m = Base("x", "array");
    m.Set("dtype", cbor::Value::Text("q8"));
    m.Set("shape", cbor::Value::FromArray({cbor::Value::UInt(2)}));
    ExpectError(SchemaWith(Field(m)), StatusCode::kUnsupported, "unknown dtype 'q8'");
    m.Set("dtype", cbor::Value::Text("u8"));
    m.Set("shape", cbor::Value::FromArray({}));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "rank");
    m.Set("shape", cbor::Value::FromArray({cbor::Value::Int(-1)}));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "shape");
  }
  {
    cbor::Map m = Base("x", "blob");
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "mime");
    m.Set("mime", cbor::Value::Text(""));
    ExpectError(SchemaWith(Field(m)), StatusCode::kCorrupt, "empty mime");
  }
  {
    cbor::Map m;
    m.Set("version", cbor::Value::UInt(1));
    m.Set("fields", cbor::Value::FromArray({Field(Base("x", "int64")), Field(Base("x", "bool"))}));
    ExpectError(cbor::Value::FromMap(m), StatusCode::kCorrupt, "duplicate field name 'x'");
  }
}

// The index declaration's quantizer (spec/21-spatial-index.md §2.1): present only when not
// "rabitq"; unknown values are unsupported, "rabitq" spelled out is corrupt. "graph" is an
// algorithm readers accept.
TEST(SchemaCbor, IndexQuantizerAndGraph) {
  FieldSpec f;
  f.name = "emb";
  f.type = FieldType::kEmbedding;
  f.dim = 8;
  f.index = IndexSpec{};
  auto plain = cbor::Encode(FieldToCbor(f));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("quantizer"), std::string::npos);
  f.index->quantizer = "pq4";
  cbor::Value with = FieldToCbor(f);
  auto back = FieldFromCbor(with);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, f);
  auto with_key = [&](const char* q) {
    cbor::Map m = *FieldToCbor(f).AsMap("f").value();
    cbor::Map ix = *m.Find("index")->AsMap("i").value();
    ix.Set("quantizer", cbor::Value::Text(q));
    m.Set("index", cbor::Value::FromMap(std::move(ix)));
    return FieldFromCbor(cbor::Value::FromMap(std::move(m))).status().code();
  };
  EXPECT_EQ(with_key("pq9"), StatusCode::kUnsupported);
  EXPECT_EQ(with_key("rabitq"), StatusCode::kCorrupt);
  f.index->quantizer = "rabitq";
  f.index->algorithm = "graph";
  back = FieldFromCbor(FieldToCbor(f));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->index->algorithm, "graph");
  Schema s;
  EXPECT_TRUE(s.Add(f).ok());
  f.name = "emb2";
  f.index->quantizer = "pq4";
  EXPECT_EQ(s.Add(f).code(), StatusCode::kInvalidArgument);
  f.index->algorithm = "ivf";
  f.index->quantizer = "opq";
  EXPECT_EQ(s.Add(f).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreamdb::columnar
