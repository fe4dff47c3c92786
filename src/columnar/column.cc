// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Column: Arrow-layout buffers for one field (include/dreamdb/column.h).
//
// Invariants kept by every mutator (and established by FromBuffers):
//   1. validity_ is empty iff no row is null; otherwise it holds exactly ceil(length_/8)
//      bytes and its bits past length_ are zero.
//   2. fixed-width types: values_.size() == length_ * FixedWidth(); offsets_/data_ empty.
//   3. variable-width types: offsets_ holds length_+1 uint64 LE entries, offsets_[0] == 0,
//      non-decreasing, the last equal to data_.size(); values_ empty.
//   4. a null row holds zero bytes (fixed width) or an empty value (variable width) when
//      written through the appenders; FromBuffers keeps what the caller supplied.

#include "dreamdb/column.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "src/base/buffer_recycler.h"
#include "src/base/encoding.h"
#include "src/base/little_endian.h"

namespace dreamdb {
namespace {

static_assert(std::endian::native == std::endian::little,
              "column buffers are little-endian and used in place");

bool IsVariable(FieldType t) {
  return t == FieldType::kString || t == FieldType::kBlob || t == FieldType::kCategorical;
}

// REQUIRES violations are bugs in the caller: fail loudly rather than corrupt buffers.
[[noreturn]] void Die(const char* what, const FieldSpec& field) {
  std::fprintf(stderr, "dreamdb::Column: %s (field '%s', type %s)\n", what, field.name.c_str(),
               std::string(FieldTypeName(field.type)).c_str());
  std::abort();
}

bool GetBit(const std::string& bitmap, uint64_t i) {
  return (static_cast<uint8_t>(bitmap[i / 8]) >> (i % 8)) & 1;
}

}  // namespace

Column::~Column() {
  BufferRecycler::Give(std::move(values_));
  BufferRecycler::Give(std::move(data_));
}

Column::Column(const FieldSpec& field) : field_(field) {
  if (IsVariable(field_.type)) offsets_.assign(8, '\0');
}

bool Column::IsValid(uint64_t row) const { return validity_.empty() || GetBit(validity_, row); }

uint64_t Column::NullCount() const {
  if (validity_.empty()) return 0;
  uint64_t valid = 0;
  const uint64_t full = length_ / 8;
  for (uint64_t i = 0; i < full; ++i) valid += std::popcount(static_cast<uint8_t>(validity_[i]));
  for (uint64_t r = full * 8; r < length_; ++r) valid += GetBit(validity_, r);
  return length_ - valid;
}

namespace {
// Records row `length`'s validity, materializing the bitmap on the first null.
// Called before the column's length is incremented.
void PushValidity(std::string* validity, uint64_t length, bool valid) {
  if (validity->empty()) {
    if (valid) return;
    validity->assign((length + 8) / 8, '\0');
    for (uint64_t i = 0; i < length / 8; ++i) (*validity)[i] = static_cast<char>(0xff);
    for (uint64_t r = (length / 8) * 8; r < length; ++r) {
      (*validity)[r / 8] = static_cast<char>((*validity)[r / 8] | (1u << (r % 8)));
    }
    return;
  }
  if (length % 8 == 0) validity->push_back('\0');
  if (valid) {
    (*validity)[length / 8] = static_cast<char>((*validity)[length / 8] | (1u << (length % 8)));
  }
}
}  // namespace

void Column::AppendNull() {
  PushValidity(&validity_, length_, false);
  if (IsVariable(field_.type)) {
    AppendU64(&offsets_, data_.size());
  } else {
    size_t w = field_.FixedWidth();
    if (w == 0) Die("AppendNull on a column with an invalid field spec", field_);
    values_.append(w, '\0');
  }
  ++length_;
}

void Column::AppendInt64(int64_t v) {
  if (field_.type != FieldType::kInt64 && field_.type != FieldType::kTimestamp) {
    Die("AppendInt64 needs an int64 or timestamp column", field_);
  }
  PushValidity(&validity_, length_, true);
  char b[8];
  std::memcpy(b, &v, 8);
  values_.append(b, 8);
  ++length_;
}

void Column::AppendFloat64(double v) {
  if (field_.type != FieldType::kFloat64) Die("AppendFloat64 needs a float64 column", field_);
  PushValidity(&validity_, length_, true);
  char b[8];
  std::memcpy(b, &v, 8);
  values_.append(b, 8);
  ++length_;
}

void Column::AppendBool(bool v) {
  if (field_.type != FieldType::kBool) Die("AppendBool needs a bool column", field_);
  PushValidity(&validity_, length_, true);
  values_.push_back(v ? 1 : 0);
  ++length_;
}

void Column::AppendBytes(std::string_view v) {
  if (!IsVariable(field_.type))
    Die("AppendBytes needs a string, blob or categorical column", field_);
  PushValidity(&validity_, length_, true);
  data_.append(v);
  AppendU64(&offsets_, data_.size());
  ++length_;
}

void Column::AppendFloats(std::span<const float> v) {
  if (field_.type != FieldType::kEmbedding) Die("AppendFloats needs an embedding column", field_);
  if (v.size() != field_.dim) Die("AppendFloats: size differs from the embedding dim", field_);
  PushValidity(&validity_, length_, true);
  values_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  ++length_;
}

void Column::AppendFixedBytes(std::string_view one_value) {
  size_t w = field_.FixedWidth();
  if (w == 0) Die("AppendFixedBytes needs a fixed-width column", field_);
  if (one_value.size() != w) Die("AppendFixedBytes: value size differs from the field's", field_);
  if (field_.type == FieldType::kBool && static_cast<uint8_t>(one_value[0]) > 1) {
    Die("AppendFixedBytes: a bool value must be 0 or 1", field_);
  }
  PushValidity(&validity_, length_, true);
  values_.append(one_value);
  ++length_;
}

void Column::AppendRange(const Column& other, uint64_t begin, uint64_t end) {
  if (other.field_.type != field_.type || other.field_.FixedWidth() != field_.FixedWidth()) {
    Die("AppendRange: columns differ in type or shape", field_);
  }
  if (begin > end || end > other.length_) Die("AppendRange: range out of bounds", field_);
  const uint64_t n = end - begin;
  if (n == 0) return;

  // Validity.
  bool other_has_null = false;
  if (!other.validity_.empty()) {
    for (uint64_t r = begin; r < end && !other_has_null; ++r) {
      other_has_null = !GetBit(other.validity_, r);
    }
  }
  if (other_has_null || !validity_.empty()) {
    std::string& v = validity_;
    if (v.empty()) {
      v.assign((length_ + 7) / 8, '\0');
      for (uint64_t r = 0; r < length_; ++r)
        v[r / 8] = static_cast<char>(v[r / 8] | (1u << (r % 8)));
    }
    v.resize((length_ + n + 7) / 8, '\0');
    uint64_t dst = length_;
    if (other.validity_.empty()) {
      for (uint64_t i = 0; i < n; ++i, ++dst) {
        v[dst / 8] = static_cast<char>(v[dst / 8] | (1u << (dst % 8)));
      }
    } else if (begin % 8 == 0 && dst % 8 == 0) {
      // Byte-aligned: copy whole bytes, then clear the bits past the end.
      std::memcpy(&v[dst / 8], &other.validity_[begin / 8], (n + 7) / 8);
      uint64_t total = length_ + n;
      if (total % 8 != 0) {
        v[total / 8] = static_cast<char>(v[total / 8] & ((1u << (total % 8)) - 1));
      }
    } else {
      for (uint64_t r = begin; r < end; ++r, ++dst) {
        if (GetBit(other.validity_, r))
          v[dst / 8] = static_cast<char>(v[dst / 8] | (1u << (dst % 8)));
      }
    }
  }

  // Values.
  if (IsVariable(field_.type)) {
    const uint64_t first = LoadU64(other.offsets_.data() + begin * 8);
    const uint64_t last = LoadU64(other.offsets_.data() + end * 8);
    const uint64_t base = data_.size();
    data_.append(other.data_, first, last - first);
    const size_t old = offsets_.size();
    offsets_.resize(old + n * 8);
    char* out = offsets_.data() + old;
    const char* in = other.offsets_.data() + (begin + 1) * 8;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t o = LoadU64(in + i * 8) - first + base;
      std::memcpy(out + i * 8, &o, 8);
    }
  } else {
    const size_t w = field_.FixedWidth();
    values_.append(other.values_, begin * w, n * w);
  }
  length_ += n;
}

