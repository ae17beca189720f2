import os
import sys

# Make tests/helpers.py importable as `helpers` from every test package.
sys.path.insert(0, os.path.dirname(__file__))

import pytest


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server on 127.0.0.1 for this test session (or xdist worker),
    from the binaries of the ``pgserver`` package; stopped and removed at the end."""
    from pg import start_or_skip

    server = start_or_skip()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_catalog_from_the_environment(monkeypatch):
    # A developer's SAMPLESTORE_CATALOG must not point the tests' stores at a real catalog.
    monkeypatch.delenv("SAMPLESTORE_CATALOG", raising=False)


@pytest.fixture
def catalog_backend(request, monkeypatch):
    """The catalog backend of a test's stores: "sqlite" unless the test is parametrised
    over it (``helpers.BOTH_CATALOGS``). With "postgres", SAMPLESTORE_CATALOG names a new
    schema on the session's server, so every store the test opens, and every process it
    starts, keeps its catalog there (the data stay under the store's root). A fixture making
    a store depends on this one, so the variable is set before the store is opened."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres":
        monkeypatch.setenv("SAMPLESTORE_CATALOG", request.getfixturevalue("pg_server").uri())
    return name

from s3server import start_server  # noqa: E402


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-API server (moto) on 127.0.0.1, for this test process."""
    yield from start_server()


@pytest.fixture
def s3_uri(s3_server):
    """``s3://BUCKET/samples`` in a fresh bucket, and its storage options."""
    return f"s3://{s3_server.new_bucket()}/samples", s3_server.options



#: Parameters whose values name a server-backed variant (tests/s3server.py, tests/pg.py).
_SERVER_VARIANTS = {"s3", "postgres"}
_SERVER_MODULES = {"test_s3.py", "test_postgres_catalog.py"}
_SERVER_FIXTURES = {"s3_server", "s3_uri", "pg_server"}


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config, items):
    """Tests parametrised over both the storage (local, S3) and the catalog (SQLite,
    PostgreSQL) run three of the four pairings: the local default, PostgreSQL on the local
    disk, and S3 with PostgreSQL (what many hosts share). S3 with an SQLite catalog beside it
    is tests/storage's case; an S3 store of ``s3server.make_store`` always has a PostgreSQL
    catalog, so the fourth pairing would run the third again."""
    dropped = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        # The S3 and PostgreSQL variants start servers and take a few seconds each: `make test`
        # runs them, the quick loop (`make test-fast`, -m "not slow") leaves them out.
        if (item.path.name in _SERVER_MODULES or _SERVER_VARIANTS & {v for v in params.values() if isinstance(v, str)}
                or _SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.slow)
        storage = params.get("store", params.get("table"))
        if storage == "s3" and params.get("catalog_backend") == "sqlite":
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
