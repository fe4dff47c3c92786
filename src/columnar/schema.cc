// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Schema validation, evolution and the JSON form (spec/10-schema.md).

#include "dreamdb/schema.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/index_kinds.h"
#include "src/base/encoding.h"
#include "src/columnar/schema_limits.h"

namespace dreamdb {
namespace {

struct TypeEntry {
  FieldType type;
  std::string_view name;
};
constexpr std::array<TypeEntry, 9> kTypes = {{
    {FieldType::kInt64, "int64"},
    {FieldType::kFloat64, "float64"},
    {FieldType::kBool, "bool"},
    {FieldType::kString, "string"},
    {FieldType::kCategorical, "categorical"},
    {FieldType::kTimestamp, "timestamp"},
    {FieldType::kBlob, "blob"},
    {FieldType::kEmbedding, "embedding"},
    {FieldType::kArray, "array"},
}};

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeEntry, 10> kDTypes = {{
    {DType::kU8, "u8", 1},
    {DType::kI8, "i8", 1},
    {DType::kU16, "u16", 2},
    {DType::kI16, "i16", 2},
    {DType::kU32, "u32", 4},
    {DType::kI32, "i32", 4},
    {DType::kU64, "u64", 8},
    {DType::kI64, "i64", 8},
    {DType::kF32, "f32", 4},
    {DType::kF64, "f64", 8},
}};

std::string TypeList() {
  std::string out;
  for (const auto& e : kTypes) {
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out;
}

std::string DTypeList() {
  std::string out;
  for (const auto& e : kDTypes) {
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out;
}

std::string FieldPrefix(std::string_view name) { return "field " + Quote(name) + ": "; }

// The type with its parameters, as named in evolution errors: "embedding(dim=768)".
std::string TypeDescription(const FieldSpec& f) {
  std::string out(FieldTypeName(f.type));
  if (f.type == FieldType::kEmbedding) {
    out += "(dim=" + std::to_string(f.dim) + ")";
  } else if (f.type == FieldType::kArray) {
    out += "(" + std::string(DTypeName(f.dtype)) + ", [";
    for (size_t i = 0; i < f.shape.size(); ++i) {
      if (i > 0) out += ",";
      out += std::to_string(f.shape[i]);
    }
    out += "])";
  }
  return out;
}

// Same stored representation: type and the parameters that shape the values.
bool SameStorage(const FieldSpec& a, const FieldSpec& b) {
  if (a.type != b.type) return false;
  if (a.type == FieldType::kEmbedding) return a.dim == b.dim;
  if (a.type == FieldType::kArray) return a.dtype == b.dtype && a.shape == b.shape;
  return true;
}

Status ValidateMime(std::string_view name, std::string_view mime) {
  if (mime.empty() || mime.size() > columnar::kMaxMimeBytes) {
    return InvalidArgument(FieldPrefix(name) + "mime type must be 1 to " +
                           std::to_string(columnar::kMaxMimeBytes) + " bytes, got " +
                           std::to_string(mime.size()));
  }
  for (unsigned char c : mime) {
    if (c < 0x20 || c > 0x7e) {
      return InvalidArgument(FieldPrefix(name) + "mime type " + Quote(mime) +
                             " must be printable ASCII");
    }
  }
  if (mime.find('/') == std::string_view::npos || mime.front() == '/') {
    return InvalidArgument(FieldPrefix(name) + "mime type " + Quote(mime) +
                           " must have the form type/subtype");
  }
  return Status::Ok();
}

// The declared vector index of an embedding field (spec/21-spatial-index.md §2).
Status ValidateIndexSpec(const FieldSpec& f) {
  if (!f.index) return Status::Ok();
  const std::string prefix = FieldPrefix(f.name);
  if (f.type != FieldType::kEmbedding) {
    return InvalidArgument(prefix + "index applies only to embedding fields, not " +
                           std::string(FieldTypeName(f.type)));
  }
  const IndexSpec& ix = *f.index;
  const Result<IndexAlgorithm> algorithm = ParseIndexAlgorithm(ix.algorithm);
  if (!algorithm.ok()) {
    return InvalidArgument(prefix + "unknown index algorithm " + Quote(ix.algorithm) +
                           " (expected \"ivf\", \"imi\", \"lsh\" or \"graph\")");
  }
  const Result<Quantizer> quantizer = ParseQuantizer(ix.quantizer);
  if (!quantizer.ok()) {
    return InvalidArgument(prefix + "unknown index quantizer " + Quote(ix.quantizer) +
                           " (expected rabitq or pq4)");
  }
  if (!SupportsQuantizer(*algorithm, *quantizer)) {
    return InvalidArgument(prefix +
                           "index quantizer \"pq4\" does not apply to \"graph\" (graph nodes "
                           "carry RaBitQ codes); use ivf, imi or lsh with pq4");
  }
  if (!IsCanonicalMetricName(ix.metric)) {
    return InvalidArgument(prefix + "unknown index metric " + Quote(ix.metric) +
                           " (expected cosine, ip or l2)");
  }
  if (ix.bits < 1 || ix.bits > 8) {
    return InvalidArgument(prefix + "index bits must be 1 to 8, got " + std::to_string(ix.bits));
  }
  return Status::Ok();
}

// Validates `f` and normalizes the parameters its type does not use (so that equal fields
// compare equal): blob mime defaults to application/octet-stream, dtype resets to f32.
Status ValidateAndNormalize(FieldSpec* f) {
  RETURN_IF_ERROR(ValidateFieldName(f->name));
  const std::string prefix = FieldPrefix(f->name);
  if (static_cast<size_t>(f->type) >= kTypes.size()) {
    return InvalidArgument(prefix + "unknown type code " +
                           std::to_string(static_cast<int>(f->type)));
  }
  if (f->type == FieldType::kBlob) {
    if (f->mime.empty()) f->mime = "application/octet-stream";
    RETURN_IF_ERROR(ValidateMime(f->name, f->mime));
  } else if (!f->mime.empty()) {
    return InvalidArgument(prefix + "mime applies only to blob fields, not " +
                           std::string(FieldTypeName(f->type)));
  }
  if (f->type == FieldType::kEmbedding) {
    if (f->dim < 1 || f->dim > columnar::kMaxEmbeddingDim) {
      return InvalidArgument(prefix + "embedding dim must be 1 to " +
                             std::to_string(columnar::kMaxEmbeddingDim) + ", got " +
                             std::to_string(f->dim));
    }
  } else if (f->dim != 0) {
    return InvalidArgument(prefix + "dim applies only to embedding fields, not " +
                           std::string(FieldTypeName(f->type)));
  }
  if (f->type == FieldType::kArray) {
    if (static_cast<size_t>(f->dtype) >= kDTypes.size()) {
      return InvalidArgument(prefix + "unknown dtype code " +
                             std::to_string(static_cast<int>(f->dtype)));
    }
    if (f->shape.empty() || f->shape.size() > columnar::kMaxArrayRank) {
      return InvalidArgument(prefix + "array shape must have 1 to " +
                             std::to_string(columnar::kMaxArrayRank) + " dimensions, got " +
                             std::to_string(f->shape.size()));
    }
    uint64_t bytes = DTypeSize(f->dtype);
    for (size_t i = 0; i < f->shape.size(); ++i) {
      if (f->shape[i] == 0) {
        return InvalidArgument(prefix + "array shape dimension " + std::to_string(i) +
                               " is 0; every dimension must be >= 1");
      }
      bytes *= f->shape[i];  // <= 2^24 * 2^32: no overflow before the check below
      if (bytes > columnar::kMaxValueBytes) {
        return InvalidArgument(prefix + "array value size exceeds " +
                               std::to_string(columnar::kMaxValueBytes) + " bytes (16 MiB)");
      }
    }
  } else {
    if (!f->shape.empty()) {
      return InvalidArgument(prefix + "shape applies only to array fields, not " +
                             std::string(FieldTypeName(f->type)));
    }
    f->dtype = DType::kF32;
  }
  RETURN_IF_ERROR(ValidateIndexSpec(*f));
  return Status::Ok();
}

// ---- JSON ----

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

Status JsonError(const std::string& message) { return InvalidArgument("schema JSON: " + message); }

// A schema is a few levels deep; deeper input is hostile or broken (spec/10-schema.md §5).
constexpr int kMaxSchemaJsonDepth = 32;

Status TooDeep() {
  return JsonError("nested more than " + std::to_string(kMaxSchemaJsonDepth) + " levels deep");
}

// Parses `text`, refusing duplicate object keys (nlohmann keeps the last one silently).
Result<Json> ParseJsonStrict(std::string_view text) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  bool too_deep = false;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (too_deep) return false;
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        // Refused while parsing, before anything walks the document recursively; the
        // parser discards what lies inside (spec/10-schema.md §5).
        if (depth >= kMaxSchemaJsonDepth) {
          too_deep = true;
          return false;
        }
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json doc;
  try {
    doc = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    if (too_deep) return TooDeep();
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    if (size_t close = what.find("] ");
        !what.empty() && what[0] == '[' && close != std::string::npos) {
      what = what.substr(close + 2);
    }
    return JsonError(what);
  }
  if (too_deep) return TooDeep();
  if (!duplicate.empty()) return JsonError("duplicate key " + Quote(duplicate));
  return doc;
}

Result<uint32_t> JsonU32(const Json& v, std::string_view what) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    return JsonError(std::string(what) + " must be a non-negative integer, got " + v.dump());
  }
  uint64_t u = v.get<uint64_t>();
  if (u > UINT32_MAX) {
    return JsonError(std::string(what) + " is too large: " + std::to_string(u));
  }
  return static_cast<uint32_t>(u);
}

Result<FieldSpec> FieldFromJson(const Json& j, size_t index) {
  const std::string where = "fields[" + std::to_string(index) + "]";
  if (!j.is_object()) return JsonError(where + " must be an object, got " + j.dump());
  auto name_it = j.find("name");
  if (name_it == j.end()) return JsonError(where + " has no \"name\"");
  if (!name_it->is_string()) return JsonError(where + ".name must be a string");
  FieldSpec f;
  f.name = name_it->get<std::string>();
  const std::string prefix = "field " + Quote(f.name) + ": ";
  auto type_it = j.find("type");
  if (type_it == j.end()) return JsonError(prefix + "missing \"type\"");
  if (!type_it->is_string()) return JsonError(prefix + "\"type\" must be a string");
  {
    Result<FieldType> t = ParseFieldType(type_it->get<std::string>());
    if (!t.ok()) return JsonError(prefix + t.status().message());
    f.type = *t;
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "name" || key == "type") continue;
    if (key == "optional") {
      if (!value.is_boolean()) return JsonError(prefix + "\"optional\" must be true or false");
      f.optional = value.get<bool>();
    } else if (key == "mime") {
      if (f.type != FieldType::kBlob) {
        return JsonError(prefix + "key \"mime\" is only allowed for blob fields");
      }
      if (!value.is_string()) return JsonError(prefix + "\"mime\" must be a string");
      f.mime = value.get<std::string>();
      if (f.mime.empty()) return JsonError(prefix + "\"mime\" must not be empty");
    } else if (key == "dim") {
      if (f.type != FieldType::kEmbedding) {
        return JsonError(prefix + "key \"dim\" is only allowed for embedding fields");
      }
      ASSIGN_OR_RETURN(f.dim, JsonU32(value, prefix + "\"dim\""));
      if (f.dim == 0) return JsonError(prefix + "embedding dim must be >= 1, got 0");
    } else if (key == "dtype") {
      if (f.type != FieldType::kArray) {
        return JsonError(prefix + "key \"dtype\" is only allowed for array fields");
      }
      if (!value.is_string()) return JsonError(prefix + "\"dtype\" must be a string");
      Result<DType> d = ParseDType(value.get<std::string>());
      if (!d.ok()) return JsonError(prefix + d.status().message());
      f.dtype = *d;
    } else if (key == "shape") {
      if (f.type != FieldType::kArray) {
        return JsonError(prefix + "key \"shape\" is only allowed for array fields");
      }
      if (!value.is_array()) return JsonError(prefix + "\"shape\" must be a list of integers");
      for (const Json& d : value) {
        ASSIGN_OR_RETURN(uint32_t n, JsonU32(d, prefix + "shape entry"));
        f.shape.push_back(n);
      }
      if (f.shape.empty()) return JsonError(prefix + "array shape must not be empty");
    } else if (key == "index") {
      if (f.type != FieldType::kEmbedding) {
        return JsonError(prefix + "key \"index\" is only allowed for embedding fields");
      }
      if (!value.is_object()) {
        return JsonError(prefix + "\"index\" must be an object like {\"algorithm\": \"ivf\"}");
      }
      IndexSpec ix;
      for (const auto& [ikey, ivalue] : value.items()) {
        if (ikey == "algorithm" || ikey == "metric" || ikey == "quantizer") {
          if (!ivalue.is_string()) return JsonError(prefix + "index." + ikey + " must be a string");
          (ikey == "algorithm" ? ix.algorithm : (ikey == "metric" ? ix.metric : ix.quantizer)) =
              ivalue.get<std::string>();
        } else if (ikey == "bits") {
          ASSIGN_OR_RETURN(ix.bits, JsonU32(ivalue, prefix + "index.bits"));
        } else if (ikey == "cells") {
          ASSIGN_OR_RETURN(ix.cells, JsonU32(ivalue, prefix + "index.cells"));
        } else if (ikey == "raw") {
          if (!ivalue.is_boolean()) return JsonError(prefix + "index.raw must be true or false");
          ix.keep_raw = ivalue.get<bool>();
        } else {
          return JsonError(prefix + "unknown index key " + Quote(ikey) +
                           " (expected algorithm, metric, bits, cells, raw, quantizer)");
        }
      }
      f.index = ix;
    } else if (key == "unit") {
      if (f.type != FieldType::kTimestamp) {
        return JsonError(prefix + "key \"unit\" is only allowed for timestamp fields");
      }
      if (!value.is_string() || value.get<std::string>() != "ns") {
        return JsonError(prefix + "timestamp unit must be \"ns\", got " + value.dump());
      }
    } else {
      return JsonError(prefix + "unknown key " + Quote(key) +
                       " (expected name, type, optional, mime, dim, dtype, shape, unit, index)");
    }
  }
  if (f.type == FieldType::kEmbedding && !j.contains("dim")) {
    return JsonError(prefix + "embedding field needs \"dim\"");
  }
  if (f.type == FieldType::kArray) {
    if (!j.contains("dtype")) return JsonError(prefix + "array field needs \"dtype\"");
    if (!j.contains("shape")) return JsonError(prefix + "array field needs \"shape\"");
  }
  return f;
}

}  // namespace

