// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/03-cbor.md: RFC 8949 §4.2.1 deterministic encoding over the restricted
// data model, and the strict decoder that accepts exactly what the encoder produces.
#include "src/cbor/cbor.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "src/base/encoding.h"

namespace dreamdb::cbor {
namespace {

constexpr uint8_t kMajorUnsigned = 0;
constexpr uint8_t kMajorNegative = 1;
constexpr uint8_t kMajorBytes = 2;
constexpr uint8_t kMajorText = 3;
constexpr uint8_t kMajorArray = 4;
constexpr uint8_t kMajorMap = 5;
constexpr uint8_t kMajorTag = 6;
constexpr uint8_t kMajorSimple = 7;

constexpr uint16_t kHalfNaN = 0x7e00;  // the only NaN we write or accept (spec §3.2)

// ---------------------------------------------------------------------------------------
// Encoding primitives.

// The head of a data item (RFC 8949 §3): major type and the shortest argument encoding.
inline void PutHead(uint8_t major, uint64_t arg, Bytes* out) {
  char buf[9];
  const uint8_t mt = static_cast<uint8_t>(major << 5);
  size_t n;
  if (arg < 24) {
    buf[0] = static_cast<char>(mt | arg);
    n = 1;
  } else if (arg <= 0xff) {
    buf[0] = static_cast<char>(mt | 24);
    buf[1] = static_cast<char>(arg);
    n = 2;
  } else if (arg <= 0xffff) {
    buf[0] = static_cast<char>(mt | 25);
    buf[1] = static_cast<char>(arg >> 8);
    buf[2] = static_cast<char>(arg);
    n = 3;
  } else if (arg <= 0xffffffffu) {
    buf[0] = static_cast<char>(mt | 26);
    for (int i = 0; i < 4; ++i) buf[1 + i] = static_cast<char>(arg >> (24 - 8 * i));
    n = 5;
  } else {
    buf[0] = static_cast<char>(mt | 27);
    for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(arg >> (56 - 8 * i));
    n = 9;
  }
  out->append(buf, n);
}

inline size_t HeadSize(uint64_t arg) {
  if (arg < 24) return 1;
  if (arg <= 0xff) return 2;
  if (arg <= 0xffff) return 3;
  if (arg <= 0xffffffffu) return 5;
  return 9;
}

// If the finite, non-zero double with bit pattern `bits` is exactly representable in the
// IEEE 754 binary format with `mbits` mantissa bits and `ebits` exponent bits, stores that
// format's bit pattern in *out and returns true.
bool NarrowFinite(uint64_t bits, int mbits, int ebits, uint64_t* out) {
  const uint64_t sign = bits >> 63;
  const int exp_field = static_cast<int>((bits >> 52) & 0x7ff);
  const uint64_t mant = bits & ((uint64_t{1} << 52) - 1);
  if (exp_field == 0) return false;  // a binary64 subnormal is far below any narrower range
  const int bias = (1 << (ebits - 1)) - 1;
  const int e = exp_field - 1023;
  if (e > bias) return false;
  const uint64_t sign_out = sign << (mbits + ebits);
  if (e >= 1 - bias) {  // normal in the narrow format
    if (mant & ((uint64_t{1} << (52 - mbits)) - 1)) return false;
    *out = sign_out | (static_cast<uint64_t>(e + bias) << mbits) | (mant >> (52 - mbits));
    return true;
  }
  // Subnormal in the narrow format: value = full * 2^(e-52), unit 2^(1-bias-mbits).
  const int shift = 52 - (e - (1 - bias - mbits));
  if (shift > 52) return false;
  const uint64_t full = mant | (uint64_t{1} << 52);
  if (full & ((uint64_t{1} << shift) - 1)) return false;
  *out = sign_out | (full >> shift);
  return true;
}

// Canonical float encoding (spec §3): NaN as f97e00, otherwise the shortest of binary16,
// binary32, binary64 that holds the value exactly. Writes 3, 5 or 9 bytes to `buf`.
size_t EncodeFloat(double d, uint8_t* buf) {
  if (std::isnan(d)) {
    buf[0] = 0xf9;
    buf[1] = kHalfNaN >> 8;
    buf[2] = kHalfNaN & 0xff;
    return 3;
  }
  const uint64_t bits = std::bit_cast<uint64_t>(d);
  uint64_t narrow;
  bool half_ok;
  if (std::isinf(d)) {
    narrow = (bits >> 63) << 15 | 0x7c00;
    half_ok = true;
  } else if (d == 0) {
    narrow = (bits >> 63) << 15;
    half_ok = true;
  } else {
    half_ok = NarrowFinite(bits, 10, 5, &narrow);
  }
  if (half_ok) {
    buf[0] = 0xf9;
    buf[1] = static_cast<uint8_t>(narrow >> 8);
    buf[2] = static_cast<uint8_t>(narrow);
    return 3;
  }
  if (NarrowFinite(bits, 23, 8, &narrow)) {
    buf[0] = 0xfa;
    for (int i = 0; i < 4; ++i) buf[1 + i] = static_cast<uint8_t>(narrow >> (24 - 8 * i));
    return 5;
  }
  buf[0] = 0xfb;
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  return 9;
}

double HalfToDouble(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  double v;
  if (exp == 0) {
    v = std::ldexp(mant, -24);
  } else if (exp == 31) {
    v = mant == 0 ? std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = std::ldexp(mant + 1024, exp - 25);
  }
  return (h & 0x8000) ? -v : v;
}

// Returns the offset of the first byte of the first ill-formed UTF-8 sequence in `s`
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), or npos.
size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // ASCII fast path
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c == 0xe0) {
      len = 3, lo = 0xa0;  // no overlongs
    } else if (c == 0xed) {
      len = 3, hi = 0x9f;  // no surrogates
    } else if (c >= 0xe1 && c <= 0xef) {
      len = 3;
    } else if (c == 0xf0) {
      len = 4, lo = 0x90;  // no overlongs
    } else if (c >= 0xf1 && c <= 0xf3) {
      len = 4;
    } else if (c == 0xf4) {
      len = 4, hi = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;  // continuation byte, C0/C1 overlong lead, or F5..FF
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// ---------------------------------------------------------------------------------------
// Encoder. Recursion is bounded by kDefaultMaxDepth: deeper values are refused.

Status DepthError() {
  return InvalidArgument("cbor: value nested deeper than the maximum depth " +
                         std::to_string(kDefaultMaxDepth));
}

// Exact encoded size, or a lower bound if the value will be refused by EncodeValue.
size_t EncodedSize(const Value& v, uint32_t depth) {
  switch (v.type()) {
    case Type::kUnsigned:
    case Type::kNegative:
      return HeadSize(v.raw_uint());
    case Type::kBytes:
    case Type::kText:
      return HeadSize(v.string_value().size()) + v.string_value().size();
    case Type::kArray: {
      if (depth >= kDefaultMaxDepth) return 0;
      size_t n = HeadSize(v.array().size());
      for (const Value& c : v.array()) n += EncodedSize(c, depth + 1);
      return n;
    }
    case Type::kMap: {
      if (depth >= kDefaultMaxDepth) return 0;
      size_t n = HeadSize(v.map().size());
      for (const auto& [k, c] : v.map().entries()) {
        n += HeadSize(k.size()) + k.size() + EncodedSize(c, depth + 1);
      }
      return n;
    }
    case Type::kBool:
    case Type::kNull:
      return 1;
    case Type::kFloat: {
      uint8_t buf[9];
      return EncodeFloat(v.float_value(), buf);
    }
  }
  return 0;
}

Status CheckUtf8ForEncode(std::string_view s, const char* what) {
  size_t bad = FindInvalidUtf8(s);
  if (bad == std::string_view::npos) return Status::Ok();
  return InvalidArgument(std::string("cbor: ") + what + " is not valid UTF-8 (byte " +
                         std::to_string(bad) + " of " + Quote(s) + ")");
}

Status EncodeValue(const Value& v, uint32_t depth, Bytes* out) {
  switch (v.type()) {
    case Type::kUnsigned:
      PutHead(kMajorUnsigned, v.raw_uint(), out);
      return Status::Ok();
    case Type::kNegative:
      PutHead(kMajorNegative, v.raw_uint(), out);
      return Status::Ok();
    case Type::kBytes:
      PutHead(kMajorBytes, v.string_value().size(), out);
      out->append(v.string_value());
      return Status::Ok();
    case Type::kText:
      RETURN_IF_ERROR(CheckUtf8ForEncode(v.string_value(), "text string"));
      PutHead(kMajorText, v.string_value().size(), out);
      out->append(v.string_value());
      return Status::Ok();
    case Type::kArray:
      if (depth >= kDefaultMaxDepth) return DepthError();
      PutHead(kMajorArray, v.array().size(), out);
      for (const Value& c : v.array()) RETURN_IF_ERROR(EncodeValue(c, depth + 1, out));
      return Status::Ok();
    case Type::kMap:
      if (depth >= kDefaultMaxDepth) return DepthError();
      PutHead(kMajorMap, v.map().size(), out);
      // Map keeps its entries sorted by KeyLess, which is §4.2.1 order for text keys.
      for (const auto& [k, c] : v.map().entries()) {
        RETURN_IF_ERROR(CheckUtf8ForEncode(k, "map key"));
        PutHead(kMajorText, k.size(), out);
        out->append(k);
        RETURN_IF_ERROR(EncodeValue(c, depth + 1, out));
      }
      return Status::Ok();
    case Type::kBool:
      out->push_back(static_cast<char>(v.bool_value() ? 0xf5 : 0xf4));
      return Status::Ok();
    case Type::kNull:
      out->push_back(static_cast<char>(0xf6));
      return Status::Ok();
    case Type::kFloat: {
      uint8_t buf[9];
      size_t n = EncodeFloat(v.float_value(), buf);
      out->append(reinterpret_cast<const char*>(buf), n);
      return Status::Ok();
    }
  }
  return Internal("cbor: unknown value type");
}

// ---------------------------------------------------------------------------------------
// Decoder: iterative (an explicit stack of open arrays/maps), so the machine stack never
// grows with the input's nesting, whatever DecodeLimits say.

class Decoder {
 public:
  Decoder(ByteView input, const DecodeLimits& limits)
      : data_(reinterpret_cast<const uint8_t*>(input.data())),
        size_(input.size()),
        limits_(limits) {}

  Result<Value> Run();

 private:
  struct Frame {
    bool is_map;
    uint64_t remaining;  // array elements or map entries still to decode
    Array array;
    Map map;
    std::string key;  // key of the map entry whose value is being decoded
  };

  Status Error(std::string_view rule, size_t offset, std::string_view detail = {}) const {
    std::string msg = "cbor: ";
    msg.append(rule);
    if (!detail.empty()) {
      msg.append(" (");
      msg.append(detail);
      msg.append(")");
    }
    msg.append(" at offset ");
    msg.append(std::to_string(offset));
    return Corrupt(std::move(msg));
  }

  // Reads the head at pos_: major type, additional information, and the argument for
  // ai 24..27 (0 for ai >= 28, left to the caller to reject).
  Status ReadHead(uint8_t* major, uint8_t* ai, uint64_t* arg) {
    const size_t start = pos_;
    if (pos_ >= size_) return Error("unexpected end of input", start);
    const uint8_t ib = data_[pos_++];
    *major = ib >> 5;
    *ai = ib & 0x1f;
    if (*ai < 24) {
      *arg = *ai;
      return Status::Ok();
    }
    *arg = 0;
    if (*ai > 27) return Status::Ok();
    const size_t n = size_t{1} << (*ai - 24);
    if (size_ - pos_ < n) return Error("unexpected end of input", start);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + i];
    pos_ += n;
    *arg = v;
    return Status::Ok();
  }

  // For majors 0..5: rejects ai 28..31 and non-shortest arguments (§4.2.1 rule 1).
  Status CheckArgument(uint8_t major, uint8_t ai, uint64_t arg, size_t start) const {
    if (ai == 31 && major >= kMajorBytes && major <= kMajorMap) {
      return Error("indefinite length not allowed", start);
    }
    if (ai > 27) return Error("reserved additional information", start);
    const bool non_minimal = (ai == 24 && arg < 24) || (ai == 25 && arg <= 0xff) ||
                             (ai == 26 && arg <= 0xffff) || (ai == 27 && arg <= 0xffffffffu);
    if (non_minimal) {
      return Error(
          major <= kMajorNegative ? "non-minimal integer encoding" : "non-minimal length encoding",
          start);
    }
    return Status::Ok();
  }

  // Reads a byte or text string's payload of `len` bytes at pos_.
  Status ReadString(uint8_t major, uint64_t len, size_t start, std::string_view* out) {
    if (len > size_ - pos_) {
      return Error("length beyond end of input", start,
                   "declared " + std::to_string(len) + " bytes, " + std::to_string(size_ - pos_) +
                       " remain");
    }
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    if (major == kMajorText) {
      size_t bad = FindInvalidUtf8(*out);
      if (bad != std::string_view::npos) return Error("invalid UTF-8", pos_ + bad);
    }
    pos_ += len;
    return Status::Ok();
  }

  // Reads the key of the next entry of map frame `f` into f.key, checking order.
  Status ReadKey(Frame* f) {
    const size_t start = pos_;
    uint8_t major = 0, ai = 0;
    uint64_t arg = 0;
    RETURN_IF_ERROR(ReadHead(&major, &ai, &arg));
    if (major != kMajorText) return Error("map key is not a text string", start);
    RETURN_IF_ERROR(CheckArgument(major, ai, arg, start));
    std::string_view key;
    RETURN_IF_ERROR(ReadString(major, arg, start, &key));
    if (!f->map.empty()) {
      const std::string& prev = f->map.entries().back().first;
      if (prev == key) return Error("duplicate map key", start, Quote(key));
      if (!KeyLess(prev, key)) {
        return Error("map keys not in canonical order", start,
                     Quote(key) + " after " + Quote(prev));
      }
    }
    f->key.assign(key);
    return Status::Ok();
  }

  // Checks and accounts for a container of `count` items (entries for maps) whose head
  // ended at pos_. Every pending item needs at least one byte (two for a map entry), so
  // the declared counts of all open containers together never exceed the input left:
  // reserving `count` elements is then bounded by the input size.
  Status OpenContainer(bool is_map, uint64_t count, size_t start, size_t depth) {
    if (depth >= limits_.max_depth) {
      return Error("nesting depth exceeds max_depth", start,
                   "max_depth " + std::to_string(limits_.max_depth));
    }
    const uint64_t per_item = is_map ? 2 : 1;
    const uint64_t left = size_ - pos_;
    const uint64_t free_bytes = left - std::min(left, pending_min_bytes_);
    if (count > left / per_item || count * per_item > free_bytes) {
      return Error("length beyond end of input", start,
                   "declared " + std::to_string(count) + (is_map ? " entries, " : " items, ") +
                       std::to_string(left) + " bytes remain");
    }
    if (count > limits_.max_items - items_) {
      return Error("item count exceeds max_items", start,
                   "max_items " + std::to_string(limits_.max_items));
    }
    items_ += count;
    pending_min_bytes_ += count * per_item;
    return Status::Ok();
  }

  Status ReadSimple(uint8_t ai, uint64_t arg, size_t start, Value* out) {
    switch (ai) {
      case 20:
        *out = Value::Bool(false);
        return Status::Ok();
      case 21:
        *out = Value::Bool(true);
        return Status::Ok();
      case 22:
        *out = Value::Null();
        return Status::Ok();
      case 23:
        return Error("undefined not allowed", start);
      case 25:
      case 26:
      case 27: {
        double d;
        if (ai == 25) {
          d = HalfToDouble(static_cast<uint16_t>(arg));
        } else if (ai == 26) {
          d = std::bit_cast<float>(static_cast<uint32_t>(arg));
        } else {
          d = std::bit_cast<double>(arg);
        }
        // Shortest form and the one NaN: the input must be exactly what we would write.
        uint8_t canon[9];
        const size_t n = EncodeFloat(d, canon);
        if (n != pos_ - start || std::memcmp(canon, data_ + start, n) != 0) {
          return Error(std::isnan(d) ? "non-canonical NaN" : "float not in shortest form", start);
        }
        *out = Value::Float(d);
        return Status::Ok();
      }
      case 28:
      case 29:
      case 30:
        return Error("reserved additional information", start);
      case 31:
        return Error("unexpected break code", start);
      default:  // 0..19 and 24
        return Error("simple value not allowed", start);
    }
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const DecodeLimits& limits_;
  uint64_t items_ = 0;              // array elements + map entries declared so far
  uint64_t pending_min_bytes_ = 0;  // minimum bytes still owed to open containers
};

Result<Value> Decoder::Run() {
  if (size_ > limits_.max_input_bytes) {
    return Error("input exceeds max_input_bytes", 0,
                 std::to_string(size_) + " > " + std::to_string(limits_.max_input_bytes));
  }
  std::vector<Frame> stack;
  stack.reserve(std::min<size_t>(limits_.max_depth, 64));
  Value v;
  for (;;) {
    if (!stack.empty()) {
      Frame& f = stack.back();
      pending_min_bytes_ -= f.is_map ? 2 : 1;
      if (f.is_map) RETURN_IF_ERROR(ReadKey(&f));
    }
    const size_t start = pos_;
    uint8_t major = 0, ai = 0;
    uint64_t arg = 0;
    RETURN_IF_ERROR(ReadHead(&major, &ai, &arg));
    switch (major) {
      case kMajorUnsigned:
      case kMajorNegative:
        RETURN_IF_ERROR(CheckArgument(major, ai, arg, start));
        v = major == kMajorUnsigned ? Value::UInt(arg) : Value::NegativeRaw(arg);
        break;
      case kMajorBytes:
      case kMajorText: {
        RETURN_IF_ERROR(CheckArgument(major, ai, arg, start));
        std::string_view s;
        RETURN_IF_ERROR(ReadString(major, arg, start, &s));
        v = major == kMajorBytes ? Value::Bytes(std::string(s)) : Value::Text(std::string(s));
        break;
      }
      case kMajorArray:
      case kMajorMap: {
        RETURN_IF_ERROR(CheckArgument(major, ai, arg, start));
        const bool is_map = major == kMajorMap;
        RETURN_IF_ERROR(OpenContainer(is_map, arg, start, stack.size()));
        if (arg == 0) {
          v = is_map ? Value::FromMap(Map()) : Value::FromArray(Array());
          break;
        }
        Frame& f = stack.emplace_back();
        f.is_map = is_map;
        f.remaining = arg;
        if (is_map) {
          f.map.Reserve(arg);
        } else {
          f.array.reserve(arg);
        }
        continue;  // decode the first item
      }
      case kMajorTag:
        return Error("tags not allowed", start);
      case kMajorSimple:
      default:  // the major type has 3 bits: nothing else is left
        RETURN_IF_ERROR(ReadSimple(ai, arg, start, &v));
        break;
    }
    // Hand the finished value to its parent; close every container it completes.
    for (;;) {
      if (stack.empty()) {
        if (pos_ != size_) return Error("trailing bytes", pos_);
        return v;
      }
      Frame& f = stack.back();
      if (f.is_map) {
        if (!f.map.AppendSorted(std::move(f.key), std::move(v))) {
          return Internal("cbor: decoder map order invariant broken");
        }
      } else {
        f.array.push_back(std::move(v));
      }
      if (--f.remaining > 0) break;
      v = f.is_map ? Value::FromMap(std::move(f.map)) : Value::FromArray(std::move(f.array));
      stack.pop_back();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Diagnostic notation.

// Python's repr() of a finite non-zero double: shortest round-trip digits, positional
// when the decimal point position is in (-4, 16], scientific otherwise.
std::string FloatRepr(double d) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // [-]D[.DDD]e(+|-)XX
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);
  const int decpt = exp + 1;
  const int nd = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= nd) {
      out += digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
             digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out.push_back(digits[0]);
    if (nd > 1) out += "." + digits.substr(1);
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    std::string e = std::to_string(exp < 0 ? -exp : exp);
    if (e.size() < 2) e.insert(0, "0");
    out += e;
  }
  return out;
}

// JSON string quoting as Python's json.dumps(s, ensure_ascii=False).
void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendDiagnostic(const Value& v, uint32_t depth, std::string* out) {
  switch (v.type()) {
    case Type::kUnsigned:
      *out += std::to_string(v.raw_uint());
      return;
    case Type::kNegative:
      // -1 - n; for n == 2^64-1 the magnitude 2^64 does not fit in uint64.
      *out += v.raw_uint() == std::numeric_limits<uint64_t>::max()
                  ? "-18446744073709551616"
                  : "-" + std::to_string(v.raw_uint() + 1);
      return;
    case Type::kBytes:
      *out += "h'" + HexEncode(v.string_value()) + "'";
      return;
    case Type::kText:
      AppendJsonString(v.string_value(), out);
      return;
    case Type::kArray: {
      if (depth >= kDefaultMaxDepth) {
        *out += "...";
        return;
      }
      out->push_back('[');
      bool first = true;
      for (const Value& c : v.array()) {
        if (!first) *out += ", ";
        first = false;
        AppendDiagnostic(c, depth + 1, out);
      }
      out->push_back(']');
      return;
    }
    case Type::kMap: {
      if (depth >= kDefaultMaxDepth) {
        *out += "...";
        return;
      }
      out->push_back('{');
      bool first = true;
      for (const auto& [k, c] : v.map().entries()) {
        if (!first) *out += ", ";
        first = false;
        AppendJsonString(k, out);
        *out += ": ";
        AppendDiagnostic(c, depth + 1, out);
      }
      out->push_back('}');
      return;
    }
    case Type::kBool:
      *out += v.bool_value() ? "true" : "false";
      return;
    case Type::kNull:
      *out += "null";
      return;
    case Type::kFloat: {
      const double d = v.float_value();
      if (std::isnan(d)) {
        *out += "NaN";
      } else if (std::isinf(d)) {
        *out += d > 0 ? "Infinity" : "-Infinity";
      } else if (d == 0) {
        *out += std::signbit(d) ? "-0.0" : "0.0";
      } else {
        *out += FloatRepr(d);
      }
      return;
    }
  }
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kUnsigned:
      return "unsigned integer";
    case Type::kNegative:
      return "negative integer";
    case Type::kBytes:
      return "byte string";
    case Type::kText:
      return "text string";
    case Type::kArray:
      return "array";
    case Type::kMap:
      return "map";
    case Type::kBool:
      return "boolean";
    case Type::kNull:
      return "null";
    case Type::kFloat:
      return "float";
  }
  return "?";
}

