# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Cross-checks spec/vectors/ids/ids.json (spec/04-object-ids.md) independently of the C++ code.

Digests are recomputed with Debian's b3sum; the text, shard and CBOR forms are recomputed
from the spec's rules with the Python standard library and cbor2; a reference parser
written from the spec's parsing rules must give each invalid case's error code. When a
dreamdb CLI is built, its `object put` must print the same ids and its `object get` must
refuse the invalid text ids with the error table's exit codes (spec/07-errors.md).
"""

import base64
import json
import pathlib
import re
import subprocess
import sys

import cbor2
import pytest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
_VECTORS = SOURCE_DIR / "spec" / "vectors" / "ids" / "ids.json"
DOC = json.loads(_VECTORS.read_text())
VALID = DOC["valid"]
INVALID_TEXT = DOC["invalid_text"]
INVALID_BINARY = DOC["invalid_binary"]

BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# spec/07-errors.md: CLI exit codes.
EXIT_CODE = {"invalid_argument": 3, "not_found": 4, "corrupt": 7, "unsupported": 10}


class IdError(Exception):
    def __init__(self, code: str, why: str):
        super().__init__(f"{code}: {why}")
        self.code = code


def expand(case: dict) -> bytes:
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    pattern = case["input_pattern"]
    m = re.fullmatch(r"byte i = i % ([0-9]+)", pattern["pattern"])
    assert m, f"unknown pattern {pattern['pattern']!r}"
    modulus = int(m.group(1))
    return bytes(i % modulus for i in range(pattern["length"]))


def parse_binary(binary: bytes) -> bytes:
    """spec/04-object-ids.md §2: the digest of a binary multihash, or IdError."""
    if len(binary) < 2:
        raise IdError("corrupt", "shorter than a multihash header")
    code, length = binary[0], binary[1]
    if code >= 0x80 or length >= 0x80 or code != 0x1E:
        raise IdError("unsupported", f"multihash code {code:#x}")
    if length != 32 or len(binary) != 34:
        raise IdError("corrupt", "blake3 multihash must be 1e 20 + 32 bytes")
    return binary[2:]


def parse_text(text: str) -> bytes:
    """spec/04-object-ids.md §5: the multihash of a text id, or IdError."""
    if not text.startswith("b"):
        raise IdError("invalid_argument", "missing multibase prefix 'b'")
    if len(text) != 56:
        raise IdError("invalid_argument", "wrong length")
    body = text[1:]
    if any(c not in BASE32 for c in body):
        raise IdError("invalid_argument", "not lowercase base32")
    bits = "".join(f"{BASE32.index(c):05b}" for c in body)
    if set(bits[272:]) != {"0"}:
        raise IdError("invalid_argument", "non-zero unused trailing bits")
    binary = int(bits[:272], 2).to_bytes(34, "big")
    try:
        parse_binary(binary)
    except IdError as e:
        if e.code == "corrupt":  # malformed user input, not stored data
            raise IdError("invalid_argument", str(e)) from e
        raise
    return binary


def text_of(multihash: bytes) -> str:
    return "b" + base64.b32encode(multihash).decode().lower().rstrip("=")


def test_vectors_file_is_current(source_dir):
    """ids.json is exactly what generate.py produces (which asks b3sum for digests)."""
    script = source_dir / "spec" / "vectors" / "ids" / "generate.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_vectors_cover_the_spec():
    assert len(VALID) >= 20
    names = {c["name"] for c in VALID}
    assert {"empty input", "abc", "1 MiB"} <= names
    assert {c["error"] for c in INVALID_TEXT} == {"invalid_argument", "unsupported"}
    assert {c["error"] for c in INVALID_BINARY} == {"corrupt", "unsupported"}
    assert {c["shard"] for c in VALID} >= {"00", "ff"}


@pytest.mark.parametrize("case", VALID, ids=[c["name"] for c in VALID])
def test_valid_case(case, b3sum):
    data = expand(case)
    digest = subprocess.run([b3sum, "--no-names"], input=data, capture_output=True,
                            check=True).stdout.decode().strip()
    assert digest == case["blake3_hex"]
    multihash = bytes([0x1E, 0x20]) + bytes.fromhex(digest)
    assert case["multihash_hex"] == multihash.hex()
    assert case["text"] == text_of(multihash)
    assert len(case["text"]) == 56 and case["text"].startswith("bdyq")
    assert case["shard"] == digest[:2]
    assert case["cbor_hex"] == cbor2.dumps(multihash, canonical=True).hex()
    assert parse_text(case["text"]) == multihash


def test_null_id():
    null = DOC["null_id"]
    multihash = bytes([0x1E, 0x20]) + bytes(32)
    assert null["multihash_hex"] == multihash.hex()
    assert null["text"] == text_of(multihash)
    assert parse_text(null["text"]) == multihash
    assert null["shard"] == "00"


@pytest.mark.parametrize("case", INVALID_TEXT, ids=[c["name"] for c in INVALID_TEXT])
def test_invalid_text_case(case):
    with pytest.raises(IdError) as err:
        parse_text(case["text"])
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", INVALID_BINARY, ids=[c["name"] for c in INVALID_BINARY])
def test_invalid_binary_case(case):
    with pytest.raises(IdError) as err:
        parse_binary(bytes.fromhex(case["binary_hex"]))
    assert err.value.code == case["error"]


# ---- The CLI agrees with the vectors (skipped when no CLI is built) ----

CLI_CASES = [c for c in VALID if c["name"] in ("empty input", "abc", "1 MiB", "shard prefix ff")]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c["name"] for c in CLI_CASES])
def test_cli_object_put_prints_the_vector_id(case, dreamdb_bin, tmp_path):
    path = tmp_path / "input"
    path.write_bytes(expand(case))
    result = subprocess.run([dreamdb_bin, "--store", f"file://{tmp_path / 'store'}", "object",
                             "put", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert case["text"] in result.stdout.split()


@pytest.mark.parametrize("case", INVALID_TEXT, ids=[c["name"] for c in INVALID_TEXT])
def test_cli_refuses_invalid_text_ids(case, dreamdb_bin):
    # "--" ends the flags, so texts starting with "-" reach the id parser too.
    result = subprocess.run([dreamdb_bin, "--store", "memory://", "object", "get", "--",
                             case["text"]],
                            capture_output=True, timeout=60)
    assert result.returncode == EXIT_CODE[case["error"]], result.stderr
    assert result.stdout == b""
    assert result.stderr.strip(), "the error must be explained on stderr"
