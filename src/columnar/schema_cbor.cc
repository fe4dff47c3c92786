// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/columnar/schema_cbor.h"

#include <cstdint>
#include <string>
#include <utility>

#include "dreamdb/index_kinds.h"
#include "src/base/encoding.h"

namespace dreamdb::columnar {
namespace {

Status SchemaCorrupt(const std::string& message) { return Corrupt("schema: " + message); }

}  // namespace

cbor::Value FieldToCbor(const FieldSpec& field) {
  cbor::Map m;
  m.Set("name", cbor::Value::Text(field.name));
  m.Set("type", cbor::Value::Text(std::string(FieldTypeName(field.type))));
  m.Set("optional", cbor::Value::Bool(field.optional));
  switch (field.type) {
    case FieldType::kBlob:
      m.Set("mime", cbor::Value::Text(field.mime));
      break;
    case FieldType::kEmbedding:
      m.Set("dim", cbor::Value::UInt(field.dim));
      if (field.index) {
        // spec/21-spatial-index.md §2: absent when no index is declared, so schemas without
        // one keep their bytes.
        cbor::Map ix;
        ix.Set("algorithm", cbor::Value::Text(field.index->algorithm));
        ix.Set("metric", cbor::Value::Text(field.index->metric));
        ix.Set("bits", cbor::Value::UInt(field.index->bits));
        ix.Set("cells", cbor::Value::UInt(field.index->cells));
        if (!field.index->keep_raw) ix.Set("raw", cbor::Value::Bool(false));
        if (field.index->quantizer != "rabitq") {
          ix.Set("quantizer", cbor::Value::Text(field.index->quantizer));
        }
        m.Set("index", cbor::Value::FromMap(std::move(ix)));
      }
      break;
    case FieldType::kArray: {
      m.Set("dtype", cbor::Value::Text(std::string(DTypeName(field.dtype))));
      cbor::Array shape;
      for (uint32_t d : field.shape) shape.push_back(cbor::Value::UInt(d));
      m.Set("shape", cbor::Value::FromArray(std::move(shape)));
      break;
    }
    case FieldType::kTimestamp:
      m.Set("unit", cbor::Value::Text("ns"));
      break;
    default:
      break;
  }
  return cbor::Value::FromMap(std::move(m));
}

Result<FieldSpec> FieldFromCbor(const cbor::Value& value) {
  ASSIGN_OR_RETURN(const cbor::Map* m, value.AsMap("schema field"));
  FieldSpec f;
  ASSIGN_OR_RETURN(const cbor::Value* name_v, cbor::Require(*m, "name"));
  ASSIGN_OR_RETURN(std::string_view name, name_v->AsText("schema field name"));
  f.name = std::string(name);
  const std::string what = "schema field " + Quote(f.name);
  ASSIGN_OR_RETURN(const cbor::Value* type_v, cbor::Require(*m, "type"));
  ASSIGN_OR_RETURN(std::string_view type_name, type_v->AsText(what + " type"));
  {
    Result<FieldType> t = ParseFieldType(type_name);
    if (!t.ok()) return Unsupported(what + ": " + t.status().message());
    f.type = *t;
  }
  ASSIGN_OR_RETURN(const cbor::Value* opt_v, cbor::Require(*m, "optional"));
  ASSIGN_OR_RETURN(f.optional, opt_v->AsBool(what + " optional"));

  switch (f.type) {
    case FieldType::kBlob: {
      ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(*m, "mime"));
      ASSIGN_OR_RETURN(std::string_view mime, v->AsText(what + " mime"));
      if (mime.empty()) return SchemaCorrupt("field " + Quote(f.name) + ": empty mime");
      f.mime = std::string(mime);
      break;
    }
    case FieldType::kEmbedding: {
      ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(*m, "dim"));
      ASSIGN_OR_RETURN(uint64_t dim, v->AsUInt(what + " dim"));
      if (dim == 0 || dim > UINT32_MAX) {
        return SchemaCorrupt("field " + Quote(f.name) + ": bad dim " + std::to_string(dim));
      }
      f.dim = static_cast<uint32_t>(dim);
      if (const cbor::Value* iv = m->Find("index")) {
        ASSIGN_OR_RETURN(const cbor::Map* im, iv->AsMap(what + " index"));
        IndexSpec ix;
        ASSIGN_OR_RETURN(const cbor::Value* a, cbor::Require(*im, "algorithm"));
        ASSIGN_OR_RETURN(std::string_view alg, a->AsText(what + " index.algorithm"));
        ix.algorithm = std::string(alg);
        ASSIGN_OR_RETURN(const cbor::Value* mt, cbor::Require(*im, "metric"));
        ASSIGN_OR_RETURN(std::string_view metric, mt->AsText(what + " index.metric"));
        ix.metric = std::string(metric);
        ASSIGN_OR_RETURN(const cbor::Value* b, cbor::Require(*im, "bits"));
        ASSIGN_OR_RETURN(uint64_t bits, b->AsUInt(what + " index.bits"));
        ASSIGN_OR_RETURN(const cbor::Value* c, cbor::Require(*im, "cells"));
        ASSIGN_OR_RETURN(uint64_t cells, c->AsUInt(what + " index.cells"));
        if (bits > 8 || cells > UINT32_MAX) {
          return SchemaCorrupt("field " + Quote(f.name) + ": bad index bits or cells");
        }
        ix.bits = static_cast<uint32_t>(bits);
        ix.cells = static_cast<uint32_t>(cells);
        if (const cbor::Value* r = im->Find("raw")) {
          ASSIGN_OR_RETURN(ix.keep_raw, r->AsBool(what + " index.raw"));
        }
        if (const cbor::Value* qv = im->Find("quantizer")) {
          ASSIGN_OR_RETURN(std::string_view qz, qv->AsText(what + " index.quantizer"));
          if (qz != "pq4") {
            if (qz == "rabitq") {
              return SchemaCorrupt("field " + Quote(f.name) +
                                   ": index.quantizer \"rabitq\" is the default and must be "
                                   "omitted");
            }
            return Unsupported(what + ": index quantizer " + Quote(qz) +
                               " is not supported by this reader (written by a newer DreamDB?)");
          }
          ix.quantizer = std::string(qz);
        }
        if (!ParseIndexAlgorithm(ix.algorithm).ok()) {
          return Unsupported(what + ": index algorithm " + Quote(ix.algorithm) +
                             " is not supported by this reader (written by a newer DreamDB?)");
        }
        if (!IsCanonicalMetricName(ix.metric)) {
          return Unsupported(what + ": index metric " + Quote(ix.metric) + " is unknown");
        }
        f.index = ix;
      }
      break;
    }
    case FieldType::kArray: {
      ASSIGN_OR_RETURN(const cbor::Value* dv, cbor::Require(*m, "dtype"));
      ASSIGN_OR_RETURN(std::string_view dtype, dv->AsText(what + " dtype"));
      Result<DType> d = ParseDType(dtype);
      if (!d.ok()) return Unsupported(what + ": " + d.status().message());
      f.dtype = *d;
      ASSIGN_OR_RETURN(const cbor::Value* sv, cbor::Require(*m, "shape"));
      ASSIGN_OR_RETURN(const cbor::Array* shape, sv->AsArray(what + " shape"));
      if (shape->empty() || shape->size() > 64) {
        return SchemaCorrupt("field " + Quote(f.name) + ": bad array rank " +
                             std::to_string(shape->size()));
      }
      for (const cbor::Value& e : *shape) {
        ASSIGN_OR_RETURN(uint64_t n, e.AsUInt(what + " shape entry"));
        if (n > UINT32_MAX) return SchemaCorrupt("field " + Quote(f.name) + ": shape too large");
        f.shape.push_back(static_cast<uint32_t>(n));
      }
      break;
    }
    case FieldType::kTimestamp: {
      ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(*m, "unit"));
      ASSIGN_OR_RETURN(std::string_view unit, v->AsText(what + " unit"));
      if (unit != "ns") {
        return Unsupported(what + ": timestamp unit " + Quote(unit) + " (only \"ns\" is known)");
      }
      break;
    }
    default:
      break;
  }
  // Unknown keys are ignored (spec/08-versioning.md §4.2); known keys that do not apply
  // to the type are refused.
  for (const auto& [key, v] : m->entries()) {
    (void)v;
    bool misplaced = (key == "mime" && f.type != FieldType::kBlob) ||
                     ((key == "dim" || key == "index") && f.type != FieldType::kEmbedding) ||
                     ((key == "dtype" || key == "shape") && f.type != FieldType::kArray) ||
                     (key == "unit" && f.type != FieldType::kTimestamp);
    if (misplaced) {
      return SchemaCorrupt("field " + Quote(f.name) + ": key " + Quote(key) +
                           " does not apply to type " + std::string(FieldTypeName(f.type)));
    }
  }
  return f;
}

