// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Limits of the schema (spec/10-schema.md §6). Changing one changes what readers accept:
// raise only with a spec change.

#ifndef DREAMDB_SRC_COLUMNAR_SCHEMA_LIMITS_H_
#define DREAMDB_SRC_COLUMNAR_SCHEMA_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace dreamdb::columnar {

inline constexpr size_t kMaxFieldNameChars = 64;
inline constexpr size_t kMaxFields = 4096;
inline constexpr size_t kMaxMimeBytes = 255;
inline constexpr uint32_t kMaxEmbeddingDim = 65536;
inline constexpr size_t kMaxArrayRank = 32;
// Bytes of one fixed-width value (arrays; embeddings stay far below).
inline constexpr uint64_t kMaxValueBytes = uint64_t{16} << 20;

}  // namespace dreamdb::columnar

#endif  // DREAMDB_SRC_COLUMNAR_SCHEMA_LIMITS_H_
