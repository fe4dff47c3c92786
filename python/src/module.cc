// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core: the C++ extension behind the `dreamdb` Python package. The package's
// pure-Python layer (dreamdb/*.py) adds the conveniences: input conversion, pyarrow
// tables, the PyTorch dataset.

#include "python/src/bindings.h"

NB_MODULE(_core, m) {
  m.doc() = "DreamDB C++ core bindings (use the `dreamdb` package, not this module).";
  dreamdb::python::RegisterErrors(m);
  dreamdb::python::RegisterSchema(m);
  dreamdb::python::RegisterStore(m);
  dreamdb::python::RegisterArrow(m);
  dreamdb::python::RegisterDataset(m);
  dreamdb::python::RegisterCompare(m);
  dreamdb::python::RegisterSearch(m);
  dreamdb::python::RegisterMerge(m);
  dreamdb::python::RegisterJobs(m);
}
