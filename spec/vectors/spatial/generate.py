#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/spatial/spatial.json, the golden vectors of
spec/21-spatial-index.md: a bucket object, a directory page, a spatial-index object (ivf;
pq4; graph with its `graph` map), a graph node page, embedding fields that declare an
index (with a quantizer, a graph), and a manifest with an `indexes` map.

Everything is encoded here from the spec text (a small canonical CBOR encoder written
from spec/03-cbor.md, the bucket layout of spec/21 §5.1); checksums and ids come from
Debian's `b3sum`, never from DreamDB's own code, so the vectors are an independent oracle
for the C++ encoders and decoders (src/dataset/vector_index_vectors_test.cc).

Usage:
    python3 spec/vectors/spatial/generate.py           # rewrite spatial.json
    python3 spec/vectors/spatial/generate.py --check   # exit 1 if spatial.json is stale
"""

import base64
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "spatial.json"


def blake3(data):
    out = subprocess.run(["b3sum", "--no-names", "--num-threads", "1"], input=data,
                         capture_output=True, check=True).stdout.decode().strip()
    return bytes.fromhex(out)


def object_id(data):
    return bytes([0x1E, 0x20]) + blake3(data)


def id_text(multihash):
    return "b" + base64.b32encode(multihash).decode().lower().rstrip("=")


def named(text):
    """The id of an ASCII text (stand-ins for segments, models, manifests)."""
    return object_id(text.encode())


# ---- canonical CBOR (spec/03-cbor.md) ----

def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError(n)


def enc(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
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
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return head(5, len(v)) + b"".join(enc(k) + enc(v[k]) for k in keys)
    raise TypeError(type(v))


# ---- bucket (spec/21 §5.1) ----

def seg_tag(segment_id):
    return int.from_bytes(segment_id[2:10], "little")


def bucket(cell, anchors, segs, rows, codes, magic=b"DDBSPB01"):
    out = magic + cell.to_bytes(4, "little") + len(anchors).to_bytes(4, "little")
    out += b"".join(a.to_bytes(8, "little") for a in anchors)
    out += b"".join(seg_tag(s).to_bytes(8, "little") for s in segs)
    out += b"".join(r.to_bytes(4, "little") for r in rows)
    out += b"\0" * (-len(out) % 8)
    out += len(codes).to_bytes(8, "little") + codes
    return out + blake3(out)[:16]


def main():
    cases = []
    segs = [named("segment 0"), named("segment 1"), named("segment 0")]
    b = bucket(3, [1, 7, 1000000000000], segs, [0, 5, 70000], bytes(range(1, 12)))
    cases.append({
        "name": "bucket", "cell": 3, "anchors": [1, 7, 1000000000000],
        "seg_tags": [seg_tag(s) for s in segs], "rows": [0, 5, 70000],
        "codes_hex": bytes(range(1, 12)).hex(), "hex": b.hex(), "id": id_text(object_id(b)),
        "segments": [id_text(s) for s in segs],
    })
    bid = object_id(b)
    b2 = bucket(1025, [], [], [], b"")
    cases.append({"name": "bucket: empty", "cell": 1025, "anchors": [], "seg_tags": [],
                  "rows": [], "codes_hex": "", "hex": b2.hex(), "id": id_text(object_id(b2)),
                  "segments": []})
    page = {"kind": "dreamdb.spatial_dir", "format": 1, "first": 0,
            "cells": [[bid], [], [bid, object_id(b2)]]}
    pb = enc(page)
    cases.append({"name": "directory page", "first": 0,
                  "cells": [[id_text(bid)], [], [id_text(bid), id_text(object_id(b2))]],
                  "hex": pb.hex(), "id": id_text(object_id(pb))})
    index = {"kind": "dreamdb.spatial_index", "format": 1, "field": "emb", "algorithm": "ivf",
             "metric": "cosine", "bits": 4, "dim": 768, "cells": 3, "nprobe": 0,
             "model": named("model"), "parents": [named("older index")],
             "pages": [object_id(pb)], "entries": 6, "buckets": 3}
    ib = enc(index)
    cases.append({"name": "spatial index", "field": "emb", "algorithm": "ivf",
                  "metric": "cosine", "bits": 4, "dim": 768, "cells": 3, "nprobe": 0,
                  "model": id_text(named("model")), "parents": [id_text(named("older index"))],
                  "pages": [id_text(object_id(pb))], "entries": 6, "buckets": 3,
                  "hex": ib.hex(), "id": id_text(object_id(ib))})
    # pq4: the optional `quantizer` key (spec/21 §4.1).
    index_pq4 = dict(index, quantizer="pq4", bits=4)
    ipq = enc(index_pq4)
    cases.append({"name": "spatial index, pq4", "field": "emb", "algorithm": "ivf",
                  "metric": "cosine", "bits": 4, "dim": 768, "cells": 3, "nprobe": 0,
                  "quantizer": "pq4",
                  "model": id_text(named("model")), "parents": [id_text(named("older index"))],
                  "pages": [id_text(object_id(pb))], "entries": 6, "buckets": 3,
                  "hex": ipq.hex(), "id": id_text(object_id(ipq))})
    # Graph node page (spec/21 §5.6): an envelope around an opaque spec/22 node block.
    block = bytes(range(200, 217))
    nsegs = [named("segment 0"), named("segment 1")]
    npage = bucket(256, [9, 4], nsegs, [3, 1], block, magic=b"DDBSPG01")
    cases.append({"name": "graph node page", "first": 256, "anchors": [9, 4],
                  "seg_tags": [seg_tag(s) for s in nsegs], "rows": [3, 1],
                  "segments": [id_text(s) for s in nsegs], "block_hex": block.hex(),
                  "hex": npage.hex(), "id": id_text(object_id(npage))})
    # Graph index object (spec/21 §4.5): one cell, one (empty-cell) directory page.
    gdir = enc({"kind": "dreamdb.spatial_dir", "format": 1, "first": 0, "cells": [[]]})
    cases.append({"name": "graph directory page", "first": 0, "cells": [[]],
                  "hex": gdir.hex(), "id": id_text(object_id(gdir))})
    gpages = [named("node page 0"), object_id(npage)]
    gindex = {"kind": "dreamdb.spatial_index", "format": 1, "field": "emb",
              "algorithm": "graph", "metric": "l2", "bits": 4, "dim": 768, "cells": 1,
              "nprobe": 0, "model": named("graph model"), "parents": [],
              "pages": [object_id(gdir)], "entries": 0, "buckets": 0,
              "graph": {"entry": 17, "nodes": 300, "degree": 32, "block": 256,
                        "pages": gpages}}
    gb = enc(gindex)
    cases.append({"name": "spatial index, graph", "field": "emb", "algorithm": "graph",
                  "metric": "l2", "bits": 4, "dim": 768, "cells": 1, "nprobe": 0,
                  "model": id_text(named("graph model")), "parents": [],
                  "pages": [id_text(object_id(gdir))], "entries": 0, "buckets": 0,
                  "graph": {"entry": 17, "nodes": 300, "degree": 32, "block": 256,
                            "pages": [id_text(x) for x in gpages]},
                  "hex": gb.hex(), "id": id_text(object_id(gb))})
    # The optional `calibration` map (spec/21 §4.6): an ivf index and a graph index.
    calib = {"k": 10, "queries": 200, "target": 9500, "setting": 3,
             "curve": [[1, 7012], [2, 9033], [3, 9611], [4, 9874], [5, 9961]]}
    icb = enc(dict(index, calibration=calib))
    cases.append({"name": "spatial index, calibrated", "field": "emb", "algorithm": "ivf",
                  "metric": "cosine", "bits": 4, "dim": 768, "cells": 3, "nprobe": 0,
                  "model": id_text(named("model")), "parents": [id_text(named("older index"))],
                  "pages": [id_text(object_id(pb))], "entries": 6, "buckets": 3,
                  "calibration": calib, "hex": icb.hex(), "id": id_text(object_id(icb))})
    gcalib = {"k": 10, "queries": 111, "target": 9500, "setting": 24,
              "curve": [[10, 8800], [12, 9210], [15, 9430], [18, 9520], [22, 9590],
                        [24, 9650], [27, 9960]]}
    gcb = enc(dict(gindex, calibration=gcalib))
    cases.append({"name": "spatial index, graph, calibrated", "field": "emb",
                  "algorithm": "graph", "metric": "l2", "bits": 4, "dim": 768, "cells": 1,
                  "nprobe": 0, "model": id_text(named("graph model")), "parents": [],
                  "pages": [id_text(object_id(gdir))], "entries": 0, "buckets": 0,
                  "graph": {"entry": 17, "nodes": 300, "degree": 32, "block": 256,
                            "pages": [id_text(x) for x in gpages]},
                  "calibration": gcalib, "hex": gcb.hex(), "id": id_text(object_id(gcb))})
    field = {"name": "emb", "type": "embedding", "optional": False, "dim": 768,
             "index": {"algorithm": "ivf", "metric": "l2", "bits": 5, "cells": 1000}}
    cases.append({"name": "schema field with index", "json": field, "hex": enc(field).hex()})
    field_raw = {"name": "emb", "type": "embedding", "optional": True, "dim": 4,
                 "index": {"algorithm": "ivf", "metric": "ip", "bits": 1, "cells": 0,
                           "raw": False}}
    cases.append({"name": "schema field with index, raw false", "json": field_raw,
                  "hex": enc(field_raw).hex()})
    field_imi = {"name": "emb", "type": "embedding", "optional": False, "dim": 96,
                 "index": {"algorithm": "imi", "metric": "cosine", "bits": 4, "cells": 4096}}
    cases.append({"name": "schema field with index, imi", "json": field_imi,
                  "hex": enc(field_imi).hex()})
    field_pq4 = {"name": "emb", "type": "embedding", "optional": False, "dim": 96,
                 "index": {"algorithm": "ivf", "metric": "l2", "bits": 4, "cells": 0,
                           "quantizer": "pq4"}}
    cases.append({"name": "schema field with index, pq4", "json": field_pq4,
                  "hex": enc(field_pq4).hex()})
    field_graph = {"name": "emb", "type": "embedding", "optional": False, "dim": 96,
                   "index": {"algorithm": "graph", "metric": "cosine", "bits": 4, "cells": 0}}
    cases.append({"name": "schema field with index, graph", "json": field_graph,
                  "hex": enc(field_graph).hex()})
    manifest = {
        "kind": "dreamdb.manifest", "format": 1, "genesis": named("genesis"), "parents": [],
        "schema": {"version": 1, "fields": [{"name": "emb", "type": "embedding",
                                              "optional": False, "dim": 768}]},
        "index": None, "tombstones": None, "count": 0, "next_anchor": 0, "meta": {},
        "dropped": [], "writer": "w", "time_ns": 1700000000000000000, "message": "m",
        "delta": {"added": 0, "replaced": 0, "deleted": 0, "fields": []},
        "indexes": {"emb": object_id(ib)},
    }
    mb = enc(manifest)
    cases.append({"name": "manifest with indexes", "genesis": id_text(named("genesis")),
                  "indexes": {"emb": id_text(object_id(ib))}, "hex": mb.hex(),
                  "id": id_text(object_id(mb))})
    text = json.dumps({"cases": cases}, indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print("spatial.json is stale; run generate.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
