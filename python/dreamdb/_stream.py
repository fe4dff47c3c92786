# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Reading DreamDB's Arrow streams with pyarrow, keeping DreamDB's exception classes.

An error that ends a stream (a corrupt or missing object met while scanning) crosses the
Arrow C stream interface as an errno and a message, and pyarrow raises it as its own
class (``OSError``, ``ArrowInvalid``), which ``except dreamdb.Error`` would miss. The
stream object keeps the error's status, so every reader made here re-raises it as the
DreamDB exception of its code (spec/07-errors.md), with the same message, chained to
pyarrow's exception.
"""

from __future__ import annotations

from typing import Any, Iterator, NoReturn

import pyarrow as pa


def _reraise(stream: Any, exc: BaseException) -> NoReturn:
    # Raises the stream's own error (a dreamdb.Error subclass) when it recorded one.
    try:
        stream.raise_error()
    except Exception as err:  # the DreamDB error; its class follows its code
        raise err from exc
    raise exc


def read_stream(stream: Any) -> pa.RecordBatchReader:
    """A pyarrow RecordBatchReader over a DreamDB stream (``_core.ArrowStream``) whose
    errors are raised as DreamDB exceptions. Batches are passed through without copying."""
    try:
        inner = pa.RecordBatchReader.from_stream(stream)
    except Exception as exc:
        _reraise(stream, exc)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in inner:
                yield batch
        except Exception as exc:
            _reraise(stream, exc)

    return pa.RecordBatchReader.from_batches(inner.schema, batches())


def read_table(stream: Any) -> pa.Table:
    """All batches of a DreamDB stream as one Table (errors as in :func:`read_stream`)."""
    return read_stream(stream).read_all()
