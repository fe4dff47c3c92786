# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""python/dreamdb/_core.pyi is nanobind's stubgen output for the built extension: this test
regenerates it and fails when the checked-in copy is stale. To refresh it:

    .venv/bin/python -m nanobind.stubgen -q -m dreamdb._core -o python/dreamdb/_core.pyi
"""

import os
import pathlib
import subprocess
import sys

import pytest

import dreamdb  # noqa: F401,E402

# The stub text depends on the stubgen version: the one python/pyproject.toml builds with.
STUBGEN_VERSION = "3.1.0"


def source_dir() -> pathlib.Path:
    env = os.environ.get("DREAMDB_SOURCE_DIR")
    return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2]


def test_checked_in_stub_matches_the_extension(tmp_path):
    import nanobind

    assert nanobind.__version__ == STUBGEN_VERSION, (
        f"nanobind {nanobind.__version__} installed; requirements-dev.txt pins {STUBGEN_VERSION}")
    out = tmp_path / "_core.pyi"
    subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "dreamdb._core",
                    "-o", str(out)], check=True)
    checked_in = source_dir() / "python" / "dreamdb" / "_core.pyi"
    assert out.read_text() == checked_in.read_text(), (
        "python/dreamdb/_core.pyi is stale; regenerate it (see this test's docstring)")


def test_installed_package_ships_the_stub_and_marker():
    import dreamdb

    pkg = pathlib.Path(dreamdb.__file__).parent
    assert (pkg / "_core.pyi").is_file() and (pkg / "py.typed").is_file()
