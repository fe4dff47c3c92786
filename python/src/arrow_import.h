// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Arrow C Stream -> Batch import, the write path of the bindings. Pure C++.
//
// The stream must carry a struct array per batch whose children are named after fields;
// a child named "anchor" (uint64, or int64 with no negative values) supplies the anchors.
// Accepted Arrow types per field type (the Python layer casts to the first one):
//   int64 "l"; float64 "g"; bool "b"; timestamp "tsn:" or "l"; string and categorical
//   "U" or "u"; blob "Z", "z", "U" or "u"; embedding "+w:dim" of "f"; array "+w:prod(shape)"
//   of the dtype's format. Nulls are kept (the Dataset refuses them in required fields);
//   a null inside a fixed-size list value is kInvalidArgument.
// Every batch of the stream is concatenated into the one Batch returned (one commit).
// The buffers are copied: a Column owns its bytes.
//
// Thread safety: thread-safe; does not touch Python (the caller may release the GIL).

#ifndef DREAMDB_PYTHON_ARROW_IMPORT_H_
#define DREAMDB_PYTHON_ARROW_IMPORT_H_

#include <functional>
#include <string_view>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"
#include "python/src/arrow_c.h"

namespace dreamdb::python {

// Returns the field a column of this name writes, or an error (kInvalidArgument naming it).
using FieldLookup = std::function<Result<FieldSpec>(std::string_view name)>;

// Consumes `*stream`: moves it out and releases it before returning, whatever happens.
Result<Batch> ImportStream(ArrowArrayStream* stream, const FieldLookup& lookup);

}  // namespace dreamdb::python

#endif  // DREAMDB_PYTHON_ARROW_IMPORT_H_
