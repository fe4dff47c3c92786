// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Genesis and manifest objects (spec/13-manifests.md) and the dataset ref names
// (spec/06-refs.md §5).
//
// Thread safety: value types and pure functions.

#ifndef DREAMDB_SRC_DATASET_MANIFEST_H_
#define DREAMDB_SRC_DATASET_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"
#include "src/cbor/cbor.h"

namespace dreamdb::dataset {

inline constexpr std::string_view kGenesisKind = "dreamdb.genesis";
inline constexpr std::string_view kManifestKind = "dreamdb.manifest";
inline constexpr uint64_t kFormat = 1;

Status ValidateDatasetName(std::string_view name);
// OK when `branch` may name a branch (ref-name segment rules, '/' allowed).
Status ValidateBranchName(std::string_view branch);
std::string BranchRef(std::string_view dataset, std::string_view branch);
std::string SnapshotRef(std::string_view dataset, std::string_view label);
std::string BranchPrefix(std::string_view dataset);
std::string SnapshotPrefix(std::string_view dataset);
// The pruned-history marker of `manifest` (spec/06-refs.md §6.10):
// `<dataset>/pruned/<manifest id>`, targeting the manifest itself.
std::string PrunedRef(std::string_view dataset, const ObjectId& manifest);
std::string PrunedPrefix(std::string_view dataset);

struct Genesis {
  std::string name;
  Bytes nonce;  // 16 random bytes: two datasets never share a genesis
  uint64_t time_ns = 0;
  Schema schema;
};

struct Delta {
  uint64_t added = 0;
  uint64_t replaced = 0;
  uint64_t deleted = 0;
  std::vector<std::string> fields;
};

struct Manifest {
  ObjectId genesis;
  std::vector<ObjectId> parents;
  Schema schema;
  cbor::Value index;       // btree::IndexRef in CBOR form (null = empty)
  cbor::Value tombstones;  // btree::IndexRef in CBOR form (null = none)
  uint64_t count = 0;
  uint64_t next_anchor = 0;
  std::map<std::string, std::string> meta;
  // Names of fields dropped by earlier schema evolutions, ascending. Index entries keep
  // locations under a dropped name until compaction, so a dropped name is never reused
  // (spec/13-manifests.md §4).
  std::vector<std::string> dropped;
  std::string writer;
  uint64_t time_ns = 0;
  std::string message;
  Delta delta;
  // Spatial indexes (spec/21-spatial-index.md): embedding field name -> the id of its
  // dreamdb.spatial_index object. Optional key "indexes", absent when empty (old bytes).
  std::map<std::string, ObjectId> indexes;
};

Result<Bytes> EncodeGenesis(const Genesis& g);
Result<Genesis> DecodeGenesis(ByteView bytes);
Result<Bytes> EncodeManifest(const Manifest& m);
Result<Manifest> DecodeManifest(ByteView bytes);

// Reads the "kind" of a structured object without validating the rest ("" for raw bytes).
std::string PeekKind(ByteView bytes);

}  // namespace dreamdb::dataset

#endif  // DREAMDB_SRC_DATASET_MANIFEST_H_
