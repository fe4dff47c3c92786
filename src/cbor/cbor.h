// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Canonical CBOR (spec/03-cbor.md): RFC 8949 §4.2.1 core deterministic encoding over a
// restricted data model, with a strict decoder.
//
// Data model: unsigned and negative integers (the full CBOR range, -2^64 .. 2^64-1),
// byte strings, UTF-8 text strings, arrays, maps whose keys are text strings, booleans,
// null, and floating-point numbers (encoded in the shortest of binary16/32/64 that
// keeps the value exactly; NaN only as 0xf97e00). No tags, no undefined, no simple
// values other than false/true/null, no indefinite lengths.
//
// Map keys are kept in canonical order (shorter key first, then bytewise), which for
// text keys equals RFC 8949 §4.2.1 order of the encoded keys. Duplicate keys are refused.
//
// Decoding is strict: the decoder accepts exactly the byte strings that Encode produces
// (encode(decode(b)) == b for every accepted b) and rejects everything else with
// kCorrupt and a message naming the rule broken and the byte offset, e.g.
// "cbor: non-minimal integer encoding at offset 3". Nesting depth, input size and item
// count are limited (DecodeLimits). The decoder is iterative: no input can exhaust the
// stack, whatever the limits.
//
// Thread safety: Value is a value type. Copies share immutable subtrees internally
// (copy-on-write through mutable_array()/mutable_map()), which is invisible to callers:
// distinct Value objects may be used from distinct threads freely. Encode/Decode are
// reentrant.

#ifndef DREAMDB_SRC_CBOR_CBOR_H_
#define DREAMDB_SRC_CBOR_CBOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"

namespace dreamdb::cbor {

class Value;
class Map;
// Value is defined before Map so that Map's inline members see a complete Value (clang
// instantiates std::vector<std::pair<std::string, Value>> members eagerly).
using Array = std::vector<Value>;

enum class Type : uint8_t {
  kUnsigned,  // uint64
  kNegative,  // -1 - n for n in uint64
  kBytes,
  kText,
  kArray,
  kMap,
  kBool,
  kNull,
  kFloat,
};

class Value {
 public:
  Value() : v_(NullTag{}) {}  // null
  // Copies are cheap (subtrees are shared). Destruction and assignment tear nested
  // arrays/maps down iteratively, so arbitrarily deep values never overflow the stack.
  Value(const Value&) = default;
  // A moved-from Value is null. (clang-tidy sees std::variant's bad_variant_access path;
  // our variant is never valueless: every alternative moves without throwing.)
  // NOLINTNEXTLINE(bugprone-exception-escape)
  Value(Value&& other) noexcept : v_(std::move(other.v_)) { other.v_ = NullTag{}; }
  Value& operator=(const Value& other);
  Value& operator=(Value&& other) noexcept;  // NOLINT(bugprone-exception-escape)
  ~Value();

  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value UInt(uint64_t u);
  // Any int64.
  static Value Int(int64_t i);
  // -1 - n (so NegativeRaw(0) == -1, NegativeRaw(UINT64_MAX) == -2^64).
  static Value NegativeRaw(uint64_t n);
  static Value Float(double d);  // every NaN becomes the one canonical quiet NaN
  static Value Bytes(std::string b);
  static Value Text(std::string t);  // REQUIRES valid UTF-8 (Encode checks)
  static Value FromArray(Array a);
  static Value FromMap(Map m);

  Type type() const;
  bool is_null() const { return type() == Type::kNull; }

  // Typed accessors: kCorrupt naming `what` when the type or range is wrong. Intended
  // for decoding objects: `ASSIGN_OR_RETURN(auto n, v.AsUInt("manifest.count"))`.
  Result<uint64_t> AsUInt(std::string_view what) const;
  Result<int64_t> AsInt(std::string_view what) const;
  Result<bool> AsBool(std::string_view what) const;
  Result<double> AsFloat(std::string_view what) const;  // accepts floats only
  Result<std::string_view> AsText(std::string_view what) const;
  Result<std::string_view> AsBytes(std::string_view what) const;
  Result<const Array*> AsArray(std::string_view what) const;
  Result<const Map*> AsMap(std::string_view what) const;

  // Raw access (REQUIRES matching type()).
  uint64_t raw_uint() const;  // kUnsigned value or kNegative's n
  double float_value() const;
  bool bool_value() const;
  const std::string& string_value() const;  // kBytes or kText
  const Array& array() const;
  // Unshare the array/map first if a copy shares it. The reference is valid until this
  // Value is copied, assigned or destroyed; do not write through it after copying.
  Array& mutable_array();
  const Map& map() const;
  Map& mutable_map();

