"""Streaming writer guarantees: a failed commit is retried safely; new folders are durable."""

import errno
import os
import sqlite3

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.format import FileWriter
from samplestore.table.verify import verify_table
from samplestore.storage import LocalStorage

SCHEMA = ss.Schema([
    ss.Scalar("row_id", "int64", nullable=False),
    ss.Sparse("ids"),
    ss.Label("y"),
    ss.Scalar("ds", "string"),
])
DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({
        "row_id": pa.array(r),
        "ids": pa.array([[int(x)] * (int(x) % 3) for x in r], pa.list_(pa.int64())),
        "y": pa.array((r % 2).astype(np.float32)),
        "ds": pa.array([DAYS[int(x) % len(DAYS)] for x in r]),
    })


@pytest.fixture
def table(tmp_path):
    return ss.open_store(tmp_path / "store", create=True).create_table("t", SCHEMA, partition_by=["ds"])


def row_ids(table) -> np.ndarray:
    return np.sort(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy())


def files_on_disk(table) -> list[str]:
    """Every data or temporary file under the table's folder."""
    return sorted(os.path.join(d, n) for d, _, names in os.walk(table.data_dir) for n in names)


def fail_commits(monkeypatch, table, times: int = 1, exc: BaseException | None = None, after: bool = False) -> list:
    """Make the next ``times`` catalog commits raise ``exc`` (before committing, or ``after``
    the commit landed, as a lost reply would); return the list of calls made."""
    catalog = table.catalog
    real = catalog.commit
    calls: list = []

    def commit(*args, **kwargs):
        calls.append(kwargs.get("commit_token"))
        if len(calls) <= times:
            if after:
                real(*args, **kwargs)
            raise exc if exc is not None else sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog, "commit", commit)
    return calls


def assert_committed_once(table, expected_rows: int, token: str) -> None:
    """Rows 0..expected_rows-1 present exactly once, the token stored with them, nothing else on disk."""
    ids = row_ids(table)
    assert len(ids) == expected_rows and np.array_equal(ids, np.arange(expected_rows)), (len(ids), expected_rows)
    assert table.last_commit_token("job") == token
    assert table.snapshot().commit_token == token
    report = verify_table(table)
    assert report["ok"] and report["orphan_files"] == [] and report["temporary_files"] == [], report


# -- a failed commit is retried safely --------------------------------------------------------

def test_failed_commit_keeps_rows_and_token_and_a_retry_commits_them_once(table, monkeypatch):
    w = table.writer(commit_every_rows=None, writer_id="job", target_file_bytes=1)
    w.write(rows(0, 30), commit_token=0)
    w.write(rows(30, 30), commit_token=1)
    calls = fail_commits(monkeypatch, table)
    with pytest.raises(ss.CatalogError) as info:
        w.commit()
    msg = str(info.value)
    assert "commit of 60 rows" in msg and "commit token '1'" in msg and "table 't'" in msg, msg
    assert "database is locked" in msg and "still holds them: call commit() to retry, or abort()" in msg, msg
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert table.current_snapshot_id == 0 and table.last_commit_token("job") is None
    held = files_on_disk(table)
    assert len(held) >= 3
    # The writer's lease protects the held files from GC, however eager.
    table.gc(grace_seconds=0)
    assert files_on_disk(table) == held
    assert w.commit() is not None
    assert calls == ["1", "1"]
    assert_committed_once(table, 60, "1")
    assert table.snapshot().summary["added_rows"] == 60
    assert w.close() == table.current_snapshot_id  # nothing left: no further commit
    assert len(table.snapshots()) == 1


def test_close_retries_its_failed_commit(table, monkeypatch):
    w = table.writer(commit_every_rows=None, writer_id="job")
    w.write(rows(0, 40), commit_token=7)
    fail_commits(monkeypatch, table, exc=ss.CatalogError("catalog is busy"))
    with pytest.raises(ss.CatalogError, match="still holds them"):
        w.close()
    w.write(rows(40, 10), commit_token=8)  # still open: it can take more rows
    w.close()
    assert_committed_once(table, 50, "8")
    with pytest.raises(ValueError, match="closed"):
        w.write(rows(50, 1))


