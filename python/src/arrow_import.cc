// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Arrow C Stream -> Batch import; see arrow_import.h.

#include "python/src/arrow_import.h"

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dreamdb/quote.h"
#include "python/src/arrow_export.h"

namespace dreamdb::python {
namespace {

bool Bit(const void* bitmap, int64_t i) {
  return (static_cast<const uint8_t*>(bitmap)[i >> 3] >> (i & 7)) & 1;
}

void SetBit(std::string* bitmap, uint64_t i) {
  (*bitmap)[i >> 3] = static_cast<char>((*bitmap)[i >> 3] | (1 << (i & 7)));
}

// How a column's Arrow buffers map to Column buffers.
enum class Layout { kFixed, kBool, kVar32, kVar64, kList };

struct Accumulator {
  FieldSpec spec;
  Layout layout = Layout::kFixed;
  size_t width = 0;  // bytes per value (kFixed) or per list element (kList)
  uint64_t length = 0;
  uint64_t nulls = 0;
  std::string validity;  // one bit per row, grown as rows arrive
  std::string values;
  std::string offsets;  // uint64 LE, length+1 entries
  std::string data;
};

std::string Describe(const FieldSpec& f) {
  std::string t(FieldTypeName(f.type));
  if (f.type == FieldType::kEmbedding) t += "[" + std::to_string(f.dim) + "]";
  if (f.type == FieldType::kArray) t += " of " + std::string(DTypeName(f.dtype));
  return t;
}

// Checks the Arrow format of a column against its field; sets the layout.
Status Bind(const ArrowSchema& s, Accumulator* acc) {
  const FieldSpec& f = acc->spec;
  const std::string_view fmt = s.format ? s.format : "";
  auto mismatch = [&](std::string_view want) {
    return InvalidArgument("column " + Quote(f.name) + ": a " + Describe(f) +
                           " field takes Arrow format " + std::string(want) + ", got " +
                           Quote(fmt));
  };
  if (s.dictionary != nullptr) {
    return InvalidArgument("column " + Quote(f.name) +
                           ": dictionary-encoded Arrow arrays are not accepted; cast to string");
  }
  switch (f.type) {
    case FieldType::kInt64:
      if (fmt != "l") return mismatch("'l' (int64)");
      acc->layout = Layout::kFixed;
      acc->width = 8;
      return Status::Ok();
    case FieldType::kTimestamp:
      if (fmt != "l" && !fmt.starts_with("tsn:")) return mismatch("'tsn:' (timestamp[ns])");
      acc->layout = Layout::kFixed;
      acc->width = 8;
      return Status::Ok();
    case FieldType::kFloat64:
      if (fmt != "g") return mismatch("'g' (float64)");
      acc->layout = Layout::kFixed;
      acc->width = 8;
      return Status::Ok();
    case FieldType::kBool:
      if (fmt != "b") return mismatch("'b' (bool)");
      acc->layout = Layout::kBool;
      return Status::Ok();
    case FieldType::kString:
    case FieldType::kCategorical:
    case FieldType::kBlob: {
      bool blob = f.type == FieldType::kBlob;
      if (fmt == "U" || (blob && fmt == "Z")) {
        acc->layout = Layout::kVar64;
      } else if (fmt == "u" || (blob && fmt == "z")) {
        acc->layout = Layout::kVar32;
      } else {
        return mismatch(blob ? "'Z' (large_binary)" : "'U' (large_string)");
      }
      acc->offsets.assign(8, '\0');
      return Status::Ok();
    }
    case FieldType::kEmbedding:
    case FieldType::kArray: {
      const std::string want = "+w:" + std::to_string(FixedListWidth(f));
      const char* child = f.type == FieldType::kEmbedding ? "f" : ArrowFormatOf(f.dtype);
      if (fmt != want || s.n_children != 1 || s.children[0]->format == nullptr ||
          std::string_view(s.children[0]->format) != child) {
        return mismatch("'" + want + "' of '" + child + "' (fixed_size_list)");
      }
      acc->layout = Layout::kList;
      acc->width = f.type == FieldType::kEmbedding ? 4 : DTypeSize(f.dtype);
      return Status::Ok();
    }
  }
  return Internal("unknown field type");
}

// Appends `n` rows of `a` starting at row `base` (the parent's offset) to `acc`.
Status Append(const ArrowArray& a, int64_t base, int64_t n, Accumulator* acc) {
  const int64_t o = base + a.offset;
  const uint64_t first = acc->length;
  acc->length += static_cast<uint64_t>(n);
  acc->validity.resize((acc->length + 7) / 8, '\0');
  const void* valid = a.n_buffers > 0 ? a.buffers[0] : nullptr;
  for (int64_t r = 0; r < n; ++r) {
    if (valid == nullptr || a.null_count == 0 || Bit(valid, o + r)) {
      SetBit(&acc->validity, first + static_cast<uint64_t>(r));
    } else {
      ++acc->nulls;
    }
  }
  if (n == 0) return Status::Ok();
  const char* const* bufs = reinterpret_cast<const char* const*>(a.buffers);
  switch (acc->layout) {
    case Layout::kFixed:
      acc->values.append(bufs[1] + o * static_cast<int64_t>(acc->width),
                         static_cast<size_t>(n) * acc->width);
      return Status::Ok();
    case Layout::kBool:
      for (int64_t r = 0; r < n; ++r) acc->values.push_back(Bit(bufs[1], o + r) ? 1 : 0);
      return Status::Ok();
    case Layout::kVar32:
    case Layout::kVar64: {
      auto off = [&](int64_t i) -> uint64_t {
        if (acc->layout == Layout::kVar32) {
          int32_t v;
          std::memcpy(&v, bufs[1] + i * 4, 4);
          return static_cast<uint64_t>(v);
        }
        int64_t v;
        std::memcpy(&v, bufs[1] + i * 8, 8);
        return static_cast<uint64_t>(v);
      };
      const uint64_t start = off(o);
      const uint64_t end = off(o + n);
      uint64_t data_base = acc->data.size();
      acc->data.append(bufs[2] + start, end - start);
      acc->offsets.reserve(acc->offsets.size() + static_cast<size_t>(n) * 8);
      for (int64_t r = 1; r <= n; ++r) {
        uint64_t v = data_base + (off(o + r) - start);
        acc->offsets.append(reinterpret_cast<const char*>(&v), 8);
      }
      return Status::Ok();
    }
    case Layout::kList: {
      const ArrowArray& child = *a.children[0];
      const int64_t w = static_cast<int64_t>(FixedListWidth(acc->spec));
      const int64_t co = child.offset + o * w;
      const void* child_valid = child.n_buffers > 0 ? child.buffers[0] : nullptr;
      if (child_valid != nullptr && child.null_count != 0) {
        for (int64_t i = 0; i < n * w; ++i) {
          // Elements of a null row may be null (pyarrow builds them so): only a null
          // inside a valid row is an error.
          const bool row_valid = valid == nullptr || a.null_count == 0 || Bit(valid, o + i / w);
          if (row_valid && !Bit(child_valid, co + i)) {
            return InvalidArgument("column " + Quote(acc->spec.name) +
                                   ": a value has a null element (row " +
                                   std::to_string(first + static_cast<uint64_t>(i / w)) + ")");
          }
        }
      }
      const char* values = static_cast<const char*>(child.buffers[1]);
      acc->values.append(values + co * static_cast<int64_t>(acc->width),
                         static_cast<size_t>(n * w) * acc->width);
      return Status::Ok();
    }
  }
  return Internal("unknown layout");
}

struct StreamGuard {
  ArrowArrayStream stream;
  ~StreamGuard() {
    if (stream.release != nullptr) stream.release(&stream);
  }
};
struct SchemaGuard {
  ArrowSchema schema{};
  ~SchemaGuard() {
    if (schema.release != nullptr) schema.release(&schema);
  }
};
struct ArrayGuard {
  ArrowArray array{};
  ~ArrayGuard() {
    if (array.release != nullptr) array.release(&array);
  }
};

Status StreamError(ArrowArrayStream* s, int rc, const char* what) {
  const char* msg = s->get_last_error ? s->get_last_error(s) : nullptr;
  return InvalidArgument(std::string("arrow stream: ") + what + " failed (errno " +
                         std::to_string(rc) + ")" + (msg ? std::string(": ") + msg : ""));
}

}  // namespace

Result<Batch> ImportStream(ArrowArrayStream* in, const FieldLookup& lookup) {
  if (in == nullptr || in->release == nullptr) {
    return InvalidArgument("arrow stream: the stream was already consumed");
  }
  StreamGuard g{*in};
  in->release = nullptr;  // moved
  ArrowArrayStream* s = &g.stream;

  SchemaGuard schema;
  if (int rc = s->get_schema(s, &schema.schema); rc != 0) return StreamError(s, rc, "get_schema");
  const ArrowSchema& top = schema.schema;
  if (top.format == nullptr || std::string_view(top.format) != "+s") {
    return InvalidArgument("arrow stream: expected a stream of struct arrays (a table), got " +
                           Quote(top.format ? top.format : ""));
  }
  int anchor_child = -1;
  bool anchor_signed = false;
  std::vector<Accumulator> accs;
  std::vector<int> child_of;  // accs[i] reads child child_of[i]
  for (int64_t i = 0; i < top.n_children; ++i) {
    const ArrowSchema& c = *top.children[i];
    const std::string name = c.name ? c.name : "";
    const std::string_view fmt = c.format ? c.format : "";
    if (name == "anchor") {
      if (fmt != "L" && fmt != "l") {
        return InvalidArgument("column 'anchor' must be uint64 (Arrow format 'L'), got " +
                               Quote(fmt));
      }
      if (anchor_child >= 0) return InvalidArgument("column 'anchor' appears twice");
      anchor_child = static_cast<int>(i);
      anchor_signed = fmt == "l";
      continue;
    }
    ASSIGN_OR_RETURN(FieldSpec spec, lookup(name));
    for (const auto& a : accs) {
      if (a.spec.name == name) return InvalidArgument("column " + Quote(name) + " appears twice");
    }
    Accumulator acc;
    acc.spec = std::move(spec);
    RETURN_IF_ERROR(Bind(c, &acc));
    accs.push_back(std::move(acc));
    child_of.push_back(static_cast<int>(i));
  }

  Batch batch;
  uint64_t rows = 0;
  while (true) {
    ArrayGuard arr;
    if (int rc = s->get_next(s, &arr.array); rc != 0) return StreamError(s, rc, "get_next");
    if (arr.array.release == nullptr) break;
    const ArrowArray& a = arr.array;
    if (a.n_children != top.n_children) {
      return InvalidArgument("arrow stream: a batch has " + std::to_string(a.n_children) +
                             " columns, the schema " + std::to_string(top.n_children));
    }
    if (a.null_count != 0 && a.n_buffers > 0 && a.buffers[0] != nullptr) {
      return InvalidArgument("arrow stream: null rows at the top level are not accepted");
    }
    if (anchor_child >= 0) {
      const ArrowArray& c = *a.children[anchor_child];
      if (c.null_count != 0 && c.buffers[0] != nullptr) {
        for (int64_t r = 0; r < a.length; ++r) {
          if (!Bit(c.buffers[0], a.offset + c.offset + r)) {
            return InvalidArgument("column 'anchor' has a null value (row " +
                                   std::to_string(rows + static_cast<uint64_t>(r)) + ")");
          }
        }
      }
      const char* p = static_cast<const char*>(c.buffers[1]) + (a.offset + c.offset) * 8;
      for (int64_t r = 0; r < a.length; ++r) {
        uint64_t v;
        std::memcpy(&v, p + r * 8, 8);
        if (anchor_signed && static_cast<int64_t>(v) < 0) {
          return InvalidArgument("column 'anchor' has a negative value " +
                                 std::to_string(static_cast<int64_t>(v)));
        }
        batch.anchors.push_back(v);
      }
    }
    for (size_t k = 0; k < accs.size(); ++k) {
      RETURN_IF_ERROR(Append(*a.children[child_of[k]], a.offset, a.length, &accs[k]));
    }
    rows += static_cast<uint64_t>(a.length);
  }

  for (auto& acc : accs) {
    if (acc.nulls == 0) acc.validity.clear();
    ASSIGN_OR_RETURN(Column col, Column::FromBuffers(acc.spec, acc.length, std::move(acc.validity),
                                                     std::move(acc.values), std::move(acc.offsets),
                                                     std::move(acc.data)));
    batch.columns.push_back(std::move(col));
  }
  return batch;
}

}  // namespace dreamdb::python
