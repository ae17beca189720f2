"""Tables on a real S3-API server (moto, on 127.0.0.1): crash safety without rename, the
training epoch equal to the one over a local copy, and the requests reads cost."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.format import FileReader
from samplestore.storage import ArrowStorage

torch = pytest.importorskip("torch")
from samplestore.torch import SampleDataset  # noqa: E402

HERE = os.path.dirname(__file__)
SCHEMA = ss.Schema([ss.Scalar("row_id", "int64"), ss.Dense("dense", dim=4), ss.Sparse("ids"), ss.Label("click"),
                    ss.Scalar("ds", "string")])


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return SCHEMA.conform({"row_id": r, "dense": (r[:, None] * [1, 2, 3, 4]).astype(np.float32).tolist(),
                           "ids": [list(range(int(i) % 5)) for i in r], "click": (r % 2).astype(np.float32),
                           "ds": [f"d{int(i) % 2}" for i in r]})


@pytest.fixture
def s3_store(s3_uri, tmp_path):
    uri, options = s3_uri
    return ss.open_store(uri, create=True, catalog=tmp_path / "catalog", storage_options=options)


def test_the_store_lives_on_s3_and_its_catalog_beside(s3_store, s3_server, tmp_path):
    assert s3_store.root.startswith("s3://") and s3_store.storage.remote
    assert s3_store.catalog_location == str(tmp_path / "catalog")
    t = s3_store.create_table("t", SCHEMA)
    t.append(rows(0, 10))
    assert not os.path.exists("s3:")  # nothing named after the URI on the local disk
    keys = [e.path for e in s3_store.storage.list_files(s3_store.storage.root)]
    assert len(keys) == 2 and all(k.startswith(s3_store.storage.root + "/tables/t/") for k in keys)
    # Any process can open it with the same URI and catalog; the endpoint can come from the URI.
    bucket_prefix = s3_store.storage.root
    uri = f"s3://{bucket_prefix}?endpoint_override={s3_server.endpoint}&scheme=http&region=us-east-1"
    again = ss.open_store(uri, catalog=tmp_path / "catalog")
    assert again.table("t").count() == 10


def test_an_epoch_over_s3_equals_the_epoch_over_a_local_copy(s3_store, tmp_path):
    t = s3_store.create_table("t", SCHEMA, partition_by=["ds"])
    for k, n in enumerate([700, 450, 900]):
        t.append(rows(k * 1000, n), row_group_rows=128)
    # The local copy: every object of the prefix and the catalog, byte for byte.
    storage = s3_store.storage
    local = tmp_path / "copy"
    for e in storage.list_files(storage.root):
        dest = local / os.path.relpath(e.path, storage.root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(storage.read_bytes(e.path))
    s3_store.close()
    for name in os.listdir(tmp_path / "catalog"):  # catalog.db and its write-ahead log
        shutil.copy(tmp_path / "catalog" / name, local / name)
    t_local = ss.open_store(local).table("t")

    def epoch(table, workers):
        ds = SampleDataset(table, batch_size=96, shuffle=True, seed=11, shuffle_buffer_rows=300)
        return list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))

    for workers in (0, 2):
        remote, here = epoch(ss.open_store(s3_store.root, storage=storage, catalog=tmp_path / "catalog").table("t"),
                             workers), epoch(t_local, workers)
        assert len(remote) == len(here) == -(-2050 // 96)
        for a, b in zip(remote, here):
            assert torch.equal(a.extras["row_id"], b.extras["row_id"]) and torch.equal(a.dense, b.dense)
            assert torch.equal(a.sparse.values, b.sparse.values) and torch.equal(a.sparse.lengths, b.sparse.lengths)
            assert torch.equal(a.labels, b.labels)
        seen = np.sort(np.concatenate([b.extras["row_id"].numpy() for b in remote]))
        expect = np.concatenate([np.arange(k * 1000, k * 1000 + n) for k, n in enumerate([700, 450, 900])])
        assert np.array_equal(seen, expect)  # exactly once


def test_a_writer_killed_mid_upload_leaves_no_object_and_gc_removes_its_orphan_and_upload(s3_store, s3_server,
                                                                                          monkeypatch):
    t = s3_store.create_table("t", SCHEMA)
    t.append(rows(0, 20))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    with subprocess.Popen([sys.executable, os.path.join(HERE, "s3_crash_worker.py"), s3_server.endpoint,
                           t.data_dir], stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            line = proc.stdout.readline().split()
            assert line and line[-1] == "uploading", "the writer did not start its upload"
        finally:
            proc.send_signal(signal.SIGKILL)  # mid-upload: one part stored, the rest in the writer's buffer
            proc.wait()
    orphan, dying = line[0], line[1]
    listed = {e.path for e in t.storage.list_files(t.data_dir)}
    assert dying not in listed  # an unfinished multipart upload is no object at all
    boto3 = pytest.importorskip("boto3")  # installed with moto: shows the upload was cut mid-way
    bucket, key = dying.split("/", 1)
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_server.endpoint}", region_name="us-east-1")

    def uploads():
        return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    assert uploads() == [key]
    assert orphan in listed  # published, never committed: not visible to readers
    assert sorted(t.scan(columns=["row_id"]).to_arrow().column("row_id").to_pylist()) == list(range(20))
    report = t.gc(grace_seconds=3600)  # younger than the grace period: kept
    assert (report["leftovers_removed"], report["uploads_aborted"], uploads()) == (0, 0, [key])
    with monkeypatch.context() as m:  # without boto3: the rest of GC runs, and it says what it could not do
        m.setitem(sys.modules, "boto3", None)
        report = t.gc(grace_seconds=0)
    assert (report["leftovers_removed"], report["uploads_aborted"], uploads()) == (1, 0, [key])
    assert "pip install 'samplestore[s3]'" in report["uploads_unchecked"]
    assert "AbortIncompleteMultipartUpload" in report["uploads_unchecked"]
    report = t.gc(grace_seconds=0)
    assert (report["uploads_aborted"], uploads(), "uploads_unchecked" in report) == (1, [], False)
    assert {e.path for e in t.storage.list_files(t.data_dir)} == {t.storage.join(t.dir, f.path) for f in t.files()}
    assert t.count() == 20


def test_gc_never_aborts_the_upload_of_a_writer_that_starts_while_it_looks(s3_store, s3_server, monkeypatch):
    """With no grace at all: GC aborts a dead writer's upload, and a writer that takes its
    lease and begins its upload just when GC reads the live leases keeps its upload."""
    import uuid

    from samplestore.compaction import lifecycle
    from samplestore.table.lease import Lease
    from samplestore.table.writer import data_file_name

    boto3 = pytest.importorskip("boto3")
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_server.endpoint}", region_name="us-east-1")
    t = s3_store.create_table("t", SCHEMA)
    t.append(rows(0, 20))
    bucket = t.data_dir.split("/", 1)[0]

    def start_upload(lease_id):
        key = t.storage.join(t.data_dir, data_file_name(lease_id)).split("/", 1)[1]
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"part one")
        return key

    dead = start_upload(uuid.uuid4().hex)  # a writer that held no live lease: killed
    started = []
    real = lifecycle.live_writer_leases

    def a_writer_starts_as_gc_reads_the_leases(table):
        live = real(table)
        lease = Lease(table.catalog, table.name, 0, ttl=600)  # as StreamingWriter takes it, then its upload
        started.append(start_upload(lease.lease_id))
        return live

    monkeypatch.setattr(lifecycle, "live_writer_leases", a_writer_starts_as_gc_reads_the_leases)
    report = t.gc(grace_seconds=0)
    monkeypatch.undo()
    assert started and started[0] != dead and report["uploads_aborted"] == 1
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == started


def test_abort_stale_uploads_keeps_what_it_is_told_and_reads_its_settings_from_the_uri(s3_server):
    """A storage opened from a URI (endpoint in the query string) reaches the same server with
    boto3; an upload ``keep`` claims stays, a stale one under the prefix goes, one elsewhere
    in the bucket stays; paths come back in the storage's own namespace."""
    import pyarrow.fs as pafs

    from samplestore.storage import storage_for

    boto3 = pytest.importorskip("boto3")
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_server.endpoint}", region_name="us-east-1")
    bucket = s3_server.new_bucket()
    for key in ("root/d/a.ssf", "root/d/b.ssf", "other/c.ssf"):  # as a killed writer leaves them: one part stored
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)
        s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"part one")

    def uploads():
        return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    storage = storage_for(f"s3://{bucket}/root?endpoint_override={s3_server.endpoint}&scheme=http&region=us-east-1")
    prefix = storage.join(storage.root, "d")
    assert storage.abort_stale_uploads(prefix, 3600) == []  # its part is seconds old
    keep = storage.join(prefix, "a.ssf")
    assert storage.abort_stale_uploads(prefix, 0, keep=lambda p: p == keep) == [storage.join(prefix, "b.ssf")]
    assert uploads() == ["other/c.ssf", "root/d/a.ssf"]
    subtree = ArrowStorage(pafs.SubTreeFileSystem(f"{bucket}/root", s3_server.filesystem()))
    assert subtree.abort_stale_uploads("d", 0) == ["d/a.ssf"]
    assert uploads() == ["other/c.ssf"]  # outside the prefix: not touched