Status TypeError(std::string_view what, const char* expected, Type got) {
  return Corrupt("cbor: " + std::string(what) + ": expected " + expected + ", got " +
                 TypeName(got));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Map.

bool KeyLess(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return !a.empty() && std::memcmp(a.data(), b.data(), a.size()) < 0;
}

Map::Map(std::initializer_list<Entry> entries) {
  entries_.reserve(entries.size());
  for (const Entry& e : entries) Set(e.first, e.second);
}

void Map::Set(std::string key, Value value) {
  if (entries_.empty() || KeyLess(entries_.back().first, key)) {
    entries_.emplace_back(std::move(key), std::move(value));
    return;
  }
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), key,
                       [](const Entry& e, const std::string& k) { return KeyLess(e.first, k); });
  if (it != entries_.end() && it->first == key) {
    it->second = std::move(value);
  } else {
    entries_.emplace(it, std::move(key), std::move(value));
  }
}

void Map::Reserve(size_t n) { entries_.reserve(n); }

bool Map::AppendSorted(std::string key, Value value) {
  if (!entries_.empty() && !KeyLess(entries_.back().first, key)) return false;
  entries_.emplace_back(std::move(key), std::move(value));
  return true;
}

const Value* Map::Find(std::string_view key) const {
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), key,
                       [](const Entry& e, std::string_view k) { return KeyLess(e.first, k); });
  if (it != entries_.end() && it->first == key) return &it->second;
  return nullptr;
}