std::string_view FieldTypeName(FieldType t) {
  for (const auto& e : kTypes) {
    if (e.type == t) return e.name;
  }
  return "unknown";
}

Result<FieldType> ParseFieldType(std::string_view name) {
  for (const auto& e : kTypes) {
    if (e.name == name) return e.type;
  }
  return InvalidArgument("unknown type " + Quote(name) + " (expected one of " + TypeList() + ")");
}

std::string_view DTypeName(DType t) {
  for (const auto& e : kDTypes) {
    if (e.dtype == t) return e.name;
  }
  return "unknown";
}

Result<DType> ParseDType(std::string_view name) {
  for (const auto& e : kDTypes) {
    if (e.name == name) return e.dtype;
  }
  return InvalidArgument("unknown dtype " + Quote(name) + " (expected one of " + DTypeList() + ")");
}

size_t DTypeSize(DType t) {
  for (const auto& e : kDTypes) {
    if (e.dtype == t) return e.size;
  }
  return 0;
}

size_t FieldSpec::FixedWidth() const {
  switch (type) {
    case FieldType::kInt64:
    case FieldType::kFloat64:
    case FieldType::kTimestamp:
      return 8;
    case FieldType::kBool:
      return 1;
    case FieldType::kEmbedding:
      return size_t{4} * dim;
    case FieldType::kArray: {
      uint64_t n = DTypeSize(dtype);
      for (uint32_t d : shape) {
        n *= d;
        if (n > columnar::kMaxValueBytes) return 0;  // invalid spec: never fixed-width
      }
      return shape.empty() ? 0 : n;
    }
    case FieldType::kString:
    case FieldType::kCategorical:
    case FieldType::kBlob:
      return 0;
  }
  return 0;
}

