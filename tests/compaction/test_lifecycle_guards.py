"""Guards of the lifecycle: GC stays inside the table's folder, the daemon lives through
errors of its environment, a table is not dropped from under its readers."""

import logging
import os
import threading
import types

import pytest

import samplestore as ss
from samplestore.compaction import daemon
from samplestore.table.lease import Lease, owner_tag
from samplestore.table.verify import verify_table

SCHEMA = ss.Schema([ss.Scalar("k", "int64"), ss.Label("y"), ss.Scalar("ds", "string")])


def _rows(start, n, ds="a"):
    return {"k": list(range(start, start + n)), "y": [0.0] * n, "ds": [ds] * n}


@pytest.fixture
def store(tmp_path):
    return ss.open_store(tmp_path / "store", create=True)


def _outside(tmp_path):
    """A folder outside the store holding files that look like a table's leftovers."""
    out = tmp_path / "precious"
    out.mkdir()
    for name in ("part-20200101000000-abc.ssf", "x.ssf-tmp"):
        (out / name).write_bytes(b"not yours")
    return out


# -- symbolic links --------------------------------------------------------------------------
def test_gc_does_not_follow_a_symlink_in_the_data_folder(tmp_path, store):
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    out = _outside(tmp_path)
    os.symlink(out, os.path.join(t.data_dir, "elsewhere"))
    os.symlink(out / "x.ssf-tmp", os.path.join(t.data_dir, "link.ssf-tmp"))
    t.gc(grace_seconds=0)
    assert sorted(os.listdir(out)) == ["part-20200101000000-abc.ssf", "x.ssf-tmp"]
    assert (out / "x.ssf-tmp").read_bytes() == b"not yours"
    assert t.count() == 10


def test_gc_does_not_walk_a_data_folder_that_is_a_symlink(tmp_path, store):
    t = store.create_table("t", SCHEMA)
    out = _outside(tmp_path)
    os.rmdir(t.data_dir)
    os.symlink(out, t.data_dir)
    report = t.gc(grace_seconds=0)
    assert report["leftovers_removed"] == 0 and "symbolic link" in report["skipped"]
    assert sorted(os.listdir(out)) == ["part-20200101000000-abc.ssf", "x.ssf-tmp"]
    from samplestore.table.verify import verify_table
    assert verify_table(t, remove_leftovers=True, grace_seconds=0)["removed"] == []
    assert sorted(os.listdir(out)) == ["part-20200101000000-abc.ssf", "x.ssf-tmp"]


def test_gc_does_not_delete_through_a_symlinked_partition_folder(tmp_path, store):
    """A partition folder moved to another disk and linked back: its files, once no
    snapshot needs them, stay where they are rather than GC deleting outside the table."""
    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    t.append(_rows(0, 10, "a"))
    t.append(_rows(10, 10, "a"))
    part = os.path.join(t.data_dir, "ds=a")
    moved = tmp_path / "other-disk" / "ds=a"
    os.makedirs(moved.parent)
    os.rename(part, moved)
    os.symlink(moved, part)
    t.compact()
    t.expire_snapshots(retain_last=1)
    before = sorted(os.listdir(moved))
    report = t.gc(grace_seconds=0)
    assert report["files_removed"] == 0
    assert sorted(os.listdir(moved)) == before  # nothing deleted outside the table's folder
    assert t.count() == 20
    # Still recorded as unreferenced: once moved back, GC removes them.
    assert len(t.catalog.unreferenced_files("t")) == 2
    os.unlink(part)
    os.rename(moved, part)
    assert t.gc(grace_seconds=0)["files_removed"] == 2


def test_gc_refuses_catalog_paths_leading_out_of_the_table(tmp_path, store):
    t = store.create_table("t", SCHEMA)
    victim = tmp_path / "victim.ssf"
    victim.write_bytes(b"x")
    f = ss.catalog.DataFile("../../../victim.ssf", {}, 1, 1, 1)
    t.catalog.commit("t", "append", add=[f])
    fid = t.files()[0].file_id
    t.catalog.commit("t", "replace", remove=[fid])
    t.expire_snapshots(retain_last=1)
    assert t.gc(grace_seconds=0)["files_removed"] == 0
    assert victim.exists()


# -- empty partition folders -------------------------------------------------------------------
NESTED = ss.Schema([ss.Scalar("k", "int64"), ss.Label("y"), ss.Scalar("ds", "string"), ss.Scalar("h", "string")])


