// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for segment objects (spec/12-segments.md). Each input is tried as is
// and "resealed" (header and block sums recomputed, so mutations get past the checksums
// and reach the structural checks), against several field specs, through DecodeSegment
// and through a SegmentReader over an in-memory fetcher. Properties (abort otherwise):
//   - errors are kCorrupt, kUnsupported or kInvalidArgument (type mismatch);
//   - an accepted format 3 input (what writers write) is canonical: EncodeSegment(decoded)
//     == input, unless its header carries keys this build does not know (which readers
//     ignore, spec/08 §4.2); an accepted format 1 input re-encodes (as format 3) to a
//     segment that decodes to the same column;
//   - an accepted sq8 segment (format 2 or 3, spec/12 §9, lossy) re-encodes as sq8 to a
//     segment that decodes to values within the normative error bound of its own values
//     (its codes cannot be recomputed exactly from the reconstructions, §9.3);
//   - the ranged reader agrees with DecodeSegment: ReadAll succeeds on exactly the inputs
//     DecodeSegment accepts, with the same column, and ReadRows returns the same rows.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/schema.h"
#include "src/cbor/cbor.h"
#include "src/columnar/segment.h"

namespace {

using namespace dreamdb;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "segment_decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::vector<FieldSpec> Specs() {
  std::vector<FieldSpec> specs;
  auto add = [&](FieldType t) -> FieldSpec& {
    FieldSpec f;
    f.name = "f";
    f.type = t;
    specs.push_back(f);
    return specs.back();
  };
  add(FieldType::kInt64);
  add(FieldType::kFloat64);
  add(FieldType::kBool);
  add(FieldType::kString);
  add(FieldType::kCategorical);
  add(FieldType::kTimestamp);
  add(FieldType::kBlob).mime = "application/octet-stream";
  add(FieldType::kEmbedding).dim = 4;
  add(FieldType::kEmbedding).dim = 1;
  // raw = false: the writer's encoding is sq8 (format 2); the decoder reads both encodings
  // whatever the field declares.
  IndexSpec no_raw;
  no_raw.keep_raw = false;
  add(FieldType::kEmbedding).dim = 4;
  specs.back().index = no_raw;
  FieldSpec& a = add(FieldType::kArray);
  a.dtype = DType::kU8;
  a.shape = {2, 3};
  return specs;
}

std::string Sum16(ByteView b) {
  auto d = ObjectId::Of(b).digest();
  return std::string(reinterpret_cast<const char*>(d.data()), 16);
}

uint64_t LoadU64At(const Bytes& in, uint64_t pos) {
  uint64_t v;
  std::memcpy(&v, in.data() + pos, 8);
  return v;
}

// Format 3 `data`/`dict_data` sums (spec/12 §4.4): blocks of `per` whole values, cut by the
// offsets buffer at [off_pos, off_pos + off_len) of the input. Empty when the offsets do
// not describe blocks inside the buffer (the reader refuses those anyway).
Bytes ValueBlockSums(const Bytes& in, uint64_t off_pos, uint64_t off_len, uint64_t data_pos,
                     uint64_t data_len, uint64_t per) {
  Bytes sums;
  if (off_len < 8 || off_len % 8 != 0 || per == 0) return sums;
  const uint64_t n = off_len / 8 - 1;
  if (n / per >= 4096) return sums;
  for (uint64_t k = 0; k * per < n; ++k) {
    uint64_t lo = LoadU64At(in, off_pos + k * per * 8);
    uint64_t hi = LoadU64At(in, off_pos + std::min(n, (k + 1) * per) * 8);
    if (lo > hi || hi > data_len) return Bytes();
    sums += Sum16(ByteView(in).substr(data_pos + lo, hi - lo));
  }
  return sums;
}

