# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The independent readers that live beside the golden vectors (written from the spec,
not from the C++ code) must agree with the committed vectors."""

import pathlib
import subprocess
import sys

import pytest


def _run(script: pathlib.Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_vector_codes_checker(vectors_dir: pathlib.Path) -> None:
    out = _run(vectors_dir / "vector" / "check.py")
    assert "ok" in out and "FAIL" not in out.upper().replace("FAILS", "")


@pytest.mark.parametrize("kind", ["btree", "cbor", "ids", "refs", "s3", "segments", "spatial"])
def test_generated_vectors_are_current(vectors_dir: pathlib.Path, kind: str) -> None:
    """Each generator (an independent encoder written from the spec) reproduces the
    committed vectors byte for byte."""
    _run(vectors_dir / kind / "generate.py", "--check")


def test_graph_vectors_checker(vectors_dir: pathlib.Path) -> None:
    out = _run(vectors_dir / "graph" / "check.py")
    assert out.count("ok ") == 2 and "FAIL" not in out
