# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""A credential written into a store URI is never printed (spec/05-backend.md §2.6).

`--store s3://KEY:SECRET@bucket/...` (or the same in $DREAMDB_STORE, or a secret query
parameter) used to come back verbatim in the error message, in text and in --json.
"""

from __future__ import annotations

import json

import pytest

from cli_harness import Cli, clean_env

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET"

URIS = [
    f"s3://AKIAIOSFODNN7EXAMPLE:{SECRET}@bucket/prefix",
    f"s3://bucket/prefix?X-Amz-Signature={SECRET}&region=eu-west-1",
    f"S3://user:{SECRET}@bucket",
    f"file://user:{SECRET}@host/store",
    f"https://user:{SECRET}@example.com/store",
    f"s3://bucket/p?aws_secret_access_key={SECRET}",
]


@pytest.mark.parametrize("uri", URIS)
@pytest.mark.parametrize("command", [["count", "ds"], ["verify"], ["create", "ds", "--schema",
                                                                   "-"]])
def test_store_uri_credentials_are_not_echoed(cli: Cli, uri: str, command: list[str]):
    schema = json.dumps({"fields": [{"name": "x", "type": "int64"}]}).encode()
    for json_flag in ([], ["--json"]):
        r = cli.run("--store", uri, *json_flag, *command, store=False, input=schema)
        assert r.code != 0, r
        assert SECRET not in r.err and SECRET not in r.out, r
        assert "***" in r.err, r
        if json_flag:
            assert SECRET not in r.error_json()["message"]


def test_store_uri_credentials_from_env_are_not_echoed(cli: Cli):
    for uri in URIS:
        r = cli.run("count", "ds", store=False, env=clean_env(DREAMDB_STORE=uri))
        assert r.code != 0, r
        assert SECRET not in r.err, r
        assert "***" in r.err, r