bool Map::operator==(const Map& other) const {
  if (entries_.size() != other.entries_.size()) return false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first != other.entries_[i].first) return false;
    if (!(entries_[i].second == other.entries_[i].second)) return false;  // iterative
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Value.

// Copy-on-write decisions read use_count(), a relaxed load. Another thread's copy may
// have just been released (an acq_rel decrement); the acquire fence makes that thread's
// reads of the shared tree happen before our writes to it.
namespace {
bool Unique(const void* p, long use_count) {
  if (p == nullptr || use_count != 1) return false;
  std::atomic_thread_fence(std::memory_order_acquire);
  return true;
}
}  // namespace

void Value::DetachNested(Storage& s, std::vector<Storage>* pending) {
  auto take = [pending](Storage& child) {
    if (auto* a = std::get_if<std::shared_ptr<Array>>(&child)) {
      if (Unique(a->get(), a->use_count()) && !(*a)->empty()) {
        pending->push_back(std::move(child));
        child = NullTag{};
      }
    } else if (auto* m = std::get_if<std::shared_ptr<Map>>(&child)) {
      if (Unique(m->get(), m->use_count()) && !(*m)->empty()) {
        pending->push_back(std::move(child));
        child = NullTag{};
      }
    }
  };
  if (auto* a = std::get_if<std::shared_ptr<Array>>(&s)) {
    if (Unique(a->get(), a->use_count())) {
      for (Value& c : **a) take(c.v_);
    }
  } else if (auto* m = std::get_if<std::shared_ptr<Map>>(&s)) {
    if (Unique(m->get(), m->use_count())) {
      for (auto& e : (*m)->entries_) take(e.second.v_);
    }
  }
}

