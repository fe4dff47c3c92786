#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates the canonical CBOR golden vectors (spec/03-cbor.md §9).

valid.json:   [{"name", "diag", "hex"}] -- the hex is produced by the oracle, Python
              cbor2 with canonical=True, from the Python value listed below; "diag" is
              the diagnostic notation of spec/03-cbor.md §7 (what ToDiagnostic prints).
invalid.json: [{"name", "hex", "reason"}] -- hand-written inputs a DreamDB decoder must
              reject; "reason" is the rule phrase its error message contains. Each one is
              checked to be rejected by cbor2, or not canonical (cbor2 re-encodes it to
              other bytes), or outside the DreamDB data model.

Usage: python3 spec/vectors/cbor/generate.py [--check] [--corpus DIR]
  --check    verify the checked-in files equal what would be generated (exit 1 if not)
  --corpus   also write a few valid encodings as fuzz seed files into DIR
Needs cbor2 (pip install cbor2).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Any

import cbor2

HERE = pathlib.Path(__file__).resolve().parent
MAX_DEPTH = 64  # DecodeLimits::max_depth default (spec/03-cbor.md §6)
UINT64_MAX = 2**64 - 1

# blake3("abc") as a multihash: 1e 20 <32-byte digest> (spec/04-object-ids.md).
ABC_ID = bytes.fromhex("1e20" "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")


def _nested(depth: int) -> list:
    v: list = []
    for _ in range(depth - 1):
        v = [v]
    return v


VALID: list[tuple[str, Any]] = [
    ("uint_0", 0),
    ("uint_23", 23),
    ("uint_24", 24),
    ("uint_255", 255),
    ("uint_256", 256),
    ("uint_65535", 65535),
    ("uint_65536", 65536),
    ("uint_4294967295", 2**32 - 1),
    ("uint_4294967296", 2**32),
    ("uint_max", UINT64_MAX),
    ("nint_minus_1", -1),
    ("nint_minus_24", -24),
    ("nint_minus_25", -25),
    ("nint_minus_1000", -1000),
    ("nint_int64_min", -(2**63)),
    ("nint_min", -(2**64)),
    ("float_zero", 0.0),
    ("float_negative_zero", -0.0),
    ("float_1_5_half", 1.5),
    ("float_65504_half_max", 65504.0),
    ("float_half_subnormal_min", 5.960464477539063e-08),
    ("float_100000_single", 100000.0),
    ("float_single_max", 3.4028234663852886e38),
    ("float_single_subnormal_min", math.ldexp(1.0, -149)),
    ("float_1_1_double", 1.1),
    ("float_minus_4_1_double", -4.1),
    ("float_1e300_double", 1.0e300),
    ("float_infinity", math.inf),
    ("float_negative_infinity", -math.inf),
    ("float_nan", math.nan),
    ("false", False),
    ("true", True),
    ("null", None),
    ("bytes_empty", b""),
    ("bytes_4", bytes.fromhex("01020304")),
    ("bytes_24", bytes(range(24))),
    ("object_id", ABC_ID),
    ("text_empty", ""),
    ("text_a", "a"),
    ("text_escapes", '"\\\n\t\x01'),
    ("text_unicode", "\u00fc\u6c34\U00010151"),
    ("text_300", "x" * 300),
    ("array_empty", []),
    ("array_1_2_3", [1, 2, 3]),
    ("array_nested", [1, [2, 3], [4, 5]]),
    ("array_25", list(range(1, 26))),
    ("array_mixed", [None, True, -1, 0.5, "s", b"\x00"]),
    ("map_empty", {}),
    ("map_rfc", {"a": 1, "b": [2, 3]}),
    ("map_key_order", {"b": 1, "aa": 2, "a": 3, "": 4, "\u00e9": 5, "z": 6}),
    ("map_nested", {"outer": {"inner": {"x": [1, {"y": None}]}}}),
    (
        "map_object_like",
        {
            "kind": "manifest",
            "version": 1,
            "parent": ABC_ID,
            "rows": 1000000,
            "fields": [{"name": "x", "type": "f32"}, {"name": "label", "type": "text"}],
            "meta": {},
        },
    ),
    ("nested_depth_64", _nested(MAX_DEPTH)),
]

