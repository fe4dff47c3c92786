# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The Python error mapping covers every code of the spec's error table
(spec/07-errors.md), read from the spec itself so the two cannot drift apart."""

import builtins
import pathlib
import re

import pytest

import dreamdb
from dreamdb import _core, errors


def spec_table(source_dir: pathlib.Path):
    """(number, code, class name, builtin base names) for each Status code row."""
    text = (source_dir / "spec" / "07-errors.md").read_text()
    rows = []
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|.*\|\s*`(\w+)\(([\w, ]+)\)`\s*\|", line)
        if m:
            bases = [b.strip() for b in m.group(4).split(",")]
            rows.append((int(m.group(1)), m.group(2), m.group(3), bases))
    return rows


def test_spec_table_lists_every_error_code(source_dir):
    rows = spec_table(source_dir)
    assert [r[0] for r in rows] == list(range(1, 11))  # 0 (ok) raises nothing


def test_every_spec_code_maps_to_its_class_and_builtins(source_dir):
    rows = spec_table(source_dir)
    for number, code, class_name, bases in rows:
        cls = getattr(dreamdb, class_name)
        assert cls is getattr(errors, class_name) and class_name in dreamdb.__all__
        assert errors.class_for_code(code) is cls and cls.code == code
        assert bases[0] == "Error" and issubclass(cls, dreamdb.Error)
        for base in bases[1:]:
            assert issubclass(cls, getattr(builtins, base)), (class_name, base)
        with pytest.raises(cls) as e:
            _core._raise_status(code, f"problem {number}")
        assert type(e.value) is cls and str(e.value) == f"problem {number}"
        assert e.value.code == code
    # Nothing else: every Error subclass the package exports is in the table.
    exported = {n for n in dreamdb.__all__
                if isinstance(getattr(dreamdb, n), type) and issubclass(getattr(dreamdb, n),
                                                                        dreamdb.Error)}
    assert exported - {"Error"} == {r[2] for r in rows}


def test_unknown_codes_are_internal_errors():
    assert errors.class_for_code("no_such_code") is dreamdb.InternalError
    with pytest.raises(dreamdb.InternalError, match="unknown status code"):
        _core._raise_status("no_such_code", "x")
