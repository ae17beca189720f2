"""samplestore on Ray, on a local Ray cluster (conftest.py): write, read, compaction, ingest and
Ray Train, each with the store on the local disk (SQLite catalog) and on the S3 server with a
PostgreSQL catalog (tests/s3server.py), so that no task relies on the driver's memory."""

import os
import pathlib
import shutil
import tempfile
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import samplestore as ss
from s3server import make_store

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

SCHEMA = ss.Schema([ss.Dense("dense", dim=13), ss.Sparse("c0"), ss.Sparse("c1"), ss.Label("click"),
                    ss.Scalar("row_id", "int64", nullable=False)])


def rows(start: int, n: int) -> pa.Table:
    """Criteo-like rows ``row_id`` start..start+n: 13 dense, two id lists, a click label
    (cheap to generate: the tests' time goes to samplestore, not to the data)."""
    rng = np.random.default_rng(start)
    lengths = rng.integers(1, 4, (2, n))

    def ids(k: int) -> pa.Array:
        offsets = np.concatenate([[0], np.cumsum(lengths[k])]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.integers(0, 1 << 40, offsets[-1])))

    dense = rng.random(n * 13, dtype=np.float32)
    return pa.table({"dense": pa.FixedSizeListArray.from_arrays(pa.array(dense), 13), "c0": ids(0), "c1": ids(1),
                     "click": pa.array(rng.random(n, dtype=np.float32) < 0.3).cast(pa.float32()),
                     "row_id": pa.array(np.arange(start, start + n, dtype=np.int64))})


def dataset(ray, n: int, blocks: int):
    """A ``ray.data.Dataset`` of ``rows(0, n)`` in ``blocks`` blocks, made in the tasks."""
    def make(batch):
        ids = np.asarray(batch["id"], dtype=np.int64)
        return rows(int(ids[0]), len(ids))

    return ray.data.range(n, override_num_blocks=blocks).map_batches(make, batch_format="pyarrow", batch_size=None)


def _shift(by: int):
    """A map over batches of ``rows``: row ids moved up by ``by`` (rows of another job)."""
    def shift(batch):
        return batch.set_column(batch.schema.get_field_index("row_id"), "row_id",
                                pc.add(batch["row_id"], by))
    return shift


def row_ids(table) -> np.ndarray:
    return table.scan(columns=["row_id"]).to_arrow()["row_id"].to_numpy()


def assert_every_row_once(ids: np.ndarray, n: int) -> None:
    assert len(ids) == n and np.array_equal(np.sort(ids), np.arange(n))


def data_files(table) -> list[str]:
    return [e.path for e in table.storage.list_files(table.data_dir) if e.path.endswith(".ssf")]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    return make_store(request.param, tmp_path, request)


class FailingSink:
    """A datasink whose write task ``task`` raises after writing its files: on its first
    attempt only (a marker file says it ran), or on every attempt."""

    @staticmethod
    def make(table, marker: str, task: int, always: bool):
        from samplestore.ray import SampleStoreDatasink

        class Sink(SampleStoreDatasink):
            def write(self, blocks, ctx):
                out = super().write(blocks, ctx)
                if ctx.task_idx == task:
                    first = not os.path.exists(marker)
                    open(marker, "a").close()
                    if always or first:
                        raise RuntimeError(f"write task {task} fails after writing its files")
                return out

        return Sink(table)


