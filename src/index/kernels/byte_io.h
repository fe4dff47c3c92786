// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Little-endian fixed-width fields for the vector byte formats (spec/20, spec/22): the
// formats assume a little-endian host (checked where they are encoded), so a field is its
// in-memory bytes. Thread safety: pure functions.

#ifndef DREAMDB_SRC_INDEX_KERNELS_BYTE_IO_H_
#define DREAMDB_SRC_INDEX_KERNELS_BYTE_IO_H_

#include <cstring>

#include "dreamdb/object_id.h"

namespace dreamdb::vector {

// Appends the bytes of v.
template <typename T>
void Put(Bytes* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

// Reads a T from p (no alignment needed).
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_KERNELS_BYTE_IO_H_
