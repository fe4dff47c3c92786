# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Hostile HTTP requests against `dreamdb serve` (spec/30-http-api.md): path traversal,
huge and malformed headers and request lines, bad JSON (deep nesting included), bad
vectors, unknown or hostile dataset/ref names, lying Content-Length, oversized chunked
bodies. Every case is sent over a raw socket to a server on 127.0.0.1. Each must be
answered with a 4xx (a JSON error when the server got as far as routing) or a closed
connection, never a 5xx, a crash or a sanitizer report; afterwards the server still
answers /api/v1/health, no file outside the store or web root was served, and the
store's files are byte for byte as before."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cli"))
sys.path.insert(0, str(HERE.parent / "soak"))

from cli_harness import clean_env, dreamdb_binary  # noqa: E402
from soak import digest_dir  # noqa: E402

SECRET = "top-secret-outside-the-root"


# Cases whose request never ends by itself: the client half-closes after sending.
HALF_CLOSE = {"body.content_length_lies", "headers.garbage", "headers.no_version",
              "headers.binary", "body.content_length_huge", "body.content_length_negative"}


def raw(port: int, data: bytes, half_close: bool = False, timeout: float = 10) -> bytes:
    """Sends `data` and reads until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while not complete(out) and (chunk := s.recv(65536)):
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def complete(reply: bytes) -> bool:
    """Whether `reply` holds one whole response (so a kept-alive connection need not be
    waited out)."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode()


def post(path: str, body: bytes, ctype: str = "application/json", extra: str = "") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode() + body


SEARCH = "/api/v1/datasets/d/search?field=e"