def test_the_ray_tests_share_one_xdist_worker(request):
    """Under `make test` (xdist, --dist loadgroup) these tests run in one worker, so one local
    Ray cluster starts, not one per worker: xdist marks their ids with the group. With a
    pytest whose node ids xdist cannot mark (pytest 9.2 with xdist 3.8: the tests were spread
    over both workers, each starting a cluster), this fails."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not an xdist worker under --dist loadgroup")
    assert request.node.nodeid.endswith("@ray"), request.node.nodeid


def test_write_is_one_snapshot_with_every_row_once(ray_cluster, store):
    import samplestore.ray as ssr

    # The 1,000,000 rows of the Ray issue's acceptance line on the local disk; moto takes ~100 MB
    # slowly, so 200,000 there (16 blocks either way, in parallel write tasks).
    n = 200_000 if store.storage.remote else 1_000_000
    t = store.create_table("w", SCHEMA)
    sid = ssr.write(dataset(ray_cluster, n, 16), t, commit_token="job-1")
    assert [s.snapshot_id for s in t.snapshots()] == [sid]
    assert t.snapshot(sid).summary["added_rows"] == n
    assert_every_row_once(row_ids(t), n)
    # A re-run of the same job is a no-op: the commit token is the writer's last.
    assert ssr.write(dataset(ray_cluster, 1000, 2), t, commit_token="job-1") is None
    assert t.current_snapshot_id == sid and t.last_commit_token("ray:job-1") == "job-1"
    # ... whatever other jobs committed since.
    sid2 = ssr.write(dataset(ray_cluster, 1000, 2).map_batches(_shift(n), batch_format="pyarrow", batch_size=None),
                     t, commit_token="job-2")
    assert sid2 > sid and ssr.write(dataset(ray_cluster, 1000, 2), t, commit_token="job-1") is None
    assert t.current_snapshot_id == sid2
    assert_every_row_once(row_ids(t), n + 1000)


def test_a_retried_write_task_counts_once_and_its_first_files_are_leftovers(ray_cluster, store, tmp_path):
    n = 32_000
    t = store.create_table("r", SCHEMA)
    sink = FailingSink.make(t, str(tmp_path / "failed-once"), task=3, always=False)
    dataset(ray_cluster, n, 16).write_datasink(sink, ray_remote_args={"max_retries": 2, "retry_exceptions": True})
    assert (tmp_path / "failed-once").exists() and sink.snapshot_id == t.current_snapshot_id
    assert len(t.snapshots()) == 1
    assert_every_row_once(row_ids(t), n)
    # The failed attempt's files are in no commit: GC removes them, nothing else.
    live = {f.path for f in t.files()}
    assert len(data_files(t)) > len(live)
    report = t.gc(grace_seconds=0)
    assert report["leftovers_removed"] >= 1
    assert len(data_files(t)) == len(live)
    assert_every_row_once(row_ids(t), n)


def test_a_failing_write_commits_nothing_and_gc_removes_its_files(ray_cluster, store, tmp_path):
    from samplestore.table.lease import lease_is_live

    t = store.create_table("f", SCHEMA)
    sink = FailingSink.make(t, str(tmp_path / "fails"), task=3, always=True)
    with pytest.raises(Exception, match="write task 3 fails"):
        dataset(ray_cluster, 50_000, 16).write_datasink(sink, ray_remote_args={"max_retries": 1,
                                                                               "retry_exceptions": True})
    assert t.current_snapshot_id == 0 and t.snapshots() == []
    assert not lease_is_live(t.catalog, t.name, sink.lease_id)  # released by on_write_failed
    assert data_files(t)  # at least the failing task's files
    t.gc(grace_seconds=0)
    assert data_files(t) == []


def test_read_gives_the_table_and_filtered_reads_the_scan(ray_cluster, store):
    import samplestore.ray as ssr

    t = store.create_table("rd", SCHEMA)
    for k in range(3):
        t.append(rows(k * 20_000, 20_000), row_group_rows=4096)
    t.delete(pc.field("row_id").isin([5, 25_000]))
    got = ssr.read(t).to_arrow_refs()
    got = pa.concat_tables(ray_cluster.get(got)).sort_by("row_id")
    assert got.equals(t.to_arrow().sort_by("row_id"))
    expr = (pc.field("row_id") >= 30_000) & (pc.field("row_id") < 30_500)
    got = pa.concat_tables(ray_cluster.get(ssr.read(t, columns=["row_id", "click"], filter=expr).to_arrow_refs()))
    assert got.sort_by("row_id").equals(t.scan(columns=["row_id", "click"], filter=expr).to_arrow().sort_by("row_id"))
    # Pruning: the filter's row ids lie in one of the three files, which is read in parts.
    source = ssr.SampleStoreDatasource(t, columns=["row_id"], filter=expr)
    assert len(source.plan.tasks) == 1 and len(source.get_read_tasks(5)) == 5  # its row groups, cut
    source.close()


def _small_files(table, n_files: int, rows_each: int) -> None:
    """``n_files`` files of ``rows_each`` rows in one commit (one file per batch)."""
    from samplestore.ray.tasks import write_files

    files = write_files(table, (rows(i * rows_each, rows_each) for i in range(n_files)), None, schema=SCHEMA,
                        partition_by=(), where="test", target_file_bytes=1)
    table.catalog.commit(table.name, "append", add=files)


@pytest.fixture
def memory_tmp(tmp_path):
    """A folder in memory (/dev/shm) where there is one, else tmp_path: 2,000 small files
    cost two fsyncs each on a disk (~25 s here), nothing on tmpfs."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    folder = tempfile.mkdtemp(dir="/dev/shm", prefix="samplestore-ray-")
    try:
        yield pathlib.Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_ray_compaction_keeps_every_row_while_a_writer_appends_and_a_reader_reads(ray_cluster, where, request,
                                                                                   memory_tmp):
    # 1,000 small files on the local disk (the Ray issue's acceptance line); 100 on the S3
    # server, where each file is an HTTP upload and each read of the table by the reader one
    # request or more per file to moto.
    store = make_store(where, memory_tmp, request)
    n_files, rows_each = (100 if where == "s3" else 1000), 20
    n = n_files * rows_each
    remote = store.create_table("ray", SCHEMA)
    _small_files(remote, n_files, rows_each)
    # What the compacted rows must equal: the rows written, in the table's Arrow form (what a
    # local compaction of the same files keeps too, tests/compaction; a second table of small
    # files, compacted locally to compare with, took half of this test's time).
    written = SCHEMA.conform(pa.concat_tables(rows(i * rows_each, rows_each) for i in range(n_files))).sort_by("row_id")
    target = sum(f.file_bytes for f in remote.files()) // 6  # several groups, rewritten in parallel

    stop, errors, appended, reads = threading.Event(), [], [], [0]

    def writer():
        for k in range(8):
            remote.append(rows(n + k * 100, 100))
            appended.append(k)

    def reader():
        while not stop.is_set():
            try:
                ids = row_ids(remote)
                assert len(np.unique(ids)) == len(ids) and np.isin(np.arange(n), ids).all()
                reads[0] += 1
                stop.wait(1.0)  # a reader, not a load generator: the driver's commits go on meanwhile
            except Exception as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for th in threads:
        th.start()
    try:
        result = remote.compact(target_file_bytes=target, executor="ray")
    finally:
        threads[0].join()
        stop.set()
        threads[1].join()
    assert not errors, errors
    assert reads[0] >= 1 and len(appended) == 8
    assert result.files_in >= n_files and len(result.commits) >= 4
    assert_every_row_once(row_ids(remote), n + 800)
    compacted = remote.scan(filter=pc.field("row_id") < n).to_arrow().sort_by("row_id")
    assert compacted.equals(written)
    assert len(remote.files()) < 30


