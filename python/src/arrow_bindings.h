// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The Python side of the Arrow C stream: ArrowStream (export, one-shot) and capsule
// unwrapping (import).

#ifndef DREAMDB_PYTHON_ARROW_BINDINGS_H_
#define DREAMDB_PYTHON_ARROW_BINDINGS_H_

#include <utility>
#include <vector>

#include "python/src/arrow_c.h"
#include "python/src/arrow_export.h"
#include "python/src/bindings.h"

namespace dreamdb::python {

// Owns an exported stream until __arrow_c_stream__ moves it into a capsule.
class ArrowStream {
 public:
  ArrowStream(std::vector<FieldSpec> fields, BatchSource source) {
    ExportStream(std::move(fields), std::move(source), &stream_);
  }
  ~ArrowStream();
  ArrowStream(const ArrowStream&) = delete;
  ArrowStream& operator=(const ArrowStream&) = delete;

  // The PyCapsule "arrow_array_stream"; StatusError(kInvalidArgument) on a second call.
  nb::object Capsule();
  bool consumed() const { return stream_.release == nullptr; }

 private:
  ArrowArrayStream stream_{};
};

// The stream inside a PyCapsule "arrow_array_stream" (still owned by the capsule: the
// caller moves it out). StatusError(kInvalidArgument) for anything else.
ArrowArrayStream* StreamFromCapsule(nb::handle capsule);

}  // namespace dreamdb::python

#endif  // DREAMDB_PYTHON_ARROW_BINDINGS_H_
