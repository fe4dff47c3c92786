# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the targets whose seeds come from spec vectors and test
schemas: fuzz/corpus/manifest_decode (every valid and invalid manifest/genesis vector of
spec/vectors/manifests), fuzz/corpus/object_id (the text ids of spec/vectors/ids) and
fuzz/corpus/schema_json (schemas from the spec vectors and the CLI tests) and
fuzz/corpus/btree_page (the pages, index refs and invalid pages of spec/vectors/btree) and
the format 3 segments of spec/vectors/segments into fuzz/corpus/segment_decode.

Usage: python3 fuzz/make_seeds.py   (from the repository root; rewrites those folders)"""

import json
import pathlib

root = pathlib.Path(__file__).resolve().parents[1]
corpus = root / "fuzz" / "corpus"


def write(target: str, name: str, data: bytes) -> None:
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]
    (d / safe).write_bytes(data)


m = json.loads((root / "spec/vectors/manifests/manifests.json").read_text())
for i, v in enumerate(m["valid"] + m["invalid"]):
    if "hex" in v:
        write("manifest_decode", f"{i:02d}-{v['name']}", bytes.fromhex(v["hex"]))
    schema = v.get("value", {}).get("schema")
    if schema:
        write("schema_json", f"{i:02d}-{v['name']}", json.dumps(schema).encode())
ids = json.loads((root / "spec/vectors/ids/ids.json").read_text())
for i, v in enumerate(ids["valid"]):
    write("object_id", f"{i:02d}-valid", v["text"].encode())
for i, v in enumerate(ids.get("invalid_text", [])):
    text = v["text"] if isinstance(v, dict) else v
    write("object_id", f"{i:02d}-invalid", text.encode())
for i, s in enumerate([
    {"fields": [{"name": "emb", "type": "embedding", "dim": 8, "index": {"algorithm": "ivf"}}]},
    {"fields": [{"name": "a", "type": "array", "dtype": "i32", "shape": [2, 3]},
                {"name": "t", "type": "timestamp", "optional": True},
                {"name": "c", "type": "categorical"}, {"name": "f", "type": "float64"},
                {"name": "b", "type": "bool"}]},
]):
    write("schema_json", f"test-{i}", json.dumps(s).encode())
b = json.loads((root / "spec/vectors/btree/vectors.json").read_text())
for i, v in enumerate(b["pages"] + b["index_refs"] + b["invalid"]):
    write("btree_page", f"{i:02d}-{v['name']}", bytes.fromhex(v["hex"]))
# Segments: the format 3 vectors (what writers write); the format 1 and 2 seeds already in
# fuzz/corpus/segment_decode stay, so the fuzzer sees every format a reader reads.
seg = json.loads((root / "spec/vectors/segments/segments.json").read_text())
for v in seg["vectors"]:
    if v["format"] == 3:
        write("segment_decode", f"f3-{v['name']}.seg", bytes.fromhex(v["hex"]))
