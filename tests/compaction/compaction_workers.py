"""Processes for the compaction tests: a lease holder (run as a script)."""

import sys
import time

import numpy as np
import pyarrow as pa

import samplestore as ss

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Sparse("ids"), ss.Label("y"),
                    ss.Scalar("ds", "string")])


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({"row_id": pa.array(r), "ids": pa.array([[int(x)] * (int(x) % 3) for x in r], pa.list_(pa.int64())),
                     "y": pa.array((r % 2).astype(np.float32)), "ds": pa.array([f"d{int(x) % 2}" for x in r])})


def hold_lease(root: str) -> None:
    """Pin the current snapshot with a short lease, report, then wait to be killed."""
    from samplestore.torch import SampleDataset
    ds = SampleDataset(ss.open_store(root).table("t"), lease_seconds=1.0)
    print(ds.snapshot_id, flush=True)
    time.sleep(600)


if __name__ == "__main__":
    if sys.argv[1] == "lease":
        hold_lease(sys.argv[2])
