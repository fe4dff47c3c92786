// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Golden genesis and manifest vectors (spec/vectors/manifests/manifests.json,
// spec/13-manifests.md §14).
//
// Each valid vector holds an object's canonical bytes as hex, its id, its diagnostic
// notation (spec/03-cbor.md §7) and its decoded content as JSON ("value"). This test checks,
// for every vector: id(hex) == id, decode(hex) == value, encode(decode(hex)) == hex and
// diagnostic(hex) == diagnostic; for every invalid vector: decoding fails with the stated
// code. It also checks that the file lists exactly what this build generates. Every input
// is fixed (names, nonce, times, writer, placeholder ids), so the output is deterministic.
//
// To rewrite the file after a deliberate format change (which also bumps the format
// version, spec/08-versioning.md §5):
//   DREAMDB_REGENERATE_VECTORS=1 build/dev/src/dataset/manifest_vectors_test
// (DREAMDB_UPDATE_VECTORS=1, the variable the segment vectors use, works too.)
//
// JSON forms: ids in text form (spec/04-object-ids.md); bytes (the nonce) as lowercase
// hex; the schema in its JSON form (spec/10-schema.md §5) plus "version"; an index ref as
// null, {"inline": {"anchors": [...], "fields": {name: {"segments", "seg", "row"}}}} or
// {"root", "height", "count"} (spec/11-anchor-index.md §4), with seg 4294967295 = no value.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "src/base/encoding.h"
#include "src/btree/btree.h"
#include "src/cbor/cbor.h"
#include "src/dataset/manifest.h"

namespace dreamdb::dataset {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kT0 = 1700000000000000000;  // 2023-11-14T22:13:20Z
constexpr uint64_t kSecond = 1000000000;
const char* const kWriter = "alice@lab:4242";

std::filesystem::path VectorsPath() {
  const char* src = std::getenv("DREAMDB_SOURCE_DIR");
  std::filesystem::path root =
      src != nullptr ? std::filesystem::path(src)
                     : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return root / "spec" / "vectors" / "manifests" / "manifests.json";
}

bool Regenerating() {
  return std::getenv("DREAMDB_REGENERATE_VECTORS") != nullptr ||
         std::getenv("DREAMDB_UPDATE_VECTORS") != nullptr;
}

// Placeholder ids: the ids of short ASCII texts, standing in for segments and index pages
// that are not part of these vectors.
ObjectId Placeholder(std::string_view text) { return ObjectId::Of(text); }

Schema ExampleSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("caption", /*optional=*/true).ok());
  EXPECT_TRUE(s.AddBlob("image", "image/png", /*optional=*/true).ok());
  return s;
}

// The inline index after appending three records (anchors 0, 1, 2) with `label` and
// `caption`, each column in one segment of three rows.
btree::IndexRef InlineIndex() {
  const ObjectId label = Placeholder("segment label 0");
  const ObjectId caption = Placeholder("segment caption 0");
  std::vector<btree::Entry> entries;
  for (uint32_t i = 0; i < 3; ++i) {
    btree::Entry e;
    e.anchor = i;
    // Canonical key order: "label" (5 bytes) before "caption" (7 bytes).
    e.fields = {{"label", {label, i}}, {"caption", {caption, i}}};
    entries.push_back(std::move(e));
  }
  return btree::IndexRef::Inline(btree::LeafFromEntries(entries));
}

// A tombstone set of `anchors`, inline.
btree::IndexRef InlineSet(const std::vector<uint64_t>& anchors) {
  std::vector<btree::Entry> entries;
  for (uint64_t a : anchors) entries.push_back(btree::Entry{a, {}});
  return btree::IndexRef::Inline(btree::LeafFromEntries(entries));
}

struct Generated {
  std::string name;
  std::string kind;  // "genesis" | "manifest"
  Bytes bytes;
};

Manifest BaseManifest(const ObjectId& genesis, const Schema& schema) {
  Manifest m;
  m.genesis = genesis;
  m.schema = schema;
  m.index = btree::IndexRefToCbor(btree::IndexRef::Empty());
  m.tombstones = btree::IndexRefToCbor(btree::IndexRef::Empty());
  m.writer = kWriter;
  return m;
}

