# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""s3:// through the fault-injecting proxy (tests/soak/s3_fault_proxy.py) in front of the
local S3 server (scripts/s3_server.sh): resets before and after the server applied a
request, truncated bodies, delays, 500, 503 SlowDown, 409 and 412 to conditional writes.

Commits either land or fail with a clear error (exit 6, 8 or 9), never leave the store
corrupt; afterwards, through a clean connection, `verify` passes and every acknowledged
commit reads back; reads through the proxy return exactly the stored bytes or a clear
error. The soak operation `s3_fault` adds random kill -9 on top.

Needs DREAMDB_S3_ENDPOINT, DREAMDB_S3_BUCKET and the server's AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (source the env file scripts/s3_server.sh writes); under CI or
DREAMDB_REQUIRE_S3=1 their absence fails the tests. $DREAMDB_SOAK_S3_TRIALS sets the soak
trials (default 6), DREAMDB_S3_FAULT_COMMITS the commits per fault (default 3)."""

from __future__ import annotations

import json
import os
import pathlib
import random
import time

import pytest

from cli_harness import Cli, clean_env
from s3_fault_proxy import FAULTS, FaultConfig, FaultProxy
from soak import NAME, SCHEMA, Soak, jsonl, record, summarize



COMMITS = int(os.environ.get("DREAMDB_S3_FAULT_COMMITS", "3"))


def s3_env() -> dict[str, str]:
    endpoint = os.environ.get("DREAMDB_S3_ENDPOINT")
    bucket = os.environ.get("DREAMDB_S3_BUCKET")
    if not endpoint or not bucket:
        if os.environ.get("DREAMDB_REQUIRE_S3") == "1" or os.environ.get("CI"):
            pytest.fail("DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET unset (scripts/s3_server.sh)")
        pytest.skip("no local S3 server (scripts/s3_server.sh start DIR; source DIR/env)")
    return {"endpoint": endpoint, "bucket": bucket}


@pytest.fixture
def s3() -> dict[str, str]:
    return s3_env()


def credentials() -> dict[str, str]:
    return {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if k in os.environ}


def stores(s3: dict[str, str], proxy: FaultProxy, tag: str, binary: pathlib.Path,
           cwd: pathlib.Path) -> tuple[Cli, Cli]:
    """(through the proxy, clean) CLIs on one fresh prefix."""
    prefix = f"faults-{tag}-{os.getpid()}-{time.time_ns()}"
    base = f"s3://{s3['bucket']}/{prefix}?endpoint="
    return (Cli(binary, base + proxy.endpoint, cwd), Cli(binary, base + s3["endpoint"], cwd))


def run(cli: Cli, *args: str, **kw):
    return cli.run(*args, env=clean_env(**credentials()), **kw)


def clear_error(r) -> bool:
    """A failure a caller can act on: conflict, unavailable or io_error, reported as the
    CLI reports errors (the last stderr line, text or --json)."""
    if r.code not in (6, 8, 9) or r.stdout:
        return False
    last = r.err.strip().splitlines()[-1] if r.err.strip() else ""
    if last.startswith("{"):
        error = json.loads(last)["error"]
        return error["exit_code"] == r.code and bool(error["message"])
    return last.startswith("dreamdb: error: ")


# The conditional-write probe (spec/05 §9.5) failed every first ref write whose PUT answer
# was lost ("HTTP 412" on the retry of its own create-only PUT) or that met a 409: half the
# commits through a lossy connection failed, and every one meeting a 409.
@pytest.mark.parametrize("fault", ["reset_after", "error_after", "conflict_409"])
def test_probe_survives_lost_answers_and_409s(s3, dreamdb_bin: pathlib.Path,
                                              tmp_path: pathlib.Path, fault: str):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    with FaultProxy(s3["endpoint"], FaultConfig(**{fault: 0.3}), seed=11) as proxy:
        for i in range(3):
            via, clean = stores(s3, proxy, f"probe-{fault}-{i}", dreamdb_bin, tmp_path)
            r = run(via, "create", NAME, "--schema", str(schema))
            assert r.code == 0, r
            r = run(via, "ingest", NAME, "-", input=jsonl([record(a) for a in range(5)]))
            assert r.code == 0, r
            assert run(clean, "verify").code == 0
        assert proxy.snapshot()["by_fault"][fault] > 0


@pytest.mark.parametrize("fault", FAULTS)
def test_commits_through_fault_proxy_land_or_fail_clearly(s3, dreamdb_bin: pathlib.Path,
                                                          tmp_path: pathlib.Path, fault: str):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    config = FaultConfig(**{fault: 0.35}, delay_ms=(20, 150))
    with FaultProxy(s3["endpoint"], config, seed=FAULTS.index(fault) + 1) as proxy:
        via, clean = stores(s3, proxy, fault, dreamdb_bin, tmp_path)
        assert run(clean, "create", NAME, "--schema", str(schema)).code == 0
        acked: list[tuple[str, int]] = []
        landed = failed = 0
        count = 0
        for i in range(COMMITS):
            recs = [record(a, i) for a in range(i * 10, i * 10 + 10)]
            r = run(via, "--json", "ingest", NAME, "-", input=jsonl(recs))
            if r.code == 0:
                landed += 1
                count += 10
                acked.append((r.json()["head"], count))
            else:
                assert clear_error(r), r
                failed += 1
                # An ingest that failed may still have landed (an ambiguous last answer).
                count = run(clean, "--json", "count", NAME).json()["count"]
        # Through a clean connection: the store is intact and every acknowledged commit
        # reads back with its count.
        v = run(clean, "--json", "verify")
        assert v.code == 0, v
        for head, n in acked:
            r = run(clean, "--json", "count", NAME, "--at", head)
            assert r.code == 0 and r.json()["count"] == n, (head, n, r)
        # Reads through the proxy: the same bytes, or a clear error.
        want = run(clean, "cat", NAME, "--blobs-base64").stdout
        for _ in range(2):
            r = run(via, "cat", NAME, "--blobs-base64")
            assert (r.code == 0 and r.stdout == want) or clear_error(r), r
        stats = proxy.snapshot()
    print(f"{fault}: {landed} landed, {failed} failed clearly; {stats['requests']} requests, "
          f"{stats['by_fault'][fault]} faults")
    assert stats["by_fault"][fault] > 0
    # Every request is retried (8 attempts): at this rate nearly every commit lands.
    assert landed >= COMMITS - 1, f"{fault}: only {landed} of {COMMITS} commits landed"


def test_soak_s3_fault_operation(s3, dreamdb_bin: pathlib.Path, tmp_path: pathlib.Path):
    import soak
    trials = int(os.environ.get("DREAMDB_SOAK_S3_TRIALS", "6"))
    seed = int(os.environ.get("DREAMDB_SOAK_SEED", "0")) or random.randrange(1, 2**31)
    print(f"\nsoak seed {seed}")
    ops = [o for o in soak.OPERATIONS if o.name == "s3_fault"]
    stats = Soak(dreamdb_bin, tmp_path, seed, operations=ops).run(trials)
    print(summarize(stats))
    assert stats["trials"] == trials and stats["verify_ok"] == trials
    assert sum(stats["s3_proxy"]["by_fault"].values()) > 0
