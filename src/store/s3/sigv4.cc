// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §9.6.1 (AWS Signature Version 4).
#include "src/store/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <ctime>

namespace dreamdb::s3 {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string Hex(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

std::string Hmac(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return {reinterpret_cast<const char*>(mac.data()), len};
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// Header values are trimmed and inner runs of spaces collapsed (as botocore does).
std::string Trim(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kUpper[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kUpper[c >> 4]);
      out.push_back(kUpper[c & 15]);
    }
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> md{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data());
  return Hex(md.data(), md.size());
}

std::string AmzDate(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 20> buf{};
  std::strftime(buf.data(), buf.size(), "%Y%m%dT%H%M%SZ", &tm);
  return buf.data();
}

SignedRequest Sign(const SigningInput& in, const Credentials& creds) {
  SignedRequest out;
  // Query: encoded pairs sorted by name, then value.
  std::vector<std::pair<std::string, std::string>> query;
  query.reserve(in.query.size());
  for (const auto& [k, v] : in.query) query.emplace_back(UriEncode(k, false), UriEncode(v, false));
  std::string query_in_order;
  for (const auto& [k, v] : query) {
    query_in_order += (query_in_order.empty() ? "" : "&") + k + "=" + v;
  }
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [k, v] : query) {
    canonical_query += (canonical_query.empty() ? "" : "&") + k + "=" + v;
  }
  std::string encoded_path = UriEncode(in.path, true);
  out.path_and_query = encoded_path + (query_in_order.empty() ? "" : "?" + query_in_order);

  const std::string amz_date = AmzDate(in.unix_seconds);
  HeaderList headers = in.headers;
  headers.emplace_back("x-amz-date", amz_date);
  headers.emplace_back("x-amz-content-sha256", in.payload_sha256);
  if (!creds.session_token.empty())
    headers.emplace_back("x-amz-security-token", creds.session_token);
  headers.emplace_back("host", in.host);
  out.headers = headers;
  if (creds.empty()) return out;

  std::vector<std::pair<std::string, std::string>> canonical_headers;
  canonical_headers.reserve(headers.size());
  for (const auto& [k, v] : headers) canonical_headers.emplace_back(Lower(k), Trim(v));
  std::sort(canonical_headers.begin(), canonical_headers.end());
  std::string header_block;
  std::string signed_headers;
  for (const auto& [k, v] : canonical_headers) {
    header_block += k + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + k;
  }
  out.canonical_request = in.method + "\n" + encoded_path + "\n" + canonical_query + "\n" +
                          header_block + "\n" + signed_headers + "\n" + in.payload_sha256;
  const std::string day = amz_date.substr(0, 8);
  const std::string scope = day + "/" + in.region + "/s3/aws4_request";
  out.string_to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(out.canonical_request);
  std::string key = Hmac("AWS4" + creds.secret_access_key, day);
  key = Hmac(key, in.region);
  key = Hmac(key, "s3");
  key = Hmac(key, "aws4_request");
  std::string sig = Hmac(key, out.string_to_sign);
  out.headers.emplace_back("Authorization",
                           "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                               ", SignedHeaders=" + signed_headers + ", Signature=" +
                               Hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size()));
  return out;
}

}  // namespace dreamdb::s3