Value::~Value() {
  // Tear nested containers down with an explicit worklist: after DetachNested, the
  // destructor of every child is shallow, so the recursion depth is one level.
  if (v_.index() < 7) return;  // scalars
  try {
    std::vector<Storage> pending;
    DetachNested(v_, &pending);
    while (!pending.empty()) {
      Storage s = std::move(pending.back());
      pending.pop_back();
      DetachNested(s, &pending);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch)
    // Only the worklist's allocation can fail (out of memory). Whatever was not detached
    // yet is then destroyed recursively, which is correct, just not stack-bounded.
  }
}

Value& Value::operator=(const Value& other) {
  Value tmp(other);
  std::swap(v_, tmp.v_);
  return *this;  // tmp's destructor releases the old value iteratively
}

Value& Value::operator=(Value&& other) noexcept {  // NOLINT(bugprone-exception-escape)
  Value tmp(std::move(other));
  std::swap(v_, tmp.v_);
  return *this;
}

Value Value::Bool(bool b) { return Value(Storage(std::in_place_type<bool>, b)); }
Value Value::UInt(uint64_t u) { return Value(Storage(std::in_place_type<uint64_t>, u)); }
Value Value::Int(int64_t i) {
  if (i >= 0) return UInt(static_cast<uint64_t>(i));
  return NegativeRaw(~static_cast<uint64_t>(i));  // -1 - i without overflow
}
Value Value::NegativeRaw(uint64_t n) { return Value(Storage(std::in_place_type<Neg>, Neg{n})); }
Value Value::Float(double d) {
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();
  return Value(Storage(std::in_place_type<double>, d));
}
Value Value::Bytes(std::string b) {
  return Value(Storage(std::in_place_type<std::string>, std::move(b)));
}
Value Value::Text(std::string t) {
  return Value(Storage(std::in_place_type<Txt>, Txt{std::move(t)}));
}
Value Value::FromArray(Array a) {
  return Value(
      Storage(std::in_place_type<std::shared_ptr<Array>>, std::make_shared<Array>(std::move(a))));
}
Value Value::FromMap(Map m) {
  return Value(
      Storage(std::in_place_type<std::shared_ptr<Map>>, std::make_shared<Map>(std::move(m))));
}

