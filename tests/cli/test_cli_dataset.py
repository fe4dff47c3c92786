# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for the dataset commands of `dreamdb` (cli/README.md "Dataset commands").

Each test runs the real binary against a fresh file:// store: every command's happy path
and --json shape, ingest of JSON Lines and CSV (blobs, embeddings, arrays, timestamps),
error messages naming line and field with the exit codes of the error table, a
create/ingest/snapshot/branch/delete/diff/log/verify transcript, and verify finding a
corrupted object.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re

import pytest

from cli_harness import EXIT, Cli, jsonl, write

ID_RE = re.compile(r"^b[a-z2-7]{55}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

PNG_A = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"IEND"
PNG_B = b"\x89PNG\r\n\x1a\n\x00\x00second image"

SCHEMA = {
    "fields": [
        {"name": "label", "type": "categorical"},
        {"name": "n", "type": "int64", "optional": True},
        {"name": "x", "type": "float64", "optional": True},
        {"name": "ok", "type": "bool", "optional": True},
        {"name": "t", "type": "timestamp", "optional": True},
        {"name": "img", "type": "blob", "mime": "image/png", "optional": True},
        {"name": "emb", "type": "embedding", "dim": 4, "optional": True},
        {"name": "px", "type": "array", "dtype": "u8", "shape": [2, 3], "optional": True},
    ]
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]


def shard_of(object_id: str) -> str:
    text = object_id[1:].upper()
    multihash = base64.b32decode(text + "=" * (-len(text) % 8))
    return multihash[2:3].hex()


def create(cli: Cli, tmp_path: pathlib.Path, name: str = "photos",
           schema: dict | None = None) -> str:
    path = write(tmp_path / f"{name}.schema.json", json.dumps(schema or SCHEMA))
    return cli.ok("--json", "create", name, "--schema", str(path)).json()["head"]


def cat(cli: Cli, *args: str) -> list[dict]:
    return cli.ok("cat", *args).jsonl()


def error(cli: Cli, code: str, *args: str, **kwargs) -> str:
    """Runs with --json, checks the exit code and the error shape; returns the message."""
    r = cli.fails(code, "--json", *args, **kwargs)
    e = r.error_json()
    assert e["code"] == code and e["exit_code"] == EXIT[code], e
    return e["message"]


# ---- create, schema ------------------------------------------------------------------


def test_create(cli: Cli, tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "s.json", json.dumps(SCHEMA))
    r = cli.ok("create", "photos", "--schema", str(path))
    name, head = r.out.split()
    assert name == "photos" and ID_RE.match(head), r
    # --schema - reads stdin; --json shape.
    j = cli.ok("create", "other", "--schema", "-", "--json", input=json.dumps(SCHEMA).encode()).json()
    assert set(j) == {"dataset", "branch", "head", "schema"}
    assert j["dataset"] == "other" and j["branch"] == "main" and ID_RE.match(j["head"])
    assert [f["name"] for f in j["schema"]["fields"]] == FIELDS and j["schema"]["version"] == 1
    assert cli.ok("count", "other").out == "0\n"
    assert "already exists" in error(cli, "already_exists", "create", "photos", "--schema", str(path))
    assert "dataset name" in error(cli, "invalid_argument", "create", ".bad", "--schema", str(path))
    bad = write(tmp_path / "bad.json", '{"fields": [{"name": "a", "type": "int64", "optinal": true}]}')
    assert "optinal" in error(cli, "invalid_argument", "create", "x", "--schema", str(bad))
    assert "no such file" in error(cli, "not_found", "create", "x", "--schema",
                                   str(tmp_path / "nope.json")).lower()
    r = cli.fails("usage", "create", "x")
    assert "missing required flag --schema" in r.err


def test_schema_show_and_evolve(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    shown = json.loads(cli.ok("schema", "photos").out)
    assert shown["version"] == 1 and [f["name"] for f in shown["fields"]] == FIELDS
    assert cli.ok("--json", "schema", "photos").json() == shown

    j = cli.ok("--json", "schema", "photos", "add-field", "--name", "score", "--type",
               "float64").json()
    assert set(j) == {"dataset", "branch", "head", "schema"} and j["schema"]["version"] == 2
    assert j["schema"]["fields"][-1] == {"name": "score", "type": "float64", "optional": True}
    r = cli.ok("schema", "photos", "add-field", "--name", "vec", "--type", "embedding",
               "--dim", "2", "-m", "add vec")
    assert "version 3" in r.out
    cli.ok("schema", "photos", "add-field", "--name", "grid", "--type", "array", "--dtype",
           "i16", "--shape", "2,2")
    cli.ok("schema", "photos", "add-field", "--name", "thumb", "--type", "blob", "--mime",
           "image/jpeg")
    fields = {f["name"]: f for f in json.loads(cli.ok("schema", "photos").out)["fields"]}
    assert fields["vec"]["dim"] == 2 and fields["grid"]["shape"] == [2, 2]
    assert fields["grid"]["dtype"] == "i16" and fields["thumb"]["mime"] == "image/jpeg"
    cli.ok("schema", "photos", "drop-field", "score")
    after = json.loads(cli.ok("schema", "photos").out)
    assert "score" not in [f["name"] for f in after["fields"]] and after["version"] == 6
    # The old version is still readable.
    assert json.loads(cli.ok("schema", "photos", "--at", j["head"]).out)["version"] == 2
    assert cli.ok("log", "photos", "--limit", "1", "--json").json()["message"] == "drop-field score"

    assert "dropped" in error(cli, "invalid_argument", "schema", "photos", "add-field", "--name",
                              "score", "--type", "float64")
    error(cli, "invalid_argument", "schema", "photos", "add-field", "--name", "label", "--type",
          "string")
    error(cli, "invalid_argument", "schema", "photos", "add-field", "--name", "q", "--type", "nope")
    assert "--dim" in error(cli, "invalid_argument", "schema", "photos", "add-field", "--name",
                            "q", "--type", "embedding")
    assert "--dim" in error(cli, "invalid_argument", "schema", "photos", "add-field", "--name",
                            "q", "--type", "int64", "--dim", "3")
    error(cli, "not_found", "schema", "photos", "drop-field", "nope")
    assert "unknown schema action 'frob'" in error(cli, "usage", "schema", "photos", "frob")
    error(cli, "usage", "schema", "photos", "drop-field")
    error(cli, "usage", "schema", "photos", "--name", "x")
    error(cli, "usage", "schema", "photos", "add-field", "--type", "int64")
    error(cli, "not_found", "schema", "nothere")


# ---- ingest ---------------------------------------------------------------------------


def rich_records(tmp_path: pathlib.Path) -> str:
    write(tmp_path / "in" / "a.png", PNG_A)
    write(tmp_path / "in" / "imgs" / "b.png", PNG_B)
    return jsonl(
        {"label": "cat", "n": 1, "x": 0.5, "ok": True, "t": "2024-05-01T12:00:00.5Z",
         "img": "a.png", "emb": [1, 2.5, -3, 0.25], "px": [[1, 2, 3], [4, 5, 255]]},
        {"label": "dog", "n": -7, "t": 1700000000000000000, "img": "imgs/b.png",
         "x": None, "px": [0, 1, 2, 3, 4, 5]},
        {"label": "bird", "x": "nan", "ok": False, "t": "2024-05-01T14:00:00+02:00",
         "emb": [0.1, 0.2, 0.3, 0.4]},
    )


def test_ingest_jsonl_every_type(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    data = write(tmp_path / "in" / "data.jsonl", rich_records(tmp_path) + "\n")
    r = cli.ok("--json", "ingest", "photos", str(data))
    j = r.json()
    assert set(j) == {"dataset", "branch", "records", "commits", "head"}
    assert j["records"] == 3 and j["commits"] == 1 and j["branch"] == "main"
    assert ID_RE.match(j["head"]) and r.stderr == b""

    rows = cat(cli, "photos")
    assert [row["anchor"] for row in rows] == [0, 1, 2]
    assert list(rows[0]) == ["anchor"] + FIELDS
    assert rows[0] == {
        "anchor": 0, "label": "cat", "n": 1, "x": 0.5, "ok": True,
        "t": 1714564800500000000, "img": {"size": len(PNG_A), "mime": "image/png"},
        "emb": [1, 2.5, -3, 0.25], "px": [[1, 2, 3], [4, 5, 255]]}
    assert rows[1] == {
        "anchor": 1, "label": "dog", "n": -7, "x": None, "ok": None, "t": 1700000000000000000,
        "img": {"size": len(PNG_B), "mime": "image/png"}, "emb": None,
        "px": [[0, 1, 2], [3, 4, 5]]}
    assert rows[2]["x"] == "nan" and rows[2]["ok"] is False
    assert rows[2]["t"] == 1714564800000000000
    assert rows[2]["emb"] == pytest.approx([0.1, 0.2, 0.3, 0.4])

    # Blob bytes round-trip, and cat --blobs-base64 output can be ingested again.
    full = cli.ok("cat", "photos", "--fields", "img,label", "--blobs-base64").jsonl()
    assert base64.b64decode(full[0]["img"]["base64"]) == PNG_A
    assert base64.b64decode(full[1]["img"]["base64"]) == PNG_B
    again = write(tmp_path / "again.jsonl",
                  jsonl(*[{k: v for k, v in row.items() if k != "anchor"} for row in full]))
    cli.ok("ingest", "photos", str(again))
    copied = cli.ok("take", "photos", "3", "4", "--fields", "img", "--blobs-base64").jsonl()
    assert [base64.b64decode(row["img"]["base64"]) for row in copied] == [PNG_A, PNG_B]

    # Text summary; --batch-size gives one commit per batch; stdin input.
    r = cli.ok("ingest", "photos", "-", "--batch-size", "2", "-m", "from stdin",
               input=jsonl(*[{"label": f"l{i}", "n": i} for i in range(5)]).encode())
    assert re.fullmatch(r"ingested 5 records into 'photos' \(branch main\) in 3 commits; "
                        r"head b[a-z2-7]{55}\n", r.out), r
    log = cli.ok("log", "photos", "--limit", "3", "--json").jsonl()
    assert [c["added"] for c in log] == [1, 2, 2]
    assert {c["message"] for c in log} == {"from stdin"}
    assert cli.ok("count", "photos").out == "11\n"


def test_ingest_anchors_replace_and_anchor_field(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    cli.ok("ingest", "photos", str(write(tmp_path / "a.jsonl", jsonl(
        {"anchor": 10, "label": "a", "n": 1}, {"anchor": 20, "label": "b", "n": 2}))))
    # JSON Lines replace whole records: keys not given are written as null.
    cli.ok("ingest", "photos", str(write(tmp_path / "b.jsonl", jsonl(
        {"anchor": 20, "label": "B"}, {"anchor": 30, "label": "c", "n": 3}))))
    rows = cat(cli, "photos", "--fields", "label,n")
    assert rows == [{"anchor": 10, "label": "a", "n": 1}, {"anchor": 20, "label": "B", "n": None},
                    {"anchor": 30, "label": "c", "n": 3}]
    commit = cli.ok("log", "photos", "--limit", "1", "--json").json()
    assert (commit["added"], commit["replaced"], commit["count"]) == (1, 1, 3)
    # --anchor-field: an int64 field that is also the anchor.
    create(cli, tmp_path, "ids", {"fields": [{"name": "id", "type": "int64"},
                                             {"name": "s", "type": "string"}]})
    cli.ok("ingest", "ids", str(write(tmp_path / "ids.jsonl", jsonl(
        {"id": 7, "s": "seven"}, {"id": 3, "s": "three"}))), "--anchor-field", "id")
    assert cat(cli, "ids") == [{"anchor": 3, "id": 3, "s": "three"},
                               {"anchor": 7, "id": 7, "s": "seven"}]
    assert "is a string field" in error(cli, "invalid_argument", "ingest", "ids",
                                        str(tmp_path / "ids.jsonl"), "--anchor-field", "s")


def test_ingest_csv(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    write(tmp_path / "csv" / "imgs" / "a.png", PNG_A)
    data = write(tmp_path / "csv" / "data.csv",
                 'anchor,label,n,x,ok,t,img,emb,px\r\n'
                 '5,"hello, ""world""",3,1.5,TRUE,2024-05-01T12:00:00Z,imgs/a.png,'
                 '"[1, 2, 3, 4]","[[1,2,3],[4,5,6]]"\r\n'
                 '6,"two\nlines",,,false,42,,,\r\n'
                 '\r\n'
                 '7,tail,-1,inf,,,,,\r\n')
    j = cli.ok("--json", "ingest", "photos", str(data)).json()
    assert j["records"] == 3 and j["commits"] == 1
    rows = cat(cli, "photos")
    assert rows[0] == {
        "anchor": 5, "label": 'hello, "world"', "n": 3, "x": 1.5, "ok": True,
        "t": 1714564800000000000, "img": {"size": len(PNG_A), "mime": "image/png"},
        "emb": [1, 2, 3, 4], "px": [[1, 2, 3], [4, 5, 6]]}
    assert rows[1]["label"] == "two\nlines" and rows[1]["n"] is None and rows[1]["t"] == 42
    assert rows[1]["ok"] is False and rows[1]["emb"] is None
    assert rows[2]["x"] == "inf" and rows[2]["n"] == -1
    # A CSV with only some columns updates those fields and keeps the others.
    cli.ok("ingest", "photos", str(write(tmp_path / "upd.csv", "anchor,n\n5,99\n")))
    assert cli.ok("take", "photos", "5", "--fields", "label,n").json() == {
        "anchor": 5, "label": 'hello, "world"', "n": 99}
    # --format overrides the extension; "" is the empty string in string fields.
    cli.ok("ingest", "photos", str(write(tmp_path / "c.txt", 'label,n\n"",1\n')), "--format",
           "csv")
    assert cat(cli, "photos", "--range", "8:", "--fields", "label") == [{"anchor": 8, "label": ""}]


# (file name, content, exit code name, expected message)
INGEST_ERRORS = [
    ("emb.jsonl", jsonl({"label": "a", "emb": [1, 2, 3, 4]}, {"label": "b", "emb": [1, 2, 3]}),
     "invalid_argument", "line 2: field 'emb': expected 4 floats, got 3 (nothing was committed)"),
    ("elem.jsonl", jsonl({"label": "a", "emb": [1, 2, "x", 4]}), "invalid_argument",
     "line 1: field 'emb': element 2: expected a number, got \"x\" (nothing was committed)"),
    ("px.jsonl", jsonl({"label": "a", "px": [[1, 2, 3], [4, 5]]}), "invalid_argument",
     "line 1: field 'px': expected 6 values (shape [2, 3]), got 5 (nothing was committed)"),
    ("range.jsonl", jsonl({"label": "a", "px": [1, 2, 3, 4, 5, 256]}), "invalid_argument",
     "line 1: field 'px': element 5: 256 is out of range for u8 (nothing was committed)"),
    ("int.jsonl", jsonl({"label": "a"}, {"label": "b", "n": 1.5}), "invalid_argument",
     "line 2: field 'n': expected an integer, got 1.5 (nothing was committed)"),
    ("bool.jsonl", jsonl({"label": "a", "ok": "yes"}), "invalid_argument",
     "line 1: field 'ok': expected true or false, got \"yes\" (nothing was committed)"),
    ("time.jsonl", jsonl({"label": "a", "t": "yesterday"}), "invalid_argument",
     "line 1: field 't': expected an RFC 3339 time such as '2024-05-01T12:00:00Z', got "
     "'yesterday' (malformed) (nothing was committed)"),
    ("req.jsonl", jsonl({"n": 1}), "invalid_argument",
     "line 1: field 'label' is required but missing (nothing was committed)"),
    ("null.jsonl", jsonl({"label": None}), "invalid_argument",
     "line 1: field 'label' is required but null (nothing was committed)"),
    ("unknown.jsonl", jsonl({"label": "a", "colour": "red"}), "invalid_argument",
     "line 1: unknown field 'colour' (the schema has: label, n, x, ok, t, img, emb, px) "
     "(nothing was committed)"),
    ("dup.jsonl", '{"label": "a", "label": "b"}\n', "invalid_argument",
     "line 1: key 'label' appears twice (nothing was committed)"),
    ("syntax.jsonl", '{"label": "a"}\n\n{"label": \n', "invalid_argument",
     "line 3: invalid JSON: "),
    ("array.jsonl", "[1, 2]\n", "invalid_argument",
     "line 1: expected a JSON object, got [1,2] (nothing was committed)"),
    ("mixed.jsonl", jsonl({"anchor": 1, "label": "a"}, {"label": "b"}), "invalid_argument",
     "line 2: no 'anchor' (earlier records have anchors: give them for every record or none) "
     "(nothing was committed)"),
    ("twice.jsonl", jsonl({"anchor": 1, "label": "a"}, {"anchor": 1, "label": "b"}),
     "invalid_argument",
     "line 2: anchor 1 appears twice in one batch (also on line 1) (nothing was committed)"),
    ("neg.jsonl", jsonl({"anchor": -1, "label": "a"}), "invalid_argument",
     "line 1: 'anchor': expected a non-negative integer, got -1 (nothing was committed)"),
    ("blob.jsonl", jsonl({"label": "a", "img": "missing.png"}), "not_found",
     "line 1: field 'img': cannot open "),
    ("bad.csv", "label,n\na,1\nb,x\n", "invalid_argument",
     "line 3: field 'n': expected an integer, got 'x' (nothing was committed)"),
    ("cells.csv", "label,n\na,1\nb\n", "invalid_argument",
     "line 3: expected 2 cells (one per header column), got 1 (nothing was committed)"),
    ("header.csv", "label,colour\na,red\n", "invalid_argument",
     "line 1: unknown column 'colour' (the schema has: label, n, x, ok, t, img, emb, px) "
     "(nothing was committed)"),
    ("required.csv", "n\n1\n", "invalid_argument",
     "line 1: the header has no column for required field 'label' (nothing was committed)"),
    ("emb.csv", 'label,emb\na,"[1,2,3]"\n', "invalid_argument",
     "line 2: field 'emb': expected 4 floats, got 3 (nothing was committed)"),
    ("quote.csv", 'label,n\n"a,1\n', "invalid_argument",
     "line 2: unterminated quoted cell (nothing was committed)"),
    ("empty.csv", "label,n\n,1\n", "invalid_argument",
     "line 2: field 'label' is required but empty (nothing was committed)"),
]


def test_ingest_errors(cli: Cli, tmp_path: pathlib.Path) -> None:
    # One dataset for every case (each process start costs ~15 ms under ASan): none of
    # them may commit anything.
    create(cli, tmp_path)
    for name, content, code, message in INGEST_ERRORS:
        path = write(tmp_path / name, content)
        got = error(cli, code, "ingest", "photos", str(path))
        assert got.startswith(message), (name, got)
    assert cli.ok("count", "photos").out == "0\n"
    assert len(cli.ok("log", "photos", "--json").jsonl()) == 1  # only the create


def test_ingest_error_keeps_earlier_batches(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    records = [{"label": f"r{i}", "emb": [i, i, i, i]} for i in range(5)]
    records.append({"label": "bad", "emb": [1, 2, 3]})
    path = write(tmp_path / "data.jsonl", jsonl(*records))
    r = cli.fails("invalid_argument", "ingest", "photos", str(path), "--batch-size", "2")
    head = cli.ok("--json", "count", "photos").json()["manifest"]
    assert r.err == (f"dreamdb: error: line 6: field 'emb': expected 4 floats, got 3 "
                     f"(4 records were committed before the error (2 commits, head {head}); "
                     f"the batch from line 5 on was not)\n")
    assert cli.ok("count", "photos").out == "4\n"


def test_ingest_usage_and_missing(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    data = write(tmp_path / "d.jsonl", jsonl({"label": "a"}))
    assert "expected jsonl or csv" in error(cli, "usage", "ingest", "photos", str(data),
                                            "--format", "xml")
    error(cli, "usage", "ingest", "photos")
    error(cli, "invalid_argument", "ingest", "photos", str(data), "--batch-size", "0")
    error(cli, "invalid_argument", "ingest", "photos", str(data), "--batch-size", "ten")
    error(cli, "not_found", "ingest", "photos", str(tmp_path / "none.jsonl"))
    error(cli, "invalid_argument", "ingest", "photos", str(tmp_path))
    assert "does not exist" in error(cli, "not_found", "ingest", "nope", str(data))
    error(cli, "not_found", "ingest", "photos", str(data), "--branch", "nobranch")
    # --progress reports on stderr even when it is not a terminal.
    r = cli.ok("ingest", "photos", str(data), "--progress")
    assert "ingest: 1 records committed in 1 commit" in r.err and "records/s" in r.err


# ---- reads ----------------------------------------------------------------------------


def test_cat_take_count(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    cli.ok("ingest", "photos", "-", input=jsonl(
        *[{"label": f"l{i}", "n": i * 10, "t": i} for i in range(6)]).encode())
    assert [r["anchor"] for r in cat(cli, "photos", "--range", "2:4")] == [2, 3]
    assert [r["anchor"] for r in cat(cli, "photos", "--range", ":2")] == [0, 1]
    assert [r["anchor"] for r in cat(cli, "photos", "--range", "4:", "--limit", "1")] == [4]
    assert cli.ok("cat", "photos", "--limit", "0").out == ""
    assert cat(cli, "photos", "--fields", "n,label", "--limit", "1") == [
        {"anchor": 0, "n": 0, "label": "l0"}]
    assert cli.ok("--json", "cat", "photos").jsonl() == cat(cli, "photos")
    table = cli.ok("cat", "photos", "--fields", "label,t", "--format", "table",
                   "--limit", "2").out.splitlines()
    assert table[0].split() == ["anchor", "label", "t"] and set(table[1]) <= {"-", " "}
    assert table[2].split() == ["0", "l0", "1970-01-01T00:00:00.000000000Z"]
    assert len(table) == 4

    # take: order and repeats as given.
    rows = cli.ok("take", "photos", "5", "0", "5", "--fields", "n").jsonl()
    assert rows == [{"anchor": 5, "n": 50}, {"anchor": 0, "n": 0}, {"anchor": 5, "n": 50}]
    assert cli.ok("--json", "take", "photos", "1").json()["label"] == "l1"
    assert "anchor 99 is not in dataset 'photos'" in error(cli, "not_found", "take", "photos",
                                                            "1", "99")
    error(cli, "invalid_argument", "take", "photos", "x")
    error(cli, "usage", "take", "photos")

    j = cli.ok("--json", "count", "photos").json()
    assert set(j) == {"dataset", "manifest", "count"} and j["count"] == 6
    assert ID_RE.match(j["manifest"])

    assert "unknown field 'nope'" in error(cli, "invalid_argument", "cat", "photos", "--fields",
                                           "nope")
    error(cli, "invalid_argument", "cat", "photos", "--fields", "n,,label")
    error(cli, "invalid_argument", "cat", "photos", "--range", "5")
    error(cli, "invalid_argument", "cat", "photos", "--range", "5:2")
    error(cli, "usage", "cat", "photos", "--format", "csv")
    assert "no snapshot, branch or manifest 'v9'" in error(cli, "not_found", "cat", "photos",
                                                            "--at", "v9")
    assert "does not exist" in error(cli, "not_found", "count", "nope")


def test_log(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    cli.ok("ingest", "photos", "-", "-m", "first", input=jsonl({"label": "a", "n": 1}).encode())
    cli.ok("delete", "photos", "0", "-m", "drop it")
    entries = cli.ok("log", "photos", "--json").jsonl()
    assert [e["message"] for e in entries] == ["drop it", "first", "create"]
    keys = ["manifest", "parents", "time", "time_ns", "writer", "message", "count", "added",
            "replaced", "deleted", "fields", "schema_version"]
    for e in entries:
        assert list(e) == keys
        assert ID_RE.match(e["manifest"]) and ISO_RE.match(e["time"]) and e["writer"]
    assert (entries[0]["deleted"], entries[0]["count"], entries[0]["fields"]) == (1, 0, [])
    assert (entries[1]["added"], entries[1]["count"]) == (1, 1)
    assert entries[1]["fields"] == sorted(FIELDS)
    assert entries[2]["parents"] == [] and entries[1]["parents"] == [entries[2]["manifest"]]
    assert entries[0]["time_ns"] > entries[1]["time_ns"] > entries[2]["time_ns"]
    text = cli.ok("log", "photos", "--limit", "2").out
    assert text.count("manifest b") == 2 and "message  drop it" in text
    assert "delta    0 added, 0 replaced, 1 deleted; count 0" in text
    assert cli.ok("log", "photos", "--at", entries[1]["manifest"], "--json").jsonl() == entries[1:]


# ---- refs, metadata -------------------------------------------------------------------


def test_refs_snapshot_branch_datasets(cli: Cli, tmp_path: pathlib.Path) -> None:
    assert cli.ok("datasets").out == "" and cli.ok("--json", "datasets").out == ""
    head = create(cli, tmp_path)
    create(cli, tmp_path, "alpha")
    assert cli.ok("datasets").out == "alpha\nphotos\n"
    assert cli.ok("--json", "datasets").jsonl() == [{"dataset": "alpha"}, {"dataset": "photos"}]

    j = cli.ok("--json", "snapshot", "photos", "v1").json()
    assert j == {"dataset": "photos", "snapshot": "v1", "ref": "photos/snapshots/v1",
                 "manifest": head}
    assert cli.ok("snapshot", "photos", "2024/q1").out == f"snapshot '2024/q1' of 'photos' at {head}\n"
    assert "already exists" in error(cli, "already_exists", "snapshot", "photos", "v1")
    error(cli, "invalid_argument", "snapshot", "photos", "bad..lock")

    j = cli.ok("--json", "branch", "photos", "exp").json()
    assert j == {"dataset": "photos", "branch": "exp", "ref": "photos/branches/exp",
                 "manifest": head}
    cli.ok("branch", "photos", "sweep/run-1", "--from", "v1")
    cli.ok("branch", "photos", "by-id", "--from", head)
    assert "already exists" in error(cli, "already_exists", "branch", "photos", "exp")
    error(cli, "not_found", "branch", "photos", "x", "--from", "nope")
    error(cli, "not_found", "snapshot", "photos", "v2", "--branch", "nope")

    refs = cli.ok("--json", "refs", "photos").jsonl()
    assert [(r["kind"], r["name"]) for r in refs] == [
        ("branch", "by-id"), ("branch", "exp"), ("branch", "main"), ("branch", "sweep/run-1"),
        ("snapshot", "2024/q1"), ("snapshot", "v1")]
    assert all(r["manifest"] == head and r["ref"].startswith("photos/") for r in refs)
    assert cli.ok("refs", "photos").out.splitlines()[0] == f"{head} branch by-id"
    assert "does not exist" in error(cli, "not_found", "refs", "nope")
    assert "dataset name" in error(cli, "invalid_argument", "refs", "a/b")


def test_meta(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    assert cli.ok("meta", "photos").out == ""
    assert cli.ok("meta", "photos", "owner=team-a", "src=cam=3").out == "owner=team-a\nsrc=cam=3\n"
    j = cli.ok("--json", "meta", "photos").json()
    assert set(j) == {"dataset", "manifest", "meta"}
    assert j["meta"] == {"owner": "team-a", "src": "cam=3"}
    j2 = cli.ok("--json", "meta", "photos", "owner=").json()
    assert j2["meta"] == {"src": "cam=3"} and j2["manifest"] != j["manifest"]
    assert cli.ok("meta", "photos", "--at", j["manifest"]).out == "owner=team-a\nsrc=cam=3\n"
    error(cli, "usage", "meta", "photos", "novalue")
    error(cli, "invalid_argument", "meta", "photos", "=x")
    error(cli, "invalid_argument", "meta", "photos", "a=1", "a=2")


def test_delete(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    cli.ok("ingest", "photos", "-", input=jsonl(*[{"label": str(i)} for i in range(8)]).encode())
    j = cli.ok("--json", "delete", "photos", "1", "2", "100").json()
    assert set(j) == {"dataset", "branch", "requested", "deleted", "count", "head"}
    assert (j["requested"], j["deleted"], j["count"]) == (3, 2, 6)
    listing = write(tmp_path / "anchors.txt", "3\n\n 4 \n")
    r = cli.ok("delete", "photos", "5", "--from-file", str(listing))
    assert r.out.startswith("deleted 3 of 3 anchors; 3 records remain; head b")
    assert [row["anchor"] for row in cat(cli, "photos")] == [0, 6, 7]
    error(cli, "usage", "delete", "photos")
    error(cli, "invalid_argument", "delete", "photos", "abc")
    bad = write(tmp_path / "bad.txt", "1\nx\n")
    assert "line 2" in error(cli, "invalid_argument", "delete", "photos", "--from-file", str(bad))
    error(cli, "not_found", "delete", "photos", "1", "--branch", "nope")


# ---- a whole session ------------------------------------------------------------------


def test_transcript(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    data = write(tmp_path / "in" / "data.jsonl", rich_records(tmp_path))
    cli.ok("ingest", "photos", str(data))
    more = write(tmp_path / "in" / "more.csv",
                 "label,n,emb\n" + "".join(f'm{i},{i},"[{i},0,0,1]"\n' for i in range(4)))
    cli.ok("ingest", "photos", str(more))
    assert cli.ok("count", "photos").out == "7\n"
    v1 = cli.ok("--json", "snapshot", "photos", "v1").json()["manifest"]
    cli.ok("branch", "photos", "exp", "--from", "v1")

    # On the branch: replace anchor 3's n, add one record, delete anchors 0 and 1.
    cli.ok("ingest", "photos", str(write(tmp_path / "upd.csv", "anchor,n\n3,333\n")),
           "--branch", "exp")
    cli.ok("ingest", "photos", "-", "--branch", "exp",
           input=jsonl({"anchor": 50, "label": "new"}).encode())
    cli.ok("delete", "photos", "0", "1", "--branch", "exp")

    # main did not move.
    assert cli.ok("count", "photos").out == "7\n"
    assert cli.ok("count", "photos", "--at", "exp").out == "6\n"
    assert cli.ok("take", "photos", "3", "--at", "exp", "--fields", "n").json()["n"] == 333
    assert cli.ok("take", "photos", "3", "--fields", "n").json()["n"] == 0

    diff = cli.ok("--json", "diff", "photos", "v1", "exp").jsonl()
    entries, summary = diff[:-1], diff[-1]
    assert [(e["anchor"], e["change"]) for e in entries] == [
        (0, "removed"), (1, "removed"), (3, "changed"), (50, "added")]
    assert entries[2]["fields"] == ["n"]
    assert summary == {"summary": {"added": 1, "removed": 2, "changed": 1}, "from": v1,
                       "to": cli.ok("--json", "count", "photos", "--at", "exp").json()["manifest"]}
    text = cli.ok("diff", "photos", "v1", "exp").out
    assert text == "- 0\n- 1\n~ 3 n\n+ 50\n1 added, 2 removed, 1 changed\n"
    assert cli.ok("diff", "photos", "exp", "v1").out.splitlines()[-1] == \
        "2 added, 1 removed, 1 changed"
    assert cli.ok("diff", "photos", "v1", "main").out == "0 added, 0 removed, 0 changed\n"

    log = cli.ok("--json", "log", "photos", "--at", "exp").jsonl()
    assert [(e["added"], e["replaced"], e["deleted"]) for e in log[:3]] == [
        (0, 0, 2), (1, 0, 0), (0, 1, 0)]
    assert [e["count"] for e in log] == [6, 8, 7, 7, 3, 0]

    r = cli.ok("verify")
    assert re.fullmatch(r"ok: the store is intact \(3 refs, \d+ objects, \d+ bytes checked\)\n",
                        r.out), r
    j = cli.ok("--json", "verify", "photos").json()
    assert set(j) == {"dataset", "refs", "objects", "bytes", "problems"}
    assert j["problems"] == 0 and j["refs"] == 3 and j["objects"] > 10


def test_verify_detects_corruption(cli: Cli, store_dir: pathlib.Path,
                                   tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    create(cli, tmp_path, "other")
    cli.ok("ingest", "photos", "-", input=jsonl({"label": "a", "n": 1}).encode())
    head = cli.ok("--json", "count", "photos").json()["manifest"]
    cli.ok("verify", "--progress")
    path = store_dir / "objects" / shard_of(head) / head
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    r = cli.run("verify", "photos")
    assert r.code == EXIT["corrupt"], r
    problems = r.out.splitlines()
    assert len(problems) == 1 and problems[0].startswith("problem: ") and head in problems[0]
    assert "corrupt" in problems[0]
    assert re.fullmatch(r"dreamdb: error: verify found 1 problem in dataset 'photos' "
                        r"\(\d+ objects checked\)\n", r.err), r
    r = cli.run("--json", "verify")
    assert r.code == EXIT["corrupt"], r
    lines = r.jsonl()
    assert head in lines[0]["problem"]
    assert lines[-1]["problems"] == 1 and set(lines[-1]) == {"refs", "objects", "bytes", "problems"}
    err = json.loads(r.err)["error"]
    assert err["code"] == "corrupt" and err["exit_code"] == 7
    assert "verify found 1 problem in the store" in err["message"]
    # The untouched dataset is healthy; reading the corrupt one fails with exit 7 too.
    cli.ok("verify", "other")
    cli.fails("corrupt", "count", "photos")
    error(cli, "not_found", "verify", "nope")


# ---- help -----------------------------------------------------------------------------

DATASET_COMMANDS = ["create", "ingest", "cat", "take", "count", "log", "snapshot", "branch",
                    "refs", "datasets", "diff", "delete", "schema", "verify", "meta"]


def test_help_lists_dataset_commands(cli: Cli) -> None:
    top = cli.ok("--help", store=False).out
    for command in DATASET_COMMANDS:
        assert re.search(rf"^  {command}\s", top, re.M), command
        r = cli.ok(command, "--help", store=False)
        assert r.out.startswith(f"usage: dreamdb {command}"), r
