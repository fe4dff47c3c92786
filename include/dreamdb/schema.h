// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Schema: the fields of a dataset's records (spec/10-schema.md).
//
// Thread safety: Schema and FieldSpec are value types.

#ifndef DREAMDB_SCHEMA_H_
#define DREAMDB_SCHEMA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb {

enum class FieldType : uint8_t {
  kInt64,
  kFloat64,
  kBool,
  kString,
  kCategorical,
  kTimestamp,  // int64 nanoseconds since the Unix epoch
  kBlob,       // any bytes, with a MIME type
  kEmbedding,  // float32 x dim
  kArray,      // fixed-shape typed array
};

enum class DType : uint8_t { kU8, kI8, kU16, kI16, kU32, kI32, kU64, kI64, kF32, kF64 };

std::string_view FieldTypeName(FieldType t);  // "int64", "embedding", ...
Result<FieldType> ParseFieldType(std::string_view name);
std::string_view DTypeName(DType t);  // "u8", "f32", ...
Result<DType> ParseDType(std::string_view name);
size_t DTypeSize(DType t);

// A vector index declared on an embedding field (spec/21-spatial-index.md §2). It names
// how `BuildIndex` trains the field's spatial index; absent = no declared index.
struct IndexSpec {
  std::string algorithm = "ivf";  // "ivf", "imi", "lsh" or "graph"
  std::string metric = "cosine";  // "cosine", "ip" or "l2"
  uint32_t bits = 4;              // RaBitQ bits per dimension, 1..8
  uint32_t cells = 0;             // cells; 0 = the algorithm's default (ignored for graph)
  bool keep_raw = true;           // raw vectors stay in the field's segments (false: unsupported)
  std::string quantizer = "rabitq";  // "rabitq" or "pq4" (not with graph)
  bool operator==(const IndexSpec&) const = default;
};

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kInt64;
  bool optional = false;
  std::string mime;                // blob only; default "application/octet-stream"
  uint32_t dim = 0;                // embedding only; >= 1
  DType dtype = DType::kF32;       // array only
  std::vector<uint32_t> shape;     // array only; product >= 1
  std::optional<IndexSpec> index;  // embedding only: the declared vector index

  // Bytes per value for fixed-width types (int64 8, embedding 4*dim, ...); 0 for variable.
  size_t FixedWidth() const;
  bool operator==(const FieldSpec&) const = default;
};

class Schema {
 public:
  Schema() = default;

  // Builders; each validates and returns kInvalidArgument naming the problem.
  Status Add(FieldSpec field);
  Status AddInt64(std::string name, bool optional = false);
  Status AddFloat64(std::string name, bool optional = false);
  Status AddBool(std::string name, bool optional = false);
  Status AddString(std::string name, bool optional = false);
  Status AddCategorical(std::string name, bool optional = false);
  Status AddTimestamp(std::string name, bool optional = false);
  Status AddBlob(std::string name, std::string mime = "application/octet-stream",
                 bool optional = false);
  Status AddEmbedding(std::string name, uint32_t dim, bool optional = false);
  Status AddArray(std::string name, DType dtype, std::vector<uint32_t> shape,
                  bool optional = false);

  // Evolution (spec/10-schema.md §4): returns the evolved schema with version + 1.
  // Adding requires optional = true; dropping an absent field is kNotFound.
  Result<Schema> WithAddedField(FieldSpec field) const;
  Result<Schema> WithDroppedField(std::string_view name) const;
  // OK when `next` is a valid evolution of this schema (additions optional, no type
  // changes); kInvalidArgument naming the field otherwise.
  Status CheckEvolution(const Schema& next) const;

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const FieldSpec* Find(std::string_view name) const;
  uint32_t version() const { return version_; }
  void set_version(uint32_t v) { version_ = v; }

  // JSON as accepted by `dreamdb create --schema` (spec/10-schema.md §5):
  // {"fields": [{"name": "img", "type": "blob", "mime": "image/png"}, ...]}
  static Result<Schema> FromJson(std::string_view json);
  std::string ToJson() const;

  bool operator==(const Schema&) const = default;

 private:
  uint32_t version_ = 1;
  std::vector<FieldSpec> fields_;
};

// OK when `name` is a valid field name.
Status ValidateFieldName(std::string_view name);

}  // namespace dreamdb

#endif  // DREAMDB_SCHEMA_H_
