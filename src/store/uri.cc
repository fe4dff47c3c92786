// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §2.
#include "src/store/uri.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "src/base/encoding.h"

namespace dreamdb {
namespace {

constexpr size_t kMaxMemoryNameBytes = 255;

Status Bad(std::string_view uri, const std::string& why) {
  return InvalidArgument("store URI " + Quote(uri, 200) + ": " + why);
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
        return IoError("store URI " + Quote(uri, 200) +
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
    size_t slash = rest.find('/');
    return Bad(uri, "file URIs take no host (found " + Quote(rest.substr(0, slash)) +
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
      return Bad(uri, "memory store name " + Quote(name) + " may only use A-Z a-z 0-9 . _ -");
    }
  }
  out.memory_name = std::string(name);
  out.canonical = "memory://" + out.memory_name;
  return out;
}

}  // namespace

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
    return Unsupported("store URI " + Quote(uri, 200) + ": the S3 backend is not built yet");
  }
  return Bad(uri, "unknown scheme " + Quote(scheme) +
                      " (supported: memory://, file://, s3://; a string without '://' is a "
                      "local path)");
}

}  // namespace dreamdb
