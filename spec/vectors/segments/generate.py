#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/segments/segments.json, the golden vectors of spec/12-segments.md.

An independent encoder written from the spec: its own canonical CBOR writer for the
header, checksums from Debian's `b3sum` (never DreamDB's code). The C++ test
src/columnar/segment_vectors_test.cc checks decode(hex) == values and
encode(values) == hex against the file.

Usage:
    python3 spec/vectors/segments/generate.py           # rewrite segments.json
    python3 spec/vectors/segments/generate.py --check   # exit 1 if segments.json is stale

Every vector names its `format`. The vectors of format 3 (what writers write, spec §4.4)
check both directions; the format 1 and 2 vectors (16-row blocks, spec §4.2) are kept
byte for byte so that readers prove they still read old segments (decode only). The sq8
vectors (fields declaring "index": {"raw": false}) also carry `decoded`, the
reconstructed float32 values: decode(hex) == decoded, and
encode(values) == encode(decoded) == hex.

Value forms in JSON: int64/timestamp integers; float64 numbers; bool true/false;
string/categorical text; blob lowercase hex; embedding lists of numbers (float32); array
nested lists, row-major; null for a null row.
"""

import json
import math
import pathlib
import re
import struct
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "segments.json"

VECTORS = [
    ("int64 with nulls", {"name": "n", "type": "int64", "optional": True},
     [1, None, -3, 9223372036854775807, -9223372036854775808, None, 0, 42, 7]),
    ("int64 empty", {"name": "n", "type": "int64"}, []),
    ("float64", {"name": "x", "type": "float64"},
     [0.0, -0.0, 1.5, -2.25, 1e300, 3.141592653589793]),
    ("bool with a null", {"name": "ok", "type": "bool", "optional": True},
     [True, False, None, True]),
    ("timestamp", {"name": "t", "type": "timestamp"}, [1700000000000000000, -1]),
    ("string", {"name": "s", "type": "string", "optional": True},
     ["hello", "", "w\u00f6rld", None, "x"]),
    ("categorical", {"name": "label", "type": "categorical", "optional": True},
     ["cat", "dog", "cat", None, "bird", "dog"]),
    ("blob", {"name": "img", "type": "blob", "mime": "image/png"},
     ["89504e470d0a1a0a", "", "00ff"]),
    ("embedding dim 4", {"name": "emb", "type": "embedding", "dim": 4, "optional": True},
     [[0.5, -1.25, 3.0, 0.0], None, [1.0, 2.0, 4.0, 8.0]]),
    ("array u8 [2,3]", {"name": "px", "type": "array", "dtype": "u8", "shape": [2, 3]},
     [[[1, 2, 3], [4, 5, 6]], [[255, 0, 7], [8, 9, 10]]]),
    # Format 2, sq8 (spec §9): fields declaring an index with "raw": false.
    ("sq8 dim 4 with a null",
     {"name": "emb", "type": "embedding", "dim": 4, "optional": True,
      "index": {"raw": False}},
     [[-0.0, 1.0, 2.0, 3.0], None, [5.0, 5.0, 5.0, 5.0], [-0.0, -1.0, 0.25, -0.5]]),
    ("sq8 dim 3 rounding",
     {"name": "v", "type": "embedding", "dim": 3, "index": {"raw": False}},
     [[0.1, 0.2, 0.7], [-3.5, 1e-3, 12.25], [100.0, 100.5, 99.75], [0.0, -7.0, 0.0]]),
    ("sq8 dim 20, 70 rows",
     {"name": "v", "type": "embedding", "dim": 20, "index": {"algorithm": "ivf", "raw": False}},
     [[round(((r * 37 + i * 11) % 97) / 8.0 - 6.0, 3) for i in range(20)]
      for r in range(70)]),
]

# Format 3 only (spec §4.4): block boundaries that formats 1 and 2 never exercise.
VECTORS_3 = [
    ("embedding dim 100, one row per block",
     {"name": "e", "type": "embedding", "dim": 100, "optional": True},
     [[round((r * 7 + i) / 16.0 - 3.0, 4) for i in range(100)] if r != 1 else None
      for r in range(3)]),
    ("sq8 dim 300, one row per block",
     {"name": "v", "type": "embedding", "dim": 300, "index": {"raw": False}},
     [[round(((r * 13 + i * 5) % 41) / 4.0 - 5.0, 3) for i in range(300)] for r in range(3)]),
    ("blob, one value per block",
     {"name": "img", "type": "blob", "optional": True},
     ["ab" * 300, None, "", "cd" * 700, "0102"]),
    ("string, 10 values per block",
     {"name": "s", "type": "string"},
     ["v%02d-" % r + "x" * (r % 60) for r in range(40)]),
    ("categorical, shared dictionary blocks",
     {"name": "label", "type": "categorical", "optional": True},
     [None if r % 9 == 4 else "label-%d" % (r % 13) * (1 + r % 3) for r in range(50)]),
    ("string, all empty",
     {"name": "s", "type": "string"}, ["", "", ""]),
]

DTYPES = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i",
          "u64": "Q", "i64": "q", "f32": "f", "f64": "d"}


# ---- canonical CBOR (spec/03-cbor.md), the subset a segment header uses ----

def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v):
    if isinstance(v, bool):
        raise TypeError("no booleans in a segment header")
    if isinstance(v, int):
        return cbor_head(0, v)
    if isinstance(v, bytes):
        return cbor_head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return cbor_head(3, len(b)) + b
    if isinstance(v, list):
        return cbor_head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return cbor_head(5, len(v)) + b"".join(cbor(k) + cbor(v[k]) for k in keys)
    raise TypeError(type(v))


# ---- checksums ----

def sum16(data):
    """First 16 bytes of BLAKE3-256, computed by Debian's b3sum."""
    out = subprocess.run(["b3sum", "--no-names", "--num-threads", "1"], input=data,
                         capture_output=True, check=True).stdout.decode().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", out):
        raise RuntimeError(f"unexpected b3sum output {out!r}")
    return bytes.fromhex(out)[:16]