// The valid objects: a genesis and a chain of five manifests, each the parent of the next,
// shaped exactly as Dataset writes them for: create, an append of three records (inline
// index), a metadata change, an append of 1000 records (paged index), a delete of two
// records (paged index, inline tombstones).
std::vector<Generated> GenerateObjects() {
  std::vector<Generated> out;
  const Schema schema = ExampleSchema();

  Genesis g;
  g.name = "example";
  for (int i = 0; i < 16; ++i) g.nonce.push_back(static_cast<char>(i));
  g.time_ns = kT0;
  g.schema = schema;
  Bytes gbytes = *EncodeGenesis(g);
  const ObjectId gid = ObjectId::Of(gbytes);
  out.push_back({"genesis", "genesis", gbytes});

  auto put = [&](std::string name, const Manifest& m) {
    Bytes b = *EncodeManifest(m);
    out.push_back({std::move(name), "manifest", b});
    return ObjectId::Of(b);
  };

  // Create: no records, no parents, same time as the genesis, every field "touched".
  Manifest m0 = BaseManifest(gid, schema);
  m0.time_ns = kT0;
  m0.message = "create";
  m0.delta.fields = {"label", "caption", "image"};
  const ObjectId id0 = put("manifest: create (empty index)", m0);

  Manifest m1 = BaseManifest(gid, schema);
  m1.parents = {id0};
  m1.index = btree::IndexRefToCbor(InlineIndex());
  m1.count = 3;
  m1.next_anchor = 3;
  m1.time_ns = kT0 + kSecond;
  m1.message = "first three records";
  m1.delta.added = 3;
  m1.delta.fields = {"caption", "label"};
  const ObjectId id1 = put("manifest: append, inline index", m1);

  Manifest m2 = m1;
  m2.parents = {id1};
  m2.meta = {{"owner", "team-a"}, {"source", "camera-3"}};
  m2.time_ns = kT0 + 2 * kSecond;
  m2.message = "set owner and source";
  m2.delta = {};
  const ObjectId id2 = put("manifest: metadata", m2);

  Manifest m3 = m2;
  m3.parents = {id2};
  m3.index = btree::IndexRefToCbor(
      btree::IndexRef::Paged(Placeholder("page: root after the append"), 2, 1003));
  m3.count = 1003;
  m3.next_anchor = 1003;
  m3.time_ns = kT0 + 3 * kSecond;
  m3.message = "append 1000 records";
  m3.delta = {};
  m3.delta.added = 1000;
  m3.delta.fields = {"caption", "label"};
  const ObjectId id3 = put("manifest: append, paged index", m3);

  Manifest m4 = m3;
  m4.parents = {id3};
  m4.index = btree::IndexRefToCbor(
      btree::IndexRef::Paged(Placeholder("page: root after the delete"), 2, 1001));
  m4.tombstones = btree::IndexRefToCbor(InlineSet({1, 500}));
  m4.count = 1001;
  m4.time_ns = kT0 + 4 * kSecond;
  m4.message = "delete two records";
  m4.delta = {};
  m4.delta.deleted = 2;
  put("manifest: delete, paged index and tombstones", m4);
  return out;
}

