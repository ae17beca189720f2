"""Compaction, deletes and their physical purge, expiry, leases, GC, crash safety, soak."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.compute as pc
import pytest

import samplestore as ss
from samplestore.format import FileReader
from samplestore.torch import SampleDataset

HERE = os.path.dirname(__file__)
WORKER = os.path.join(HERE, "compaction_workers.py")
sys.path.insert(0, HERE)
from compaction_workers import SCHEMA, rows  # noqa: E402
from helpers import BOTH_CATALOGS  # noqa: E402
from s3server import make_store  # noqa: E402

from samplestore.table.verify import TABLE_MARKER  # noqa: E402


def env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def ids(table, **kw) -> np.ndarray:
    return np.sort(table.scan(columns=["row_id"], **kw).to_arrow().column("row_id").to_numpy())


def on_disk_row_ids(table) -> np.ndarray:
    """Decode every file under the store's tables folder (every object of the store's prefix
    on S3; live or not) and return all row ids; anything but a data file must be a marker."""
    out = []
    storage = table.storage
    for entry in storage.list_files(storage.join(storage.root, "tables")):
        if os.path.basename(entry.path) == TABLE_MARKER:
            continue
        with FileReader(entry.path, table.storage) as r:  # anything else must be a readable data file
            out.append(r.read(["row_id"]).column("row_id").to_numpy())
    return np.concatenate(out) if out else np.empty(0, np.int64)


@pytest.fixture
def table(tmp_path, request, catalog_backend):
    # On the local disk, or on the S3 server where a test asks: parametrize("table", ["s3"], indirect=True);
    # its catalog SQLite, or PostgreSQL where a test asks (BOTH_CATALOGS).
    store = make_store(getattr(request, "param", "local"), tmp_path, request, "s")
    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    for k in range(30):
        t.append(rows(k * 100, 100))
    return t


@BOTH_CATALOGS
@pytest.mark.parametrize("table", ["local", "s3"], indirect=True)
def test_compaction_merges_small_files_and_keeps_every_row(table):
    assert len(table.files()) == 60
    plan = table.compaction_plan()
    assert plan.files_in == 60 and len(plan.groups) == 2
    res = table.compact()
    assert res.files_in == 60 and res.files_out == 2
    assert len(table.files()) == 2 and np.array_equal(ids(table), np.arange(3000))
    assert table.snapshots()[-1].operation == "replace"
    assert table.compaction_plan().groups == ()  # nothing left to do
    assert np.array_equal(ids(table, snapshot=30), np.arange(3000))  # time travel still reads old files


def test_sort_by_clusters_rows(table):
    table.compact(sort_by=["row_id"])
    for f in table.files():
        with FileReader(os.path.join(table.dir, f.path)) as r:
            col = r.read(["row_id"]).column("row_id").to_numpy()
        assert np.all(np.diff(col) > 0)


def test_sort_by_rewrites_large_unsorted_files_once(tmp_path):
    # One large append per partition, rows in descending order: big enough to be left alone
    # by size, but not clustered as asked.
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", SCHEMA, partition_by=["ds"])
    t.append(rows(0, 4000).take(np.arange(4000)[::-1]))
    before = {f.file_id: f for f in t.files()}
    target = min(f.file_bytes for f in before.values())  # every file counts as large
    assert t.compaction_plan(target).groups == ()  # by size alone nothing would change
    plan = t.compaction_plan(target, sort_by=["row_id"])
    assert sorted(i for g in plan.groups for i in g.file_ids) == sorted(before)
    assert all(len(g.file_ids) == 1 for g in plan.groups)
    res = t.compact(target_file_bytes=target, sort_by=["row_id"])
    assert res.files_in == 2 and t.snapshots()[-1].summary["sort_by"] == ["row_id"]
    files = t.files()
    assert {f.sort_key for f in files} == {("row_id",)} and not set(before) & {f.file_id for f in files}
    for f in files:
        with FileReader(os.path.join(t.dir, f.path)) as r:
            assert np.all(np.diff(r.read(["row_id"]).column("row_id").to_numpy()) > 0)
    assert np.array_equal(ids(t), np.arange(4000))
    # Sorted now, and recorded so: the same request does nothing; a prefix of the key too.
    assert t.compaction_plan(target, sort_by=["row_id"]).groups == ()
    assert t.compact(target_file_bytes=target, sort_by=["row_id"]).files_in == 0
    assert t.compaction_plan(target, sort_by=["row_id", "y"]).files_in == 2  # a longer key is another order


@BOTH_CATALOGS
def test_appends_during_compaction_are_kept(table, monkeypatch):
    from samplestore.compaction import compactor
    real = compactor.rewrite_group
    calls = []

    def slow(*a, **k):
        out = real(*a, **k)
        table.append(rows(10_000 + 50 * len(calls), 50))  # another writer commits meanwhile
        calls.append(1)
        return out

    monkeypatch.setattr(compactor, "rewrite_group", slow)
    table.compact()
    assert len(calls) >= 2
    assert np.array_equal(ids(table), np.concatenate([np.arange(3000), np.arange(10_000, 10_000 + 50 * len(calls))]))


@BOTH_CATALOGS
def test_delete_racing_compaction_is_not_undone(table, monkeypatch):
    from samplestore.compaction import compactor
    real = compactor.rewrite_group
    fired = []

    def racing(*a, **k):
        out = real(*a, **k)
        if not fired:
            fired.append(1)
            table.delete(pc.field("row_id").isin([0, 1, 2, 3]))  # lands after the plan
        return out

    monkeypatch.setattr(compactor, "rewrite_group", racing)
    res = table.compact()
    assert res.conflicts >= 1
    assert np.array_equal(ids(table), np.arange(4, 3000))
    assert len(table.files()) == 2


@BOTH_CATALOGS
@pytest.mark.parametrize("table", ["local", "s3"], indirect=True)
def test_erasure_of_a_user(table):
    gone = [7, 8, 1234, 2999]
    snap = table.delete(pc.field("row_id").isin(gone))
    assert snap.summary["deleted_rows"] == 4
    # Hidden at once, from scans and from the training dataset.
    assert not set(gone) & set(ids(table))
    ds = SampleDataset(table, batch_size=256)
    seen = np.concatenate([b.extras["row_id"].numpy() for b in ds])
    assert len(seen) == 2996 and not set(gone) & set(seen)
    ds.close()
    holders = {f.path for f in table.files() if set(gone) & set(
        FileReader(table.storage.join(table.dir, f.path), table.storage).read(["row_id"]).column("row_id").to_pylist())}
    assert holders  # still on disk until compaction + expiry + gc
    table.compact()
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    on_disk = on_disk_row_ids(table)
    assert not set(gone) & set(on_disk)
    assert len(on_disk) == 2996 and len(np.unique(on_disk)) == 2996
    for p in holders:
        assert not table.storage.exists(table.storage.join(table.dir, p))


@pytest.mark.slow
@BOTH_CATALOGS
def test_live_lease_keeps_files_and_dead_reader_lease_lapses(table):
    ds = SampleDataset(table, batch_size=500, lease_seconds=30)
    table.compact()
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    # The dataset's snapshot files survived GC: it still reads its whole epoch.
    assert np.array_equal(np.sort(np.concatenate([b.extras["row_id"].numpy() for b in ds])), np.arange(3000))
    ds.close()
    # Released: the snapshot it kept is expired by the next pass, and then its files go.
    assert table.gc(grace_seconds=0)["files_removed"] == 0
    table.expire_snapshots(retain_last=1)
    assert table.gc(grace_seconds=0)["files_removed"] == 60
    # A reader process that dies without releasing: its lease lapses after its ttl.
    table.append(rows(5000, 10))
    table.compact()
    p = subprocess.Popen([sys.executable, WORKER, "lease", table.store.root], env=env(), stdout=subprocess.PIPE, text=True)
    pinned = int(p.stdout.readline())
    table.append(rows(6000, 10))
    table.compact()
    table.expire_snapshots(retain_last=1)
    assert pinned in [s.snapshot_id for s in table.snapshots()]  # kept while leased
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    # Its 1 s lease lapses (the heartbeat may have renewed it just before the kill): expiry
    # takes the snapshot at the first pass after that, long before this bound.
    deadline = time.monotonic() + 10
    while True:
        table.expire_snapshots(retain_last=1)
        if pinned not in [s.snapshot_id for s in table.snapshots()] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert pinned not in [s.snapshot_id for s in table.snapshots()]
    assert table.gc(grace_seconds=0)["files_removed"] > 0
    assert np.array_equal(ids(table), np.concatenate([np.arange(3000), np.arange(5000, 5010), np.arange(6000, 6010)]))


@pytest.mark.slow
def test_sigkill_of_the_compactor_at_random_points(tmp_path):
    rng = np.random.default_rng(11)
    cli = [sys.executable, "-m", "samplestore"]
    for trial in range(4):
        t = ss.open_store(tmp_path / f"k{trial}", create=True).create_table("t", SCHEMA, partition_by=["ds"])
        for k in range(60):
            t.append(rows(k * 200, 200))
        p = subprocess.Popen([*cli, "compact", t.store.root, "t", "--target-mb", "0.05", "--grace", "0"], env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.3, 2.0)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert np.array_equal(ids(t), np.arange(12_000)), f"trial {trial}"
        from samplestore.table.verify import verify_table
        assert verify_table(t)["ok"]
        # Expiry to the last snapshot (not the table's week-long default), so GC leaves only live files.
        r = subprocess.run([*cli, "compact", t.store.root, "t", "--target-mb", "0.05", "--grace", "0", "--retain-last",
                            "1"], env=env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(ids(t), np.arange(12_000))
        assert t.compaction_plan(target_file_bytes=int(0.05 * (1 << 20))).groups == ()
        assert len(t.files()) < 60
        # Nothing the catalog does not know is left on disk.
        assert len(on_disk_row_ids(t)) == 12_000
