// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for object ids in text (spec/04-object-ids.md §3), the form every
// command line, ref file and JSON message carries: an id accepted prints back to exactly
// its text, and parsing never crashes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dreamdb/object_id.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dreamdb;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto id = ObjectId::Parse(text);
  if (id.ok() && id->ToString() != text) std::abort();
  if (id.ok()) (void)id->ShardPrefix();
  return 0;
}
