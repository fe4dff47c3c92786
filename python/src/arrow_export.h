// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Batch -> Arrow C Data / C Stream export (spec/12-segments.md §2: columns are laid out as
// Arrow arrays). Pure C++: no Python, no Arrow C++.
//
// Every exported batch is a struct array <anchor: uint64, field...>. Buffers point into
// the Column objects of the C++ Batch, which the exported array owns through its
// private_data and frees in its release callback (zero-copy). The only copies: bool
// values (one byte per value in a Column, a bitmap in Arrow).
//
// Arrow types: anchor uint64 ("L"); int64 "l"; float64 "g"; bool "b"; string and
// categorical large_string "U"; blob large_binary "Z"; timestamp timestamp[ns] "tsn:";
// embedding fixed_size_list<float32>[dim] "+w:dim"; array fixed_size_list<dtype>[prod(shape)]
// with the values flattened in row-major order. Field metadata "dreamdb.type" (and
// "dreamdb.mime", "dreamdb.dim", "dreamdb.dtype", "dreamdb.shape" where they apply)
// records the DreamDB type the Arrow type cannot express.
//
// Thread safety: the functions are thread-safe; an exported stream is used by one
// consumer thread at a time, as the C Stream Interface requires.

#ifndef DREAMDB_PYTHON_ARROW_EXPORT_H_
#define DREAMDB_PYTHON_ARROW_EXPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"
#include "python/src/arrow_c.h"

namespace dreamdb::python {

// The Arrow C format string of an array element type ("C" for u8 ... "g" for f64).
const char* ArrowFormatOf(DType t);
// Elements per value of a fixed_size_list field: dim (embedding), prod(shape) (array);
// 0 for other types.
uint64_t FixedListWidth(const FieldSpec& f);

// Produces the next batch; nullopt at the end. Errors end the stream.
using BatchSource = std::function<Result<std::optional<Batch>>()>;

// Writes the schema struct<anchor, fields...> into `*out` (caller releases it).
void ExportSchema(const std::vector<FieldSpec>& fields, ArrowSchema* out);

// Moves `batch` into `*out`. REQUIRES: batch.columns[i].field().name == fields[i].name and
// batch.anchors.size() == batch.num_rows(). kInternal if the batch does not match.
Status ExportBatch(Batch batch, const std::vector<FieldSpec>& fields, ArrowArray* out);

// Fills `*out` with a stream over `source` (owned by the stream, destroyed on release).
// get_next calls `source`; an error is returned as an errno code (EINVAL for
// invalid_argument, ENOSYS for unsupported, EIO otherwise) with Status::ToString() as the
// last error, e.g. "corrupt: segment ... does not match its id".
void ExportStream(std::vector<FieldSpec> fields, BatchSource source, ArrowArrayStream* out);

// The error that ended an exported stream, shared between the stream (which the consumer
// owns and may release at any time) and whoever made it, so the maker can raise the error
// with its DreamDB code after the consumer reports a failure (the C stream carries only an
// errno and a message). Thread safety: one mutex.
class StreamErrorSlot {
 public:
  void Set(const Status& status);
  // OK until the stream failed.
  Status Get() const;

 private:
  mutable std::mutex mu_;
  Status status_;  // guarded by mu_
};

// ExportStream, recording the status that ends the stream (if any) in `*error`.
void ExportStream(std::vector<FieldSpec> fields, BatchSource source, ArrowArrayStream* out,
                  std::shared_ptr<StreamErrorSlot> error);

// Where the exported buffers of the most recent ExportBatch call came from, for tests
// that prove zero-copy: one entry per buffer handed to Arrow.
struct ExportedBuffer {
  std::string field;   // "anchor" or the field name
  std::string buffer;  // "validity", "values", "offsets", "data", "bitmap" (a copy)
  uintptr_t address = 0;
  uint64_t size_bytes = 0;
  bool copied = false;  // true when the export made this buffer (bool bitmaps)
};
std::vector<ExportedBuffer> LastExportedBuffers();

}  // namespace dreamdb::python

#endif  // DREAMDB_PYTHON_ARROW_EXPORT_H_
