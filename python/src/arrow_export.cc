// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Batch -> Arrow C Data / C Stream export; see arrow_export.h for the type mapping.

#include "python/src/arrow_export.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <utility>

namespace dreamdb::python {
namespace {

// Arrow allows null buffers only in some places; length-0 arrays point here instead.
alignas(64) const int64_t kEmptyBuffer[2] = {0, 0};

std::mutex g_last_mu;
std::vector<ExportedBuffer> g_last;  // guarded by g_last_mu

// ---- Schema ----

struct SchemaPrivate {
  std::string format;
  std::string name;
  std::string metadata;  // Arrow's binary key/value encoding; empty = none
  std::vector<ArrowSchema*> children;
};

void ReleaseSchema(ArrowSchema* schema) {
  if (schema == nullptr || schema->release == nullptr) return;
  auto* priv = static_cast<SchemaPrivate*>(schema->private_data);
  for (ArrowSchema* child : priv->children) {
    if (child->release != nullptr) child->release(child);
    delete child;
  }
  delete priv;
  schema->release = nullptr;
}

void AppendInt32(std::string* out, int32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }

// Encodes key/value pairs as the C Data Interface specifies: int32 count, then for each
// pair int32 length + key bytes, int32 length + value bytes (native endianness).
std::string EncodeMetadata(const std::vector<std::pair<std::string, std::string>>& kv) {
  if (kv.empty()) return {};
  std::string out;
  AppendInt32(&out, static_cast<int32_t>(kv.size()));
  for (const auto& [k, v] : kv) {
    AppendInt32(&out, static_cast<int32_t>(k.size()));
    out += k;
    AppendInt32(&out, static_cast<int32_t>(v.size()));
    out += v;
  }
  return out;
}

// Fills `out` as a leaf or parent schema node owning `children`.
void FillSchema(ArrowSchema* out, std::string format, std::string name, std::string metadata,
                int64_t flags, std::vector<ArrowSchema*> children) {
  auto* priv = new SchemaPrivate{std::move(format), std::move(name), std::move(metadata),
                                 std::move(children)};
  out->format = priv->format.c_str();
  out->name = priv->name.c_str();
  out->metadata = priv->metadata.empty() ? nullptr : priv->metadata.data();
  out->flags = flags;
  out->n_children = static_cast<int64_t>(priv->children.size());
  out->children = priv->children.empty() ? nullptr : priv->children.data();
  out->dictionary = nullptr;
  out->release = &ReleaseSchema;
  out->private_data = priv;
}

ArrowSchema* NewFieldSchema(const FieldSpec& f) {
  std::vector<std::pair<std::string, std::string>> meta;
  meta.emplace_back("dreamdb.type", std::string(FieldTypeName(f.type)));
  std::string format;
  std::vector<ArrowSchema*> children;
  switch (f.type) {
    case FieldType::kInt64:
      format = "l";
      break;
    case FieldType::kFloat64:
      format = "g";
      break;
    case FieldType::kBool:
      format = "b";
      break;
    case FieldType::kString:
    case FieldType::kCategorical:
      format = "U";
      break;
    case FieldType::kTimestamp:
      format = "tsn:";
      break;
    case FieldType::kBlob:
      format = "Z";
      meta.emplace_back("dreamdb.mime", f.mime);
      break;
    case FieldType::kEmbedding:
    case FieldType::kArray: {
      format = "+w:" + std::to_string(FixedListWidth(f));
      auto* child = new ArrowSchema;
      FillSchema(child, f.type == FieldType::kEmbedding ? "f" : ArrowFormatOf(f.dtype), "item", "",
                 0, {});
      children.push_back(child);
      if (f.type == FieldType::kEmbedding) {
        meta.emplace_back("dreamdb.dim", std::to_string(f.dim));
      } else {
        std::string shape = "[";
        for (size_t i = 0; i < f.shape.size(); ++i) {
          shape += (i ? "," : "") + std::to_string(f.shape[i]);
        }
        meta.emplace_back("dreamdb.dtype", std::string(DTypeName(f.dtype)));
        meta.emplace_back("dreamdb.shape", shape + "]");
      }
      break;
    }
  }
  auto* s = new ArrowSchema;
  FillSchema(s, std::move(format), f.name, EncodeMetadata(meta),
             f.optional ? ARROW_FLAG_NULLABLE : 0, std::move(children));
  return s;
}

// ---- Arrays ----

struct ArrayPrivate {
  std::shared_ptr<const Batch> batch;  // keeps every borrowed buffer alive
  std::vector<const void*> buffers;
  std::vector<ArrowArray*> children;
  std::string owned;  // buffers the export made (bool bitmaps)
};

void ReleaseArray(ArrowArray* array) {
  if (array == nullptr || array->release == nullptr) return;
  auto* priv = static_cast<ArrayPrivate*>(array->private_data);
  // A consumer may have moved a child out (its release is then null): skip it.
  for (ArrowArray* child : priv->children) {
    if (child->release != nullptr) child->release(child);
    delete child;
  }
  delete priv;
  array->release = nullptr;
}

void FillArray(ArrowArray* out, ArrayPrivate* priv, int64_t length, int64_t null_count) {
  out->length = length;
  out->null_count = null_count;
  out->offset = 0;
  out->n_buffers = static_cast<int64_t>(priv->buffers.size());
  out->buffers = priv->buffers.data();
  out->n_children = static_cast<int64_t>(priv->children.size());
  out->children = priv->children.empty() ? nullptr : priv->children.data();
  out->dictionary = nullptr;
  out->release = &ReleaseArray;
  out->private_data = priv;
}

const void* Data(const std::string& s) {
  return s.empty() ? static_cast<const void*>(kEmptyBuffer) : static_cast<const void*>(s.data());
}

class Exporter {
 public:
  explicit Exporter(std::shared_ptr<const Batch> batch) : batch_(std::move(batch)) {}

