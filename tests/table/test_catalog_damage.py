"""A damaged, foreign or missing catalog is refused, never taken for an empty store.

Taking a truncated catalog.db for a new, empty store once made GC delete every data file
as a leftover: these tests pin that such a file is refused and left as it is, that every
SQLite error surfaces as a CatalogError naming the database, and that GC leaves alone
files under a table folder the catalog does not know as its own.
"""

import os
import shutil
import sqlite3

import pytest

import samplestore as ss
from samplestore.catalog import SQLiteCatalog

SCHEMA = ss.Schema([ss.Scalar("k", "int64"), ss.Label("y")])


def _store_with_data(root):
    store = ss.open_store(root, create=True)
    t = store.create_table("t", SCHEMA)
    t.append({"k": list(range(100)), "y": [0.0] * 100})
    t.append({"k": list(range(100, 150)), "y": [1.0] * 50})
    paths = sorted(os.path.join(t.dir, f.path) for f in t.files())
    store.close()
    return paths


def _clear_wal(root):
    for suffix in ("-wal", "-shm"):
        try:
            os.unlink(os.path.join(root, "catalog.db" + suffix))
        except FileNotFoundError:
            pass


def test_missing_store_is_not_created(tmp_path):
    root = tmp_path / "typo"
    with pytest.raises(ss.CatalogError, match=r"create=True.*samplestore init") as info:
        ss.open_store(root)
    assert str(root) in str(info.value)
    assert not root.exists()
    with pytest.raises(ss.CatalogError):
        ss.Store(root)
    assert ss.open_store(root, create=True).tables() == []
    assert ss.open_store(root).tables() == []  # made once, opened plainly afterwards


def test_empty_catalog_is_refused_and_left_alone(tmp_path):
    root = str(tmp_path / "s")
    paths = _store_with_data(root)
    _clear_wal(root)
    open(os.path.join(root, "catalog.db"), "wb").close()  # truncated to 0 bytes
    for create in (False, True):
        with pytest.raises(ss.CatalogError, match=r"empty \(0 bytes\)") as info:
            ss.open_store(root, create=create)
        assert os.path.join(root, "catalog.db") in str(info.value)
    assert os.path.getsize(os.path.join(root, "catalog.db")) == 0
    assert all(os.path.exists(p) for p in paths)


def test_file_that_is_not_sqlite_is_refused(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "catalog.db").write_bytes(b"PK\x03\x04 a zip file, not a catalog" * 50)
    with pytest.raises(ss.CatalogError, match="not an SQLite database"):
        ss.open_store(root)


