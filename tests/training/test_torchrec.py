"""TorchRec on samplestore batches: an EmbeddingBagCollection trains on ``Batch.to_kjt()``.

Runs when torchrec is installed (``make test`` installs the CPU pair pinned in
requirements/torchrec-cpu.txt); without it ``test_dataset`` checks that ``to_kjt`` names the extra.
"""

import warnings

import numpy as np
import pytest
import torch

import samplestore as ss
from samplestore.torch import SampleDataset

from .test_dataset import SCHEMA, make_rows


@pytest.fixture(scope="module")
def torchrec():
    """torchrec, imported by the test that uses it, not at collection: its import (with
    fbgemm's) takes seconds, which every pytest-xdist worker would pay."""
    with warnings.catch_warnings():  # torchrec's own import-time deprecation notices are not ours
        warnings.simplefilter("ignore")
        return pytest.importorskip("torchrec")


def _pooled_by_hand(batch, key: str, weight: torch.Tensor) -> torch.Tensor:
    """Sum pooling of one key, from the KJT-layout arrays the batch holds."""
    sp = batch.sparse
    k, b = sp.keys.index(key), len(batch)
    lengths = sp.lengths.view(len(sp.keys), b)
    start = int(lengths[:k].sum())
    values = sp.values[start:start + int(lengths[k].sum())]
    seg = torch.repeat_interleave(torch.arange(b), lengths[k])
    return torch.zeros(b, weight.shape[1]).index_add_(0, seg, weight[values])


def test_embedding_bag_collection_trains_on_to_kjt(tmp_path, torchrec):
    EmbeddingBagCollection, EmbeddingBagConfig = torchrec.EmbeddingBagCollection, torchrec.EmbeddingBagConfig
    table = ss.open_store(tmp_path, create=True).create_table("t", SCHEMA)
    table.append(make_rows(0, 2000))
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables=[
        EmbeddingBagConfig(name="ids", embedding_dim=8, num_embeddings=30_000, feature_names=["a", "hist"]),
    ])
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.SGD(list(ebc.parameters()) + list(head.parameters()), lr=0.05)
    weight = ebc.embedding_bags["ids"].weight
    losses, rows = [], 0
    for batch in SampleDataset(table, batch_size=256, seed=1):
        kjt = batch.to_kjt()
        assert kjt.keys() == ["a", "w", "hist"]
        pooled = ebc(kjt)
        assert pooled.keys() == ["a", "hist"]
        with torch.no_grad():  # the collection pools exactly the ids of each row
            for key in ("a", "hist"):
                torch.testing.assert_close(pooled[key], _pooled_by_hand(batch, key, weight))
        logit = head(pooled.values()).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, batch.labels[:, 0])
        before = weight.detach().clone()
        opt.zero_grad()
        loss.backward()
        opt.step()
        # the step moved exactly the embedding rows of the ids this batch holds
        changed = torch.nonzero((weight.detach() != before).any(dim=1)).flatten()
        sp = batch.sparse
        per_key = sp.lengths.view(len(sp.keys), len(batch)).sum(dim=1).tolist()
        a, _w, hist = torch.split(sp.values, per_key)
        assert changed.tolist() == torch.unique(torch.cat([a, hist])).tolist()
        losses.append(loss.item())
        rows += len(batch)
    assert rows == 2000
    assert np.isfinite(losses).all()
