"""Streaming writer guarantees: new folders are durable."""

import os

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.table.writer import make_dirs_durable

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
    return ss.open_store(tmp_path / "store").create_table("t", SCHEMA, partition_by=["ds"])


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
