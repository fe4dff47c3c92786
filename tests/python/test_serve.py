# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`dreamdb serve` (spec/30-http-api.md): every endpoint of the JSON API on a small store
with scalars, an image blob, an indexed embedding, an array, snapshots, branches and a
sweep; bad requests get the JSON errors of spec/30 §5; the token rule of §4 for
non-loopback binds. Each server runs on an ephemeral 127.0.0.1 port and is stopped in
teardown."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import signal
import struct
import subprocess
import time
import urllib.parse

import numpy as np
import pytest

import dreamdb

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")
N = 40
DIM = 8


class Server:
    """A `dreamdb serve` process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, dreamdb_bin: str, store: str, *args: str, env=None):
        self.proc = subprocess.Popen(
            [dreamdb_bin, "--json", "--store", store, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait(timeout=10)
            raise RuntimeError(f"serve did not start: {err}")
        info = json.loads(line)
        self.host, self.port = info["host"], info["port"]
        self.info = info

    def request(self, method: str, path: str, body=None, headers=None, host="127.0.0.1"):
        conn = http.client.HTTPConnection(host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def get(self, path: str, **kw):
        status, headers, data = self.request("GET", path, **kw)
        return status, headers, data

    def json(self, path: str, expect: int = 200, **kw):
        status, headers, data = self.get(path, **kw)
        assert status == expect, (path, status, data[:500])
        assert headers["content-type"].startswith("application/json"), headers
        return json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        # A sanitizer build (the dev preset's CLI) reports here.
        assert "Sanitizer" not in err and "runtime error" not in err, err


@pytest.fixture(scope="module")
def store(tmp_path_factory, dreamdb_bin) -> str:
    """A file:// store: dataset "pets" (main with N records, snapshot v1 before the last
    commit, branch "exp" with changed scores, a 3-run sweep "lr"), and dataset "other"."""
    root = tmp_path_factory.mktemp("serve")
    uri = f"file://{root}/store"
    schema = (dreamdb.Schema().add_int("label").add_float("score").add_string("name")
              .add_image("img", required=False).add_embedding("emb", DIM)
              .add_array("arr", "f32", [2, 3], required=False))
    ds = dreamdb.Dataset.create("pets", schema, store=uri)
    rng = np.random.default_rng(7)
    emb = rng.standard_normal((N, DIM)).astype(np.float32)
    rows = [{"label": i % 3, "score": i / 10, "name": f"pet-{i}",
             "img": PNG if i % 2 == 0 else None, "emb": emb[i],
             "arr": np.arange(6, dtype=np.float32).reshape(2, 3) + i}
            for i in range(N - 5)]
    ds.append_many(rows, anchors=list(range(N - 5)))
    ds.snapshot("v1")
    ds.append_many([{"label": i % 3, "score": i / 10, "name": f"pet-{i}", "emb": emb[i]}
                    for i in range(N - 5, N)], anchors=list(range(N - 5, N)))
    ds.build_index("emb", cells=2)
    ds.set_meta({"owner": "tests"})
    exp = ds.create_branch("exp")
    exp.add_scalar_layer("score", list(range(5)), [9.0, 9.0, 9.0, 9.0, 9.0])
    ds.sweep_init("lr", 3, params=[{"lr": "0.1"}, {"lr": "0.01"}, {"lr": "0.001"}],
                  metric="score", goal="max")
    for i in range(3):
        run = dreamdb.Dataset.open("pets", store=uri, branch=f"sweep/lr/run-{i}")
        run.add_scalar_layer("score", [0, 1], [float(i), float(i)])
    other = dreamdb.Dataset.create("other", dreamdb.Schema().add_int("x"), store=uri)
    other.append_many([{"x": 1}])
    # A branch made by hand that names a blob, not a manifest (as the plumbing demo does).
    junk = root / "junk.bin"
    junk.write_bytes(b"not a manifest")
    oid = subprocess.run([dreamdb_bin, "--store", uri, "object", "put", str(junk)], check=True,
                         capture_output=True, text=True).stdout.split()[0]
    subprocess.run([dreamdb_bin, "--store", uri, "ref", "create", "junk/branches/main", oid],
                   check=True, capture_output=True)
    return uri


@pytest.fixture(scope="module")
def server(dreamdb_bin, store):
    s = Server(dreamdb_bin, store, "--max-page", "50")
    yield s
    s.stop()


# ---- health, datasets, refs ----

def test_health(server, store):
    h = server.json("/api/v1/health")
    assert h["status"] == "ok" and h["read_only"] is True and h["auth"] is False
    assert h["store"].startswith("file://")


def test_datasets_lists_names_counts_and_refs(server):
    d = server.json("/api/v1/datasets")
    by = {x["name"]: x for x in d["datasets"]}
    assert set(by) == {"pets", "other", "junk"} and d["truncated"] is False
    assert by["junk"]["count"] is None and by["junk"]["error"]["code"] == "corrupt"
    assert "error" not in by["pets"]
    assert by["pets"]["count"] == N and by["pets"]["snapshots"] == 1
    assert by["pets"]["branches"] == 1 + 1 + 3 + 1  # main, exp, 3 runs, sweeps/lr


def test_dataset_describes_schema_index_and_meta(server):
    d = server.json("/api/v1/datasets/pets")
    assert d["count"] == N and d["meta"] == {"owner": "tests"}
    f = {x["name"]: x for x in d["schema"]}
    assert f["img"]["mime"] == "image/png" and f["img"]["optional"] is True
    assert f["emb"]["dim"] == DIM and f["emb"]["index"]["built"] is True
    assert f["arr"]["shape"] == [2, 3] and f["arr"]["dtype"] == "f32"
    v1 = server.json("/api/v1/datasets/pets?ref=v1")
    assert v1["count"] == N - 5 and v1["manifest"] != d["manifest"]
    assert v1["schema"][4]["index"]["built"] is False


def test_refs_lists_branches_and_snapshots(server):
    r = server.json("/api/v1/datasets/pets/refs")
    names = [b["name"] for b in r["branches"]]
    assert names == sorted(names) and "main" in names and "sweep/lr/run-2" in names
    assert [s["name"] for s in r["snapshots"]] == ["v1"]
    assert r["branches"][0]["ref"].startswith("pets/branches/")


# ---- history ----

def test_history_dag_has_deltas_and_every_ref(server):
    h = server.json("/api/v1/datasets/pets/history")
    commits = {c["manifest"]: c for c in h["commits"]}
    heads = {(x["kind"], x["name"]): x["manifest"] for x in h["heads"]}
    assert heads[("snapshot", "v1")] in commits and heads[("branch", "exp")] in commits
    first = [c for c in h["commits"] if c["added"] == N - 5]
    assert len(first) == 1 and first[0]["deleted"] == 0
    exp = commits[heads[("branch", "exp")]]
    assert exp["replaced"] == 5 and exp["added"] == 0 and exp["fields"] == ["score"]
    times = [int(c["time_ns"]) for c in h["commits"]]
    assert times == sorted(times, reverse=True)
    for c in h["commits"]:  # every parent of a listed commit is listed (small history)
        assert all(p in commits for p in c["parents"])
    one = server.json("/api/v1/datasets/pets/history?ref=v1&limit=1")
    assert len(one["commits"]) == 1 and one["truncated"] is True


# ---- records ----

def test_records_page_projection_and_cursor(server):
    p = server.json("/api/v1/datasets/pets/records?limit=15&fields=label,img,emb,arr")
    assert p["fields"] == ["label", "img", "emb", "arr"]
    assert [r["anchor"] for r in p["records"]] == list(range(15)) and p["next"] == "14"
    r0 = p["records"][0]
    assert set(r0) == {"anchor", "anchor_str", "label", "img", "emb", "arr"}
    assert r0["img"]["mime"] == "image/png" and r0["img"]["size"] == len(PNG)
    assert r0["img"]["url"].startswith("/api/v1/datasets/pets/blob/0/img?ref=")
    assert p["records"][1]["img"] is None
    assert r0["emb"]["dim"] == DIM and len(r0["emb"]["head"]) == DIM
    assert r0["arr"] == [[0, 1, 2], [3, 4, 5]]
    seen = [r["anchor"] for r in p["records"]]
    cursor = p["next"]
    while cursor is not None:
        p = server.json(f"/api/v1/datasets/pets/records?limit=15&fields=label&after={cursor}"
                        f"&ref={p['manifest']}")
        seen += [r["anchor"] for r in p["records"]]
        cursor = p["next"]
    assert seen == list(range(N))  # every record once, in anchor order


def test_records_where_filters_with_the_sdk_predicates(server):
    p = server.json("/api/v1/datasets/pets/records?fields=name&where=label%20%3D%3D%201"
                    "&where=score%20%3E%3D%202")
    assert [r["anchor"] for r in p["records"]] == [a for a in range(N) if a % 3 == 1 and a >= 20]
    assert all(set(r) == {"anchor", "anchor_str", "name"} for r in p["records"])
    p = server.json("/api/v1/datasets/pets/records?where=" +
                    urllib.parse.quote("name in ('pet-3', 'pet-7')") + "&fields=label")
    assert [r["anchor"] for r in p["records"]] == [3, 7] and p["next"] is None


def test_records_full_embeddings_and_one_record(server):
    p = server.json("/api/v1/datasets/pets/records?limit=1&fields=emb&embeddings=full")
    assert len(p["records"][0]["emb"]) == DIM
    r = server.json("/api/v1/datasets/pets/records/4")
    assert r["record"]["anchor"] == 4 and r["record"]["name"] == "pet-4"
    assert len(r["record"]["emb"]) == DIM
    r = server.json("/api/v1/datasets/pets/records/4?ref=v1&fields=score")
    assert r["record"] == {"anchor": 4, "anchor_str": "4", "score": 0.4}


def test_records_are_streamed_chunked(server):
    status, headers, data = server.get("/api/v1/datasets/pets/records?limit=50")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert len(json.loads(data)["records"]) == N


# ---- blobs ----

def test_blob_bytes_with_content_type(server):
    status, headers, data = server.get("/api/v1/datasets/pets/blob/2/img")
    assert status == 200 and data == PNG
    assert headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in headers["content-security-policy"]


def test_blob_of_null_value_or_non_blob_field_is_an_error(server):
    e = server.json("/api/v1/datasets/pets/blob/1/img", expect=404)["error"]
    assert e["code"] == "not_found" and "no value" in e["message"]
    e = server.json("/api/v1/datasets/pets/blob/1/label", expect=400)["error"]
    assert e["param"] == "field" and "not a blob" in e["message"]
    e = server.json("/api/v1/datasets/pets/blob/999/img", expect=404)["error"]
    assert e["code"] == "not_found"


# ---- compare ----

def test_compare_refs_rows_and_summary(server):
    c = server.json("/api/v1/datasets/pets/compare?refs=main,exp&fields=score&limit=10")
    assert c["refs"] == ["main", "exp"] and len(c["manifests"]) == 2
    assert [x["name"] for x in c["columns"]] == ["score@main", "score@exp"]
    assert len(c["rows"]) == 10 and c["next"] == "9"
    assert c["rows"][0]["score@exp"] == 9.0 and c["rows"][0]["score@main"] == 0.0
    s = c["summary"]
    assert s["complete"] is True and s["anchors"] == N and s["differing"] == 5
    st = s["stats"][0]
    assert st["field"] == "score" and st["differing"] == 5 and st["both"] == N
    d = server.json("/api/v1/datasets/pets/compare?refs=main,exp&fields=score"
                    "&only_differing=1&summary=0")
    assert [r["anchor"] for r in d["rows"]] == [0, 1, 2, 3, 4] and d["summary"] is None


# ---- search ----

def test_search_by_record(server):
    s = server.json("/api/v1/datasets/pets/search?field=emb&anchor=3&k=5&fields=name")
    assert s["metric"] == "cosine" and s["query"] == {"anchor": "3"}
    assert len(s["hits"]) == 5 and all(h["anchor"] != 3 for h in s["hits"])
    assert all("name" in h and "score" in h for h in s["hits"])
    scores = [h["score"] for h in s["hits"]]
    assert scores == sorted(scores, reverse=True)
    with_self = server.json("/api/v1/datasets/pets/search?anchor=3&k=1&include_self=1&exact=1")
    assert with_self["hits"][0]["anchor"] == 3 and with_self["hits"][0]["score"] > 0.999


def test_search_by_uploaded_vector_json_and_float32(server):
    r = server.json("/api/v1/datasets/pets/records/11?fields=emb")
    vec = r["record"]["emb"]
    for body, ctype in [(json.dumps({"vector": vec}), "application/json"),
                        (struct.pack(f"<{DIM}f", *vec), "application/octet-stream")]:
        status, headers, data = server.request(
            "POST", "/api/v1/datasets/pets/search?field=emb&k=3&exact=1", body=body,
            headers={"Content-Type": ctype})
        assert status == 200, data
        s = json.loads(data)
        assert s["hits"][0]["anchor"] == 11 and s["query"] == {"vector": {"dim": DIM}}


def test_search_with_where(server):
    s = server.json("/api/v1/datasets/pets/search?anchor=0&k=50&where=label%20%3D%3D%202"
                    "&fields=label")
    assert s["hits"] and all(h["label"] == 2 for h in s["hits"])


# ---- sweeps ----

def test_sweeps_list_and_summary(server):
    ls = server.json("/api/v1/datasets/pets/sweeps")
    assert [s["sweep"] for s in ls["sweeps"]] == ["lr"]
    assert ls["sweeps"][0]["runs"][1]["params"] == {"lr": "0.01"}
    one = server.json("/api/v1/datasets/pets/sweeps/lr")
    s = one["summary"]
    assert s["metric"] == "score" and s["goal"] == "max"
    assert s["best"]["branch"] == "sweep/lr/run-2" and s["worst"]["branch"] == "sweep/lr/run-0"
    assert [r["params"]["lr"] for r in s["runs"]] == ["0.1", "0.01", "0.001"]
    assert all(r["head"] for r in s["runs"])
    mn = server.json("/api/v1/datasets/pets/sweeps/lr?goal=min")
    assert mn["summary"]["best"]["branch"] == "sweep/lr/run-0"


# ---- cost ----

def test_cost_splits_unique_and_shared_bytes(server):
    c = server.json("/api/v1/datasets/pets/cost")
    by = {(r["kind"], r["name"]): r for r in c["refs"]}
    main, v1, exp = by[("branch", "main")], by[("snapshot", "v1")], by[("branch", "exp")]
    for r in c["refs"]:
        assert r["reachable_bytes"] == r["unique_bytes"] + r["shared_bytes"] > 0
    assert v1["unique_bytes"] == 0  # everything v1 reaches, main reaches too
    assert exp["unique_bytes"] > 0  # its score layer commit
    assert main["shared_bytes"] >= v1["reachable_bytes"]
    assert c["bytes"] >= max(r["reachable_bytes"] for r in c["refs"])
    again = server.json("/api/v1/datasets/pets/cost")
    assert again["cached"] is True and again["refs"] == c["refs"]


# ---- metrics ----

def test_metrics_prometheus_text(server):
    server.json("/api/v1/datasets")
    status, headers, data = server.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    assert 'dreamdb_http_requests_total{endpoint="datasets",status="200"}' in text
    assert 'dreamdb_http_request_duration_seconds_bucket{endpoint="datasets",le="+Inf"}' in text
    gets = [ln for ln in text.splitlines() if ln.startswith('dreamdb_store_requests_total{op="get"}')]
    assert gets and int(gets[0].split()[-1]) > 0
    for line in text.splitlines():  # every sample line is NAME{labels} VALUE
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


# ---- static files ----

def test_static_without_web_root_serves_a_placeholder(server):
    status, headers, data = server.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/api/v1/health" in data


def test_static_files_types_spa_fallback_and_no_escape(dreamdb_bin, store, tmp_path):
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>app</title>")
    (root / "assets" / "app.js").write_text("console.log(1)")
    (root / "assets" / "app.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    s = Server(dreamdb_bin, store, "--web-root", str(root))
    try:
        status, headers, data = s.get("/")
        assert status == 200 and b"app" in data and headers["content-type"].startswith("text/html")
        status, headers, _ = s.get("/assets/app.js")
        assert headers["content-type"].startswith("text/javascript")
        assert s.get("/assets/app.css")[1]["content-type"].startswith("text/css")
        status, _, data = s.get("/datasets/pets")  # a dashboard route
        assert status == 200 and b"<title>app</title>" in data
        assert s.get("/missing.js")[0] == 404
        assert s.get("/link.txt")[0] == 404  # a symlink out of the root
        for path in ["/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
                     "/assets%2f..%2f..%2fsecret.txt"]:
            status, _, data = s.get(path)
            assert status in (400, 404) and b"secret" not in data.replace(b"secret.txt", b"")
    finally:
        s.stop()


# ---- bad requests ----

BAD = [
    ("/api/v1/datasets/nope", 404, "not_found", "dataset"),
    ("/api/v1/datasets/nope/records", 404, "not_found", "dataset"),
    ("/api/v1/datasets/nope/refs", 404, "not_found", "dataset"),
    ("/api/v1/datasets/nope/cost", 404, "not_found", "dataset"),
    ("/api/v1/datasets/pets/records?ref=nope", 404, "not_found", "ref"),
    ("/api/v1/datasets/pets/records?ref=..%2F..", 400, "invalid_argument", "ref"),
    ("/api/v1/datasets/.hidden", 400, "invalid_argument", "dataset"),
    ("/api/v1/datasets/pets/records?limit=0", 400, "invalid_argument", "limit"),
    ("/api/v1/datasets/pets/records?limit=51", 400, "invalid_argument", "limit"),
    ("/api/v1/datasets/pets/records?limit=abc", 400, "invalid_argument", "limit"),
    ("/api/v1/datasets/pets/records?after=-1", 400, "invalid_argument", "after"),
    ("/api/v1/datasets/pets/records?fields=nope", 404, "not_found", "fields"),
    ("/api/v1/datasets/pets/records?fields=label,label", 400, "invalid_argument", "fields"),
    ("/api/v1/datasets/pets/records?where=label%20~%201", 400, "invalid_argument", "where"),
    ("/api/v1/datasets/pets/records?where=emb%20%3D%3D%201", 400, "invalid_argument", "where"),
    ("/api/v1/datasets/pets/records?where=nope%20%3D%3D%201", 400, "invalid_argument", "where"),
    ("/api/v1/datasets/pets/records?embeddings=some", 400, "invalid_argument", "embeddings"),
    ("/api/v1/datasets/pets/records/xyz", 400, "invalid_argument", "anchor"),
    ("/api/v1/datasets/pets/records/999", 404, "not_found", "anchor"),
    ("/api/v1/datasets/pets/blob/0/nope", 404, "not_found", "field"),
    ("/api/v1/datasets/pets/compare?refs=main", 400, "invalid_argument", "refs"),
    ("/api/v1/datasets/pets/compare?refs=main,nope", 404, "not_found", "refs"),
    ("/api/v1/datasets/pets/compare?refs=main,exp&fields=nope", 400, "invalid_argument", "refs"),
    ("/api/v1/datasets/pets/search?field=label&anchor=1", 400, "invalid_argument", "field"),
    ("/api/v1/datasets/pets/search?field=emb", 400, "invalid_argument", "anchor"),
    ("/api/v1/datasets/pets/search?field=emb&anchor=1&k=0", 400, "invalid_argument", "k"),
    ("/api/v1/datasets/pets/search?field=emb&anchor=1&k=1001", 400, "invalid_argument", "k"),
    ("/api/v1/datasets/pets/search?field=emb&anchor=999", 404, "not_found", "anchor"),
    ("/api/v1/datasets/pets/sweeps/nope", 404, "not_found", "sweep"),
    ("/api/v1/datasets/pets/sweeps/a..b%20c", 400, "invalid_argument", "sweep"),
    ("/api/v1/datasets/pets/sweeps/lr?goal=up", 400, "invalid_argument", "goal"),
    ("/api/v1/datasets/pets/history?limit=0", 400, "invalid_argument", "limit"),
    ("/api/v1/datasets/pets/nope", 404, "not_found", None),
    ("/api/v2/datasets", 404, "not_found", None),
    ("/api/v1/nope", 404, "not_found", None),
]


@pytest.mark.parametrize("path,status,code,param", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_a_json_error(server, path, status, code, param):
    e = server.json(path, expect=status)["error"]
    assert e["code"] == code and e["status"] == status and e["message"]
    if param is not None:
        assert e.get("param") == param, e


def test_bad_uploaded_vectors(server):
    cases = [
        (b"{", "application/json", 400, "bad_json"),
        (b'{"vec": [1]}', "application/json", 400, "bad_json"),
        (b'{"vector": [1, "a"]}', "application/json", 400, "bad_json"),
        (json.dumps({"vector": [1.0] * (DIM + 1)}).encode(), "application/json", 400,
         "invalid_argument"),
        (b'{"vector": [1e39, 0, 0, 0, 0, 0, 0, 0]}', "application/json", 400, "invalid_argument"),
        (struct.pack("<3f", 1, 2, 3), "application/octet-stream", 400, "invalid_argument"),
        (b"\x00" * 7, "application/octet-stream", 400, "invalid_argument"),
        (struct.pack(f"<{DIM}f", *([float("nan")] * DIM)), "application/octet-stream", 400,
         "invalid_argument"),
        (b"", "application/octet-stream", 400, "invalid_argument"),
        (b"1,2", "text/csv", 415, "unsupported_media_type"),
        (b"\x00" * ((1 << 20) + 8), "application/octet-stream", 413, "too_large"),
    ]
    for body, ctype, status, code in cases:
        st, headers, data = server.request("POST", "/api/v1/datasets/pets/search?field=emb",
                                           body=body, headers={"Content-Type": ctype})
        assert st == status, (body[:40], ctype, st, data[:300])
        assert json.loads(data)["error"]["code"] == code, data


def test_write_methods_are_refused(server):
    for method in ["PUT", "DELETE", "PATCH"]:
        st, headers, data = server.request(method, "/api/v1/datasets/pets")
        assert st == 405 and json.loads(data)["error"]["code"] == "method_not_allowed"
    st, _, data = server.request("POST", "/api/v1/datasets/pets/records", body=b"{}",
                                 headers={"Content-Type": "application/json"})
    assert st == 405


def test_missing_store_is_an_error_not_a_new_store(dreamdb_bin, tmp_path):
    missing = tmp_path / "nope"
    r = subprocess.run([dreamdb_bin, "--store", f"file://{missing}", "serve", "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and "no DreamDB store" in r.stderr
    assert not missing.exists()


# ---- token (spec/30 §4) ----

def test_non_loopback_bind_needs_a_token(dreamdb_bin, store):
    r = subprocess.run([dreamdb_bin, "--store", store, "serve", "--bind", "0.0.0.0",
                        "--port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--token-file" in r.stderr


def test_token_is_required_and_checked(dreamdb_bin, store, tmp_path):
    short = tmp_path / "short"
    short.write_text("abc\n")
    r = subprocess.run([dreamdb_bin, "--store", store, "serve", "--token-file", str(short),
                        "--port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "16..1024" in r.stderr
    token = "t0ken-" + "x" * 26
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    # Binding every address with a token; the test still talks to 127.0.0.1 only.
    s = Server(dreamdb_bin, store, "--bind", "0.0.0.0", "--token-file", str(tf))
    try:
        assert s.json("/api/v1/health")["auth"] is True  # health needs no token
        st, headers, data = s.get("/api/v1/datasets")
        assert st == 401 and json.loads(data)["error"]["code"] == "unauthorized"
        assert headers["www-authenticate"].startswith("Bearer")
        st, _, data = s.get("/api/v1/datasets", headers={"Authorization": "Bearer wrong"})
        assert st == 401 and b"wrong" in data
        st, _, _ = s.get("/metrics")
        assert st == 401
        ok = s.json("/api/v1/datasets", headers={"Authorization": f"Bearer {token}"})
        assert {d["name"] for d in ok["datasets"]} == {"pets", "other", "junk"}
        assert s.get("/")[0] == 200  # static files hold no data
    finally:
        s.stop()


def test_sigterm_stops_the_server(dreamdb_bin, store):
    s = Server(dreamdb_bin, store)
    s.json("/api/v1/health")
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0 and time.monotonic() - t0 < 5
    s.stop()


def test_cost_bound_refuses_large_walks(dreamdb_bin, store):
    s = Server(dreamdb_bin, store, "--cost-max-objects", "3")
    try:
        e = s.json("/api/v1/datasets/pets/cost", expect=413)["error"]
        assert e["code"] == "too_large" and "--cost-max-objects" in e["message"]
    finally:
        s.stop()


def test_concurrent_requests_share_handles_safely(server):
    """Many clients at once on the shared Dataset handle cache (spec/30 §1.4): every answer
    equals the one a lone client gets."""
    from concurrent.futures import ThreadPoolExecutor
    paths = ["/api/v1/datasets/pets/records?limit=20&fields=label,score",
             "/api/v1/datasets/pets/records?limit=20&ref=v1&fields=name",
             "/api/v1/datasets/pets/search?anchor=5&k=4&exact=1",
             "/api/v1/datasets/pets/compare?refs=main,exp&fields=score&limit=5",
             "/api/v1/datasets/pets/history", "/api/v1/datasets/pets/sweeps/lr",
             "/api/v1/datasets/pets/cost"]
    expected = {p: server.json(p) for p in paths}
    for p in expected:  # drop what legitimately varies between calls
        expected[p].pop("cached", None), expected[p].pop("elapsed_ms", None)

    def fetch(p):
        got = server.json(p)
        got.pop("cached", None), got.pop("elapsed_ms", None)
        return p, got

    with ThreadPoolExecutor(max_workers=12) as pool:
        for p, got in pool.map(fetch, paths * 8):
            assert got == expected[p], p
