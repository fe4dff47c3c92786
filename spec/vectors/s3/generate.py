#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/s3/sigv4.json: AWS Signature Version 4 vectors for the requests
the s3:// backend sends (spec/05-backend.md §9.6.1), signed by botocore, the reference
implementation of the AWS SDK for Python.

Each case gives the inputs (method, host, the raw object key, raw query parameters as
`name=value` lines, the headers to sign as `Name: value` lines, the payload hash mode, credentials, region and a fixed time) and
botocore's canonical request, string to sign and Authorization header. The C++ signer
(src/store/s3/sigv4.cc) must reproduce all three (src/store/s3/sigv4_test.cc).

The URL handed to botocore is encoded the way botocore's own S3 serializer encodes keys
(`percent_encode(key, safe='/~')`) and query values (`safe='-_.~'`); botocore then signs
the path as given (S3 paths are not normalised) and sorts the query.

Usage:
    python3 spec/vectors/s3/generate.py           # rewrite sigv4.json
    python3 spec/vectors/s3/generate.py --check   # exit 1 if sigv4.json is stale

The output is deterministic (fixed times, no randomness).
"""

import datetime
import hashlib
import json
import pathlib
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "sigv4.json"

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/+=="

CASES = [
    # name, method, scheme, host, path (raw), query (raw pairs), headers, body, payload, token
    ("get_object", "GET", "https", "examplebucket.s3.amazonaws.com", "/test.txt", [],
     [], b"", "sha256", ""),
    ("ranged_get", "GET", "https", "examplebucket.s3.amazonaws.com", "/test.txt", [],
     [("Range", "bytes=0-9")], b"", "sha256", ""),
    ("path_style_local", "GET", "http", "127.0.0.1:8333",
     "/bucket/ds/objects/ab/abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx", [],
     [], b"", "sha256", ""),
    ("key_encoding", "PUT", "http", "127.0.0.1:8333", "/bucket/a b~c+d=e/f%g&h?i#j\u00e9", [],
     [], b"payload", "sha256", ""),
    ("put_unsigned_payload", "PUT", "https", "examplebucket.s3.amazonaws.com",
     "/objects/ab/key", [], [], b"some bytes", "unsigned", ""),
    ("session_token", "HEAD", "https", "examplebucket.s3.us-west-2.amazonaws.com",
     "/refs/ds~branches~main", [], [], b"", "sha256", TOKEN),
    ("create_if_none_match", "PUT", "http", "127.0.0.1:8333", "/bucket/refs/ds~branches~main",
     [], [("If-None-Match", "*")],
     b"dreamdb-ref 1\ntarget x\nwriter 00000000000000000000000000000000\n", "sha256", ""),
    ("swap_if_match", "PUT", "http", "127.0.0.1:8333", "/bucket/refs/main", [],
     [("If-Match", '"9b2cf535f27731c974343645a3985328"')], b"new ref", "sha256", ""),
    ("delete_if_match", "DELETE", "http", "127.0.0.1:8333", "/bucket/refs/main", [],
     [("If-Match", '"9b2cf535f27731c974343645a3985328"')], b"", "sha256", ""),
    ("list_v2_sorted_query", "GET", "http", "127.0.0.1:8333", "/bucket",
     [("prefix", "ds/objects/a"), ("list-type", "2"), ("max-keys", "1000"),
      ("continuation-token", "1/abc+def= ~x")], [], b"", "sha256", ""),
    ("list_v2_empty_prefix", "GET", "https", "examplebucket.s3.amazonaws.com", "/",
     [("list-type", "2"), ("prefix", "")], [], b"", "sha256", TOKEN),
    ("multipart_upload_part", "PUT", "http", "127.0.0.1:8333", "/bucket/big",
     [("uploadId", "VXBsb2FkIElE+/="), ("partNumber", "2")], [], b"part two", "sha256", ""),
    ("multipart_create", "POST", "http", "127.0.0.1:8333", "/bucket/big", [("uploads", "")],
     [], b"", "sha256", ""),
]

WHEN = datetime.datetime(2026, 12, 7, 1, 2, 3)


def sign(case):
    name, method, scheme, host, path, query, headers, body, payload, token = case
    url = f"{scheme}://{host}{percent_encode(path, safe='/~')}"
    if query:
        url += "?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    request.context["client_config"] = Config(
        s3={"payload_signing_enabled": payload == "sha256"})
    creds = Credentials(KEY_ID, SECRET, token or None)
    region = "us-west-2" if "us-west-2" in host else "us-east-1"
    auth = botocore.auth.S3SigV4Auth(creds, "s3", region)
    seen = {}
    original = auth.string_to_sign

    def record(req, canonical_request):
        seen["canonical"] = canonical_request
        seen["sts"] = original(req, canonical_request)
        return seen["sts"]

    auth.string_to_sign = record
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN):
        auth.add_auth(request)
    canonical, string_to_sign = seen["canonical"], seen["sts"]
    payload_hash = (hashlib.sha256(body).hexdigest() if payload == "sha256"
                    else "UNSIGNED-PAYLOAD")
    assert request.headers["X-Amz-Content-SHA256"] == payload_hash
    return {
        "name": name,
        "method": method,
        "host": host,
        "path": path,
        "query": "\n".join(f"{k}={v}" for k, v in query),
        "headers": "\n".join(f"{k}: {v}" for k, v in headers),
        "payload_sha256": payload_hash,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "session_token": token,
        "region": region,
        "unix_seconds": str(int(WHEN.replace(tzinfo=datetime.timezone.utc).timestamp())),
        "url_path_and_query": url[len(scheme) + 3 + len(host):],
        "canonical_request": canonical,
        "string_to_sign": string_to_sign,
        "authorization": request.headers["Authorization"],
    }


def main() -> int:
    text = json.dumps([sign(c) for c in CASES], indent=1, ensure_ascii=True) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run {__file__}")
            return 1
        print(f"ok {OUT.name}")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
