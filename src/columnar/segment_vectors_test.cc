// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Golden segment vectors (spec/vectors/segments/segments.json, spec/12-segments.md §9).
//
// Each vector holds a field (schema JSON form), the column's values as JSON and the
// segment bytes as hex, written by an independent encoder (spec/vectors/segments/
// generate.py, checksums by Debian's b3sum). This test checks decode(hex) == values
// through DecodeSegment and through a SegmentReader (all rows at once, and each row alone),
// for every format a reader reads (1, 2 and 3), and encode(values) == hex for the format
// writers write (3).
//
// JSON value forms: int64/timestamp integers; float64 numbers; bool true/false;
// string/categorical text; blob lowercase hex; embedding a list of numbers; array nested
// lists in row-major order; null for a null row.

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "src/base/encoding.h"
#include "src/columnar/segment.h"

namespace dreamdb::columnar {
namespace {

using Json = nlohmann::ordered_json;

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
    case DType::kU8:
      AppendScalar(out, v.get<uint8_t>());
      break;
    case DType::kI8:
      AppendScalar(out, v.get<int8_t>());
      break;
    case DType::kU16:
      AppendScalar(out, v.get<uint16_t>());
      break;
    case DType::kI16:
      AppendScalar(out, v.get<int16_t>());
      break;
    case DType::kU32:
      AppendScalar(out, v.get<uint32_t>());
      break;
    case DType::kI32:
      AppendScalar(out, v.get<int32_t>());
      break;
    case DType::kU64:
      AppendScalar(out, v.get<uint64_t>());
      break;
    case DType::kI64:
      AppendScalar(out, v.get<int64_t>());
      break;
    case DType::kF32:
      AppendScalar(out, v.get<float>());
      break;
    case DType::kF64:
      AppendScalar(out, v.get<double>());
      break;
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
      case DType::kU8:
        out.push_back(Load<uint8_t>(*p));
        break;
      case DType::kI8:
        out.push_back(Load<int8_t>(*p));
        break;
      case DType::kU16:
        out.push_back(Load<uint16_t>(*p));
        break;
      case DType::kI16:
        out.push_back(Load<int16_t>(*p));
        break;
      case DType::kU32:
        out.push_back(Load<uint32_t>(*p));
        break;
      case DType::kI32:
        out.push_back(Load<int32_t>(*p));
        break;
      case DType::kU64:
        out.push_back(Load<uint64_t>(*p));
        break;
      case DType::kI64:
        out.push_back(Load<int64_t>(*p));
        break;
      case DType::kF32:
        out.push_back(Load<float>(*p));
        break;
      case DType::kF64:
        out.push_back(Load<double>(*p));
        break;
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

TEST(SegmentVectors, MatchTheFile) {
  const std::filesystem::path path = VectorsPath();
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  Json doc = Json::parse(text.str());
  const Json& vectors = doc["vectors"];
  std::set<std::string> types;
  std::set<std::string> types_3;
  std::set<uint64_t> formats;
  int sq8_vectors = 0;

  for (const Json& v : vectors) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE(name);
    auto field = FieldFromJson(v["field"].dump());
    ASSERT_TRUE(field.ok()) << field.status().ToString();
    types.insert(std::string(FieldTypeName(field->type)));
    const uint64_t format = v["format"].get<uint64_t>();
    formats.insert(format);
    if (format == 3) types_3.insert(std::string(FieldTypeName(field->type)));
    auto bytes = HexDecode(v["hex"].get<std::string>());
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(bytes->size(), v["size"].get<uint64_t>());

    // decode(hex) == values (sq8, format 2: == decoded, the reconstructions)
    const bool sq8 = v.contains("decoded");
    EXPECT_EQ(sq8, UsesSq8(*field));
    const Json& want = sq8 ? v["decoded"] : v["values"];
    if (sq8) sq8_vectors++;
    auto decoded = DecodeSegment(*bytes, *field);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->length(), v["rows"].get<uint64_t>());
    EXPECT_EQ(ColumnToJson(*decoded), want);
    columnar::FetchRange fetch = [&](uint64_t offset, uint64_t length) -> Result<Bytes> {
      return bytes->substr(offset, length);
    };
    auto reader = SegmentReader::Open(fetch, *field);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<uint32_t> all_rows(decoded->length());
    for (uint32_t i = 0; i < all_rows.size(); ++i) all_rows[i] = i;
    auto ranged = reader->ReadRows(all_rows);
    ASSERT_TRUE(ranged.ok()) << ranged.status().ToString();
    EXPECT_EQ(ColumnToJson(*ranged), want);
    // One row at a time: each read fetches only that row's blocks (in format 3 a
    // variable-width value's block is found through its offsets entries).
    for (uint32_t r : all_rows) {
      auto one = reader->ReadRows({r});
      ASSERT_TRUE(one.ok()) << "row " << r << ": " << one.status().ToString();
      EXPECT_EQ(ColumnToJson(*one)[0], want[r]) << "row " << r;
    }

    // encode(values) == hex, for the format writers write; older formats are read only.
    if (format != 3) continue;
    auto column = ColumnFromJson(*field, v["values"]);
    ASSERT_TRUE(column.ok()) << column.status().ToString();
    auto encoded = EncodeSegment(*column);
    ASSERT_TRUE(encoded.ok());
    EXPECT_EQ(HexEncode(*encoded), v["hex"].get<std::string>());
    if (sq8) {
      // The reconstructions encode to the same bytes, and decode the same whatever the
      // field declares about raw.
      auto again = ColumnFromJson(*field, want);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      EXPECT_EQ(HexEncode(*EncodeSegment(*again)), v["hex"].get<std::string>());
      FieldSpec plain = *field;
      plain.index.reset();
      auto as_plain = DecodeSegment(*bytes, plain);
      ASSERT_TRUE(as_plain.ok()) << as_plain.status().ToString();
      EXPECT_EQ(ColumnToJson(*as_plain), want);
    }
  }
  // Every type has a vector in the format written today, every readable format has
  // vectors, and the sq8 encoding has some.
  EXPECT_EQ(types.size(), 9u);
  EXPECT_EQ(types_3.size(), 9u);
  EXPECT_EQ(formats, (std::set<uint64_t>{1, 2, 3}));
  EXPECT_GE(sq8_vectors, 3);
}

}  // namespace
}  // namespace dreamdb::columnar
