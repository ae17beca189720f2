"""Processes for the compaction tests: streaming writers and a lease holder (run as scripts)."""

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


def stream(root: str, proc: int, commits: int, batch: int) -> None:
    """Small commits of unique rows (ids proc * 10^7 + k), as streaming jobs make them."""
    table = ss.open_store(root).table("t")
    with table.writer(commit_every_rows=batch, writer_id=f"w{proc}") as w:
        for k in range(commits):
            w.write(rows(proc * 10_000_000 + k * batch, batch), commit_token=k)
            time.sleep(0.01)


def hold_lease(root: str) -> None:
    """Pin the current snapshot with a short lease, report, then wait to be killed."""
    from samplestore.torch import SampleDataset
    ds = SampleDataset(ss.open_store(root).table("t"), lease_seconds=1.0)
    print(ds.snapshot_id, flush=True)
    time.sleep(600)


if __name__ == "__main__":
    if sys.argv[1] == "stream":
        stream(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "lease":
        hold_lease(sys.argv[2])