// Recomputes block sums (for buffers inside the input) and the header sum. Returns the
// input unchanged when it has no parseable header.
Bytes Reseal(const Bytes& in) {
  if (in.size() < 28) return in;
  uint32_t header_len;
  std::memcpy(&header_len, in.data() + 8, 4);
  if (header_len > in.size() - 28) return in;
  Result<cbor::Value> header = cbor::Decode(ByteView(in).substr(28, header_len));
  if (!header.ok() || header->type() != cbor::Type::kMap) return in;
  cbor::Map top = header->map();
  const cbor::Value* format = top.Find("format");
  const bool format3 =
      format != nullptr && format->type() == cbor::Type::kUnsigned && format->raw_uint() == 3;
  const cbor::Value* buffers = top.Find("buffers");
  if (buffers != nullptr && buffers->type() == cbor::Type::kArray) {
    cbor::Array fixed;
    uint64_t last_off_pos = 0;
    uint64_t last_off_len = 0;
    for (const cbor::Value& b : buffers->array()) {
      if (b.type() != cbor::Type::kMap) {
        fixed.push_back(b);
        continue;
      }
      cbor::Map m = b.map();
      const cbor::Value* off = m.Find("offset");
      const cbor::Value* len = m.Find("length");
      const cbor::Value* blk = m.Find("block");
      const cbor::Value* name = m.Find("name");
      const std::string_view bname = name != nullptr && name->type() == cbor::Type::kText
                                         ? std::string_view(name->string_value())
                                         : "";
      const bool placed = off && len && off->type() == cbor::Type::kUnsigned &&
                          len->type() == cbor::Type::kUnsigned && off->raw_uint() <= in.size() &&
                          len->raw_uint() <= in.size() - off->raw_uint();
      if (placed && (bname == "offsets" || bname == "dict_offsets")) {
        last_off_pos = off->raw_uint();
        last_off_len = len->raw_uint();
      }
      if (format3 && placed && blk && blk->type() == cbor::Type::kUnsigned &&
          (bname == "data" || bname == "dict_data")) {
        m.Set("sums",
              cbor::Value::Bytes(ValueBlockSums(in, last_off_pos, last_off_len, off->raw_uint(),
                                                len->raw_uint(), blk->raw_uint())));
      } else if (off && len && blk && off->type() == cbor::Type::kUnsigned &&
                 len->type() == cbor::Type::kUnsigned && blk->type() == cbor::Type::kUnsigned &&
                 blk->raw_uint() > 0 && off->raw_uint() <= in.size() &&
                 len->raw_uint() <= in.size() - off->raw_uint() &&
                 len->raw_uint() / blk->raw_uint() < 4096) {
        Bytes sums;
        for (uint64_t o = 0; o < len->raw_uint(); o += blk->raw_uint()) {
          sums += Sum16(ByteView(in).substr(off->raw_uint() + o,
                                            std::min(blk->raw_uint(), len->raw_uint() - o)));
        }
        m.Set("sums", cbor::Value::Bytes(std::move(sums)));
      }
      fixed.push_back(cbor::Value::FromMap(std::move(m)));
    }
    top.Set("buffers", cbor::Value::FromArray(std::move(fixed)));
  }
  Result<Bytes> encoded = cbor::Encode(cbor::Value::FromMap(std::move(top)));
  if (!encoded.ok()) return in;
  Bytes out = in.substr(0, 8);
  uint32_t new_len = static_cast<uint32_t>(encoded->size());
  out.append(reinterpret_cast<const char*>(&new_len), 4);
  out += Sum16(*encoded);
  out += *encoded;
  out += in.substr(28 + header_len);
  return out;
}

cbor::Map HeaderOf(const Bytes& in) {
  uint32_t header_len;
  std::memcpy(&header_len, in.data() + 8, 4);
  Result<cbor::Value> header = cbor::Decode(ByteView(in).substr(28, header_len));
  if (!header.ok()) Fail("accepted segment has an undecodable header", "");
  return header->map();
}

uint64_t FormatOf(const Bytes& in) { return HeaderOf(in).Find("format")->raw_uint(); }

// True for an accepted sq8 segment (format 2, or 3 with an encoding).
bool IsSq8(const Bytes& in) {
  const cbor::Map header = HeaderOf(in);
  const uint64_t format = header.Find("format")->raw_uint();
  return format == 2 || (format == 3 && header.Find("encoding") != nullptr);
}

// True when the header (or a buffer entry) has a key outside its format's set.
bool HasUnknownKeys(const Bytes& in) {
  const cbor::Map header = HeaderOf(in);
  const bool encoded = header.Find("format")->raw_uint() >= 2;
  for (const auto& [key, v] : header.entries()) {
    if (key != "kind" && key != "format" && key != "type" && key != "rows" && key != "dim" &&
        key != "dtype" && key != "shape" && key != "buffers" && !(encoded && key == "encoding")) {
      return true;
    }
  }
  for (const cbor::Value& b : header.Find("buffers")->array()) {
    for (const auto& [key, v] : b.map().entries()) {
      if (key != "name" && key != "offset" && key != "length" && key != "block" && key != "sums") {
        return true;
      }
    }
  }
  return false;
}

void CheckCode(const Status& s, const char* where) {
  StatusCode c = s.code();
  if (c != StatusCode::kCorrupt && c != StatusCode::kUnsupported &&
      c != StatusCode::kInvalidArgument) {
    Fail(where, s.ToString());
  }
}

bool SameRow(const Column& a, uint64_t i, const Column& b, uint64_t j) {
  if (a.IsValid(i) != b.IsValid(j)) return false;
  if (!a.IsValid(i)) return true;
  if (a.field().FixedWidth() == 0) return a.BytesAt(i) == b.BytesAt(j);
  return a.FixedAt(i) == b.FixedAt(j);
}

