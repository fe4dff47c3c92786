// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Ref-name rules (spec/06-refs.md §2). Checks run in a fixed order so that every
// implementation reports the same rule for the same name (spec/vectors/refs/names.json):
//   1. empty  2. too_long  3. bad_char (first offending byte)
//   4. per segment, left to right: empty_segment, leading_dot, lock_suffix.

#include <string>
#include <string_view>

#include "dreamdb/store.h"
#include "src/base/encoding.h"

namespace dreamdb {
namespace {

constexpr size_t kMaxRefNameBytes = 255;

bool IsNameChar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

Status Invalid(std::string_view name, const std::string& why) {
  return InvalidArgument("invalid ref name " + Quote(name) + ": " + why);
}

}  // namespace

Status ValidateRefName(std::string_view name) {
  if (name.empty()) return InvalidArgument("invalid ref name '': the name is empty");
  if (name.size() > kMaxRefNameBytes) {
    return Invalid(
        name, "the name is " + std::to_string(name.size()) + " bytes long; the limit is 255 bytes");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c != '/' && !IsNameChar(c)) {
      return Invalid(name, "byte " + std::to_string(i) + " (" + Quote(name.substr(i, 1)) +
                               ") is not allowed; names use A-Z a-z 0-9 . _ - and '/' "
                               "between segments");
    }
  }
  size_t start = 0;
  while (true) {
    size_t end = name.find('/', start);
    std::string_view seg =
        name.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg.empty()) {
      return Invalid(name, "empty segment (the name starts or ends with '/' or contains '//')");
    }
    if (seg.front() == '.') {
      return Invalid(name, "segment " + Quote(seg) + " starts with '.'");
    }
    if (seg.size() >= 5 && seg.substr(seg.size() - 5) == ".lock") {
      return Invalid(name, "segment " + Quote(seg) + " ends with '.lock'");
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return Status::Ok();
}

bool IsSnapshotRef(std::string_view name) {
  // A snapshot has "snapshots" as some segment other than the last.
  size_t start = 0;
  while (true) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) return false;  // the last segment never counts
    if (name.substr(start, end - start) == "snapshots") return true;
    start = end + 1;
  }
}

}  // namespace dreamdb