int64_t Column::Int64At(uint64_t row) const {
  if (field_.type != FieldType::kInt64 && field_.type != FieldType::kTimestamp) {
    Die("Int64At needs an int64 or timestamp column", field_);
  }
  if (row >= length_) Die("Int64At: row out of range", field_);
  int64_t v;
  std::memcpy(&v, values_.data() + row * 8, 8);
  return v;
}

double Column::Float64At(uint64_t row) const {
  if (field_.type != FieldType::kFloat64) Die("Float64At needs a float64 column", field_);
  if (row >= length_) Die("Float64At: row out of range", field_);
  double v;
  std::memcpy(&v, values_.data() + row * 8, 8);
  return v;
}

bool Column::BoolAt(uint64_t row) const {
  if (field_.type != FieldType::kBool) Die("BoolAt needs a bool column", field_);
  if (row >= length_) Die("BoolAt: row out of range", field_);
  return values_[row] != 0;
}

std::string_view Column::BytesAt(uint64_t row) const {
  if (!IsVariable(field_.type)) Die("BytesAt needs a string, blob or categorical column", field_);
  if (row >= length_) Die("BytesAt: row out of range", field_);
  uint64_t a = LoadU64(offsets_.data() + row * 8);
  uint64_t b = LoadU64(offsets_.data() + row * 8 + 8);
  return std::string_view(data_).substr(a, b - a);
}

