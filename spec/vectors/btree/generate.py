#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/btree/vectors.json, the golden vectors of spec/11-anchor-index.md.

The pages are encoded here by a ~30-line canonical CBOR encoder written from
spec/03-cbor.md, and page ids come from Debian's `b3sum`, never from DreamDB's own code,
so the vectors are an independent oracle for the C++ encoder and decoder.

Each page is described in JSON the way the spec describes it: anchors, keys, counts, seg
and row as lists of integers (4294967295 in "seg" = no value), ids in their text form.

Usage:
    python3 spec/vectors/btree/generate.py           # rewrite vectors.json
    python3 spec/vectors/btree/generate.py --check   # exit 1 if vectors.json is stale

The output is deterministic.
"""

import base64
import copy
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "vectors.json"
NONE = 0xFFFFFFFF


# ---- ids (spec/04-object-ids.md) ----

def object_id(data):
    """Binary multihash of BLAKE3-256(data), digest by Debian's b3sum."""
    out = subprocess.run(["b3sum", "--no-names", "--num-threads", "1"], input=data,
                         capture_output=True, check=True).stdout.decode().strip()
    return bytes([0x1E, 0x20]) + bytes.fromhex(out)


def id_text(multihash):
    return "b" + base64.b32encode(multihash).decode().lower().rstrip("=")


