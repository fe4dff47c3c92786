# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Shared fixtures for the Python-side tests (run by scripts/test.sh).

Environment (all optional, scripts/test.sh sets them):
  DREAMDB_SOURCE_DIR  repository root (default: two levels above this file)
  DREAMDB_BIN         the `dreamdb` CLI to test (default: .venv/bin/dreamdb, then
                      build/release/cli/dreamdb); tests that need it fail when absent
"""

import os
import pathlib
import shutil
import uuid

import pytest

# The local S3 server's test credentials (scripts/s3_server.sh's env file), kept for the
# `s3_store` and `s3_test_credentials` fixtures before the AWS settings are cleared below.
S3_CREDENTIALS = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                  if k in os.environ and os.environ.get("DREAMDB_S3_ENDPOINT")}
# Kept under other names too, for tests outside this directory that run in the same
# pytest session (tests/cli/test_cli_jobs.py) after the clearing below.
for _k, _v in S3_CREDENTIALS.items():
    os.environ["DREAMDB_TEST_" + _k] = _v

# An s3:// URI in a test that names no endpoint goes to a closed loopback port, never to a
# public endpoint; inherited AWS settings do not leak into the tests.
for _k in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_k]
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"


def _source_dir() -> pathlib.Path:
    env = os.environ.get("DREAMDB_SOURCE_DIR")
    if env:
        return pathlib.Path(env).resolve()
    return pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def source_dir() -> pathlib.Path:
    """The repository root."""
    return _source_dir()


@pytest.fixture(scope="session")
def vectors_dir(source_dir: pathlib.Path) -> pathlib.Path:
    """spec/vectors: the golden vectors every implementation is checked against."""
    return source_dir / "spec" / "vectors"


@pytest.fixture(scope="session")
def b3sum() -> str:
    """Debian's b3sum, the independent BLAKE3 oracle (scripts/bootstrap.sh installs it)."""
    path = shutil.which("b3sum")
    if path is None:
        pytest.fail("b3sum is not installed: run scripts/bootstrap.sh")
    return path


@pytest.fixture(scope="session")
def dreamdb_bin(source_dir: pathlib.Path) -> str:
    """Path of the dreamdb CLI; fails the test when none is built."""
    env = os.environ.get("DREAMDB_BIN")
    if env:
        if not os.access(env, os.X_OK):
            pytest.fail(f"DREAMDB_BIN={env!r} is not an executable file")
        return env
    for candidate in (source_dir / ".venv" / "bin" / "dreamdb",
                      source_dir / "build" / "release" / "cli" / "dreamdb"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("no dreamdb CLI built (run scripts/build.sh or set DREAMDB_BIN)")


# On-demand tests (marked `ondemand_torch2`): they need a current PyTorch 2.x and torchdata,
# which CI does not install (PyPI's torch pulls GBs of CUDA libraries). They are
# deselected (not collected, not skipped) unless DREAMDB_TORCH2_TESTS=1; see
# tests/python/test_torch2_stateful.py for the command.
def pytest_configure(config):
    config.addinivalue_line("markers", "ondemand_torch2: needs PyTorch 2.x + torchdata; "
                            "runs only with DREAMDB_TORCH2_TESTS=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DREAMDB_TORCH2_TESTS") == "1":
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("ondemand_torch2") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def s3_test_credentials(monkeypatch):
    """Sets the local S3 test server's credentials (scripts/s3_server.sh) for one test."""
    for k, v in S3_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    return dict(S3_CREDENTIALS)


@pytest.fixture
def s3_store(monkeypatch) -> str:
    """A fresh s3:// store URI (a new prefix) on the local S3 server that scripts/test.sh
    runs (DREAMDB_S3_ENDPOINT, DREAMDB_S3_BUCKET and its credentials, which this fixture
    puts back into the environment for the test and its child processes). Without a
    server the test is skipped when run by hand, and fails under CI or
    DREAMDB_REQUIRE_S3=1."""
    endpoint = os.environ.get("DREAMDB_S3_ENDPOINT")
    bucket = os.environ.get("DREAMDB_S3_BUCKET")
    if not endpoint or not bucket:
        if os.environ.get("DREAMDB_REQUIRE_S3") == "1" or os.environ.get("CI"):
            pytest.fail("DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET unset (scripts/s3_server.sh)")
        pytest.skip("no local S3 server (scripts/s3_server.sh start DIR; source DIR/env)")
    for k, v in S3_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    return f"s3://{bucket}/py-{uuid.uuid4().hex}?endpoint={endpoint}"