Type Value::type() const {
  switch (v_.index()) {
    case 0:
      return Type::kNull;
    case 1:
      return Type::kBool;
    case 2:
      return Type::kUnsigned;
    case 3:
      return Type::kNegative;
    case 4:
      return Type::kFloat;
    case 5:
      return Type::kBytes;
    case 6:
      return Type::kText;
    case 7:
      return Type::kArray;
    default:
      return Type::kMap;
  }
}

Result<uint64_t> Value::AsUInt(std::string_view what) const {
  if (type() != Type::kUnsigned) return TypeError(what, "unsigned integer", type());
  return std::get<uint64_t>(v_);
}

Result<int64_t> Value::AsInt(std::string_view what) const {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  if (type() == Type::kUnsigned) {
    if (std::get<uint64_t>(v_) > kMax) {
      return Corrupt("cbor: " + std::string(what) + ": integer out of int64 range");
    }
    return static_cast<int64_t>(std::get<uint64_t>(v_));
  }
  if (type() == Type::kNegative) {
    const uint64_t n = std::get<Neg>(v_).n;
    if (n > kMax) return Corrupt("cbor: " + std::string(what) + ": integer out of int64 range");
    return -1 - static_cast<int64_t>(n);
  }
  return TypeError(what, "integer", type());
}

