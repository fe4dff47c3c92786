// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §2.
#include "src/store/uri.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "dreamdb/store.h"
#include "src/base/encoding.h"

namespace dreamdb {
namespace {

constexpr size_t kMaxMemoryNameBytes = 255;

// The URI as messages show it: redacted, then quoted.
std::string Shown(std::string_view uri) { return Quote(RedactStoreUri(uri), 200); }

Status Bad(std::string_view uri, const std::string& why) {
  return InvalidArgument("store URI " + Shown(uri) + ": " + why);
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 pchar minus '%' (which always starts an escape), plus '/'.
bool IsPathChar(unsigned char c) {
  return IsAlpha(static_cast<char>(c)) || IsDigit(static_cast<char>(c)) ||
         std::strchr("-._~!$&'()*+,;=:@/", c) != nullptr;
}

std::string PercentEncodePath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (c != 0 && IsPathChar(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Makes `path` absolute and drops "." segments and empty segments.
Result<std::string> CleanPath(std::string_view uri, std::string_view path) {
  std::string full;
  if (path.empty() || path.front() != '/') {
    std::vector<char> buf(4096);
    while (getcwd(buf.data(), buf.size()) == nullptr) {
      if (errno != ERANGE) {
        return IoError("store URI " + Shown(uri) +
                       ": cannot resolve a relative path: getcwd: " + std::strerror(errno));
      }
      buf.resize(buf.size() * 2);
    }
    full = buf.data();
    full += '/';
  }
  full.append(path);
  std::string out;
  size_t start = 0;
  while (start <= full.size()) {
    size_t end = full.find('/', start);
    if (end == std::string::npos) end = full.size();
    std::string_view seg(full.data() + start, end - start);
    if (!seg.empty() && seg != ".") {
      out += '/';
      out.append(seg);
    }
    start = end + 1;
  }
  if (out.empty()) out = "/";
  return out;
}

Result<StoreUri> ParseFile(std::string_view uri, std::string_view rest) {
  // rest is what follows "file://": an empty authority then an absolute path.
  if (rest.empty()) return Bad(uri, "missing path; use file:///absolute/path");
  if (rest.front() != '/') {
    // The host may carry userinfo ("user:password@host"): show it redacted.
    std::string host = RedactStoreUri("file://" + std::string(rest.substr(0, rest.find('/'))));
    return Bad(uri, "file URIs take no host (found " + Quote(host.substr(7)) +
                        "); use file:///absolute/path or a plain path");
  }
  std::string path;
  for (size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (c == '?' || c == '#') {
      return Bad(uri, std::string("'") + c +
                          "' is not allowed: file URIs have no query or fragment "
                          "(percent-encode it as " +
                          (c == '?' ? "%3F" : "%23") + ")");
    }
    if (c == '%') {
      bool valid = i + 2 < rest.size() && HexValue(rest[i + 1]) >= 0 && HexValue(rest[i + 2]) >= 0;
      if (!valid) {
        return Bad(uri, "malformed percent-escape at byte " + std::to_string(i + 7) +
                            " (expected '%' and two hex digits)");
      }
      c = static_cast<char>(HexValue(rest[i + 1]) * 16 + HexValue(rest[i + 2]));
      i += 2;
    }
    if (c == '\0') return Bad(uri, "the path contains a NUL byte");
    path.push_back(c);
  }
  StoreUri out;
  out.scheme = StoreUri::Scheme::kFile;
  ASSIGN_OR_RETURN(out.path, CleanPath(uri, path));
  out.canonical = "file://" + PercentEncodePath(out.path);
  return out;
}

Result<StoreUri> ParseMemory(std::string_view uri, std::string_view name) {
  StoreUri out;
  out.scheme = StoreUri::Scheme::kMemory;
  if (name.size() > kMaxMemoryNameBytes) {
    return Bad(uri, "memory store name is " + std::to_string(name.size()) +
                        " bytes long; the limit is 255");
  }
  for (char c : name) {
    if (!(IsAlpha(c) || IsDigit(c) || c == '.' || c == '_' || c == '-')) {
      std::string shown = RedactStoreUri("memory://" + std::string(name)).substr(9);
      return Bad(uri, "memory store name " + Quote(shown) + " may only use A-Z a-z 0-9 . _ -");
    }
  }
  out.memory_name = std::string(name);
  out.canonical = "memory://" + out.memory_name;
  return out;
}

// True for query parameter names that carry secrets (spec/05-backend.md §2.6).
bool IsSecretParamName(std::string_view name) {
  std::string lower;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '%' && i + 2 < name.size() && HexValue(name[i + 1]) >= 0 &&
        HexValue(name[i + 2]) >= 0) {
      c = static_cast<char>(HexValue(name[i + 1]) * 16 + HexValue(name[i + 2]));
      i += 2;
    }
    lower.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  for (std::string_view word :
       {"secret", "token", "passw", "pwd", "key", "sig", "credential", "auth"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

// Whether `name` is one of the s3:// options (spec/05-backend.md §9.1), none of which
// holds a secret.
bool IsS3OptionName(std::string_view name) {
  return name == "endpoint" || name == "region" || name == "addressing" || name == "profile";
}

// Appends `params` ("a=1&b=2", the text after '?' or '#') with secret values replaced.
// For an s3:// URI (`s3`) every parameter but the s3:// options counts as secret, and a
// parameter without '=' becomes "***" whole: those are never options, only pasted text.
void AppendRedactedParams(std::string_view params, bool s3, std::string* out) {
  size_t start = 0;
  for (;;) {
    size_t end = params.find_first_of("&;", start);
    std::string_view param = params.substr(start, end - start);
    size_t eq = param.find('=');
    if (eq != std::string_view::npos &&
        (IsSecretParamName(param.substr(0, eq)) || (s3 && !IsS3OptionName(param.substr(0, eq))))) {
      out->append(param.substr(0, eq + 1));
      out->append("***");
    } else if (eq == std::string_view::npos && s3 && !param.empty()) {
      out->append("***");
    } else {
      out->append(param);
    }
    if (end == std::string_view::npos) return;
    out->push_back(params[end]);
    start = end + 1;
  }
}

std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

// Percent-decodes `s`; nullopt for a malformed escape.
std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || HexValue(s[i + 1]) < 0 || HexValue(s[i + 2]) < 0) return std::nullopt;
    out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
    i += 2;
  }
  return out;
}

// "http(s)://host[:port]" with an optional trailing '/'; nullopt otherwise.
std::optional<std::string> CleanEndpoint(std::string_view e) {
  while (!e.empty() && e.back() == '/') e.remove_suffix(1);
  size_t sep = e.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view scheme = e.substr(0, sep);
  std::string_view host = e.substr(sep + 3);
  if ((scheme != "http" && scheme != "https") || host.empty()) return std::nullopt;
  for (char c : host) {
    if (!(IsAlpha(c) || IsDigit(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']')) {
      return std::nullopt;
    }
  }
  return std::string(e);
}

Result<StoreUri> ParseS3(std::string_view uri, std::string_view rest) {
  // Errors quote the URI without its query: a secret pasted there must not be echoed.
  const std::string shown = S3UriForMessages(uri);
  auto bad = [&](const std::string& why) { return Bad(shown, why); };
  size_t q = rest.find('?');
  std::string_view query = q == std::string_view::npos ? "" : rest.substr(q + 1);
  std::string_view location = rest.substr(0, q);
  if (location.find('#') != std::string_view::npos) return bad("'#' is not allowed");
  if (location.find('@') != std::string_view::npos) {
    return bad(
        "'@' is not allowed (credentials never go in the URI: they come from the "
        "environment or ~/.aws/credentials; write %40 for an '@' in the prefix)");
  }
  size_t slash = location.find('/');
  std::string_view bucket = location.substr(0, slash);
  bool bucket_ok = bucket.size() >= 3 && bucket.size() <= 63;
  for (char c : bucket)
    bucket_ok = bucket_ok && ((c >= 'a' && c <= 'z') || IsDigit(c) || c == '.' || c == '-');
  bucket_ok = bucket_ok && (IsAlpha(bucket.front()) || IsDigit(bucket.front())) &&
              (IsAlpha(bucket.back()) || IsDigit(bucket.back()));
  if (!bucket_ok) {
    return bad("bucket " + Quote(bucket) +
               " must be 3 to 63 bytes of a-z 0-9 . - starting and ending with a letter or digit");
  }
  StoreUri out;
  out.scheme = StoreUri::Scheme::kS3;
  out.bucket = std::string(bucket);
  if (slash != std::string_view::npos) {
    auto decoded = PercentDecode(location.substr(slash + 1));
    if (!decoded) return bad("malformed percent-escape in the prefix");
    std::string_view p = *decoded;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find('/', start);
      if (end == std::string_view::npos) end = p.size();
      std::string_view seg = p.substr(start, end - start);
      if (seg == "..") return bad("'..' is not allowed in an S3 prefix (keys are not paths)");
      if (seg.find('\0') != std::string_view::npos) return bad("the prefix contains a NUL byte");
      if (!seg.empty() && seg != ".") {
        if (!out.prefix.empty()) out.prefix += '/';
        out.prefix.append(seg);
      }
      start = end + 1;
    }
  }
  std::string endpoint, region, addressing, profile;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    std::string* slot = key == "endpoint"     ? &endpoint
                        : key == "region"     ? &region
                        : key == "addressing" ? &addressing
                        : key == "profile"    ? &profile
                                              : nullptr;
    if (slot == nullptr) {
      // A parameter without '=' is pasted text, not a misspelt option: never quote it.
      return bad((eq == std::string_view::npos ? std::string("a query parameter without '='")
                                               : "unknown option " + Quote(key, 40)) +
                 " (supported: endpoint, region, addressing, profile; credentials come from "
                 "the environment or ~/.aws/credentials, never from the URI)");
    }
    if (!value || value->empty()) return bad("option " + std::string(key) + " has no valid value");
    *slot = *value;
  }
  bool endpoint_given = !endpoint.empty();
  if (endpoint.empty()) endpoint = EnvOr("AWS_ENDPOINT_URL_S3", EnvOr("AWS_ENDPOINT_URL", ""));
  endpoint_given = endpoint_given || !endpoint.empty();
  if (region.empty()) region = EnvOr("AWS_REGION", EnvOr("AWS_DEFAULT_REGION", "us-east-1"));
  for (char c : region) {
    if (!(IsAlpha(c) || IsDigit(c) || c == '-'))
      return bad("region " + Quote(region) + " is malformed");
  }
  if (endpoint.empty()) endpoint = "https://s3." + region + ".amazonaws.com";
  auto clean = CleanEndpoint(endpoint);
  if (!clean) {
    return bad("endpoint " + Quote(RedactStoreUri(endpoint), 120) +
               " must be http://host[:port] or https://host[:port]");
  }
  out.endpoint = *clean;
  out.region = region;
  if (addressing.empty()) addressing = endpoint_given ? "path" : "virtual";
  if (addressing != "path" && addressing != "virtual") {
    return bad("addressing must be 'path' or 'virtual', not " + Quote(addressing, 40));
  }
  out.path_style = addressing == "path";
  out.profile = profile.empty() ? EnvOr("AWS_PROFILE", "default") : profile;
  out.canonical = "s3://" + out.bucket +
                  (out.prefix.empty() ? "" : "/" + PercentEncodePath(out.prefix)) +
                  "?endpoint=" + PercentEncodePath(out.endpoint) + "&region=" + out.region +
                  "&addressing=" + addressing;
  return out;
}

}  // namespace

std::string RedactStoreUri(std::string_view uri) {
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return std::string(uri);  // a local path
  std::string out(uri.substr(0, sep + 3));
  std::string_view rest = uri.substr(sep + 3);
  // Userinfo ends at the last '@', wherever it is: a secret may hold '/', '?' or '#'
  // unencoded, and hiding a little too much is better than showing any of it. An
  // authority is empty when the path follows at once ("file:///a@b" has no userinfo).
  if (!rest.empty() && rest.front() != '/') {
    size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
      out += "***";
      rest.remove_prefix(at);
    }
  }
  const bool s3 = sep == 2 && (uri[0] == 's' || uri[0] == 'S') && uri[1] == '3';
  size_t query = rest.find_first_of("?#");
  out.append(rest.substr(0, query));
  while (query != std::string_view::npos) {
    out.push_back(rest[query]);
    size_t next = rest.find('#', query + 1);  // a fragment ends the query
    AppendRedactedParams(
        rest.substr(query + 1,
                    next == std::string_view::npos ? std::string_view::npos : next - query - 1),
        s3, &out);
    query = next;
  }
  return out;
}

std::string S3UriForMessages(std::string_view uri) {
  std::string shown = RedactStoreUri(uri);  // userinfo is "***" now: the first '?' starts the query
  size_t sep = shown.find("://");
  size_t cut = shown.find_first_of("?#", sep == std::string::npos ? 0 : sep + 3);
  if (cut != std::string::npos) shown.replace(cut + 1, std::string::npos, "***");
  return shown;
}

Result<StoreUri> ParseStoreUri(std::string_view uri) {
  if (uri.empty()) return InvalidArgument("store URI is empty");
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) {
    // A plain local path.
    if (uri.find('\0') != std::string_view::npos) return Bad(uri, "the path contains a NUL byte");
    StoreUri out;
    out.scheme = StoreUri::Scheme::kFile;
    ASSIGN_OR_RETURN(out.path, CleanPath(uri, uri));
    out.canonical = "file://" + PercentEncodePath(out.path);
    return out;
  }
  std::string_view scheme_text = uri.substr(0, sep);
  bool well_formed = !scheme_text.empty() && IsAlpha(scheme_text.front());
  for (char c : scheme_text) {
    well_formed = well_formed && (IsAlpha(c) || IsDigit(c) || c == '+' || c == '-' || c == '.');
  }
  if (!well_formed) {
    return Bad(uri, "malformed scheme " + Quote(scheme_text) +
                        " (a scheme is a letter followed by letters, digits, '+', '-' or '.')");
  }
  std::string scheme(scheme_text);
  for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  std::string_view rest = uri.substr(sep + 3);
  if (scheme == "memory") return ParseMemory(uri, rest);
  if (scheme == "file") return ParseFile(uri, rest);
  if (scheme == "s3") return ParseS3(uri, rest);
  return Bad(uri, "unknown scheme " + Quote(scheme) +
                      " (supported: memory://, file://, s3://; a string without '://' is a "
                      "local path)");
}

}  // namespace dreamdb
