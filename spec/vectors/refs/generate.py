#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates spec/vectors/refs/names.json, the ref-name vectors of spec/06-refs.md §2.

Each case is labelled by hand (valid or the rule id it breaks, snapshot or not). The
script checks every label against an independent reading of the rules written here in
Python, so a vector cannot disagree with the spec's text by a slip of the pen.

Usage:
    python3 spec/vectors/refs/generate.py           # rewrite names.json
    python3 spec/vectors/refs/generate.py --check   # exit 1 if names.json is stale

The output is deterministic.
"""

import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "names.json"

SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")


def rule_broken(name: bytes):
    """The first rule of spec/06-refs.md §2.3 that `name` breaks, or None."""
    if not name:
        return "empty"
    if len(name) > 255:
        return "too_long"
    for b in name:
        if b >= 0x80 or (b != ord("/") and not SEGMENT_CHARS.match(chr(b))):
            return "bad_char"
    for seg in name.split(b"/"):
        if not seg:
            return "empty_segment"
        if seg.startswith(b"."):
            return "leading_dot"
        if seg.endswith(b".lock"):
            return "lock_suffix"
    return None


def is_snapshot(name: bytes) -> bool:
    """spec/06-refs.md §3.1: some segment other than the last is exactly 'snapshots'."""
    return b"snapshots" in name.split(b"/")[:-1]


def V(name, snapshot=False):
    return (name, None, snapshot)


def I(name, reason):
    return (name, reason, False)


CASES = [
    V("main"),
    V("ds/branches/main"),
    V("ds/snapshots/v1", True),
    V("snapshots/v1", True),
    V("a/snapshots/b/c", True),
    V("a/snapshots/snapshots", True),
    V("ds/snapshots"),
    V("snapshots"),
    V("a/b/snapshots"),
    V("Snapshots/v1"),
    V("ds/snapshot/v1"),
    V("ds/my-snapshots/v1"),
    V("v1.0.3"),
    V("a_b-c.d"),
    V("x/y.lockfile"),
    V("lock"),
    V("a.lock.b"),
    V("a..b"),
    V("a."),
    V("-a"),
    V("0"),
    V("A/B/C/D/E"),
    V("a" * 255),
    V("runs/2024-06-01_sweep.7/branches/run-03"),
    I("", "empty"),
    I("a" * 256, "too_long"),
    I("a b" + "c" * 300, "too_long"),
    I("/main", "empty_segment"),
    I("main/", "empty_segment"),
    I("a//b", "empty_segment"),
    I("/", "empty_segment"),
    I("a b", "bad_char"),
    I("a~b", "bad_char"),
    I("a\\b", "bad_char"),
    I("a:b", "bad_char"),
    I("ds/branches/\u00e9t\u00e9", "bad_char"),
    I("a\tb", "bad_char"),
    I("a\u0000b", "bad_char"),
    I("a*", "bad_char"),
    I("@{1}", "bad_char"),
    I("a//b c", "bad_char"),
    I(".hidden", "leading_dot"),
    I("a/.b", "leading_dot"),
    I(".", "leading_dot"),
    I("..", "leading_dot"),
    I("a/../b", "leading_dot"),
    I(".lock", "leading_dot"),
    I("main.lock", "lock_suffix"),
    I("a/b.lock/c", "lock_suffix"),
    I("x.lock/.y", "lock_suffix"),
]


def render():
    records = []
    for name, reason, snapshot in CASES:
        raw = name.encode("utf-8")
        got = rule_broken(raw)
        if got != reason:
            sys.exit(f"label mismatch for {name!r}: labelled {reason}, rules say {got}")
        if reason is None and is_snapshot(raw) != snapshot:
            sys.exit(f"snapshot label mismatch for {name!r}")
        records.append({"name": name, "valid": reason is None,
                        "snapshot": snapshot, "reason": reason or ""})
    lines = ["  " + json.dumps(r, ensure_ascii=True) for r in records]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run {sys.argv[0]}")
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
