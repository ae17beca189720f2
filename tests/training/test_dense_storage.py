"""Dense features stored as float16/bfloat16 reach the trainer as float32, equal to the scan."""

import numpy as np
import pytest
import torch

import samplestore as ss
from samplestore.torch import SampleDataset


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_dense_storage_batches_as_float32(tmp_path, storage):
    rng = np.random.default_rng(0)
    schema = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Dense("full", dim=3),
                        ss.Dense("half", dim=3, storage=storage), ss.Label("y")])
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", schema)
    x = rng.standard_normal((1000, 3)).astype(np.float32)
    t.append({"row_id": np.arange(1000), "full": x, "half": x, "y": np.zeros(1000, np.float32)})
    stored = np.stack(t.scan(columns=["half"]).to_arrow().column("half").to_numpy(zero_copy_only=False))
    assert not np.array_equal(stored, x) and np.allclose(stored, x, rtol=1e-2, atol=1e-2)  # rounded on disk
    for batch in SampleDataset(t, batch_size=300, features=["row_id", "full", "half", "y"]):
        assert batch.dense.dtype == torch.float32 and batch.dense.shape[1] == 6
        rows = batch.extras["row_id"].numpy()
        assert np.array_equal(batch.dense_feature("full").numpy(), x[rows])
        assert np.array_equal(batch.dense_feature("half").numpy(), stored[rows])