def id_binary(text):
    body = text[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def segment(k):
    """The id of the ASCII text 'segment <k>' (the btree tests use the same ids)."""
    return id_text(object_id(f"segment {k}".encode()))


# ---- canonical CBOR (spec/03-cbor.md), for the subset pages use ----

def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError(n)


def enc(v):
    if isinstance(v, bool) or v is None:
        raise TypeError("not used by pages")
    if isinstance(v, int):
        return head(0, v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        # Text keys only: encoded-key order = shorter first, then bytewise.
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return head(5, len(v)) + b"".join(enc(k) + enc(v[k]) for k in keys)
    raise TypeError(type(v))


def u64s(xs):
    return b"".join(x.to_bytes(8, "little") for x in xs)


def u32s(xs):
    return b"".join(x.to_bytes(4, "little") for x in xs)


# ---- pages (spec/11-anchor-index.md §2) ----

def leaf_map(d):
    return {
        "kind": "dreamdb.btree.leaf",
        "format": 1,
        "anchors": u64s(d["anchors"]),
        "fields": {
            name: {
                "segments": [id_binary(s) for s in f["segments"]],
                "seg": u32s(f["seg"]),
                "row": u32s(f["row"]),
            }
            for name, f in d["fields"].items()
        },
    }


def node_map(d):
    return {
        "kind": "dreamdb.btree.node",
        "format": 1,
        "level": d["level"],
        "keys": u64s(d["keys"]),
        "children": [id_binary(c) for c in d["children"]],
        "counts": u64s(d["counts"]),
    }


def page_case(name, kind, desc):
    data = enc(leaf_map(desc) if kind == "leaf" else node_map(desc))
    return {"name": name, "kind": kind, "page": desc, "hex": data.hex(),
            "id": id_text(object_id(data))}


def main():
    leaf1 = {
        "anchors": [1, 2, 5, 1000000000000],
        "fields": {
            "a": {"segments": [segment(1), segment(0)], "seg": [0, 0, NONE, 1],
                  "row": [3, 70000, 0, 9]},
            "image": {"segments": [segment(7)], "seg": [NONE, 0, 0, 0], "row": [0, 1, 2, 3]},
        },
    }
    leaf2 = {
        "anchors": [2000000000000, 2000000000001],
        "fields": {"a": {"segments": [segment(2)], "seg": [0, 0], "row": [0, 1]}},
    }
    tomb = {"anchors": [0, 7, 18446744073709551615], "fields": {}}
    pages = [
        page_case("leaf: two fields, a missing value, two segments", "leaf", leaf1),
        page_case("leaf: one field", "leaf", leaf2),
        page_case("leaf of a tombstone set (no fields)", "leaf", tomb),
    ]
    node = {
        "level": 1,
        "keys": [1, 2000000000000],
        "children": [pages[0]["id"], pages[1]["id"]],
        "counts": [4, 2],
    }
    pages.append(page_case("node: level 1 over the first two leaves", "node", node))
    node2 = {"level": 2, "keys": [1, 1 << 40], "children": [pages[3]["id"], segment(9)],
             "counts": [6, 60000]}
    pages.append(page_case("node: level 2", "node", node2))

    index_refs = [
        {"name": "empty", "index_ref": None, "hex": "f6"},
        {"name": "inline leaf", "index_ref": {"inline": leaf2},
         "hex": enc({"inline": leaf_map(leaf2)}).hex()},
        {"name": "paged", "index_ref": {"root": pages[4]["id"], "height": 3, "count": 60006},
         "hex": enc({"root": id_binary(pages[4]["id"]), "height": 3, "count": 60006}).hex()},
    ]

    invalid = []

    def bad(name, m, code, error):
        invalid.append({"name": name, "hex": enc(m).hex(), "code": code, "error": error})

    lm = leaf_map(leaf1)
    m = copy.deepcopy(lm); m["anchors"] = u64s([1, 5, 2, 1000000000000])
    bad("leaf anchors not ascending", m, "corrupt", "not strictly ascending at entry 2")
    m = copy.deepcopy(lm); m["anchors"] = u64s([])
    bad("empty leaf", m, "corrupt", "leaf has no entries")
    m = copy.deepcopy(lm); m["fields"]["a"]["seg"] = u32s([0, 0, NONE, 2])
    bad("seg index out of range", m, "corrupt", "seg index 2 out of range")
    m = copy.deepcopy(lm); m["fields"]["a"]["seg"] = u32s([1, 1, NONE, 0])
    bad("segments not in order of first use", m, "corrupt", "not in order of first use")
    m = copy.deepcopy(lm); m["fields"]["a"]["seg"] = u32s([0, 0, NONE, 0])
    bad("unused segment", m, "corrupt", "is never used")
    m = copy.deepcopy(lm); m["fields"]["a"]["row"] = u32s([3, 70000, 1, 9])
    bad("row of a missing value is not 0", m, "corrupt", "has no segment but row 1")
    m = copy.deepcopy(lm); m["fields"]["a"]["row"] = u32s([3, 70000, 0])
    bad("row column too short", m, "corrupt", "seg/row hold 4/3 values for 4 anchors")
    m = copy.deepcopy(lm); m["fields"]["a"]["segments"].append(id_binary(segment(1)))
    bad("segment listed twice", m, "corrupt", "listed twice")
    m = copy.deepcopy(lm); m["extra"] = 1
    bad("unknown key", m, "corrupt", "unexpected key 'extra'")
    m = copy.deepcopy(lm); m["format"] = 2
    bad("leaf format 2", m, "unsupported", "format 2 is not supported")
    nm = node_map(node)
    m = copy.deepcopy(nm); m["keys"] = u64s([2000000000000, 1])
    bad("node keys not ascending", m, "corrupt", "node keys not strictly ascending at child 1")
    m = copy.deepcopy(nm); m["counts"] = u64s([4])
    bad("node counts length", m, "corrupt", "node has 2 keys, 2 children and 1 counts")
    m = copy.deepcopy(nm); m["level"] = 0
    bad("node level 0", m, "corrupt", "node level 0 out of range")
    m = copy.deepcopy(nm); m["counts"] = u64s([4, 0])
    bad("node count 0", m, "corrupt", "node count 0 of child 1")
    m = copy.deepcopy(nm); m["kind"] = "dreamdb.btree.page"
    bad("unknown kind", m, "corrupt", "is not a btree page")
    # Non-canonical CBOR: a leaf whose map keys are out of canonical order.
    good = enc(lm)
    invalid.append({"name": "map keys not in canonical order",
                    "hex": (b"\xa4" + enc("kind") + enc("dreamdb.btree.leaf") + enc("format") + enc(1)
                            + enc("fields") + enc(lm["fields"]) + enc("anchors") + enc(lm["anchors"])).hex(),
                    "code": "corrupt", "error": "cbor"})
    assert invalid[-1]["hex"] != good.hex()

    doc = {
        "spec": "spec/11-anchor-index.md",
        "generator": "spec/vectors/btree/generate.py (canonical CBOR written independently, ids by Debian b3sum)",
        "notes": "anchors/keys/counts are u64 LE byte strings on disk, seg/row u32 LE; "
                 "4294967295 in seg = no value; ids in text form (spec/04-object-ids.md); "
                 "'error' is a substring of the decoder's message",
        "pages": pages,
        "index_refs": index_refs,
        "invalid": invalid,
    }
    text = json.dumps(doc, indent=1) + "\n"
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