// Rebuilds a top-level map with `key` set to `value` (or removed when `remove`).
Bytes Mutate(const Bytes& bytes, const std::string& key, cbor::Value value, bool remove = false) {
  cbor::Value v = *cbor::Decode(bytes);
  cbor::Map m;
  for (const auto& [k, val] : v.map().entries()) {
    if (k != key) m.Set(k, val);
  }
  if (!remove) m.Set(key, std::move(value));
  return *cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

struct Invalid {
  std::string name;
  std::string kind;
  Bytes bytes;
  StatusCode code;
};

std::vector<Invalid> GenerateInvalid(const std::vector<Generated>& valid) {
  const Bytes& genesis = valid[0].bytes;
  const Bytes& manifest = valid[2].bytes;  // the inline-index manifest
  std::vector<Invalid> out;
  out.push_back({"manifest format 2 (newer than this reader)", "manifest",
                 Mutate(manifest, "format", cbor::Value::UInt(2)), StatusCode::kUnsupported});
  out.push_back({"manifest format 0", "manifest", Mutate(manifest, "format", cbor::Value::UInt(0)),
                 StatusCode::kCorrupt});
  out.push_back({"a genesis read as a manifest (wrong kind)", "manifest", genesis,
                 StatusCode::kInvalidArgument});
  out.push_back({"manifest without delta", "manifest",
                 Mutate(manifest, "delta", cbor::Value::Null(), /*remove=*/true),
                 StatusCode::kCorrupt});
  out.push_back({"manifest with a negative count", "manifest",
                 Mutate(manifest, "count", cbor::Value::Int(-1)), StatusCode::kCorrupt});
  out.push_back(
      {"manifest with a non-text meta value", "manifest",
       Mutate(manifest, "meta", cbor::Value::FromMap(cbor::Map{{"owner", cbor::Value::UInt(1)}})),
       StatusCode::kCorrupt});
  out.push_back({"manifest with an inline index of 65 anchors", "manifest",
                 [&] {
                   std::vector<uint64_t> a(65);
                   for (uint64_t i = 0; i < 65; ++i) a[i] = i;
                   btree::Leaf leaf;
                   leaf.anchors = a;
                   cbor::Map ref{{"inline", btree::LeafToCbor(leaf)}};
                   return Mutate(manifest, "index", cbor::Value::FromMap(std::move(ref)));
                 }(),
                 StatusCode::kCorrupt});
  out.push_back({"genesis with a text nonce", "genesis",
                 Mutate(genesis, "nonce", cbor::Value::Text("nonce")), StatusCode::kCorrupt});
  out.push_back({"genesis format 2 (newer than this reader)", "genesis",
                 Mutate(genesis, "format", cbor::Value::UInt(2)), StatusCode::kUnsupported});
  return out;
}

// ---- JSON forms of decoded objects ----

Json IdsJson(const std::vector<ObjectId>& ids) {
  Json a = Json::array();
  for (const auto& id : ids) a.push_back(id.ToString());
  return a;
}

Json SchemaJson(const Schema& s) { return Json::parse(s.ToJson()); }

Result<Json> IndexJson(const cbor::Value& v, std::string_view what) {
  ASSIGN_OR_RETURN(btree::IndexRef ref, btree::IndexRefFromCbor(v, what));
  if (ref.empty()) return Json(nullptr);
  if (ref.is_paged()) {
    Json j = Json::object();
    j["root"] = ref.root.ToString();
    j["height"] = ref.height;
    j["count"] = ref.count;
    return j;
  }
  const btree::Leaf& leaf = *ref.inline_leaf;
  Json fields = Json::object();
  for (const auto& f : leaf.fields) {
    Json jf = Json::object();
    jf["segments"] = IdsJson(f.segments);
    jf["seg"] = f.seg;
    jf["row"] = f.row;
    fields[f.name] = std::move(jf);
  }
  Json inl = Json::object();
  inl["anchors"] = leaf.anchors;
  inl["fields"] = std::move(fields);
  Json j = Json::object();
  j["inline"] = std::move(inl);
  return j;
}

Json GenesisJson(const Genesis& g) {
  Json j = Json::object();
  j["name"] = g.name;
  j["nonce"] = HexEncode(g.nonce);
  j["time_ns"] = g.time_ns;
  j["schema"] = SchemaJson(g.schema);
  return j;
}

Result<Json> ManifestJson(const Manifest& m) {
  Json j = Json::object();
  j["genesis"] = m.genesis.ToString();
  j["parents"] = IdsJson(m.parents);
  j["schema"] = SchemaJson(m.schema);
  ASSIGN_OR_RETURN(j["index"], IndexJson(m.index, "index"));
  ASSIGN_OR_RETURN(j["tombstones"], IndexJson(m.tombstones, "tombstones"));
  j["count"] = m.count;
  j["next_anchor"] = m.next_anchor;
  Json meta = Json::object();
  for (const auto& [k, v] : m.meta) meta[k] = v;
  j["meta"] = std::move(meta);
  j["writer"] = m.writer;
  j["time_ns"] = m.time_ns;
  j["message"] = m.message;
  Json d = Json::object();
  d["added"] = m.delta.added;
  d["replaced"] = m.delta.replaced;
  d["deleted"] = m.delta.deleted;
  d["fields"] = m.delta.fields;
  j["delta"] = std::move(d);
  return j;
}

// Decodes `bytes` as `kind` and returns its JSON form and its re-encoding.
Result<std::pair<Json, Bytes>> DecodeAndReencode(const std::string& kind, const Bytes& bytes) {
  if (kind == "genesis") {
    ASSIGN_OR_RETURN(Genesis g, DecodeGenesis(bytes));
    ASSIGN_OR_RETURN(Bytes again, EncodeGenesis(g));
    return std::make_pair(GenesisJson(g), std::move(again));
  }
  ASSIGN_OR_RETURN(Manifest m, DecodeManifest(bytes));
  ASSIGN_OR_RETURN(Json j, ManifestJson(m));
  ASSIGN_OR_RETURN(Bytes again, EncodeManifest(m));
  return std::make_pair(std::move(j), std::move(again));
}

Status DecodeOnly(const std::string& kind, const Bytes& bytes) {
  if (kind == "genesis") return DecodeGenesis(bytes).status();
  auto m = DecodeManifest(bytes);
  if (!m.ok()) return m.status();
  // The index refs are part of reading a manifest (Dataset does this on load).
  RETURN_IF_ERROR(btree::IndexRefFromCbor(m->index, "manifest index").status());
  return btree::IndexRefFromCbor(m->tombstones, "manifest tombstones").status();
}

Json Generate() {
  const std::vector<Generated> objects = GenerateObjects();
  Json valid = Json::array();
  for (const Generated& o : objects) {
    auto decoded = DecodeAndReencode(o.kind, o.bytes);
    EXPECT_TRUE(decoded.ok()) << o.name << ": " << decoded.status().ToString();
    if (!decoded.ok()) continue;
    Json v = Json::object();
    v["name"] = o.name;
    v["kind"] = o.kind == "genesis" ? kGenesisKind : kManifestKind;
    v["value"] = decoded->first;
    v["diagnostic"] = cbor::ToDiagnostic(*cbor::Decode(o.bytes));
    v["size"] = o.bytes.size();
    v["id"] = ObjectId::Of(o.bytes).ToString();
    v["hex"] = HexEncode(o.bytes);
    valid.push_back(std::move(v));
  }
  Json invalid = Json::array();
  for (const Invalid& o : GenerateInvalid(objects)) {
    Json v = Json::object();
    v["name"] = o.name;
    v["kind"] = o.kind == "genesis" ? kGenesisKind : kManifestKind;
    v["code"] = std::string(StatusCodeName(o.code));
    v["hex"] = HexEncode(o.bytes);
    invalid.push_back(std::move(v));
  }
  Json doc = Json::object();
  doc["spec"] = "spec/13-manifests.md";
  doc["generator"] = "src/dataset/manifest_vectors_test.cc (DREAMDB_REGENERATE_VECTORS=1)";
  doc["notes"] =
      "The manifests form a chain: each names the previous one as its parent, and all name "
      "the genesis. Segment and index page ids are placeholders (ids of short ASCII texts); "
      "those objects are not part of these vectors. ids are in text form; 'nonce' is hex; "
      "'schema' is the JSON form of spec/10-schema.md §5; an index ref is null, "
      "{\"inline\": leaf} or {\"root\", \"height\", \"count\"}; seg 4294967295 = no value. "
      "'diagnostic' is the one-line diagnostic notation of spec/03-cbor.md §7. 'code' of an "
      "invalid vector is the error a reader returns (spec/07-errors.md).";
  doc["valid"] = std::move(valid);
  doc["invalid"] = std::move(invalid);
  return doc;
}

std::string KindArg(const Json& v) {
  return v["kind"].get<std::string>() == kGenesisKind ? "genesis" : "manifest";
}

TEST(ManifestVectors, MatchTheFile) {
  const std::filesystem::path path = VectorsPath();
  Json generated = Generate();
  if (Regenerating()) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path);
    out << generated.dump(1) << "\n";
    ASSERT_TRUE(out.good()) << path;
    std::cout << "wrote " << path << "\n";
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  Json doc = Json::parse(text.str());
  ASSERT_GE(doc["valid"].size(), 3u);

  for (const Json& v : doc["valid"]) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE(name);
    auto bytes = HexDecode(v["hex"].get<std::string>());
    ASSERT_TRUE(bytes.has_value());
    EXPECT_EQ(bytes->size(), v["size"].get<uint64_t>());
    EXPECT_EQ(ObjectId::Of(*bytes).ToString(), v["id"].get<std::string>());
    EXPECT_EQ(PeekKind(*bytes), v["kind"].get<std::string>());
    // decode(hex) == value, encode(decode(hex)) == hex.
    auto decoded = DecodeAndReencode(KindArg(v), *bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->first, v["value"]);
    EXPECT_EQ(HexEncode(decoded->second), v["hex"].get<std::string>());
    auto value = cbor::Decode(*bytes);
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(cbor::ToDiagnostic(*value), v["diagnostic"].get<std::string>());
  }

  // The chain: every manifest names the genesis, and each the one before it as its parent.
  const Json& valid = doc["valid"];
  const std::string genesis_id = valid[0]["id"].get<std::string>();
  for (size_t i = 1; i < valid.size(); ++i) {
    SCOPED_TRACE(valid[i]["name"].get<std::string>());
    EXPECT_EQ(valid[i]["value"]["genesis"], genesis_id);
    if (i == 1) {
      EXPECT_TRUE(valid[i]["value"]["parents"].empty());
    } else {
      EXPECT_EQ(valid[i]["value"]["parents"], Json::array({valid[i - 1]["id"]}));
    }
  }

  for (const Json& v : doc["invalid"]) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE(name);
    auto bytes = HexDecode(v["hex"].get<std::string>());
    ASSERT_TRUE(bytes.has_value());
    Status s = DecodeOnly(KindArg(v), *bytes);
    EXPECT_EQ(std::string(StatusCodeName(s.code())), v["code"].get<std::string>()) << s.ToString();
  }

  // The file lists exactly what this build generates.
  EXPECT_EQ(doc, generated) << "stale file: regenerate it (DREAMDB_REGENERATE_VECTORS=1)";
}

}  // namespace
}  // namespace dreamdb::dataset
