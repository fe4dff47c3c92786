# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Opening a store to read never creates it; credentials in URIs are never shown.

`Dataset.open("x", store="./typo")` used to create an empty store at the mistyped path
before saying the dataset does not exist. Now a missing store is NotFoundError and nothing
is created; only `Dataset.create` and `Store.open(..., create=True)` create one. And a
store URI with a credential (s3://KEY:SECRET@...) never shows the secret in an exception
or a repr (spec/05-backend.md §2.5, §2.6).
"""

import pathlib

import pytest

import dreamdb

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET"


@pytest.fixture
def schema() -> dreamdb.Schema:
    return dreamdb.Schema().add_int("x")


def test_dataset_open_on_a_missing_store_does_not_create_it(tmp_path: pathlib.Path):
    typo = tmp_path / "typo"
    for call in (lambda: dreamdb.Dataset.open("d", store=str(typo)),
                 lambda: dreamdb.Dataset.open_at("d", "main", store=typo),
                 lambda: dreamdb.Store.open(f"file://{typo}"),
                 lambda: dreamdb.list_datasets(str(typo)),
                 lambda: dreamdb.verify(str(typo))):
        with pytest.raises(dreamdb.NotFoundError) as e:
            call()
        assert f"no DreamDB store at '{typo}'" in str(e.value)
        assert not typo.exists()


def test_dataset_create_and_store_open_create_make_the_store(tmp_path: pathlib.Path, schema):
    ds = dreamdb.Dataset.create("d", schema, store=str(tmp_path / "a"))
    assert dreamdb.Dataset.open("d", store=str(tmp_path / "a")).head == ds.head
    store = dreamdb.Store.open(str(tmp_path / "b"), create=True)
    assert (tmp_path / "b" / "dreamdb-store").exists()
    assert dreamdb.Store.open(str(tmp_path / "b")).uri == store.uri
    assert dreamdb.Store.open("memory://") is not None  # nothing to create in memory


@pytest.mark.parametrize("uri", [f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix",
                                 f"s3://bucket/p?X-Amz-Signature={SECRET}",
                                 f"file://user:{SECRET}@host/x"])
def test_store_uri_credentials_are_not_in_exceptions(uri: str, schema):
    for call in (lambda: dreamdb.Store.open(uri),
                 lambda: dreamdb.Dataset.open("d", store=uri),
                 lambda: dreamdb.Dataset.create("d", schema, store=uri)):
        with pytest.raises(dreamdb.Error) as e:
            call()
        assert SECRET not in str(e.value) and SECRET not in repr(e.value)
        assert "***" in str(e.value)