def test_cli_ingest_and_compact_with_the_ray_executor(ray_cluster, tmp_path, capsys):
    from samplestore.cli.main import main

    root = tmp_path / "cli"
    t = ss.open_store(root, create=True).create_table("t", SCHEMA)
    paths = []
    for k in range(4):
        paths.append(str(tmp_path / f"part{k}.parquet"))
        pq.write_table(rows(k * 5_000, 5_000), paths[-1])
    assert main(["ingest", str(root), "t", *paths, "--executor", "ray", "--quiet"]) == 0
    assert len(t.snapshots()) == 1 and len(t.files()) == 4
    assert_every_row_once(row_ids(t), 20_000)
    # The layout reaches the tasks: the one file is in a random order, and recorded so.
    assert main(["compact", str(root), "t", "--executor", "ray", "--layout", "shuffled", "--json"]) == 0
    (f,) = t.files()
    assert f.shuffled and t.snapshots()[-1].summary["layout"] == "shuffled"
    in_file = row_ids(t)  # one file: the scan reads it in its order
    assert np.mean(np.diff(in_file) == 1) < 0.01  # ~1 in commit order
    assert_every_row_once(row_ids(t), 20_000)


def _train_loop(config):
    """A Ray Train worker: a SampleDataset of the table (rank and world size from the
    process group Ray Train set up) and the demo's DLRM trained on it; records row ids."""
    import torch.distributed as dist

    from samplestore.demo import DLRM, Trainer
    from samplestore.torch import SampleDataset

    table = config["ref"].open_table()
    ds = SampleDataset(table, features=["dense", "c0", "c1", "click", "row_id"], batch_size=512, seed=1,
                       snapshot=config["snapshot"])  # one snapshot for every rank, named by the driver
    rank, world = ds.rank_world()
    assert (rank, world) == (dist.get_rank(), 2)
    trainer = Trainer(DLRM(["c0", "c1"], num_dense=13, dim=4))
    for epoch in range(2):
        ds.set_epoch(epoch)
        ids = []
        for batch in ds:
            ids.append(batch.extras["row_id"].numpy())
            trainer.step(batch)
        np.save(os.path.join(config["out"], f"e{epoch}-r{rank}.npy"), np.concatenate(ids))


@pytest.mark.parametrize("where", ["s3"])  # Ray Train's start-up costs ~40 s here: run once, on S3 + PostgreSQL
def test_torch_trainer_workers_each_epoch_read_every_row_once(ray_cluster, where, request, tmp_path):
    pytest.importorskip("torch")
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from samplestore.ray.tasks import TableRef

    n = 10_000
    t = make_store(where, tmp_path, request).create_table("train", SCHEMA)
    t.append(rows(0, n), row_group_rows=1024)
    out = tmp_path / "ids"
    out.mkdir()
    trainer = TorchTrainer(_train_loop, train_loop_config={"ref": TableRef.of(t), "out": str(out),
                                                             "snapshot": t.current_snapshot_id},
                           scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
                           run_config=RunConfig(storage_path=str(tmp_path / "results"), name="ray-train"))
    trainer.fit()
    for epoch in range(2):
        parts = [np.load(out / f"e{epoch}-r{r}.npy") for r in range(2)]
        assert min(len(p) for p in parts) > 0
        assert_every_row_once(np.concatenate(parts), n)