def test_failed_automatic_commit_in_write_holds_that_writes_rows(table, monkeypatch):
    w = table.writer(commit_every_rows=50, writer_id="job")
    calls = fail_commits(monkeypatch, table)
    w.write(rows(0, 20), commit_token=0)
    w.write(rows(20, 20), commit_token=1)
    with pytest.raises(ss.CatalogError, match="the rows of this write are held too: do not write them again"):
        w.write(rows(40, 20), commit_token=2)  # 60 rows: a commit is due, and fails
    assert table.current_snapshot_id == 0
    # The caller goes on with the next rows, as told; the next due commit takes all of them.
    w.write(rows(60, 20), commit_token=3)
    assert calls == ["2", "3"]
    assert_committed_once(table, 80, "3")
    w.write(rows(80, 20), commit_token=4)
    w.close()
    assert_committed_once(table, 100, "4")
    assert [s.commit_token for s in table.snapshots()] == ["3", "4"]


def test_explicit_retry_after_a_failed_automatic_commit(table, monkeypatch):
    w = table.writer(commit_every_rows=50, writer_id="job")
    fail_commits(monkeypatch, table, times=2)
    w.write(rows(0, 30), commit_token=0)
    with pytest.raises(ss.CatalogError):
        w.write(rows(30, 30), commit_token=1)
    with pytest.raises(ss.CatalogError, match="commit of 60 rows"):
        w.commit()
    w.commit()
    assert_committed_once(table, 60, "1")
    w.close()


def test_abort_after_a_failed_commit_leaves_no_files(table, monkeypatch):
    w = table.writer(commit_every_rows=None, writer_id="job", target_file_bytes=1)
    w.write(rows(0, 30), commit_token=0)
    fail_commits(monkeypatch, table)
    with pytest.raises(ss.CatalogError):
        w.commit()
    w.write(rows(30, 30), commit_token=1)  # open files beside the held ones
    assert len(files_on_disk(table)) >= 3
    w.abort()
    assert files_on_disk(table) == []
    assert table.current_snapshot_id == 0 and table.last_commit_token("job") is None
    assert table.catalog.live_leases("t") == []  # the writer's lease is released


def test_leaving_a_with_block_when_the_last_commit_fails_drops_the_rows_and_says_so(table, monkeypatch):
    with table.writer(commit_every_rows=40, writer_id="job") as w:
        w.write(rows(0, 40), commit_token=0)  # committed
    fail_commits(monkeypatch, table)
    with pytest.raises(ss.CatalogError, match=r"writer is closed and dropped every row not yet committed.*"
                                              r"last_commit_token\('job'\)") as info:
        with table.writer(commit_every_rows=None, writer_id="job") as w:
            w.write(rows(40, 20), commit_token=1)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert_committed_once(table, 40, "0")
    assert len(files_on_disk(table)) == len(table.files())


def test_leaving_a_with_block_by_an_exception_after_a_failed_commit_deletes_the_files(table, monkeypatch):
    fail_commits(monkeypatch, table)
    with pytest.raises(RuntimeError, match="job stops"):
        with table.writer(commit_every_rows=20, writer_id="job") as w:
            with pytest.raises(ss.CatalogError):
                w.write(rows(0, 30), commit_token=0)
            assert len(files_on_disk(table)) == 3  # held, one file per day
            raise RuntimeError("job stops")
    assert files_on_disk(table) == []
    assert table.current_snapshot_id == 0


@pytest.mark.parametrize("then", ["retry", "abort"])
def test_a_commit_that_failed_after_it_landed_is_neither_repeated_nor_deleted(table, monkeypatch, then):
    w = table.writer(commit_every_rows=None, writer_id="job")
    w.write(rows(0, 30), commit_token=0)
    fail_commits(monkeypatch, table, exc=sqlite3.OperationalError("disk I/O error"), after=True)
    with pytest.raises(ss.CatalogError, match="still holds them"):
        w.commit()
    if then == "retry":
        assert w.commit() is None  # it had landed: nothing more to commit
        w.write(rows(30, 30), commit_token=1)
        w.close()
        assert_committed_once(table, 60, "1")
        assert [s.summary["added_rows"] for s in table.snapshots()] == [30, 30]
    else:
        w.abort()
        assert_committed_once(table, 30, "0")


@pytest.mark.parametrize("where", ["write", "close"])
def test_a_failed_data_file_closes_the_writer_and_drops_what_was_not_committed(table, monkeypatch, where):
    w = table.writer(commit_every_rows=None, writer_id="job")
    w.write(rows(0, 30), commit_token=0)
    w.commit()
    w.write(rows(30, 30), commit_token=1)
    real = getattr(FileWriter, where)
    n = [0]

    def flaky(self, *args):
        n[0] += 1
        if n[0] == 2:  # the second partition's file: the first already holds rows of this batch
            if where == "close":
                self.abort()  # as a failing FileWriter.close does
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args)

    monkeypatch.setattr(FileWriter, where, flaky)
    with pytest.raises(OSError, match="No space left"):
        if where == "write":
            w.write(rows(60, 30), commit_token=2)
        else:
            w.commit()
    monkeypatch.setattr(FileWriter, where, real)
    # Which rows reached the failed file is unknown: nothing after the last commit may land.
    with pytest.raises(ValueError, match=r"closed: .*No space left.*dropped every row not yet committed"):
        w.commit()
    with pytest.raises(ValueError, match="closed"):
        w.close()
    assert_committed_once(table, 30, "0")
    assert len(files_on_disk(table)) == len(table.files())


