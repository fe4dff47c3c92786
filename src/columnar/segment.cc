// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Segment encoding, decoding and ranged reads (spec/12-segments.md).

#include "src/columnar/segment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/base/little_endian.h"
#include "src/cbor/cbor.h"
#include "src/object/hash_many.h"

namespace dreamdb::columnar {
namespace {

// ---- Layout rules (spec/12-segments.md §3, §4) ----

enum BufId : int {
  kValidity,
  kValues,
  kOffsets,
  kData,
  kDictOffsets,
  kDictData,
  kScales,  // sq8: per row, float32 min and max
  kCodes,   // sq8: per row, dim u8 codes
  kNumBufIds
};
constexpr std::array<std::string_view, kNumBufIds> kBufNames = {
    "validity", "values", "offsets", "data", "dict_offsets", "dict_data", "scales", "codes"};

// Format 1: values as stored (float32 for embeddings). Format 2: an embedding in the sq8
// encoding (spec/12-segments.md §9). Both are read only. Format 3 (what writers write):
// either, `encoding` telling which, with checksum blocks sized for random reads (§4.4).
constexpr uint64_t kFormatPlain = 1;
constexpr uint64_t kFormatEncoded = 2;
constexpr uint64_t kFormatBlocks = 3;
constexpr std::string_view kSq8 = "sq8";
constexpr uint64_t kSq8ScaleBytes = 8;
constexpr uint32_t kSq8MaxCode = 255;

constexpr uint64_t kDataBlock = 65536;
constexpr uint64_t kMinFixedBlock = 256;
constexpr uint64_t kMaxFixedBlock = 65536;
// Format 3: fixed-width blocks hold as many whole rows as fit here (at least one), and
// variable-width values share a block up to about this many bytes.
constexpr uint64_t kSmallBlock = 256;
// Upper bound for any single buffer's length: far beyond any real segment (sums in a
// 64 MiB header bound it anyway), low enough that offset arithmetic never overflows.
constexpr uint64_t kMaxBufferBytes = uint64_t{1} << 56;

bool IsVariable(FieldType t) { return t == FieldType::kString || t == FieldType::kBlob; }

// Whole rows of `width` bytes, about 16 rows, clamped to [256, 65536] bytes; one row when
// a row is larger than 65536 bytes.
uint64_t FixedBlock(uint64_t width) {
  uint64_t target = std::clamp<uint64_t>(width * 16, kMinFixedBlock, kMaxFixedBlock);
  return std::max<uint64_t>(1, target / width) * width;
}

// Format 3 (spec/12-segments.md §4.4): whole rows, as many as fit in 256 bytes, at least
// one.
uint64_t FixedBlock3(uint64_t width) { return std::max<uint64_t>(1, kSmallBlock / width) * width; }

// Format 3 `data`/`dict_data`: values per block for `n` values of `length` bytes in all.
uint64_t ValuesPerBlock(uint64_t n, uint64_t length) {
  if (n == 0) return 1;
  if (length == 0) return n;
  return std::clamp<uint64_t>(kSmallBlock * n / length, 1, n);
}

uint64_t Align8(uint64_t x) { return (x + 7) & ~uint64_t{7}; }

std::string Sum16(ByteView bytes) {
  auto digest = ObjectId::Of(bytes).digest();
  return std::string(reinterpret_cast<const char*>(digest.data()), kSegmentSumBytes);
}

std::string TypeDescription(FieldType type, uint32_t dim, DType dtype,
                            const std::vector<uint32_t>& shape) {
  std::string out(FieldTypeName(type));
  if (type == FieldType::kEmbedding) {
    out += "(dim=" + std::to_string(dim) + ")";
  } else if (type == FieldType::kArray) {
    out += "(" + std::string(DTypeName(dtype)) + ", [";
    for (size_t i = 0; i < shape.size(); ++i) {
      if (i > 0) out += ",";
      out += std::to_string(shape[i]);
    }
    out += "])";
  }
  return out;
}

// Buffers of a type, in layout order, validity excluded.
std::vector<BufId> TypeBuffers(FieldType type, bool sq8) {
  if (sq8) return {kScales, kCodes};
  if (type == FieldType::kCategorical) return {kValues, kDictOffsets, kDictData};
  if (IsVariable(type)) return {kOffsets, kData};
  return {kValues};
}

// Bytes per row of the values buffer (categorical: u32 codes).
uint64_t ValueWidth(const FieldSpec& f) {
  return f.type == FieldType::kCategorical ? 4 : f.FixedWidth();
}

// `value_width`: bytes per row of `values`, or of `codes` (the dim) for sq8. For `data`
// and `dict_data` in format 3 the block is counted in values: see ValuesPerBlock.
uint64_t BlockFor(BufId id, uint64_t value_width, uint64_t format) {
  if (format >= kFormatBlocks) {
    switch (id) {
      case kValidity:
        return FixedBlock3(1);
      case kValues:
      case kCodes:
        return FixedBlock3(value_width);
      case kScales:
        return FixedBlock3(kSq8ScaleBytes);
      default:
        return FixedBlock3(8);  // offsets, dict_offsets
    }
  }
  switch (id) {
    case kValidity:
      return FixedBlock(1);
    case kValues:
    case kCodes:
      return FixedBlock(value_width);
    case kScales:
      return FixedBlock(kSq8ScaleBytes);
    case kOffsets:
    case kDictOffsets:
      return FixedBlock(8);
    case kData:
    case kDictData:
    default:
      return kDataBlock;
  }
}

Status SegCorrupt(const std::string& message) { return Corrupt("segment: " + message); }

// ---- sq8 (spec/12-segments.md §9) ----

// Reconstruction of code `c` of a row with float32 min `lo` and max `hi`: binary64
// arithmetic, one rounding to float32. Code 0 gives lo and code 255 gives hi exactly.
float Sq8Value(float lo, float hi, uint32_t c) {
  const double v = (static_cast<double>(lo) * static_cast<double>(kSq8MaxCode - c) +
                    static_cast<double>(hi) * static_cast<double>(c)) /
                   static_cast<double>(kSq8MaxCode);
  return static_cast<float>(v);
}

// Quantizes one row of finite values into 8 bytes of scales and dim codes.
void Sq8EncodeRow(std::span<const float> x, char* scales, uint8_t* codes) {
  float lo = x[0];
  float hi = x[0];
  for (float v : x) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  lo += 0.0F;  // -0 becomes +0: one encoding per row
  hi += 0.0F;
  std::memcpy(scales, &lo, 4);
  std::memcpy(scales + 4, &hi, 4);
  if (lo == hi) {
    std::memset(codes, 0, x.size());
    return;
  }
  const double range = static_cast<double>(hi) - static_cast<double>(lo);
  for (size_t i = 0; i < x.size(); ++i) {
    const double q = (static_cast<double>(x[i]) - static_cast<double>(lo)) *
                     static_cast<double>(kSq8MaxCode) / range;
    const double c = std::floor(q + 0.5);
    codes[i] = static_cast<uint8_t>(std::clamp(c, 0.0, static_cast<double>(kSq8MaxCode)));
  }
}

bool IsNegativeZero(float v) { return v == 0.0F && std::signbit(v); }

// Checks one row's scales and codes (spec/12-segments.md §9.3) and, for a valid row,
// writes its dim reconstructed values to `out` as float32 LE bytes (4 x dim; may be null
// to check only).
Status Sq8DecodeRow(uint64_t row, bool valid, ByteView scales, ByteView codes, char* out) {
  if (!valid) {
    if (!std::all_of(scales.begin(), scales.end(), [](char c) { return c == 0; }) ||
        !std::all_of(codes.begin(), codes.end(), [](char c) { return c == 0; })) {
      return SegCorrupt("null row " + std::to_string(row) + " has non-zero sq8 scales or codes");
    }
    return Status::Ok();
  }
  float lo;
  float hi;
  std::memcpy(&lo, scales.data(), 4);
  std::memcpy(&hi, scales.data() + 4, 4);
  if (!std::isfinite(lo) || !std::isfinite(hi) || IsNegativeZero(lo) || IsNegativeZero(hi) ||
      !(lo <= hi)) {
    return SegCorrupt("row " + std::to_string(row) + " has sq8 min " + std::to_string(lo) +
                      " and max " + std::to_string(hi) +
                      " (expected finite values, min <= max, no negative zero)");
  }
  uint8_t min_code = 255;
  uint8_t max_code = 0;
  for (char ch : codes) {
    const auto c = static_cast<uint8_t>(ch);
    min_code = std::min(min_code, c);
    max_code = std::max(max_code, c);
  }
  if (lo == hi ? max_code != 0 : (min_code != 0 || max_code != kSq8MaxCode)) {
    return SegCorrupt("row " + std::to_string(row) + " has sq8 codes " + std::to_string(min_code) +
                      ".." + std::to_string(max_code) +
                      (lo == hi ? " but min == max (expected all 0)" : " (expected 0..255)"));
  }
  if (out != nullptr) {
    for (size_t i = 0; i < codes.size(); ++i) {
      const float v = Sq8Value(lo, hi, static_cast<uint8_t>(codes[i]));
      std::memcpy(out + i * sizeof(float), &v, sizeof(float));
    }
  }
  return Status::Ok();
}

// Validates the parts of a field spec that shape values, whatever its name.
Status ValidateShape(const FieldSpec& f) {
  FieldSpec copy = f;
  copy.name = "f";
  Schema tmp;
  return tmp.Add(std::move(copy));
}

}  // namespace

// ---- Parsed header ----

struct BufferInfo {
  BufId id;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t block = 1;
  std::string sums;
  // Format 3 `data`/`dict_data`: blocks of `block` whole values (of `values` in all), their
  // bounds given by the offsets buffer (spec/12-segments.md §4.4). block_start/block_len
  // do not apply to such a buffer.
  bool by_values = false;
  uint64_t values = 0;