NESTED_65_HEX = "81" * (MAX_DEPTH) + "80"

INVALID: list[tuple[str, str, str]] = [
    ("empty_input", "", "unexpected end of input"),
    ("truncated_argument", "1901", "unexpected end of input"),
    ("truncated_float", "f97e", "unexpected end of input"),
    ("uint_non_minimal_1", "1817", "non-minimal integer encoding"),
    ("uint_non_minimal_2", "1900ff", "non-minimal integer encoding"),
    ("uint_non_minimal_4", "1a0000ffff", "non-minimal integer encoding"),
    ("uint_non_minimal_8", "1b00000000ffffffff", "non-minimal integer encoding"),
    ("nint_non_minimal", "3817", "non-minimal integer encoding"),
    ("bytes_non_minimal_length", "5801ff", "non-minimal length encoding"),
    ("text_non_minimal_length", "780161", "non-minimal length encoding"),
    ("array_non_minimal_length", "980101", "non-minimal length encoding"),
    ("map_non_minimal_length", "b801616101", "non-minimal length encoding"),
    ("bytes_indefinite", "5f4101ff", "indefinite length not allowed"),
    ("text_indefinite", "7f6161ff", "indefinite length not allowed"),
    ("array_indefinite", "9f01ff", "indefinite length not allowed"),
    ("map_indefinite", "bf616101ff", "indefinite length not allowed"),
    ("lone_break", "ff", "unexpected break code"),
    ("reserved_additional_info", "1c", "reserved additional information"),
    ("tag_bignum", "c249010000000000000000", "tags not allowed"),
    ("tag_self_describe", "d9d9f700", "tags not allowed"),
    ("undefined", "f7", "undefined not allowed"),
    ("simple_value_0", "e0", "simple value not allowed"),
    ("simple_value_one_byte", "f820", "simple value not allowed"),
    ("map_key_integer", "a10102", "map key is not a text string"),
    ("map_key_bytes", "a1416101", "map key is not a text string"),
    ("map_duplicate_key", "a2616101616102", "duplicate map key"),
    ("map_keys_unsorted_bytewise", "a2616201616102", "map keys not in canonical order"),
    ("map_keys_unsorted_length", "a262616101616202", "map keys not in canonical order"),
    ("utf8_lone_continuation", "6180", "invalid UTF-8"),
    ("utf8_overlong_2", "62c080", "invalid UTF-8"),
    ("utf8_overlong_3", "63e08080", "invalid UTF-8"),
    ("utf8_surrogate", "63eda080", "invalid UTF-8"),
    ("utf8_above_max", "64f4908080", "invalid UTF-8"),
    ("utf8_truncated_sequence", "61c3", "invalid UTF-8"),
    ("bytes_beyond_input", "4501020304", "length beyond end of input"),
    ("text_beyond_input", "7affffffff61", "length beyond end of input"),
    ("array_huge_count", "9bffffffffffffffff", "length beyond end of input"),
    ("array_missing_item", "830102", "length beyond end of input"),
    ("trailing_bytes", "0000", "trailing bytes"),
    ("float_single_for_half", "fa3fc00000", "float not in shortest form"),
    ("float_double_for_single", "fb40f86a0000000000", "float not in shortest form"),
    ("float_double_zero", "fb0000000000000000", "float not in shortest form"),
    ("float_single_infinity", "fa7f800000", "float not in shortest form"),
    ("nan_payload", "f97e01", "non-canonical NaN"),
    ("nan_negative", "f9fe00", "non-canonical NaN"),
    ("nan_single", "fa7fc00000", "non-canonical NaN"),
    ("nan_double", "fb7ff8000000000000", "non-canonical NaN"),
    ("nesting_depth_65", NESTED_65_HEX, "nesting depth exceeds max_depth"),
]

