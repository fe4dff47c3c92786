// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for genesis and manifest objects (spec/13-manifests.md), and through
// them the schema's CBOR form (spec/10-schema.md) and the index references they embed
// (spec/11-anchor-index.md). Properties (abort otherwise): errors are kCorrupt,
// kUnsupported or kInvalidArgument (another kind of object); an accepted object re-encodes to
// exactly its bytes (the formats are canonical) except for keys this reader does not know,
// which it ignores and a rewrite drops (spec/08 §4.2, §4.3) -- and nothing else may differ; a
// schema decoded from any CBOR value re-encodes and decodes to itself.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/btree/btree.h"
#include "src/cbor/cbor.h"
#include "src/columnar/schema_cbor.h"
#include "src/dataset/manifest.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "manifest_decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Every key the manifest, genesis and schema formats define (spec/13, spec/10 §4). A key
// outside this list is unknown to this reader; a known key in the wrong place is refused.
constexpr std::string_view kKnownKeys[] = {
    "added",   "algorithm",  "bits",    "cells",       "count",   "deleted",
    "delta",   "dim",        "dropped", "dtype",       "fields",  "format",
    "genesis", "index",      "indexes", "kind",        "message", "meta",
    "metric",  "mime",       "name",    "next_anchor", "nonce",   "optional",
    "parents", "quantizer",  "raw",     "replaced",    "schema",  "shape",
    "time_ns", "tombstones", "type",    "unit",        "version", "writer"};

bool IsKnownKey(std::string_view key) {
  for (std::string_view k : kKnownKeys) {
    if (k == key) return true;
  }
  return false;
}

// Where a map sits: a schema field and a field's index spec have key sets of their own
// (spec/10 §4); a key another level defines is unknown there, and readers ignore it.
enum class Where { kOther, kFields, kField, kIndexSpec };

constexpr std::string_view kFieldKeys[] = {"name",  "type", "optional", "dim",  "dtype",
                                           "shape", "mime", "unit",     "index"};
constexpr std::string_view kIndexSpecKeys[] = {"algorithm", "bits", "cells",
                                               "metric",    "raw",  "quantizer"};

template <size_t N>
bool In(const std::string_view (&keys)[N], std::string_view key) {
  for (std::string_view k : keys) {
    if (k == key) return true;
  }
  return false;
}

bool KnownAt(Where where, std::string_view key) {
  if (where == Where::kField) return In(kFieldKeys, key);
  if (where == Where::kIndexSpec) return In(kIndexSpecKeys, key);
  return IsKnownKey(key);
}

// True when `out` is `in` with zero or more unknown map keys removed, at any depth, and
// nothing else changed.
bool DropsOnlyUnknownKeys(const dreamdb::cbor::Value& in, const dreamdb::cbor::Value& out,
                          Where where = Where::kOther) {
  using dreamdb::cbor::Type;
  if (in.type() != out.type()) return false;
  if (in.type() == Type::kArray) {
    const auto& a = in.array();
    const auto& b = out.array();
    if (a.size() != b.size()) return false;
    const Where inner = where == Where::kFields ? Where::kField : Where::kOther;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!DropsOnlyUnknownKeys(a[i], b[i], inner)) return false;
    }
    return true;
  }
  if (in.type() == Type::kMap) {
    size_t kept = 0;
    for (const auto& [key, v] : in.map().entries()) {
      const dreamdb::cbor::Value* o = out.map().Find(key);
      if (o == nullptr) {
        if (KnownAt(where, key)) return false;
        continue;
      }
      Where inner = Where::kOther;
      if (key == "fields") inner = Where::kFields;
      if (key == "index" && where == Where::kField) inner = Where::kIndexSpec;
      if (!DropsOnlyUnknownKeys(v, *o, inner)) return false;
      ++kept;
    }
    return kept == out.map().entries().size();
  }
  return in == out;
}

// An accepted object's re-encoding `again` equals the input, or differs from it only by the
// unknown keys the reader ignored.
bool ReencodesFaithfully(dreamdb::ByteView input, const dreamdb::Bytes& again) {
  if (again == input) return true;
  auto in = dreamdb::cbor::Decode(input);
  auto out = dreamdb::cbor::Decode(again);
  return in.ok() && out.ok() && DropsOnlyUnknownKeys(*in, *out);
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
    if (!again.ok() || !ReencodesFaithfully(input, *again)) {
      Fail("manifest", "accepted bytes do not re-encode");
    }
    (void)btree::IndexRefFromCbor(m->index, "fuzz");
    (void)btree::IndexRefFromCbor(m->tombstones, "fuzz");
  } else {
    CheckCode("DecodeManifest", m.status());
  }
  auto g = dataset::DecodeGenesis(input);
  if (g.ok()) {
    auto again = dataset::EncodeGenesis(*g);
    if (!again.ok() || !ReencodesFaithfully(input, *again)) {
      Fail("genesis", "accepted bytes do not re-encode");
    }
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
