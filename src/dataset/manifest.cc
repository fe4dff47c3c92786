// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/13-manifests.md.
#include "src/dataset/manifest.h"

#include "dreamdb/store.h"
#include "src/base/encoding.h"
#include "src/columnar/schema_cbor.h"

namespace dreamdb::dataset {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

Status CheckKind(const cbor::Map& m, std::string_view kind) {
  ASSIGN_OR_RETURN(const cbor::Value* k, cbor::Require(m, "kind"));
  ASSIGN_OR_RETURN(std::string_view got, k->AsText("kind"));
  if (got != kind) {
    if (got == kGenesisKind || got == kManifestKind || got.starts_with("dreamdb.btree.")) {
      return InvalidArgument("expected a " + std::string(kind) + " object, got a " +
                             std::string(got) + " object");
    }
    return Unsupported("expected a " + std::string(kind) + " object, got unknown kind " +
                       Quote(got) + " (written by a newer DreamDB?)");
  }
  ASSIGN_OR_RETURN(const cbor::Value* f, cbor::Require(m, "format"));
  ASSIGN_OR_RETURN(uint64_t format, f->AsUInt("format"));
  if (format > kFormat) {
    return Unsupported(std::string(kind) + " format " + std::to_string(format) +
                       " is newer than this reader (knows up to " + std::to_string(kFormat) +
                       "); upgrade DreamDB");
  }
  if (format == 0) return Corrupt(std::string(kind) + ": format 0 is not valid");
  return Status::Ok();
}

cbor::Value IdList(const std::vector<ObjectId>& ids) {
  cbor::Array a;
  a.reserve(ids.size());
  for (const auto& id : ids) a.push_back(cbor::IdValue(id));
  return cbor::Value::FromArray(std::move(a));
}

Result<uint64_t> GetUInt(const cbor::Map& m, std::string_view key) {
  ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(m, key));
  return v->AsUInt(key);
}

Result<std::string> GetText(const cbor::Map& m, std::string_view key) {
  ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(m, key));
  ASSIGN_OR_RETURN(std::string_view s, v->AsText(key));
  return std::string(s);
}

}  // namespace

Status ValidateDatasetName(std::string_view name) {
  if (name.empty()) return InvalidArgument("dataset name is empty");
  if (name.size() > 100) {
    return InvalidArgument("dataset name " + Quote(name) + " is longer than 100 characters");
  }
  if (name[0] == '.') return InvalidArgument("dataset name " + Quote(name) + " starts with '.'");
  for (char c : name) {
    if (!IsNameChar(c)) {
      return InvalidArgument("dataset name " + Quote(name) +
                             " may only contain letters, digits, '.', '_' and '-'");
    }
  }
  if (name == "snapshots" || name == "branches" || name.ends_with(".lock")) {
    return InvalidArgument(
        "dataset name " + Quote(name) +
        " is reserved (\"snapshots\", \"branches\" and names ending in \".lock\")");
  }
  return Status::Ok();
}

Status ValidateBranchName(std::string_view branch) {
  if (branch.empty()) return InvalidArgument("branch name is empty");
  if (branch.size() > 120) {
    return InvalidArgument("branch name " + Quote(branch) + " is longer than 120 characters");
  }
  Status s = ValidateRefName("x/branches/" + std::string(branch));
  if (!s.ok()) return InvalidArgument("branch name " + Quote(branch) + ": " + s.message());
  // A "snapshots" segment would make the branch ref a snapshot ref (spec/06-refs.md).
  std::string_view rest = branch;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg == "snapshots") {
      return InvalidArgument("branch name " + Quote(branch) +
                             " may not contain the segment 'snapshots'");
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return Status::Ok();
}

std::string BranchRef(std::string_view dataset, std::string_view branch) {
  return std::string(dataset) + "/branches/" + std::string(branch);
}
std::string SnapshotRef(std::string_view dataset, std::string_view label) {
  return std::string(dataset) + "/snapshots/" + std::string(label);
}
std::string BranchPrefix(std::string_view dataset) { return std::string(dataset) + "/branches/"; }
std::string SnapshotPrefix(std::string_view dataset) {
  return std::string(dataset) + "/snapshots/";
}
std::string PrunedRef(std::string_view dataset, const ObjectId& manifest) {
  return PrunedPrefix(dataset) + manifest.ToString();
}
std::string PrunedPrefix(std::string_view dataset) { return std::string(dataset) + "/pruned/"; }

