"""The PostgreSQL catalog beyond the conformance class: a server that goes away and comes back,
what it refuses, what it never shows, and connections across fork."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import samplestore as ss
from samplestore.catalog import open_catalog

sys.path.insert(0, os.path.dirname(__file__))
from table_workers import SCHEMA, batch  # noqa: E402

try:
    import psycopg
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise  # CI must run the PostgreSQL tests, not skip them
    pytest.skip("the PostgreSQL tests need psycopg (pip install -e '.[test]')", allow_module_level=True)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "samplestore", *args], env=_env(), capture_output=True, text=True,
                          timeout=120)


def row_ids(table) -> list[int]:
    return sorted(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_pylist())


@pytest.fixture
def private_pg():
    """A server of this test's own, which it may stop and start."""
    from pg import start_or_skip

    server = start_or_skip()
    yield server
    server.close()


def test_an_outage_fails_with_catalog_error_and_the_same_objects_resume(tmp_path, private_pg):
    uri = private_pg.uri()
    root = str(tmp_path / "s")
    store = ss.open_store(root, create=True, catalog=uri)
    t = store.create_table("t", SCHEMA)
    t.append(batch(0, 10))
    from samplestore.torch import SampleDataset
    planned = SampleDataset(t, batch_size=4, shuffle=False)  # a reader that planned before the outage
    w = t.writer(commit_every_rows=None, writer_id="job", lease_seconds=120)
    w.write(batch(10, 10), commit_token=0)
    idle = open_catalog(uri)  # a handle that makes no call while the server is down
    assert idle.table_names() == ["t"]

    private_pg.stop()
    # A writer's commit and a new reader fail with CatalogError saying what is wrong and where.
    with pytest.raises(ss.CatalogError, match=r"unreachable.*127\.0\.0\.1") as info:
        w.commit()
    assert "postgresql://postgres@127.0.0.1" in str(info.value)
    with pytest.raises(ss.CatalogError, match="unreachable"):
        t.scan(columns=["row_id"]).to_arrow()
    with pytest.raises(ss.CatalogError, match="unreachable"):
        SampleDataset(t, batch_size=4)
    # A reader that planned its epoch reads it from storage: the catalog is not on its path.
    assert sorted(np.concatenate([b.extras["row_id"].numpy() for b in planned]).tolist()) == list(range(10))
    # The CLI: one line, exit status 2, no traceback.
    r = cli("info", root, "--catalog", uri)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("samplestore: error: the catalog at ")
    assert "unreachable" in r.stderr and "Traceback" not in r.stderr

    private_pg.start()
    # The same objects work again (a broken connection is replaced), nothing lost or doubled.
    assert idle.table_names() == ["t"]  # its session died with the server: the first call reconnects
    assert w.commit() is not None
    w.write(batch(20, 10), commit_token=1)
    w.close()
    assert row_ids(t) == list(range(30))
    assert t.last_commit_token("job") == "1"
    assert [s.summary["total_rows"] for s in t.snapshots()] == [10, 20, 30]
    r = cli("info", root, "t", "--catalog", uri, "--json")
    assert r.returncode == 0, r.stderr
    planned.close()
    idle.close()


def test_the_location_and_messages_never_show_the_password(tmp_path, pg_server):
    uri = pg_server.uri().replace("postgres@", "postgres:s3cret-pw@") + "&password=other-secret"
    store = ss.open_store(str(tmp_path / "s"), create=True, catalog=uri)
    loc = store.catalog.location
    assert loc.startswith("postgresql://postgres@127.0.0.1:") and "schema=s_" in loc
    assert "s3cret" not in loc and "other-secret" not in loc and "s3cret" not in repr(store)
    r = cli("init", str(tmp_path / "s2"), "--catalog", pg_server.uri().replace("postgres@", "postgres:s3cret-pw@"))
    assert r.returncode == 0 and "catalog: postgresql://postgres@" in r.stdout and "s3cret" not in r.stdout
    # Nothing of the URI is stored in the catalog.
    with psycopg.connect(pg_server.uri().split("?")[0]) as conn:
        schema = loc.split("schema=")[1]
        values = conn.execute(f'SELECT value FROM "{schema}".meta').fetchall()
    assert not any("s3cret" in v or "127.0.0.1" in v for (v,) in values)