  uint64_t num_blocks() const {
    return by_values ? (values + block - 1) / block : (length + block - 1) / block;
  }
  uint64_t block_start(uint64_t b) const { return offset + b * block; }
  uint64_t block_len(uint64_t b) const { return std::min(block, length - b * block); }
};

struct SegmentReader::Layout {
  FieldSpec spec;  // type, dim, dtype, shape as stored
  uint64_t rows = 0;
  uint64_t header_end = 0;
  uint64_t object_size = 0;
  uint64_t width = 0;      // values (sq8: codes) buffer bytes per row (0 for string/blob)
  uint64_t format = 0;     // kFormatPlain, kFormatEncoded or kFormatBlocks
  bool sq8 = false;        // encoding "sq8": scales + codes instead of values
  uint64_t dict_size = 0;  // categorical entries
  std::vector<BufferInfo> buffers;
  std::array<int, kNumBufIds> index{};  // into buffers, -1 if absent

  const BufferInfo* Find(BufId id) const {
    return index[id] < 0 ? nullptr : &buffers[static_cast<size_t>(index[id])];
  }
};
using Layout = SegmentReader::Layout;

struct SegmentReader::Header {
  Bytes prefix;     // object bytes [0, prefix.size()), at least the whole header
  FieldSpec field;  // the field the layout was parsed for
  Layout layout;
};

namespace {

// "DDB" + three uppercase letters (the framed type) + two digits (its version):
// spec/02-object-model.md §2.3.
bool LooksFramed(ByteView magic) {
  if (magic.size() != 8 || magic.substr(0, 3) != "DDB") return false;
  for (size_t i = 3; i < 6; ++i) {
    if (magic[i] < 'A' || magic[i] > 'Z') return false;
  }
  return magic[6] >= '0' && magic[6] <= '9' && magic[7] >= '0' && magic[7] <= '9';
}

// Checks the fixed prefix and returns the end of the header (28 + header_len).
Result<uint64_t> ParsePrefix(ByteView bytes) {
  if (bytes.size() < 8) {
    return SegCorrupt("truncated: " + std::to_string(bytes.size()) +
                      " bytes, a segment starts with a 28-byte prefix");
  }
  ByteView magic = bytes.substr(0, 8);
  if (magic != kSegmentMagic) {
    if (LooksFramed(magic) && magic.substr(0, 6) == "DDBSEG") {
      if (magic.substr(6) > "01") {
        return Unsupported("segment format " + Quote(magic) +
                           " is newer than this build reads ('DDBSEG01')");
      }
      return SegCorrupt("bad magic " + Quote(magic) + " (expected 'DDBSEG01')");
    }
    if (LooksFramed(magic)) {
      return Unsupported("framed object type " + Quote(magic) +
                         " is unknown to this build (expected a segment, 'DDBSEG01')");
    }
    return SegCorrupt("bad magic " + Quote(magic) + " (expected 'DDBSEG01')");
  }
  if (bytes.size() < kSegmentPrefixBytes) {
    return SegCorrupt("truncated: " + std::to_string(bytes.size()) +
                      " bytes, a segment starts with a 28-byte prefix");
  }
  uint32_t header_len = LoadU32(bytes.data() + 8);
  if (header_len == 0 || header_len > kSegmentMaxHeaderBytes) {
    return SegCorrupt("header length " + std::to_string(header_len) + " is out of range (1.." +
                      std::to_string(kSegmentMaxHeaderBytes) + ")");
  }
  return kSegmentPrefixBytes + header_len;
}

// Parses and checks the header. REQUIRES: bytes.size() >= ParsePrefix(bytes).
Result<Layout> ParseLayout(ByteView bytes, const FieldSpec& field) {
  ASSIGN_OR_RETURN(uint64_t header_end, ParsePrefix(bytes));
  if (bytes.size() < header_end) {
    return SegCorrupt("truncated header: have " + std::to_string(bytes.size()) +
                      " bytes, the header ends at " + std::to_string(header_end));
  }
  ByteView header = bytes.substr(kSegmentPrefixBytes, header_end - kSegmentPrefixBytes);
  if (Sum16(header) != bytes.substr(12, kSegmentSumBytes)) {
    return SegCorrupt("header checksum mismatch");
  }
  cbor::DecodeLimits limits;
  limits.max_depth = 4;
  Result<cbor::Value> decoded = cbor::Decode(header, limits);
  if (!decoded.ok()) return decoded.status().WithContext("segment header");
  ASSIGN_OR_RETURN(const cbor::Map* m, decoded->AsMap("segment header"));

  Layout L;
  L.header_end = header_end;
  L.index.fill(-1);

  ASSIGN_OR_RETURN(const cbor::Value* kind_v, cbor::Require(*m, "kind"));
  ASSIGN_OR_RETURN(std::string_view kind, kind_v->AsText("segment kind"));
  if (kind != "dreamdb.segment") return SegCorrupt("kind is " + Quote(kind));
  ASSIGN_OR_RETURN(const cbor::Value* format_v, cbor::Require(*m, "format"));
  ASSIGN_OR_RETURN(uint64_t format, format_v->AsUInt("segment format"));
  if (format != kFormatPlain && format != kFormatEncoded && format != kFormatBlocks) {
    if (format > kFormatBlocks) {
      return Unsupported("segment format " + std::to_string(format) +
                         " is newer than this build reads (1, 2 and 3)");
    }
    return SegCorrupt("segment format " + std::to_string(format) + " does not exist");
  }
  L.format = format;
  ASSIGN_OR_RETURN(const cbor::Value* type_v, cbor::Require(*m, "type"));
  ASSIGN_OR_RETURN(std::string_view type_name, type_v->AsText("segment type"));
  {
    Result<FieldType> t = ParseFieldType(type_name);
    if (!t.ok()) return Unsupported("segment: " + t.status().message());
    L.spec.type = *t;
  }
  ASSIGN_OR_RETURN(const cbor::Value* rows_v, cbor::Require(*m, "rows"));
  ASSIGN_OR_RETURN(L.rows, rows_v->AsUInt("segment rows"));
  if (L.rows > kSegmentMaxRows) {
    return SegCorrupt("rows " + std::to_string(L.rows) + " exceeds " +
                      std::to_string(kSegmentMaxRows));
  }
  if (L.spec.type == FieldType::kEmbedding) {
    ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(*m, "dim"));
    ASSIGN_OR_RETURN(uint64_t dim, v->AsUInt("segment dim"));
    if (dim > UINT32_MAX) return SegCorrupt("dim " + std::to_string(dim) + " is out of range");
    L.spec.dim = static_cast<uint32_t>(dim);
  } else if (L.spec.type == FieldType::kArray) {
    ASSIGN_OR_RETURN(const cbor::Value* dv, cbor::Require(*m, "dtype"));
    ASSIGN_OR_RETURN(std::string_view dtype, dv->AsText("segment dtype"));
    Result<DType> d = ParseDType(dtype);
    if (!d.ok()) return Unsupported("segment: " + d.status().message());
    L.spec.dtype = *d;
    ASSIGN_OR_RETURN(const cbor::Value* sv, cbor::Require(*m, "shape"));
    ASSIGN_OR_RETURN(const cbor::Array* shape, sv->AsArray("segment shape"));
    if (shape->size() > 64) return SegCorrupt("array rank " + std::to_string(shape->size()));
    for (const cbor::Value& e : *shape) {
      ASSIGN_OR_RETURN(uint64_t n, e.AsUInt("segment shape entry"));
      if (n > UINT32_MAX) return SegCorrupt("shape entry " + std::to_string(n));
      L.spec.shape.push_back(static_cast<uint32_t>(n));
    }
  }
  // Unknown keys are ignored (spec/08-versioning.md §4.2); known keys that do not apply
  // to the type are refused.
  for (const auto& [key, v] : m->entries()) {
    (void)v;
    if ((key == "dim" && L.spec.type != FieldType::kEmbedding) ||
        ((key == "dtype" || key == "shape") && L.spec.type != FieldType::kArray)) {
      return SegCorrupt("header key " + Quote(key) + " does not apply to type " +
                        std::string(FieldTypeName(L.spec.type)));
    }
  }
  if (Status s = ValidateShape(L.spec); !s.ok()) return SegCorrupt(s.message());
  // Format 2 names its encoding, format 3 when there is one; in format 1 `encoding` is an
  // unknown key (ignored).
  const bool has_encoding = m->Find("encoding") != nullptr;
  if (format == kFormatEncoded || (format == kFormatBlocks && has_encoding)) {
    ASSIGN_OR_RETURN(const cbor::Value* enc_v, cbor::Require(*m, "encoding"));
    ASSIGN_OR_RETURN(std::string_view encoding, enc_v->AsText("segment encoding"));
    if (encoding != kSq8) {
      return Unsupported("segment encoding " + Quote(encoding) + " is unknown to this build " +
                         "(it reads 'sq8')");
    }
    if (L.spec.type != FieldType::kEmbedding) {
      return SegCorrupt("encoding 'sq8' applies to embeddings, not to type " +
                        std::string(FieldTypeName(L.spec.type)));
    }
    L.sq8 = true;
  }

