# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Fixtures for the soak tests: the binary."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "cli"))

from cli_harness import dreamdb_binary  # noqa: E402


@pytest.fixture(scope="session")
def dreamdb_bin() -> pathlib.Path:
    path = dreamdb_binary()
    if not path.exists():
        pytest.fail(f"dreamdb binary not found at {path}; build it or set DREAMDB_BIN")
    return path
