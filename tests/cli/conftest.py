# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Fixtures for the CLI tests: the binary, and a fresh file:// store per test."""

from __future__ import annotations

import pathlib

import pytest

from cli_harness import Cli, dreamdb_binary


@pytest.fixture(scope="session")
def dreamdb_bin() -> pathlib.Path:
    path = dreamdb_binary()
    if not path.exists():
        pytest.fail(f"dreamdb binary not found at {path}; build it "
                    "(cmake --build --preset dev --target dreamdb) or set DREAMDB_BIN")
    return path


@pytest.fixture
def store_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "store"


@pytest.fixture
def cli(dreamdb_bin: pathlib.Path, store_dir: pathlib.Path, tmp_path: pathlib.Path) -> Cli:
    """A Cli on a new, empty store (made with `dreamdb init`: commands that only read never
    create one)."""
    c = Cli(dreamdb_bin, "file://" + str(store_dir), tmp_path)
    c.ok("init")
    return c
