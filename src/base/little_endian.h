// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Fixed-width little-endian integers in byte buffers, as the columnar formats store them
// (spec/12): loads from unaligned positions and appends to a growing buffer. DreamDB
// builds for little-endian hosts only (asserted below), so these are plain copies.
// Pure functions; thread-safe.

#ifndef DREAMDB_SRC_BASE_LITTLE_ENDIAN_H_
#define DREAMDB_SRC_BASE_LITTLE_ENDIAN_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace dreamdb {

static_assert(std::endian::native == std::endian::little,
              "DreamDB's formats are read and written on little-endian hosts only");

inline uint64_t LoadU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void AppendU64(std::string* out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

inline void AppendU32(std::string* out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out->append(b, 4);
}

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_LITTLE_ENDIAN_H_
