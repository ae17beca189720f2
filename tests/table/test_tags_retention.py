"""Retention policies and tags: which snapshots expiry keeps, and reading a tagged snapshot
again exactly, after appends, deletes, compaction, expiry, GC and daemon passes."""

import datetime as dt
import os
import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import samplestore as ss
from samplestore.catalog import RetentionPolicy
from samplestore.compaction import run_once
from samplestore.format import read_file
from samplestore.torch import SampleDataset

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Sparse("ids"), ss.Label("y"),
                    ss.Scalar("ds", "string")])
WEEK = 7 * 24 * 3600.0


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({"row_id": pa.array(r), "ids": pa.array([[int(x)] * (1 + int(x) % 3) for x in r], pa.list_(pa.int64())),
                     "y": pa.array((r % 2).astype(np.float32)), "ds": pa.array([f"d{int(x) % 2}" for x in r])})


def ids(table, **kw) -> np.ndarray:
    return np.sort(table.scan(columns=["row_id"], **kw).to_arrow().column("row_id").to_numpy())


def snapshot_ids(table) -> list[int]:
    return [s.snapshot_id for s in table.snapshots()]


def age_snapshots(table, upto: int, seconds: float) -> None:
    """Make snapshots 1..upto look ``seconds`` older (the catalog records commit times)."""
    con = sqlite3.connect(os.path.join(table.store.root, "catalog.db"))
    with con:
        con.execute("UPDATE snapshots SET created_at = created_at - ? WHERE table_name = ? AND snapshot_id <= ?",
                    (seconds, table.name, upto))
    con.close()