Result<bool> Value::AsBool(std::string_view what) const {
  if (type() != Type::kBool) return TypeError(what, "boolean", type());
  return std::get<bool>(v_);
}

Result<double> Value::AsFloat(std::string_view what) const {
  if (type() != Type::kFloat) return TypeError(what, "float", type());
  return std::get<double>(v_);
}

Result<std::string_view> Value::AsText(std::string_view what) const {
  if (type() != Type::kText) return TypeError(what, "text string", type());
  return std::string_view(std::get<Txt>(v_).s);
}

Result<std::string_view> Value::AsBytes(std::string_view what) const {
  if (type() != Type::kBytes) return TypeError(what, "byte string", type());
  return std::string_view(std::get<std::string>(v_));
}

Result<const Array*> Value::AsArray(std::string_view what) const {
  if (type() != Type::kArray) return TypeError(what, "array", type());
  return &array();
}

Result<const Map*> Value::AsMap(std::string_view what) const {
  if (type() != Type::kMap) return TypeError(what, "map", type());
  return &map();
}

uint64_t Value::raw_uint() const {
  if (const auto* n = std::get_if<Neg>(&v_)) return n->n;
  return std::get<uint64_t>(v_);
}
double Value::float_value() const { return std::get<double>(v_); }
bool Value::bool_value() const { return std::get<bool>(v_); }
const std::string& Value::string_value() const {
  if (const auto* t = std::get_if<Txt>(&v_)) return t->s;
  return std::get<std::string>(v_);
}
const Array& Value::array() const { return *std::get<std::shared_ptr<Array>>(v_); }
const Map& Value::map() const { return *std::get<std::shared_ptr<Map>>(v_); }