Status ValidateFieldName(std::string_view name) {
  if (name.empty() || name.size() > columnar::kMaxFieldNameChars) {
    return InvalidArgument("invalid field name " + Quote(name) + ": must be 1 to " +
                           std::to_string(columnar::kMaxFieldNameChars) + " characters");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return InvalidArgument("invalid field name " + Quote(name) + ": character " +
                             Quote(name.substr(i, 1)) + " at position " + std::to_string(i) +
                             " is not one of [A-Za-z0-9_]");
    }
  }
  if (name[0] >= '0' && name[0] <= '9') {
    return InvalidArgument("invalid field name " + Quote(name) + ": must not start with a digit");
  }
  if (name == "anchor") {
    return InvalidArgument("invalid field name 'anchor': reserved (every record has an anchor)");
  }
  return Status::Ok();
}

Status Schema::Add(FieldSpec field) {
  RETURN_IF_ERROR(ValidateAndNormalize(&field));
  if (Find(field.name) != nullptr) {
    return InvalidArgument("duplicate field name " + Quote(field.name));
  }
  if (fields_.size() >= columnar::kMaxFields) {
    return InvalidArgument("too many fields: a schema holds at most " +
                           std::to_string(columnar::kMaxFields));
  }
  fields_.push_back(std::move(field));
  return Status::Ok();
}

