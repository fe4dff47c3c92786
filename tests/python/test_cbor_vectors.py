# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Cross-checks spec/vectors/cbor against an independent CBOR implementation (cbor2).

The C++ codec is checked against the same files by src/cbor/cbor_test.cc
(GoldenVectors.*), so the two together tie DreamDB's encoder and decoder to cbor2's
canonical encoding. Nothing here needs the C++ build.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

import cbor2  # noqa: E402  (requirements-dev.txt)

REPO = pathlib.Path(__file__).resolve().parents[2]
VECTORS = REPO / "spec" / "vectors" / "cbor"


def _load_generator():
    spec = importlib.util.spec_from_file_location("cbor_vectors_generate",
                                                  VECTORS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
VALID = json.loads((VECTORS / "valid.json").read_text(encoding="utf-8"))
INVALID = json.loads((VECTORS / "invalid.json").read_text(encoding="utf-8"))


def test_vector_files_have_expected_shape():
    assert len(VALID) >= 30 and len(INVALID) >= 30
    names = [v["name"] for v in VALID + INVALID]
    assert len(names) == len(set(names)), "vector names must be unique"
    for v in VALID:
        assert set(v) == {"name", "diag", "hex"}
    for v in INVALID:
        assert set(v) == {"name", "hex", "reason"}


def test_vector_files_are_up_to_date():
    valid, invalid = gen.build()
    assert valid == VALID, "valid.json is stale: rerun spec/vectors/cbor/generate.py"
    assert invalid == INVALID, "invalid.json is stale: rerun spec/vectors/cbor/generate.py"


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector_is_canonical(vector):
    data = bytes.fromhex(vector["hex"])
    value = cbor2.loads(data)
    assert gen.in_model(value)
    assert cbor2.dumps(value, canonical=True).hex() == vector["hex"]
    assert gen.diag(value) == vector["diag"]


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector_is_rejected_or_not_canonical(vector):
    assert gen.invalid_verdict(bytes.fromhex(vector["hex"])) is not None


@pytest.mark.parametrize("value,expected", [
    (1.5, "f93e00"),
    (100000.0, "fa47c35000"),
    (1.1, "fb3ff199999999999a"),
    (float("nan"), "f97e00"),
    (-0.0, "f98000"),
    (float("inf"), "f97c00"),
    (float("-inf"), "f9fc00"),
    ({"b": 1, "aa": 2, "a": 3}, "a361610361620162616102"),
])
def test_oracle_matches_spec_rules(value, expected):
    # The spec's float and key-order rules, as cbor2 implements them (RFC 8949 §4.2.1).
    assert cbor2.dumps(value, canonical=True).hex() == expected