  // The segment must hold what the field expects.
  if (L.spec.type != field.type ||
      (field.type == FieldType::kEmbedding && L.spec.dim != field.dim) ||
      (field.type == FieldType::kArray &&
       (L.spec.dtype != field.dtype || L.spec.shape != field.shape))) {
    return InvalidArgument("segment holds " +
                           TypeDescription(L.spec.type, L.spec.dim, L.spec.dtype, L.spec.shape) +
                           " values but field " + Quote(field.name) + " is " +
                           TypeDescription(field.type, field.dim, field.dtype, field.shape));
  }
  L.width = L.sq8 ? L.spec.dim : ValueWidth(L.spec);

  // Buffers.
  ASSIGN_OR_RETURN(const cbor::Value* buffers_v, cbor::Require(*m, "buffers"));
  ASSIGN_OR_RETURN(const cbor::Array* buffers, buffers_v->AsArray("segment buffers"));
  std::vector<BufId> expected = TypeBuffers(L.spec.type, L.sq8);
  if (buffers->size() == expected.size() + 1) {
    expected.insert(expected.begin(), kValidity);
  } else if (buffers->size() != expected.size()) {
    return SegCorrupt("a " + std::string(FieldTypeName(L.spec.type)) + " segment has " +
                      std::to_string(expected.size()) + " or " +
                      std::to_string(expected.size() + 1) + " buffers, not " +
                      std::to_string(buffers->size()));
  }
  uint64_t pos = header_end;
  for (size_t i = 0; i < expected.size(); ++i) {
    const BufId id = expected[i];
    const std::string what = "segment buffer " + std::to_string(i);
    ASSIGN_OR_RETURN(const cbor::Map* bm, (*buffers)[i].AsMap(what));
    ASSIGN_OR_RETURN(const cbor::Value* name_v, cbor::Require(*bm, "name"));
    ASSIGN_OR_RETURN(std::string_view name, name_v->AsText(what + " name"));
    if (name != kBufNames[id]) {
      return SegCorrupt("buffer " + std::to_string(i) + " is " + Quote(name) + ", expected " +
                        Quote(kBufNames[id]));
    }
    BufferInfo b;
    b.id = id;
    ASSIGN_OR_RETURN(const cbor::Value* off_v, cbor::Require(*bm, "offset"));
    ASSIGN_OR_RETURN(b.offset, off_v->AsUInt(what + " offset"));
    ASSIGN_OR_RETURN(const cbor::Value* len_v, cbor::Require(*bm, "length"));
    ASSIGN_OR_RETURN(b.length, len_v->AsUInt(what + " length"));
    ASSIGN_OR_RETURN(const cbor::Value* block_v, cbor::Require(*bm, "block"));
    ASSIGN_OR_RETURN(b.block, block_v->AsUInt(what + " block"));
    ASSIGN_OR_RETURN(const cbor::Value* sums_v, cbor::Require(*bm, "sums"));
    ASSIGN_OR_RETURN(std::string_view sums, sums_v->AsBytes(what + " sums"));
    b.sums = std::string(sums);

    const std::string bname = "buffer " + Quote(kBufNames[id]);
    if (b.offset != Align8(pos)) {
      return SegCorrupt(bname + " offset is " + std::to_string(b.offset) + ", expected " +
                        std::to_string(Align8(pos)));
    }
    uint64_t want_len = 0;
    bool fixed_len = true;
    switch (id) {
      case kValidity:
        want_len = (L.rows + 7) / 8;
        if (L.rows == 0) return SegCorrupt("validity buffer in a segment of 0 rows");
        break;
      case kValues:
      case kCodes:
        want_len = L.rows * L.width;  // < 2^32 * 2^24: no overflow
        break;
      case kScales:
        want_len = L.rows * kSq8ScaleBytes;
        break;
      case kOffsets:
        want_len = (L.rows + 1) * 8;
        break;
      case kDictOffsets:
        fixed_len = false;
        if (b.length < 8 || b.length % 8 != 0 || b.length / 8 - 1 > L.rows) {
          return SegCorrupt(bname + " length " + std::to_string(b.length) +
                            " is not 8 x (entries+1) with entries <= rows");
        }
        L.dict_size = b.length / 8 - 1;
        break;
      default:
        fixed_len = false;
        if (b.length > kMaxBufferBytes) return SegCorrupt(bname + " is too long");
        break;
    }
    if (fixed_len && b.length != want_len) {
      return SegCorrupt(bname + " length is " + std::to_string(b.length) + ", expected " +
                        std::to_string(want_len) + " for " + std::to_string(L.rows) + " rows");
    }
    uint64_t want_block = 0;
    if (format == kFormatBlocks && (id == kData || id == kDictData)) {
      b.by_values = true;
      b.values = id == kData ? L.rows : L.dict_size;
      want_block = ValuesPerBlock(b.values, b.length);
    } else {
      want_block = BlockFor(id, L.width, format);
    }
    if (b.block != want_block) {
      return SegCorrupt(bname + " block size is " + std::to_string(b.block) + ", expected " +
                        std::to_string(want_block) + (b.by_values ? " values" : ""));
    }
    if (b.sums.size() != b.num_blocks() * kSegmentSumBytes) {
      return SegCorrupt(bname + " has " + std::to_string(b.sums.size()) +
                        " bytes of sums, expected " +
                        std::to_string(b.num_blocks() * kSegmentSumBytes));
    }
    pos = b.offset + b.length;
    L.index[id] = static_cast<int>(L.buffers.size());
    L.buffers.push_back(std::move(b));
  }
  L.object_size = pos;
  return L;
}

// Block `index` of `b` holds object bytes [start, start + bytes.size()).
// `digest`: the BLAKE3-256 of its `size` bytes.
Status CheckBlockSum(const BufferInfo& b, uint64_t index, uint64_t start, uint64_t size,
                     const Digest& digest) {
  const ByteView sum(reinterpret_cast<const char*>(digest.data()), kSegmentSumBytes);
  if (sum != ByteView(b.sums).substr(index * kSegmentSumBytes, kSegmentSumBytes)) {
    return SegCorrupt("checksum mismatch in buffer " + Quote(kBufNames[b.id]) + " block " +
                      std::to_string(index) + " (object bytes " + std::to_string(start) + ".." +
                      std::to_string(start + size) + ")");
  }
  return Status::Ok();
}

Status VerifyBlock(const BufferInfo& b, uint64_t index, uint64_t start, ByteView bytes) {
  return CheckBlockSum(b, index, start, bytes.size(), ObjectId::Of(bytes).digest());
}

// The offsets buffer that bounds the values of a variable-width buffer.
BufId OffsetsOf(BufId data) { return data == kDictData ? kDictOffsets : kOffsets; }

// Format 3: the offsets entries bounding block `k` of a by-values buffer.
std::pair<uint64_t, uint64_t> BlockEntries(const BufferInfo& b, uint64_t k) {
  return {k * b.block, std::min(b.values, (k + 1) * b.block)};
}

// Format 3: object bytes [start, end) of block `k` of a by-values buffer, given the two
// bounding offsets entries (`lo`, `hi`) read from its verified offsets buffer.
Result<std::pair<uint64_t, uint64_t>> ValueBlockBytes(const BufferInfo& b, uint64_t k, uint64_t lo,
                                                      uint64_t hi) {
  if (lo > hi || hi > b.length) {
    return SegCorrupt("buffer " + Quote(kBufNames[b.id]) + " block " + std::to_string(k) +
                      " spans " + std::to_string(lo) + ".." + std::to_string(hi) + " of a " +
                      std::to_string(b.length) + "-byte buffer");
  }
  return std::make_pair(b.offset + lo, b.offset + hi);
}

// Offsets of a variable-width buffer pair: entries[0] == 0, non-decreasing, last == size.
Status CheckOffsets(ByteView offsets, uint64_t data_size, std::string_view name) {
  const uint64_t n = offsets.size() / 8;
  uint64_t prev = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t o = LoadU64(offsets.data() + i * 8);
    if ((i == 0 && o != 0) || o < prev) {
      return SegCorrupt(std::string(name) + " entry " + std::to_string(i) + " is " +
                        std::to_string(o) + " (must start at 0 and never decrease)");
    }
    prev = o;
  }
  if (prev != data_size) {
    return SegCorrupt(std::string(name) + " end at " + std::to_string(prev) + " but the data has " +
                      std::to_string(data_size) + " bytes");
  }
  return Status::Ok();
}

bool BitSet(ByteView bitmap, uint64_t i) {
  return (static_cast<uint8_t>(bitmap[i / 8]) >> (i % 8)) & 1;
}

