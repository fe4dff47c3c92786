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
  // s3:// (spec/05-backend.md §9.1): the bucket, the cleaned key prefix without leading
  // or trailing '/' ("" for the bucket's root), and the resolved options.
  std::string bucket;
  std::string prefix;
  std::string endpoint;  // "http(s)://host[:port]", no trailing '/'
  std::string region;
  bool path_style = true;
  std::string profile;  // the credentials-file profile; not part of `canonical`
  // The URI Store::uri() reports: "memory://", "memory://NAME", "file://<path>" with
  // bytes outside RFC 3986 pchar percent-encoded, or
  // "s3://bucket[/prefix]?endpoint=E&region=R&addressing=path|virtual". Open(canonical) opens the
  // same store. Never holds a credential (spec/05-backend.md §2.6): print it as is.
  std::string canonical;
};

// Parses a store URI. A string without "://" is a local path (relative paths resolve
// against the current directory). kInvalidArgument (quoting the URI and naming the
// problem) for malformed URIs and unknown schemes. s3:// options missing from the query
// are resolved from the environment (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION,
// AWS_DEFAULT_REGION, AWS_PROFILE); messages show the URI only through RedactStoreUri(), and
// errors about an s3:// URI quote it without its query (S3UriForMessages()).
Result<StoreUri> ParseStoreUri(std::string_view uri);

// An s3:// URI as error messages quote it (spec/05-backend.md §9.1.3): RedactStoreUri()
// of it with the whole query (or fragment) replaced by "***", since a pasted secret may
// sit there under any name or none.
std::string S3UriForMessages(std::string_view uri);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_URI_H_