Result<Bytes> EncodeGenesis(const Genesis& g) {
  cbor::Map m;
  m.Set("kind", cbor::Value::Text(std::string(kGenesisKind)));
  m.Set("format", cbor::Value::UInt(kFormat));
  m.Set("name", cbor::Value::Text(g.name));
  m.Set("nonce", cbor::Value::Bytes(g.nonce));
  m.Set("time_ns", cbor::Value::UInt(g.time_ns));
  m.Set("schema", columnar::SchemaToCbor(g.schema));
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

Result<Genesis> DecodeGenesis(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("genesis"));
  RETURN_IF_ERROR(CheckKind(*m, kGenesisKind));
  Genesis g;
  ASSIGN_OR_RETURN(g.name, GetText(*m, "name"));
  ASSIGN_OR_RETURN(const cbor::Value* nonce, cbor::Require(*m, "nonce"));
  ASSIGN_OR_RETURN(std::string_view nb, nonce->AsBytes("genesis.nonce"));
  g.nonce = Bytes(nb);
  ASSIGN_OR_RETURN(g.time_ns, GetUInt(*m, "time_ns"));
  ASSIGN_OR_RETURN(const cbor::Value* schema, cbor::Require(*m, "schema"));
  ASSIGN_OR_RETURN(g.schema, columnar::SchemaFromCbor(*schema));
  return g;
}

