// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Store URI parsing (spec/05-backend.md §2). Pure functions; thread-safe.

#ifndef DREAMDB_SRC_STORE_URI_H_
#define DREAMDB_SRC_STORE_URI_H_

#include <string>
#include <string_view>

#include "dreamdb/status.h"

namespace dreamdb {

struct StoreUri {
  enum class Scheme { kMemory, kFile, kS3 };
  Scheme scheme = Scheme::kMemory;
  // memory://NAME: the shared store's name; empty for a fresh private "memory://".
  std::string memory_name;
  // file://: the absolute, lexically cleaned path ("." segments, repeated and trailing
  // '/' removed; ".." kept because it is not lexical in the presence of symlinks).
  std::string path;
  // The URI Store::uri() reports: "memory://", "memory://NAME" or "file://<path>" with
  // bytes outside RFC 3986 pchar percent-encoded. Open(canonical) opens the same store.
  // Never holds a credential (spec/05-backend.md §2.6): print it as is.
  std::string canonical;
};

// Parses a store URI. A string without "://" is a local path (relative paths resolve
// against the current directory). kInvalidArgument (quoting the URI and naming the
// problem) for malformed URIs and unknown schemes; kUnsupported for s3://, whose backend
// is not built yet. Messages show the URI only through RedactStoreUri().
Result<StoreUri> ParseStoreUri(std::string_view uri);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_URI_H_
