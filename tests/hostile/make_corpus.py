# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Wrote the first version of tests/hostile/corpus.jsonl (python tests/hostile/make_corpus.py
> tests/hostile/corpus.jsonl). The corpus file is the source of truth: add cases there,
one JSON object per line (format: tests/hostile/test_hostile.py)."""

from __future__ import annotations

import json
import sys

ESC = "\x1b"
E4 = [0.25, 0.5, 0.75, 1.0]

# Names that no dataset, branch, snapshot or field may take, each with an id suffix.
BAD_NAMES = {
    "empty": "", "space": " ", "slash": "a/b", "dotdot": "..", "dot": ".", "leading_dash": "-x",
    "newline": "a\nb", "tab": "a\tb", "esc": ESC + "[31mred", "long": "n" * 300,
    "tilde": "a~b", "backslash": "a\\b", "star": "a*b", "shell": "$(id)", "backtick": "`id`",
    "pct": "%2e%2e", "colon": "a:b", "rlo": "a\u202eb", "leading_dot": ".hidden",
    "trailing_slash": "a/", "dotdot_path": "../../etc", "question": "a?b", "cr": "a\rb",
    "del": "a\x7fb", "nbsp": "a\u00a0b", "zero_width": "a\u200bb",
}

# Values that are not anchors.
BAD_ANCHORS = {
    "negative": "-1", "overflow": "18446744073709551616", "hex": "0x10", "exp": "1e3",
    "float": "1.5", "space": " 5", "empty": "", "word": "five", "plus": "+5",
    "huge": "9" * 40, "esc": ESC + "[2J",
}

RANGES = ["5:3", "a:b", "1:2:3", "-1:5", "0:18446744073709551616", "x", ":-", "0x1:2"]
LIMITS = ["-1", "1e99", "abc", "", "18446744073709551616", "0x10"]


def case(cid: str, argv: list[str], **kw) -> dict:
    out = {"id": cid, "argv": argv}
    out.update(kw)
    return out


def record(n: int = 1, **over) -> dict:
    r = {"n": n, "s": "x", "e": E4}
    r.update(over)
    return r


def line(obj) -> str:
    return json.dumps(obj)


def cases() -> list[dict]:
    c: list[dict] = []

    # ---- names ----
    for k, v in BAD_NAMES.items():
        c.append(case(f"name.create.{k}", ["create", v, "--schema", "{schema}"]))
        c.append(case(f"name.count.{k}", ["count", v]))
        if k not in ("slash",):  # branch names and labels may have segments (spec/13 §3.2)
            c.append(case(f"name.branch.{k}", ["branch", "d", v]))
            c.append(case(f"name.snapshot.{k}", ["snapshot", "d", v]))
        c.append(case(f"name.at.{k}", ["cat", "d", "--at", v]))
        c.append(case(f"name.ingest_branch.{k}", ["ingest", "d", "{file:ok.jsonl}", "--branch", v],
                      files={"ok.jsonl": line(record(500)) + "\n"}))
        c.append(case(f"name.field.{k}", ["schema", "d", "add-field", "--name", v, "--type", "int64"]))
        c.append(case(f"name.fields.{k}", ["cat", "d", "--fields", v]))
        c.append(case(f"name.ref.{k}", ["ref", "get", v]))
        c.append(case(f"name.merge_source.{k}", ["merge", "d", v]))

    # ---- URIs ----
    uris = {
        "s3_secret": "s3://AKIAEXAMPLE:SuperSecretKey123@bucket/prefix",
        "s3_plain": "s3://bucket/prefix", "http": "http://127.0.0.1:1/x", "ftp": "ftp://x/y",
        "file_empty": "file://", "file_relative": "file://relative/path",
        "file_host": "file://host/path", "dev_null": "file:///dev/null",
        "proc": "file:///proc/self", "etc_passwd": "file:///etc/passwd",
        "empty": "", "space": " ", "esc": ESC + "[2Jx", "memory_dotdot": "memory://../x",
        "unknown_scheme": "gopher://x", "query": "file://{tmp}/x?y=1", "long": "file:///" + "a" * 5000,
        "nul_escape": "file:///tmp/%00", "upper_scheme": "FILE://{tmp}/x", "s3_no_bucket": "s3://",
    }
    for k, v in uris.items():
        c.append(case(f"uri.count.{k}", ["--store", v, "count", "d"], store=False,
                      secret="SuperSecretKey123" if "Secret" in v else None))
        c.append(case(f"uri.verify.{k}", ["--store", v, "verify"], store=False,
                      secret="SuperSecretKey123" if "Secret" in v else None))
    c.append(case("uri.env_secret", ["count", "d"], store=False,
                  env={"DREAMDB_STORE": "s3://AKIAEXAMPLE:SuperSecretKey123@bucket/p"},
                  secret="SuperSecretKey123"))
    # Read-only commands at a mistyped path must not create a store there.
    for cmd in (["count", "d"], ["cat", "d"], ["verify"], ["log", "d"], ["datasets"],
                ["refs", "d"], ["object", "ls"], ["ref", "ls"], ["schema", "d"], ["meta", "d"]):
        c.append(case(f"uri.typo.{cmd[0]}{'_' + cmd[1] if cmd[0] in ('object', 'ref') else ''}",
                      ["--store", "{tmp}/typo-store", *cmd], store=False, absent="{tmp}/typo-store"))

    # ---- schemas ----
    schemas = {
        "not_json": "{", "empty_obj": "{}", "no_fields": '{"fields": []}', "fields_obj": '{"fields": {}}',
        "unknown_type": '{"fields":[{"name":"a","type":"int128"}]}',
        "dim_zero": '{"fields":[{"name":"e","type":"embedding","dim":0}]}',
        "dim_negative": '{"fields":[{"name":"e","type":"embedding","dim":-1}]}',
        "dim_huge": '{"fields":[{"name":"e","type":"embedding","dim":10000000000}]}',
        "dim_string": '{"fields":[{"name":"e","type":"embedding","dim":"8"}]}',
        "dim_float": '{"fields":[{"name":"e","type":"embedding","dim":8.5}]}',
        "dim_missing": '{"fields":[{"name":"e","type":"embedding"}]}',
        "dup_names": '{"fields":[{"name":"a","type":"int64"},{"name":"a","type":"string"}]}',
        "empty_name": '{"fields":[{"name":"","type":"int64"}]}',
        "slash_name": '{"fields":[{"name":"a/b","type":"int64"}]}',
        "esc_name": '{"fields":[{"name":"\\u001b[31m","type":"int64"}]}',
        "anchor_name": '{"fields":[{"name":"anchor","type":"int64"}]}',
        "unknown_key": '{"fields":[{"name":"a","type":"int64","optinal":true}]}',
        "top_unknown_key": '{"fields":[{"name":"a","type":"int64"}],"x":1}',
        "optional_string": '{"fields":[{"name":"a","type":"int64","optional":"yes"}]}',
        "array_no_shape": '{"fields":[{"name":"a","type":"array","dtype":"i32"}]}',
        "array_shape_zero": '{"fields":[{"name":"a","type":"array","dtype":"i32","shape":[0]}]}',
        "array_shape_neg": '{"fields":[{"name":"a","type":"array","dtype":"i32","shape":[-1]}]}',
        "array_shape_overflow": '{"fields":[{"name":"a","type":"array","dtype":"i32","shape":[4294967296,4294967296]}]}',
        "array_bad_dtype": '{"fields":[{"name":"a","type":"array","dtype":"complex","shape":[2]}]}',
        "deep_nesting": [["[", 100000], ["]", 100000]],
        "deep_object": [['{"a":', 50000], ["1", 1], ["}", 50000]],
        "huge_name": [['{"fields":[{"name":"', 1], ["x", 100000], ['","type":"int64"}]}', 1]],
        "null": "null", "array_top": "[]", "number_top": "5", "trailing_garbage": '{"fields":[]} x',
        "bad_utf8_escape": '{"fields":[{"name":"\\ud800","type":"int64"}]}',
        "mime_ctrl": '{"fields":[{"name":"b","type":"blob","mime":"image/png\\n\\u001b[2J"}]}',
        "index_unknown": '{"fields":[{"name":"e","type":"embedding","dim":4,"index":{"algorithm":"magic"}}]}',
        "bits_zero": '{"fields":[{"name":"e","type":"embedding","dim":4,"index":{"algorithm":"ivf","bits":0}}]}',
    }
    for k, v in schemas.items():
        c.append(case(f"schema.create.{k}", ["create", "s_" + k.replace("_", ""), "--schema", "{file:s.json}"],
                      files={"s.json": v}))
    c.append(case("schema.create.missing_file", ["create", "x", "--schema", "{tmp}/nope.json"]))
    c.append(case("schema.create.directory", ["create", "x", "--schema", "{tmp}"]))
    c.append(case("schema.create.dev_zero", ["create", "x", "--schema", "/dev/zero"], timeout=20))
    for k, v in {"type_unknown": ["--type", "int128"], "dim_zero": ["--type", "embedding", "--dim", "0"],
                 "dim_neg": ["--type", "embedding", "--dim", "-3"], "no_type": [],
                 "dim_huge": ["--type", "embedding", "--dim", "99999999999"],
                 "shape_bad": ["--type", "array", "--dtype", "i32", "--shape", "2,x"],
                 "shape_zero": ["--type", "array", "--dtype", "i32", "--shape", "0"],
                 "required_existing": ["--type", "int64", "--name", "n"],
                 "dtype_bad": ["--type", "array", "--dtype", "void", "--shape", "2"]}.items():
        argv = ["schema", "d", "add-field"] + (["--name", "z"] if "--name" not in v else []) + v
        c.append(case(f"schema.add_field.{k}", argv))
    for k, v in {"unknown": "nope", "esc": ESC + "x", "empty": ""}.items():
        c.append(case(f"schema.drop_field.{k}", ["schema", "d", "drop-field", v]))
    c.append(case("schema.action_unknown", ["schema", "d", "rename-field", "n"]))

    # ---- JSON Lines records (dataset d: n int64, s string, e embedding 4, b blob?,
    #      f float64?, t timestamp?, flag bool?, arr array int32 [2]?) ----
    recs = {
        "n_string": record(n="1"), "n_float": record(n=1.5), "n_overflow": record(n=2**63),
        "n_underflow": record(n=-2**63 - 1), "n_bool": record(n=True), "n_null": record(n=None),
        "n_missing": {"s": "x", "e": E4}, "s_number": record(s=5), "s_list": record(s=["x"]),
        "e_short": record(e=[1, 2, 3]), "e_long": record(e=[1, 2, 3, 4, 5]),
        "e_string": record(e="1,2,3,4"), "e_nested": record(e=[[1, 2], [3, 4]]),
        "e_strings": record(e=["1", "2", "3", "4"]), "e_null_item": record(e=[1, None, 3, 4]),
        "e_empty": record(e=[]), "e_object": record(e={"a": 1}),
        "unknown_key": record(zzz=1), "anchor_negative": record(anchor=-1),
        "anchor_overflow": record(anchor=2**64), "anchor_string": record(anchor="5"),
        "anchor_float": record(anchor=1.5), "anchor_null": record(anchor=None),
        "f_string": record(f="1.0"), "f_bool": record(f=False),
        "t_bad": record(t="yesterday"), "t_bad_rfc": record(t="2024-13-45T99:00:00Z"),
        "t_negative_overflow": record(t=-2**63 - 5), "t_float": record(t=1.5),
        "flag_string": record(flag="true"), "flag_int": record(flag=1),
        "arr_short": record(arr=[1]), "arr_range": record(arr=[1, 2**40]),
        "arr_float": record(arr=[1.5, 2]),
        "b_missing_file": record(b="no-such-file.bin"), "b_number": record(b=5),
        "b_bad_base64": record(b={"base64": "!!!"}), "b_base64_extra": record(b={"base64": "", "x": 1}),
        "b_dir": record(b="."),
        "b_etc_shadow": record(b="../../../../../../../../etc/shadow"),
        "b_proc_environ": record(b="/proc/self/environ"),
        "b_abs_passwd": record(b="/etc/passwd"),
        "b_dev_zero": record(b="/dev/zero"),
        "b_dotdot_relative": record(b="../outside.bin"),
        "b_fifo": record(b="fifo"),
        "e_nan_string": record(e=["nan", 1, 2, 3]),
        "e_overflow_f32": record(e=[1e39, 1, 2, 3]),
        "e_huge_exponent": record(e=[1e999999, 1, 2, 3]),
    }
    for k, v in recs.items():
        # The input sits in sub/, next to a FIFO; outside.bin is one level up.
        files = {"sub/r.jsonl": line(v) + "\n", "outside.bin": "secret"}
        if k == "b_fifo":
            files["sub/fifo"] = None  # made with mkfifo
        c.append(case(f"jsonl.{k}", ["ingest", "d", "{file:sub/r.jsonl}"], files=files,
                      timeout=10 if k in ("b_fifo", "b_dev_zero") else 60))
    raw_lines = {
        "not_json": "{", "array": "[1,2]", "number": "5", "string": '"x"', "null": "null",
        "dup_key": '{"n":1,"n":2,"s":"x","e":[0.25,0.5,0.75,1]}',
        "nan_literal": '{"n":1,"s":"x","e":[NaN,0.5,0.75,1]}',
        "inf_literal": '{"n":1,"s":"x","e":[Infinity,0.5,0.75,1]}',
        "minus_inf_literal": '{"n":1,"s":"x","e":[-Infinity,0.5,0.75,1]}',
        "trailing_comma": '{"n":1,"s":"x","e":[0.25,0.5,0.75,1],}',
        "single_quotes": "{'n':1}", "comment": '{"n":1} // c', "bad_utf8": b"{\"n\":1,\"s\":\"\xff\xfe\"}".decode("latin-1"),
        "lone_surrogate": '{"n":1,"s":"\\ud800","e":[0.25,0.5,0.75,1]}',
        "deep": [['{"n":', 1], ["[", 100000], ["]", 100000], ["}", 1]],
        "long_line": [['{"n":1,"s":"', 1], ["x", 3_000_000], ['","e":[0.25,0.5,0.75,1],"zz":1}', 1]],
        "mixed_anchors": '{"anchor":1,"n":1,"s":"x","e":[0.25,0.5,0.75,1]}\n{"n":1,"s":"x","e":[0.25,0.5,0.75,1]}',
        "dup_anchor": '{"anchor":1,"n":1,"s":"x","e":[0.25,0.5,0.75,1]}\n{"anchor":1,"n":2,"s":"x","e":[0.25,0.5,0.75,1]}',
        "nul_byte": '{"n":1,"s":"a\u0000b","e":[0.25,0.5,0.75,1],"zz":0}',
        "number_1e400": '{"n":1e400,"s":"x","e":[0.25,0.5,0.75,1]}',
        "second_line_bad": '{"n":1,"s":"x","e":[0.25,0.5,0.75,1]}\n{"n":"x"}',
    }
    for k, v in raw_lines.items():
        c.append(case(f"jsonl_raw.{k}", ["ingest", "d", "{file:r.jsonl}"],
                      files={"r.jsonl": v + "\n" if isinstance(v, str) else v}))
    for k, v in {"format_unknown": ["--format", "parquet"], "batch_zero": ["--batch-size", "0"],
                 "batch_negative": ["--batch-size", "-5"], "batch_word": ["--batch-size", "ten"],
                 "anchor_field_string": ["--anchor-field", "s"]}.items():
        c.append(case(f"ingest_flag.{k}", ["ingest", "d", "{file:r.jsonl}", *v],
                      files={"r.jsonl": line(record(900)) + "\n"}))
    c.append(case("ingest.missing_file", ["ingest", "d", "{tmp}/nope.jsonl"]))
    c.append(case("ingest.directory", ["ingest", "d", "{tmp}"]))
    c.append(case("ingest.unknown_dataset", ["ingest", "nope", "{file:r.jsonl}"],
                  files={"r.jsonl": line(record()) + "\n"}))

    # ---- CSV ----
    csvs = {
        "unterminated_quote": 'n,s,e\n1,"abc,"[0.25,0.5,0.75,1]"\n',
        "too_many_cells": 'n,s,e\n1,x,"[0.25,0.5,0.75,1]",extra\n',
        "too_few_cells": 'n,s,e\n1,x\n',
        "unknown_column": 'n,s,e,zzz\n1,x,"[0.25,0.5,0.75,1]",2\n',
        "dup_column": 'n,n,s,e\n1,2,x,"[0.25,0.5,0.75,1]"\n',
        "empty_header": '\n1,x,"[0.25,0.5,0.75,1]"\n',
        "header_only_empty_name": 'n,,s,e\n1,2,x,"[0.25,0.5,0.75,1]"\n',
        "e_not_list": 'n,s,e\n1,x,0.25\n', "e_bad_json": 'n,s,e\n1,x,"[0.25,0.5"\n',
        "n_word": 'n,s,e\n one,x,"[0.25,0.5,0.75,1]"\n', "anchor_bad": 'anchor,n,s,e\n-1,1,x,"[0.25,0.5,0.75,1]"\n',
        "required_empty": 'n,s,e\n,x,"[0.25,0.5,0.75,1]"\n',
        "bool_word": 'n,s,e,flag\n1,x,"[0.25,0.5,0.75,1]",maybe\n',
        "e_nan": 'n,s,e\n1,x,"[NaN,0.5,0.75,1]"\n',
        "e_inf_word": 'n,s,e\n1,x,"[1e39,0.5,0.75,1]"\n',
        "blob_shadow": 'n,s,e,b\n1,x,"[0.25,0.5,0.75,1]",../../../../../../../../etc/shadow\n',
        "nul": 'n,s,e\n1,a\x00b,"[0.25,0.5,0.75,1]",\n',
    }
    for k, v in csvs.items():
        c.append(case(f"csv.{k}", ["ingest", "d", "{file:r.csv}"], files={"r.csv": v}))

    # ---- anchors and ranges ----
    for k, v in BAD_ANCHORS.items():
        c.append(case(f"anchor.take.{k}", ["take", "d", v]))
        c.append(case(f"anchor.delete.{k}", ["delete", "d", v]))
        c.append(case(f"anchor.like.{k}", ["search", "d", "e", "--like", v]))
    c.append(case("anchor.take.absent", ["take", "d", "18446744073709551615"]))
    c.append(case("anchor.delete_file.bad", ["delete", "d", "--from-file", "{file:a.txt}"],
                  files={"a.txt": "1\nx\n"}))
    for i, v in enumerate(RANGES):
        c.append(case(f"range.cat.{i}", ["cat", "d", "--range", v]))
        c.append(case(f"range.compare.{i}", ["compare-refs", "d", "main", "v1", "--range", v]))
    for i, v in enumerate(LIMITS):
        c.append(case(f"limit.cat.{i}", ["cat", "d", "--limit", v]))
        c.append(case(f"limit.log.{i}", ["log", "d", "--limit", v]))

    # ---- every command: usage errors ----
    commands = [["branch"], ["cat"], ["compare-refs"], ["count"], ["create"], ["datasets"],
                ["delete"], ["diff"], ["index", "build"], ["index", "status"], ["ingest"], ["log"],
                ["merge"], ["meta"], ["object", "get"], ["object", "head"], ["object", "ls"],
                ["object", "put"], ["ref", "create"], ["ref", "delete"], ["ref", "get"],
                ["ref", "ls"], ["ref", "update"], ["refs"], ["schema"], ["search"], ["snapshot"],
                ["take"], ["verify"], ["version"]]
    for cmd in commands:
        cid = "_".join(cmd)
        c.append(case(f"usage.{cid}.unknown_flag", [*cmd, "--no-such-flag"], code=2))
        c.append(case(f"usage.{cid}.too_many_args", [*cmd, *(["x"] * 6)]))
        c.append(case(f"usage.{cid}.flag_esc", [*cmd, "--" + ESC + "[2J"], code=2))
    for cmd, flag in [(["cat", "d"], "--at"), (["cat", "d"], "--fields"), (["cat", "d"], "--limit"),
                      (["ingest", "d", "x"], "--batch-size"), (["search", "d", "e"], "--vector"),
                      (["search", "d", "e"], "-k"), (["merge", "d", "dev"], "--policy"),
                      (["create", "x"], "--schema"), (["ref", "update", "a/branches/b", "x"], "--expect"),
                      (["object", "get", "x"], "-o")]:
        c.append(case(f"usage.missing_value.{cmd[0]}{flag}", [*cmd, flag], code=2))
    c.append(case("usage.unknown_command", ["frobnicate"], code=2))
    c.append(case("usage.unknown_command_esc", [ESC + "[2J"], code=2))
    c.append(case("usage.help_unknown", ["help", "nope"], code=2))
    c.append(case("usage.double_dash_only", ["--"], code=2))
    c.append(case("usage.store_missing_value", ["--store"], store=False, code=2))
    c.append(case("usage.repeated_flag", ["cat", "d", "--limit", "1", "--limit", "2"]))
    c.append(case("usage.format_unknown", ["cat", "d", "--format", "xml"]))

    # ---- object and ref plumbing ----
    bad_ids = {"short": "b", "not_base32": "b" + "!" * 58, "wrong_prefix": "z" + "a" * 58,
               "empty": "", "esc": ESC + "[2J", "path": "../../refs/x", "hex": "ff" * 34,
               "upper": "B" + "A" * 58, "absent": "bdyqeldzamvbb7omz252i3i723phngls5jmlvrlfeybkvxgha2nyelkq"}
    for k, v in bad_ids.items():
        c.append(case(f"object.get.{k}", ["object", "get", v]))
        c.append(case(f"object.head.{k}", ["object", "head", v]))
        c.append(case(f"ref.create_target.{k}", ["ref", "create", "x/branches/y", v]))
        c.append(case(f"ref.update_expect.{k}", ["ref", "update", "d/branches/main", "{head}", "--expect", v]))
        c.append(case(f"at.manifest.{k}", ["count", "d", "--at", v]))
    c.append(case("object.ls.bad_shard", ["object", "ls", "--shard", "xyz"]))
    c.append(case("object.ls.shard_upper", ["object", "ls", "--shard", "AB"]))
    c.append(case("object.put.missing", ["object", "put", "{tmp}/nope"]))
    c.append(case("object.put.dir", ["object", "put", "{tmp}"]))
    c.append(case("object.get.output_dir", ["object", "get", "{head}", "-o", "{tmp}"]))
    c.append(case("ref.update.snapshot", ["ref", "update", "d/snapshots/v1", "{head}", "--expect", "{v1}"]))
    c.append(case("ref.delete.snapshot", ["ref", "delete", "d/snapshots/v1", "--expect", "{v1}"]))
    c.append(case("ref.update.wrong_expect", ["ref", "update", "d/branches/main", "{v1}", "--expect", "{v1}"]))
    c.append(case("ref.create.exists", ["ref", "create", "d/branches/main", "{head}"]))
    c.append(case("at.not_a_manifest", ["cat", "d", "--at", "{segment}"]))

    # ---- dataset verbs with bad arguments ----
    for k, v in {"unknown": "nope", "esc": ESC + "[1m", "empty": ""}.items():
        c.append(case(f"cat.fields.{k}", ["cat", "d", "--fields", "n," + v]))
        c.append(case(f"search.field.{k}", ["search", "d", v, "--vector", "1,2,3,4"]))
        c.append(case(f"index.field.{k}", ["index", "build", "d", v]))
        c.append(case(f"compare.ref.{k}", ["compare-refs", "d", "main", v]))
        c.append(case(f"diff.ref.{k}", ["diff", "d", "main", v]))
    for k, v in {"short": "1,2,3", "long": "1,2,3,4,5", "word": "a,b,c,d", "empty": "",
                 "nan": "nan,1,2,3", "inf": "inf,1,2,3", "huge": "1e39,1,2,3", "commas": ",,,",
                 "spaces": "1, 2, 3, 4x"}.items():
        c.append(case(f"search.vector.{k}", ["search", "d", "e", "--vector", v]))
    for k, v in {"k_zero": ["-k", "0"], "k_negative": ["-k", "-1"], "k_huge": ["-k", "99999999999999999999"],
                 "nprobe_word": ["--nprobe", "x"], "ef_negative": ["--ef", "-2"],
                 "where_bad": ["--where", "n >"], "where_unknown_field": ["--where", "zz = 1"],
                 "where_esc": ["--where", ESC + "[2J"], "no_query": [],
                 "both_queries": ["--like", "1"]}.items():
        extra = [] if k == "no_query" else ["--vector", "1,2,3,4"]
        c.append(case(f"search.{k}", ["search", "d", "e", *extra, *v]))
    for k, v in {"algorithm": ["--algorithm", "magic"],
                 "bits_huge": ["--bits", "99"], "metric": ["--metric", "hamming"],
                 "cells_word": ["--cells", "x"], "cells_huge": ["--cells", "99999999999"],
                 "degree_small": ["--algorithm", "graph", "--degree", "1"],
                 "quantizer": ["--quantizer", "pq99"], "not_embedding": []}.items():
        field = "n" if k == "not_embedding" else "e"
        c.append(case(f"index.build.{k}", ["index", "build", "d", field, *v]))
    for k, v in {"policy": ["dev", "--policy", "whatever"],
                 "unknown": ["nope"], "into_unknown": ["dev", "--into", "nope"],
                 "into_snapshot": ["dev", "--into", "v1"], "manifest_bad": ["b" + "a" * 58]}.items():
        c.append(case(f"merge.{k}", ["merge", "d", *v]))
    for k, v in {"no_eq": ["novalue"], "empty_key": ["=v"],
                 "at_and_set": ["k=v", "--at", "v1"]}.items():
        c.append(case(f"meta.{k}", ["meta", "d", *v]))
    c.append(case("branch.exists", ["branch", "d", "dev"]))
    c.append(case("branch.from_unknown", ["branch", "d", "new", "--from", "nope"]))
    c.append(case("snapshot.exists", ["snapshot", "d", "v1"]))
    c.append(case("snapshot.branch_unknown", ["snapshot", "d", "v9", "--branch", "nope"]))
    c.append(case("create.exists", ["create", "d", "--schema", "{schema}"]))
    c.append(case("delete.none", ["delete", "d"]))
    c.append(case("compare.one_ref", ["compare-refs", "d", "main"]))
    c.append(case("compare.repeated", ["compare-refs", "d", "main", "main"]))

    # ---- what read commands print from stored data: control characters escaped ----
    for k, argv in {"log": ["log", "d"], "cat_table": ["cat", "d", "--format", "table"],
                    "meta": ["meta", "d"], "log_json": ["--json", "log", "d"],
                    "cat": ["cat", "d"], "take": ["take", "d", "7"], "compare": ["compare-refs", "d", "main", "v1"],
                    "diff": ["diff", "d", "v1", "main"], "schema": ["schema", "d"]}.items():
        c.append(case(f"output.escaped.{k}", argv, expect="ok", no_control=True))
    return c


def main() -> None:
    seen = set()
    for c in cases():
        assert c["id"] not in seen, c["id"]
        seen.add(c["id"])
        c = {k: v for k, v in c.items() if v is not None}
        sys.stdout.write(json.dumps(c, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