CASES: dict[str, bytes] = {
    # Path traversal out of the web root and the store.
    "traversal.dotdot": get("/../../secret.txt"),
    "traversal.dotdot_deep": get("/web/../../../../../../etc/passwd"),
    "traversal.encoded_dots": get("/%2e%2e/%2e%2e/secret.txt"),
    "traversal.encoded_slash": get("/..%2f..%2fsecret.txt"),
    "traversal.encoded_backslash": get("/..%5c..%5csecret.txt"),
    "traversal.backslash": get("/..\\..\\secret.txt"),
    "traversal.nul": get("/index.html%00.txt"),
    "traversal.dataset_dotdot": get("/api/v1/datasets/../refs"),
    "traversal.dataset_encoded": get("/api/v1/datasets/..%2f..%2fd/refs"),
    "traversal.ref_dotdot": get("/api/v1/datasets/d/records?ref=../../d/branches/main"),
    "traversal.ref_encoded": get("/api/v1/datasets/d/records?ref=..%2F..%2Fsecret"),
    "traversal.blob_field": get("/api/v1/datasets/d/blob/0/..%2f..%2fsecret"),
    "traversal.sweep": get("/api/v1/datasets/d/sweeps/..%2f..%2fx"),
    "traversal.absolute": get("http://127.0.0.1/../../secret.txt"),
    # Names that are not names.
    "names.unknown_dataset": get("/api/v1/datasets/nope/records"),
    "names.long_dataset": get("/api/v1/datasets/" + "a" * 5000 + "/refs"),
    "names.control_dataset": get("/api/v1/datasets/d%1b%5b31m/refs"),
    "names.utf8_dataset": get("/api/v1/datasets/%C3%A9t%C3%A9/refs"),
    "names.bad_utf8_ref": get("/api/v1/datasets/d/records?ref=%ff%fe"),
    "names.control_ref": get("/api/v1/datasets/d/records?ref=%1b%5b2J"),
    "names.anchor_overflow": get("/api/v1/datasets/d/records/99999999999999999999999"),
    "names.anchor_max": get("/api/v1/datasets/d/records?after=18446744073709551615"),
    "names.after_overflow": get("/api/v1/datasets/d/records?after=18446744073709551616"),
    # Headers and request lines.
    "headers.huge_line": get("/api/v1/health", "X-Big: " + "a" * 100_000 + "\r\n"),
    "headers.many": get("/api/v1/health", "".join(f"X-{i}: v\r\n" for i in range(20_000))),
    "headers.huge_uri": get("/api/v1/datasets/d/records?where=" + "a" * 200_000),
    "headers.garbage": b"GARBAGE\r\n\r\n",
    "headers.no_version": b"GET /api/v1/health\r\n\r\n",
    "headers.binary": bytes(range(256)) * 16,
    "headers.bad_method": get("/api/v1/health").replace(b"GET", b"FOO", 1),
    "headers.delete": get("/api/v1/datasets/d").replace(b"GET", b"DELETE", 1),
    "headers.bad_auth": get("/api/v1/datasets", "Authorization: Bearer \x01\x02\r\n"),
    "headers.range_past_end": get("/api/v1/datasets/d/blob/0/b", "Range: bytes=999999-\r\n"),
    "headers.range_garbage": get("/api/v1/datasets/d/blob/0/b", "Range: bytes=9-1,zz\r\n"),
    "headers.many_where": get("/api/v1/datasets/d/records?" + "&".join(["where=n%3D%3D1"] * 40)),
    # Bodies and vectors.
    "body.bad_json": post(SEARCH, b"{\"vector\": [1, 2,"),
    "body.deep_json": post(SEARCH, b"[" * 500_000 + b"]" * 500_000),
    "body.deep_object": post(SEARCH, b'{"a":' * 200_000 + b"1" + b"}" * 200_000),
    "body.not_object": post(SEARCH, b"[1, 2, 3, 4]"),
    "body.vector_strings": post(SEARCH, b'{"vector": ["1", "2", "3", "4"]}'),
    "body.vector_nan": post(SEARCH, b'{"vector": [NaN, 1, 1, 1]}'),
    "body.vector_huge_number": post(SEARCH, b'{"vector": [1e400, 1, 1, 1]}'),
    "body.vector_wrong_dim": post(SEARCH, b'{"vector": [1, 2, 3]}'),
    "body.vector_too_many_dims": post(SEARCH, json.dumps({"vector": [0.5] * 70_000}).encode()),
    "body.raw_odd_length": post(SEARCH, b"\x00\x00\x80", "application/octet-stream"),
    "body.raw_inf": post(SEARCH, b"\x00\x00\x80\x7f" * 4, "application/octet-stream"),
    "body.too_large": post(SEARCH, b"0" * (2 << 20), "application/octet-stream"),
    "body.content_length_lies": (
        f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\nConnection: close\r\n\r\n{\"vector\": [1").encode(),
    "body.content_length_negative": (
        f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n").encode(),
    "body.content_length_huge": (
        f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"
    ).encode(),
    "body.chunked_too_large": (
        f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    + (b"100000\r\n" + b"\x00" * 0x100000 + b"\r\n") * 3 + b"0\r\n\r\n",
    "body.no_length": (f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                       "\r\n\r\n" + "[1," * 100_000).encode(),
    "body.chunked_garbage": (
        f"POST {SEARCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode(),
    "body.wrong_type": post(SEARCH, b"<x/>", "application/xml"),
    "body.post_elsewhere": post("/api/v1/datasets/d/records", b"{}"),
    "body.search_missing_field": post("/api/v1/datasets/d/search?field=nope", b'{"vector":[1]}'),
    "body.search_k_huge": post(SEARCH + "&k=4294967297", b'{"vector":[1,1,1,1]}'),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    binary = dreamdb_binary()
    root = tmp_path_factory.mktemp("hostile_serve")
    store = root / "store"
    web = root / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>app</title>")
    (root / "secret.txt").write_text(SECRET)
    (root / "schema.json").write_text(json.dumps({"fields": [
        {"name": "n", "type": "int64"}, {"name": "e", "type": "embedding", "dim": 4},
        {"name": "b", "type": "blob", "mime": "text/html", "optional": True}]}))

    def run(*args, input=None):
        p = subprocess.run([str(binary), "--store", str(store), *args], input=input,
                           capture_output=True, env=clean_env(), timeout=120)
        assert p.returncode == 0, p.stderr

    run("create", "d", "--schema", str(root / "schema.json"))
    recs = [{"anchor": a, "n": a, "e": [a + 1.0, 0.5, 0.25, 1.0],
             "b": {"base64": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}} for a in range(8)]
    run("ingest", "d", "-", input="".join(json.dumps(r) + "\n" for r in recs).encode())
    before = digest_dir(store)
    proc = subprocess.Popen([str(binary), "--json", "--store", str(store), "serve", "--port",
                             "0", "--web-root", str(web)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    port = json.loads(proc.stdout.readline())["port"]
    yield port, proc
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=20)
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    assert rc == 0, err
    assert "Sanitizer" not in err and "runtime error" not in err, err
    assert digest_dir(store) == before


@pytest.mark.parametrize("cid", list(CASES))
def test_hostile_request(cid: str, served) -> None:
    port, proc = served
    reply = raw(port, CASES[cid], half_close=cid in HALF_CLOSE)
    assert proc.poll() is None, f"{cid} stopped the server"
    assert SECRET.encode() not in reply, f"{cid} served a file outside the web root"
    assert b"<script>" not in reply or b"attachment" in reply, reply[:400]
    if reply:
        status_line = reply.split(b"\r\n", 1)[0]
        parts = status_line.split()
        assert len(parts) >= 2 and parts[0].startswith(b"HTTP/1."), reply[:200]
        status = int(parts[1])
        assert status < 500, (cid, reply[:400])
        head, _, body = reply.partition(b"\r\n\r\n")
        if status >= 400 and b"application/json" in head:
            if b"transfer-encoding: chunked" not in head.lower():
                err = json.loads(body)["error"]
                assert err["code"] and err["message"] and err["status"] == status
    health = raw(port, get("/api/v1/health"))
    assert health.startswith(b"HTTP/1.1 200"), (cid, health[:200])


def test_unbounded_bodies_are_refused_before_reading(served) -> None:
    port, _ = served
    for cid, code in [("body.chunked_too_large", b"411"), ("body.no_length", b"411"),
                      ("headers.many", b"431"), ("body.too_large", b"413")]:
        reply = raw(port, CASES[cid], half_close=cid in HALF_CLOSE)
        assert reply.split(b"\r\n", 1)[0].split()[1] == code, (cid, reply[:300])


def test_html_blob_is_never_served_inline(served) -> None:
    port, _ = served
    reply = raw(port, get("/api/v1/datasets/d/blob/0/b"))
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"content-type: application/octet-stream" in head
    assert b"content-disposition: attachment" in head
    assert b"x-dreamdb-mime: text/html" in head
    assert b"content-security-policy: sandbox" in head