# -- new folders are durable ------------------------------------------------------------------

@pytest.fixture
def fsynced(monkeypatch):
    """The paths of the folders and files fsynced while the test runs."""
    opened: dict[int, str] = {}
    out: list[str] = []
    real_open, real_fsync, real_close = os.open, os.fsync, os.close

    def spy_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = os.path.abspath(os.fspath(path))
        return fd

    def spy_fsync(fd):
        out.append(opened.get(fd, f"fd {fd}"))  # files opened by open() show as their fd
        return real_fsync(fd)

    def spy_close(fd):
        opened.pop(fd, None)  # the number is reused by the next open
        return real_close(fd)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "close", spy_close)
    return out


def test_make_dirs_durable_fsyncs_the_parent_of_each_folder_it_creates(tmp_path, fsynced):
    make_dirs_durable = LocalStorage().make_dirs
    base = tmp_path / "data"
    base.mkdir()
    target = base / "a=1" / "b=2"
    make_dirs_durable(str(target))
    assert target.is_dir()
    assert fsynced == [str(base), str(base / "a=1")]
    fsynced.clear()
    make_dirs_durable(str(target))  # exists: nothing to do
    make_dirs_durable(str(base))
    assert fsynced == []


def test_a_new_partition_folder_of_the_streaming_writer_is_fsynced_into_its_parent(table, fsynced):
    with table.writer(commit_every_rows=None, writer_id="job") as w:
        w.write(rows(0, 3), commit_token=0)
    assert fsynced.count(table.data_dir) == 3  # once per new ds=... folder
    fsynced.clear()
    with table.writer(commit_every_rows=None, writer_id="job") as w:
        w.write(rows(3, 3), commit_token=1)
    assert table.data_dir not in fsynced  # the folders exist now



def _gc_empties_each_new_folder_once(monkeypatch, table):
    """GC removes partition folders it finds empty: let it strike each new folder once, just
    after the writer made it and before the writer opens a file there."""
    real, struck = table.storage.make_dirs, []

    def make_then_lose(path):
        real(path)
        if path not in struck:
            struck.append(path)
            os.rmdir(path)  # as GC does: only an empty folder

    monkeypatch.setattr(table.storage, "make_dirs", make_then_lose)
    return struck


def test_a_partition_folder_gc_removes_before_the_writer_opens_its_file_is_made_again(table, monkeypatch):
    struck = _gc_empties_each_new_folder_once(monkeypatch, table)
    with table.writer(commit_every_rows=None, writer_id="job") as w:
        w.write(rows(0, 30), commit_token=0)
    assert len(struck) == 3  # one per day
    assert sorted(row_ids(table)) == list(range(30))
    assert verify_table(table)["ok"]


def test_a_failed_append_says_nothing_was_committed(table, monkeypatch):
    """append is one shot: a failed commit is not left for a retry the caller cannot make."""
    fail_commits(monkeypatch, table)
    with pytest.raises(ss.CatalogError, match="append to table 't' failed and committed nothing") as info:
        table.append(rows(0, 10))
    assert "retry" not in str(info.value)
    assert table.count() == 0
    assert files_on_disk(table) == []


def test_a_writer_whose_lease_lapsed_closes_and_drops_what_it_holds(table, monkeypatch):
    """Its files carry a lease id GC no longer honours: committing them could commit files
    GC removed as a dead writer's leftovers."""
    import time

    w = table.writer(commit_every_rows=None, writer_id="job", lease_seconds=0.2)
    w.write(rows(0, 30), commit_token=0)
    w.commit()
    monkeypatch.setattr(type(table.catalog), "renew_lease", lambda self, lease_id, ttl: False)
    w.write(rows(30, 30), commit_token=1)
    time.sleep(0.4)
    with pytest.raises(ss.LeaseExpired, match="lapsed"):
        w.write(rows(60, 30), commit_token=2)
    with pytest.raises(ValueError, match="closed: keeping its lease failed"):
        w.commit()
    assert_committed_once(table, 30, "0")
