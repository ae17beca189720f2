"""Processes of the soak test (run as scripts: real processes, killed for real).

Each process prints ``ready ...`` on stdout once set up, reports on stdout, stops cleanly
on SIGTERM (or at its time limit) and exits 0; any failure goes to stderr as a traceback
with exit status 1. Every loop is bounded by a count and by time.

A process opens the store from the root it is given: a local folder, or a URI such as
``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http`` (credentials from the
environment); the catalog comes from ``SAMPLESTORE_CATALOG`` where the test set it.
"""

import signal
import sys
import threading
import time

import numpy as np
import pyarrow as pa

import samplestore as ss

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Sparse("ids"), ss.Label("y"),
                    ss.Scalar("ds", "string")])
BATCH = 25  # rows per batch; batch k of writer i holds row ids row_base(i) + k * BATCH + [0, BATCH)
MAX_BATCHES = 4000
WRITER_BASE = 1_000_000_000


def row_base(writer: int) -> int:
    return writer * WRITER_BASE


def batch_rows(writer: int, k: int) -> pa.Table:
    r = row_base(writer) + k * BATCH + np.arange(BATCH)
    return pa.table({"row_id": pa.array(r), "ids": pa.array([[int(x)] * (int(x) % 3) for x in r], pa.list_(pa.int64())),
                     "y": pa.array((r % 2).astype(np.float32)), "ds": pa.array([f"d{int(x) % 2}" for x in r])})


def stop_event() -> threading.Event:
    """Set by SIGTERM: the process finishes its current step and stops."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def wait_for_rows(table, seconds: float) -> None:
    """Wait until the table has a snapshot: a reader starts with the writers (its imports take
    a while), but reads a table with rows."""
    deadline = time.monotonic() + seconds
    while table.current_snapshot_id == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no snapshot of table t within {seconds} s")
        time.sleep(0.05)


def writer(root: str, index: int, seconds: float) -> None:
    """Stream batches with commit token = batch index, resuming after the last committed token."""
    stop = stop_event()
    table = ss.open_store(root).table("t")
    wid = f"w{index}"
    last = table.last_commit_token(wid)
    k = int(last) + 1 if last is not None else 0
    # Small commits (every 2 batches, or 0.3 s), so the daemon has many small files to merge.
    w = table.writer(commit_every_rows=2 * BATCH, commit_every_seconds=0.3, writer_id=wid, lease_seconds=60.0)
    print(f"ready {k}", flush=True)
    deadline = time.monotonic() + seconds
    while not stop.is_set() and k < MAX_BATCHES and time.monotonic() < deadline:
        w.write(batch_rows(index, k), commit_token=k)
        k += 1
        time.sleep(0.03)
    w.close()
    print(f"done {table.last_commit_token(wid)} {k - 1}", flush=True)


def scan_reader(root: str, seconds: float) -> None:
    """Slow full scans of the current snapshot: 0.1 s per batch; each must hold every row once."""
    stop = stop_event()
    table = ss.open_store(root).table("t")
    wait_for_rows(table, 60)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    scans = 0
    while not stop.is_set() and time.monotonic() < deadline and scans < 1000:
        scan = table.scan(columns=["row_id"])
        expected = scan.plan().num_rows
        parts, batches = [], 0
        for b in scan.to_batches():
            parts.append(b.column(0).to_numpy())
            batches += 1
            time.sleep(0.1)
            if stop.is_set():
                break
        if stop.is_set():
            break  # an unfinished scan proves nothing either way
        ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
        dup = len(ids) - len(np.unique(ids))
        if len(ids) != expected or dup:
            raise AssertionError(f"scan of snapshot {scan.snapshot_id}: {len(ids)} rows read, {expected} expected, "
                                 f"{dup} duplicates")
        scans += 1
        print(f"scan {scan.snapshot_id} {len(ids)} rows {batches} batches", flush=True)
    print(f"done {scans}", flush=True)


def dataset_reader(root: str, seconds: float) -> None:
    """Epochs of a SampleDataset, each on the then-current snapshot: every row of it exactly once."""
    import torch
    from samplestore.torch import SampleDataset

    stop = stop_event()
    table = ss.open_store(root).table("t")
    wait_for_rows(table, 60)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    epochs = 0
    while not stop.is_set() and time.monotonic() < deadline and epochs < 1000:
        ds = SampleDataset(table, features=["row_id", "y"], batch_size=128, shuffle=True, seed=epochs,
                           lease_seconds=60.0)
        try:
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
            parts = []
            for b in loader:
                parts.append(b.extras["row_id"].numpy().copy())
                time.sleep(0.01)
            got = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
            want = np.sort(table.scan(columns=["row_id"], snapshot=ds.snapshot_id).to_arrow().column(0).to_numpy())
            if len(got) != ds.num_rows or not np.array_equal(got, want):
                raise AssertionError(
                    f"epoch {epochs} of snapshot {ds.snapshot_id}: {len(got)} rows delivered "
                    f"({len(got) - len(np.unique(got))} duplicates), the snapshot holds {ds.num_rows} "
                    f"({len(np.setdiff1d(want, got))} not delivered, {len(np.setdiff1d(got, want))} not in it)")
        finally:
            ds.close()
        epochs += 1
        print(f"epoch {ds.snapshot_id} {len(got)} rows", flush=True)
    print(f"done {epochs}", flush=True)


if __name__ == "__main__":
    role, root = sys.argv[1], sys.argv[2]
    if role == "writer":
        writer(root, int(sys.argv[3]), float(sys.argv[4]))
    elif role == "scan":
        scan_reader(root, float(sys.argv[3]))
    elif role == "dataset":
        dataset_reader(root, float(sys.argv[3]))
    else:
        raise SystemExit(f"unknown role {role!r}")