def test_footer_in_one_request_and_chunks_coalesced(s3_server, tmp_path):
    """Request counts of the reader on S3: a file's footer and index come in one ranged GET
    (after the HEAD that gives its size); adjacent chunks of one row group in one GET; a
    gap wider than the threshold splits them."""
    from samplestore.format import write_file
    from samplestore.format.spec import HEADER

    storage = ArrowStorage(s3_server.filesystem(), s3_server.new_bucket())
    schema = ss.Schema([ss.Dense(f"f{i}", dim=64) for i in range(6)])
    rng = np.random.default_rng(0)
    n = 2000  # 512 KB of random floats per chunk: wider than the coalescing gap
    data = {f"f{i}": rng.standard_normal((n, 64), dtype=np.float32).tolist() for i in range(6)}
    path = storage.join(storage.root, "f.ssf")
    write_file(path, schema.conform(data), schema, row_group_rows=1000, storage=storage)
    size = storage.info(path).size
    assert size > 4 * storage.coalesce_gap

    storage.stats.reset()
    r = FileReader(path, storage)
    assert storage.stats.snapshot() == {"opens": 1, "requests": 1, "bytes_read": 64 << 10}
    chunk = {c: int(r.chunk_bytes([c], [0])) for c in [f.name for f in schema]}

    def cost(columns):
        storage.stats.reset()
        got = r.read_row_group(0, columns)
        assert got.num_rows == 1000 and got.column_names == columns
        return storage.stats.requests, storage.stats.bytes_read

    assert cost(["f1", "f2", "f3"]) == (1, chunk["f1"] + chunk["f2"] + chunk["f3"])
    # f0 follows the file header, which comes with it (checked on the way: not read on opening).
    assert cost(["f0", "f5"]) == (2, HEADER.size + chunk["f0"] + chunk["f5"])
    r.close()