Result<Bytes> EncodeManifest(const Manifest& mf) {
  cbor::Map m;
  m.Set("kind", cbor::Value::Text(std::string(kManifestKind)));
  m.Set("format", cbor::Value::UInt(kFormat));
  m.Set("genesis", cbor::IdValue(mf.genesis));
  m.Set("parents", IdList(mf.parents));
  m.Set("schema", columnar::SchemaToCbor(mf.schema));
  m.Set("index", mf.index);
  m.Set("tombstones", mf.tombstones);
  m.Set("count", cbor::Value::UInt(mf.count));
  m.Set("next_anchor", cbor::Value::UInt(mf.next_anchor));
  cbor::Map meta;
  for (const auto& [k, val] : mf.meta) meta.Set(k, cbor::Value::Text(val));
  m.Set("meta", cbor::Value::FromMap(std::move(meta)));
  cbor::Array dropped;
  for (const auto& d : mf.dropped) dropped.push_back(cbor::Value::Text(d));
  m.Set("dropped", cbor::Value::FromArray(std::move(dropped)));
  m.Set("writer", cbor::Value::Text(mf.writer));
  m.Set("time_ns", cbor::Value::UInt(mf.time_ns));
  m.Set("message", cbor::Value::Text(mf.message));
  cbor::Map delta;
  delta.Set("added", cbor::Value::UInt(mf.delta.added));
  delta.Set("replaced", cbor::Value::UInt(mf.delta.replaced));
  delta.Set("deleted", cbor::Value::UInt(mf.delta.deleted));
  cbor::Array fields;
  for (const auto& f : mf.delta.fields) fields.push_back(cbor::Value::Text(f));
  delta.Set("fields", cbor::Value::FromArray(std::move(fields)));
  m.Set("delta", cbor::Value::FromMap(std::move(delta)));
  if (!mf.indexes.empty()) {
    // Optional (spec/13-manifests.md §5.6): absent when no field has a spatial index.
    cbor::Map ix;
    for (const auto& [field, id] : mf.indexes) ix.Set(field, cbor::IdValue(id));
    m.Set("indexes", cbor::Value::FromMap(std::move(ix)));
  }
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

Result<Manifest> DecodeManifest(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("manifest"));
  RETURN_IF_ERROR(CheckKind(*m, kManifestKind));
  Manifest mf;
  ASSIGN_OR_RETURN(const cbor::Value* g, cbor::Require(*m, "genesis"));
  ASSIGN_OR_RETURN(mf.genesis, cbor::AsId(*g, "manifest.genesis"));
  ASSIGN_OR_RETURN(const cbor::Value* ps, cbor::Require(*m, "parents"));
  ASSIGN_OR_RETURN(const cbor::Array* pa, ps->AsArray("manifest.parents"));
  for (const auto& p : *pa) {
    ASSIGN_OR_RETURN(ObjectId id, cbor::AsId(p, "manifest.parents[]"));
    mf.parents.push_back(id);
  }
  ASSIGN_OR_RETURN(const cbor::Value* schema, cbor::Require(*m, "schema"));
  ASSIGN_OR_RETURN(mf.schema, columnar::SchemaFromCbor(*schema));
  ASSIGN_OR_RETURN(const cbor::Value* index, cbor::Require(*m, "index"));
  mf.index = *index;
  ASSIGN_OR_RETURN(const cbor::Value* tomb, cbor::Require(*m, "tombstones"));
  mf.tombstones = *tomb;
  ASSIGN_OR_RETURN(mf.count, GetUInt(*m, "count"));
  ASSIGN_OR_RETURN(mf.next_anchor, GetUInt(*m, "next_anchor"));
  ASSIGN_OR_RETURN(const cbor::Value* meta, cbor::Require(*m, "meta"));
  ASSIGN_OR_RETURN(const cbor::Map* mm, meta->AsMap("manifest.meta"));
  for (const auto& [k, val] : mm->entries()) {
    ASSIGN_OR_RETURN(std::string_view s, val.AsText("manifest.meta." + k));
    mf.meta.emplace(k, std::string(s));
  }
  ASSIGN_OR_RETURN(const cbor::Value* dropped, cbor::Require(*m, "dropped"));
  ASSIGN_OR_RETURN(const cbor::Array* da, dropped->AsArray("manifest.dropped"));
  for (const auto& d : *da) {
    ASSIGN_OR_RETURN(std::string_view s, d.AsText("manifest.dropped[]"));
    if (!mf.dropped.empty() && !(mf.dropped.back() < s)) {
      return Corrupt("manifest.dropped is not strictly ascending at " + Quote(s));
    }
    mf.dropped.emplace_back(s);
  }
  ASSIGN_OR_RETURN(mf.writer, GetText(*m, "writer"));
  ASSIGN_OR_RETURN(mf.time_ns, GetUInt(*m, "time_ns"));
  ASSIGN_OR_RETURN(mf.message, GetText(*m, "message"));
  ASSIGN_OR_RETURN(const cbor::Value* delta, cbor::Require(*m, "delta"));
  ASSIGN_OR_RETURN(const cbor::Map* dm, delta->AsMap("manifest.delta"));
  ASSIGN_OR_RETURN(mf.delta.added, GetUInt(*dm, "added"));
  ASSIGN_OR_RETURN(mf.delta.replaced, GetUInt(*dm, "replaced"));
  ASSIGN_OR_RETURN(mf.delta.deleted, GetUInt(*dm, "deleted"));
  ASSIGN_OR_RETURN(const cbor::Value* fs, cbor::Require(*dm, "fields"));
  ASSIGN_OR_RETURN(const cbor::Array* fa, fs->AsArray("manifest.delta.fields"));
  for (const auto& f : *fa) {
    ASSIGN_OR_RETURN(std::string_view s, f.AsText("manifest.delta.fields[]"));
    mf.delta.fields.emplace_back(s);
  }
  if (const cbor::Value* ix = m->Find("indexes")) {
    ASSIGN_OR_RETURN(const cbor::Map* im, ix->AsMap("manifest.indexes"));
    if (im->entries().empty()) return Corrupt("manifest.indexes is present but empty");
    for (const auto& [field, id] : im->entries()) {
      ASSIGN_OR_RETURN(ObjectId oid, cbor::AsId(id, "manifest.indexes." + field));
      mf.indexes.emplace(field, oid);
    }
  }
  return mf;
}

std::string PeekKind(ByteView bytes) {
  auto v = cbor::Decode(bytes);
  if (!v.ok() || v->type() != cbor::Type::kMap) return "";
  const cbor::Value* k = v->map().Find("kind");
  if (k == nullptr || k->type() != cbor::Type::kText) return "";
  return k->string_value();
}

}  // namespace dreamdb::dataset
