// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for the JSON schema a user hands `dreamdb create --schema`
// (spec/10-schema.md §5): no input may crash or exhaust the stack; a schema accepted is
// printed (ToJson) and read back to the same schema.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "dreamdb/schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dreamdb;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto schema = Schema::FromJson(text);
  if (!schema.ok()) {
    if (schema.status().code() != StatusCode::kInvalidArgument) {
      std::fprintf(stderr, "schema_json_fuzz: unexpected code: %s\n",
                   schema.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  auto back = Schema::FromJson(schema->ToJson());
  if (!back.ok() || back->fields() != schema->fields()) {
    std::fprintf(stderr, "schema_json_fuzz: ToJson does not read back: %s\n",
                 schema->ToJson().c_str());
    std::abort();
  }
  return 0;
}
