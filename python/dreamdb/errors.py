# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""DreamDB exceptions (spec/07-errors.md).

Every error the C++ core reports is raised as a subclass of :class:`Error` chosen by its
status code; each subclass also inherits the matching builtin exception, so code that
catches ``KeyError`` or ``ValueError`` keeps working::

    try:
        ds = dreamdb.Dataset.open("missing", store="file:///data")
    except KeyError:            # NotFoundError is a KeyError
        ...

``err.code`` is the stable code name ("not_found", ...), the same string the CLI prints
with ``--json``.
"""

from __future__ import annotations

from typing import Dict, Type

__all__ = [
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "CorruptError",
    "UnavailableError",
    "StorageIOError",
    "UnsupportedError",
    "PermissionDeniedError",
    "InternalError",
    "class_for_code",
]


class Error(Exception):
    """Base class of every DreamDB error. ``code`` names the status code."""

    code: str = "internal"

    def __str__(self) -> str:
        # KeyError quotes its message; every DreamDB error prints it plainly.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class InvalidArgumentError(Error, ValueError):
    """The request is malformed (bad name, URI, argument). Retrying fails the same way."""

    code = "invalid_argument"


class NotFoundError(Error, KeyError):
    """The named object, ref, dataset, field or anchor does not exist."""

    code = "not_found"


class AlreadyExistsError(Error, FileExistsError):
    """A create-if-absent target (dataset, branch, snapshot) already exists."""

    code = "already_exists"


class ConflictError(Error):
    """A compare-and-swap lost to a concurrent writer. Re-read and retry."""

    code = "conflict"


class CorruptError(Error, ValueError):
    """Stored or supplied bytes are invalid. Do not retry; restore or report."""

    code = "corrupt"


class UnavailableError(Error, ConnectionError):
    """A transient failure; retry with backoff (the operation may have been applied)."""

    code = "unavailable"


class StorageIOError(Error, OSError):
    """A permanent I/O failure of the storage backend (disk full, read-only file system)."""

    code = "io_error"


class UnsupportedError(Error, NotImplementedError):
    """The data or request needs something this build does not support. Upgrade."""

    code = "unsupported"


class PermissionDeniedError(Error, PermissionError):
    """The caller may not do this (read-only dataset handle, read-only store)."""

    code = "permission_denied"


class InternalError(Error, RuntimeError):
    """A bug in DreamDB: an invariant failed. Please report it."""

    code = "internal"


_BY_CODE: Dict[str, Type[Error]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        ConflictError,
        CorruptError,
        UnavailableError,
        StorageIOError,
        UnsupportedError,
        PermissionDeniedError,
        InternalError,
    )
}


def class_for_code(code: str) -> Type[Error]:
    """The exception class for a status code name; InternalError for unknown codes.

    The C++ bindings call this (python/src/errors.cc) to translate every error.
    """
    return _BY_CODE.get(code, InternalError)
