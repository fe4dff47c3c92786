# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Fixtures for the soak tests: the binary, mounts (tmpfs, read-only binds) that are
undone whatever happens."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
from typing import Iterator

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


def _mount(args: list[str], what: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        # The one case these tests skip: the machine refuses mounts (no root, no
        # CAP_SYS_ADMIN in a container). The reason is printed with the skip.
        pytest.skip(f"cannot {what}: mount {' '.join(args)} failed: {r.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, size_bytes: int) -> Iterator[pathlib.Path]:
    """A tmpfs of `size_bytes` mounted at `path` for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
           "mount a small tmpfs for the disk-full tests")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def readonly_bind(src: pathlib.Path, dst: pathlib.Path) -> Iterator[pathlib.Path]:
    """`src` bind-mounted read-only at `dst` for the duration."""
    dst.mkdir(parents=True, exist_ok=True)
    _mount(["--bind", str(src), str(dst)], "bind-mount the store")
    try:
        _mount(["-o", "remount,bind,ro", str(dst)], "remount the bind read-only")
        yield dst
    finally:
        subprocess.run(["umount", "-l", str(dst)], check=False)