def test_the_environment_and_the_cli_name_the_catalog(tmp_path, pg_server, monkeypatch):
    uri = pg_server.uri()
    root = str(tmp_path / "s")
    r = cli("init", root, "--catalog", uri)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(root, "catalog.db"))  # the catalog is in PostgreSQL only
    monkeypatch.setenv("SAMPLESTORE_CATALOG", uri)
    store = ss.open_store(root)
    assert store.catalog_location == uri and store.catalog.location == uri
    store.create_table("t", SCHEMA).append(batch(0, 5))
    r = cli("info", root, "t", "--json")  # the variable reaches the CLI too
    assert r.returncode == 0 and '"rows": 5' in r.stdout, (r.stdout, r.stderr)


def test_a_schema_holding_something_else_is_refused_and_left_alone(pg_server):
    uri = pg_server.uri()
    schema = uri.split("schema=")[1]
    with psycopg.connect(uri.split("?")[0], autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".orders (id int)')
        with pytest.raises(ss.CatalogError, match=r"not a usable samplestore catalog.*\['orders'\]"):
            open_catalog(uri, create=True)
        assert conn.execute(f'SELECT count(*) FROM "{schema}".orders').fetchone() == (0,)
        names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        assert names == ["orders"]


def test_a_catalog_of_a_newer_version_is_refused(pg_server):
    uri = pg_server.uri()
    open_catalog(uri, create=True).close()
    schema = uri.split("schema=")[1]
    with psycopg.connect(uri.split("?")[0], autocommit=True) as conn:
        conn.execute(f"UPDATE \"{schema}\".meta SET value = '9' WHERE key = 'schema_version'")
    with pytest.raises(ss.CatalogError, match="newer samplestore"):
        open_catalog(uri)


def test_a_version_1_catalog_gains_quarantines(pg_server):
    uri = pg_server.uri()
    c = open_catalog(uri, create=True)
    c.create_table("t", ss.Schema([ss.Label("y")]), [])
    c.commit("t", "append", add=[ss.catalog.DataFile("a.ssf", {}, 3, 10, 1)])
    c.close()
    schema = uri.split("schema=")[1]
    with psycopg.connect(uri.split("?")[0], autocommit=True) as conn:  # what version 1 was
        conn.execute(f'ALTER TABLE "{schema}".files DROP COLUMN quarantine_id, DROP COLUMN released_snapshot')
        conn.execute(f'DROP TABLE "{schema}".quarantines')
        conn.execute(f"UPDATE \"{schema}\".meta SET value = '1' WHERE key = 'schema_version'")
    c = open_catalog(uri)
    [a] = c.files("t", 1)
    assert a.path == "a.ssf" and a.quarantine_id is None and c.quarantines("t") == []
    with psycopg.connect(uri.split("?")[0], autocommit=True) as conn:
        assert conn.execute(f"SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'").fetchone() == ("2",)
    c.close()


@pytest.mark.parametrize("bad", ["Upper", "a-b", "1abc", "x" * 64, "a;drop"])
def test_invalid_schema_names_are_refused(pg_server, bad):
    with pytest.raises(ss.CatalogError, match="schema of a PostgreSQL catalog"):
        open_catalog(pg_server.uri(bad), create=True)


def test_no_catalog_there_says_how_to_make_one(pg_server):
    with pytest.raises(ss.CatalogError, match=r"no samplestore catalog at .*samplestore init ROOT --catalog"):
        open_catalog(pg_server.uri())


def test_processes_creating_the_catalog_at_once_get_the_same_one(pg_server):
    uri = pg_server.uri()
    ids, errors = [], []

    def make():
        try:
            c = open_catalog(uri, create=True)
            ids.append(c.catalog_id)
            c.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(ids) == 4 and len(set(ids)) == 1


def test_a_forked_child_leaves_its_parents_connection_alone(pg_server):
    c = open_catalog(pg_server.uri(), create=True)
    c.create_table("t", SCHEMA, [])
    backend = c._conn().info.backend_pid
    pid = os.fork()
    if pid == 0:  # the child: uses the catalog (its own connection), then exits
        code = 0 if c.table_names() == ["t"] else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.table_names() == ["t"]
    assert c._conn().info.backend_pid == backend  # the parent's session survived the child
    c.close()


def test_without_psycopg_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ss.MissingDependency, match=r"samplestore\[postgres\]"):
        open_catalog("postgresql://someone@db.example/samples")