def _purge(t, where):
    """Delete rows, then compact, expire and GC so that their files leave the disk."""
    import pyarrow.compute as pc

    t.delete(where if where is not None else pc.field("k") >= 0)
    t.compact()
    t.expire_snapshots(retain_last=1)
    return t.gc(grace_seconds=0)


def test_gc_removes_partition_folders_it_emptied_but_never_the_data_folder(store):
    import pyarrow.compute as pc

    t = store.create_table("t", NESTED, partition_by=["ds", "h"])
    for ds, h in (("a", "0"), ("a", "1"), ("b", "0")):
        t.append({"k": [1, 2], "y": [0.0, 0.0], "ds": [ds] * 2, "h": [h] * 2})
    assert _purge(t, (pc.field("ds") == "a") & (pc.field("h") == "0"))["files_removed"] == 1
    assert sorted(os.listdir(t.data_dir)) == ["ds=a", "ds=b"] and os.listdir(os.path.join(t.data_dir, "ds=a")) == ["h=1"]
    _purge(t, pc.field("ds") == "a")  # the last folder of ds=a goes, and ds=a with it
    assert os.listdir(t.data_dir) == ["ds=b"]
    _purge(t, None)
    assert os.path.isdir(t.data_dir) and os.listdir(t.data_dir) == []
    t.append({"k": [3], "y": [0.0], "ds": ["a"], "h": ["0"]})  # a writer makes the folders again
    assert t.count() == 1


def test_gc_keeps_folders_holding_anything_and_follows_no_link(tmp_path, store):
    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    for ds in ("a", "b"):
        t.append(_rows(0, 2, ds))
    (tmp_path / "empty-elsewhere").mkdir()
    os.symlink(tmp_path / "empty-elsewhere", os.path.join(t.data_dir, "ds=c"))  # an empty folder, behind a link
    note = os.path.join(t.data_dir, "ds=b", "README")
    with open(note, "w") as f:
        f.write("not a data file")
    _purge(t, None)
    assert sorted(os.listdir(t.data_dir)) == ["ds=b", "ds=c"]
    assert os.listdir(os.path.join(t.data_dir, "ds=b")) == ["README"]
    assert os.path.isdir(tmp_path / "empty-elsewhere")


def test_gc_removes_no_folder_of_a_table_folder_it_does_not_own(store):
    from samplestore.table.verify import TABLE_MARKER

    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    os.makedirs(os.path.join(t.data_dir, "ds=old"))
    with open(os.path.join(t.dir, TABLE_MARKER), "w") as f:
        f.write('{"catalog_id": "another", "table": "t", "created_at": 0}')
    assert "another catalog" in t.gc(grace_seconds=0)["skipped"]
    assert os.listdir(t.data_dir) == ["ds=old"]


# -- the daemon ------------------------------------------------------------------------------
def _record_daemon_waits(monkeypatch):
    """Make the daemon's stop event record each wait instead of sleeping through it."""
    waits = []

    class RecordingEvent(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return self.is_set()

    monkeypatch.setattr(daemon, "threading", types.SimpleNamespace(Event=RecordingEvent))
    return waits


def test_daemon_keeps_running_after_an_oserror_in_a_pass(store, monkeypatch, caplog):
    t = store.create_table("t", SCHEMA)
    for k in range(4):
        t.append(_rows(k * 10, 10))
    real, calls = daemon.compact, []

    def flaky(table, *args, **kwargs):
        calls.append(table.name)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(table, *args, **kwargs)

    monkeypatch.setattr(daemon, "compact", flaky)
    with caplog.at_level(logging.WARNING, logger="samplestore.daemon"):
        # The failed table is held back 1 s (the first back-off step); the fifth pass comes
        # 1.2 s after the first.
        passes = daemon.run_daemon(store, interval=0.3, max_passes=5)
    assert passes == 5
    assert len(calls) >= 2  # the failed table was tried again
    assert len(t.files()) == 1 and t.count() == 40
    assert "No space left on device" in caplog.text


def test_daemon_backs_off_when_a_whole_pass_fails(store, monkeypatch, caplog):
    store.create_table("t", SCHEMA).append(_rows(0, 10))
    real, calls = store.tables, []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            # What a catalog raises for a lock held too long (backends translate their drivers' errors).
            raise ss.CatalogError("catalog 'x/catalog.db': list tables failed with OperationalError: database is locked")
        return real()

    monkeypatch.setattr(store, "tables", flaky)
    waits = _record_daemon_waits(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="samplestore.daemon"):
        assert daemon.run_daemon(store, interval=5, max_passes=4) == 4
    assert waits == [5, 10, 5]  # doubled after the second failure in a row, back to the interval after a good pass
    assert caplog.text.count("pass failed") == 2 and "database is locked" in caplog.text


def test_daemon_started_while_the_catalog_is_unreachable_waits_for_it(store, monkeypatch, caplog):
    t = store.create_table("t", SCHEMA)
    for k in range(3):
        t.append(_rows(k * 10, 10))
    tries = []

    def open_store():
        tries.append(1)
        if len(tries) <= 2:
            raise ss.CatalogError("catalog 'postgresql://h/db': unreachable (connection refused)")
        return ss.open_store(store.root)

    waits = _record_daemon_waits(monkeypatch)
    with caplog.at_level(logging.INFO, logger="samplestore.daemon"):
        assert daemon.run_daemon(open_store, interval=5, max_passes=3) == 3
    assert len(tries) == 3 and waits == [5, 10]  # backed off, then opened once and kept
    assert caplog.text.count("unreachable") == 2 and "opened Store(" in caplog.text
    assert len(t.files()) == 1 and t.count() == 30  # the pass after the open compacted


def test_daemon_back_off_is_capped(store, monkeypatch):
    def broken():
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store, "tables", broken)
    waits = _record_daemon_waits(monkeypatch)
    assert daemon.run_daemon(store, interval=1, max_passes=6, max_backoff=10) == 6
    assert waits == [1, 2, 4, 8, 10]


