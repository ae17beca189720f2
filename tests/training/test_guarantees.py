"""SampleDataset keeps its promises on the paths production walks: row filters, persistent
workers, follow mode with ranks and workers, resume identity, leases under the daemon."""

import traceback

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

import samplestore as ss
from samplestore.torch import SampleDataset

from helpers import BOTH_CATALOGS, purge, purge_after_next_listing

from .test_dataset import SCHEMA, make_rows


def row_ids(batches) -> np.ndarray:
    return np.concatenate([b.extras["row_id"].numpy() for b in batches]) if batches else np.empty(0, np.int64)


def loader(ds, workers=0, **kw):
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, **kw)


def epoch_raises(exc, ds, workers, match=None):
    """An epoch of ``ds`` through a DataLoader raises ``exc``; its workers are then shut down
    at once. The raised exception's traceback holds the DataLoader iterator in a reference
    cycle, and an iterator collected with its cycle waits 5 s per worker for workers that
    never get the signal to stop: clearing the traceback's frames frees it right away."""
    it = iter(loader(ds, workers))
    with pytest.raises(exc, match=match) as info:
        for _ in it:
            pass
    traceback.clear_frames(info.tb)
    del it


@pytest.fixture
def table(tmp_path, catalog_backend):
    t = ss.open_store(tmp_path / "g", create=True).create_table("t", SCHEMA, partition_by=["ds"])
    for k, n in enumerate([1500, 700, 1300]):
        t.append(make_rows(sum([1500, 700, 1300][:k]), n), row_group_rows=250)
    return t


# -- row filters --------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_a_row_filter_delivers_exactly_the_scans_rows(table, workers):
    flt = (pc.field("like") == 1) & (pc.field("row_id") >= 300)
    expected = np.sort(table.scan(columns=["row_id"], filter=flt).to_arrow().column(0).to_numpy())
    assert 0 < len(expected) < 3500
    ds = SampleDataset(table, batch_size=100, filter=flt, seed=3)
    assert ds.num_rows == len(expected)
    got = row_ids(list(loader(ds, workers)))
    assert np.array_equal(np.sort(got), expected)


def test_a_row_filter_keeps_equal_batches_per_rank_and_resume(table):
    flt = pc.field("click") == 1
    expected = np.sort(table.scan(columns=["row_id"], filter=flt).to_arrow().column(0).to_numpy())
    per_rank = [list(SampleDataset(table, batch_size=64, filter=flt, rank=r, world_size=2)) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])
    assert np.array_equal(np.sort(np.concatenate([row_ids(b) for b in per_rank])), expected)
    ds = SampleDataset(table, batch_size=64, filter=flt)
    it = iter(ds)
    head = [next(it) for _ in range(5)]
    again = SampleDataset(table, batch_size=64, filter=flt)
    again.load_state_dict(ds.state_at(head[-1]))
    assert np.array_equal(np.sort(np.concatenate([row_ids(head), row_ids(list(again))])), expected)


def test_a_filter_on_the_partition_column_reads_no_rows_to_plan(table, monkeypatch):
    from samplestore.format import FileReader

    opened = []
    real = FileReader.__init__
    monkeypatch.setattr(FileReader, "__init__", lambda self, path, *a, **k: opened.append(path) or real(self, path, *a, **k))
    ds = SampleDataset(table, batch_size=128, filter=pc.field("ds") == "d1")
    assert opened == []
    got = row_ids(list(ds))
    assert np.array_equal(np.sort(got), np.array([r for r in range(3500) if r % 3 == 1]))


def test_a_dataset_filter_naming_a_missing_column_is_a_schema_error(table):
    with pytest.raises(ss.SchemaError, match="'likes'"):
        SampleDataset(table, filter=pc.field("likes") == 1)


# -- persistent workers --------------------------------------------------------------------
def test_epochs_reach_persistent_workers(table):
    ds = SampleDataset(table, batch_size=256, seed=11)
    dl = loader(ds, 2, persistent_workers=True)
    orders = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        batches = list(dl)
        assert {b.epoch for b in batches} == {epoch}
        assert [b.index for b in batches] == list(range(len(ds)))
        orders.append(row_ids(batches))
        # The same epoch from a fresh loader: the same order.
        fresh = SampleDataset(table, batch_size=256, seed=11)
        fresh.set_epoch(epoch)
        assert np.array_equal(orders[-1], row_ids(list(loader(fresh, 2))))
    for o in orders:
        assert np.array_equal(np.sort(o), np.arange(3500))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def test_a_resume_position_reaches_persistent_workers(table):
    ds = SampleDataset(table, batch_size=256, seed=2)
    dl = loader(ds, 2, persistent_workers=True)
    full = list(dl)
    ds.load_state_dict(ds.state_at(full[5]))
    rest = list(dl)
    assert [b.index for b in rest] == list(range(6, len(ds)))
    assert np.array_equal(row_ids(rest), row_ids(full[6:]))


