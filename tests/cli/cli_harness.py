# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Helpers for the `dreamdb` CLI transcript tests: run the binary, check exit codes and
the --json shapes.

The binary comes from $DREAMDB_BIN (default: build/dev/cli/dreamdb under the repository).
(A module with its own name, not conftest.py: tests/python has a conftest.py too, and
both directories run in one pytest session.)
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from dataclasses import dataclass
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]

# Exit codes (spec/07-errors.md, cli/README.md).
EXIT = {
    "ok": 0,
    "internal": 1,
    "usage": 2,
    "invalid_argument": 3,
    "not_found": 4,
    "already_exists": 5,
    "conflict": 6,
    "corrupt": 7,
    "unavailable": 8,
    "io_error": 9,
    "unsupported": 10,
    "permission_denied": 11,
}


def write(path: pathlib.Path, data: str | bytes) -> pathlib.Path:
    """Writes a test input file, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def jsonl(*records: dict) -> str:
    """Records as JSON Lines text."""
    return "".join(json.dumps(r) + "\n" for r in records)


def dreamdb_binary() -> pathlib.Path:
    return pathlib.Path(os.environ.get("DREAMDB_BIN", REPO / "build/dev/cli/dreamdb")).resolve()


# A loopback port nothing listens on (discard): an s3:// URI in a test that names no
# endpoint fails fast here instead of reaching for a public endpoint.
LOCAL_CLOSED_ENDPOINT = "http://127.0.0.1:9"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a dreamdb child: no inherited DREAMDB_STORE or AWS settings, and
    an s3:// URI without an endpoint goes to a closed port on 127.0.0.1 (tests never send
    traffic off this machine)."""
    env = {k: v for k, v in os.environ.items()
           if k != "DREAMDB_STORE" and not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = LOCAL_CLOSED_ENDPOINT
    # Sanitizer builds: fail loudly, but leak checking at exit only slows the transcripts.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    env.update(extra)
    return env


@dataclass
class Run:
    """One finished dreamdb invocation."""

    args: list[str]
    code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode()

    @property
    def err(self) -> str:
        return self.stderr.decode()

    def json(self) -> Any:
        """stdout as exactly one JSON object on one line."""
        lines = self.out.splitlines()
        assert len(lines) == 1, f"expected one JSON line, got {self.out!r}"
        value = json.loads(lines[0])
        assert isinstance(value, dict)
        return value

    def jsonl(self) -> list[Any]:
        """stdout as JSON Lines (listings)."""
        return [json.loads(line) for line in self.out.splitlines()]

    def error_json(self) -> dict[str, Any]:
        """stderr as the JSON error object; stdout must be empty."""
        assert self.stdout == b"", self.stdout
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one JSON line on stderr, got {self.err!r}"
        value = json.loads(lines[0])
        assert set(value) == {"error"}
        assert set(value["error"]) == {"code", "exit_code", "message"}
        assert value["error"]["exit_code"] == self.code
        return value["error"]

    def __repr__(self) -> str:
        return (f"Run(args={self.args!r}, code={self.code}, stdout={self.stdout[:500]!r}, "
                f"stderr={self.stderr[:500]!r})")


class Cli:
    """Runs dreamdb against one store."""

    def __init__(self, binary: pathlib.Path, store_uri: str, cwd: pathlib.Path):
        self.binary = binary
        self.store_uri = store_uri
        self.cwd = cwd

    def run(self, *args: str, input: bytes | None = None, store: bool = True,
            env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        argv = [str(self.binary)]
        if store:
            argv += ["--store", self.store_uri]
        argv += list(args)
        p = subprocess.run(argv, input=input, capture_output=True, cwd=self.cwd,
                           env=env if env is not None else clean_env(), timeout=timeout)
        return Run(argv, p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, **kwargs: Any) -> Run:
        r = self.run(*args, **kwargs)
        assert r.code == 0, r
        return r

    def fails(self, code: str, *args: str, **kwargs: Any) -> Run:
        """Runs and asserts the exit code for `code`; returns the run for more checks."""
        r = self.run(*args, **kwargs)
        assert r.code == EXIT[code], r
        assert r.stdout == b"", r
        if "--json" not in args:
            assert r.err.startswith("dreamdb: error: "), r
        return r

    def put(self, data: bytes) -> str:
        return self.ok("object", "put", "-", input=data).out.strip()
