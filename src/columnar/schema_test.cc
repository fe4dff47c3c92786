// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "dreamdb/schema.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dreamdb {
namespace {

#define EXPECT_ERROR(expr, want_code, substr)                                 \
  do {                                                                        \
    ::dreamdb::Status s_ = (expr);                                            \
    EXPECT_EQ(s_.code(), (want_code)) << s_.ToString();                       \
    EXPECT_NE(s_.message().find(substr), std::string::npos) << s_.ToString(); \
  } while (0)

Status JsonStatus(std::string_view json) { return Schema::FromJson(json).status(); }

TEST(FieldName, Valid) {
  for (const std::string& n : std::vector<std::string>{"a", "A", "_", "image", "emb_768",
                                                       "_private", std::string(64, 'x')}) {
    EXPECT_TRUE(ValidateFieldName(n).ok()) << n;
  }
}

TEST(FieldName, Invalid) {
  EXPECT_ERROR(ValidateFieldName(""), StatusCode::kInvalidArgument, "1 to 64");
  EXPECT_ERROR(ValidateFieldName(std::string(65, 'x')), StatusCode::kInvalidArgument, "1 to 64");
  EXPECT_ERROR(ValidateFieldName("a-b"), StatusCode::kInvalidArgument, "'-' at position 1");
  EXPECT_ERROR(ValidateFieldName("a b"), StatusCode::kInvalidArgument, "position 1");
  EXPECT_ERROR(ValidateFieldName("a.b"), StatusCode::kInvalidArgument, "[A-Za-z0-9_]");
  EXPECT_ERROR(ValidateFieldName("caf\xc3\xa9"), StatusCode::kInvalidArgument, "\\xc3");
  EXPECT_ERROR(ValidateFieldName("1abc"), StatusCode::kInvalidArgument, "start with a digit");
  EXPECT_ERROR(ValidateFieldName("anchor"), StatusCode::kInvalidArgument, "reserved");
  EXPECT_TRUE(ValidateFieldName("Anchor").ok());
  EXPECT_TRUE(ValidateFieldName("anchors").ok());
}

TEST(TypeNames, RoundTrip) {
  for (FieldType t : {FieldType::kInt64, FieldType::kFloat64, FieldType::kBool, FieldType::kString,
                      FieldType::kCategorical, FieldType::kTimestamp, FieldType::kBlob,
                      FieldType::kEmbedding, FieldType::kArray}) {
    auto parsed = ParseFieldType(FieldTypeName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_ERROR(ParseFieldType("image").status(), StatusCode::kInvalidArgument,
               "unknown type 'image'");
  EXPECT_ERROR(ParseFieldType("Int64").status(), StatusCode::kInvalidArgument, "expected one of");
  size_t sizes[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8};
  int i = 0;
  for (DType d : {DType::kU8, DType::kI8, DType::kU16, DType::kI16, DType::kU32, DType::kI32,
                  DType::kU64, DType::kI64, DType::kF32, DType::kF64}) {
    auto parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
    EXPECT_EQ(DTypeSize(d), sizes[i++]);
  }
  EXPECT_ERROR(ParseDType("float32").status(), StatusCode::kInvalidArgument, "unknown dtype");
}

TEST(FieldSpec, FixedWidth) {
  Schema s;
  ASSERT_TRUE(s.AddInt64("a").ok());
  ASSERT_TRUE(s.AddFloat64("b").ok());
  ASSERT_TRUE(s.AddBool("c").ok());
  ASSERT_TRUE(s.AddString("d").ok());
  ASSERT_TRUE(s.AddCategorical("e").ok());
  ASSERT_TRUE(s.AddTimestamp("f").ok());
  ASSERT_TRUE(s.AddBlob("g").ok());
  ASSERT_TRUE(s.AddEmbedding("h", 768).ok());
  ASSERT_TRUE(s.AddArray("i", DType::kU16, {2, 3, 4}).ok());
  std::vector<size_t> widths = {8, 8, 1, 0, 0, 8, 0, 3072, 48};
  ASSERT_EQ(s.fields().size(), widths.size());
  for (size_t i = 0; i < widths.size(); ++i) EXPECT_EQ(s.fields()[i].FixedWidth(), widths[i]);
  EXPECT_EQ(s.Find("g")->mime, "application/octet-stream");
  EXPECT_EQ(s.Find("zz"), nullptr);
  EXPECT_EQ(s.version(), 1u);
}

TEST(SchemaBuild, Errors) {
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  EXPECT_ERROR(s.AddString("x"), StatusCode::kInvalidArgument, "duplicate field name 'x'");
  EXPECT_ERROR(s.AddInt64("bad-name"), StatusCode::kInvalidArgument, "invalid field name");
  EXPECT_ERROR(s.AddEmbedding("e", 0), StatusCode::kInvalidArgument, "dim must be >= 1");
  EXPECT_ERROR(s.AddEmbedding("e", 65537), StatusCode::kInvalidArgument, "1 to 65536");
  EXPECT_TRUE(s.AddEmbedding("e", 65536).ok());
  EXPECT_ERROR(s.AddArray("a", DType::kU8, {}), StatusCode::kInvalidArgument, "1 to 32 dimensions");
  EXPECT_ERROR(s.AddArray("a", DType::kU8, std::vector<uint32_t>(33, 1)),
               StatusCode::kInvalidArgument, "1 to 32 dimensions");
  EXPECT_ERROR(s.AddArray("a", DType::kU8, {2, 0}), StatusCode::kInvalidArgument,
               "dimension 1 is 0");
  EXPECT_ERROR(s.AddArray("a", DType::kF64, {1024, 2049}), StatusCode::kInvalidArgument, "16 MiB");
  EXPECT_ERROR(s.AddArray("a", DType::kU8, {65536, 65536, 65536}), StatusCode::kInvalidArgument,
               "16 MiB");
  EXPECT_TRUE(s.AddArray("a", DType::kU8, {4096, 4096}).ok());  // exactly 16 MiB
  EXPECT_ERROR(s.AddBlob("b", ""), StatusCode::kInvalidArgument, "mime");
  EXPECT_ERROR(s.AddBlob("b", "png"), StatusCode::kInvalidArgument, "type/subtype");
  EXPECT_ERROR(s.AddBlob("b", "image/\x01"), StatusCode::kInvalidArgument, "printable");
  EXPECT_ERROR(s.AddBlob("b", std::string(300, 'a') + "/x"), StatusCode::kInvalidArgument,
               "1 to 255");
  EXPECT_TRUE(s.AddBlob("b", "text/plain; charset=utf-8").ok());

  FieldSpec f;
  f.name = "p";
  f.type = FieldType::kInt64;
  f.dim = 3;
  EXPECT_ERROR(s.Add(f), StatusCode::kInvalidArgument, "dim applies only to embedding");
  f.dim = 0;
  f.mime = "image/png";
  EXPECT_ERROR(s.Add(f), StatusCode::kInvalidArgument, "mime applies only to blob");
  f.mime.clear();
  f.shape = {2};
  EXPECT_ERROR(s.Add(f), StatusCode::kInvalidArgument, "shape applies only to array");
  f.shape.clear();
  f.dtype = DType::kU8;  // ignored (normalized) for non-array types
  ASSERT_TRUE(s.Add(f).ok());
  EXPECT_EQ(s.Find("p")->dtype, DType::kF32);
  f.name = "q";
  f.type = static_cast<FieldType>(42);
  EXPECT_ERROR(s.Add(f), StatusCode::kInvalidArgument, "unknown type code");
}

TEST(SchemaBuild, TooManyFields) {
  Schema s;
  for (int i = 0; i < 4096; ++i) ASSERT_TRUE(s.AddInt64("f" + std::to_string(i)).ok());
  EXPECT_ERROR(s.AddInt64("one_more"), StatusCode::kInvalidArgument, "at most 4096");
}

TEST(Evolution, AddDrop) {
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  ASSERT_TRUE(s.AddString("y", true).ok());

  FieldSpec z;
  z.name = "z";
  z.type = FieldType::kFloat64;
  EXPECT_ERROR(s.WithAddedField(z).status(), StatusCode::kInvalidArgument, "must be optional");
  z.optional = true;
  auto s2 = s.WithAddedField(z);
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  EXPECT_EQ(s2->version(), 2u);
  EXPECT_EQ(s2->fields().size(), 3u);
  EXPECT_EQ(s.fields().size(), 2u);  // unchanged
  EXPECT_ERROR(s2->WithAddedField(z).status(), StatusCode::kInvalidArgument, "duplicate");
  z.name = "bad name";
  EXPECT_ERROR(s2->WithAddedField(z).status(), StatusCode::kInvalidArgument, "invalid field");
  EXPECT_TRUE(s.CheckEvolution(*s2).ok());

  auto s3 = s2->WithDroppedField("x");
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->version(), 3u);
  EXPECT_EQ(s3->Find("x"), nullptr);
  EXPECT_EQ(s3->fields()[0].name, "y");
  EXPECT_ERROR(s3->WithDroppedField("x").status(), StatusCode::kNotFound, "'x'");
  EXPECT_TRUE(s2->CheckEvolution(*s3).ok());

  // Re-adding a dropped name is a new field and may have another type.
  FieldSpec x2;
  x2.name = "x";
  x2.type = FieldType::kString;
  x2.optional = true;
  auto s4 = s3->WithAddedField(x2);
  ASSERT_TRUE(s4.ok());
  EXPECT_EQ(s4->version(), 4u);
  EXPECT_TRUE(s3->CheckEvolution(*s4).ok());
  // ...but not in one step.
  EXPECT_ERROR(s.CheckEvolution(*s4), StatusCode::kInvalidArgument,
               "field 'x': type change from int64 to string");
}

TEST(Evolution, CheckRefusesTypeChanges) {
  Schema a;
  ASSERT_TRUE(a.AddEmbedding("emb", 768).ok());
  ASSERT_TRUE(a.AddArray("px", DType::kU8, {2, 3}).ok());
  ASSERT_TRUE(a.AddBlob("img", "image/png", true).ok());
  ASSERT_TRUE(a.AddInt64("n", true).ok());

  Schema b;
  ASSERT_TRUE(b.AddEmbedding("emb", 512).ok());
  EXPECT_ERROR(a.CheckEvolution(b), StatusCode::kInvalidArgument,
               "field 'emb': type change from embedding(dim=768) to embedding(dim=512)");

  Schema c;
  ASSERT_TRUE(c.AddArray("px", DType::kU16, {2, 3}).ok());
  EXPECT_ERROR(a.CheckEvolution(c), StatusCode::kInvalidArgument,
               "from array(u8, [2,3]) to array(u16, [2,3])");
  Schema c2;
  ASSERT_TRUE(c2.AddArray("px", DType::kU8, {3, 2}).ok());
  EXPECT_ERROR(a.CheckEvolution(c2), StatusCode::kInvalidArgument, "to array(u8, [3,2])");

  Schema d;  // mime changes and required -> optional are allowed; drops are allowed
  ASSERT_TRUE(d.AddBlob("img", "image/jpeg", true).ok());
  ASSERT_TRUE(d.AddEmbedding("emb", 768, true).ok());
  EXPECT_TRUE(a.CheckEvolution(d).ok());

  Schema e;  // optional -> required refused
  ASSERT_TRUE(e.AddInt64("n", false).ok());
  EXPECT_ERROR(a.CheckEvolution(e), StatusCode::kInvalidArgument,
               "field 'n': cannot make an optional field required");

  Schema f;  // new required field refused
  ASSERT_TRUE(f.AddInt64("fresh").ok());
  EXPECT_ERROR(a.CheckEvolution(f), StatusCode::kInvalidArgument,
               "field 'fresh': added fields must be optional");

  Schema g;
  ASSERT_TRUE(g.AddFloat64("n", true).ok());
  EXPECT_ERROR(a.CheckEvolution(g), StatusCode::kInvalidArgument,
               "field 'n': type change from int64 to float64");
  EXPECT_TRUE(a.CheckEvolution(a).ok());
}

TEST(Json, BriefExample) {
  auto s = Schema::FromJson(
      R"({"fields":[{"name":"image","type":"blob","mime":"image/png","optional":true},
          {"name":"emb","type":"embedding","dim":768},
          {"name":"px","type":"array","dtype":"u8","shape":[2,3]},
          {"name":"label","type":"categorical"}]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->fields().size(), 4u);
  EXPECT_EQ(s->fields()[0].type, FieldType::kBlob);
  EXPECT_EQ(s->fields()[0].mime, "image/png");
  EXPECT_TRUE(s->fields()[0].optional);
  EXPECT_EQ(s->fields()[1].dim, 768u);
  EXPECT_FALSE(s->fields()[1].optional);
  EXPECT_EQ(s->fields()[2].dtype, DType::kU8);
  EXPECT_EQ(s->fields()[2].shape, (std::vector<uint32_t>{2, 3}));
  EXPECT_EQ(s->fields()[3].type, FieldType::kCategorical);
  EXPECT_EQ(s->version(), 1u);
}

TEST(Json, RoundTripAllTypes) {
  Schema s;
  ASSERT_TRUE(s.AddInt64("a").ok());
  ASSERT_TRUE(s.AddFloat64("b", true).ok());
  ASSERT_TRUE(s.AddBool("c").ok());
  ASSERT_TRUE(s.AddString("d", true).ok());
  ASSERT_TRUE(s.AddCategorical("e").ok());
  ASSERT_TRUE(s.AddTimestamp("f").ok());
  ASSERT_TRUE(s.AddBlob("g", "audio/wav", true).ok());
  ASSERT_TRUE(s.AddEmbedding("h", 4).ok());
  ASSERT_TRUE(s.AddArray("i", DType::kF64, {3, 1, 2}).ok());
  s.set_version(7);
  std::string json = s.ToJson();
  auto back = Schema::FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->ToJson(), json);
  EXPECT_EQ(Schema().ToJson(), R"({"version":1,"fields":[]})");
  Schema one;
  ASSERT_TRUE(one.AddEmbedding("emb", 8, true).ok());
  EXPECT_EQ(
      one.ToJson(),
      R"({"version":1,"fields":[{"name":"emb","type":"embedding","dim":8,"optional":true}]})");
  // Timestamp unit is accepted when it is "ns".
  auto ts = Schema::FromJson(R"({"fields":[{"name":"t","type":"timestamp","unit":"ns"}]})");
  ASSERT_TRUE(ts.ok());
  EXPECT_EQ(ts->fields()[0].type, FieldType::kTimestamp);
}