// Re-encodes decoded sq8 values as sq8 and checks the round trip stays within the bound
// of spec/12 §9.2 (the decoded values are finite, so encoding must succeed).
void CheckSq8ReEncodes(const Column& decoded, const FieldSpec& spec) {
  FieldSpec sq8 = spec;
  IndexSpec no_raw;
  no_raw.keep_raw = false;
  sq8.index = no_raw;
  Result<Bytes> again = columnar::EncodeSegment(decoded, sq8);
  if (!again.ok()) Fail("accepted sq8 segment does not re-encode", again.status().ToString());
  Result<Column> back = columnar::DecodeSegment(*again, spec);
  if (!back.ok()) Fail("re-encoded sq8 segment does not decode", back.status().ToString());
  for (uint64_t r = 0; r < decoded.length(); ++r) {
    if (decoded.IsValid(r) != back->IsValid(r)) Fail("sq8 re-encoding changed a null", "");
    if (!decoded.IsValid(r)) continue;
    std::span<const float> x = decoded.FloatsAt(r);
    std::span<const float> y = back->FloatsAt(r);
    const float lo = *std::min_element(x.begin(), x.end());
    const float hi = *std::max_element(x.begin(), x.end());
    const double bound = (static_cast<double>(hi) - lo) / 510.0 +
                         std::ldexp(std::max(std::fabs(lo), std::fabs(hi)), -22);
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::fabs(static_cast<double>(x[i]) - y[i]) > bound) {
        Fail("sq8 re-encoding exceeds the error bound", std::to_string(r));
      }
    }
  }
}

void RunOne(const Bytes& input, const FieldSpec& spec) {
  Result<Column> whole = columnar::DecodeSegment(input, spec);
  if (!whole.ok()) CheckCode(whole.status(), "DecodeSegment");
  if (whole.ok() && IsSq8(input)) {
    CheckSq8ReEncodes(*whole, spec);
  } else if (whole.ok()) {
    FieldSpec plain = spec;
    plain.index.reset();
    Result<Bytes> again = columnar::EncodeSegment(*whole, plain);
    if (!again.ok()) Fail("accepted segment does not re-encode", again.status().ToString());
    if (FormatOf(input) == 3) {
      if (*again != input && !HasUnknownKeys(input)) Fail("accepted segment is not canonical", "");
    } else {
      // Format 1 is read only: today's writer rewrites it as format 3, same values.
      Result<Column> back = columnar::DecodeSegment(*again, plain);
      if (!back.ok()) Fail("re-encoded format 1 segment does not decode", back.status().ToString());
      for (uint64_t r = 0; r < whole->length(); ++r) {
        if (!SameRow(*whole, r, *back, r)) Fail("format 1 segment re-encodes to other values", "");
      }
    }
  }

  columnar::FetchRange fetch = [&input](uint64_t offset, uint64_t length) -> Result<Bytes> {
    if (offset > input.size()) return InvalidArgument("offset past the end");
    return input.substr(offset, length);
  };
  Result<columnar::SegmentReader> reader = columnar::SegmentReader::Open(fetch, spec);
  if (!reader.ok()) {
    CheckCode(reader.status(), "SegmentReader::Open");
    if (whole.ok())
      Fail("Open refused a segment DecodeSegment accepts", reader.status().ToString());
    return;
  }
  const uint64_t rows = reader->rows();
  std::vector<uint32_t> pick;
  if (rows > 0) {
    for (uint64_t r : {uint64_t{0}, rows / 3, rows / 2, rows / 2, rows - 1}) {
      pick.push_back(static_cast<uint32_t>(r));
    }
  }
  Result<Column> some = reader->ReadRows(pick);
  if (!some.ok()) {
    CheckCode(some.status(), "ReadRows");
    if (whole.ok()) Fail("ReadRows failed on a valid segment", some.status().ToString());
  } else if (whole.ok()) {
    for (size_t i = 0; i < pick.size(); ++i) {
      if (!SameRow(*some, i, *whole, pick[i])) Fail("ReadRows differs from DecodeSegment", "");
    }
  }
  Result<Column> all = reader->ReadAll();
  // A ranged reader cannot see bytes past the end the header describes (whole-object reads
  // check the object id): that is the only way ReadAll may accept what DecodeSegment refuses.
  if (all.ok() != whole.ok() && !(all.ok() && input.size() > reader->object_size())) {
    Fail("ReadAll and DecodeSegment disagree", all.status().ToString());
  }
  if (!all.ok()) {
    CheckCode(all.status(), "ReadAll");
    return;
  }
  if (!whole.ok()) return;
  if (all->values() != whole->values() || all->offsets() != whole->offsets() ||
      all->data() != whole->data() || all->validity() != whole->validity()) {
    Fail("ReadAll differs from DecodeSegment", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<FieldSpec> specs = Specs();
  const Bytes input(reinterpret_cast<const char*>(data), size);
  const Bytes resealed = Reseal(input);
  for (const FieldSpec& spec : specs) {
    RunOne(input, spec);
    if (resealed != input) RunOne(resealed, spec);
  }
  return 0;
}
