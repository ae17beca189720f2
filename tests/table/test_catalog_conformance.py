"""Conformance tests every catalog backend must pass.

A backend joins by one entry in ``BACKENDS`` (a function making a fresh, empty location for
:func:`samplestore.catalog.open_catalog`): the ``backend`` fixture is parametrised over it,
and every test of :class:`TestCatalogConformance` runs against each backend.

Coverage of the interface is checked, not hoped for: every test declares with ``@covers``
which methods of :class:`~samplestore.catalog.base.Catalog` it checks; the ``catalog``
fixture hands out a recording proxy and fails a test that never called a method it declares;
and :func:`test_the_conformance_class_covers_every_method_of_the_interface` fails when a
method of the interface (say, one added to ``base.py``) is declared by no test.
"""

import time

import numpy as np
import pytest

import samplestore as ss
from samplestore.catalog import Catalog, DataFile, SQLiteCatalog, open_catalog
from samplestore.catalog.base import ColumnStats

SCHEMA = ss.Schema([ss.Label("y"), ss.Scalar("ds", "string")])

#: The names a catalog backend must implement: every public name of the interface.
INTERFACE = frozenset(Catalog.__abstractmethods__)


def _sqlite_location(tmp_path) -> str:
    return str(tmp_path / "store")


def _postgres_locations(request):
    # The session's server (tests/conftest.py, pg_server): each location is a new schema on it.
    server = request.getfixturevalue("pg_server")
    return lambda tmp_path: server.uri()


#: backend name -> a function of the test's ``request`` returning the backend's function of a
#: folder (pytest's ``tmp_path``) that gives a fresh location. A backend needing a server
#: (PostgreSQL) gets it from a fixture there.
BACKENDS = {"sqlite": lambda request: _sqlite_location, "postgres": _postgres_locations}


def _file(path: str, rows: int = 10, ds: str = "a") -> DataFile:
    return DataFile(path, {"ds": ds}, rows, 100, 1, stats={"y": ColumnStats(0, 0, rows, 0.0, 1.0, 50, {})})


def _replaced_once(c) -> int:
    """Make table 't': a.ssf appended (snapshot 1), then replaced by a2.ssf (snapshot 2);
    returns the id of a.ssf."""
    c.create_table("t", SCHEMA, [])
    c.commit("t", "append", add=[_file("a.ssf")])
    fid = c.files("t", 1)[0].file_id
    c.commit("t", "replace", add=[_file("a2.ssf")], remove=[fid])
    return fid


def covers(*methods: str):
    """Declare which methods of the catalog interface a conformance test checks."""
    unknown = set(methods) - INTERFACE
    if unknown:
        raise AssertionError(f"@covers names {sorted(unknown)}, which are not methods of Catalog: {sorted(INTERFACE)}")

    def mark(test):
        test.covers = frozenset(methods)
        return test

    return mark


class RecordingCatalog:
    """A catalog seen through a proxy that records which names of the interface were used
    (methods called or properties read); everything else goes straight to the real one."""

    def __init__(self, real: Catalog) -> None:
        self.real = real
        self.used: set[str] = set()

    def __getattr__(self, name: str):
        value = getattr(self.real, name)
        if name in INTERFACE:
            self.used.add(name)
        return value


def unexercised(declared: frozenset, proxy: RecordingCatalog) -> list[str]:
    """The declared methods a test never used through ``proxy``."""
    return sorted(declared - proxy.used)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    """Each backend's function making a fresh location (of a folder, e.g. pytest's tmp_path)."""
    return BACKENDS[request.param](request)


@pytest.fixture
def location(backend, tmp_path) -> str:
    """A fresh location of the backend (a second handle opens it with ``open_catalog``)."""
    return backend(tmp_path)


@pytest.fixture
def catalog(request, location):
    """A new, empty catalog (behind a recording proxy); fails the test if it did not call
    every method its ``@covers`` declares."""
    proxy = RecordingCatalog(open_catalog(location, create=True))
    yield proxy
    proxy.real.close()
    missing = unexercised(getattr(request.function, "covers", frozenset()), proxy)
    if missing:
        pytest.fail(f"{request.function.__name__} declares @covers{tuple(missing)} but never calls them")


def test_the_conformance_class_covers_every_method_of_the_interface():
    public = {n for n in vars(Catalog) if not n.startswith("_")}
    # Every public name is abstract: a backend must implement it and this class must test it.
    assert public == INTERFACE, f"public names of Catalog that are not abstract: {sorted(public - INTERFACE)}"
    tests = {n: getattr(TestCatalogConformance, n) for n in dir(TestCatalogConformance) if n.startswith("test_")}
    undeclared = sorted(n for n, fn in tests.items() if not getattr(fn, "covers", None))
    assert not undeclared, f"conformance tests without @covers(...): {undeclared}"
    covered = set().union(*(fn.covers for fn in tests.values()))
    assert INTERFACE <= covered, (f"methods of the Catalog interface no conformance test checks: "
                                  f"{sorted(INTERFACE - covered)}; add a behavioural test with @covers(...)")


