// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The one place where a DreamDB Status becomes a Python exception (spec/07-errors.md):
// StatusError -> dreamdb.errors.<Class for the code>(message), whose classes also inherit
// the matching builtin (NotFoundError is a KeyError, ...). The classes live in Python
// (dreamdb/errors.py) so that multiple inheritance from builtins stays ordinary Python.

#include <nanobind/stl/string.h>

#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

void Translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const StatusError& e) {
    const Status& s = e.status();
    try {
      nb::object errors = nb::module_::import_("dreamdb.errors");
      nb::object cls = errors.attr("class_for_code")(
          nb::str(StatusCodeName(s.code()).data(), StatusCodeName(s.code()).size()));
      nb::object exc = cls(nb::str(s.message().data(), s.message().size()));
      PyErr_SetObject(cls.ptr(), exc.ptr());
    } catch (nb::python_error& pe) {
      // dreamdb.errors is unavailable (the extension imported on its own): still say what
      // went wrong rather than hiding the original error behind an import failure.
      pe.discard_as_unraisable("dreamdb: translating an error");
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  }
}

}  // namespace

void RegisterErrors(nb::module_& m) {
  nb::register_exception_translator(&Translate);
  m.def(
      "_raise_status",
      [](const std::string& code, const std::string& message) {
        for (int c = 1; c <= static_cast<int>(StatusCode::kInternal); ++c) {
          if (StatusCodeName(static_cast<StatusCode>(c)) == code) {
            throw StatusError(Status(static_cast<StatusCode>(c), message));
          }
        }
        throw StatusError(Internal("unknown status code " + code + ": " + message));
      },
      nb::arg("code"), nb::arg("message"),
      "Raises the exception the bindings raise for a C++ Status (tests the translation).");
}

}  // namespace dreamdb::python
