// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The CBOR form of a schema, embedded in genesis and manifest objects (spec/10-schema.md §4):
//   {"version": uint, "fields": [field, ...]}        fields in declaration order
//   field: {"name": text, "type": text, "optional": bool,
//           "mime": text (blob), "dim": uint (embedding),
//           "dtype": text, "shape": [uint, ...] (array), "unit": "ns" (timestamp)}
//
// Decoding: stored bytes that break a rule are kCorrupt naming the rule; a type, dtype or
// unit this build does not know is kUnsupported (a newer writer). Unknown keys are ignored
// (spec/08-versioning.md §4.2); a known key on a type it does not apply to is kCorrupt.
//
// Thread safety: pure functions.

#ifndef DREAMDB_SRC_COLUMNAR_SCHEMA_CBOR_H_
#define DREAMDB_SRC_COLUMNAR_SCHEMA_CBOR_H_

#include "dreamdb/schema.h"
#include "dreamdb/status.h"
#include "src/cbor/cbor.h"

namespace dreamdb::columnar {

cbor::Value FieldToCbor(const FieldSpec& field);
Result<FieldSpec> FieldFromCbor(const cbor::Value& value);

cbor::Value SchemaToCbor(const Schema& schema);
Result<Schema> SchemaFromCbor(const cbor::Value& value);

}  // namespace dreamdb::columnar

#endif  // DREAMDB_SRC_COLUMNAR_SCHEMA_CBOR_H_
