"""The storage seam: one conformance class every backend passes, and what only some promise."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.fs as pafs
import pytest

import samplestore as ss
from samplestore.storage import (
    MISSING, REMOVED, UNSAFE, YOUNG, ArrowStorage, LocalStorage, PendingFile, Storage, redact, storage_for,
)
from samplestore.table.writer import data_file_name, writer_lease_of

_MOCK = getattr(pafs, "_MockFileSystem", None)
needs_mock = pytest.mark.skipif(_MOCK is None, reason="this pyarrow has no in-memory _MockFileSystem")

DATA = bytes(range(256)) * 10


class StorageConformance:
    """What every storage does. A backend's test class subclasses this and defines
    ``make(tmp_path) -> Storage``; ``has_folders`` says whether a file needs its folder made
    first, ``removes_empty_dirs`` whether :meth:`Storage.remove_empty_dirs` removes anything."""

    has_folders = True
    removes_empty_dirs = True

    def make(self, tmp_path) -> Storage:
        raise NotImplementedError

    @pytest.fixture
    def storage(self, tmp_path):
        return self.make(tmp_path)

    @pytest.fixture
    def top(self, storage):
        top = storage.join(storage.root, "t")
        storage.make_dirs(top)
        return top

    def names(self, storage, top):
        return sorted(os.path.relpath(e.path, top) for e in storage.list_files(top))

    # -- ranged reads -------------------------------------------------------------------------
    def test_ranged_reads(self, storage, top):
        p = storage.join(top, "f.bin")
        storage.write_bytes(p, DATA)
        with storage.open_read(p) as f:
            assert f.size == len(DATA)
            assert f.read_at(10, 5) == DATA[10:15]
            assert f.read_at(0, 0) == b""
            assert f.read_at(len(DATA) - 3, 100) == DATA[-3:]  # short only where the file ends
            buf = np.zeros(300, np.uint8)
            assert f.read_into(1000, buf) == 300
            assert buf.tobytes() == DATA[1000:1300]
            assert f.read_into(len(DATA) - 7, buf) == 7
        assert storage.read_bytes(p) == DATA

    def test_opening_a_missing_file_raises_file_not_found(self, storage, top):
        with pytest.raises(FileNotFoundError):
            storage.open_read(storage.join(top, "nope"))
        with pytest.raises(FileNotFoundError):
            storage.read_bytes(storage.join(top, "nope"))

    # -- write, publish, abort ------------------------------------------------------------------
    def test_publish_makes_the_file_visible_at_its_final_path_and_nothing_else(self, storage, top):
        p = storage.join(top, "a.ssf")
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        assert isinstance(f, PendingFile) and not f.closed
        f.write(DATA[:100])
        f.write(memoryview(DATA)[100:])
        f.publish()
        assert f.closed
        assert storage.read_bytes(p) == DATA
        info = storage.info(p)
        assert info.kind == "file" and info.size == len(DATA)
        assert self.names(storage, top) == ["a.ssf"]  # no temporary file left
        f.abort()  # a no-op once published
        assert storage.exists(p)
        with pytest.raises(ValueError, match="cannot be published"):
            f.publish()

    def test_abort_leaves_nothing(self, storage, top):
        p = storage.join(top, "a.ssf")
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        f.write(DATA)
        f.abort()
        f.abort()
        assert storage.info(p) is None
        assert self.names(storage, top) == []
        with pytest.raises(ValueError):
            f.publish()

    def test_an_exception_in_the_with_block_leaves_nothing(self, storage, top):
        p = storage.join(top, "a.ssf")
        with pytest.raises(RuntimeError):
            with storage.open_write(p) as f:
                f.write(DATA)
                raise RuntimeError("job died")
        assert storage.info(p) is None
        assert self.names(storage, top) == []

    def test_leaving_the_with_block_unpublished_leaves_nothing(self, storage, top):
        p = storage.join(top, "a.ssf")
        with storage.open_write(p) as f:
            f.write(DATA)
        assert not storage.exists(p)
        assert self.names(storage, top) == []

    def test_write_bytes_replaces_a_file(self, storage, top):
        p = storage.join(top, "marker.json")
        storage.write_bytes(p, b"one")
        storage.write_bytes(p, b"two!")
        assert storage.read_bytes(p) == b"two!"
        assert self.names(storage, top) == ["marker.json"]

    def test_a_file_in_a_missing_folder_is_file_not_found(self, storage, top):
        if not self.has_folders:
            pytest.skip("folders are implicit")
        with pytest.raises(FileNotFoundError):
            storage.open_write(storage.join(top, "no", "such", "a.ssf"))

    # -- listing ------------------------------------------------------------------------------
    def test_list_files_is_recursive_with_sizes_and_mtimes(self, storage, top):
        before = time.time()
        for rel, n in (("a", 1), ("x=1/b", 22), ("x=1/y=2/c", 333)):
            p = storage.join(top, *rel.split("/"))
            storage.make_dirs(os.path.dirname(p))
            storage.write_bytes(p, b"z" * n)
        storage.make_dirs(storage.join(top, "empty"))
        entries = {os.path.relpath(e.path, top): e for e in storage.list_files(top)}
        assert sorted(entries) == ["a", "x=1/b", "x=1/y=2/c"]
        assert [entries[k].size for k in sorted(entries)] == [1, 22, 333]
        for e in entries.values():
            assert e.kind == "file"
            assert before - 5 <= e.mtime <= time.time() + 5
        assert list(storage.list_files(storage.join(top, "missing"))) == []
        assert storage.info(storage.join(top, "x=1")).kind == "dir"
        assert storage.info(storage.join(top, "missing")) is None

    # -- removing -----------------------------------------------------------------------------
    def test_delete_missing_ok(self, storage, top):
        p = storage.join(top, "a")
        storage.write_bytes(p, b"1")
        assert storage.delete(p) is True
        assert not storage.exists(p)
        assert storage.delete(p) is False
        with pytest.raises(FileNotFoundError):
            storage.delete(p, missing_ok=False)

    def test_delete_under_is_guarded(self, storage, top):
        storage.make_dirs(storage.join(top, "d=1"))
        p = storage.join(top, "d=1", "f")
        storage.write_bytes(p, b"12345")
        assert storage.delete_under(top, "d=1/f", min_age=3600) == (YOUNG, 0)
        assert storage.exists(p)
        for bad in ("", ".", "../t/d=1/f", "d=1/../../x", "/d=1/f"):
            assert storage.delete_under(top, bad) == (UNSAFE, 0), bad
        assert storage.delete_under(top, "d=1") == (UNSAFE, 0)  # a folder
        assert storage.delete_under(top, "d=1/f") == (REMOVED, 5)
        assert storage.delete_under(top, "d=1/f") == (MISSING, 0)
        assert storage.delete_under(top, "nope/f") == (MISSING, 0)

    def test_delete_tree(self, storage, top):
        storage.make_dirs(storage.join(top, "x", "y"))
        storage.write_bytes(storage.join(top, "x", "y", "f"), b"1")
        storage.delete_tree(storage.join(top, "x"))
        assert not storage.exists(storage.join(top, "x"))
        storage.delete_tree(storage.join(top, "x"))  # gone already: fine

    # -- folders ------------------------------------------------------------------------------
    def test_make_dirs_is_idempotent(self, storage, top):
        d = storage.join(top, "a=1", "b=2")
        storage.make_dirs(d)
        storage.make_dirs(d)
        if self.has_folders:
            assert storage.info(d).kind == "dir"
        storage.write_bytes(storage.join(d, "f"), b"1")
        assert self.names(storage, top) == ["a=1/b=2/f"]

    def test_remove_empty_dirs(self, storage, top):
        for d in ("data/a=1/b=1", "data/a=1/b=2", "data/a=2", "data/keep", "data/a=3"):
            storage.make_dirs(storage.join(top, *d.split("/")))
        storage.write_bytes(storage.join(top, "data", "a=1", "b=2", "f"), b"1")
        removed = storage.remove_empty_dirs(top, "data", match=lambda n: "=" in n)
        if not self.removes_empty_dirs:
            assert removed == []
            return
        assert sorted(os.path.relpath(r, top) for r in removed) == ["data/a=1/b=1", "data/a=2", "data/a=3"]
        assert storage.info(storage.join(top, "data", "keep")).kind == "dir"  # not a partition folder
        assert storage.exists(storage.join(top, "data", "a=1", "b=2", "f"))
        assert storage.remove_empty_dirs(top, "data", match=lambda n: "=" in n) == []
        storage.delete(storage.join(top, "data", "a=1", "b=2", "f"))
        removed = storage.remove_empty_dirs(top, "data", match=lambda n: "=" in n)
        assert sorted(os.path.relpath(r, top) for r in removed) == ["data/a=1", "data/a=1/b=2"]
        assert storage.info(storage.join(top, "data")).kind == "dir"  # the base itself stays


class TestLocalStorage(StorageConformance):
    def make(self, tmp_path):
        return LocalStorage(tmp_path / "root")

    def test_the_temporary_name_keeps_the_final_name_and_its_writer_lease(self, storage, top):
        lease = "ab" * 16
        p = storage.join(top, data_file_name(lease))
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        (entry,) = storage.list_files(top)
        name = os.path.basename(entry.path)
        assert name.startswith("." + os.path.basename(p) + ".") and name.endswith(".ssf-tmp")
        assert writer_lease_of(name) == lease  # GC keeps a live writer's temporary files by it
        assert not os.path.exists(p)
        f.abort()

    def test_publish_fsyncs_the_file_and_then_its_folder(self, storage, top, monkeypatch):
        synced = []
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                      real_fsync(fd))[1])
        p = storage.join(top, "a.ssf")
        with storage.open_write(p, temp_suffix=".ssf-tmp") as f:
            f.write(b"x")
            f.publish()
        assert len(synced) == 2
        assert synced[0].endswith(".ssf-tmp") and synced[1] == top

    def test_an_unpublished_file_is_not_at_the_final_path(self, storage, top):
        p = storage.join(top, "a.ssf")
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        f.write(DATA)
        f._f.flush()  # its bytes are on disk, under the temporary name only
        assert not os.path.exists(p)
        (name,) = self.names(storage, top)
        assert name.endswith(".ssf-tmp") and os.path.getsize(os.path.join(top, name)) == len(DATA)
        f.abort()

    def test_a_writer_killed_mid_write_leaves_nothing_at_the_final_path(self, storage, top):
        p = storage.join(top, "a.ssf")
        code = ("import sys, time\n"
                "from samplestore.storage import LocalStorage\n"
                "f = LocalStorage().open_write(sys.argv[1], temp_suffix='.ssf-tmp')\n"
                "f.write(b'x' * 100000)\n"
                "print('writing', flush=True)\n"
                "while True:\n"
                "    f.write(b'y' * 1000)\n"
                "    time.sleep(0.001)\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        child = subprocess.Popen([sys.executable, "-c", code, p], stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout.readline() == b"writing\n"
            time.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert not os.path.exists(p)
        names = self.names(storage, top)
        assert len(names) == 1 and names[0].endswith(".ssf-tmp")

    def test_no_symbolic_link_is_followed(self, storage, top, tmp_path):
        outside = tmp_path / "outside"
        (outside / "d=1").mkdir(parents=True)
        (outside / "d=1" / "f").write_bytes(b"not yours")
        (outside / "e=1").mkdir()
        os.symlink(outside / "d=1", os.path.join(top, "d=1"))
        os.symlink(outside / "d=1" / "f", os.path.join(top, "g"))
        os.symlink(outside, os.path.join(tmp_path, "linked"))
        assert list(storage.list_files(top)) == []
        assert storage.info(os.path.join(top, "g")).kind == "link"
        assert storage.delete_under(top, "d=1/f") == (UNSAFE, 0)
        assert storage.delete_under(top, "g") == (UNSAFE, 0)
        assert storage.delete_under(str(tmp_path / "linked"), "d=1/f") == (UNSAFE, 0)
        assert storage.remove_empty_dirs(top, match=lambda n: "=" in n) == []
        assert storage.remove_empty_dirs(str(tmp_path), "linked") == []
        assert (outside / "d=1" / "f").read_bytes() == b"not yours" and (outside / "e=1").is_dir()


    def test_a_failure_after_the_rename_leaves_nothing_at_the_final_path(self, storage, top, monkeypatch):
        import samplestore.storage.local as local

        def broken_fsync_dir(path):
            raise OSError(5, "Input/output error (the folder's fsync)")

        p = storage.join(top, "f.bin")
        monkeypatch.setattr(local, "fsync_dir", broken_fsync_dir)
        with pytest.raises(OSError, match="fsync"):
            with storage.open_write(p) as f:
                f.write(b"x" * 10)
                f.publish()
        assert not storage.exists(p) and list(storage.list_files(top)) == []


class TestArrowStorageOverALocalFolder(StorageConformance):
    removes_empty_dirs = False

    def make(self, tmp_path):
        (tmp_path / "fs").mkdir()
        return ArrowStorage(pafs.SubTreeFileSystem(str(tmp_path / "fs"), pafs.LocalFileSystem()), "store")

    def test_it_publishes_by_rename(self, storage, top):
        assert storage.atomic_rename
        p = storage.join(top, "a.ssf")
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        f.write(DATA)
        assert not storage.exists(p)
        assert self.names(storage, top)[0].endswith(".ssf-tmp")
        f.publish()
        assert self.names(storage, top) == ["a.ssf"]


class TestArrowStorageWithoutRename(StorageConformance):
    """As on an object store: the final name is written, its close completes it."""

    removes_empty_dirs = False

    def make(self, tmp_path):
        (tmp_path / "fs").mkdir()
        fs = pafs.SubTreeFileSystem(str(tmp_path / "fs"), pafs.LocalFileSystem())
        return ArrowStorage(fs, "store", atomic_rename=False)

    def test_the_final_name_is_written_and_abort_deletes_it(self, storage, top):
        p = storage.join(top, "a.ssf")
        f = storage.open_write(p, temp_suffix=".ssf-tmp")
        f.write(DATA)
        assert self.names(storage, top) == ["a.ssf"]  # no temporary name: visible only through a commit
        f.abort()
        assert self.names(storage, top) == []


@needs_mock
class TestArrowStorageInMemory(StorageConformance):
    removes_empty_dirs = False

    def make(self, tmp_path):
        return ArrowStorage(_MOCK(), "bucket/store")


@needs_mock
class TestArrowStorageInMemoryWithoutRename(StorageConformance):
    removes_empty_dirs = False

    def make(self, tmp_path):
        return ArrowStorage(_MOCK(), "bucket/store", atomic_rename=False)


def test_storage_for(tmp_path):
    local = storage_for(tmp_path)
    assert isinstance(local, LocalStorage) and local.root == str(tmp_path)
    assert storage_for(local) is local
    assert storage_for(f"file://{tmp_path}").root == str(tmp_path)
    arrow = storage_for(pafs.LocalFileSystem())
    assert isinstance(arrow, ArrowStorage) and arrow.atomic_rename
    with pytest.raises(ss.UnsupportedStorage, match="cannot open the store location 'nosuch://bucket/samples'"):
        storage_for("nosuch://bucket/samples")
    with pytest.raises(ss.UnsupportedStorage, match=r"'s3://\*\*\*@bucket/x'") as err:
        storage_for("s3://KEY:SECRET@bucket/x", {"region": "us-east-1"})
    assert "SECRET" not in str(err.value)  # credentials are never shown
    assert redact("s3://b/p?region=x&secret_key=SECRET&access_key=KEY") == "s3://b/p?region=x&secret_key=***&access_key=***"
    with pytest.raises(ss.UnsupportedStorage, match="not to the local path"):
        storage_for(tmp_path, {"region": "us-east-1"})
    # A remote root needs a catalog elsewhere; nothing is made on the local disk.
    with pytest.raises(ss.CatalogError, match="pass catalog="):
        ss.open_store("s3://bucket/samples", create=True)
    assert not os.path.exists("s3:")


@pytest.mark.slow
class TestArrowStorageOnS3(StorageConformance):
    """The same behaviour on a real S3-API server (moto, tests/s3server.py), through the
    storage a store on ``s3://`` gets (no rename: the final name, completed on close; no
    folders: a key's prefix exists while a key under it does)."""

    has_folders = False
    removes_empty_dirs = False

    @pytest.fixture
    def storage(self, s3_server):
        from samplestore.storage import storage_for

        return storage_for(f"s3://{s3_server.new_bucket()}/store", s3_server.options)