@pytest.fixture
def table(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", SCHEMA, partition_by=["ds"])
    for k in range(6):
        t.append(rows(k * 100, 100))
    return t


# -- the retention policy ---------------------------------------------------------------------
def test_the_default_policy_keeps_a_week_of_snapshots_and_the_last(table):
    assert table.retention == RetentionPolicy(retain_last=1, older_than=WEEK)
    assert table.expire_snapshots() == []  # all six are younger than a week
    assert snapshot_ids(table) == [1, 2, 3, 4, 5, 6]
    age_snapshots(table, upto=6, seconds=8 * 24 * 3600)
    assert table.expire_snapshots() == [1, 2, 3, 4, 5]  # older than a week; the last stays
    assert snapshot_ids(table) == [6]


def test_a_policy_is_stored_with_the_table_and_read_back_by_another_process(table):
    got = table.set_retention(retain_last=3, older_than=dt.timedelta(hours=12))
    assert got == RetentionPolicy(retain_last=3, older_than=12 * 3600.0)
    again = ss.open_store(table.store.root).table("t")
    assert again.retention == got
    assert table.set_retention(retain_last=None, older_than=60) == again.retention == RetentionPolicy(None, 60.0)
    assert table.set_retention() == RetentionPolicy()  # back to the defaults


@pytest.mark.parametrize("kw", [{"retain_last": 0}, {"retain_last": 2.5}, {"retain_last": True},
                                {"older_than": -1}, {"older_than": float("nan")}, {"older_than": "7d"}])
def test_a_bad_policy_is_refused_and_nothing_is_stored(table, kw):
    with pytest.raises(ValueError, match="retain_last|older_than"):
        table.set_retention(**kw)
    assert table.retention == RetentionPolicy()


def test_expire_follows_the_tables_policy_and_explicit_values_win(table):
    table.set_retention(retain_last=4, older_than=None)
    assert table.expire_snapshots() == [1, 2]
    # Explicit values replace the policy for this call only.
    assert table.expire_snapshots(retain_last=2) == [3, 4]
    assert table.retention == RetentionPolicy(4, None)
    table.append(rows(1000, 10))  # 7
    assert table.expire_snapshots(older_than=3600) == []  # everything is younger than an hour
    assert table.expire_snapshots(older_than=0) == [5, 6]  # age alone: at least the newest stays
    assert snapshot_ids(table) == [7]


def test_the_daemon_pass_follows_each_tables_policy_unless_told(tmp_path):
    store = ss.open_store(tmp_path / "s", create=True)
    a, b = (store.create_table(n, SCHEMA, partition_by=["ds"]) for n in ("a", "b"))
    for k in range(5):
        a.append(rows(k * 100, 100))
        b.append(rows(k * 100, 100))
    a.set_retention(retain_last=2, older_than=None)  # b keeps the default: a week
    reports = run_once(store, target_file_bytes=1 << 20, grace_seconds=0)
    assert all("error" not in r for r in reports), reports
    assert [r["table"] for r in reports] == ["a", "b"]
    assert reports[0]["snapshots_expired"] > 0 and reports[1]["snapshots_expired"] == 0
    assert snapshot_ids(a) == [a.current_snapshot_id - 1, a.current_snapshot_id]
    assert snapshot_ids(b)[:5] == [1, 2, 3, 4, 5]  # young: nothing expired
    # Explicit values win over every table's policy.
    run_once(store, target_file_bytes=1 << 20, retain_last=1, grace_seconds=0)
    assert snapshot_ids(a) == [a.current_snapshot_id] and snapshot_ids(b) == [b.current_snapshot_id]
    assert np.array_equal(ids(a), np.arange(500)) and np.array_equal(ids(b), np.arange(500))


# -- tags ---------------------------------------------------------------------------------------
def test_a_tag_survives_compaction_expiry_gc_and_daemon_passes_and_reads_the_same_rows(table):
    tag = table.tag("train-2026-11-20")
    assert (tag.name, tag.snapshot_id) == ("train-2026-11-20", 6)
    expected = ids(table)
    files = sorted(f.path for f in table.files())
    # Everything a busy table goes through afterwards, with expiry as tight as it gets.
    for k in range(6, 10):
        table.append(rows(k * 100, 100))
    table.delete(pc.field("row_id").isin([5, 250, 777]))
    table.compact(target_file_bytes=1 << 20)
    assert table.expire_snapshots(retain_last=1)  # snapshots went, the tagged one stayed
    assert table.gc(grace_seconds=0)["files_removed"] > 0
    store = table.store
    for _ in range(2):
        assert all("error" not in r for r in run_once(store, target_file_bytes=1 << 20, retain_last=1,
                                                      grace_seconds=0))
    assert snapshot_ids(table) == [6, table.current_snapshot_id]
    assert sorted(f.path for f in table.files(snapshot="train-2026-11-20")) == files
    assert np.array_equal(ids(table, snapshot="train-2026-11-20"), expected)  # the deleted rows included
    assert table.count(snapshot="train-2026-11-20") == 600
    assert table.snapshot("train-2026-11-20").snapshot_id == 6
    ds = SampleDataset(table, batch_size=64, snapshot="train-2026-11-20", seed=1)
    assert ds.snapshot_id == 6 and ds.num_rows == 600
    got = np.concatenate([b.extras["row_id"].numpy() for b in ds])
    ds.close()
    assert np.array_equal(np.sort(got), expected)
    # The current snapshot went on without the deleted rows.
    assert np.array_equal(ids(table), np.setdiff1d(np.arange(1000), [5, 250, 777]))


def test_untagging_lets_expiry_and_gc_purge_the_snapshot_and_its_deleted_rows(table):
    table.tag("before-erasure")
    table.delete(pc.field("row_id") == 42)
    table.compact(target_file_bytes=1 << 20)
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    assert 42 in ids(table, snapshot="before-erasure")  # the tag holds the erased row's file
    gone = table.untag("before-erasure")
    assert gone.snapshot_id == 6 and table.tags() == []
    assert table.expire_snapshots(retain_last=1) == [6]
    assert table.gc(grace_seconds=0)["files_removed"] > 0
    with pytest.raises(ss.SnapshotNotFound, match=r"no tag 'before-erasure'; tags: \[\]"):
        table.scan(snapshot="before-erasure")
    on_disk = [os.path.join(d, n) for d, _, ns in os.walk(table.data_dir) for n in ns if n.endswith(".ssf")]
    assert len(on_disk) == len(table.files())  # only the compacted files are left
    stored = np.concatenate([read_file(p, columns=["row_id"]).column(0).to_numpy() for p in on_disk])
    assert np.array_equal(np.sort(stored), np.setdiff1d(np.arange(600), [42]))  # the erasure is physical now


def test_tags_are_listed_named_like_tables_and_not_silently_moved(table):
    table.tag("b", snapshot=2)
    table.tag("a")
    assert [(t.name, t.snapshot_id) for t in table.tags()] == [("a", 6), ("b", 2)]
    with pytest.raises(ss.CatalogError, match=r"has a tag 'b' already \(on snapshot 2\).*replace=True"):
        table.tag("b")
    assert table.tag("b", replace=True).snapshot_id == 6
    assert table.tag("c", snapshot="a").snapshot_id == 6  # a tag names a snapshot wherever an id does
    for bad in ("7", "a/b", "..", "", "x y", "t\n"):
        with pytest.raises(ss.CatalogError, match="tag name"):
            table.tag(bad)
    table.expire_snapshots(retain_last=1)
    with pytest.raises(ss.SnapshotNotFound, match=r"has no snapshot 3; snapshots: \[6\]"):
        table.tag("late", snapshot=3)
    with pytest.raises(ss.SnapshotNotFound, match=r"no tag 'nope'; tags: \['a', 'b', 'c'\]"):
        table.untag("nope")


def test_a_missing_tag_is_snapshot_not_found_listing_the_tags_everywhere(table):
    table.tag("train-1", snapshot=3)
    for read in (lambda: table.scan(snapshot="train-2"), lambda: table.files(snapshot="train-2"),
                 lambda: SampleDataset(table, snapshot="train-2"), lambda: table.snapshot("train-2")):
        with pytest.raises(ss.SnapshotNotFound, match=r"table 't' has no tag 'train-2'; tags: \['train-1'\]"):
            read()
    assert np.array_equal(ids(table, snapshot="3"), np.arange(300))  # digits are an id, as on a command line


def test_an_empty_table_has_nothing_to_tag(tmp_path):
    t = ss.open_store(tmp_path / "e", create=True).create_table("t", SCHEMA)
    with pytest.raises(ss.CatalogError, match="no commit yet"):
        t.tag("x")
    with pytest.raises(ss.CatalogError, match="nothing to tag"):
        t.tag("x", snapshot=0)


def test_dropping_a_table_drops_its_tags(table):
    table.tag("keep-me")
    store = table.store
    store.drop_table("t")
    again = store.create_table("t", SCHEMA, partition_by=["ds"])
    assert again.tags() == []
    again.append(rows(0, 10))
    assert again.tag("keep-me").snapshot_id == 1
