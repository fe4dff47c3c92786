#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/ids/ids.json, the golden vectors of spec/04-object-ids.md.

Digests come from Debian's `b3sum` (the BLAKE3 team's reference tool), never from
DreamDB's own code, so the vectors are an independent oracle. Everything else (multihash,
text form, shard prefix, CBOR form) follows the spec's rules and is written out
in full so that readers in any language can check themselves against the file.

Usage:
    python3 spec/vectors/ids/generate.py           # rewrite ids.json
    python3 spec/vectors/ids/generate.py --check   # exit 1 if ids.json is stale

The output is deterministic: running it twice gives the same bytes.
"""

import base64
import json
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "ids.json"

BLAKE3_CODE = 0x1E
DIGEST_SIZE = 32

# Inputs too long to embed are described by a pattern that every reader can expand.
# Only this pattern is defined (spec/vectors/README.md): byte i of the input is i % M.
PATTERN_RE = re.compile(r"^byte i = i % ([0-9]+)$")


def expand(case):
    """Returns the input bytes a vector case describes."""
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    pattern = case["input_pattern"]
    m = PATTERN_RE.match(pattern["pattern"])
    if not m:
        raise ValueError(f"unknown pattern {pattern['pattern']!r}")
    modulus = int(m.group(1))
    return bytes(i % modulus for i in range(pattern["length"]))


def b3sum(data):
    """BLAKE3-256 of `data` as lowercase hex, computed by Debian's b3sum."""
    out = subprocess.run(["b3sum", "--no-names", "--num-threads", "1"], input=data,
                         capture_output=True, check=True).stdout.decode().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", out):
        raise RuntimeError(f"unexpected b3sum output {out!r}")
    return out


def text_of(multihash):
    """Text form: multibase 'b' + lowercase RFC 4648 base32 without padding."""
    return "b" + base64.b32encode(multihash).decode().lower().rstrip("=")


def valid_case(name, *, data=None, pattern=None, length=None):
    case = {"name": name}
    if pattern is None:
        case["input_hex"] = data.hex()
    else:
        case["input_pattern"] = {"pattern": pattern, "length": length}
    digest = bytes.fromhex(b3sum(expand(case)))
    multihash = bytes([BLAKE3_CODE, DIGEST_SIZE]) + digest
    case["blake3_hex"] = digest.hex()
    case["multihash_hex"] = multihash.hex()
    case["text"] = text_of(multihash)
    case["shard"] = digest[:1].hex()
    # CBOR byte string of 34 bytes: major type 2, one-byte length 0x22.
    case["cbor_hex"] = "5822" + multihash.hex()
    return case


def find_input_with_shard(prefix, shard):
    """The first input `prefix + str(n)` whose shard prefix is `shard` (deterministic)."""
    n = 0
    while True:
        data = f"{prefix}{n}".encode()
        if b3sum(data)[:2] == shard:
            return data
        n += 1


def valid_cases():
    pat = "byte i = i % 251"
    return [
        valid_case("empty input", data=b""),
        valid_case("abc", data=b"abc"),
        valid_case("one zero byte", data=b"\x00"),
        valid_case("one 0xff byte", data=b"\xff"),
        valid_case("hello world", data=b"hello world"),
        valid_case("text with newline", data=b"dreamdb\n"),
        valid_case("canonical CBOR empty map", data=b"\xa0"),
        valid_case("63 bytes (one below a BLAKE3 block)", pattern=pat, length=63),
        valid_case("64 bytes (one BLAKE3 block)", pattern=pat, length=64),
        valid_case("65 bytes (one above a BLAKE3 block)", pattern=pat, length=65),
        valid_case("1023 bytes (one below a BLAKE3 chunk)", pattern=pat, length=1023),
        valid_case("1024 bytes (one BLAKE3 chunk)", pattern=pat, length=1024),
        valid_case("1025 bytes (one above a BLAKE3 chunk)", pattern=pat, length=1025),
        valid_case("2048 bytes (two chunks)", pattern=pat, length=2048),
        valid_case("2049 bytes", pattern=pat, length=2049),
        valid_case("8193 bytes", pattern=pat, length=8193),
        valid_case("65536 bytes", pattern=pat, length=65536),
        valid_case("1 MiB", pattern=pat, length=1 << 20),
        valid_case("1 MiB + 1", pattern=pat, length=(1 << 20) + 1),
        valid_case("shard prefix 00", data=find_input_with_shard("shard-00 #", "00")),
        valid_case("shard prefix ff", data=find_input_with_shard("shard-ff #", "ff")),
    ]


