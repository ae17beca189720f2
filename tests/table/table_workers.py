"""Worker processes for the concurrency and crash tests (run as scripts: real processes)."""

import sys
import time

import numpy as np
import pyarrow as pa

import samplestore as ss

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Sparse("ids"), ss.Label("y")])
BATCH = 50


def batch(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({"row_id": pa.array(r), "ids": pa.array([[int(x)] * (int(x) % 4) for x in r], pa.list_(pa.int64())),
                     "y": pa.array((r % 2).astype(np.float32))})


def appender(root: str, proc: int, appends: int) -> None:
    table = ss.open_store(root).table("t")
    for k in range(appends):
        table.append(batch(proc * 1_000_000 + k * 10, 10))


def streamer(root: str) -> None:
    """Stream batches forever, resuming after the last committed token (killed by the test)."""
    table = ss.open_store(root).table("t")
    last = table.last_commit_token("job")
    k = int(last) + 1 if last is not None else 0
    # Once the process is killed its files count as leftovers at once (its pid is gone), so
    # the lease need not be short; a short one could lapse under load and close the writer.
    w = table.writer(commit_every_rows=2 * BATCH, writer_id="job", target_file_bytes=4096, lease_seconds=60.0)
    print("ready", flush=True)
    while True:
        w.write(batch(k * BATCH, BATCH), commit_token=k)
        k += 1
        time.sleep(0.002)


def holder(root: str) -> None:
    """Write rows into an open file, never commit, report, and wait to be killed mid-write."""
    table = ss.open_store(root).table("t")
    w = table.writer(commit_every_rows=None, writer_id="holder")
    w.write(batch(10_000_000, BATCH))
    print("holding", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    if sys.argv[1] == "append":
        appender(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "stream":
        streamer(sys.argv[2])
    elif sys.argv[1] == "hold":
        holder(sys.argv[2])
