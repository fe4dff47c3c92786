# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""help() reads well: the public classes and every public method and property have a
docstring that says something beyond the signature."""

import pydoc

import pytest

import dreamdb
from dreamdb.loader import LoaderCore, NumpyLoader
from dreamdb.torch import DreamDBDataset, DreamDBMapDataset

CLASSES = [dreamdb.Dataset, dreamdb.Schema, dreamdb.Store, DreamDBDataset, DreamDBMapDataset,
           LoaderCore, NumpyLoader]
DUNDERS = {"__len__", "__getitem__", "__iter__", "__getitems__", "__contains__"}


def doc_text(obj, name: str = "") -> str:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    doc = (obj.__doc__ or "").strip()
    # nanobind puts the signature "name(...) -> ..." first: keep what follows it.
    lines = doc.splitlines()
    if name and lines and lines[0].startswith(name + "("):
        doc = "\n".join(lines[1:]).strip()
    return doc


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_public_api_is_documented(cls):
    assert len(doc_text(cls)) > 40, f"{cls.__name__} has no class docstring"
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in DUNDERS:
            continue
        if not callable(member) and not isinstance(member, (property, staticmethod,
                                                             classmethod)):
            if type(member).__name__ != "nb_func" and not hasattr(member, "__get__"):
                continue
        if len(doc_text(member, name)) < 10:
            missing.append(name)
    assert missing == [], f"{cls.__name__}: undocumented {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_help_renders(cls):
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert cls.__name__ in text and "NO DOC" not in text.upper()
