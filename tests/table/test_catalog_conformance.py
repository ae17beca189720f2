"""Conformance tests every catalog backend must pass (subclass CatalogConformance)."""

import pytest

import samplestore as ss
from samplestore.catalog import DataFile, SQLiteCatalog
from samplestore.catalog.base import ColumnStats

SCHEMA = ss.Schema([ss.Label("y"), ss.Scalar("ds", "string")])


def _file(path: str, rows: int = 10, ds: str = "a") -> DataFile:
    return DataFile(path, {"ds": ds}, rows, 100, 1, stats={"y": ColumnStats(0, 0, rows, 0.0, 1.0, 50, {})})


class CatalogConformance:
    """Subclasses provide ``make_catalog(tmp_path)``."""

    def make_catalog(self, tmp_path):
        raise NotImplementedError

    def test_create_load_list_drop(self, tmp_path):
        c = self.make_catalog(tmp_path)
        meta = c.create_table("t", SCHEMA, ["ds"])
        assert meta.current_snapshot == 0 and meta.partition_by == ("ds",)
        assert c.load_table("t").schema == SCHEMA
        with pytest.raises(ss.TableExists):
            c.create_table("t", SCHEMA, [])
        c.create_table("u", SCHEMA, [])
        assert c.table_names() == ["t", "u"]
        c.drop_table("u")
        with pytest.raises(ss.TableNotFound, match=r"tables: \['t'\]"):
            c.load_table("u")

    @pytest.mark.parametrize("bad", ["a/b", "..", "../x", "", "a b", "x" * 200, "a\\b"])
    def test_bad_table_names(self, tmp_path, bad):
        with pytest.raises(ss.CatalogError):
            self.make_catalog(tmp_path).create_table(bad, SCHEMA, [])

    def test_commits_make_snapshots_and_time_travel(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        s1 = c.commit("t", "append", add=[_file("a.ssf", 10)])
        s2 = c.commit("t", "append", add=[_file("b.ssf", 5)], writer_id="w", commit_token="42")
        assert (s1.snapshot_id, s2.snapshot_id, s2.parent_id) == (1, 2, 1)
        assert s2.summary["total_rows"] == 15 and s2.summary["added_rows"] == 5
        assert [f.path for f in c.files("t", 1)] == ["a.ssf"]
        assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]
        assert c.files("t", 0) == []
        assert c.last_commit_token("t", "w") == "42" and c.last_commit_token("t", "x") is None
        ids = [f.file_id for f in c.files("t", 2)]
        s3 = c.commit("t", "replace", add=[_file("ab.ssf", 15)], remove=ids)
        assert [f.path for f in c.files("t", 3)] == ["ab.ssf"]
        assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]  # old snapshot unchanged
        assert s3.summary["total_rows"] == 15
        with pytest.raises(ss.SnapshotNotFound, match="snapshots: \\[1, 2, 3\\]"):
            c.snapshot("t", 9)

    def test_conflicting_replace_raises_and_changes_nothing(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        fid = c.files("t", 1)[0].file_id
        c.commit("t", "replace", add=[_file("a2.ssf")], remove=[fid])
        with pytest.raises(ss.CommitConflict, match="re-plan"):
            c.commit("t", "replace", add=[_file("a3.ssf")], remove=[fid])
        assert c.load_table("t").current_snapshot == 2
        assert [f.path for f in c.files("t", 2)] == ["a2.ssf"]

    def test_stats_are_returned_for_asked_columns(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf", 7)])
        (f,) = c.files("t", 1, with_stats=["y"])
        assert f.stats["y"].values == 7 and f.stats["y"].max == 1.0
        assert c.files("t", 1)[0].stats == {}


class TestSQLiteCatalog(CatalogConformance):
    def make_catalog(self, tmp_path):
        return SQLiteCatalog(str(tmp_path / "store"))

    def test_reopen_sees_everything(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.close()
        again = SQLiteCatalog(str(tmp_path / "store"), create=False)
        assert again.load_table("t").current_snapshot == 1

    def test_missing_store_is_an_error(self, tmp_path):
        with pytest.raises(ss.CatalogError, match="samplestore init"):
            SQLiteCatalog(str(tmp_path / "nope"), create=False)


def test_older_catalog_is_migrated_in_place(tmp_path):
    import sqlite3

    root = tmp_path / "old"
    root.mkdir()
    con = sqlite3.connect(root / "catalog.db")
    # The files table as the first catalogs made it, before row_group_size and added_by.
    con.executescript("""
        CREATE TABLE files (file_id INTEGER PRIMARY KEY AUTOINCREMENT, table_name TEXT NOT NULL, path TEXT NOT NULL,
            partition TEXT NOT NULL, num_rows INTEGER NOT NULL, file_bytes INTEGER NOT NULL,
            num_row_groups INTEGER NOT NULL, added_snapshot INTEGER NOT NULL, removed_snapshot INTEGER,
            UNIQUE (table_name, path));
        INSERT INTO files (table_name, path, partition, num_rows, file_bytes, num_row_groups, added_snapshot)
            VALUES ('t', 'a.ssf', '{}', 5, 10, 1, 1);
    """)
    con.commit()
    con.close()
    c = SQLiteCatalog(str(root))
    cols = {r[1] for r in c._conn().execute("PRAGMA table_info(files)")}
    assert {"row_group_size", "added_by"} <= cols
    assert c._conn().execute("SELECT num_rows, added_by FROM files").fetchone() == (5, "append")
