// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.ArrowStream: a one-shot Arrow C stream (the Arrow PyCapsule interface).
// `__arrow_c_stream__()` hands the stream to a consumer as a PyCapsule named
// "arrow_array_stream"; pyarrow.RecordBatchReader.from_stream(), polars and DuckDB accept
// it. The capsule's destructor releases the stream unless the consumer moved it.

#include "python/src/arrow_bindings.h"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>

namespace dreamdb::python {
namespace {

void DeleteStreamCapsule(void* p) noexcept {
  auto* stream = static_cast<ArrowArrayStream*>(p);
  if (stream->release != nullptr) stream->release(stream);
  delete stream;
}

}  // namespace

ArrowStream::~ArrowStream() {
  if (stream_.release != nullptr) stream_.release(&stream_);
}

nb::object ArrowStream::Capsule() {
  if (stream_.release == nullptr) {
    throw StatusError(InvalidArgument(
        "this Arrow stream was already handed to a consumer; call iter_batches() again"));
  }
  auto* out = new ArrowArrayStream(stream_);
  stream_.release = nullptr;  // moved into the capsule
  return nb::capsule(out, "arrow_array_stream", &DeleteStreamCapsule);
}

ArrowArrayStream* StreamFromCapsule(nb::handle obj) {
  if (!PyCapsule_IsValid(obj.ptr(), "arrow_array_stream")) {
    throw StatusError(InvalidArgument(
        "expected a PyCapsule named 'arrow_array_stream' (from __arrow_c_stream__())"));
  }
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(obj.ptr(), "arrow_array_stream"));
  if (stream == nullptr || stream->release == nullptr) {
    throw StatusError(InvalidArgument("the Arrow stream capsule was already consumed"));
  }
  return stream;
}

void RegisterArrow(nb::module_& m) {
  nb::class_<ArrowStream>(m, "ArrowStream",
                          "A one-shot stream of record batches; consume it with "
                          "pyarrow.RecordBatchReader.from_stream(stream).")
      .def(
          "__arrow_c_stream__",
          [](ArrowStream& s, nb::handle requested_schema) { return s.Capsule(); },
          nb::arg("requested_schema") = nb::none(),
          "Exports the stream as a PyCapsule 'arrow_array_stream' (once). The requested "
          "schema is ignored, as the protocol allows: the stream has one fixed schema.")
      .def_prop_ro("consumed", [](const ArrowStream& s) { return s.consumed(); })
      .def(
          "raise_error",
          [](const ArrowStream& s) {
            Status e = s.error();
            if (!e.ok()) throw StatusError(std::move(e));
          },
          "Raises the DreamDB error that ended the stream (its class follows its code, "
          "like every error of the package); returns None while the stream has not failed.");

  m.def(
      "_last_exported_buffers",
      []() {
        nb::list out;
        for (const ExportedBuffer& b : LastExportedBuffers()) {
          nb::dict d;
          d["field"] = b.field;
          d["buffer"] = b.buffer;
          d["address"] = b.address;
          d["size"] = b.size_bytes;
          d["copied"] = b.copied;
          out.append(d);
        }
        return out;
      },
      "Test hook: where the buffers of the most recently exported batch live in C++ memory "
      "(proves that the export shares them instead of copying).");
}

}  // namespace dreamdb::python