def fixed_block(width, fmt):
    """spec/12-segments.md §4.2 (formats 1, 2) and §4.4 (format 3)."""
    if fmt >= 3:
        return max(1, 256 // width) * width
    target = min(max(16 * width, 256), 65536)
    return max(1, target // width) * width


def values_per_block(n, length):
    """spec/12-segments.md §4.4: format 3 `data`/`dict_data` blocks, in values."""
    if n == 0:
        return 1
    if length == 0:
        return n
    return min(max(256 * n // length, 1), n)


def align8(x):
    return (x + 7) // 8 * 8


# ---- sq8 (spec/12-segments.md §9) ----

def f32(x):
    """Rounds a binary64 value to binary32 (round-to-nearest-even)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def is_sq8(field):
    return field["type"] == "embedding" and field.get("index", {}).get("raw", True) is False


def sq8_row(v):
    """(lo, hi, codes) of one row."""
    x = [f32(e) for e in v]
    lo, hi = min(x), max(x)
    lo, hi = lo + 0.0, hi + 0.0  # negative zero becomes +0
    if lo == hi:
        return lo, hi, [0] * len(x)
    codes = [min(255, math.floor((e - lo) * 255 / (hi - lo) + 0.5)) for e in x]
    return lo, hi, codes


def sq8_value(lo, hi, c):
    return f32((lo * (255 - c) + hi * c) / 255)


def sq8_decoded(values):
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        lo, hi, codes = sq8_row(v)
        out.append([sq8_value(lo, hi, c) for c in codes])
    return out


# ---- values ----

def value_width(field):
    t = field["type"]
    if t in ("int64", "float64", "timestamp"):
        return 8
    if t == "bool":
        return 1
    if t == "embedding":
        return 4 * field["dim"]
    if t == "array":
        n = struct.calcsize("<" + DTYPES[field["dtype"]])
        for d in field["shape"]:
            n *= d
        return n
    if t == "categorical":
        return 4
    return 0


def flatten(v, depth):
    return [v] if depth == 0 else [x for e in v for x in flatten(e, depth - 1)]


def encode_value(field, v):
    t = field["type"]
    if t in ("int64", "timestamp"):
        return struct.pack("<q", v)
    if t == "float64":
        return struct.pack("<d", v)
    if t == "bool":
        return bytes([1 if v else 0])
    if t == "embedding":
        assert len(v) == field["dim"]
        return struct.pack(f"<{len(v)}f", *v)
    if t == "array":
        leaves = flatten(v, len(field["shape"]))
        return struct.pack(f"<{len(leaves)}{DTYPES[field['dtype']]}", *leaves)
    if t == "blob":
        return bytes.fromhex(v)
    return v.encode()  # string, categorical


def offsets_of(items):
    out, pos = [0], 0
    for b in items:
        pos += len(b)
        out.append(pos)
    return struct.pack(f"<{len(out)}Q", *out)


def buffers_of(field, values, fmt):
    """[(name, bytes, block, items)] in the order of spec/12-segments.md §3.3; `items` is
    the list of values of a variable-width buffer (format 3 cuts its blocks by them)."""
    rows = len(values)
    t = field["type"]
    width = value_width(field)
    out = []
    if any(v is None for v in values):
        bits = bytearray((rows + 7) // 8)
        for i, v in enumerate(values):
            if v is not None:
                bits[i // 8] |= 1 << (i % 8)
        out.append(("validity", bytes(bits), fixed_block(1, fmt), None))
    if is_sq8(field):
        scales, codes = b"", b""
        for v in values:
            if v is None:
                scales += bytes(8)
                codes += bytes(field["dim"])
                continue
            lo, hi, c = sq8_row(v)
            scales += struct.pack("<2f", lo, hi)
            codes += bytes(c)
        out.append(("scales", scales, fixed_block(8, fmt), None))
        out.append(("codes", codes, fixed_block(field["dim"], fmt), None))
    elif t in ("string", "blob"):
        items = [b"" if v is None else encode_value(field, v) for v in values]
        out.append(("offsets", offsets_of(items), fixed_block(8, fmt), None))
        out.append(("data", b"".join(items), data_block(items, fmt), items))
    elif t == "categorical":
        entries, codes = [], []
        for v in values:
            if v is None:
                codes.append(0)
                continue
            b = encode_value(field, v)
            if b not in entries:
                entries.append(b)
            codes.append(entries.index(b))
        out.append(("values", struct.pack(f"<{rows}I", *codes), fixed_block(4, fmt), None))
        out.append(("dict_offsets", offsets_of(entries), fixed_block(8, fmt), None))
        out.append(("dict_data", b"".join(entries), data_block(entries, fmt), entries))
    else:
        vals = b"".join(bytes(width) if v is None else encode_value(field, v) for v in values)
        out.append(("values", vals, fixed_block(width, fmt), None))
    return out


def data_block(items, fmt):
    if fmt >= 3:
        return values_per_block(len(items), sum(len(b) for b in items))
    return 65536


def block_sums(data, block, items):
    """The `sums` of one buffer (spec/12-segments.md §4.1, §4.4)."""
    if items is None:  # fixed-size blocks of `block` bytes
        return b"".join(sum16(data[i:i + block]) for i in range(0, len(data), block))
    return b"".join(sum16(b"".join(items[i:i + block])) for i in range(0, len(items), block))


def encode_segment(field, values, fmt):
    buffers = buffers_of(field, values, fmt)
    sums = []
    for _, data, block, items in buffers:
        sums.append(block_sums(data, block if items is not None else block,
                               items if fmt >= 3 else None))
    header_end = 28
    while True:  # offsets depend on the header's length (spec §1.1)
        pos, entries = header_end, []
        for (name, data, block, _), s in zip(buffers, sums):
            offset = align8(pos)
            entries.append({"name": name, "offset": offset, "length": len(data),
                            "block": block, "sums": s})
            pos = offset + len(data)
        header = {"kind": "dreamdb.segment", "format": fmt, "type": field["type"],
                  "rows": len(values), "buffers": entries}
        if is_sq8(field):
            if fmt < 3:
                header["format"] = 2
            header["encoding"] = "sq8"
        if field["type"] == "embedding":
            header["dim"] = field["dim"]
        if field["type"] == "array":
            header["dtype"] = field["dtype"]
            header["shape"] = field["shape"]
        encoded = cbor(header)
        end = 28 + len(encoded)
        if align8(end) == align8(header_end):
            break
        header_end = end
    out = bytearray(b"DDBSEG01" + struct.pack("<I", len(encoded)) + sum16(encoded) + encoded)
    for entry, (_, data, _, _) in zip(entries, buffers):
        out += bytes(entry["offset"] - len(out))
        out += data
    return bytes(out)


def vector(name, field, values, fmt):
    seg = encode_segment(field, values, fmt)
    header_format = 2 if fmt < 3 and is_sq8(field) else fmt
    entry = {"name": name, "format": header_format, "field": field, "rows": len(values),
             "values": values}
    if is_sq8(field):
        decoded = sq8_decoded(values)
        assert encode_segment(field, decoded, fmt) == seg, name  # stable under re-encoding
        entry["decoded"] = decoded
    entry.update({"size": len(seg), "hex": seg.hex()})
    return entry


def generate():
    # Formats 1 and 2 (read only, kept byte for byte), then format 3 (written today).
    vectors = [vector(name, field, values, 1) for name, field, values in VECTORS]
    vectors += [vector(name + ", format 3", field, values, 3) for name, field, values in VECTORS]
    vectors += [vector(name, field, values, 3) for name, field, values in VECTORS_3]
    doc = {
        "spec": "spec/12-segments.md",
        "generator": "spec/vectors/segments/generate.py (checksums by Debian b3sum)",
        "value_forms": "int64/timestamp: integer; float64: number; bool: true/false; "
                       "string/categorical: text; blob: lowercase hex; embedding: list of "
                       "numbers (float32); array: nested lists, row-major; null: a null row; "
                       "sq8 vectors also list `decoded`, the values a reader returns; "
                       "`format` 3 vectors are what writers write (encode and decode), "
                       "format 1 and 2 vectors are read only",
        "vectors": vectors,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main():
    text = generate()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
