// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Golden vectors of spec/21-spatial-index.md (spec/vectors/spatial/spatial.json, made by
// spec/vectors/spatial/generate.py with its own CBOR encoder and Debian's b3sum): the C++
// encoders produce exactly these bytes and the decoders read them back.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/base/encoding.h"
#include "src/cbor/cbor.h"
#include "src/columnar/schema_cbor.h"
#include "src/dataset/manifest.h"
#include "src/dataset/vector_index.h"

namespace dreamdb::vindex {
namespace {

using Json = nlohmann::json;

Json Load() {
  const char* src = std::getenv("DREAMDB_SOURCE_DIR");
  std::filesystem::path root =
      src != nullptr ? std::filesystem::path(src)
                     : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  std::ifstream in(root / "spec" / "vectors" / "spatial" / "spatial.json");
  EXPECT_TRUE(in.good());
  return Json::parse(in);
}

const Json& Case(const Json& all, const std::string& name) {
  for (const auto& c : all["cases"]) {
    if (c["name"] == name) return c;
  }
  ADD_FAILURE() << "no case " << name;
  static Json empty;
  return empty;
}

Bytes Hex(const Json& j) { return *HexDecode(j.get<std::string>()); }
ObjectId Id(const Json& j) { return *ObjectId::Parse(j.get<std::string>()); }
std::vector<ObjectId> Ids(const Json& j) {
  std::vector<ObjectId> out;
  for (const auto& e : j) out.push_back(Id(e));
  return out;
}

TEST(SpatialVectors, Buckets) {
  Json all = Load();
  for (const char* name : {"bucket", "bucket: empty"}) {
    const Json& c = Case(all, name);
    Bucket b;
    b.cell = c["cell"];
    b.anchors = c["anchors"].get<std::vector<uint64_t>>();
    for (const auto& s : c["segments"]) b.seg_tags.push_back(SegmentTag(Id(s)));
    EXPECT_EQ(b.seg_tags, c["seg_tags"].get<std::vector<uint64_t>>());
    b.rows = c["rows"].get<std::vector<uint32_t>>();
    b.codes = Hex(c["codes_hex"]);
    Bytes bytes = EncodeBucket(b);
    EXPECT_EQ(HexEncode(bytes), c["hex"].get<std::string>()) << name;
    EXPECT_EQ(ObjectId::Of(bytes).ToString(), c["id"].get<std::string>());
    auto back = DecodeBucket(Hex(c["hex"]));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, b);
  }
  // Damage: every flipped byte is caught (checksum, magic or lengths).
  Bytes good = Hex(Case(all, "bucket")["hex"]);
  for (size_t i = 0; i < good.size(); ++i) {
    Bytes bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    auto r = DecodeBucket(bad);
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  Bytes newer = good;
  newer[7] = '2';
  EXPECT_EQ(DecodeBucket(newer).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(DecodeBucket(good.substr(0, 20)).status().code(), StatusCode::kCorrupt);
}

// The index object a case describes; checks that it encodes to the case's bytes and
// decodes back.
IndexObject IndexFromCase(const Json& c) {
  IndexObject ix;
  ix.field = c["field"];
  ix.algorithm = c["algorithm"];
  ix.metric = c["metric"];
  ix.bits = c["bits"];
  ix.dim = c["dim"];
  ix.cells = c["cells"];
  ix.nprobe = c["nprobe"];
  ix.model = Id(c["model"]);
  ix.parents = Ids(c["parents"]);
  ix.pages = Ids(c["pages"]);
  ix.entries = c["entries"];
  ix.buckets = c["buckets"];
  if (c.contains("quantizer")) ix.quantizer = c["quantizer"];
  if (c.contains("calibration")) {
    const Json& j = c["calibration"];
    Calibration cal;
    cal.k = j["k"];
    cal.queries = j["queries"];
    cal.target = j["target"];
    cal.setting = j["setting"];
    for (const auto& point : j["curve"]) cal.curve.emplace_back(point[0], point[1]);
    ix.calibration = cal;
  }
  if (c.contains("graph")) {
    GraphInfo g;
    g.entry = c["graph"]["entry"];
    g.nodes = c["graph"]["nodes"];
    g.degree = c["graph"]["degree"];
    g.block = c["graph"]["block"];
    g.pages = Ids(c["graph"]["pages"]);
    ix.graph = g;
  }
  auto ib = EncodeIndex(ix);
  EXPECT_TRUE(ib.ok());
  EXPECT_EQ(HexEncode(*ib), c["hex"].get<std::string>()) << c["name"];
  EXPECT_EQ(ObjectId::Of(*ib).ToString(), c["id"].get<std::string>());
  auto back = DecodeIndex(*ib);
  EXPECT_TRUE(back.ok()) << back.status().ToString();
  if (back.ok()) {
    EXPECT_EQ(*back, ix);
  }
  return ix;
}

TEST(SpatialVectors, DirectoryPageAndIndexObject) {
  Json all = Load();
  const Json& p = Case(all, "directory page");
  DirPage page;
  page.first = p["first"];
  for (const auto& cell : p["cells"]) page.buckets.push_back(Ids(cell));
  auto pb = EncodeDirPage(page);
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(HexEncode(*pb), p["hex"].get<std::string>());
  auto pback = DecodeDirPage(*pb);
  ASSERT_TRUE(pback.ok());
  EXPECT_EQ(*pback, page);

  IndexObject ix = IndexFromCase(Case(all, "spatial index"));
  // A newer algorithm is unsupported, not corrupt.
  ix.algorithm = "hnsw";
  EXPECT_EQ(DecodeIndex(*EncodeIndex(ix)).status().code(), StatusCode::kUnsupported);
  // "graph" without its graph map is corrupt.
  ix.algorithm = "graph";
  EXPECT_EQ(DecodeIndex(*EncodeIndex(ix)).status().code(), StatusCode::kCorrupt);
}

TEST(SpatialVectors, OptionalIndexKeys) {
  Json all = Load();
  IndexObject pq = IndexFromCase(Case(all, "spatial index, pq4"));
  EXPECT_EQ(pq.quantizer, "pq4");
  DirPage one_cell;
  one_cell.buckets.resize(1);
  EXPECT_EQ(HexEncode(*EncodeDirPage(one_cell)),
            Case(all, "graph directory page")["hex"].get<std::string>());
  IndexObject g = IndexFromCase(Case(all, "spatial index, graph"));
  ASSERT_TRUE(g.graph.has_value());
  EXPECT_EQ(g.graph->nodes, 300u);
  // Damage: each constraint of spec/21 §4.5 is checked.
  auto code = [](const IndexObject& x) { return DecodeIndex(*EncodeIndex(x)).status().code(); };
  IndexObject bad = g;
  bad.graph->entry = 300;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.graph->block = 100;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.graph->pages.pop_back();
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.graph->degree = 2;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.cells = 2;
  bad.pages.push_back(bad.pages[0]);
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.algorithm = "ivf";
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = g;
  bad.quantizer = "pq4";
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = pq;
  bad.quantizer = "pq9";
  EXPECT_EQ(code(bad), StatusCode::kUnsupported);
  // "rabitq" spelled out is not canonical.
  cbor::Value v = *cbor::Decode(*EncodeIndex(pq));
  cbor::Map m = *v.AsMap("x").value();
  m.Set("quantizer", cbor::Value::Text("rabitq"));
  EXPECT_EQ(DecodeIndex(*cbor::Encode(cbor::Value::FromMap(std::move(m)))).status().code(),
            StatusCode::kCorrupt);
}

// The calibration map (spec/21 §4.6): golden bytes, the setting a recall target picks,
// each constraint, and an index object without it still read (today's defaults).
TEST(SpatialVectors, CalibrationMap) {
  Json all = Load();
  IndexObject ix = IndexFromCase(Case(all, "spatial index, calibrated"));
  ASSERT_TRUE(ix.calibration.has_value());
  EXPECT_EQ(ix.calibration->setting, PickSetting(*ix.calibration, 0.95));
  EXPECT_EQ(PickSetting(*ix.calibration, 0.9), 3u);   // needs 0.91: 9611
  EXPECT_EQ(PickSetting(*ix.calibration, 0.85), 2u);  // needs 0.86: 9033
  EXPECT_EQ(PickSetting(*ix.calibration, 0.99), 5u);  // needs 0.995: none; the largest
  IndexObject g = IndexFromCase(Case(all, "spatial index, graph, calibrated"));
  ASSERT_TRUE(g.calibration.has_value());
  EXPECT_EQ(g.calibration->setting, PickSetting(*g.calibration, 0.95));
  // The uncalibrated case is the same object without the key: the key is optional.
  IndexObject plain = IndexFromCase(Case(all, "spatial index"));
  EXPECT_FALSE(plain.calibration.has_value());
  IndexObject stripped = ix;
  stripped.calibration.reset();
  EXPECT_EQ(stripped, plain);
  auto code = [](const IndexObject& x) { return DecodeIndex(*EncodeIndex(x)).status().code(); };
  IndexObject bad = ix;
  bad.calibration->setting = 4000;  // not a point of the curve
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = ix;
  bad.calibration->curve[2].first = 1;  // not ascending
  bad.calibration->setting = 1;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = ix;
  bad.calibration->curve[0].second = 10001;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = ix;
  bad.calibration->curve.clear();
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  bad = ix;
  bad.calibration->queries = 0;
  EXPECT_EQ(code(bad), StatusCode::kCorrupt);
  cbor::Value v = *cbor::Decode(*EncodeIndex(ix));
  cbor::Map m = *v.AsMap("x").value();
  cbor::Map cm = *m.Find("calibration")->AsMap("c").value();
  cm.Set("extra", cbor::Value::UInt(1));
  m.Set("calibration", cbor::Value::FromMap(std::move(cm)));
  EXPECT_EQ(DecodeIndex(*cbor::Encode(cbor::Value::FromMap(std::move(m)))).status().code(),
            StatusCode::kCorrupt);
}

TEST(SpatialVectors, GraphNodePage) {
  Json all = Load();
  const Json& c = Case(all, "graph node page");
  NodePage p;
  p.first = c["first"];
  p.anchors = c["anchors"].get<std::vector<uint64_t>>();
  for (const auto& s : c["segments"]) p.seg_tags.push_back(SegmentTag(Id(s)));
  EXPECT_EQ(p.seg_tags, c["seg_tags"].get<std::vector<uint64_t>>());
  p.rows = c["rows"].get<std::vector<uint32_t>>();
  p.block = Hex(c["block_hex"]);
  Bytes bytes = EncodeNodePage(p);
  EXPECT_EQ(HexEncode(bytes), c["hex"].get<std::string>());
  EXPECT_EQ(ObjectId::Of(bytes).ToString(), c["id"].get<std::string>());
  auto back = DecodeNodePage(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
  for (size_t i = 0; i < bytes.size(); ++i) {
    Bytes bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    EXPECT_FALSE(DecodeNodePage(bad).ok()) << "byte " << i;
  }
  Bytes newer = bytes;
  newer[7] = '2';
  EXPECT_EQ(DecodeNodePage(newer).status().code(), StatusCode::kUnsupported);
  // A bucket is not a node page, and vice versa.
  EXPECT_EQ(DecodeBucket(bytes).status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(DecodeNodePage(Hex(Case(all, "bucket")["hex"])).status().code(), StatusCode::kCorrupt);
  NodePage empty;
  EXPECT_EQ(DecodeNodePage(EncodeNodePage(empty)).status().code(), StatusCode::kCorrupt);
}

TEST(SpatialVectors, SchemaFieldsWithAnIndex) {
  Json all = Load();
  for (const char* name : {"schema field with index", "schema field with index, raw false",
                           "schema field with index, imi", "schema field with index, pq4",
                           "schema field with index, graph"}) {
    const Json& c = Case(all, name);
    const Json& j = c["json"];
    FieldSpec f;
    f.name = j["name"];
    f.type = FieldType::kEmbedding;
    f.optional = j["optional"];
    f.dim = j["dim"];
    IndexSpec ix;
    ix.algorithm = j["index"]["algorithm"];
    ix.metric = j["index"]["metric"];
    ix.bits = j["index"]["bits"];
    ix.cells = j["index"]["cells"];
    ix.keep_raw = j["index"].value("raw", true);
    ix.quantizer = j["index"].value("quantizer", "rabitq");
    f.index = ix;
    auto bytes = cbor::Encode(columnar::FieldToCbor(f));
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(HexEncode(*bytes), c["hex"].get<std::string>()) << name;
    auto v = cbor::Decode(*bytes);
    ASSERT_TRUE(v.ok());
    auto back = columnar::FieldFromCbor(*v);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, f);
  }
}

TEST(SpatialVectors, ManifestWithIndexes) {
  Json all = Load();
  const Json& c = Case(all, "manifest with indexes");
  auto m = dataset::DecodeManifest(Hex(c["hex"]));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->indexes.size(), 1u);
  EXPECT_EQ(m->indexes.at("emb"), Id(c["indexes"]["emb"]));
  auto again = dataset::EncodeManifest(*m);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(HexEncode(*again), c["hex"].get<std::string>());
  // Without the map the encoding is the format-1 encoding an old writer produces.
  m->indexes.clear();
  auto plain = dataset::EncodeManifest(*m);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->find("indexes"), std::string::npos);
}

}  // namespace
}  // namespace dreamdb::vindex
