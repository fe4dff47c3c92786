# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""On demand (not CI): DreamDBDataset with a current PyTorch 2.x and torchdata's
StatefulDataLoader, which calls state_dict() / load_state_dict() inside each worker.

Run (a venv with torch 2.x, torchdata, pyarrow, numpy and pytest; the dreamdb package of
this checkout importable, e.g. installed with
`pip install --no-build-isolation ./python` after `pip install scikit-build-core
nanobind==3.1.0`, or the .venv's built package put on PYTHONPATH):

    mkdir -p /tmp/dreamdb-pkg && ln -sfn $PWD/.venv/lib/python3.11/site-packages/dreamdb \
        /tmp/dreamdb-pkg/dreamdb
    DREAMDB_TORCH2_TESTS=1 PYTHONPATH=/tmp/dreamdb-pkg /work/venv-torch2/bin/python -m pytest \
        -q -p no:cacheprovider tests/python/test_torch2_stateful.py \
        tests/python/test_torch_dataset.py tests/python/test_torch_map.py \
        tests/python/test_torch_distributed.py tests/python/test_loader.py

(the other files then run under PyTorch 2.x too). Without DREAMDB_TORCH2_TESTS=1 the tests
of this file are deselected by conftest.py.
"""

import pickle

import numpy as np
import pytest

import dreamdb

pytestmark = pytest.mark.ondemand_torch2

N = 500
BATCH = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("torch2") / "store")
    ds = dreamdb.Dataset.create("t", dreamdb.Schema().add_int("label"), store=path)
    ds.append_many({"label": np.arange(N)})
    return path


@pytest.fixture(scope="module")
def stateful():
    import torch

    assert int(torch.__version__.split(".")[0]) >= 2, torch.__version__
    from torchdata.stateful_dataloader import StatefulDataLoader
    return StatefulDataLoader


def make(store, **kw):
    from dreamdb.torch import DreamDBDataset
    return DreamDBDataset("t", store, fields=["label"], shuffle_seed=5,
                          loader_batch_size=BATCH, rank=1, world_size=2, **kw)


def flat(batches):
    return [a for b in batches for a in b["anchor"].tolist()]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("steps", [0, 1, 7, 20])
def test_stateful_dataloader_resumes_exactly(store, stateful, workers, steps):
    full = flat(stateful(make(store), batch_size=BATCH, num_workers=workers))
    assert len(full) == N // 2 and len(set(full)) == N // 2
    loader = stateful(make(store), batch_size=BATCH, num_workers=workers)
    it = iter(loader)
    head = flat(next(it) for _ in range(steps))
    state = pickle.loads(pickle.dumps(loader.state_dict()))
    del it
    again = stateful(make(store), batch_size=BATCH, num_workers=workers)
    again.load_state_dict(state)
    assert head + flat(again) == full


def test_stateful_dataloader_across_epochs(store, stateful):
    ds = make(store)
    loader = stateful(ds, batch_size=BATCH, num_workers=2)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        epochs.append(flat(loader))
    # A rank's half of the records changes with the epoch's order, like DistributedSampler.
    assert len(epochs[0]) == len(epochs[1]) == N // 2 and epochs[0] != epochs[1]
    assert len(set(epochs[0])) == N // 2


def test_plain_dataloader_consumed_state_with_torch2(store):
    import torch

    ds = make(store)
    full = flat(torch.utils.data.DataLoader(make(store), batch_size=BATCH, num_workers=2))
    head = []
    for batch in torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=2):
        head += batch["anchor"].tolist()
        if len(head) == 10 * BATCH:
            break
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.state_dict()
    again = make(store)
    again.load_state_dict(ds.state_dict(consumed=len(head)))
    rest = flat(torch.utils.data.DataLoader(again, batch_size=BATCH, num_workers=0))
    assert head + rest == full