Array& Value::mutable_array() {
  auto& p = std::get<std::shared_ptr<Array>>(v_);
  if (!Unique(p.get(), p.use_count())) p = std::make_shared<Array>(*p);  // copy-on-write
  return *p;
}

Map& Value::mutable_map() {
  auto& p = std::get<std::shared_ptr<Map>>(v_);
  if (!Unique(p.get(), p.use_count())) p = std::make_shared<Map>(*p);  // copy-on-write
  return *p;
}

bool Value::operator==(const Value& other) const {
  std::vector<std::pair<const Value*, const Value*>> work;
  work.emplace_back(this, &other);
  while (!work.empty()) {
    auto [a, b] = work.back();
    work.pop_back();
    if (a->v_.index() != b->v_.index()) return false;
    switch (a->type()) {
      case Type::kNull:
        break;
      case Type::kBool:
        if (a->bool_value() != b->bool_value()) return false;
        break;
      case Type::kUnsigned:
      case Type::kNegative:
        if (a->raw_uint() != b->raw_uint()) return false;
        break;
      case Type::kFloat:  // by bits: NaN is canonical (Float), -0.0 differs from 0.0
        if (std::bit_cast<uint64_t>(a->float_value()) !=
            std::bit_cast<uint64_t>(b->float_value())) {
          return false;
        }
        break;
      case Type::kBytes:
      case Type::kText:
        if (a->string_value() != b->string_value()) return false;
        break;
      case Type::kArray: {
        const Array& x = a->array();
        const Array& y = b->array();
        if (&x == &y) break;
        if (x.size() != y.size()) return false;
        for (size_t i = 0; i < x.size(); ++i) work.emplace_back(&x[i], &y[i]);
        break;
      }
      case Type::kMap: {
        const auto& x = a->map().entries();
        const auto& y = b->map().entries();
        if (&x == &y) break;
        if (x.size() != y.size()) return false;
        for (size_t i = 0; i < x.size(); ++i) {
          if (x[i].first != y[i].first) return false;
          work.emplace_back(&x[i].second, &y[i].second);
        }
        break;
      }
    }
  }
  return true;
}

