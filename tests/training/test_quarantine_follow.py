"""Quarantined rows and readers for training: a dataset skips them; a follower receives them
once, when their quarantine is released."""

import threading
import time

import numpy as np
import pyarrow as pa

import samplestore as ss
from samplestore.torch import SampleDataset

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Dense("x", dim=2), ss.Label("y"),
                    ss.Scalar("ds", "string")])


def make_rows(start: int, n: int, ds: str, missing: float = 0.0) -> pa.Table:
    x = np.ones((n, 2), dtype=np.float32)
    x[np.arange(n) < int(n * missing), 1] = np.nan
    return pa.table({"row_id": pa.array(np.arange(start, start + n)),
                     "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 2),
                     "y": pa.array(np.zeros(n, dtype=np.float32)), "ds": pa.array([ds] * n)})


def row_ids(ds) -> np.ndarray:
    return np.concatenate([b.extras["row_id"].numpy() for b in ds])


def test_a_follower_gets_a_released_quarantine_once_in_the_round_of_its_release(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", SCHEMA, partition_by=["ds"])
    t.set_expectations([{"rule": "missing_rate", "column": "x[1]", "max": 0.1, "action": "quarantine"}])
    t.append(make_rows(0, 1000, "d1"))
    t.append(make_rows(1000, 500, "d2", missing=0.5))
    [q] = t.quarantines()
    plain = SampleDataset(t, features=["row_id", "y"], batch_size=128, shuffle=False)
    assert np.array_equal(np.sort(row_ids(plain)), np.arange(1000))
    everything = SampleDataset(t, features=["row_id", "y"], batch_size=128, include_quarantined=True)
    assert np.array_equal(np.sort(row_ids(everything)), np.arange(1500))
    ds = SampleDataset(t, features=["row_id", "y"], batch_size=128, follow=True, poll_seconds=0.05,
                       follow_idle_seconds=1.5)

    def writer():
        time.sleep(0.2)
        t.append(make_rows(1500, 500, "d3"))
        time.sleep(0.2)
        t.release_quarantine(q.quarantine_id)

    th = threading.Thread(target=writer)
    th.start()
    ids = row_ids(ds)
    th.join()
    assert np.array_equal(np.sort(ids), np.arange(2000))