bool AllZero(ByteView bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

// A validity buffer is absent or has a null row, and no bit set past the last row.
Status CheckValidity(const Layout& L, ByteView validity) {
  if (validity.empty()) return Status::Ok();
  if (L.rows % 8 != 0 && (static_cast<uint8_t>(validity.back()) >> (L.rows % 8)) != 0) {
    return SegCorrupt("validity bits past the last row are not zero");
  }
  bool any_null = false;
  for (uint64_t r = 0; r < L.rows && !any_null; ++r) any_null = !BitSet(validity, r);
  if (!any_null) return SegCorrupt("validity buffer present but no row is null");
  return Status::Ok();
}

// Checks the buffers of a plain layout (string or blob; fixed-width values stored as
// they are, i.e. not sq8 and not categorical) for the canonical form and returns views of
// them in Column's layout. The validity buffer was checked by the caller.
Result<SegmentBuffers> CheckPlain(const Layout& L, ByteView whole, ByteView validity) {
  auto view = [&](BufId id) -> ByteView {
    const BufferInfo* b = L.Find(id);
    return b == nullptr ? ByteView() : whole.substr(b->offset, b->length);
  };
  auto valid = [&](uint64_t r) { return validity.empty() || BitSet(validity, r); };
  SegmentBuffers out;
  out.rows = L.rows;
  out.validity = validity;
  if (L.spec.type == FieldType::kString || L.spec.type == FieldType::kBlob) {
    out.offsets = view(kOffsets);
    out.data = view(kData);
    RETURN_IF_ERROR(CheckOffsets(out.offsets, out.data.size(), "offsets"));
    if (!validity.empty()) {
      for (uint64_t r = 0; r < L.rows; ++r) {
        if (!valid(r) &&
            LoadU64(out.offsets.data() + r * 8) != LoadU64(out.offsets.data() + r * 8 + 8)) {
          return SegCorrupt("null row " + std::to_string(r) + " has a non-empty value");
        }
      }
    }
    return out;
  }
  out.values = view(kValues);
  if (L.spec.type == FieldType::kBool) {
    for (uint64_t r = 0; r < L.rows; ++r) {
      if (static_cast<uint8_t>(out.values[r]) > 1) {
        return SegCorrupt("bool value at row " + std::to_string(r) + " is not 0 or 1");
      }
    }
  }
  if (!validity.empty()) {
    for (uint64_t r = 0; r < L.rows; ++r) {
      if (!valid(r) && !AllZero(out.values.substr(r * L.width, L.width))) {
        return SegCorrupt("null row " + std::to_string(r) + " has a non-zero value");
      }
    }
  }
  return out;
}

// Builds the column from fully verified buffers, checking the canonical form.
Result<Column> AssembleWhole(const Layout& L, const FieldSpec& field, ByteView whole) {
  auto view = [&](BufId id) -> ByteView {
    const BufferInfo* b = L.Find(id);
    return b == nullptr ? ByteView() : whole.substr(b->offset, b->length);
  };
  ByteView validity = view(kValidity);
  RETURN_IF_ERROR(CheckValidity(L, validity));
  auto valid = [&](uint64_t r) { return validity.empty() || BitSet(validity, r); };

  if (L.sq8) {
    ByteView scales = view(kScales);
    ByteView codes = view(kCodes);
    const uint64_t dim = L.spec.dim;
    std::string values(L.rows * dim * sizeof(float), '\0');
    for (uint64_t r = 0; r < L.rows; ++r) {
      RETURN_IF_ERROR(Sq8DecodeRow(r, valid(r), scales.substr(r * kSq8ScaleBytes, kSq8ScaleBytes),
                                   codes.substr(r * dim, dim),
                                   values.data() + r * dim * sizeof(float)));
    }
    Result<Column> c =
        Column::FromBuffers(field, L.rows, std::string(validity), std::move(values), "", "");
    if (!c.ok()) return SegCorrupt(c.status().message());
    return c;
  }

  switch (L.spec.type) {
    case FieldType::kCategorical: {
      ByteView codes = view(kValues);
      ByteView dict_offsets = view(kDictOffsets);
      ByteView dict_data = view(kDictData);
      RETURN_IF_ERROR(CheckOffsets(dict_offsets, dict_data.size(), "dict_offsets"));
      std::vector<ByteView> dict(L.dict_size);
      std::unordered_set<ByteView> seen;
      for (uint64_t i = 0; i < L.dict_size; ++i) {
        uint64_t a = LoadU64(dict_offsets.data() + i * 8);
        uint64_t b = LoadU64(dict_offsets.data() + i * 8 + 8);
        dict[i] = dict_data.substr(a, b - a);
        if (!seen.insert(dict[i]).second) {
          return SegCorrupt("dictionary entry " + std::to_string(i) + " repeats an earlier one");
        }
      }
      Bytes offsets;
      offsets.reserve((L.rows + 1) * 8);
      AppendU64(&offsets, 0);
      Bytes data;
      uint64_t next_new = 0;  // codes appear in first-occurrence order
      for (uint64_t r = 0; r < L.rows; ++r) {
        uint32_t code = LoadU32(codes.data() + r * 4);
        if (!valid(r)) {
          if (code != 0)
            return SegCorrupt("null row " + std::to_string(r) + " has code " +
                              std::to_string(code) + ", expected 0");
        } else {
          if (code > next_new || code >= L.dict_size) {
            return SegCorrupt(
                "row " + std::to_string(r) + " has code " + std::to_string(code) +
                " (dictionary of " + std::to_string(L.dict_size) +
                " entries in first-occurrence order expects <= " + std::to_string(next_new) + ")");
          }
          if (code == next_new) ++next_new;
          data.append(dict[code]);
        }
        AppendU64(&offsets, data.size());
      }
      if (next_new != L.dict_size) {
        return SegCorrupt("dictionary has " + std::to_string(L.dict_size) +
                          " entries but rows use " + std::to_string(next_new));
      }
      Result<Column> c = Column::FromBuffers(field, L.rows, std::string(validity), "",
                                             std::move(offsets), std::move(data));
      if (!c.ok()) return SegCorrupt(c.status().message());
      return c;
    }
    default: {  // string, blob and fixed-width values: stored in Column's layout
      ASSIGN_OR_RETURN(SegmentBuffers b, CheckPlain(L, whole, validity));
      Result<Column> c =
          Column::FromBuffers(field, L.rows, std::string(b.validity), std::string(b.values),
                              std::string(b.offsets), std::string(b.data));
      if (!c.ok()) return SegCorrupt(c.status().message());
      return c;
    }
  }
}

}  // namespace

// ---- Encoding ----

bool UsesSq8(const FieldSpec& field) {
  return field.type == FieldType::kEmbedding && field.index.has_value() && !field.index->keep_raw;
}

Result<Bytes> EncodeSegment(const Column& column) { return EncodeSegment(column, column.field()); }

