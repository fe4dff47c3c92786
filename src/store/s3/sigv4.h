// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// AWS Signature Version 4 for S3 requests (spec/05-backend.md §9.6.1), checked against
// botocore's signatures in spec/vectors/s3/sigv4.json. Pure functions; thread-safe.

#ifndef DREAMDB_SRC_STORE_S3_SIGV4_H_
#define DREAMDB_SRC_STORE_S3_SIGV4_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::s3 {

// The literal that replaces the payload hash when the body is not signed.
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;  // never printed or logged
  std::string session_token;      // empty: no x-amz-security-token header
  bool empty() const { return access_key_id.empty(); }
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigningInput {
  std::string method;          // "GET", "PUT", ...
  std::string host;            // the Host header: "bucket.s3.amazonaws.com", "127.0.0.1:8333"
  std::string path;            // raw (not encoded), starts with '/': "/bucket/a b/c"
  HeaderList query;            // raw names and values, in any order
  HeaderList headers;          // extra headers to send and sign (Range, If-Match, ...)
  std::string payload_sha256;  // lowercase hex SHA-256 of the body, or kUnsignedPayload
  std::string region;
  int64_t unix_seconds = 0;  // the request time
};

struct SignedRequest {
  std::string path_and_query;  // encoded: "/bucket/a%20b/c?list-type=2&prefix=x"
  HeaderList headers;          // every header to send, Authorization last (none if unsigned)
  std::string canonical_request;
  std::string string_to_sign;
};

// RFC 3986 encoding as SigV4 wants it: A-Z a-z 0-9 - . _ ~ kept, every other byte %XX
// (uppercase); '/' kept when `keep_slash`.
std::string UriEncode(std::string_view s, bool keep_slash);
// Lowercase hex SHA-256.
std::string Sha256Hex(std::string_view data);
// "YYYYMMDDTHHMMSSZ" of a Unix time.
std::string AmzDate(int64_t unix_seconds);

// Signs `in` with `creds`. With empty credentials the request is returned unsigned
// (no Authorization header) but with the same encoding and x-amz-* headers.
SignedRequest Sign(const SigningInput& in, const Credentials& creds);

}  // namespace dreamdb::s3

#endif  // DREAMDB_SRC_STORE_S3_SIGV4_H_
