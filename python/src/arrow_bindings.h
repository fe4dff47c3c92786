// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The Python side of the Arrow C stream: ArrowStream (export, one-shot) and capsule
// unwrapping (import).

#ifndef DREAMDB_PYTHON_ARROW_BINDINGS_H_
#define DREAMDB_PYTHON_ARROW_BINDINGS_H_

#include <memory>
#include <utility>
#include <vector>

#include "python/src/arrow_c.h"
#include "python/src/arrow_export.h"
#include "python/src/bindings.h"

namespace dreamdb::python {

// Owns an exported stream until __arrow_c_stream__ moves it into a capsule, and keeps
// the Status that ended the stream after that: a consumer (pyarrow) turns a stream error
// into its own exception class, so the Python package asks the stream object for the
// error and raises it as the DreamDB exception of its code (raise_error()).
class ArrowStream {
 public:
  ArrowStream(std::vector<FieldSpec> fields, BatchSource source)
      : error_(std::make_shared<StreamErrorSlot>()) {
    ExportStream(std::move(fields), std::move(source), &stream_, error_);
  }
  ~ArrowStream();
  ArrowStream(const ArrowStream&) = delete;
  ArrowStream& operator=(const ArrowStream&) = delete;

  // The PyCapsule "arrow_array_stream"; StatusError(kInvalidArgument) on a second call.
  nb::object Capsule();
  bool consumed() const { return stream_.release == nullptr; }
  // The status that ended the stream (OK while it has not failed).
  Status error() const { return error_->Get(); }

 private:
  ArrowArrayStream stream_{};
  std::shared_ptr<StreamErrorSlot> error_;
};

// The stream inside a PyCapsule "arrow_array_stream" (still owned by the capsule: the
// caller moves it out). StatusError(kInvalidArgument) for anything else.
ArrowArrayStream* StreamFromCapsule(nb::handle capsule);

}  // namespace dreamdb::python

#endif  // DREAMDB_PYTHON_ARROW_BINDINGS_H_
