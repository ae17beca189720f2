"""A whole table life (write, stream, delete, compact, scan, train, expire, GC, drop) with every
data byte going through ArrowStorage over a pyarrow file system, publishing as on an object
store (no rename); the catalog stays SQLite on the local disk."""

import os

import numpy as np
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

import samplestore as ss
from samplestore.storage import ArrowStorage
from samplestore.table.verify import TABLE_MARKER, verify_table
from samplestore.table.writer import data_file_name

_MOCK = getattr(pafs, "_MockFileSystem", None)

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64"), ss.Sparse("ids"), ss.Label("click"), ss.Scalar("ds", "string")])


def rows(start: int, n: int) -> dict:
    r = np.arange(start, start + n)
    return {"row_id": r, "ids": [[int(i), int(i) + 1] for i in r], "click": (r % 2).astype(np.float32),
            "ds": [f"2026-11-0{1 + int(i) % 2}" for i in r]}


def row_ids(table) -> list[int]:
    return sorted(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_pylist())


@pytest.fixture(params=["local-folder", "in-memory"])
def fs(request, tmp_path):
    if request.param == "in-memory":
        if _MOCK is None:
            pytest.skip("this pyarrow has no in-memory _MockFileSystem")
        return _MOCK()
    (tmp_path / "fs").mkdir()
    return pafs.SubTreeFileSystem(str(tmp_path / "fs"), pafs.LocalFileSystem())


def test_a_table_lives_its_whole_life_on_an_arrow_file_system(fs, tmp_path):
    storage = ArrowStorage(fs, "bucket/samples", atomic_rename=False)
    store = ss.open_store(tmp_path / "catalog", create=True, storage=storage)
    assert store.storage is storage
    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    assert t.storage is storage and t.dir == "bucket/samples/tables/t"
    assert storage.exists(storage.join(t.dir, TABLE_MARKER))

    for k in range(10):
        t.append(rows(k * 50, 50))
    with t.writer(commit_every_rows=None, writer_id="job") as w:
        w.write(rows(500, 50), commit_token=1)
    assert len(t.files()) == 22
    assert t.delete(pc.field("row_id").isin([3, 77, 520])).summary["deleted_rows"] == 3
    expected = sorted(set(range(550)) - {3, 77, 520})
    assert row_ids(t) == expected

    res = t.compact()
    assert res.files_in == 22 and res.files_out == 2
    assert row_ids(t) == expected
    assert ss.open_store(tmp_path / "catalog", storage=storage).table("t").count() == len(expected)

    pytest.importorskip("torch")  # the training path reads through the storage too
    from samplestore.torch import SampleDataset

    ds = SampleDataset(t, batch_size=64, features=["row_id", "ids", "click"])
    seen = sorted(int(x) for b in ds for x in b.extras["row_id"])
    ds.close()
    assert seen == expected

    t.expire_snapshots(retain_last=1)
    report = t.gc(grace_seconds=0)
    assert report["files_removed"] == 22 and report["bytes_freed"] > 0
    on_storage = sorted(os.path.relpath(e.path, t.dir) for e in storage.list_files(t.data_dir))
    assert on_storage == sorted(f.path for f in t.files())  # only the two compacted files are left
    assert row_ids(t) == expected
    assert verify_table(t)["ok"]
    assert "tables" not in os.listdir(tmp_path / "catalog")  # no data byte went to the local root

    store.drop_table("t")
    assert not storage.exists(t.dir)
    store.close()


def test_a_partial_object_of_a_crashed_writer_is_an_orphan_gc_removes(tmp_path):
    """Without rename a writer writes the final name at once; if it dies, the partial file is
    referenced by no commit and GC removes it after the grace period. (On a local folder:
    pyarrow's in-memory file system gives every file one fixed modification time.)"""
    (tmp_path / "fs").mkdir()
    storage = ArrowStorage(pafs.SubTreeFileSystem(str(tmp_path / "fs"), pafs.LocalFileSystem()), "s",
                           atomic_rename=False)
    t = ss.open_store(tmp_path / "catalog", create=True, storage=storage).create_table("t", SCHEMA)
    t.append(rows(0, 10))
    partial = storage.join(t.data_dir, data_file_name(None))
    dead = storage.open_write(partial)
    dead.write(b"half a file")
    assert storage.exists(partial)
    assert row_ids(t) == list(range(10))  # never seen by readers: no commit references it
    assert t.gc(grace_seconds=3600)["leftovers_removed"] == 0  # younger than the grace period
    assert t.gc(grace_seconds=0)["leftovers_removed"] == 1
    assert not storage.exists(partial)
    dead.abort()
    assert row_ids(t) == list(range(10))