namespace {
FieldSpec Spec(std::string name, FieldType type, bool optional) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.optional = optional;
  return f;
}
}  // namespace

Status Schema::AddInt64(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kInt64, optional));
}
Status Schema::AddFloat64(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kFloat64, optional));
}
Status Schema::AddBool(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kBool, optional));
}
Status Schema::AddString(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kString, optional));
}
Status Schema::AddCategorical(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kCategorical, optional));
}
Status Schema::AddTimestamp(std::string name, bool optional) {
  return Add(Spec(std::move(name), FieldType::kTimestamp, optional));
}
Status Schema::AddBlob(std::string name, std::string mime, bool optional) {
  FieldSpec f = Spec(std::move(name), FieldType::kBlob, optional);
  if (mime.empty()) return InvalidArgument(FieldPrefix(f.name) + "mime type must not be empty");
  f.mime = std::move(mime);
  return Add(std::move(f));
}
Status Schema::AddEmbedding(std::string name, uint32_t dim, bool optional) {
  FieldSpec f = Spec(std::move(name), FieldType::kEmbedding, optional);
  if (dim == 0) return InvalidArgument(FieldPrefix(f.name) + "embedding dim must be >= 1, got 0");
  f.dim = dim;
  return Add(std::move(f));
}
Status Schema::AddArray(std::string name, DType dtype, std::vector<uint32_t> shape, bool optional) {
  FieldSpec f = Spec(std::move(name), FieldType::kArray, optional);
  f.dtype = dtype;
  f.shape = std::move(shape);
  return Add(std::move(f));
}