# -- resume identity --------------------------------------------------------------------------
def test_a_state_from_another_dataset_is_refused(table, tmp_path):
    ds = SampleDataset(table, batch_size=128, seed=1)
    it = iter(ds)
    state = ds.state_at(next(it))
    for other in (SampleDataset(table, batch_size=128, seed=2), SampleDataset(table, batch_size=64, seed=1),
                  SampleDataset(table, batch_size=128, seed=1, world_size=2, rank=0),
                  SampleDataset(table, batch_size=128, seed=1, filter=pc.field("click") == 1)):
        with pytest.raises(ss.StateMismatch, match="another dataset"):
            other.load_state_dict(state)
        assert other.state_dict()["next_batch"] == 0  # nothing changed
    table.append(make_rows(3500, 10))
    with pytest.raises(ss.StateMismatch, match="snapshot_id"):
        SampleDataset(table, batch_size=128, seed=1).load_state_dict(state)
    t2 = ss.open_store(tmp_path / "other", create=True).create_table("u", SCHEMA)
    t2.append(make_rows(0, 3500))
    with pytest.raises(ss.StateMismatch, match="table"):
        SampleDataset(t2, batch_size=128, seed=1).load_state_dict(state)
    # The same dataset's state is taken.
    same = SampleDataset(table, batch_size=128, seed=1, snapshot=ds.snapshot_id)
    same.load_state_dict(state)
    assert same.state_dict()["next_batch"] == 1


# -- leases under the daemon ----------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
@BOTH_CATALOGS
def test_an_epoch_survives_compaction_expiry_and_gc(table, workers):
    ds = SampleDataset(table, batch_size=128, shuffle_buffer_rows=512)
    seen = []
    for i, b in enumerate(loader(ds, workers)):
        seen.append(b)
        if i == 2:
            assert purge(table)["files_removed"] == 0  # the dataset's lease keeps its files
    assert np.array_equal(np.sort(row_ids(seen)), np.arange(3500))


def test_a_dataset_leases_its_snapshot_before_it_plans(table, monkeypatch):
    fired = purge_after_next_listing(monkeypatch, table)  # the daemon runs right after the listing
    ds = SampleDataset(table, batch_size=128)
    monkeypatch.undo()
    assert fired[0]["files_removed"] == 0
    assert np.array_equal(np.sort(row_ids(list(ds))), np.arange(3500))


@pytest.mark.parametrize("workers", [0, 2])
@BOTH_CATALOGS
def test_a_lapsed_dataset_lease_stops_iteration_with_lease_expired(table, workers, monkeypatch):
    monkeypatch.setattr(type(table.store.catalog), "renew_lease", lambda self, lease_id, ttl: False)
    ds = SampleDataset(table, batch_size=128, shuffle_buffer_rows=512, lease_seconds=0.2)
    import time
    time.sleep(0.4)
    purge(table)
    epoch_raises(ss.LeaseExpired, ds, workers)


# -- follow mode ------------------------------------------------------------------------------
def follow_ds(t, rank=None, world=None, **kw):
    return SampleDataset(t, batch_size=64, follow=True, poll_seconds=0.05, follow_idle_seconds=0.6, rank=rank,
                         world_size=world, **kw)


@pytest.fixture
def stream(tmp_path, catalog_backend):
    t = ss.open_store(tmp_path / "f", create=True).create_table("t", SCHEMA)
    t.append(make_rows(0, 1000))
    return t


def grow(t):
    """Appends after the datasets pinned their snapshot, a delete, and a daemon pass."""
    for k in range(5):
        t.append(make_rows(1000 + k * 333, 333), row_group_rows=100)
    t.delete(pc.field("row_id").isin([1001, 1500, 2000]))
    purge(t)
    return np.setdiff1d(np.arange(1000 + 5 * 333), [1001, 1500, 2000])


@pytest.mark.slow
def test_follow_with_two_ranks_and_two_workers(stream):
    datasets = [follow_ds(stream, r, 2) for r in range(2)]
    expected = grow(stream)
    out = [list(loader(ds, 2)) for ds in datasets]
    # Every rank yields the same number of batches (a DDP step each), numbered in order.
    assert len(out[0]) == len(out[1]) > len(datasets[0])
    for batches in out:
        assert [b.index for b in batches] == list(range(len(batches)))
    # Every row once, deleted rows never, rows of files compaction replaced still read.
    assert np.array_equal(np.sort(np.concatenate([row_ids(b) for b in out])), expected)


def test_follow_skips_rows_deleted_before_they_are_read(stream):
    ds = follow_ds(stream)
    stream.append(make_rows(1000, 500))
    it = iter(ds)
    first = [next(it) for _ in range(2)]
    stream.delete(pc.field("row_id") >= 1250)  # rows the follower has not read yet
    got = np.concatenate([row_ids(first), row_ids(list(it))])
    assert np.array_equal(np.sort(got), np.arange(1250))