cbor::Value SchemaToCbor(const Schema& schema) {
  cbor::Array fields;
  fields.reserve(schema.fields().size());
  for (const FieldSpec& f : schema.fields()) fields.push_back(FieldToCbor(f));
  cbor::Map m;
  m.Set("version", cbor::Value::UInt(schema.version()));
  m.Set("fields", cbor::Value::FromArray(std::move(fields)));
  return cbor::Value::FromMap(std::move(m));
}

Result<Schema> SchemaFromCbor(const cbor::Value& value) {
  ASSIGN_OR_RETURN(const cbor::Map* m, value.AsMap("schema"));
  ASSIGN_OR_RETURN(const cbor::Value* version_v, cbor::Require(*m, "version"));
  ASSIGN_OR_RETURN(uint64_t version, version_v->AsUInt("schema version"));
  if (version == 0 || version > UINT32_MAX) {
    return SchemaCorrupt("version must be 1 to 2^32-1, got " + std::to_string(version));
  }
  ASSIGN_OR_RETURN(const cbor::Value* fields_v, cbor::Require(*m, "fields"));
  ASSIGN_OR_RETURN(const cbor::Array* fields, fields_v->AsArray("schema fields"));
  Schema schema;
  schema.set_version(static_cast<uint32_t>(version));
  for (const cbor::Value& fv : *fields) {
    ASSIGN_OR_RETURN(FieldSpec f, FieldFromCbor(fv));
    Status s = schema.Add(std::move(f));
    if (!s.ok()) return SchemaCorrupt(s.message());
  }
  return schema;
}

}  // namespace dreamdb::columnar