  ArrowArray* Anchors() {
    auto* priv = NewPrivate();
    const auto& a = batch_->anchors;
    const void* p = a.empty() ? static_cast<const void*>(kEmptyBuffer) : a.data();
    priv->buffers = {nullptr, p};
    Record("anchor", "values", p, a.size() * 8, false);
    auto* out = new ArrowArray;
    FillArray(out, priv, static_cast<int64_t>(a.size()), 0);
    return out;
  }

  ArrowArray* Field(const Column& c) {
    const FieldSpec& f = c.field();
    const auto n = static_cast<int64_t>(c.length());
    auto* priv = NewPrivate();
    const void* validity = c.has_nulls() ? c.validity().data() : nullptr;
    if (validity != nullptr) Record(f.name, "validity", validity, c.validity().size(), false);
    switch (f.type) {
      case FieldType::kInt64:
      case FieldType::kTimestamp:
      case FieldType::kFloat64:
        priv->buffers = {validity, Data(c.values())};
        Record(f.name, "values", priv->buffers[1], c.values().size(), false);
        break;
      case FieldType::kBool: {
        priv->owned.assign((c.length() + 7) / 8, '\0');
        const std::string& v = c.values();
        for (uint64_t i = 0; i < c.length(); ++i) {
          if (v[i] != 0)
            priv->owned[i / 8] = static_cast<char>(priv->owned[i / 8] | (1 << (i % 8)));
        }
        priv->buffers = {validity, Data(priv->owned)};
        Record(f.name, "bitmap", priv->buffers[1], priv->owned.size(), true);
        break;
      }
      case FieldType::kString:
      case FieldType::kCategorical:
      case FieldType::kBlob:
        // uint64 offsets are Arrow's int64 large offsets: a column never holds 2^63 bytes.
        priv->buffers = {validity, Data(c.offsets()), Data(c.data())};
        Record(f.name, "offsets", priv->buffers[1], c.offsets().size(), false);
        Record(f.name, "data", priv->buffers[2], c.data().size(), false);
        break;
      case FieldType::kEmbedding:
      case FieldType::kArray: {
        priv->buffers = {validity};
        auto* child_priv = NewPrivate();
        child_priv->buffers = {nullptr, Data(c.values())};
        Record(f.name, "values", child_priv->buffers[1], c.values().size(), false);
        auto* child = new ArrowArray;
        FillArray(child, child_priv, n * static_cast<int64_t>(FixedListWidth(f)), 0);
        priv->children.push_back(child);
        break;
      }
    }
    auto* out = new ArrowArray;
    FillArray(out, priv, n, static_cast<int64_t>(c.NullCount()));
    return out;
  }

  ArrayPrivate* NewPrivate() {
    auto* priv = new ArrayPrivate;
    priv->batch = batch_;
    return priv;
  }

  std::vector<ExportedBuffer> TakeRecord() { return std::move(record_); }

 private:
  void Record(const std::string& field, const char* buffer, const void* p, uint64_t size,
              bool copied) {
    record_.push_back(ExportedBuffer{field, buffer, reinterpret_cast<uintptr_t>(p), size, copied});
  }

  std::shared_ptr<const Batch> batch_;
  std::vector<ExportedBuffer> record_;
};

// ---- Stream ----

int ErrnoFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
      return EINVAL;
    case StatusCode::kUnsupported:
      return ENOSYS;
    default:
      return EIO;
  }
}

struct StreamPrivate {
  std::vector<FieldSpec> fields;
  BatchSource source;
  std::string last_error;
  bool done = false;
  std::shared_ptr<StreamErrorSlot> error;  // may be null

  // Ends the stream with `s`: its text for get_last_error, the status itself for the
  // stream's maker.
  int Fail(const Status& s) {
    last_error = s.ToString();
    done = true;
    if (error != nullptr) error->Set(s);
    return ErrnoFor(s.code());
  }
};