  // Structural equality, which is equality of canonical encodings: floats compare by
  // bits (so -0.0 != 0.0 and NaN == NaN), 1 (integer) != 1.0 (float). Iterative.
  bool operator==(const Value& other) const;

 private:
  struct NullTag {  // not `Null`: that name is the public factory
    bool operator==(const NullTag&) const { return true; }
  };
  struct Neg {
    uint64_t n;
    bool operator==(const Neg&) const = default;
  };
  struct Txt {
    std::string s;
    bool operator==(const Txt&) const = default;
  };
  using Storage = std::variant<NullTag, bool, uint64_t, Neg, double, std::string, Txt,
                               std::shared_ptr<Array>, std::shared_ptr<Map>>;
  explicit Value(Storage v) : v_(std::move(v)) {}
  // Moves every child of the container in `s` that is itself a non-empty container
  // owned only by `s` into `pending`, leaving null in its place (see ~Value).
  static void DetachNested(Storage& s, std::vector<Storage>* pending);
  Storage v_;
};

// A map with text keys in canonical order. Insertion keeps the order; Set replaces.
class Map {
 public:
  using Entry = std::pair<std::string, Value>;
  Map() = default;
  Map(std::initializer_list<Entry> entries);  // REQUIRES: no duplicate keys (last wins)

  // Inserts or replaces.
  void Set(std::string key, Value value);
  // Appends an entry that must sort after every existing key and not duplicate one.
  // Returns false (and changes nothing) otherwise. Used by the decoder.
  bool AppendSorted(std::string key, Value value);
  // Capacity hint for `n` entries in total.
  void Reserve(size_t n);

  const Value* Find(std::string_view key) const;
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<Entry>& entries() const { return entries_; }
  bool operator==(const Map& other) const;

 private:
  friend class Value;           // iterative teardown of nested values
  std::vector<Entry> entries_;  // sorted by KeyLess
};

// Canonical order of text keys: shorter first, then bytewise.
bool KeyLess(std::string_view a, std::string_view b);

// Map lookup helpers for decoding objects; kCorrupt naming `key` when missing.
Result<const Value*> Require(const Map& m, std::string_view key);

inline constexpr uint32_t kDefaultMaxDepth = 64;

struct DecodeLimits {
  // Nesting of arrays/maps: a top-level array or map is depth 1; scalars inside it do
  // not add depth. Deeper input is rejected.
  uint32_t max_depth = kDefaultMaxDepth;
  uint64_t max_input_bytes = 1u << 30;  // whole encoded value
  uint64_t max_items = 1u << 26;        // total array elements + map entries
};

// Appends the canonical encoding of `value` to `out`. kInvalidArgument if a text string
// or map key is not valid UTF-8 or the value is nested deeper than kDefaultMaxDepth (so
// whatever we write, a default decoder reads back). On error `out` may hold a partial
// encoding after its original contents.
Status EncodeTo(const Value& value, Bytes* out);
Result<Bytes> Encode(const Value& value);

// Decodes exactly one value that must span all of `input`. kCorrupt on any input that
// Encode would not produce, or that exceeds `limits`. Memory use is O(input size):
// declared lengths are checked against the remaining input before anything is reserved.
Result<Value> Decode(ByteView input, const DecodeLimits& limits = {});

// Helpers for ObjectIds inside CBOR objects: stored as byte strings holding the binary
// multihash (spec/04-object-ids.md §3).
Value IdValue(const ObjectId& id);
Result<ObjectId> AsId(const Value& v, std::string_view what);

// Diagnostic notation (RFC 8949 §8) for humans and error messages, e.g. {"a": 1}.
// Exact format (spec/03-cbor.md §7, used by spec/vectors/cbor): integers in decimal;
// floats like Python's repr() ("1.5", "100000.0", "1e+300") plus "NaN", "Infinity",
// "-Infinity"; text JSON-quoted (non-ASCII kept); bytes h'0a1b'; "[a, b]";
// "{"k": v}"; true/false/null. Nesting beyond kDefaultMaxDepth prints "...".
std::string ToDiagnostic(const Value& value);

}  // namespace dreamdb::cbor

#endif  // DREAMDB_SRC_CBOR_CBOR_H_
