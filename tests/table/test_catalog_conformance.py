"""Conformance tests every catalog backend must pass (subclass CatalogConformance)."""

import time

import numpy as np
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

    @pytest.mark.parametrize("bad", ["a/b", "..", "../x", "", "a b", "x" * 200, "a\\b", "t\n", "t\r\n"])
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


    # -- commit tokens -----------------------------------------------------------------------
    def test_commit_token_outlives_snapshot_expiry(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "stream-append", add=[_file("a.ssf")], writer_id="w", commit_token="7")
        c.commit("t", "stream-append", add=[_file("b.ssf")], writer_id="v", commit_token="100")
        c.commit("t", "stream-append", add=[_file("c.ssf")], writer_id="w")  # no token: keeps "7"
        c.commit("t", "append", add=[_file("d.ssf")])
        assert c.expire_snapshots("t", keep=[]) == [1, 2, 3]  # what the daemon does every pass
        assert [s.snapshot_id for s in c.snapshots("t")] == [4]
        assert c.last_commit_token("t", "w") == "7"
        assert c.last_commit_token("t", "v") == "100"
        assert c.last_commit_token("t", "nobody") is None
        c.commit("t", "stream-append", add=[_file("e.ssf")], writer_id="w", commit_token="8")
        c.expire_snapshots("t", keep=[])
        assert c.last_commit_token("t", "w") == "8"

    # -- drop ---------------------------------------------------------------------------------
    def test_drop_table_forgets_everything_it_recorded(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "stream-append", add=[_file("a.ssf")], writer_id="w", commit_token="5")
        fid = c.files("t", 1)[0].file_id
        c.commit("t", "delete", deletes={fid: np.array([1, 2])})
        c.acquire_lease("t", 0, ttl=60, owner="writer")
        c.drop_table("t")
        # A new table of the same name starts with nothing of the old one.
        c.create_table("t", SCHEMA, [])
        assert c.all_file_paths("t") == []
        assert c.deleted_positions("t", 10) == {}
        assert c.live_leases("t") == []
        assert c.last_commit_token("t", "w") is None
        assert c.snapshots("t") == []
        c.commit("t", "append", add=[_file("b.ssf")])
        assert [f.path for f in c.files("t", 1, with_stats=["y"])] == ["b.ssf"]

    def test_drop_table_refuses_live_readers_unless_forced(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.acquire_lease("t", 0, ttl=60, owner="some writer")  # a writer does not block a drop
        c.acquire_lease("t", 1, ttl=60, owner="trainer-7 pid 42")
        with pytest.raises(ss.CatalogError, match=r"trainer-7 pid 42 on snapshot 1.*force=True"):
            c.drop_table("t")
        assert c.table_names() == ["t"] and [f.path for f in c.files("t", 1)] == ["a.ssf"]
        c.drop_table("t", force=True)
        assert c.table_names() == []

    def test_drop_table_ignores_lapsed_reader_leases(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.acquire_lease("t", 1, ttl=-1, owner="gone")  # lapsed already
        c.drop_table("t")
        assert c.table_names() == []

    # -- leases -------------------------------------------------------------------------------
    def test_reader_lease_only_on_a_retained_snapshot(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        for k in range(3):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        c.expire_snapshots("t", keep=[2])
        with pytest.raises(ss.SnapshotNotFound, match=r"snapshot 1 of table 't'.*\[2, 3\].*current snapshot 3"):
            c.acquire_lease("t", 1, ttl=60, owner="late reader")
        with pytest.raises(ss.SnapshotNotFound):
            c.acquire_lease("t", 99, ttl=60)
        assert c.live_leases("t") == []  # nothing was recorded for the refused ones
        lease = c.acquire_lease("t", 2, ttl=60, owner="r")
        writer = c.acquire_lease("t", 0, ttl=60, owner="w")  # a writer's marker pins no snapshot
        assert sorted((sid, owner) for _id, sid, _exp, owner in c.live_leases("t")) == [(0, "w"), (2, "r")]
        assert {lease, writer} == {row[0] for row in c.live_leases("t")}
        with pytest.raises(ss.TableNotFound):
            c.acquire_lease("nope", 0, ttl=60)

    def test_leases_pin_snapshots_and_renew_and_release(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.commit("t", "append", add=[_file("b.ssf")])
        lease = c.acquire_lease("t", 1, ttl=60, owner="r")
        assert c.expire_snapshots("t", keep=[]) == []  # 1 is leased, 2 is current
        assert c.renew_lease(lease, 60) is True
        c.release_lease(lease)
        assert c.renew_lease(lease, 60) is False
        assert c.live_leases("t") == []
        assert c.expire_snapshots("t", keep=[]) == [1]
        short = c.acquire_lease("t", 2, ttl=-1, owner="lapsed")
        assert short not in [row[0] for row in c.live_leases("t")]

    # -- deletes ------------------------------------------------------------------------------
    def test_deletes_are_recorded_per_snapshot_and_guard_replaces(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf", 10), _file("b.ssf", 10)])
        fa, fb = (f.file_id for f in c.files("t", 1))
        s2 = c.commit("t", "delete", deletes={fa: [3, 1, 3]})
        assert s2.summary["deleted_rows"] == 2 and s2.summary["total_rows"] == 18
        c.commit("t", "delete", deletes={fa: [5], fb: [0]})
        assert c.deleted_positions("t", 1) == {}
        got = c.deleted_positions("t", 2)
        assert list(got) == [fa] and got[fa].tolist() == [1, 3]
        got = c.deleted_positions("t", 3)
        assert got[fa].tolist() == [1, 3, 5] and got[fb].tolist() == [0]
        assert list(c.deleted_positions("t", 3, file_ids=[fb])) == [fb]
        assert c.deleted_positions("t", 3, file_ids=[]) == {}
        # A replace planned at snapshot 2 lost the race against the delete of snapshot 3.
        with pytest.raises(ss.CommitConflict, match="re-plan"):
            c.commit("t", "replace", add=[_file("ab.ssf", 17)], remove=[fa, fb], planned_at=2)
        s4 = c.commit("t", "replace", add=[_file("ab.ssf", 16)], remove=[fa, fb], planned_at=3)
        assert s4.summary["total_rows"] == 16
        with pytest.raises(ss.CommitConflict):  # deleting from a file that was replaced
            c.commit("t", "delete", deletes={fa: [0]})

    # -- expiry and files no snapshot needs ------------------------------------------------------
    def test_expiry_unreferenced_and_forgotten_files(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.commit("t", "append", add=[_file("b.ssf")])
        ids = {f.path: f.file_id for f in c.files("t", 2)}
        fid = ids["a.ssf"]
        c.commit("t", "delete", deletes={fid: [0]})
        c.commit("t", "replace", add=[_file("a2.ssf", 9)], remove=[fid])
        assert c.unreferenced_files("t") == []  # snapshots 1-3 still see a.ssf
        lease = c.acquire_lease("t", 3, ttl=60, owner="reader")
        assert c.expire_snapshots("t", keep=[]) == [1, 2]
        assert c.unreferenced_files("t") == []  # the reader's snapshot 3 still needs it
        c.release_lease(lease)
        assert c.expire_snapshots("t", keep=[]) == [3]
        assert c.unreferenced_files("t") == [(fid, "a.ssf")]
        c.forget_files("t", [fid, ids["b.ssf"]])  # b.ssf is live: forget_files leaves it
        assert sorted(p for _i, p, _r in c.all_file_paths("t")) == ["a2.ssf", "b.ssf"]
        assert c.deleted_positions("t", 4) == {}
        assert c.unreferenced_files("t") == []
        assert sorted(f.path for f in c.files("t", 4)) == ["a2.ssf", "b.ssf"]

    def test_snapshot_as_of(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        before = time.time() - 1
        s1 = c.commit("t", "append", add=[_file("a.ssf")])
        s2 = c.commit("t", "append", add=[_file("b.ssf")])
        assert c.snapshot_as_of("t", s1.created_at).snapshot_id == 1
        assert c.snapshot_as_of("t", s2.created_at + 100).snapshot_id == 2
        with pytest.raises(ss.SnapshotNotFound):
            c.snapshot_as_of("t", before)
        c.expire_snapshots("t", keep=[])
        with pytest.raises(ss.SnapshotNotFound):  # only retained snapshots can be travelled to
            c.snapshot_as_of("t", s1.created_at)


    def test_followers_keep_later_files_and_see_appends(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])  # 1
        c.commit("t", "stream-append", add=[_file("b.ssf")])  # 2
        c.commit("t", "append", add=[_file("c.ssf")])  # 3
        assert [f.path for f in c.appended_files("t", 1)] == ["b.ssf", "c.ssf"]
        assert c.follow_watermark("t") is None and c.appends_replaced_upto("t") == 0
        # A follower at snapshot 1: its snapshot need not be retained, and it keeps every file
        # removed after it, appends it has not read included.
        c.expire_snapshots("t", keep=[3])
        lease = c.acquire_lease("t", 1, 30, keep_later=True)
        assert c.follow_watermark("t") == 1
        ids = [f.file_id for f in c.files("t", 3)]
        c.commit("t", "replace", add=[_file("abc.ssf", 30)], remove=ids)  # 4
        assert c.appends_replaced_upto("t") == 3
        assert [f.path for f in c.appended_files("t", 1)] == ["b.ssf", "c.ssf"]  # still known
        c.expire_snapshots("t", keep=[4])
        assert c.unreferenced_files("t") == []
        c.release_lease(lease)
        assert c.follow_watermark("t") is None
        assert sorted(p for _fid, p in c.unreferenced_files("t")) == ["a.ssf", "b.ssf", "c.ssf"]
        # Compaction outputs are not appends; an expired lease is not renewed.
        assert [f.path for f in c.appended_files("t", 3)] == []
        short = c.acquire_lease("t", 4, 0.05)
        time.sleep(0.1)
        assert c.renew_lease(short, 30) is False

    def test_expiry_keeps_snapshots_after_upto(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        for k in range(4):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        assert c.expire_snapshots("t", keep=[2], upto=2) == [1]
        assert [s.snapshot_id for s in c.snapshots("t")] == [2, 3, 4]

    # -- table properties -----------------------------------------------------------------------
    def test_set_table_properties_changes_only_the_given_keys(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [], properties={"compaction.sort_by": ["y"], "owner": "ranking"})
        meta = c.set_table_properties("t", {"retention": {"retain_last": 3, "older_than": None}})
        assert meta.properties == {"compaction.sort_by": ["y"], "owner": "ranking",
                                   "retention": {"retain_last": 3, "older_than": None}}
        assert c.load_table("t").properties == meta.properties
        assert c.set_table_properties("t", {"owner": "ads"}, remove=["compaction.sort_by", "absent"]).properties == {
            "owner": "ads", "retention": {"retain_last": 3, "older_than": None}}
        assert c.load_table("t").properties["owner"] == "ads"
        with pytest.raises(ss.TableNotFound):
            c.set_table_properties("nope", {"a": 1})
        with pytest.raises(ss.CatalogError, match="JSON"):
            c.set_table_properties("t", {"bad": object()})
        assert c.load_table("t").properties["owner"] == "ads"

    # -- tags -----------------------------------------------------------------------------------
    def test_tags_create_list_resolve_replace_drop(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.create_table("u", SCHEMA, [])
        for k in range(3):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        c.commit("u", "append", add=[_file("u.ssf")])
        before = time.time()
        tag = c.create_tag("t", "train-1", 2)
        assert (tag.name, tag.snapshot_id) == ("train-1", 2) and tag.created_at >= before - 1
        c.create_tag("t", "a", 3)
        c.create_tag("u", "train-1", 1)  # tags are per table
        assert [(g.name, g.snapshot_id) for g in c.tags("t")] == [("a", 3), ("train-1", 2)]
        assert c.resolve_tag("t", "train-1") == 2 and c.resolve_tag("u", "train-1") == 1
        with pytest.raises(ss.CatalogError, match="already"):
            c.create_tag("t", "train-1", 3)
        assert c.resolve_tag("t", "train-1") == 2
        assert c.create_tag("t", "train-1", 3, replace=True).snapshot_id == 3
        assert c.resolve_tag("t", "train-1") == 3
        with pytest.raises(ss.SnapshotNotFound, match=r"no tag 'x'; tags: \['a', 'train-1'\]"):
            c.resolve_tag("t", "x")
        assert c.drop_tag("t", "a").snapshot_id == 3
        with pytest.raises(ss.SnapshotNotFound, match=r"no tag 'a'; tags: \['train-1'\]"):
            c.drop_tag("t", "a")
        assert [g.name for g in c.tags("t")] == ["train-1"]
        with pytest.raises(ss.TableNotFound):
            c.tags("nope")
        with pytest.raises(ss.TableNotFound):
            c.create_tag("nope", "x", 1)

    @pytest.mark.parametrize("bad", ["1", "12", "a/b", "..", "", "a b", "x" * 200, "t\n"])
    def test_bad_tag_names(self, tmp_path, bad):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        with pytest.raises(ss.CatalogError, match="tag name"):
            c.create_tag("t", bad, 1)
        assert c.tags("t") == []

    def test_a_tag_only_on_a_retained_snapshot(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.commit("t", "append", add=[_file("b.ssf")])
        c.expire_snapshots("t", keep=[])
        for sid in (1, 0, 7):
            with pytest.raises(ss.SnapshotNotFound, match=rf"cannot tag snapshot {sid} .* retained snapshots: \[2\]"):
                c.create_tag("t", "x", sid)
        assert c.tags("t") == []

    def test_tagged_snapshots_survive_expiry_and_keep_their_files(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])  # 1
        c.commit("t", "append", add=[_file("b.ssf")])  # 2
        ids = [f.file_id for f in c.files("t", 2)]
        c.commit("t", "replace", add=[_file("ab.ssf", 20)], remove=ids)  # 3
        c.create_tag("t", "train", 2)
        # Whatever the caller chose to keep, and with upto covering it: the tag wins.
        assert c.expire_snapshots("t", keep=[], upto=3) == [1]
        assert [s.snapshot_id for s in c.snapshots("t")] == [2, 3]
        assert c.unreferenced_files("t") == []  # snapshot 2 still reads a.ssf and b.ssf
        assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]
        c.drop_tag("t", "train")
        assert c.expire_snapshots("t", keep=[]) == [2]
        assert sorted(p for _fid, p in c.unreferenced_files("t")) == ["a.ssf", "b.ssf"]

    def test_drop_table_forgets_its_tags(self, tmp_path):
        c = self.make_catalog(tmp_path)
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.create_tag("t", "train", 1)
        c.drop_table("t")
        c.create_table("t", SCHEMA, [])
        assert c.tags("t") == []
        with pytest.raises(ss.SnapshotNotFound):
            c.resolve_tag("t", "train")


class TestSQLiteCatalog(CatalogConformance):
    def make_catalog(self, tmp_path):
        return SQLiteCatalog(str(tmp_path / "store"), create=True)

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
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
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


def test_version_1_catalog_gets_commit_tokens_from_its_snapshots(tmp_path):
    import sqlite3

    root = str(tmp_path / "v1")
    c = SQLiteCatalog(root, create=True)
    c.create_table("t", SCHEMA, [])
    c.commit("t", "stream-append", add=[_file("a.ssf")], writer_id="w", commit_token="1")
    c.commit("t", "stream-append", add=[_file("b.ssf")], writer_id="w", commit_token="2")
    c.commit("t", "stream-append", add=[_file("c.ssf")], writer_id="v", commit_token="9")
    c.commit("t", "stream-append", add=[_file("d.ssf")], writer_id="w")
    c.close()
    # Make it what a version-1 catalog was: tokens only in snapshot rows, no catalog id.
    con = sqlite3.connect(str(tmp_path / "v1" / "catalog.db"))
    con.executescript("""
        DROP TABLE IF EXISTS commit_tokens;
        DELETE FROM meta WHERE key = 'catalog_id';
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
    """)
    con.close()
    c = SQLiteCatalog(root)
    c.expire_snapshots("t", keep=[])
    assert c.last_commit_token("t", "w") == "2" and c.last_commit_token("t", "v") == "9"
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    assert len(c.catalog_id) == 32
    assert c.tags("t") == []  # and the tables of later versions


def test_version_2_catalog_gains_tags_and_keeps_everything(tmp_path):
    import sqlite3

    root = str(tmp_path / "v2")
    c = SQLiteCatalog(root, create=True)
    c.create_table("t", SCHEMA, [], properties={"owner": "ranking"})
    c.commit("t", "stream-append", add=[_file("a.ssf")], writer_id="w", commit_token="1")
    c.commit("t", "append", add=[_file("b.ssf")])
    catalog_id = c.catalog_id
    c.close()
    # What a version-2 catalog is: everything but the tags table.
    con = sqlite3.connect(str(tmp_path / "v2" / "catalog.db"))
    con.executescript("""
        DROP TABLE tags;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """)
    con.close()
    c = SQLiteCatalog(root)
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    assert c.catalog_id == catalog_id and c.last_commit_token("t", "w") == "1"
    assert c.load_table("t").properties == {"owner": "ranking"}
    assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]
    assert c.tags("t") == []
    c.create_tag("t", "train", 1)
    assert c.expire_snapshots("t", keep=[]) == []  # the tag protects 1; 2 is current
    c.close()
    assert SQLiteCatalog(root).resolve_tag("t", "train") == 1  # opened again: no second migration


def test_a_second_catalog_on_the_same_file_keeps_the_first_ones_commits_visible(tmp_path):
    """Opening a catalog file again in a process that holds a connection to it must not drop
    that connection's file locks: another process closing the catalog would take itself for
    the last user and delete the WAL, and later commits of this process would be lost."""
    import os
    import subprocess
    import sys

    root = str(tmp_path / "s")
    first = SQLiteCatalog(root, create=True)
    first.create_table("t", SCHEMA, [])
    first.commit("t", "append", add=[_file("a.ssf")])
    SQLiteCatalog(root)  # e.g. open_store(root) twice in one training script
    look = ("import sys; from samplestore.catalog import SQLiteCatalog; "
            "print(SQLiteCatalog(sys.argv[1]).load_table('t').current_snapshot)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", look, root], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    first.commit("t", "append", add=[_file("b.ssf")])
    out = subprocess.run([sys.executable, "-c", look, root], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2", "a commit of this process is invisible to others"


def test_a_foreign_file_under_a_recycled_inode_is_refused_and_left_alone(tmp_path, monkeypatch):
    """The header is read only before a process first connects to a catalog file; a foreign
    file that later gets the same inode number must still be refused, not opened."""
    import os

    from samplestore.catalog import sqlite as backend

    root = tmp_path / "s"
    root.mkdir()
    body = b"PK\x03\x04 a zip file, not a catalog" * 50
    (root / "catalog.db").write_bytes(body)
    st = os.stat(root / "catalog.db")
    monkeypatch.setattr(backend, "_CONNECTED", {(st.st_dev, st.st_ino)})  # as if a removed catalog had this inode
    with pytest.raises(ss.CatalogError, match="not an SQLite database"):
        SQLiteCatalog(str(root))
    assert (root / "catalog.db").read_bytes() == body and os.listdir(root) == ["catalog.db"]
