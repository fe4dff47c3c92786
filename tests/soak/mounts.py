# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Mounts for the soak tests (a small tmpfs, a read-only bind), undone whatever happens.
Tests that need them skip, with the reason, only when the machine refuses to mount."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
from typing import Iterator

import pytest


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
