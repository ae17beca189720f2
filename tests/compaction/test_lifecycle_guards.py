"""Guards of the lifecycle: a table is not dropped from under its readers."""

import os

import pytest

import samplestore as ss
from samplestore.table.lease import Lease, owner_tag

SCHEMA = ss.Schema([ss.Scalar("k", "int64"), ss.Label("y"), ss.Scalar("ds", "string")])


def _rows(start, n, ds="a"):
    return {"k": list(range(start, start + n)), "y": [0.0] * n, "ds": [ds] * n}


@pytest.fixture
def store(tmp_path):
    return ss.open_store(tmp_path / "store", create=True)


# -- dropping a table under its readers -------------------------------------------------------
def test_store_drop_table_refuses_while_a_reader_holds_a_lease(store):
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    files = [os.path.join(t.dir, f.path) for f in t.files()]
    reader = Lease(store.catalog, "t", t.current_snapshot_id, ttl=60)
    try:
        with pytest.raises(ss.CatalogError, match=rf"{owner_tag(os.getpid())} on snapshot 1"):
            store.drop_table("t")
        assert store.tables() == ["t"] and all(os.path.exists(p) for p in files)
        store.drop_table("t", force=True)
        assert store.tables() == [] and not os.path.exists(t.dir)
    finally:
        reader.release()


def test_store_drop_table_after_the_reader_is_done(store):
    t = store.create_table("t", SCHEMA)
    t.append(_rows(0, 10))
    Lease(store.catalog, "t", 1, ttl=60).release()
    store.drop_table("t")
    assert store.tables() == []