Result<Schema> Schema::WithAddedField(FieldSpec field) const {
  if (!field.optional) {
    return InvalidArgument("cannot add required field " + Quote(field.name) +
                           ": fields added to an existing schema must be optional "
                           "(existing records have no value for them)");
  }
  if (version_ == UINT32_MAX) return InvalidArgument("schema version overflow");
  Schema next = *this;
  RETURN_IF_ERROR(next.Add(std::move(field)));
  next.version_ = version_ + 1;
  return next;
}

Result<Schema> Schema::WithDroppedField(std::string_view name) const {
  auto it = std::find_if(fields_.begin(), fields_.end(),
                         [&](const FieldSpec& f) { return f.name == name; });
  if (it == fields_.end()) return NotFound("cannot drop field " + Quote(name) + ": no such field");
  if (version_ == UINT32_MAX) return InvalidArgument("schema version overflow");
  Schema next = *this;
  next.fields_.erase(next.fields_.begin() + (it - fields_.begin()));
  next.version_ = version_ + 1;
  return next;
}

Status Schema::CheckEvolution(const Schema& next) const {
  for (const FieldSpec& f : next.fields()) {
    // `next` may have been assembled field by field: validate it as Add would.
    FieldSpec copy = f;
    RETURN_IF_ERROR(ValidateAndNormalize(&copy));
    const FieldSpec* old = Find(f.name);
    if (old == nullptr) {
      if (!f.optional) {
        return InvalidArgument("field " + Quote(f.name) +
                               ": added fields must be optional (existing records have no "
                               "value for it)");
      }
      continue;
    }
    if (!SameStorage(*old, f)) {
      return InvalidArgument("field " + Quote(f.name) + ": type change from " +
                             TypeDescription(*old) + " to " + TypeDescription(f) +
                             " is not allowed (drop the field, then add it again as a new field)");
    }
    if (old->optional && !f.optional) {
      return InvalidArgument("field " + Quote(f.name) +
                             ": cannot make an optional field required (existing records may "
                             "have no value)");
    }
  }
  for (size_t i = 0; i < next.fields().size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (next.fields()[i].name == next.fields()[j].name) {
        return InvalidArgument("duplicate field name " + Quote(next.fields()[i].name));
      }
    }
  }
  return Status::Ok();
}