Result<Bytes> EncodeSegment(const Column& column, const FieldSpec& f) {
  if (Status s = ValidateShape(f); !s.ok()) {
    return InvalidArgument("cannot encode column " + Quote(f.name) + ": " + s.message());
  }
  const FieldSpec& got = column.field();
  if (got.type != f.type || (f.type == FieldType::kEmbedding && got.dim != f.dim) ||
      (f.type == FieldType::kArray && (got.dtype != f.dtype || got.shape != f.shape))) {
    return InvalidArgument("cannot encode column " + Quote(got.name) + " of " +
                           TypeDescription(got.type, got.dim, got.dtype, got.shape) + " as field " +
                           Quote(f.name) + " of " +
                           TypeDescription(f.type, f.dim, f.dtype, f.shape));
  }
  const uint64_t rows = column.length();
  if (rows > kSegmentMaxRows) {
    return InvalidArgument("column " + Quote(f.name) + " has " + std::to_string(rows) +
                           " rows; a segment holds at most " + std::to_string(kSegmentMaxRows));
  }
  const bool sq8 = UsesSq8(f);
  const uint64_t width = sq8 ? f.dim : ValueWidth(f);
  const bool has_nulls = column.NullCount() > 0;

  // Canonical buffers (spec/12-segments.md §5): nulls hold zeros / empty values.
  std::vector<std::pair<BufId, Bytes>> owned;
  std::vector<std::pair<BufId, ByteView>> bufs;
  auto add_owned = [&](BufId id, Bytes b) { owned.emplace_back(id, std::move(b)); };
  if (has_nulls) {
    Bytes v((rows + 7) / 8, '\0');
    for (uint64_t r = 0; r < rows; ++r) {
      if (column.IsValid(r)) v[r / 8] = static_cast<char>(v[r / 8] | (1u << (r % 8)));
    }
    add_owned(kValidity, std::move(v));
  }
  if (sq8) {
    // spec/12-segments.md §9: per row float32 min and max, then dim u8 codes.
    Bytes scales(rows * kSq8ScaleBytes, '\0');
    Bytes codes(rows * width, '\0');
    for (uint64_t r = 0; r < rows; ++r) {
      if (!column.IsValid(r)) continue;
      std::span<const float> x = column.FloatsAt(r);
      for (size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) {
          return InvalidArgument("column " + Quote(f.name) + ": row " + std::to_string(r) +
                                 " has a non-finite value (" + std::to_string(x[i]) +
                                 ") at index " + std::to_string(i) +
                                 "; a field stored with raw = false holds finite values only");
        }
      }
      Sq8EncodeRow(x, scales.data() + r * kSq8ScaleBytes,
                   reinterpret_cast<uint8_t*>(codes.data() + r * width));
    }
    add_owned(kScales, std::move(scales));
    add_owned(kCodes, std::move(codes));
  } else if (f.type == FieldType::kCategorical) {
    Bytes codes;
    codes.reserve(rows * 4);
    Bytes dict_offsets;
    AppendU64(&dict_offsets, 0);
    Bytes dict_data;
    std::unordered_map<std::string_view, uint32_t> dict;
    for (uint64_t r = 0; r < rows; ++r) {
      uint32_t code = 0;
      if (column.IsValid(r)) {
        std::string_view s = column.BytesAt(r);
        auto [it, inserted] = dict.emplace(s, static_cast<uint32_t>(dict.size()));
        if (inserted) {
          dict_data.append(s);
          AppendU64(&dict_offsets, dict_data.size());
        }
        code = it->second;
      }
      AppendU32(&codes, code);
    }
    add_owned(kValues, std::move(codes));
    add_owned(kDictOffsets, std::move(dict_offsets));
    add_owned(kDictData, std::move(dict_data));
  } else if (IsVariable(f.type)) {
    bool canonical = true;
    for (uint64_t r = 0; r < rows && has_nulls && canonical; ++r) {
      canonical = column.IsValid(r) || column.BytesAt(r).empty();
    }
    if (canonical) {
      bufs.emplace_back(kOffsets, column.offsets());
      bufs.emplace_back(kData, column.data());
    } else {
      Bytes offsets;
      AppendU64(&offsets, 0);
      Bytes data;
      for (uint64_t r = 0; r < rows; ++r) {
        if (column.IsValid(r)) data.append(column.BytesAt(r));
        AppendU64(&offsets, data.size());
      }
      add_owned(kOffsets, std::move(offsets));
      add_owned(kData, std::move(data));
    }
  } else {
    bool canonical = true;
    for (uint64_t r = 0; r < rows && has_nulls && canonical; ++r) {
      canonical = column.IsValid(r) || AllZero(column.FixedAt(r));
    }
    if (canonical) {
      bufs.emplace_back(kValues, column.values());
    } else {
      Bytes values(column.values());
      for (uint64_t r = 0; r < rows; ++r) {
        if (!column.IsValid(r)) std::memset(values.data() + r * width, 0, width);
      }
      add_owned(kValues, std::move(values));
    }
  }
  for (const auto& [id, b] : owned) bufs.emplace_back(id, b);
  std::sort(bufs.begin(), bufs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  // Layout order is BufId order (spec/12-segments.md §3).

  // Sums do not depend on where the buffers land. Format 3 (spec/12-segments.md §4.4):
  // `data`/`dict_data` blocks are runs of whole values, cut by the offsets buffer that
  // precedes them in layout order.
  std::vector<uint64_t> blocks;
  std::vector<Bytes> sums;
  ByteView last_offsets;
  for (const auto& [id, b] : bufs) {
    Bytes s;
    uint64_t block = 0;
    if (id == kData || id == kDictData) {
      const uint64_t n = last_offsets.size() / 8 - 1;
      block = ValuesPerBlock(n, b.size());
      for (uint64_t k = 0; k * block < n; ++k) {
        uint64_t lo = LoadU64(last_offsets.data() + k * block * 8);
        uint64_t hi = LoadU64(last_offsets.data() + std::min(n, (k + 1) * block) * 8);
        s += Sum16(b.substr(lo, hi - lo));
      }
    } else {
      block = BlockFor(id, width, kFormatBlocks);
      for (uint64_t off = 0; off < b.size(); off += block) s += Sum16(b.substr(off, block));
    }
    if (id == kOffsets || id == kDictOffsets) last_offsets = b;
    blocks.push_back(block);
    sums.push_back(std::move(s));
  }

  // The header holds the buffer offsets, which depend on the header's length: iterate
  // until the aligned end of the header is stable (lengths only grow, so this converges).
  auto build_header = [&](uint64_t header_end) -> Result<Bytes> {
    cbor::Map m;
    m.Set("kind", cbor::Value::Text("dreamdb.segment"));
    m.Set("format", cbor::Value::UInt(kFormatBlocks));
    if (sq8) m.Set("encoding", cbor::Value::Text(std::string(kSq8)));
    m.Set("type", cbor::Value::Text(std::string(FieldTypeName(f.type))));
    m.Set("rows", cbor::Value::UInt(rows));
    if (f.type == FieldType::kEmbedding) m.Set("dim", cbor::Value::UInt(f.dim));
    if (f.type == FieldType::kArray) {
      m.Set("dtype", cbor::Value::Text(std::string(DTypeName(f.dtype))));
      cbor::Array shape;
      for (uint32_t d : f.shape) shape.push_back(cbor::Value::UInt(d));
      m.Set("shape", cbor::Value::FromArray(std::move(shape)));
    }
    cbor::Array list;
    uint64_t pos = header_end;
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint64_t offset = Align8(pos);
      cbor::Map bm;
      bm.Set("name", cbor::Value::Text(std::string(kBufNames[bufs[i].first])));
      bm.Set("offset", cbor::Value::UInt(offset));
      bm.Set("length", cbor::Value::UInt(bufs[i].second.size()));
      bm.Set("block", cbor::Value::UInt(blocks[i]));
      bm.Set("sums", cbor::Value::Bytes(sums[i]));
      list.push_back(cbor::Value::FromMap(std::move(bm)));
      pos = offset + bufs[i].second.size();
    }
    m.Set("buffers", cbor::Value::FromArray(std::move(list)));
    return cbor::Encode(cbor::Value::FromMap(std::move(m)));
  };
  uint64_t header_end = kSegmentPrefixBytes;
  Bytes header;
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(header, build_header(header_end));
    uint64_t end = kSegmentPrefixBytes + header.size();
    if (Align8(end) == Align8(header_end)) {
      header_end = end;
      break;
    }
    if (attempt >= 16) return Internal("segment header layout did not converge");
    header_end = end;
  }
  if (header.size() > kSegmentMaxHeaderBytes) {
    return InvalidArgument("column " + Quote(f.name) + " needs a segment header of " +
                           std::to_string(header.size()) + " bytes (limit " +
                           std::to_string(kSegmentMaxHeaderBytes) +
                           "): cut it into smaller segments");
  }

  Bytes out;
  uint64_t total = header_end;
  for (const auto& [id, b] : bufs) total = Align8(total) + b.size();
  out.reserve(total);
  out.append(kSegmentMagic);
  AppendU32(&out, static_cast<uint32_t>(header.size()));
  out.append(Sum16(header));
  out.append(header);
  for (const auto& [id, b] : bufs) {
    out.append(Align8(out.size()) - out.size(), '\0');
    out.append(b);
  }
  return out;
}

// ---- Whole-object decoding ----

namespace {

// Parses a whole segment object and checks everything but the canonical form of its
// buffers (AssembleWhole / CheckPlain check that); the per-block sums only when
// `block_sums` (bytes verified against the object id need none: the id covers them).
Result<Layout> CheckWhole(ByteView whole_object, const FieldSpec& field, bool block_sums) {
  ASSIGN_OR_RETURN(uint64_t header_end, ParsePrefix(whole_object));
  if (whole_object.size() < header_end) {
    return SegCorrupt("truncated: " + std::to_string(whole_object.size()) +
                      " bytes, the header ends at " + std::to_string(header_end));
  }
  ASSIGN_OR_RETURN(Layout L, ParseLayout(whole_object, field));
  if (whole_object.size() != L.object_size) {
    return SegCorrupt("object has " + std::to_string(whole_object.size()) +
                      " bytes, the header describes " + std::to_string(L.object_size));
  }
  uint64_t pos = L.header_end;
  for (const BufferInfo& b : L.buffers) {
    if (!AllZero(whole_object.substr(pos, b.offset - pos))) {
      return SegCorrupt("padding before buffer " + Quote(kBufNames[b.id]) + " is not zero");
    }
    if (!block_sums) {
      // Nothing to hash; the offsets of a by-values buffer are checked with the column.
    } else if (b.by_values) {
      // The offsets buffer before it is verified: check it, then cut the blocks by it.
      const BufferInfo* ob = L.Find(OffsetsOf(b.id));
      ByteView offsets = whole_object.substr(ob->offset, ob->length);
      RETURN_IF_ERROR(CheckOffsets(offsets, b.length, kBufNames[ob->id]));
      for (uint64_t i = 0; i < b.num_blocks(); ++i) {
        auto [lo, hi] = BlockEntries(b, i);
        uint64_t start = b.offset + LoadU64(offsets.data() + lo * 8);
        uint64_t end = b.offset + LoadU64(offsets.data() + hi * 8);
        RETURN_IF_ERROR(VerifyBlock(b, i, start, whole_object.substr(start, end - start)));
      }
    } else {
      for (uint64_t i = 0; i < b.num_blocks(); ++i) {
        RETURN_IF_ERROR(VerifyBlock(b, i, b.block_start(i),
                                    whole_object.substr(b.block_start(i), b.block_len(i))));
      }
    }
    pos = b.offset + b.length;
  }
  return L;
}

}  // namespace