@pytest.mark.parametrize("interval, failures, cap, expected", [
    (60, 1, 600, 60), (60, 2, 600, 120), (60, 4, 600, 480), (60, 9, 600, 600),
    (0, 1, 600, 1), (0, 3, 600, 4), (0, 3, 0.01, 0.01), (30, 5, 10, 30),
])
def test_backoff_doubles_and_is_capped(interval, failures, cap, expected):
    assert daemon._backoff(interval, failures, cap) == expected


# -- dropping a table under its readers -------------------------------------------------------
def test_store_drop_table_refuses_while_a_reader_holds_a_lease(store):
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    files = [os.path.join(t.dir, f.path) for f in t.files()]
    reader = Lease(store.catalog, "t", t.current_snapshot_id, ttl=60)
    try:
        with pytest.raises(ss.CatalogError, match=rf"{owner_tag(os.getpid())} on snapshot 1"):
            store.drop_table("t")
        assert store.tables() == ["t"] and all(os.path.exists(p) for p in files)
        store.drop_table("t", force=True)
        assert store.tables() == [] and not os.path.exists(t.dir)
    finally:
        reader.release()


def test_store_drop_table_after_the_reader_is_done(store):
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    Lease(store.catalog, "t", 1, ttl=60).release()
    store.drop_table("t")
    assert store.tables() == []


def test_expiry_never_drops_snapshots_committed_after_it_listed_them(tmp_path, monkeypatch):
    """expire_snapshots lists the snapshots, chooses what to keep, then asks the catalog: a
    commit in between must survive, whatever retain_last says."""
    from samplestore.compaction import expire_snapshots

    store = ss.open_store(tmp_path / "x", create=True)
    t = store.create_table("t", ss.Schema([ss.Scalar("k", "int64"), ss.Label("y")]))
    for k in range(3):
        t.append({"k": [k], "y": [0.0]})
    stale = t.snapshots()  # what expiry lists ...
    t.append({"k": [3], "y": [0.0]})  # ... before two more commits land
    t.append({"k": [4], "y": [0.0]})
    monkeypatch.setattr(type(t), "snapshots", lambda self: stale)
    dropped = expire_snapshots(t, retain_last=1)
    monkeypatch.undo()
    assert dropped == [1, 2]
    assert [s.snapshot_id for s in t.snapshots()] == [3, 4, 5]