std::span<const float> Column::FloatsAt(uint64_t row) const {
  if (field_.type != FieldType::kEmbedding) Die("FloatsAt needs an embedding column", field_);
  if (row >= length_) Die("FloatsAt: row out of range", field_);
  return std::span<const float>(
      reinterpret_cast<const float*>(values_.data() + row * field_.dim * sizeof(float)),
      field_.dim);
}

std::string_view Column::FixedAt(uint64_t row) const {
  size_t w = field_.FixedWidth();
  if (w == 0) Die("FixedAt needs a fixed-width column", field_);
  if (row >= length_) Die("FixedAt: row out of range", field_);
  return std::string_view(values_).substr(row * w, w);
}

Result<Column> Column::FromBuffers(const FieldSpec& field, uint64_t length, std::string validity,
                                   std::string values, std::string offsets, std::string data) {
  const std::string what = "column " + Quote(field.name) + ": ";
  Column c;
  c.field_ = field;
  c.length_ = length;
  if (!validity.empty()) {
    if (validity.size() != (length + 7) / 8 || length == 0) {
      return InvalidArgument(what + "validity bitmap has " + std::to_string(validity.size()) +
                             " bytes, expected 0 or " + std::to_string((length + 7) / 8) + " for " +
                             std::to_string(length) + " rows");
    }
    if (length % 8 != 0) {
      validity.back() = static_cast<char>(validity.back() & ((1u << (length % 8)) - 1));
    }
    bool any_null = false;
    for (uint64_t i = 0; i < validity.size() && !any_null; ++i) {
      uint8_t expect = (i + 1 < validity.size() || length % 8 == 0)
                           ? 0xff
                           : static_cast<uint8_t>((1u << (length % 8)) - 1);
      any_null = static_cast<uint8_t>(validity[i]) != expect;
    }
    if (any_null) c.validity_ = std::move(validity);
  }
  if (IsVariable(field.type)) {
    if (!values.empty()) {
      return InvalidArgument(what + "a " + std::string(FieldTypeName(field.type)) +
                             " column has no values buffer (use offsets and data)");
    }
    if (length >= (UINT64_MAX / 8) || offsets.size() != (length + 1) * 8) {
      return InvalidArgument(what + "offsets buffer has " + std::to_string(offsets.size()) +
                             " bytes, expected " + std::to_string((length + 1) * 8) + " (" +
                             std::to_string(length) + "+1 uint64 entries)");
    }
    uint64_t prev = 0;
    for (uint64_t i = 0; i <= length; ++i) {
      uint64_t o = LoadU64(offsets.data() + i * 8);
      if (i == 0 && o != 0) return InvalidArgument(what + "offsets[0] must be 0");
      if (o < prev) {
        return InvalidArgument(what + "offsets decrease at entry " + std::to_string(i));
      }
      prev = o;
    }
    if (prev != data.size()) {
      return InvalidArgument(what + "last offset is " + std::to_string(prev) +
                             " but the data buffer has " + std::to_string(data.size()) + " bytes");
    }
    c.offsets_ = std::move(offsets);
    c.data_ = std::move(data);
  } else {
    const size_t w = field.FixedWidth();
    if (w == 0) return InvalidArgument(what + "invalid field spec (no value width)");
    if (!offsets.empty() || !data.empty()) {
      return InvalidArgument(what + "a " + std::string(FieldTypeName(field.type)) +
                             " column has no offsets or data buffers");
    }
    if (length > UINT64_MAX / w || values.size() != length * w) {
      return InvalidArgument(what + "values buffer has " + std::to_string(values.size()) +
                             " bytes, expected " + std::to_string(length) + " rows x " +
                             std::to_string(w) + " bytes");
    }
    if (field.type == FieldType::kBool) {
      for (uint64_t i = 0; i < length; ++i) {
        if (static_cast<uint8_t>(values[i]) > 1) {
          return InvalidArgument(what + "bool value at row " + std::to_string(i) +
                                 " is neither 0 nor 1");
        }
      }
    }
    c.values_ = std::move(values);
  }
  return c;
}

uint64_t Column::ByteSize() const {
  return validity_.size() + values_.size() + offsets_.size() + data_.size();
}

uint64_t Batch::num_rows() const {
  if (!columns.empty()) return columns.front().length();
  return anchors.size();
}

const Column* Batch::Find(std::string_view name) const {
  for (const Column& c : columns) {
    if (c.field().name == name) return &c;
  }
  return nullptr;
}

}  // namespace dreamdb
