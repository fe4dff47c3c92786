// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for the strict canonical CBOR decoder (spec/03-cbor.md §5): every
// input either fails with kCorrupt or decodes to a value whose canonical encoding is
// exactly the input (encode(decode(b)) == b). Anything else aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "src/cbor/cbor.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "cbor_decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dreamdb;
  const ByteView input(reinterpret_cast<const char*>(data), size);
  Result<cbor::Value> value = cbor::Decode(input);
  if (!value.ok()) {
    if (value.status().code() != StatusCode::kCorrupt) {
      Fail("decode failed with a code other than corrupt", value.status().ToString());
    }
    return 0;
  }
  Result<Bytes> again = cbor::Encode(*value);
  if (!again.ok()) Fail("accepted input does not re-encode", again.status().ToString());
  if (*again != input) Fail("encode(decode(b)) != b", cbor::ToDiagnostic(*value));
  // The decoded value equals itself decoded again, and printing it must not crash.
  Result<cbor::Value> twice = cbor::Decode(*again);
  if (!twice.ok() || !(*twice == *value)) Fail("decode(encode(v)) != v", "");
  (void)cbor::ToDiagnostic(*value);
  return 0;
}
