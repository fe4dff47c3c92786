// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §2.
#include "src/store/uri.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
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

// Appends `params` ("a=1&b=2", the text after '?' or '#') with secret values replaced.
void AppendRedactedParams(std::string_view params, std::string* out) {
  size_t start = 0;
  for (;;) {
    size_t end = params.find_first_of("&;", start);
    std::string_view param = params.substr(start, end - start);
    size_t eq = param.find('=');
    if (eq != std::string_view::npos && IsSecretParamName(param.substr(0, eq))) {
      out->append(param.substr(0, eq + 1));
      out->append("***");
    } else {
      out->append(param);
    }
    if (end == std::string_view::npos) return;
    out->push_back(params[end]);
    start = end + 1;
  }
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
  size_t query = rest.find_first_of("?#");
  out.append(rest.substr(0, query));
  while (query != std::string_view::npos) {
    out.push_back(rest[query]);
    size_t next = rest.find('#', query + 1);  // a fragment ends the query
    AppendRedactedParams(
        rest.substr(query + 1,
                    next == std::string_view::npos ? std::string_view::npos : next - query - 1),
        &out);
    query = next;
  }
  return out;
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
  if (scheme == "s3") {
    return Unsupported("store URI " + Shown(uri) + ": the S3 backend is not built yet");
  }
  return Bad(uri, "unknown scheme " + Quote(scheme) +
                      " (supported: memory://, file://, s3://; a string without '://' is a "
                      "local path)");
}

}  // namespace dreamdb