int StreamGetSchema(ArrowArrayStream* stream, ArrowSchema* out) {
  auto* priv = static_cast<StreamPrivate*>(stream->private_data);
  try {
    ExportSchema(priv->fields, out);
    return 0;
  } catch (const std::bad_alloc&) {
    priv->last_error = "out of memory exporting the schema";
    return ENOMEM;
  }
}

int StreamGetNext(ArrowArrayStream* stream, ArrowArray* out) {
  auto* priv = static_cast<StreamPrivate*>(stream->private_data);
  out->release = nullptr;  // "end of stream" unless a batch is exported below
  if (priv->done) return 0;
  try {
    Result<std::optional<Batch>> next = priv->source();
    if (!next.ok()) return priv->Fail(next.status());
    if (!next->has_value()) {
      priv->done = true;
      priv->source = nullptr;  // free the reader (and what it pins) as soon as possible
      return 0;
    }
    Status s = ExportBatch(std::move(**next), priv->fields, out);
    if (!s.ok()) return priv->Fail(s);
    return 0;
  } catch (const std::bad_alloc&) {
    priv->last_error = "out of memory reading the next batch";
    priv->done = true;
    return ENOMEM;
  } catch (const std::exception& e) {
    return priv->Fail(Internal(e.what()));
  }
}

const char* StreamGetLastError(ArrowArrayStream* stream) {
  auto* priv = static_cast<StreamPrivate*>(stream->private_data);
  return priv->last_error.empty() ? nullptr : priv->last_error.c_str();
}

void StreamRelease(ArrowArrayStream* stream) {
  if (stream == nullptr || stream->release == nullptr) return;
  delete static_cast<StreamPrivate*>(stream->private_data);
  stream->release = nullptr;
}

}  // namespace

const char* ArrowFormatOf(DType t) {
  switch (t) {
    case DType::kU8:
      return "C";
    case DType::kI8:
      return "c";
    case DType::kU16:
      return "S";
    case DType::kI16:
      return "s";
    case DType::kU32:
      return "I";
    case DType::kI32:
      return "i";
    case DType::kU64:
      return "L";
    case DType::kI64:
      return "l";
    case DType::kF32:
      return "f";
    case DType::kF64:
      return "g";
  }
  return "C";
}

uint64_t FixedListWidth(const FieldSpec& f) {
  if (f.type == FieldType::kEmbedding) return f.dim;
  if (f.type != FieldType::kArray) return 0;
  uint64_t p = 1;
  for (uint32_t d : f.shape) p *= d;
  return p;
}

void ExportSchema(const std::vector<FieldSpec>& fields, ArrowSchema* out) {
  std::vector<ArrowSchema*> children;
  children.reserve(fields.size() + 1);
  auto* anchor = new ArrowSchema;
  FillSchema(anchor, "L", "anchor", "", 0, {});
  children.push_back(anchor);
  for (const auto& f : fields) children.push_back(NewFieldSchema(f));
  FillSchema(out, "+s", "", "", 0, std::move(children));
}

Status ExportBatch(Batch batch, const std::vector<FieldSpec>& fields, ArrowArray* out) {
  const uint64_t n = batch.anchors.size();
  if (batch.columns.size() != fields.size()) {
    return Internal("arrow export: batch has " + std::to_string(batch.columns.size()) +
                    " columns for " + std::to_string(fields.size()) + " fields");
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    const Column& c = batch.columns[i];
    if (c.field().name != fields[i].name || c.type() != fields[i].type || c.length() != n) {
      return Internal("arrow export: column " + std::to_string(i) + " (" + c.field().name +
                      ") does not match field " + fields[i].name);
    }
  }
  auto shared = std::make_shared<const Batch>(std::move(batch));
  Exporter ex(shared);
  auto* priv = ex.NewPrivate();
  priv->buffers = {nullptr};
  priv->children.push_back(ex.Anchors());
  for (const Column& c : shared->columns) priv->children.push_back(ex.Field(c));
  FillArray(out, priv, static_cast<int64_t>(n), 0);
  std::lock_guard<std::mutex> lock(g_last_mu);
  g_last = ex.TakeRecord();
  return Status::Ok();
}

void StreamErrorSlot::Set(const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_.ok()) status_ = status;
}

Status StreamErrorSlot::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void ExportStream(std::vector<FieldSpec> fields, BatchSource source, ArrowArrayStream* out) {
  ExportStream(std::move(fields), std::move(source), out, nullptr);
}

void ExportStream(std::vector<FieldSpec> fields, BatchSource source, ArrowArrayStream* out,
                  std::shared_ptr<StreamErrorSlot> error) {
  auto* priv = new StreamPrivate;
  priv->fields = std::move(fields);
  priv->source = std::move(source);
  priv->error = std::move(error);
  out->get_schema = &StreamGetSchema;
  out->get_next = &StreamGetNext;
  out->get_last_error = &StreamGetLastError;
  out->release = &StreamRelease;
  out->private_data = priv;
}

std::vector<ExportedBuffer> LastExportedBuffers() {
  std::lock_guard<std::mutex> lock(g_last_mu);
  return g_last;
}

}  // namespace dreamdb::python