Result<Column> DecodeSegment(ByteView whole_object, const FieldSpec& field) {
  ASSIGN_OR_RETURN(Layout L, CheckWhole(whole_object, field, /*block_sums=*/true));
  return AssembleWhole(L, field, whole_object);
}

Result<SegmentBuffers> ViewSegment(ByteView whole_object, const FieldSpec& field,
                                   bool id_verified) {
  ASSIGN_OR_RETURN(Layout L, CheckWhole(whole_object, field, /*block_sums=*/!id_verified));
  const BufferInfo* vb = L.Find(kValidity);
  ByteView validity = vb == nullptr ? ByteView() : whole_object.substr(vb->offset, vb->length);
  if (L.sq8 || L.spec.type == FieldType::kCategorical) {
    // Stored differently from Column's layout: decode (the views point into the column).
    ASSIGN_OR_RETURN(Column col, AssembleWhole(L, field, whole_object));
    auto decoded = std::make_shared<const Column>(std::move(col));
    SegmentBuffers out;
    out.rows = decoded->length();
    out.validity = decoded->validity();
    out.values = decoded->values();
    out.offsets = decoded->offsets();
    out.data = decoded->data();
    out.decoded = std::move(decoded);
    return out;
  }
  RETURN_IF_ERROR(CheckValidity(L, validity));
  return CheckPlain(L, whole_object, validity);
}

// ---- Ranged reads ----

SegmentReader::SegmentReader(FetchRange fetch, FieldSpec field)
    : fetch_(std::move(fetch)), field_(std::move(field)) {}
SegmentReader::SegmentReader(SegmentReader&&) noexcept = default;
SegmentReader& SegmentReader::operator=(SegmentReader&&) noexcept = default;
SegmentReader::~SegmentReader() = default;

uint64_t SegmentReader::rows() const { return header_->layout.rows; }
uint64_t SegmentReader::object_size() const { return header_->layout.object_size; }

uint64_t SegmentReader::HeaderBytes(const Header& header) {
  uint64_t bytes = sizeof(Header) + header.prefix.capacity();
  for (const BufferInfo& b : header.layout.buffers) bytes += sizeof(BufferInfo) + b.sums.size();
  return bytes;
}

Result<Bytes> SegmentReader::Fetch(uint64_t offset, uint64_t length) {
  return Checked(offset, length, fetch_(offset, length));
}

Result<Bytes> SegmentReader::Checked(uint64_t offset, uint64_t length, Result<Bytes> r) {
  ++stats_.requests;
  // The reader asks only for ranges inside the object its header describes, so a range
  // refused as starting past the stored object's end means the object is shorter than its
  // header says: damage, not a bad request (ObjectBackend::GetRange's invalid_argument).
  if (!r.ok() && r.status().code() == StatusCode::kInvalidArgument) {
    return SegCorrupt("object truncated: bytes " + std::to_string(offset) + ".." +
                      std::to_string(offset + length) +
                      " its header describes are past the stored object's end (" +
                      r.status().message() + ")");
  }
  if (!r.ok()) return r.status();
  stats_.bytes_fetched += r->size();
  if (r->size() != length) {
    return SegCorrupt("object truncated: asked for bytes " + std::to_string(offset) + ".." +
                      std::to_string(offset + length) + ", got " + std::to_string(r->size()));
  }
  return r;
}

uint64_t SpeculativeFirstFetchBytes(const FieldSpec& field, uint64_t min_rows) {
  constexpr uint64_t kWholeBelow = uint64_t{1} << 20;
  constexpr uint64_t kMaxFirst = uint64_t{16} << 20;
  constexpr uint64_t kVariableGuess = 16;  // bytes per variable-width value
  const uint64_t n = std::min<uint64_t>(min_rows, kSegmentMaxRows);
  auto blocks = [](uint64_t bytes, uint64_t block) { return (bytes + block - 1) / block; };
  uint64_t sums = blocks((n + 7) / 8, FixedBlock3(1));  // validity
  uint64_t data = 0;
  if (UsesSq8(field)) {
    const uint64_t dim = std::max<uint64_t>(1, field.dim);
    sums +=
        blocks(n * kSq8ScaleBytes, FixedBlock3(kSq8ScaleBytes)) + blocks(n * dim, FixedBlock3(dim));
    data = n * (kSq8ScaleBytes + dim);
  } else if (IsVariable(field.type)) {
    sums += blocks((n + 1) * 8, FixedBlock3(8)) + blocks(n * kVariableGuess, kSmallBlock);
    data = n * (8 + kVariableGuess);
  } else {
    const uint64_t width = std::max<uint64_t>(1, ValueWidth(field));
    sums += blocks(n * width, FixedBlock3(width));
    data = n * width;
  }
  // The prefix, the header's map and buffer entries, and 16 bytes per block sum.
  const uint64_t header = kSegmentPrefixBytes + 1024 + sums * kSegmentSumBytes;
  const uint64_t whole = header + data;
  const uint64_t want = whole <= kWholeBelow ? whole + whole / 4 : header + header / 4;
  return std::clamp<uint64_t>(want + kSegmentFirstFetchBytes, kSegmentFirstFetchBytes, kMaxFirst);
}

Result<SegmentReader> SegmentReader::Open(FetchRange fetch, const FieldSpec& field,
                                          uint64_t first_fetch_bytes) {
  first_fetch_bytes = std::max(first_fetch_bytes, kSegmentPrefixBytes);
  SegmentReader reader(std::move(fetch), field);
  ++reader.stats_.requests;
  Result<Bytes> first = reader.fetch_(0, first_fetch_bytes);
  if (!first.ok()) return first.status();
  reader.stats_.bytes_fetched += first->size();
  if (first->size() > first_fetch_bytes) {
    return SegCorrupt("storage returned " + std::to_string(first->size()) +
                      " bytes for a range of " + std::to_string(first_fetch_bytes));
  }
  Bytes prefix = std::move(first).value();
  const bool clipped = prefix.size() < first_fetch_bytes;
  ASSIGN_OR_RETURN(uint64_t header_end, ParsePrefix(prefix));
  if (prefix.size() < header_end) {
    if (clipped) {
      return SegCorrupt("truncated: object has " + std::to_string(prefix.size()) +
                        " bytes, the header ends at " + std::to_string(header_end));
    }
    ASSIGN_OR_RETURN(Bytes rest, reader.Fetch(prefix.size(), header_end - prefix.size()));
    prefix += rest;
  }
  ASSIGN_OR_RETURN(Layout L, ParseLayout(prefix, field));
  if (prefix.size() > L.object_size || (clipped && prefix.size() != L.object_size)) {
    return SegCorrupt("object has " + std::to_string(prefix.size()) + (clipped ? "" : " or more") +
                      " bytes, the header describes " + std::to_string(L.object_size));
  }
  reader.header_ = std::make_shared<const Header>(Header{std::move(prefix), field, std::move(L)});
  return reader;
}

Result<SegmentReader> SegmentReader::Reopen(FetchRange fetch, const FieldSpec& field,
                                            std::shared_ptr<const Header> header) {
  SegmentReader reader(std::move(fetch), field);
  if (header->field == field) {
    reader.header_ = std::move(header);
    return reader;
  }
  // Another declaration of the field: its checks run again on the kept bytes (the size
  // checks of Open held for these bytes and do not depend on the field).
  ASSIGN_OR_RETURN(Layout L, ParseLayout(header->prefix, field));
  reader.header_ = std::make_shared<const Header>(Header{header->prefix, field, std::move(L)});
  return reader;
}

Result<Column> SegmentReader::ReadAll() {
  Bytes whole = header_->prefix;
  if (whole.size() < header_->layout.object_size) {
    ASSIGN_OR_RETURN(Bytes rest, Fetch(whole.size(), header_->layout.object_size - whole.size()));
    whole += rest;
  }
  return DecodeSegment(whole, field_);
}

namespace {

// The bytes fetched during one ReadRows call. Windows may overlap (a fetched range may
// repeat bytes of the prefix); every run of needed blocks lies inside one window.
class Windows {
 public:
  void Add(uint64_t start, ByteView bytes) { windows_.emplace(start, bytes); }
  void AddOwned(uint64_t start, Bytes bytes) {
    storage_.push_back(std::move(bytes));
    windows_.emplace(start, storage_.back());
  }
  // A view of [start, start+len) if one window holds it all.
  const ByteView* Containing(uint64_t start, uint64_t len) const {
    auto it = windows_.upper_bound(start);
    while (it != windows_.begin()) {
      --it;
      if (it->first + it->second.size() >= start + len) return &it->second;
    }
    return nullptr;
  }
  Result<ByteView> Read(uint64_t start, uint64_t len) const {
    if (len == 0) return ByteView();
    auto it = windows_.upper_bound(start);
    while (it != windows_.begin()) {
      --it;
      if (it->first + it->second.size() >= start + len) {
        return it->second.substr(start - it->first, len);
      }
    }
    return Internal("segment reader: bytes " + std::to_string(start) + ".." +
                    std::to_string(start + len) + " were not fetched");
  }