def test_a_declared_but_unused_method_is_reported(tmp_path):
    proxy = RecordingCatalog(open_catalog(_sqlite_location(tmp_path), create=True))
    proxy.create_table("t", SCHEMA, [])
    assert proxy.catalog_id  # a property counts as used when read
    assert unexercised(frozenset({"create_table", "catalog_id", "drop_table"}), proxy) == ["drop_table"]
    with pytest.raises(AssertionError, match="not methods of Catalog"):
        covers("create_table", "no_such_method")


class TestCatalogConformance:
    """What every backend must do. Each test says (``@covers``) which methods of the
    interface it checks, and the ``catalog`` fixture fails it if it never called them."""

    @covers("create_table", "load_table", "table_names", "drop_table")
    def test_create_load_list_drop(self, catalog):
        c = catalog
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
    @covers("create_table")
    def test_bad_table_names(self, catalog, bad):
        with pytest.raises(ss.CatalogError):
            catalog.create_table(bad, SCHEMA, [])

    @covers("commit", "files", "snapshot", "last_commit_token")
    def test_commits_make_snapshots_and_time_travel(self, catalog):
        c = catalog
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

    @covers("commit", "files", "load_table")
    def test_conflicting_replace_raises_and_changes_nothing(self, catalog):
        c = catalog
        fid = _replaced_once(c)
        with pytest.raises(ss.CommitConflict, match="re-plan"):
            c.commit("t", "replace", add=[_file("a3.ssf")], remove=[fid])
        assert c.load_table("t").current_snapshot == 2
        assert [f.path for f in c.files("t", 2)] == ["a2.ssf"]

    @covers("files")
    def test_stats_are_returned_for_asked_columns(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf", 7)])
        (f,) = c.files("t", 1, with_stats=["y"])
        assert f.stats["y"].values == 7 and f.stats["y"].max == 1.0
        assert c.files("t", 1)[0].stats == {}

    # -- commit tokens -----------------------------------------------------------------------
    @covers("last_commit_token", "expire_snapshots", "snapshots")
    def test_commit_token_outlives_snapshot_expiry(self, catalog):
        c = catalog
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
    @covers("drop_table", "all_file_paths", "deleted_positions", "live_leases", "last_commit_token", "snapshots")
    def test_drop_table_forgets_everything_it_recorded(self, catalog):
        c = catalog
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

    @covers("drop_table", "acquire_lease", "table_names")
    def test_drop_table_refuses_live_readers_unless_forced(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.acquire_lease("t", 0, ttl=60, owner="some writer")  # a writer does not block a drop
        c.acquire_lease("t", 1, ttl=60, owner="trainer-7 pid 42")
        with pytest.raises(ss.CatalogError, match=r"trainer-7 pid 42 on snapshot 1.*force=True"):
            c.drop_table("t")
        assert c.table_names() == ["t"] and [f.path for f in c.files("t", 1)] == ["a.ssf"]
        c.drop_table("t", force=True)
        assert c.table_names() == []

    @covers("drop_table")
    def test_drop_table_ignores_lapsed_reader_leases(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.acquire_lease("t", 1, ttl=-1, owner="gone")  # lapsed already
        c.drop_table("t")
        assert c.table_names() == []

    # -- leases -------------------------------------------------------------------------------
    @covers("acquire_lease", "live_leases", "expire_snapshots")
    def test_reader_lease_only_on_a_retained_snapshot(self, catalog):
        c = catalog
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

    @covers("acquire_lease", "renew_lease", "release_lease", "live_leases", "expire_snapshots")
    def test_leases_pin_snapshots_and_renew_and_release(self, catalog):
        c = catalog
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
    @covers("deleted_positions", "commit")
    def test_deletes_are_recorded_per_snapshot_and_guard_replaces(self, catalog):
        c = catalog
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
    @covers("expire_snapshots", "unreferenced_files", "forget_files", "all_file_paths")
    def test_expiry_unreferenced_and_forgotten_files(self, catalog):
        c = catalog
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

    @covers("snapshot_as_of")
    def test_snapshot_as_of(self, catalog):
        c = catalog
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


    @covers("appended_files", "follow_watermark", "appends_replaced_upto", "unreferenced_files", "acquire_lease")
    def test_followers_keep_later_files_and_see_appends(self, catalog):
        c = catalog
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

    @covers("expire_snapshots", "snapshots")
    def test_expiry_keeps_snapshots_after_upto(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        for k in range(4):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        assert c.expire_snapshots("t", keep=[2], upto=2) == [1]
        assert [s.snapshot_id for s in c.snapshots("t")] == [2, 3, 4]

    # -- the catalog itself ----------------------------------------------------------------
    @covers("catalog_id", "location", "close")
    def test_identity_and_location_survive_reopening(self, catalog, location, backend, tmp_path):
        c = catalog
        cid, where = c.catalog_id, c.location
        assert isinstance(cid, str) and len(cid) >= 16 and isinstance(where, str) and where
        c.create_table("t", SCHEMA, [])
        c.close()
        assert c.catalog_id == cid and c.table_names() == ["t"]  # usable after close: it reconnects
        again = open_catalog(location)
        try:
            assert again.catalog_id == cid and again.location == where
            assert again.load_table("t").current_snapshot == 0
        finally:
            again.close()
        other = open_catalog(backend(tmp_path / "other"), create=True)
        try:
            assert other.catalog_id != cid  # GC tells catalogs apart by it
        finally:
            other.close()

    @covers("table_names", "load_table", "snapshots", "files", "tags", "appends_replaced_upto", "last_commit_token",
            "unreferenced_files", "expire_snapshots", "set_table_properties", "commit", "drop_table")
    def test_unknown_tables_raise_table_not_found_listing_the_tables(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        for call in (lambda: c.load_table("nope"), lambda: c.snapshots("nope"), lambda: c.files("nope", 0),
                     lambda: c.tags("nope"), lambda: c.appends_replaced_upto("nope"),
                     lambda: c.last_commit_token("nope", "w"), lambda: c.unreferenced_files("nope"),
                     lambda: c.expire_snapshots("nope", keep=[]), lambda: c.set_table_properties("nope", {}),
                     lambda: c.commit("nope", "append", add=[_file("a.ssf")]), lambda: c.drop_table("nope")):
            with pytest.raises(ss.TableNotFound, match=r"tables: \['t'\]"):
                call()
        assert c.table_names() == ["t"] and c.snapshots("t") == []

    @covers("create_table", "load_table")
    def test_a_new_table_starts_empty_with_its_definition(self, catalog, location):
        c = catalog
        meta = c.create_table("t", SCHEMA, ["ds"], properties={"owner": "ranking"})
        assert (meta.name, meta.schema, meta.partition_by, meta.current_snapshot) == ("t", SCHEMA, ("ds",), 0)
        assert meta.properties == {"owner": "ranking"} and meta.created_at <= time.time()
        assert c.load_table("t") == meta
        second = open_catalog(location)  # another handle (another process, another host) sees it
        try:
            assert second.table_names() == ["t"]
            with pytest.raises(ss.TableExists):
                second.create_table("t", SCHEMA, [])
        finally:
            second.close()

    # -- commits ------------------------------------------------------------------------------
    @covers("commit", "snapshot", "snapshots", "load_table", "files")
    def test_schema_commits_change_the_schema_and_old_snapshots_keep_theirs(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        wider = SCHEMA.add([ss.Dense("d", dim=2)])
        s2 = c.commit("t", "schema", schema=wider, summary={"added_features": ["d"]})
        assert s2.operation == "schema" and s2.schema == wider and s2.summary["added_features"] == ["d"]
        assert s2.summary["total_rows"] == 10 and s2.summary["added_files"] == 0
        assert c.load_table("t").schema == wider and c.load_table("t").current_snapshot == 2
        assert c.snapshot("t", 1).schema == SCHEMA and c.snapshot("t", 2).schema == wider
        assert [s.snapshot_id for s in c.snapshots("t")] == [1, 2]
        assert [f.path for f in c.files("t", 2)] == ["a.ssf"]  # no file was rewritten
        s3 = c.commit("t", "append", add=[_file("b.ssf", 3)])
        assert s3.schema == wider and s3.parent_id == 2

    @covers("commit", "last_commit_token", "all_file_paths", "load_table")
    def test_a_conflicting_commit_records_neither_its_files_nor_its_token(self, catalog):
        c = catalog
        fid = _replaced_once(c)
        with pytest.raises(ss.CommitConflict, match="re-plan"):  # replace of a replaced file
            c.commit("t", "replace", add=[_file("a3.ssf")], remove=[fid], writer_id="w", commit_token="9")
        assert c.last_commit_token("t", "w") is None
        assert "a3.ssf" not in [p for _i, p, _r in c.all_file_paths("t")]
        assert c.load_table("t").current_snapshot == 2
        # The same token committed again (a writer retrying after a lost reply) is stored once, as given.
        c.commit("t", "stream-append", add=[_file("b.ssf")], writer_id="w", commit_token="9")
        c.commit("t", "stream-append", writer_id="w", commit_token="9")
        assert c.last_commit_token("t", "w") == "9"
        assert c.last_commit_token("t", "other") is None

    @covers("commit", "files", "load_table")
    def test_two_handles_race_to_replace_the_same_file_and_one_wins(self, catalog, location):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf"), _file("b.ssf")])
        ids = [f.file_id for f in c.files("t", 1)]
        other = open_catalog(location)
        try:
            other.commit("t", "replace", add=[_file("ab.ssf", 20)], remove=ids, planned_at=1)
            with pytest.raises(ss.CommitConflict):
                c.commit("t", "replace", add=[_file("ab2.ssf", 20)], remove=ids, planned_at=1)
            c.commit("t", "append", add=[_file("c.ssf")])  # appends never conflict
            assert [f.path for f in other.files("t", 3)] == ["ab.ssf", "c.ssf"]
            assert other.load_table("t").current_snapshot == c.load_table("t").current_snapshot == 3
        finally:
            other.close()

    @covers("files", "all_file_paths")
    def test_files_are_in_commit_order_with_the_stats_asked_for(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, ["ds"])
        c.commit("t", "append", add=[_file("b.ssf", 4, "x"), _file("a.ssf", 6, "y")])
        c.commit("t", "append", add=[DataFile("c.ssf", {"ds": "x"}, 5, 70, 2, row_group_size=3)])
        files = c.files("t", 2, with_stats=["y", "ds", "absent"])
        assert [f.path for f in files] == ["b.ssf", "a.ssf", "c.ssf"]
        b, a, cc = files
        assert (b.partition, b.num_rows, b.file_bytes, b.num_row_groups) == ({"ds": "x"}, 4, 100, 1)
        assert (b.added_snapshot, b.removed_snapshot, b.added_by) == (1, None, "append")
        assert set(b.stats) == {"y"} and cc.stats == {}  # only the stats a file has, of the columns asked
        assert b.stats["y"] == ColumnStats(0, 0, 4, 0.0, 1.0, 50, {})
        assert cc.row_group_size == 3 and cc.row_group_rows() == [3, 2] and cc.added_snapshot == 2
        c.commit("t", "replace", add=[_file("ab.ssf", 10, "x")], remove=[b.file_id, a.file_id])
        assert sorted(c.all_file_paths("t")) == sorted([(b.file_id, "b.ssf", 3), (a.file_id, "a.ssf", 3),
                                                         (cc.file_id, "c.ssf", None),
                                                         (c.files("t", 3)[-1].file_id, "ab.ssf", None)])
        assert [f.added_by for f in c.files("t", 3)] == ["append", "replace"]
        assert c.all_file_paths("nope") == []

    @covers("commit", "files", "appended_files")
    def test_each_file_keeps_its_sort_key(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf"), DataFile("s.ssf", {}, 4, 50, 1, sort_key=("user", "ts"))])
        a, s = c.files("t", 1)
        assert a.sort_key == () and s.sort_key == ("user", "ts")  # in order, as a tuple
        assert s.sorted_by(["user"]) and s.sorted_by(("user", "ts")) and not s.sorted_by(["ts"])
        assert not a.sorted_by(["user"]) and not s.sorted_by(["user", "ts", "x"])
        assert [f.sort_key for f in c.appended_files("t", 0)] == [(), ("user", "ts")]
        c.commit("t", "replace", add=[DataFile("r.ssf", {}, 10, 90, 1, sort_key=("ts",))], remove=[a.file_id])
        assert [(f.path, f.sort_key) for f in c.files("t", 2)] == [("s.ssf", ("user", "ts")), ("r.ssf", ("ts",))]

    # -- leases ---------------------------------------------------------------------------
    @covers("acquire_lease", "renew_lease", "release_lease", "live_leases")
    def test_renewal_extends_a_lease_and_release_is_idempotent(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        lease = c.acquire_lease("t", 1, ttl=5, owner="r")
        ((lid, sid, expires, owner),) = c.live_leases("t")
        assert (lid, sid, owner) == (lease, 1, "r") and time.time() < expires <= time.time() + 5
        assert c.renew_lease(lease, 600) is True
        assert c.live_leases("t")[0][2] > time.time() + 500
        c.release_lease(lease)
        c.release_lease(lease)  # already gone: a no-op
        c.release_lease("no-such-lease")
        assert c.live_leases("t") == [] and c.live_leases("nope") == []
        assert c.renew_lease("no-such-lease", 60) is False

    @covers("acquire_lease", "expire_snapshots", "unreferenced_files", "snapshots")
    def test_a_lapsed_lease_protects_nothing(self, catalog):
        c = catalog
        fid = _replaced_once(c)
        c.acquire_lease("t", 1, ttl=0.05, owner="stalled reader")
        assert c.expire_snapshots("t", keep=[]) == []  # still live
        time.sleep(0.1)
        assert c.expire_snapshots("t", keep=[]) == [1]
        assert [s.snapshot_id for s in c.snapshots("t")] == [2]
        assert c.unreferenced_files("t") == [(fid, "a.ssf")]

    @covers("acquire_lease", "follow_watermark", "release_lease", "unreferenced_files")
    def test_the_follow_watermark_is_the_lowest_live_follower(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        for k in range(4):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        assert c.follow_watermark("t") is None and c.follow_watermark("nope") is None
        c.acquire_lease("t", 2, ttl=60, owner="reader")  # a reader is no follower
        assert c.follow_watermark("t") is None
        late = c.acquire_lease("t", 3, ttl=60, keep_later=True)
        early = c.acquire_lease("t", 1, ttl=60, keep_later=True)
        c.acquire_lease("t", 0, ttl=-1, keep_later=True)  # lapsed: not counted
        assert c.follow_watermark("t") == 1
        c.release_lease(early)
        assert c.follow_watermark("t") == 3
        # What the follower at 3 has yet to read stays, even once replaced and unretained.
        ids = [f.file_id for f in c.files("t", 4)]
        c.commit("t", "replace", add=[_file("all.ssf", 40)], remove=ids)
        c.expire_snapshots("t", keep=[])
        assert c.unreferenced_files("t") == []
        c.release_lease(late)
        assert c.follow_watermark("t") is None

    # -- expiry, files no snapshot needs --------------------------------------------------------
    @covers("expire_snapshots", "snapshots", "acquire_lease", "create_tag")
    def test_expiry_never_drops_the_current_a_leased_or_a_tagged_snapshot(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        assert c.expire_snapshots("t", keep=[]) == []  # nothing to expire yet
        for k in range(6):
            c.commit("t", "append", add=[_file(f"{k}.ssf")])
        c.acquire_lease("t", 2, ttl=60)
        c.create_tag("t", "keep-me", 4)
        c.acquire_lease("t", 0, ttl=60)  # a writer's lease pins nothing
        assert c.expire_snapshots("t", keep=[3]) == [1, 5]  # ascending; 6 is current
        assert [s.snapshot_id for s in c.snapshots("t")] == [2, 3, 4, 6]
        assert c.expire_snapshots("t", keep=[]) == [3]
        assert [s.snapshot_id for s in c.snapshots("t")] == [2, 4, 6]

    @covers("forget_files", "unreferenced_files", "deleted_positions", "files", "all_file_paths")
    def test_forget_files_leaves_live_files_and_other_tables_alone(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.create_table("u", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf"), _file("b.ssf")])
        c.commit("u", "append", add=[_file("u.ssf")])
        fa, fb = (f.file_id for f in c.files("t", 1))
        (fu,) = (f.file_id for f in c.files("u", 1))
        c.commit("t", "delete", deletes={fb: [1, 2]})
        c.commit("u", "replace", add=[_file("u2.ssf")], remove=[fu])
        c.commit("t", "replace", add=[_file("a2.ssf")], remove=[fa])
        c.expire_snapshots("t", keep=[])
        c.expire_snapshots("u", keep=[])
        assert c.unreferenced_files("t") == [(fa, "a.ssf")]
        c.forget_files("t", [fb, fu, 10**9])  # live, another table's, unknown: nothing to forget
        c.forget_files("t", [])
        assert c.deleted_positions("t", 3)[fb].tolist() == [1, 2]
        (live_b,) = [f for f in c.files("t", 3, with_stats=["y"]) if f.path == "b.ssf"]
        assert live_b.stats["y"].values == 10
        assert c.unreferenced_files("u") == [(fu, "u.ssf")]
        c.forget_files("t", [fa])
        assert sorted(p for _i, p, _r in c.all_file_paths("t")) == ["a2.ssf", "b.ssf"]
        assert c.unreferenced_files("t") == []

    # -- deletes ------------------------------------------------------------------------------
    @covers("deleted_positions", "commit")
    def test_deleted_positions_are_sorted_distinct_int64_per_snapshot(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf", 100)])
        fid = c.files("t", 1)[0].file_id
        s2 = c.commit("t", "delete", deletes={fid: np.array([9, 2, 9, 50])})
        s3 = c.commit("t", "delete", deletes={fid: [2, 0]}, summary={"filter": "x"})  # 2 again
        assert s2.summary["deleted_rows"] == 3 and s3.summary["filter"] == "x"
        got = c.deleted_positions("t", 3)[fid]
        assert got.dtype == np.int64 and got.tolist() == [0, 2, 9, 50]
        assert c.deleted_positions("t", 2)[fid].tolist() == [2, 9, 50]
        assert c.deleted_positions("nope", 3) == {}
        s4 = c.commit("t", "delete", deletes={fid: []})  # nothing to delete: still a snapshot
        assert s4.snapshot_id == 4 and c.deleted_positions("t", 4)[fid].tolist() == [0, 2, 9, 50]

    # -- table properties -----------------------------------------------------------------------
    @covers("set_table_properties", "load_table")
    def test_set_table_properties_changes_only_the_given_keys(self, catalog):
        c = catalog
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
    @covers("create_tag", "tags", "resolve_tag", "drop_tag")
    def test_tags_create_list_resolve_replace_drop(self, catalog):
        c = catalog
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
    @covers("create_tag", "tags")
    def test_bad_tag_names(self, catalog, bad):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        with pytest.raises(ss.CatalogError, match="tag name"):
            c.create_tag("t", bad, 1)
        assert c.tags("t") == []

    @covers("create_tag", "tags")
    def test_a_tag_only_on_a_retained_snapshot(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.commit("t", "append", add=[_file("b.ssf")])
        c.expire_snapshots("t", keep=[])
        for sid in (1, 0, 7):
            with pytest.raises(ss.SnapshotNotFound, match=rf"cannot tag snapshot {sid} .* retained snapshots: \[2\]"):
                c.create_tag("t", "x", sid)
        assert c.tags("t") == []

    @covers("create_tag", "drop_tag", "expire_snapshots", "unreferenced_files")
    def test_tagged_snapshots_survive_expiry_and_keep_their_files(self, catalog):
        c = catalog
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

    @covers("drop_table", "tags", "resolve_tag")
    def test_drop_table_forgets_its_tags(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, [])
        c.commit("t", "append", add=[_file("a.ssf")])
        c.create_tag("t", "train", 1)
        c.drop_table("t")
        c.create_table("t", SCHEMA, [])
        assert c.tags("t") == []
        with pytest.raises(ss.SnapshotNotFound):
            c.resolve_tag("t", "train")

    @covers("commit", "files", "quarantines", "resolve_quarantine", "appended_files", "snapshot")
    def test_quarantined_files_are_hidden_until_released_and_time_travel_keeps_that(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, ["ds"])
        why = [{"rule": "missing_rate", "column": "y", "measured": 0.4, "bound": 0.1}]
        snap = c.commit("t", "append", add=[_file("a.ssf", 10, "a"), _file("b.ssf", 7, "b")],
                        quarantine={'{"ds": "b"}': why})
        assert snap.summary["added_rows"] == 10 and snap.summary["total_rows"] == 10
        assert snap.summary["quarantined_rows"] == 7 and snap.summary["quarantined_files"] == 1
        assert [f.path for f in c.files("t", 1)] == ["a.ssf"]
        held = c.files("t", 1, include_quarantined=True, with_stats=["y"])
        assert [f.path for f in held] == ["a.ssf", "b.ssf"] and held[1].stats["y"].values == 7
        [q] = c.quarantines("t")
        assert (q.partition, q.files, q.rows, q.snapshot_id, q.resolution) == ({"ds": "b"}, 1, 7, 1, None)
        assert q.violations == tuple(why) and held[1].quarantine_id == q.quarantine_id
        assert held[1].visible_from is None
        assert [f.path for f in c.appended_files("t", 0)] == ["a.ssf"]  # a follower does not see it either
        rel = c.resolve_quarantine("t", q.quarantine_id, "release")
        assert rel.operation == "release" and rel.summary["total_rows"] == 17 and rel.summary["added_rows"] == 7
        assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]
        assert [f.path for f in c.files("t", 1)] == ["a.ssf"]  # snapshot 1 reads as it was
        [b] = [f for f in c.appended_files("t", 1)]
        assert (b.path, b.visible_from, b.added_snapshot) == ("b.ssf", 2, 1)
        assert c.quarantines("t") == [] and c.quarantines("t", resolved=True)[0].resolution == "released"
        assert c.snapshot("t", 2).summary["quarantine_id"] == q.quarantine_id
        with pytest.raises(ss.CatalogError, match="released already"):
            c.resolve_quarantine("t", q.quarantine_id, "drop")
        with pytest.raises(ss.CatalogError, match=r"no quarantine 999; open quarantines: \[\]"):
            c.resolve_quarantine("t", 999, "release")
        with pytest.raises(ss.CatalogError, match="one of"):
            c.resolve_quarantine("t", q.quarantine_id, "forget")

    @covers("commit", "files", "quarantines", "resolve_quarantine", "expire_snapshots", "unreferenced_files",
            "drop_table")
    def test_a_dropped_quarantine_is_removed_and_its_files_become_garbage_only_then(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, ["ds"])
        c.commit("t", "append", add=[_file("a.ssf", 5, "a")], quarantine={'{"ds": "a"}': [{"rule": "rows"}]})
        c.commit("t", "append", add=[_file("b.ssf", 5, "b")])
        c.expire_snapshots("t", keep=[2])
        assert c.unreferenced_files("t") == []  # quarantined: live, whatever is expired
        [q] = c.quarantines("t")
        drop = c.resolve_quarantine("t", q.quarantine_id, "drop")
        assert drop.operation == "drop-quarantine" and drop.summary["total_rows"] == 5
        assert c.files("t", 3, include_quarantined=True)[0].path == "b.ssf"
        assert len(c.files("t", 2, include_quarantined=True)) == 2
        c.expire_snapshots("t", keep=[3])
        assert [p for _fid, p in c.unreferenced_files("t")] == ["a.ssf"]
        assert c.quarantines("t", resolved=True)[0].resolution == "dropped"
        with pytest.raises(ss.CatalogError, match="holds no added file"):
            c.commit("t", "append", add=[_file("c.ssf", 5, "c")], quarantine={'{"ds": "x"}': []})
        c.drop_table("t")
        c.create_table("t", SCHEMA, ["ds"])
        assert c.quarantines("t", resolved=True) == []

    @covers("commit", "files")
    def test_files_of_some_partitions_only(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, ["ds"])
        c.commit("t", "append", add=[_file("a.ssf", 1, "a"), _file("b.ssf", 2, "b"), _file("c.ssf", 3, "c")])
        c.commit("t", "append", add=[_file("b2.ssf", 4, "b")], quarantine={'{"ds": "b"}': [{"rule": "rows"}]})
        got = c.files("t", 2, with_stats=["y"], partitions=[{"ds": "b"}, {"ds": "c"}, {"ds": "zz"}])
        assert [f.path for f in got] == ["b.ssf", "c.ssf"] and all("y" in f.stats for f in got)
        held = c.files("t", 2, partitions=[{"ds": "b"}], include_quarantined=True)
        assert [f.path for f in held] == ["b.ssf", "b2.ssf"]
        assert c.files("t", 2, partitions=[]) == []

    @covers("commit", "files", "quarantines", "resolve_quarantine", "appended_files", "appends_replaced_upto")
    def test_held_rows_stay_out_of_the_totals_and_a_rewrite_joins_their_quarantine(self, catalog):
        c = catalog
        c.create_table("t", SCHEMA, ["ds"])
        c.commit("t", "append", add=[_file("a.ssf", 100, "a")])
        held = c.commit("t", "append", add=[_file("b.ssf", 10, "b")], quarantine={'{"ds": "b"}': [{"rule": "rows"}]})
        [q] = c.quarantines("t")
        [b] = [f for f in c.files("t", 2, include_quarantined=True) if f.quarantine_id]
        d = c.commit("t", "delete", deletes={b.file_id: [0, 1, 2]})  # held rows: not in the visible total
        assert held.summary["total_rows"] == 100 and d.summary["total_rows"] == 100
        # A rewrite of held files (compaction purging the erased rows) stays in their quarantine.
        out = DataFile("b2.ssf", {"ds": "b"}, 7, 70, 1, quarantine_id=q.quarantine_id)
        r = c.commit("t", "replace", add=[out], remove=[b.file_id])
        assert (r.summary["added_rows"], r.summary["removed_rows"], r.summary["total_rows"]) == (0, 0, 100)
        assert [f.path for f in c.files("t", 4)] == ["a.ssf"]
        [b2] = [f for f in c.files("t", 4, include_quarantined=True) if f.quarantine_id]
        assert (b2.path, b2.quarantine_id, b2.visible_from) == ("b2.ssf", q.quarantine_id, None)
        assert c.appends_replaced_upto("t") == 0  # never visible: no follower missed it
        [q2] = c.quarantines("t")
        assert (q2.files, q2.rows) == (1, 7)
        with pytest.raises(ss.CatalogError, match=r"partition \{\"ds\": \"a\"\}"):
            c.commit("t", "replace", add=[DataFile("x.ssf", {"ds": "a"}, 1, 1, 1, quarantine_id=q.quarantine_id)])
        rel = c.resolve_quarantine("t", q.quarantine_id, "release")
        assert rel.summary["total_rows"] == 107 and rel.summary["released_files"] == 1
        assert [f.path for f in c.appended_files("t", 4)] == ["b2.ssf"]  # a follower receives the rows
        c.commit("t", "append", add=[_file("c.ssf", 5, "c")], quarantine={'{"ds": "c"}': [{"rule": "rows"}]})
        [qc] = c.quarantines("t")
        [cf] = [f for f in c.files("t", 6, include_quarantined=True) if f.path == "c.ssf"]
        c.commit("t", "delete", deletes={cf.file_id: [0]})
        drop = c.resolve_quarantine("t", qc.quarantine_id, "drop")
        assert drop.summary["total_rows"] == 107 and drop.summary["dropped_files"] == 1
        with pytest.raises(ss.CommitConflict, match=f"quarantine {qc.quarantine_id} .*dropped already.*re-plan"):
            c.commit("t", "replace", add=[DataFile("x.ssf", {"ds": "c"}, 1, 1, 1, quarantine_id=qc.quarantine_id)])


# -- the SQLite backend -----------------------------------------------------------------------

def test_open_catalog_picks_the_backend_by_scheme(tmp_path):
    c = open_catalog(tmp_path / "store", create=True)  # a plain folder: SQLite inside it
    assert isinstance(c, SQLiteCatalog) and c.location == str(tmp_path / "store" / "catalog.db")
    c.create_table("t", SCHEMA, [])
    c.commit("t", "append", add=[_file("a.ssf")])
    c.close()
    assert SQLiteCatalog(str(tmp_path / "store"), create=False).load_table("t").current_snapshot == 1
    with pytest.raises(ss.CatalogError, match=r"no catalog backend for nosuch:// locations.*'nosuch://h/db'"):
        open_catalog("nosuch://h/db")
    with pytest.raises(ss.CatalogError, match="samplestore init"):
        open_catalog(tmp_path / "nope")


def test_a_registered_backend_opens_its_scheme(tmp_path, monkeypatch):
    from samplestore.catalog import registry

    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    opened = []

    def opener(location, create):
        opened.append((location, create))
        return SQLiteCatalog(str(tmp_path / "s"), create=create)

    registry.register_backend("memo", opener)
    assert "memo" in registry.backend_schemes()
    assert isinstance(open_catalog("MEMO://x/y", create=True), SQLiteCatalog)
    assert opened == [("MEMO://x/y", True)]
    with pytest.raises(ValueError, match="scheme"):
        registry.register_backend("no spaces", opener)


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
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
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
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
    assert c.catalog_id == catalog_id and c.last_commit_token("t", "w") == "1"
    assert c.load_table("t").properties == {"owner": "ranking"}
    assert [f.path for f in c.files("t", 2)] == ["a.ssf", "b.ssf"]
    assert c.tags("t") == []
    c.create_tag("t", "train", 1)
    assert c.expire_snapshots("t", keep=[]) == []  # the tag protects 1; 2 is current
    c.close()
    assert SQLiteCatalog(root).resolve_tag("t", "train") == 1  # opened again: no second migration


def test_version_3_catalog_gains_file_sort_keys(tmp_path):
    import sqlite3

    root = str(tmp_path / "v3")
    c = SQLiteCatalog(root, create=True)
    c.create_table("t", SCHEMA, [])
    c.commit("t", "append", add=[_file("a.ssf")])
    c.create_tag("t", "train", 1)
    c.close()
    # What a version-3 catalog is: files without a sort_key column.
    con = sqlite3.connect(str(tmp_path / "v3" / "catalog.db"))
    con.executescript("""
        ALTER TABLE files DROP COLUMN sort_key;
        UPDATE meta SET value = '3' WHERE key = 'schema_version';
    """)
    con.close()
    c = SQLiteCatalog(root)
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
    [a] = c.files("t", 1)
    assert (a.path, a.sort_key) == ("a.ssf", ()) and c.resolve_tag("t", "train") == 1
    c.commit("t", "append", add=[DataFile("b.ssf", {}, 4, 50, 1, sort_key=("user",))])
    assert [f.sort_key for f in c.files("t", 2)] == [(), ("user",)]


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


def test_version_4_catalog_gains_quarantines(tmp_path):
    import sqlite3

    root = str(tmp_path / "v4")
    c = SQLiteCatalog(root, create=True)
    c.create_table("t", SCHEMA, [])
    c.commit("t", "append", add=[_file("a.ssf")])
    c.close()
    # What a version-4 catalog is: files without quarantine columns, no quarantines table.
    con = sqlite3.connect(str(tmp_path / "v4" / "catalog.db"))
    con.executescript("""
        ALTER TABLE files DROP COLUMN quarantine_id;
        ALTER TABLE files DROP COLUMN released_snapshot;
        DROP TABLE quarantines;
        UPDATE meta SET value = '4' WHERE key = 'schema_version';
    """)
    con.close()
    c = SQLiteCatalog(root)
    assert c._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("5",)
    [a] = c.files("t", 1)
    assert (a.path, a.quarantine_id, a.visible_from) == ("a.ssf", None, 1) and c.quarantines("t") == []
