"""A store opened at the wrong root with a catalog that lives apart (a shared catalog, an
object-store prefix) writes nothing there, and a table whose folder cannot be made is not
created."""

import os

import pytest

import samplestore as ss

SCHEMA = ss.Schema([ss.Scalar("k", "int64"), ss.Label("y")])
ROWS = {"k": [1, 2, 3], "y": [0.0, 1.0, 0.0]}


def _mistyped_root_refuses_writes(right, wrong, **kw):
    good, bad = ss.open_store(right, create=True, **kw), ss.open_store(wrong, **kw)
    try:
        good.create_table("t", SCHEMA).append(ROWS)
        with pytest.raises(ss.CatalogError, match="is the store's root right") as err:
            bad.table("t").append(ROWS)
        assert "does not exist under this store's root" in str(err.value)
        assert good.table("t").count() == 3  # nothing committed
    finally:
        good.close()
        bad.close()


def test_a_mistyped_local_root_with_a_catalog_apart_refuses_writes(tmp_path):
    _mistyped_root_refuses_writes(tmp_path / "samples", tmp_path / "sampels", catalog=tmp_path / "catalog")
    assert not os.path.exists(tmp_path / "sampels" / "tables" / "t" / "data") or \
        not os.listdir(tmp_path / "sampels" / "tables" / "t" / "data")


@pytest.mark.slow  # starts the S3 and PostgreSQL servers
def test_a_mistyped_s3_prefix_with_a_shared_catalog_refuses_writes(tmp_path, s3_uri, pg_server):
    uri, options = s3_uri
    _mistyped_root_refuses_writes(uri, uri.replace("/samples", "/sampels"), catalog=pg_server.uri(),
                                  storage_options=options)


@pytest.mark.slow  # starts the S3 server
def test_no_store_is_made_in_a_missing_bucket_and_no_table_whose_folder_cannot_be_written(tmp_path, s3_server):
    options = s3_server.options
    with pytest.raises(ss.CatalogError, match="its bucket 'no-such-bucket' does not exist"):
        ss.open_store("s3://no-such-bucket/samples", create=True, catalog=tmp_path / "catalog",
                      storage_options=options)
    assert not (tmp_path / "catalog").exists()  # refused before a catalog was made
    # A bucket that goes away after the store was made: the table is not created.
    bucket = s3_server.new_bucket()
    store = ss.open_store(f"s3://{bucket}/samples", create=True, catalog=tmp_path / "catalog",
                          storage_options=options)
    s3_server.filesystem(allow_bucket_deletion=True).delete_dir(bucket)
    with pytest.raises(ss.CatalogError, match="was not created: its folder") as err:
        store.create_table("t", SCHEMA)
    assert "bucket" in str(err.value)
    assert store.tables() == []
    store.close()