const FieldSpec* Schema::Find(std::string_view name) const {
  for (const FieldSpec& f : fields_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Result<Schema> Schema::FromJson(std::string_view json) {
  ASSIGN_OR_RETURN(Json doc, ParseJsonStrict(json));
  if (!doc.is_object()) return JsonError("top level must be an object with \"fields\"");
  Schema schema;
  bool have_fields = false;
  for (const auto& [key, value] : doc.items()) {
    if (key == "fields") {
      have_fields = true;
      if (!value.is_array()) return JsonError("\"fields\" must be a list");
      size_t index = 0;
      for (const Json& jf : value) {
        ASSIGN_OR_RETURN(FieldSpec f, FieldFromJson(jf, index));
        Status s = schema.Add(std::move(f));
        if (!s.ok()) return JsonError(s.message());
        ++index;
      }
    } else if (key == "version") {
      ASSIGN_OR_RETURN(uint32_t v, JsonU32(value, "\"version\""));
      if (v == 0) return JsonError("\"version\" must be >= 1");
      schema.version_ = v;
    } else {
      return JsonError("unknown top-level key " + Quote(key) + " (expected fields, version)");
    }
  }
  if (!have_fields) return JsonError("missing \"fields\"");
  return schema;
}

std::string Schema::ToJson() const {
  OrderedJson fields = OrderedJson::array();
  for (const FieldSpec& f : fields_) {
    OrderedJson jf = OrderedJson::object();
    jf["name"] = f.name;
    jf["type"] = std::string(FieldTypeName(f.type));
    switch (f.type) {
      case FieldType::kBlob:
        jf["mime"] = f.mime;
        break;
      case FieldType::kEmbedding:
        jf["dim"] = f.dim;
        if (f.index) {
          OrderedJson ix = OrderedJson::object();
          ix["algorithm"] = f.index->algorithm;
          ix["metric"] = f.index->metric;
          ix["bits"] = f.index->bits;
          ix["cells"] = f.index->cells;
          if (!f.index->keep_raw) ix["raw"] = false;
          if (f.index->quantizer != "rabitq") ix["quantizer"] = f.index->quantizer;
          jf["index"] = std::move(ix);
        }
        break;
      case FieldType::kArray:
        jf["dtype"] = std::string(DTypeName(f.dtype));
        jf["shape"] = f.shape;
        break;
      default:
        break;
    }
    jf["optional"] = f.optional;
    fields.push_back(std::move(jf));
  }
  OrderedJson doc = OrderedJson::object();
  doc["version"] = version_;
  doc["fields"] = std::move(fields);
  return doc.dump();
}

}  // namespace dreamdb