def test_foreign_sqlite_database_is_refused_and_unchanged(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    con = sqlite3.connect(root / "catalog.db")
    con.executescript("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO photos VALUES (1, 'x');")
    con.close()
    before = (root / "catalog.db").read_bytes()
    for create in (False, True):
        with pytest.raises(ss.CatalogError, match=r"without the samplestore 'meta' table.*photos"):
            ss.open_store(root, create=create)
    assert (root / "catalog.db").read_bytes() == before


def test_foreign_meta_table_is_refused(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    con = sqlite3.connect(root / "catalog.db")
    con.executescript("CREATE TABLE meta (id INTEGER, blob BLOB);")
    con.close()
    with pytest.raises(ss.CatalogError, match="not samplestore's"):
        ss.open_store(root)


@pytest.mark.parametrize("version, words", [("99", "newer samplestore"), ("banana", "unknown schema_version"),
                                            (None, "no schema_version")])
def test_unknown_schema_version_is_refused(tmp_path, version, words):
    root = str(tmp_path / "s")
    _store_with_data(root)
    con = sqlite3.connect(os.path.join(root, "catalog.db"))
    if version is None:
        con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    else:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    con.commit()
    con.close()
    with pytest.raises(ss.CatalogError, match=words):
        ss.open_store(root)


def test_damaged_catalog_raises_catalog_error_naming_it(tmp_path):
    root = str(tmp_path / "s")
    _store_with_data(root)
    _clear_wal(root)
    path = os.path.join(root, "catalog.db")
    with open(path, "r+b") as f:  # keep the 100-byte header, scramble the pages
        f.seek(100)
        size = os.path.getsize(path)
        f.write(bytes((i * 37 + 11) % 256 for i in range(size - 100)))
    with pytest.raises(ss.CatalogError, match="catalog.db") as info:
        ss.open_store(root)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_sqlite_errors_of_catalog_methods_are_catalog_errors(tmp_path):
    root = str(tmp_path / "s")
    _store_with_data(root)
    store = ss.open_store(root)
    t = store.table("t")
    # The catalog's tables vanish under an open store (another program, a bad restore).
    con = sqlite3.connect(os.path.join(root, "catalog.db"))
    con.executescript("DROP TABLE files; DROP TABLE snapshots;")
    con.close()
    for call in (lambda: t.files(), lambda: t.snapshots(), lambda: t.append({"k": [1], "y": [1.0]}),
                 lambda: store.catalog.unreferenced_files("t")):
        with pytest.raises(ss.CatalogError, match=r"catalog '.*catalog\.db'.*no such table") as info:
            call()
        causes, exc = [], info.value
        while exc.__cause__ is not None:  # the sqlite3 error is kept in the chain
            causes.append(exc := exc.__cause__)
        assert any(isinstance(c, sqlite3.Error) for c in causes)


class _RollbackFails:
    """A connection whose ROLLBACK fails, as it does on a connection SQLite has broken."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql == "ROLLBACK":
            raise sqlite3.OperationalError("cannot rollback - disk I/O error")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_failed_rollback_does_not_hide_the_original_error(tmp_path):
    c = SQLiteCatalog(str(tmp_path / "s"), create=True)
    c.create_table("t", SCHEMA, [])
    c._local.conn = _RollbackFails(c._conn())
    with pytest.raises(ss.CommitConflict, match="re-plan"):
        c.commit("t", "replace", remove=[12345])
    # The suspect connection was dropped: the next call works on a fresh one.
    assert c.load_table("t").current_snapshot == 0


def test_gc_keeps_files_of_a_table_older_than_the_catalog(tmp_path):
    """catalog.db lost, a new store made in its place, the table made again: GC must not
    take the old table's files for leftovers of the new one."""
    root = str(tmp_path / "s")
    paths = _store_with_data(root)
    os.unlink(os.path.join(root, "catalog.db"))
    _clear_wal(root)
    marker = os.path.join(root, "tables", "t", ".samplestore-table.json")
    if os.path.exists(marker):
        os.remove(marker)  # as tables made before markers existed
    old = os.path.getmtime(paths[0]) - 10
    for p in paths:
        os.utime(p, (old, old))
    store = ss.open_store(root, create=True)
    t = store.create_table("t", SCHEMA, exist_ok=True)
    assert t.files() == []
    store.gc(grace_seconds=0)
    assert all(os.path.exists(p) for p in paths)


def test_gc_keeps_files_when_the_catalog_is_another_stores(tmp_path):
    """A catalog restored from the wrong store knows a table 't' made earlier than this
    store's: the folder's marker, not file ages, shows the files are not its own."""
    other = str(tmp_path / "other")
    _store_with_data(other)
    root = str(tmp_path / "s")
    paths = _store_with_data(root)
    _clear_wal(root)
    shutil.copyfile(os.path.join(other, "catalog.db"), os.path.join(root, "catalog.db"))
    store = ss.open_store(root)
    assert store.gc(grace_seconds=0)[0]["leftovers_removed"] == 0
    assert all(os.path.exists(p) for p in paths)
    from samplestore.table.verify import leftover_files
    assert leftover_files(store.table("t")) == ([], [])


def test_drop_does_not_purge_a_folder_owned_by_another_catalog(tmp_path):
    other = str(tmp_path / "other")
    _store_with_data(other)
    root = str(tmp_path / "s")
    paths = _store_with_data(root)
    _clear_wal(root)
    shutil.copyfile(os.path.join(other, "catalog.db"), os.path.join(root, "catalog.db"))
    store = ss.open_store(root)
    store.drop_table("t")
    assert store.tables() == []
    assert all(os.path.exists(p) for p in paths)


def test_table_made_again_after_drop_without_purge_keeps_old_files(tmp_path):
    root = str(tmp_path / "s")
    paths = _store_with_data(root)
    store = ss.open_store(root)
    store.drop_table("t", purge=False)
    old = os.path.getmtime(paths[0]) - 10
    for p in paths:
        os.utime(p, (old, old))
    t = store.create_table("t", SCHEMA)
    t.append({"k": [1], "y": [1.0]})
    assert t.gc(grace_seconds=0)["leftovers_removed"] == 0
    assert all(os.path.exists(p) for p in paths)


def test_orphans_of_the_table_itself_are_still_collected(tmp_path):
    root = str(tmp_path / "s")
    _store_with_data(root)
    t = ss.open_store(root).table("t")
    orphan = os.path.join(t.data_dir, "part-20990101000000-deadbeef0000.ssf")
    with open(orphan, "wb") as f:
        f.write(b"x" * 10)
    temp = os.path.join(t.data_dir, "x.ssf-tmp")
    open(temp, "wb").close()
    assert t.gc(grace_seconds=0)["leftovers_removed"] == 2
    assert not os.path.exists(orphan) and not os.path.exists(temp)