CORPUS_NAMES = [
    "uint_max", "nint_min", "float_1_1_double", "float_nan", "text_unicode", "object_id",
    "array_mixed", "map_key_order", "map_object_like",
]


def float_diag(f: float) -> str:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def diag(v: Any) -> str:
    """Diagnostic notation exactly as spec/03-cbor.md §7 and cbor::ToDiagnostic."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return float_diag(v)
    if isinstance(v, bytes):
        return "h'" + v.hex() + "'"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(diag(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + diag(x)
                               for k, x in v.items()) + "}"
    raise TypeError(f"not in the DreamDB CBOR data model: {type(v).__name__}")


def in_model(v: Any, depth: int = 0) -> bool:
    """True when a cbor2-decoded value lies inside the DreamDB data model and limits."""
    if v is None or isinstance(v, (bool, float, bytes, str)):
        return True
    if isinstance(v, int):
        return -(2**64) <= v <= UINT64_MAX
    if isinstance(v, list):
        return depth < MAX_DEPTH and all(in_model(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return depth < MAX_DEPTH and all(
            isinstance(k, str) and in_model(x, depth + 1) for k, x in v.items())
    return False


def canonical(v: Any) -> bytes:
    return cbor2.dumps(v, canonical=True)


def invalid_verdict(data: bytes) -> str | None:
    """Why a DreamDB decoder must reject `data` per cbor2: "rejected by cbor2",
    "not canonical", "outside the data model"; None if cbor2 finds it fine."""
    try:
        v = cbor2.loads(data)
    except Exception:  # noqa: BLE001 -- any decode failure counts as a rejection
        return "rejected by cbor2"
    if not in_model(v):
        return "outside the data model"
    try:
        again = canonical(v)
    except Exception:  # noqa: BLE001
        return "outside the data model"
    if again != data:
        return "not canonical"
    return None


def build() -> tuple[list[dict], list[dict]]:
    valid = []
    names = set()
    for name, value in VALID:
        assert name not in names, name
        names.add(name)
        data = canonical(value)
        decoded = cbor2.loads(data)
        assert in_model(decoded), name
        assert canonical(decoded) == data, name
        valid.append({"name": name, "diag": diag(decoded), "hex": data.hex()})
    invalid = []
    for name, hx, reason in INVALID:
        assert name not in names, name
        names.add(name)
        verdict = invalid_verdict(bytes.fromhex(hx))
        if verdict is None:
            raise SystemExit(f"invalid vector {name} ({hx}) is canonical CBOR in the model")
        invalid.append({"name": name, "hex": hx, "reason": reason})
    return valid, invalid


def dump(vectors: list[dict]) -> str:
    """One vector per line: readable diffs, still plain JSON."""
    lines = [json.dumps(v, ensure_ascii=False) for v in vectors]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--corpus", type=pathlib.Path)
    args = ap.parse_args()
    valid, invalid = build()
    files = {HERE / "valid.json": dump(valid), HERE / "invalid.json": dump(invalid)}
    if args.check:
        stale = [p.name for p, text in files.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print("stale:", ", ".join(stale), "-- rerun spec/vectors/cbor/generate.py")
            return 1
        print(f"ok: {len(valid)} valid, {len(invalid)} invalid vectors up to date")
        return 0
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    if args.corpus:
        args.corpus.mkdir(parents=True, exist_ok=True)
        by_name = {v["name"]: v["hex"] for v in valid}
        for name in CORPUS_NAMES:
            (args.corpus / f"{name}.cbor").write_bytes(bytes.fromhex(by_name[name]))
    print(f"wrote {len(valid)} valid and {len(invalid)} invalid vectors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
