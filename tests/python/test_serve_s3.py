# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`dreamdb serve` on an s3:// store (the local S3 server, the `s3_store` fixture): the
test_serve.py store, cloned to s3:// with dreamdb.clone, answers the key endpoints of the
JSON API exactly as the file:// original does, and /metrics shows the HTTP requests the
server made to S3."""

from __future__ import annotations

import dreamdb

from test_serve import Server, store  # noqa: F401  (`store`: the file:// fixture)

ENDPOINTS = [
    "/api/v1/datasets",
    "/api/v1/datasets/pets",
    "/api/v1/datasets/pets?ref=v1",
    "/api/v1/datasets/pets/refs",
    "/api/v1/datasets/pets/history",
    "/api/v1/datasets/pets/records?limit=15&fields=label,img,emb,arr",
    "/api/v1/datasets/pets/records?fields=name&where=label%20%3D%3D%201",
    "/api/v1/datasets/pets/records/4?ref=v1&fields=score",
    "/api/v1/datasets/pets/compare?refs=main,exp&fields=score&limit=10",
    "/api/v1/datasets/pets/search?field=emb&anchor=3&k=5&fields=name",
    "/api/v1/datasets/pets/sweeps",
]


def test_serve_on_s3_answers_as_on_file(dreamdb_bin, store, s3_store):  # noqa: F811
    copied = dreamdb.clone(store, s3_store)
    assert copied["objects_copied"] > 0 and not copied["conflicts"]
    on_file = Server(dreamdb_bin, store)
    on_s3 = Server(dreamdb_bin, s3_store)
    try:
        assert on_s3.json("/api/v1/health")["status"] == "ok"
        for path in ENDPOINTS:
            assert on_s3.json(path) == on_file.json(path), path
        s_status, s_headers, s_png = on_s3.get("/api/v1/datasets/pets/blob/2/img")
        f_status, _, f_png = on_file.get("/api/v1/datasets/pets/blob/2/img")
        assert s_status == f_status == 200 and s_png == f_png
        assert s_headers["content-type"] == "image/png"
        assert on_s3.json("/api/v1/datasets/pets/blob/999/img", expect=404)["error"]
        status, _, data = on_s3.get("/metrics")
        assert status == 200
        gets = [ln for ln in data.decode().splitlines()
                if ln.startswith('dreamdb_storage_requests_total{verb="GET",class="2xx"}')]
        assert gets and int(gets[0].split()[-1]) > 0
    finally:
        on_file.stop()
        on_s3.stop()