 private:
  std::multimap<uint64_t, ByteView> windows_;
  std::deque<Bytes> storage_;
};

// Needed blocks per buffer: sorted, unique after Normalize().
struct Need {
  const BufferInfo* buffer;
  std::vector<uint64_t> blocks;
  // Adds the blocks holding buffer bytes [a, b) (b > a).
  void AddBytes(uint64_t a, uint64_t b) {
    for (uint64_t k = a / buffer->block; k <= (b - 1) / buffer->block; ++k) {
      if (blocks.empty() || blocks.back() != k) blocks.push_back(k);
    }
  }
  void Normalize() {
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  }
};

using Run = SegmentReader::Range;

// Format 3: adds to `offsets_need` the two entries bounding the by-values block of value
// `v` of `data`.
void AddBlockEntries(Need& offsets_need, const BufferInfo& data, uint64_t v) {
  if (!data.by_values) return;
  auto [lo, hi] = BlockEntries(data, v / data.block);
  offsets_need.AddBytes(lo * 8, lo * 8 + 8);
  offsets_need.AddBytes(hi * 8, hi * 8 + 8);
}

// The blocks of ReadRows' first round, which the header alone locates: validity and the
// fixed-width entry of every row (values, codes or offsets, with the offsets entries
// bounding each value's format 3 data block); for sq8, validity, scales and codes.
std::vector<Need> FirstRoundNeeds(const Layout& L, const std::vector<uint32_t>& sorted_rows) {
  std::vector<Need> needs;
  if (const BufferInfo* validity = L.Find(kValidity)) {
    Need n{validity, {}};
    for (uint32_t r : sorted_rows) n.AddBytes(r / 8, r / 8 + 1);
    needs.push_back(std::move(n));
  }
  if (L.sq8) {
    const uint64_t dim = L.width;
    Need ns{L.Find(kScales), {}};
    Need nc{L.Find(kCodes), {}};
    for (uint32_t r : sorted_rows) {
      ns.AddBytes(uint64_t{r} * kSq8ScaleBytes, (uint64_t{r} + 1) * kSq8ScaleBytes);
      if (dim > 0) nc.AddBytes(uint64_t{r} * dim, (uint64_t{r} + 1) * dim);
    }
    needs.push_back(std::move(ns));
    needs.push_back(std::move(nc));
    return needs;
  }
  const bool variable = IsVariable(L.spec.type);
  const uint64_t entry = variable ? 8 : L.width;
  Need n{L.Find(variable ? kOffsets : kValues), {}};
  for (uint32_t r : sorted_rows) {
    n.AddBytes(uint64_t{r} * entry, uint64_t{r} * entry + (variable ? 16 : entry));
    if (variable) AddBlockEntries(n, *L.Find(kData), r);
  }
  needs.push_back(std::move(n));
  return needs;
}

// The object ranges of the runs of adjacent needed blocks not already in `windows`,
// sorted by start. `block_bytes(b, k)` is block k of b's object range.
template <typename BlockBytes>
Result<std::vector<Run>> NeededRuns(std::vector<Need>& needs, const Windows& windows,
                                    BlockBytes&& block_bytes) {
  std::vector<Run> runs;
  for (Need& n : needs) {
    n.Normalize();
    const BufferInfo& b = *n.buffer;
    for (size_t i = 0; i < n.blocks.size();) {
      size_t j = i;
      while (j + 1 < n.blocks.size() && n.blocks[j + 1] == n.blocks[j] + 1) ++j;
      ASSIGN_OR_RETURN(auto first_block, block_bytes(b, n.blocks[i]));
      ASSIGN_OR_RETURN(auto last_block, block_bytes(b, n.blocks[j]));
      uint64_t start = first_block.first;
      uint64_t end = std::max(first_block.second, last_block.second);
      if (end > start && windows.Containing(start, end - start) == nullptr) {
        runs.push_back({start, end});
      }
      i = j + 1;
    }
  }
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.start < b.start; });
  return runs;
}

// Merges sorted runs that touch or overlap and, when `gaps`, runs whose gap is at most
// max(4 KiB, 25% of the merged range) (spec/12-segments.md §5.3 item 4).
std::vector<Run> Coalesce(const std::vector<Run>& runs, bool gaps) {
  std::vector<Run> merged;
  for (const Run& r : runs) {
    if (!merged.empty()) {
      Run& cur = merged.back();
      if (r.start <= cur.end) {
        cur.end = std::max(cur.end, r.end);
        continue;
      }
      uint64_t gap = r.start - cur.end;
      uint64_t merged_size = std::max(cur.end, r.end) - cur.start;
      if (gaps && gap <= std::max<uint64_t>(4096, merged_size / 4)) {
        cur.end = std::max(cur.end, r.end);
        continue;
      }
    }
    merged.push_back(r);
  }
  return merged;
}

Status CheckSortedRows(const std::vector<uint32_t>& sorted_rows, uint64_t rows) {
  for (size_t i = 0; i < sorted_rows.size(); ++i) {
    if (sorted_rows[i] >= rows) {
      return InvalidArgument("row " + std::to_string(sorted_rows[i]) + " is out of range (" +
                             std::to_string(rows) + " rows)");
    }
    if (i > 0 && sorted_rows[i] < sorted_rows[i - 1]) {
      return InvalidArgument("rows must be sorted: " + std::to_string(sorted_rows[i]) +
                             " follows " + std::to_string(sorted_rows[i - 1]));
    }
  }
  return Status::Ok();
}

}  // namespace

Status SegmentReader::Supply(uint64_t start, uint64_t length, Result<Bytes> fetched) {
  ASSIGN_OR_RETURN(Bytes bytes, Checked(start, length, std::move(fetched)));
  supplied_.emplace_back(start, std::move(bytes));
  return Status::Ok();
}

Result<std::vector<SegmentReader::Range>> SegmentReader::PlanRows(
    const std::vector<uint32_t>& sorted_rows) const {
  const Layout& L = header_->layout;
  RETURN_IF_ERROR(CheckSortedRows(sorted_rows, L.rows));
  if (sorted_rows.empty()) return std::vector<Range>();
  std::vector<Need> needs = FirstRoundNeeds(L, sorted_rows);
  Windows held;
  held.Add(0, header_->prefix);
  ASSIGN_OR_RETURN(
      auto runs,
      NeededRuns(needs, held,
                 [](const BufferInfo& b, uint64_t k) -> Result<std::pair<uint64_t, uint64_t>> {
                   // First-round buffers are never cut by values (FirstRoundNeeds).
                   if (b.by_values)
                     return Internal("segment reader: a first-round buffer is cut by values");
                   return std::make_pair(b.block_start(k), b.block_start(k) + b.block_len(k));
                 }));
  return Coalesce(runs, /*gaps=*/false);
}