# -- writers that start or finish while GC reads the catalog ----------------------------------
def _spy(obj, monkeypatch, method, action):
    """Make ``obj``'s ``method`` (as GC calls it on the table's catalog or storage) run
    ``action`` once, right after the real read: what a writer in another process could do
    between two of GC's reads."""
    cls = type(obj)
    real = getattr(cls, method)
    done = []

    def spy(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if not isinstance(out, (list, set, dict, tuple)):
            out = list(out)  # a lazy listing: read now, before the action
        if not done:
            done.append(True)
            action()
        return out

    monkeypatch.setattr(cls, method, spy)
    return done


def _data_files(t):
    return [e.path for e in t.storage.list_files(t.data_dir) if e.path.endswith(".ssf")]


def test_gc_keeps_the_files_of_a_writer_that_started_after_it_read_the_leases(store, monkeypatch):
    """With no grace at all, a writer that takes its lease just after GC read the leases has
    its first file (published, not yet committed) kept, and commits it."""
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    late = {}

    def start_writer():
        w = t.writer(commit_every_rows=None, target_file_bytes=1)  # rolls at once: the file is
        w.write(_rows(100, 5))  # published under its final name, its commit comes later
        assert len(_data_files(t)) == 2
        late["w"] = w

    done = _spy(t.catalog, monkeypatch, "live_leases", start_writer)
    report = t.gc(grace_seconds=0)
    monkeypatch.undo()
    assert done and report["leftovers_removed"] == 0
    late["w"].close()
    assert sorted(t.scan(columns=["k"]).to_arrow().column("k").to_pylist()) == [*range(10), *range(100, 105)]
    assert verify_table(t)["ok"]


@pytest.mark.parametrize("after", ["listing", "committed files"])
def test_gc_keeps_the_file_of_a_writer_that_commits_and_leaves_while_it_looks(store, monkeypatch, after):
    """A writer that commits and closes (its lease gone) right after GC listed the folder,
    or right after it read the committed files: its file must not be taken for an orphan.
    (GC reads the leases between the two; in any other order one of these loses the file.)"""
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    w = t.writer(commit_every_rows=None, target_file_bytes=1)
    w.write(_rows(100, 5))
    assert len(_data_files(t)) == 2
    obj, method = (t.storage, "list_files") if after == "listing" else (t.catalog, "all_file_paths")
    done = _spy(obj, monkeypatch, method, w.close)  # commits, then lets the lease go
    t.gc(grace_seconds=0)
    monkeypatch.undo()
    assert done
    assert sorted(t.scan(columns=["k"]).to_arrow().column("k").to_pylist()) == [*range(10), *range(100, 105)]
    assert verify_table(t)["ok"]


# -- a bounded compaction step -----------------------------------------------------------------
def test_compaction_time_limit_stops_between_groups_and_the_pass_still_expires_and_collects(store, monkeypatch):
    """Writers that keep adding small files must not keep the daemon in compaction for ever:
    with ``compact_seconds`` a pass stops starting groups when the time is up (the group
    under way is finished and committed), then expires snapshots and collects garbage."""
    from samplestore.compaction import compactor

    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    for day in "abcd":  # four partitions: four groups of two small files each
        t.append(_rows(0, 10, ds=day))
        t.append(_rows(10, 10, ds=day))
    clock = {"now": 1000.0}
    real_rewrite = compactor.rewrite_group

    def slow_rewrite(*args, **kwargs):
        clock["now"] += 10.0  # each group "takes" 10 s
        return real_rewrite(*args, **kwargs)

    monkeypatch.setattr(compactor, "rewrite_group", slow_rewrite)
    monkeypatch.setattr(compactor.time, "monotonic", lambda: clock["now"])
    res = compactor.compact(t, max_seconds=15.0)
    # Group 1 starts at 0 s, group 2 at 10 s (< 15), none at 20 s.
    assert len(res.commits) == 2 and res.time_limited
    assert len(t.files()) == 2 + 2 * 2 and t.count() == 80

    snaps_before = len(t.snapshots())
    # A bound already spent: the pass still commits its first group (every pass makes
    # progress), starts no other, and goes on to expiry and GC.
    reports = daemon.run_once(store, compact_seconds=0.0, retain_last=1, grace_seconds=0)
    assert reports[0]["time_limited"] and len(reports[0]["commits"]) == 1 and reports[0]["files_in"] == 2
    assert reports[0]["snapshots_expired"] == snaps_before and len(t.snapshots()) == 1  # its commit added one
    assert reports[0]["files_removed"] == 4 + 2  # the replaced small files, collected in the same pass
    assert t.count() == 80

    unbounded = compactor.compact(t)
    assert not unbounded.time_limited and len(t.files()) == 4 and t.count() == 80
    with pytest.raises(ValueError, match="max_seconds must be >= 0"):
        compactor.compact(t, max_seconds=-1)


def test_cli_compact_seconds_is_a_duration_and_zero_means_no_bound(store, capsys):
    from samplestore.cli.main import main

    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    for day in "ab":
        t.append(_rows(0, 10, ds=day))
        t.append(_rows(10, 10, ds=day))
    assert main(["compact", store.root, "t", "--compact-seconds", "-5"]) == 2
    assert "expected a duration" in capsys.readouterr().err
    assert main(["compact", store.root, "t", "--compact-seconds", "0", "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 files" in out and "2 commits" in out and "bound" not in out
    assert len(t.files()) == 2 and t.count() == 40
