"""Scans keep their promises: a lease from planning to the last batch, exact row filters,
clear errors for filters that do not fit the table, and deletes of every row."""

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import samplestore as ss
from samplestore.table.lease import Lease

from helpers import purge, purge_after_next_listing

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Sparse("ids"), ss.Label("y"),
                    ss.Scalar("ds", "string")])


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({"row_id": pa.array(r), "ids": pa.array([[int(x)] * (int(x) % 3) for x in r], pa.list_(pa.int64())),
                     "y": pa.array((r % 2).astype(np.float32)), "ds": pa.array([f"d{x % 2}" for x in r])})


@pytest.fixture
def small_files(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", SCHEMA)
    for k in range(6):
        t.append(rows(k * 100, 100), row_group_rows=25)
    return t


def test_a_slow_scan_survives_compaction_expiry_and_gc(small_files):
    t = small_files
    reader = t.scan(columns=["row_id"]).to_batches()
    first = reader.read_next_batch()
    report = purge(t)
    assert report["files_removed"] == 0  # the scan's lease keeps the files it still reads
    rest = [b.column(0).to_numpy() for b in reader]
    ids = np.concatenate([first.column(0).to_numpy(), *rest])
    assert np.array_equal(np.sort(ids), np.arange(600))
    # Once the scan is done its lease is gone, and the next GC removes the old files.
    assert purge(t)["files_removed"] == 6


def test_to_arrow_and_count_release_their_lease(small_files):
    t = small_files
    assert t.scan(columns=["row_id"]).to_arrow().num_rows == 600
    assert t.count() == 600
    assert t.store.catalog.live_leases("t") == []


def test_a_scan_leases_before_it_plans(small_files, monkeypatch):
    """The daemon may run between resolving the snapshot and listing its files: the files
    listed must still be there when they are read."""
    t = small_files
    fired = purge_after_next_listing(monkeypatch, t)
    got = t.scan(columns=["row_id"]).to_arrow().column(0).to_numpy()
    assert fired and fired[0]["files_removed"] == 0
    assert np.array_equal(np.sort(got), np.arange(600))


def test_a_lease_on_an_expired_snapshot_is_not_taken(small_files):
    t = small_files
    old = t.current_snapshot_id - 2
    t.expire_snapshots(retain_last=1)
    with pytest.raises(ss.SnapshotNotFound):
        Lease(t.store.catalog, "t", old, ttl=30)
    # A scan of the current snapshot whose snapshot expired before its lease moves on.
    scan = t.scan(columns=["row_id"])
    t.append(rows(600, 10))
    t.compact()
    t.expire_snapshots(retain_last=1)
    assert scan.to_arrow().num_rows == 610


def test_a_lapsed_lease_is_an_error_the_reader_sees(small_files, monkeypatch):
    t = small_files
    scan = t.scan(columns=["row_id"], lease_seconds=0.3)
    reader = scan.to_batches()
    reader.read_next_batch()
    # The heartbeat cannot reach the catalog (a stalled process, a network partition) ...
    monkeypatch.setattr(type(t.store.catalog), "renew_lease", lambda self, lease_id, ttl: False)
    time.sleep(0.5)
    purge(t)  # ... so the lease lapses and GC removes the files
    with pytest.raises(ss.LeaseExpired, match="lapsed"):
        for _ in reader:
            pass


def test_the_heartbeat_notices_a_refused_renewal(small_files, monkeypatch):
    t = small_files
    monkeypatch.setattr(type(t.store.catalog), "renew_lease", lambda self, lease_id, ttl: False)
    lease = Lease(t.store.catalog, "t", t.current_snapshot_id, ttl=0.15)
    deadline = time.monotonic() + 5
    while not lease.lapsed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lease.lapsed
    with pytest.raises(ss.LeaseExpired):
        lease.check()


def test_an_expired_lease_is_not_revived_by_a_late_renewal(small_files):
    t = small_files
    catalog = t.store.catalog
    lease_id = catalog.acquire_lease("t", t.current_snapshot_id, 0.05)
    time.sleep(0.1)
    assert catalog.renew_lease(lease_id, 30) is False


def test_delete_with_a_true_filter_deletes_every_row(small_files):
    t = small_files
    snap = t.delete(pc.scalar(True))
    assert snap is not None and snap.summary["deleted_rows"] == 600
    assert t.count() == 0 and t.to_arrow().num_rows == 0
    assert t.delete(pc.scalar(True)) is None  # nothing left to match


def test_delete_by_partition_and_by_row(small_files):
    t = small_files
    t.delete(pc.field("ds") == "d1")
    t.delete(pc.field("row_id") < 10)
    got = np.sort(t.to_arrow(columns=["row_id"]).column(0).to_numpy())
    expected = np.array([r for r in range(600) if r % 2 == 0 and r >= 10])
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("make", [
    lambda t: t.scan(filter=pc.field("nope") == 1),
    lambda t: t.delete(pc.field("nope") == 1),
    lambda t: t.count(filter=pc.field("nope").isin([1, 2])),
])
def test_a_filter_naming_a_missing_column_names_it(small_files, make):
    with pytest.raises(ss.SchemaError, match=r"'nope'.*columns: \['row_id', 'ids', 'y', 'ds'\]"):
        make(small_files)


def test_a_filter_of_the_wrong_type_is_a_schema_error(small_files):
    with pytest.raises(ss.SchemaError, match="row_id"):
        small_files.scan(filter=pc.field("row_id") == "x")
    with pytest.raises(ss.SchemaError, match="boolean"):
        small_files.scan(filter=pc.field("row_id") + 1)
    with pytest.raises(TypeError, match="Expression"):
        small_files.scan(filter="row_id == 1")


def test_a_filter_by_position_or_nested_path_is_refused(small_files):
    for flt in (pc.field(0) >= 5, pc.field("ids", 0) == 1):
        with pytest.raises(ss.SchemaError, match="by position or by a nested path"):
            small_files.scan(filter=flt)
        with pytest.raises(ss.SchemaError, match="by position or by a nested path"):
            small_files.delete(flt)


def test_a_scan_made_while_its_snapshot_expires_takes_the_new_one(small_files, monkeypatch):
    """A commit and an expiry between resolving "the current snapshot" and reading its schema."""
    t = small_files
    real = type(t).resolve_snapshot
    fired = []

    def resolve_then_move_on(self, snapshot, as_of):
        sid = real(self, snapshot, as_of)
        if not fired:
            fired.append(sid)
            t.append(rows(600, 5))
            t.expire_snapshots(retain_last=1)
        return sid

    monkeypatch.setattr(type(t), "resolve_snapshot", resolve_then_move_on)
    scan = t.scan(columns=["row_id"])
    assert scan.snapshot_id > fired[0]
    assert scan.to_arrow().num_rows == 605
