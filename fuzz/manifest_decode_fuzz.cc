// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for genesis and manifest objects (spec/13-manifests.md), and through
// them the schema's CBOR form (spec/10-schema.md) and the index references they embed
// (spec/11-anchor-index.md). Properties (abort otherwise): errors are kCorrupt,
// kUnsupported or kInvalidArgument (another kind of object); an accepted object re-encodes to
// exactly its bytes (the formats are canonical); a schema decoded from any CBOR value re-encodes
// and decodes to itself.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/btree/btree.h"
#include "src/cbor/cbor.h"
#include "src/columnar/schema_cbor.h"
#include "src/dataset/manifest.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "manifest_decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckCode(const char* what, const dreamdb::Status& s) {
  using dreamdb::StatusCode;
  // The codes of spec/vectors/manifests: invalid_argument for an object of another kind.
  if (s.code() != StatusCode::kCorrupt && s.code() != StatusCode::kUnsupported &&
      s.code() != StatusCode::kInvalidArgument) {
    Fail(what, "unexpected error code: " + s.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dreamdb;
  const ByteView input(reinterpret_cast<const char*>(data), size);
  auto m = dataset::DecodeManifest(input);
  if (m.ok()) {
    auto again = dataset::EncodeManifest(*m);
    if (!again.ok() || *again != input) Fail("manifest", "accepted bytes do not re-encode");
    (void)btree::IndexRefFromCbor(m->index, "fuzz");
    (void)btree::IndexRefFromCbor(m->tombstones, "fuzz");
  } else {
    CheckCode("DecodeManifest", m.status());
  }
  auto g = dataset::DecodeGenesis(input);
  if (g.ok()) {
    auto again = dataset::EncodeGenesis(*g);
    if (!again.ok() || *again != input) Fail("genesis", "accepted bytes do not re-encode");
  } else {
    CheckCode("DecodeGenesis", g.status());
  }
  auto value = cbor::Decode(input);
  if (value.ok()) {
    auto schema = columnar::SchemaFromCbor(*value);
    if (schema.ok()) {
      auto back = columnar::SchemaFromCbor(columnar::SchemaToCbor(*schema));
      if (!back.ok() || !(*back == *schema)) Fail("schema", "decode(encode(s)) != s");
    }
  }
  return 0;
}
