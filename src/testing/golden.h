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

}  // namespace dreamdb::testing

#endif  // DREAMDB_SRC_TESTING_GOLDEN_H_
