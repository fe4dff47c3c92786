// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Loading the golden vector files of spec/vectors/ in tests, with nlohmann::json (the JSON
// library the build already uses) rather than a reader per test. Test-only; header-only.
// Thread safety: the functions are pure apart from reading the file.

#ifndef DREAMDB_SRC_TESTING_GOLDEN_H_
#define DREAMDB_SRC_TESTING_GOLDEN_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace dreamdb::testing {

// The repository root: $DREAMDB_SOURCE_DIR (ctest sets it) or, failing that, the
// directory two levels above this header.
inline std::filesystem::path SourceRoot() {
  if (const char* dir = std::getenv("DREAMDB_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// The parsed file at `relative` (e.g. "spec/vectors/ids/ids.json"), object keys in file
// order. A missing or malformed file fails the calling test and returns null.
inline nlohmann::ordered_json LoadGoldenJson(const std::string& relative) {
  const std::filesystem::path path = SourceRoot() / relative;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path << " (set DREAMDB_SOURCE_DIR)";
    return nullptr;
  }
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(text.str(), nullptr,
                                                             /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    ADD_FAILURE() << "malformed JSON in " << path;
    return nullptr;
  }
  return doc;
}

// A golden file that is an array of flat objects whose values are strings or booleans
// (booleans as "true" / "false"). Anything else fails the calling test.
using GoldenRecord = std::map<std::string, std::string>;
inline std::vector<GoldenRecord> LoadGoldenRecords(const std::string& relative) {
  std::vector<GoldenRecord> out;
  const nlohmann::ordered_json doc = LoadGoldenJson(relative);
  if (!doc.is_array()) {
    if (!doc.is_null()) ADD_FAILURE() << relative << ": expected an array of objects";
    return out;
  }
  for (const auto& item : doc) {
    if (!item.is_object()) {
      ADD_FAILURE() << relative << ": expected an array of objects";
      return {};
    }
    GoldenRecord rec;
    for (const auto& [key, value] : item.items()) {
      if (value.is_string()) {
        rec[key] = value.get<std::string>();
      } else if (value.is_boolean()) {
        rec[key] = value.get<bool>() ? "true" : "false";
      } else {
        ADD_FAILURE() << relative << ": field " << key << " is neither a string nor a boolean";
        return {};
      }
    }
    out.push_back(std::move(rec));
  }
  return out;
}

// A text golden file (spec/vectors/*/*.txt: "key value..." lines and # comments) against
// the text a test generates: equal line by line, the first difference failing the calling
// test with its line number. With DREAMDB_UPDATE_GOLDEN=1 the file is rewritten first (a
// deliberate format change; see spec/08-versioning.md).
inline void CompareGoldenText(const std::string& got, const std::string& relative) {
  const std::filesystem::path path = SourceRoot() / relative;
  if (const char* up = std::getenv("DREAMDB_UPDATE_GOLDEN"); up != nullptr && *up == '1') {
    std::ofstream(path, std::ios::binary) << got;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "cannot open " << path << " (set DREAMDB_SOURCE_DIR)";
  std::stringstream want;
  want << in.rdbuf();
  std::istringstream a(got);
  std::istringstream b(want.str());
  std::string la;
  std::string lb;
  for (int line = 1;; ++line) {
    const bool ha = static_cast<bool>(std::getline(a, la));
    const bool hb = static_cast<bool>(std::getline(b, lb));
    if (!ha && !hb) break;
    ASSERT_EQ(la, lb) << "line " << line << " of " << path;
  }
}

// The values of the lines of a text golden file whose key is one of `keys` ("model" in
// "model 44564..."), in file order, as (key, rest of the line). A missing file fails the
// calling test and returns nothing.
inline std::vector<std::pair<std::string, std::string>> LoadGoldenLines(
    const std::string& relative, const std::vector<std::string>& keys) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::filesystem::path path = SourceRoot() / relative;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path << " (set DREAMDB_SOURCE_DIR)";
    return out;
  }
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    const std::string key = line.substr(0, space);
    for (const std::string& k : keys) {
      if (k == key) out.emplace_back(key, line.substr(space + 1));
    }
  }
  return out;
}

}  // namespace dreamdb::testing

#endif  // DREAMDB_SRC_TESTING_GOLDEN_H_