@BOTH_CATALOGS
def test_follow_resumes_exactly(stream):
    ds = follow_ds(stream, seed=4)
    expected = grow(stream)
    full = list(loader(ds, 2))
    cut = len(ds) + 7  # inside the follow rounds
    again = follow_ds(stream, seed=4, snapshot=ds.snapshot_id)
    again.load_state_dict(ds.state_at(full[cut - 1]))
    rest = list(loader(again, 2))
    assert [b.index for b in rest] == list(range(cut, len(full)))
    assert np.array_equal(np.concatenate([row_ids(full[:cut]), row_ids(rest)]), row_ids(full))
    assert np.array_equal(np.sort(row_ids(full)), expected)


@BOTH_CATALOGS
def test_follow_holds_a_lease_on_appends_it_has_not_read(stream):
    ds = follow_ds(stream)
    stream.append(make_rows(1000, 300))
    stream.append(make_rows(1300, 300))
    report = purge(stream)  # merges the appends away before the follower reads them
    assert report["files_removed"] == 0
    assert np.array_equal(np.sort(row_ids(list(ds))), np.arange(1600))
    ds.close()
    assert purge(stream)["files_removed"] > 0


def test_a_state_lacking_its_identity_is_refused(table):
    ds = SampleDataset(table, batch_size=128)
    for state in ({"epoch": 0, "next_batch": 3}, {"next_batch": 3, **{k: v for k, v in ds.state_dict().items()
                                                                     if k not in ("epoch", "next_batch")}}):
        with pytest.raises(ss.StateMismatch, match="lacks"):
            ds.load_state_dict(state)


def test_a_state_saved_with_other_workers_is_refused(table):
    ds = SampleDataset(table, batch_size=128, seed=5)
    batches = list(loader(ds, 2))
    state = ds.state_at(batches[4])
    assert state["num_workers"] == 2
    again = SampleDataset(table, batch_size=128, seed=5)
    again.load_state_dict(state)
    with pytest.raises(ss.StateMismatch, match="2 DataLoader worker"):
        list(loader(again, 0))
    again.load_state_dict(state)
    assert np.array_equal(row_ids(list(loader(again, 2))), row_ids(batches[5:]))


def test_an_abandoned_epoch_restarts_in_persistent_workers(table):
    ds = SampleDataset(table, batch_size=256, seed=8)
    dl = loader(ds, 2, persistent_workers=True)
    for i, _ in enumerate(dl):
        if i == 2:
            break
    again = list(dl)  # a new iteration starts the epoch again, as fresh workers would
    assert [b.index for b in again] == list(range(len(ds)))
    assert np.array_equal(np.sort(row_ids(again)), np.arange(3500))


def test_follow_leaves_unread_appends_alone_and_honours_deletes_made_after_a_daemon_pass(stream):
    ds = follow_ds(stream)
    for k in range(3):
        stream.append(make_rows(1000 + k * 200, 200))
    assert purge(stream)["files_removed"] == 0
    assert stream.compaction_plan().groups == ()  # the appends wait for the follower
    stream.delete(pc.field("row_id") >= 1450)  # recorded on the append files themselves
    got = row_ids(list(ds))
    assert np.array_equal(np.sort(got), np.arange(1450))
    ds.close()
    assert len(stream.compaction_plan().groups) > 0  # the follower is done: merged now


def test_a_follower_made_and_left_does_not_pin_compaction(stream):
    ds = follow_ds(stream, lease_seconds=0.3)
    stream.append(make_rows(1000, 200))
    stream.append(make_rows(1200, 200))
    import time
    time.sleep(0.5)  # nobody iterates: the lease bridging to the readers lapses
    assert stream.store.catalog.follow_watermark("t") is None
    assert len(stream.compaction_plan().groups) > 0
    stream.compact()
    with pytest.raises(ss.LeaseExpired, match="compacted while no follower held them"):
        list(ds)


def test_a_follow_resume_after_the_appends_were_compacted_is_refused(stream):
    ds = follow_ds(stream, seed=4)
    for k in range(4):
        stream.append(make_rows(1000 + k * 300, 300))
    full = list(loader(ds, 2))
    state = ds.state_at(full[len(ds) + 2])  # inside the follow rounds
    for k in range(2):
        stream.append(make_rows(2200 + k * 300, 300))
    ds.close()
    stream.compact()  # no follower now: the appends after the saved round are merged
    again = follow_ds(stream, seed=4, snapshot=ds.snapshot_id)
    again.load_state_dict(state)
    epoch_raises(ss.LeaseExpired, again, 2, match="compacted while no follower held them")


@pytest.mark.slow
def test_a_follow_position_reaches_persistent_workers(stream):
    ds = follow_ds(stream, seed=6)
    for k in range(4):
        stream.append(make_rows(1000 + k * 300, 300))
    dl = loader(ds, 2, persistent_workers=True)
    full = list(dl)
    cut = len(ds) + 5
    ds.load_state_dict(ds.state_at(full[cut - 1]))
    rest = list(dl)
    assert [b.index for b in rest] == list(range(cut, len(full)))
    assert np.array_equal(row_ids(rest), row_ids(full[cut:]))