def test_a_read_cache_serves_the_second_epoch_without_a_request(s3_uri, tmp_path):
    uri, options = s3_uri
    store = ss.open_store(uri, create=True, catalog=tmp_path / "catalog", storage_options=options,
                          read_cache=tmp_path / "cache", read_cache_bytes=64 << 20)
    t = store.create_table("t", SCHEMA)
    for k in range(3):
        t.append(rows(k * 500, 500), row_group_rows=128)
    ds = SampleDataset(t, batch_size=100, seed=3)
    stats = store.storage.stats
    stats.reset()
    first = np.sort(np.concatenate([b.extras["row_id"].numpy() for b in ds]))
    assert stats.opens == 3 and stats.requests > 0
    stats.reset()
    ds.set_epoch(1)
    second = np.sort(np.concatenate([b.extras["row_id"].numpy() for b in ds]))
    ds.close()
    assert stats.snapshot() == {"opens": 0, "requests": 0, "bytes_read": 0}  # all from the local cache
    assert np.array_equal(first, np.arange(1500)) and np.array_equal(second, first)
    assert len(os.listdir(tmp_path / "cache")) > 3
    # Size-bounded: least recently used entries go.
    store.storage.max_bytes = 4096
    assert store.storage.evict() <= 4096


def test_a_scan_reads_ahead_and_can_be_abandoned(s3_store):
    t = s3_store.create_table("t", SCHEMA)
    for k in range(5):
        t.append(rows(k * 300, 300), row_group_rows=64)
    stats = s3_store.storage.stats
    stats.reset()
    got = t.scan(columns=["row_id", "ids"]).to_arrow()
    assert sorted(got.column("row_id").to_pylist()) == list(range(1500))
    # One open and one tail read per file (each file is small: read whole), nothing else.
    assert stats.snapshot()["opens"] == 5 and stats.requests == 5
    batches = t.scan(columns=["row_id"]).to_batches()
    assert batches.read_next_batch().num_rows == 64
    batches.close()  # files opened and row groups fetched ahead are closed with it
    assert t.count() == 1500