def invalid_text_cases(good):
    """Text forms every parser MUST refuse, each with the error code it MUST give."""
    text = good["text"]
    mh = bytes.fromhex(good["multihash_hex"])
    body = text[1:]
    last = "abcdefghijklmnopqrstuvwxyz234567".index(body[-1])
    # The last character carries 2 data bits and 3 unused bits; set an unused bit.
    trailing = "b" + body[:-1] + "abcdefghijklmnopqrstuvwxyz234567"[last | 1]
    assert trailing != text
    mid = len(text) // 2
    letter = next(i for i in range(mid, len(text)) if text[i].isalpha())
    cases = [
        ("empty", "", "invalid_argument"),
        ("prefix only", "b", "invalid_argument"),
        ("uppercase multibase prefix", "B" + body, "invalid_argument"),
        ("base32upper multibase form", "B" + body.upper(), "invalid_argument"),
        ("other multibase prefix (base58btc)", "z" + body, "invalid_argument"),
        ("no multibase prefix", body, "invalid_argument"),
        ("one uppercase character",
         text[:letter] + text[letter].upper() + text[letter + 1:], "invalid_argument"),
        ("all uppercase", text.upper(), "invalid_argument"),
        ("one character short", text[:-1], "invalid_argument"),
        ("one character long", text + "a", "invalid_argument"),
        ("base32 padding", text + "=", "invalid_argument"),
        ("digit 1 is not base32", text[:mid] + "1" + text[mid + 1:], "invalid_argument"),
        ("digit 8 is not base32", text[:mid] + "8" + text[mid + 1:], "invalid_argument"),
        ("non-zero unused trailing bits", trailing, "invalid_argument"),
        ("leading space", " " + text[:-1], "invalid_argument"),
        ("trailing newline", text + "\n", "invalid_argument"),
        ("hex form of the multihash", mh.hex(), "invalid_argument"),
        ("blake3 code with length byte 0x1f",
         text_of(bytes([0x1E, 0x1F]) + mh[2:]), "invalid_argument"),
        ("sha2-256 multihash (code 0x12)", text_of(bytes([0x12, 0x20]) + mh[2:]),
         "unsupported"),
        ("identity multihash (code 0x00)", text_of(bytes([0x00, 0x20]) + mh[2:]),
         "unsupported"),
        ("multi-byte varint hash code", text_of(bytes([0x9E, 0x20]) + mh[2:]), "unsupported"),
    ]
    return [{"name": n, "text": t, "error": e} for n, t, e in cases]


def invalid_binary_cases(good):
    """Binary multihashes (as found inside CBOR objects) every reader MUST refuse."""
    digest = bytes.fromhex(good["blake3_hex"])
    cases = [
        ("empty", b"", "corrupt"),
        ("code only", b"\x1e", "corrupt"),
        ("header only", b"\x1e\x20", "corrupt"),
        ("digest one byte short", b"\x1e\x20" + digest[:-1], "corrupt"),
        ("digest one byte long", b"\x1e\x20" + digest + b"\x00", "corrupt"),
        ("length byte 0x1f", b"\x1e\x1f" + digest[:-1], "corrupt"),
        ("length byte 0x21", b"\x1e\x21" + digest + b"\x00", "corrupt"),
        ("sha2-256 multihash (code 0x12)", b"\x12\x20" + digest, "unsupported"),
        ("multi-byte varint hash code", b"\x9e\x20" + digest, "unsupported"),
    ]
    return [{"name": n, "binary_hex": b.hex(), "error": e} for n, b, e in cases]


def null_id():
    multihash = bytes([BLAKE3_CODE, DIGEST_SIZE]) + bytes(DIGEST_SIZE)
    return {"multihash_hex": multihash.hex(), "text": text_of(multihash), "shard": "00"}


def build():
    valid = valid_cases()
    abc = next(c for c in valid if c["name"] == "abc")
    doc = {
        "spec": "spec/04-object-ids.md",
        "generator": "spec/vectors/ids/generate.py (digests by Debian b3sum)",
        "patterns": {"byte i = i % M": "input byte at offset i (from 0) equals i modulo M"},
        "valid": valid,
        "null_id": null_id(),
        "invalid_text": invalid_text_cases(abc),
        "invalid_binary": invalid_binary_cases(abc),
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def main(argv):
    text = build()
    if argv[1:] == ["--check"]:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 {pathlib.Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{OUT.name} is up to date")
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