// A schema nested 100,000 levels deep must be refused while parsing, not walked
// recursively (a recursive walk overflows the stack).
TEST(Json, NestedTooDeepIsRefused) {
  std::string deep = R"({"fields": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  Status s = JsonStatus(deep);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "schema JSON: nested more than 32 levels deep");
  // Unclosed: refused for its depth too, not a parse error at the end.
  EXPECT_EQ(JsonStatus(std::string(100000, '[')).message(),
            "schema JSON: nested more than 32 levels deep");
  // 32 levels are parsed (and refused for what they hold).
  std::string ok = R"({"fields": )" + std::string(31, '[') + std::string(31, ']') + "}";
  EXPECT_EQ(JsonStatus(ok).message().find("nested"), std::string::npos)
      << JsonStatus(ok).ToString();
}

TEST(Json, Errors) {
  struct Case {
    const char* json;
    const char* substr;
  };
  const Case cases[] = {
      {"", "parse error"},
      {"{", "parse error"},
      {"[]", "top level must be an object"},
      {"{}", "missing \"fields\""},
      {R"({"fields":{}})", "\"fields\" must be a list"},
      {R"({"fields":[],"extra":1})", "unknown top-level key 'extra'"},
      {R"({"fields":[],"version":0})", "\"version\" must be >= 1"},
      {R"({"fields":[],"version":-1})", "non-negative integer"},
      {R"({"fields":[],"version":4294967296})", "too large"},
      {R"({"fields":[],"fields":[]})", "duplicate key 'fields'"},
      {R"({"fields":[1]})", "fields[0] must be an object"},
      {R"({"fields":[{"type":"int64"}]})", "fields[0] has no \"name\""},
      {R"({"fields":[{"name":5,"type":"int64"}]})", "fields[0].name must be a string"},
      {R"({"fields":[{"name":"x"}]})", "field 'x': missing \"type\""},
      {R"({"fields":[{"name":"x","type":7}]})", "\"type\" must be a string"},
      {R"({"fields":[{"name":"x","type":"image"}]})", "field 'x': unknown type 'image'"},
      {R"({"fields":[{"name":"x","type":"int64","dims":3}]})", "field 'x': unknown key 'dims'"},
      {R"({"fields":[{"name":"x","type":"int64","name":"y"}]})", "duplicate key 'name'"},
      {R"({"fields":[{"name":"x","type":"int64","optional":"yes"}]})",
       "\"optional\" must be true or false"},
      {R"({"fields":[{"name":"x","type":"int64","dim":3}]})",
       "key \"dim\" is only allowed for embedding"},
      {R"({"fields":[{"name":"x","type":"string","mime":"a/b"}]})",
       "key \"mime\" is only allowed for blob"},
      {R"({"fields":[{"name":"x","type":"int64","dtype":"u8"}]})",
       "key \"dtype\" is only allowed for array"},
      {R"({"fields":[{"name":"x","type":"int64","shape":[1]}]})",
       "key \"shape\" is only allowed for array"},
      {R"({"fields":[{"name":"x","type":"int64","unit":"ns"}]})",
       "key \"unit\" is only allowed for timestamp"},
      {R"({"fields":[{"name":"x","type":"timestamp","unit":"ms"}]})", "unit must be \"ns\""},
      {R"({"fields":[{"name":"x","type":"embedding"}]})", "embedding field needs \"dim\""},
      {R"({"fields":[{"name":"x","type":"embedding","dim":0}]})", "dim must be >= 1"},
      {R"({"fields":[{"name":"x","type":"embedding","dim":65537}]})", "1 to 65536"},
      {R"({"fields":[{"name":"x","type":"embedding","dim":7.5}]})", "non-negative integer"},
      {R"({"fields":[{"name":"x","type":"embedding","dim":"7"}]})", "non-negative integer"},
      {R"({"fields":[{"name":"x","type":"array","shape":[2]}]})", "needs \"dtype\""},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u8"}]})", "needs \"shape\""},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u9","shape":[2]}]})",
       "unknown dtype 'u9'"},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u8","shape":[]}]})",
       "shape must not be empty"},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u8","shape":[0]}]})", "dimension 0 is 0"},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u8","shape":2}]})",
       "must be a list of integers"},
      {R"({"fields":[{"name":"x","type":"array","dtype":"u8","shape":[-2]}]})",
       "non-negative integer"},
      {R"({"fields":[{"name":"x","type":"blob","mime":""}]})", "\"mime\" must not be empty"},
      {R"({"fields":[{"name":"x","type":"blob","mime":"nope"}]})", "type/subtype"},
      {R"({"fields":[{"name":"x","type":"int64"},{"name":"x","type":"bool"}]})",
       "duplicate field name 'x'"},
      {R"({"fields":[{"name":"anchor","type":"int64"}]})", "reserved"},
      {R"({"fields":[{"name":"9lives","type":"int64"}]})", "must not start with a digit"},
  };
  for (const Case& c : cases) {
    Status s = JsonStatus(c.json);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.json << " -> " << s.ToString();
    EXPECT_NE(s.message().find(c.substr), std::string::npos)
        << c.json << " -> " << s.ToString() << " (wanted " << c.substr << ")";
    EXPECT_EQ(s.message().rfind("schema JSON: ", 0), 0u) << s.ToString();
  }
}

}  // namespace
}  // namespace dreamdb
