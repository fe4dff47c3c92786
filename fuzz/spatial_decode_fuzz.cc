// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for the spatial-index objects of spec/21: buckets (`DDBSPB01`),
// directory pages, index objects (canonical CBOR, with the optional `quantizer` and
// `graph` keys) and graph node pages (`DDBSPG01`). The first input byte picks the decoder
// (mod 6); the rest is the object. Properties (abort otherwise):
//   - errors are kCorrupt or kUnsupported (never a crash, never another code);
//   - an accepted input is canonical: encoding the decoded value gives the input back
//     (index objects: when the input has no unknown top-level keys, which readers ignore,
//     spec/08 §4; with them, the value must still round-trip).
// Modes 3 and 5 build a bucket or a node page from the input's bytes, encode it, and check
// that it decodes to the same value (the encoder and decoder agree on every field).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "src/cbor/cbor.h"
#include "src/dataset/vector_index.h"

namespace {

using namespace dreamdb;
using dreamdb::vindex::Bucket;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "spatial_decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckError(const Status& s, const char* decoder) {
  if (s.code() != StatusCode::kCorrupt && s.code() != StatusCode::kUnsupported) {
    Fail(decoder, "unexpected error code: " + s.ToString());
  }
}

uint64_t Take64(ByteView& in) {
  uint64_t v = 0;
  size_t n = std::min<size_t>(8, in.size());
  std::memcpy(&v, in.data(), n);
  in.remove_prefix(n);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 6;
  ByteView in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (mode) {
    case 0: {
      auto b = vindex::DecodeBucket(in);
      if (!b.ok()) {
        CheckError(b.status(), "DecodeBucket");
        break;
      }
      if (vindex::EncodeBucket(*b) != in) Fail("DecodeBucket", "accepted a non-canonical bucket");
      break;
    }
    case 1: {
      auto p = vindex::DecodeDirPage(in);
      if (!p.ok()) {
        CheckError(p.status(), "DecodeDirPage");
        break;
      }
      auto again = vindex::EncodeDirPage(*p);
      if (!again.ok() || *again != in) Fail("DecodeDirPage", "accepted a non-canonical page");
      break;
    }
    case 2: {
      auto ix = vindex::DecodeIndex(in);
      if (!ix.ok()) {
        CheckError(ix.status(), "DecodeIndex");
        break;
      }
      auto again = vindex::EncodeIndex(*ix);
      if (!again.ok())
        Fail("DecodeIndex", "its value does not encode: " + again.status().ToString());
      // Unknown top-level keys are ignored (spec/08 §4), so only an input made of known keys
      // must come back byte for byte; any accepted input must round-trip as a value.
      auto back = vindex::DecodeIndex(*again);
      if (!back.ok() || !(*back == *ix)) Fail("DecodeIndex", "round trip changed the index");
      bool only_known = true;
      if (auto v = cbor::Decode(in); v.ok()) {
        if (auto m = v->AsMap("index"); m.ok()) {
          for (const auto& [key, value] : (*m)->entries()) {
            (void)value;
            static const char* const kKnown[] = {"kind",    "format",  "field",     "algorithm",
                                                 "metric",  "bits",    "dim",       "cells",
                                                 "nprobe",  "model",   "parents",   "pages",
                                                 "entries", "buckets", "quantizer", "graph"};
            if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
              only_known = false;
            }
          }
        }
      }
      if (only_known && *again != in) Fail("DecodeIndex", "accepted a non-canonical index");
      break;
    }
    case 4: {
      auto p = vindex::DecodeNodePage(in);
      if (!p.ok()) {
        CheckError(p.status(), "DecodeNodePage");
        break;
      }
      if (vindex::EncodeNodePage(*p) != in) {
        Fail("DecodeNodePage", "accepted a non-canonical node page");
      }
      break;
    }
    case 5: {
      vindex::NodePage p;
      p.first = static_cast<uint32_t>(Take64(in) & 0xffffff);
      size_t n = 1 + static_cast<size_t>(Take64(in) % 64);
      for (size_t i = 0; i < n; ++i) {
        p.anchors.push_back(Take64(in));
        p.seg_tags.push_back(Take64(in));
        p.rows.push_back(static_cast<uint32_t>(Take64(in)));
      }
      p.block = Bytes(in);
      auto back = vindex::DecodeNodePage(vindex::EncodeNodePage(p));
      if (!back.ok()) {
        Fail("EncodeNodePage", "its output does not decode: " + back.status().ToString());
      }
      if (!(*back == p)) Fail("EncodeNodePage", "round trip changed the node page");
      break;
    }
    default: {
      Bucket b;
      b.cell = static_cast<uint32_t>(Take64(in));
      size_t n = static_cast<size_t>(Take64(in) % 64);
      for (size_t i = 0; i < n; ++i) {
        b.anchors.push_back(Take64(in));
        b.seg_tags.push_back(Take64(in));
        b.rows.push_back(static_cast<uint32_t>(Take64(in)));
      }
      b.codes = Bytes(in);
      auto back = vindex::DecodeBucket(vindex::EncodeBucket(b));
      if (!back.ok())
        Fail("EncodeBucket", "its output does not decode: " + back.status().ToString());
      if (!(*back == b)) Fail("EncodeBucket", "round trip changed the bucket");
      break;
    }
  }
  return 0;
}
