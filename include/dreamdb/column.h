// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Column and Batch: records in columnar form, laid out as Arrow arrays so they can be
// exported through the Arrow C Data interface without copying (spec/12-segments.md §2).
//
// Thread safety: value types; a const Column may be read from many threads.

#ifndef DREAMDB_COLUMN_H_
#define DREAMDB_COLUMN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"

namespace dreamdb {

// One field's values for `length` rows.
//   int64/timestamp: values = int64 LE; float64: double; bool: one byte 0/1;
//   string/blob/categorical: offsets = uint64 x (length+1), data = concatenated bytes;
//   embedding: float32 x length*dim; array: dtype x length*prod(shape).
// validity: Arrow bitmap (bit i of byte i/8, LSB first), empty = all valid.
class Column {
 public:
  Column() = default;
  // An empty column shaped for `field`.
  explicit Column(const FieldSpec& field);
  // Large buffers go back to the scan's buffer recycler (reused while a scan runs).
  ~Column();
  Column(const Column&) = default;
  Column& operator=(const Column&) = default;
  Column(Column&&) noexcept = default;
  Column& operator=(Column&&) noexcept = default;

  const FieldSpec& field() const { return field_; }
  FieldType type() const { return field_.type; }
  uint64_t length() const { return length_; }
  bool has_nulls() const { return !validity_.empty(); }
  bool IsValid(uint64_t row) const;
  uint64_t NullCount() const;

  // Appenders (REQUIRES: matching type). Each appends one row.
  void AppendNull();
  void AppendInt64(int64_t v);  // int64, timestamp
  void AppendFloat64(double v);
  void AppendBool(bool v);
  void AppendBytes(std::string_view v);  // string, blob, categorical
  // embedding: REQUIRES v.size() == dim. array: REQUIRES bytes of one value.
  void AppendFloats(std::span<const float> v);
  void AppendFixedBytes(std::string_view one_value);
  // Appends rows [begin, end) of `other` (same field type and shape).
  void AppendRange(const Column& other, uint64_t begin, uint64_t end);

  // Accessors (REQUIRES: matching type and row < length()).
  int64_t Int64At(uint64_t row) const;
  double Float64At(uint64_t row) const;
  bool BoolAt(uint64_t row) const;
  std::string_view BytesAt(uint64_t row) const;         // variable-width types
  std::span<const float> FloatsAt(uint64_t row) const;  // embedding
  std::string_view FixedAt(uint64_t row) const;         // any fixed-width type: raw value bytes

  // Raw buffers (Arrow layout).
  const std::string& validity() const { return validity_; }
  const std::string& values() const { return values_; }    // fixed-width values
  const std::string& offsets() const { return offsets_; }  // uint64 x (length+1)
  const std::string& data() const { return data_; }        // variable-width bytes
  // Builds a column from raw buffers; validates sizes (kInvalidArgument naming the field).
  static Result<Column> FromBuffers(const FieldSpec& field, uint64_t length, std::string validity,
                                    std::string values, std::string offsets, std::string data);
  // Total bytes held.
  uint64_t ByteSize() const;

 private:
  FieldSpec field_;
  uint64_t length_ = 0;
  std::string validity_;
  std::string values_;
  std::string offsets_;
  std::string data_;
};

// Rows of several fields, aligned by row, with their anchors.
struct Batch {
  std::vector<uint64_t> anchors;  // may be empty on input: anchors are then assigned
  std::vector<Column> columns;    // one per field, each of the batch's length
  uint64_t num_rows() const;
  const Column* Find(std::string_view name) const;
};

}  // namespace dreamdb

#endif  // DREAMDB_COLUMN_H_