Result<Column> SegmentReader::ReadRows(const std::vector<uint32_t>& sorted_rows) {
  const Layout& L = header_->layout;
  std::vector<std::pair<uint64_t, Bytes>> supplied = std::move(supplied_);
  supplied_.clear();
  RETURN_IF_ERROR(CheckSortedRows(sorted_rows, L.rows));
  Column out(field_);
  if (sorted_rows.empty()) return out;

  Windows windows;
  windows.Add(0, header_->prefix);
  for (auto& [start, bytes] : supplied) windows.AddOwned(start, std::move(bytes));

  // Object bytes [start, end) of block k of b. A format 3 by-values block is bounded by two
  // offsets entries, which an earlier round fetched and verified.
  auto block_bytes = [&](const BufferInfo& b, uint64_t k) -> Result<std::pair<uint64_t, uint64_t>> {
    if (!b.by_values) return std::make_pair(b.block_start(k), b.block_start(k) + b.block_len(k));
    const BufferInfo* ob = L.Find(OffsetsOf(b.id));
    auto [lo_entry, hi_entry] = BlockEntries(b, k);
    ASSIGN_OR_RETURN(ByteView lo, windows.Read(ob->offset + lo_entry * 8, 8));
    ASSIGN_OR_RETURN(ByteView hi, windows.Read(ob->offset + hi_entry * 8, 8));
    return ValueBlockBytes(b, k, LoadU64(lo.data()), LoadU64(hi.data()));
  };

  // Fetches the needed blocks not yet held (runs of adjacent blocks, coalesced) and
  // verifies every needed block, held or fetched.
  auto fetch_blocks = [&](std::vector<Need>& needs) -> Status {
    ASSIGN_OR_RETURN(auto runs, NeededRuns(needs, windows, block_bytes));
    std::vector<Run> merged = Coalesce(runs, coalesce_);
    // The runs are independent: fetched at once on the process's I/O pool (up to
    // kMaxRunsInFlight at a time: a remote store pays one round trip for them), then
    // checked in order.
    std::vector<std::optional<Result<Bytes>>> fetched(merged.size());
    IoPool::ParallelFor(
        merged.size(),
        [&](size_t i) {
          fetched[i].emplace(fetch_(merged[i].start, merged[i].end - merged[i].start));
        },
        kMaxRunsInFlight);
    for (size_t i = 0; i < merged.size(); ++i) {
      const Run& r = merged[i];
      ASSIGN_OR_RETURN(Bytes bytes, Checked(r.start, r.end - r.start, std::move(*fetched[i])));
      windows.AddOwned(r.start, std::move(bytes));
    }
    // Every needed block, held or fetched, hashed together (a take checks many small
    // blocks: side by side on SIMD lanes), then checked in order.
    struct Check {
      const BufferInfo* buffer;
      uint64_t k, start;
    };
    std::vector<Check> checks;
    std::vector<ByteView> blocks;
    for (const Need& n : needs) {
      for (uint64_t k : n.blocks) {
        ASSIGN_OR_RETURN(auto range, block_bytes(*n.buffer, k));
        ASSIGN_OR_RETURN(ByteView block, windows.Read(range.first, range.second - range.first));
        checks.push_back({n.buffer, k, range.first});
        blocks.push_back(block);
      }
    }
    std::vector<Digest> sums(blocks.size());
    Blake3Many(blocks, sums);
    for (size_t i = 0; i < checks.size(); ++i) {
      RETURN_IF_ERROR(CheckBlockSum(*checks[i].buffer, checks[i].k, checks[i].start,
                                    blocks[i].size(), sums[i]));
    }
    return Status::Ok();
  };
  // Adds the block(s) holding value `v`, bytes [a, b) of `data` (b > a).
  auto add_value = [](Need& data_need, uint64_t v, uint64_t a, uint64_t b) {
    if (data_need.buffer->by_values) {
      data_need.blocks.push_back(v / data_need.buffer->block);
    } else {
      data_need.AddBytes(a, b);
    }
  };
  // Format 3: the value [a, b) must lie inside its verified block.
  auto check_in_block = [&](const BufferInfo& data, uint64_t v, uint64_t a, uint64_t b) -> Status {
    if (!data.by_values || b == a) return Status::Ok();
    ASSIGN_OR_RETURN(auto range, block_bytes(data, v / data.block));
    if (data.offset + a < range.first || data.offset + b > range.second) {
      return SegCorrupt("value " + std::to_string(v) + " of buffer " + Quote(kBufNames[data.id]) +
                        " (bytes " + std::to_string(a) + ".." + std::to_string(b) +
                        ") lies outside its block");
    }
    return Status::Ok();
  };

  // Round 1 (FirstRoundNeeds): for fixed-width fields and sq8 embeddings, the only one.
  {
    std::vector<Need> needs = FirstRoundNeeds(L, sorted_rows);
    RETURN_IF_ERROR(fetch_blocks(needs));
  }
  const BufferInfo* validity = L.Find(kValidity);
  if (L.sq8) {
    const BufferInfo* scales = L.Find(kScales);
    const BufferInfo* codes = L.Find(kCodes);
    const uint64_t dim = L.width;
    std::string row_values(dim * sizeof(float), '\0');
    for (uint32_t r : sorted_rows) {
      bool valid = true;
      if (validity != nullptr) {
        ASSIGN_OR_RETURN(ByteView byte, windows.Read(validity->offset + r / 8, 1));
        valid = BitSet(byte, r % 8);
      }
      ASSIGN_OR_RETURN(ByteView sc,
                       windows.Read(scales->offset + uint64_t{r} * kSq8ScaleBytes, kSq8ScaleBytes));
      ASSIGN_OR_RETURN(ByteView cv, windows.Read(codes->offset + uint64_t{r} * dim, dim));
      RETURN_IF_ERROR(Sq8DecodeRow(r, valid, sc, cv, row_values.data()));
      if (valid) {
        out.AppendFixedBytes(row_values);
      } else {
        out.AppendNull();
      }
    }
    return out;
  }

  const bool variable = IsVariable(L.spec.type);
  const BufferInfo* first = L.Find(variable ? kOffsets : kValues);
  const uint64_t entry = variable ? 8 : L.width;
  std::vector<bool> valid(sorted_rows.size(), true);
  if (validity != nullptr) {
    for (size_t i = 0; i < sorted_rows.size(); ++i) {
      uint32_t r = sorted_rows[i];
      ASSIGN_OR_RETURN(ByteView byte, windows.Read(validity->offset + r / 8, 1));
      valid[i] = BitSet(byte, r % 8);
    }
  }

  if (!variable && L.spec.type != FieldType::kCategorical) {
    for (size_t i = 0; i < sorted_rows.size(); ++i) {
      uint32_t r = sorted_rows[i];
      ASSIGN_OR_RETURN(ByteView v, windows.Read(first->offset + r * entry, entry));
      if (!valid[i]) {
        if (!AllZero(v))
          return SegCorrupt("null row " + std::to_string(r) + " has a non-zero value");
        out.AppendNull();
        continue;
      }
      if (L.spec.type == FieldType::kBool && static_cast<uint8_t>(v[0]) > 1) {
        return SegCorrupt("bool value at row " + std::to_string(r) + " is not 0 or 1");
      }
      out.AppendFixedBytes(v);
    }
    return out;
  }

  // Variable-width entries: [a, b) in `data` for entry `e` of `offsets` (both verified).
  auto read_entry = [&](const BufferInfo* offsets, const BufferInfo* data, uint64_t e,
                        std::string_view what) -> Result<std::pair<uint64_t, uint64_t>> {
    ASSIGN_OR_RETURN(ByteView pair, windows.Read(offsets->offset + e * 8, 16));
    uint64_t a = LoadU64(pair.data());
    uint64_t b = LoadU64(pair.data() + 8);
    if (a > b || b > data->length || (e == 0 && a != 0)) {
      return SegCorrupt(std::string(what) + " entry " + std::to_string(e) + " spans " +
                        std::to_string(a) + ".." + std::to_string(b) + " of a " +
                        std::to_string(data->length) + "-byte buffer");
    }
    return std::make_pair(a, b);
  };

  if (variable) {
    const BufferInfo* data = L.Find(kData);
    std::vector<std::pair<uint64_t, uint64_t>> spans(sorted_rows.size());
    Need n{data, {}};
    for (size_t i = 0; i < sorted_rows.size(); ++i) {
      ASSIGN_OR_RETURN(spans[i], read_entry(first, data, sorted_rows[i], "offsets"));
      if (!valid[i] && spans[i].first != spans[i].second) {
        return SegCorrupt("null row " + std::to_string(sorted_rows[i]) + " has a non-empty value");
      }
      if (spans[i].second > spans[i].first) {
        add_value(n, sorted_rows[i], spans[i].first, spans[i].second);
      }
    }
    std::vector<Need> needs{std::move(n)};
    RETURN_IF_ERROR(fetch_blocks(needs));
    for (size_t i = 0; i < sorted_rows.size(); ++i) {
      RETURN_IF_ERROR(check_in_block(*data, sorted_rows[i], spans[i].first, spans[i].second));
      if (!valid[i]) {
        out.AppendNull();
        continue;
      }
      ASSIGN_OR_RETURN(ByteView v, windows.Read(data->offset + spans[i].first,
                                                spans[i].second - spans[i].first));
      out.AppendBytes(v);
    }
    return out;
  }

  // Categorical: codes, then the dictionary entries they use.
  const BufferInfo* dict_offsets = L.Find(kDictOffsets);
  const BufferInfo* dict_data = L.Find(kDictData);
  std::vector<uint32_t> codes(sorted_rows.size());
  for (size_t i = 0; i < sorted_rows.size(); ++i) {
    uint32_t r = sorted_rows[i];
    ASSIGN_OR_RETURN(ByteView v, windows.Read(first->offset + uint64_t{r} * 4, 4));
    codes[i] = LoadU32(v.data());
    if (!valid[i] ? codes[i] != 0 : codes[i] >= L.dict_size) {
      return SegCorrupt("row " + std::to_string(r) + " has code " + std::to_string(codes[i]) +
                        (valid[i] ? " past the dictionary of " + std::to_string(L.dict_size)
                                  : std::string(" but is null (expected 0)")));
    }
  }
  std::vector<uint32_t> used;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (valid[i]) used.push_back(codes[i]);
  }
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  {
    Need n{dict_offsets, {}};
    for (uint32_t c : used) {
      n.AddBytes(uint64_t{c} * 8, uint64_t{c} * 8 + 16);
      AddBlockEntries(n, *dict_data, c);
    }
    std::vector<Need> needs{std::move(n)};
    RETURN_IF_ERROR(fetch_blocks(needs));
  }
  std::unordered_map<uint32_t, std::pair<uint64_t, uint64_t>> spans;
  {
    Need n{dict_data, {}};
    for (uint32_t c : used) {
      ASSIGN_OR_RETURN(auto span, read_entry(dict_offsets, dict_data, c, "dict_offsets"));
      if (span.second > span.first) add_value(n, c, span.first, span.second);
      spans.emplace(c, span);
    }
    std::vector<Need> needs{std::move(n)};
    RETURN_IF_ERROR(fetch_blocks(needs));
    for (uint32_t c : used) {
      RETURN_IF_ERROR(check_in_block(*dict_data, c, spans[c].first, spans[c].second));
    }
  }
  for (size_t i = 0; i < sorted_rows.size(); ++i) {
    if (!valid[i]) {
      out.AppendNull();
      continue;
    }
    auto [a, b] = spans.at(codes[i]);
    ASSIGN_OR_RETURN(ByteView v, windows.Read(dict_data->offset + a, b - a));
    out.AppendBytes(v);
  }
  return out;
}

}  // namespace dreamdb::columnar
