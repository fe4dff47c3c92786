# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.compare_refs: several versions of a dataset side by side (spec/14-semantics.md,
"Comparing refs").

    res = dreamdb.compare_refs("pets", ["v1", "run-0", "run-1"], ["pred"], store=uri)
    res.table      # pyarrow Table: anchor | pred@v1 | pred@run-0 | pred@run-1
    res.summary    # dict: per field, each ref against the baseline (the first ref)
    print(res)     # a readable summary
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import pyarrow as pa

from . import _core
from .dataset import Dataset, StoreLike, _fields, open_store
from ._stream import read_table
from .errors import InvalidArgumentError

__all__ = ["CompareResult", "compare_refs"]

_U64_MAX = (1 << 64) - 1

# The columns of CompareResult.summary_table(), in order, with their Arrow types.
_STAT_COLUMNS = [
    ("field", pa.string()), ("type", pa.string()), ("baseline", pa.string()),
    ("ref", pa.string()), ("both", pa.uint64()), ("only_baseline", pa.uint64()),
    ("only_ref", pa.uint64()), ("differing", pa.uint64()), ("agreement", pa.float64()),
    ("numeric_count", pa.uint64()), ("mean_diff", pa.float64()),
    ("median_diff", pa.float64()), ("median_approximate", pa.bool_()),
    ("mean_abs_diff", pa.float64()), ("mean_cosine", pa.float64()),
    ("min_cosine", pa.float64()),
]


def _num(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.6g}"


class CompareResult:
    """The outcome of :func:`compare_refs`.

    Attributes:
        table: pyarrow Table, one row per anchor live in any ref (ascending), columns
            ``anchor`` then ``<field>@<ref>`` (fields outer, refs inner); null where a ref
            lacks the anchor, the field or the value. Only differing rows with
            ``only_differing=True``.
        summary: dict with ``refs``, ``manifests`` (what each ref resolved to),
            ``fields``, ``present`` (anchors per ref), ``anchors`` (in any ref),
            ``differing`` (rows that differ), ``emitted`` (rows in ``table``),
            ``complete`` and ``stats``: one dict per field and per non-baseline ref with
            ``field, type, baseline, ref, both, only_baseline, only_ref, differing,
            agreement`` plus, for int64/float64/timestamp fields, ``numeric_count,
            mean_diff, median_diff, median_approximate, mean_abs_diff`` (difference =
            ref - baseline; the median is sampled, and marked approximate, past
            ``median_sample`` values) and, for embeddings, ``mean_cosine, min_cosine``
            (inapplicable keys are None).
    """

    def __init__(self, table: pa.Table, summary: Dict[str, Any]) -> None:
        self.table = table
        self.summary = summary

    @property
    def refs(self) -> List[str]:
        return list(self.summary["refs"])

    def stats(self, field: Optional[str] = None, ref: Optional[str] = None) -> List[Dict[str, Any]]:
        """The per-(field, ref) statistics, optionally only for one field and/or ref."""
        return [s for s in self.summary["stats"]
                if (field is None or s["field"] == field) and (ref is None or s["ref"] == ref)]

    def summary_table(self) -> pa.Table:
        """The statistics as a pyarrow Table, one row per (field, ref)."""
        stats = self.summary["stats"]
        return pa.table({name: pa.array([s[name] for s in stats], type=t)
                         for name, t in _STAT_COLUMNS})

    def __repr__(self) -> str:
        s = self.summary
        refs = ", ".join(f"{r} ({n})" for r, n in zip(s["refs"], s["present"]))
        lines = [f"CompareResult: {s['anchors']} anchors in {refs}; "
                 f"{s['differing']} rows differ; table has {self.table.num_rows} rows"]
        for st in s["stats"]:
            line = (f"  {st['field']} ({st['type']}) {st['ref']} vs {st['baseline']}: "
                    f"{st['both']} in both, {st['differing']} differ, "
                    f"agreement {_num(st['agreement'])}")
            if st["mean_diff"] is not None:
                approx = " (approximate)" if st["median_approximate"] else ""
                line += (f"; diff mean {_num(st['mean_diff'])}, median "
                         f"{_num(st['median_diff'])}{approx}, mean |diff| "
                         f"{_num(st['mean_abs_diff'])}")
            if st["mean_cosine"] is not None:
                line += (f"; cosine mean {_num(st['mean_cosine'])}, "
                         f"min {_num(st['min_cosine'])}")
            lines.append(line)
        return "\n".join(lines)


def compare_refs(
    dataset_or_name: Union[str, Dataset],
    refs: Sequence[str],
    fields: Optional[Union[str, Sequence[str]]] = None,
    store: Optional[StoreLike] = None,
    only_differing: bool = False,
    start: int = 0,
    end: Optional[int] = None,
    batch_size: int = 8192,
    limit: Optional[int] = None,
    median_sample: int = 65536,
) -> CompareResult:
    """Compares `fields` of one dataset across `refs`, side by side.

    Args:
        dataset_or_name: a :class:`Dataset` (its name and store are used) or a name
            (then `store` is required).
        refs: two or more snapshot labels, branches ("branch:NAME" forces a branch) or
            manifest ids; the first is the baseline the others are compared with.
        fields: fields to compare (default: every field of any ref).
        store: store URI, path or Store (when `dataset_or_name` is a name).
        only_differing: keep only rows whose presence or values differ between refs.
        start, end: anchor range [start, end).
        batch_size: rows per batch read from each ref (memory is bounded by it).
        limit: at most this many rows in the table (the summary still covers the range).
        median_sample: differences kept per (field, ref) for the exact median; beyond,
            a fixed-size deterministic sample (the median is then marked approximate).

    Returns a :class:`CompareResult`. Errors: InvalidArgumentError (fewer than 2 refs, a
    repeated ref or field, an unknown field, a field whose type differs between refs),
    NotFoundError (a ref that does not resolve, naming it). The GIL is released while
    reading.
    """
    if isinstance(dataset_or_name, Dataset):
        name = dataset_or_name.name
        st = open_store(store) if store is not None else dataset_or_name.store
    elif isinstance(dataset_or_name, str):
        if store is None:
            raise InvalidArgumentError("compare_refs: give store= with a dataset name")
        name, st = dataset_or_name, open_store(store)
    else:
        raise InvalidArgumentError(
            "compare_refs: expected a dreamdb.Dataset or a dataset name, not "
            f"{type(dataset_or_name).__name__}")
    if isinstance(refs, str):
        raise InvalidArgumentError("compare_refs: refs must be a list of at least 2 refs")
    ref_list = list(refs)
    for r in ref_list:
        if not isinstance(r, str):
            raise InvalidArgumentError(f"compare_refs: refs must be strings, got {r!r}")
    handle = _core.compare_refs(
        st, name, ref_list, _fields(fields), bool(only_differing), int(start),
        _U64_MAX if end is None else int(end), int(batch_size),
        _U64_MAX if limit is None else int(limit), True, int(median_sample))
    table = read_table(handle.stream())
    return CompareResult(table, handle.summary())