Result<const Value*> Require(const Map& m, std::string_view key) {
  const Value* v = m.Find(key);
  if (v == nullptr) return Corrupt("cbor: missing required key " + Quote(key));
  return v;
}

// ---------------------------------------------------------------------------------------
// Entry points.

Status EncodeTo(const Value& value, Bytes* out) { return EncodeValue(value, 0, out); }

Result<Bytes> Encode(const Value& value) {
  Bytes out;
  out.reserve(EncodedSize(value, 0));
  RETURN_IF_ERROR(EncodeValue(value, 0, &out));
  return out;
}

Result<Value> Decode(ByteView input, const DecodeLimits& limits) {
  return Decoder(input, limits).Run();
}

Value IdValue(const ObjectId& id) { return Value::Bytes(id.ToBinary()); }

Result<ObjectId> AsId(const Value& v, std::string_view what) {
  ASSIGN_OR_RETURN(std::string_view b, v.AsBytes(what));
  Result<ObjectId> id = ObjectId::FromBinary(b);
  if (!id.ok()) return id.status().WithContext("cbor: " + std::string(what));
  return id;
}

std::string ToDiagnostic(const Value& value) {
  std::string out;
  AppendDiagnostic(value, 0, &out);
  return out;
}

}  // namespace dreamdb::cbor
