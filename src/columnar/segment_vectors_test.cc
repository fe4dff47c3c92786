// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Golden segment vectors (spec/vectors/segments/segments.json, spec/12-segments.md §9).
//
// Each vector holds a field (schema JSON form), the column's values as JSON and the
// segment bytes as hex. This test checks encode(values) == hex and decode(hex) == values,
// and that the file lists exactly the vectors defined below. To regenerate the file after a
// deliberate format change (which also bumps the format version):
//   DREAMDB_UPDATE_VECTORS=1 build/dev/src/columnar/columnar_segment_vectors_test
//
// JSON value forms: int64/timestamp integers; float64 numbers; bool true/false;
// string/categorical text; blob lowercase hex; embedding a list of numbers; array nested
// lists in row-major order; null for a null row.

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "src/base/encoding.h"
#include "src/columnar/segment.h"

namespace dreamdb::columnar {
namespace {

using Json = nlohmann::ordered_json;

struct Definition {
  const char* name;
  const char* field;   // schema JSON field object
  const char* values;  // JSON list
};

const Definition kDefinitions[] = {
    {"int64 with nulls", R"({"name":"n","type":"int64","optional":true})",
     R"([1, null, -3, 9223372036854775807, -9223372036854775808, null, 0, 42, 7])"},
    {"int64 empty", R"({"name":"n","type":"int64"})", R"([])"},
    {"float64", R"({"name":"x","type":"float64"})",
     R"([0.0, -0.0, 1.5, -2.25, 1e300, 3.141592653589793])"},
    {"bool with a null", R"({"name":"ok","type":"bool","optional":true})",
     R"([true, false, null, true])"},
    {"timestamp", R"({"name":"t","type":"timestamp"})", R"([1700000000000000000, -1])"},
    {"string", R"({"name":"s","type":"string","optional":true})",
     R"(["hello", "", "w\u00f6rld", null, "x"])"},
    {"categorical", R"({"name":"label","type":"categorical","optional":true})",
     R"(["cat", "dog", "cat", null, "bird", "dog"])"},
    {"blob", R"({"name":"img","type":"blob","mime":"image/png"})",
     R"(["89504e470d0a1a0a", "", "00ff"])"},
    {"embedding dim 4", R"({"name":"emb","type":"embedding","dim":4,"optional":true})",
     R"([[0.5, -1.25, 3.0, 0.0], null, [1.0, 2.0, 4.0, 8.0]])"},
    {"array u8 [2,3]", R"({"name":"px","type":"array","dtype":"u8","shape":[2,3]})",
     R"([[[1, 2, 3], [4, 5, 6]], [[255, 0, 7], [8, 9, 10]]])"},
};

std::filesystem::path VectorsPath() {
  const char* src = std::getenv("DREAMDB_SOURCE_DIR");
  std::filesystem::path root =
      src != nullptr ? std::filesystem::path(src)
                     : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return root / "spec" / "vectors" / "segments" / "segments.json";
}

Result<FieldSpec> FieldFromJson(const std::string& field_json) {
  ASSIGN_OR_RETURN(Schema s, Schema::FromJson("{\"fields\":[" + field_json + "]}"));
  return s.fields()[0];
}

template <typename T>
void AppendScalar(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// Appends the leaves of a nested list (row-major) as `dtype`.
Status AppendArrayLeaves(const Json& v, const FieldSpec& f, size_t depth, std::string* out) {
  if (depth < f.shape.size()) {
    if (!v.is_array() || v.size() != f.shape[depth]) {
      return InvalidArgument("array value does not match the shape at depth " +
                             std::to_string(depth));
    }
    for (const Json& e : v) RETURN_IF_ERROR(AppendArrayLeaves(e, f, depth + 1, out));
    return Status::Ok();
  }
  if (!v.is_number()) return InvalidArgument("array leaf is not a number");
  switch (f.dtype) {
    case DType::kU8: AppendScalar(out, v.get<uint8_t>()); break;
    case DType::kI8: AppendScalar(out, v.get<int8_t>()); break;
    case DType::kU16: AppendScalar(out, v.get<uint16_t>()); break;
    case DType::kI16: AppendScalar(out, v.get<int16_t>()); break;
    case DType::kU32: AppendScalar(out, v.get<uint32_t>()); break;
    case DType::kI32: AppendScalar(out, v.get<int32_t>()); break;
    case DType::kU64: AppendScalar(out, v.get<uint64_t>()); break;
    case DType::kI64: AppendScalar(out, v.get<int64_t>()); break;
    case DType::kF32: AppendScalar(out, v.get<float>()); break;
    case DType::kF64: AppendScalar(out, v.get<double>()); break;
  }
  return Status::Ok();
}

Result<Column> ColumnFromJson(const FieldSpec& f, const Json& values) {
  Column c(f);
  for (const Json& v : values) {
    if (v.is_null()) {
      c.AppendNull();
      continue;
    }
    switch (f.type) {
      case FieldType::kInt64:
      case FieldType::kTimestamp:
        c.AppendInt64(v.get<int64_t>());
        break;
      case FieldType::kFloat64:
        c.AppendFloat64(v.get<double>());
        break;
      case FieldType::kBool:
        c.AppendBool(v.get<bool>());
        break;
      case FieldType::kString:
      case FieldType::kCategorical:
        c.AppendBytes(v.get<std::string>());
        break;
      case FieldType::kBlob: {
        auto bytes = HexDecode(v.get<std::string>());
        if (!bytes) return InvalidArgument("blob value is not hex");
        c.AppendBytes(*bytes);
        break;
      }
      case FieldType::kEmbedding: {
        std::vector<float> floats;
        for (const Json& x : v) floats.push_back(x.get<float>());
        if (floats.size() != f.dim) return InvalidArgument("embedding of the wrong dim");
        c.AppendFloats(floats);
        break;
      }
      case FieldType::kArray: {
        std::string bytes;
        RETURN_IF_ERROR(AppendArrayLeaves(v, f, 0, &bytes));
        c.AppendFixedBytes(bytes);
        break;
      }
    }
  }
  return c;
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

Json ArrayLeavesToJson(const FieldSpec& f, const char** p, size_t depth) {
  Json out = Json::array();
  for (uint32_t i = 0; i < f.shape[depth]; ++i) {
    if (depth + 1 < f.shape.size()) {
      out.push_back(ArrayLeavesToJson(f, p, depth + 1));
      continue;
    }
    switch (f.dtype) {
      case DType::kU8: out.push_back(Load<uint8_t>(*p)); break;
      case DType::kI8: out.push_back(Load<int8_t>(*p)); break;
      case DType::kU16: out.push_back(Load<uint16_t>(*p)); break;
      case DType::kI16: out.push_back(Load<int16_t>(*p)); break;
      case DType::kU32: out.push_back(Load<uint32_t>(*p)); break;
      case DType::kI32: out.push_back(Load<int32_t>(*p)); break;
      case DType::kU64: out.push_back(Load<uint64_t>(*p)); break;
      case DType::kI64: out.push_back(Load<int64_t>(*p)); break;
      case DType::kF32: out.push_back(Load<float>(*p)); break;
      case DType::kF64: out.push_back(Load<double>(*p)); break;
    }
    *p += DTypeSize(f.dtype);
  }
  return out;
}

Json ColumnToJson(const Column& c) {
  Json out = Json::array();
  const FieldSpec& f = c.field();
  for (uint64_t r = 0; r < c.length(); ++r) {
    if (!c.IsValid(r)) {
      out.push_back(nullptr);
      continue;
    }
    switch (f.type) {
      case FieldType::kInt64:
      case FieldType::kTimestamp:
        out.push_back(c.Int64At(r));
        break;
      case FieldType::kFloat64:
        out.push_back(c.Float64At(r));
        break;
      case FieldType::kBool:
        out.push_back(c.BoolAt(r));
        break;
      case FieldType::kString:
      case FieldType::kCategorical:
        out.push_back(std::string(c.BytesAt(r)));
        break;
      case FieldType::kBlob:
        out.push_back(HexEncode(c.BytesAt(r)));
        break;
      case FieldType::kEmbedding: {
        Json e = Json::array();
        for (float x : c.FloatsAt(r)) e.push_back(x);
        out.push_back(std::move(e));
        break;
      }
      case FieldType::kArray: {
        const char* p = c.FixedAt(r).data();
        out.push_back(ArrayLeavesToJson(f, &p, 0));
        break;
      }
    }
  }
  return out;
}

// The vectors as this build produces them.
Json Generate() {
  Json vectors = Json::array();
  for (const Definition& d : kDefinitions) {
    auto field = FieldFromJson(d.field);
    EXPECT_TRUE(field.ok()) << d.name << ": " << field.status().ToString();
    if (!field.ok()) continue;
    Json values = Json::parse(d.values);
    auto column = ColumnFromJson(*field, values);
    EXPECT_TRUE(column.ok()) << d.name << ": " << column.status().ToString();
    if (!column.ok()) continue;
    auto bytes = EncodeSegment(*column);
    EXPECT_TRUE(bytes.ok()) << d.name << ": " << bytes.status().ToString();
    if (!bytes.ok()) continue;
    Json v = Json::object();
    v["name"] = d.name;
    v["field"] = Json::parse(d.field);
    v["rows"] = column->length();
    v["values"] = values;
    v["size"] = bytes->size();
    v["hex"] = HexEncode(*bytes);
    vectors.push_back(std::move(v));
  }
  Json doc = Json::object();
  doc["spec"] = "spec/12-segments.md";
  doc["generator"] = "src/columnar/segment_vectors_test.cc (DREAMDB_UPDATE_VECTORS=1)";
  doc["value_forms"] =
      "int64/timestamp: integer; float64: number; bool: true/false; string/categorical: text; "
      "blob: lowercase hex; embedding: list of numbers (float32); array: nested lists, "
      "row-major; null: a null row";
  doc["vectors"] = std::move(vectors);
  return doc;
}

TEST(SegmentVectors, MatchTheFile) {
  const std::filesystem::path path = VectorsPath();
  Json generated = Generate();
  if (std::getenv("DREAMDB_UPDATE_VECTORS") != nullptr) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path);
    out << generated.dump(1) << "\n";
    ASSERT_TRUE(out.good()) << path;
    GTEST_SKIP() << "wrote " << path;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  Json doc = Json::parse(text.str());
  const Json& vectors = doc["vectors"];
  ASSERT_EQ(vectors.size(), std::size(kDefinitions)) << "stale file: regenerate it";

  for (const Json& v : vectors) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE(name);
    auto field = FieldFromJson(v["field"].dump());
    ASSERT_TRUE(field.ok()) << field.status().ToString();
    auto bytes = HexDecode(v["hex"].get<std::string>());
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(bytes->size(), v["size"].get<uint64_t>());

    // decode(hex) == values
    auto decoded = DecodeSegment(*bytes, *field);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->length(), v["rows"].get<uint64_t>());
    EXPECT_EQ(ColumnToJson(*decoded), v["values"]);

    // encode(values) == hex
    auto column = ColumnFromJson(*field, v["values"]);
    ASSERT_TRUE(column.ok()) << column.status().ToString();
    auto encoded = EncodeSegment(*column);
    ASSERT_TRUE(encoded.ok());
    EXPECT_EQ(HexEncode(*encoded), v["hex"].get<std::string>());
  }
  // The file lists what this build generates (same names, values and bytes).
  EXPECT_EQ(doc["vectors"], generated["vectors"]) << "stale file: regenerate it";
}

}  // namespace
}  // namespace dreamdb::columnar
