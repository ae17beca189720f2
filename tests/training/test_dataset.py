"""SampleDataset: exactly once per epoch, equal batches per rank, order, resume, contents."""

import json
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pyarrow as pa
import pytest
import torch
from s3server import make_store

import samplestore as ss
from samplestore.torch import Batch, DevicePrefetcher, SampleDataset

SCHEMA = ss.Schema([
    ss.Scalar("row_id", "int64", nullable=False),
    ss.Dense("dense", dim=3),
    ss.Sparse("a"),
    ss.Sparse("w", weighted=True),
    ss.Sequence("hist"),
    ss.Embedding("emb", dim=2, storage="float16"),
    ss.Label("click"),
    ss.Label("like"),
    ss.Scalar("ds", "string"),
])


def make_rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    lens = r % 4
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    ids = np.repeat(r, lens) * 10 + np.concatenate([np.arange(k) for k in lens]) if n else np.empty(0, np.int64)
    lst = lambda v: pa.ListArray.from_arrays(pa.array(off), pa.array(v))  # noqa: E731
    return pa.table({
        "row_id": pa.array(r),
        "dense": pa.FixedSizeListArray.from_arrays(pa.array((r[:, None] * [1, 2, 3]).astype(np.float32).reshape(-1)), 3),
        "a": lst(ids.astype(np.int64)),
        "w": pa.StructArray.from_arrays([lst(ids.astype(np.int64)), lst((ids % 7).astype(np.float32))], ["ids", "weights"]),
        "hist": lst((ids + 1).astype(np.int64)),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(r % 100, 2).astype(np.float32)), 2),
        "click": pa.array((r % 2).astype(np.float32)),
        "like": pa.array((r % 3 == 0).astype(np.float32)),
        "ds": pa.array([f"d{x % 3}" for x in r]),
    })


@pytest.fixture(scope="module")
def table(tmp_path_factory, request):
    # On the local disk, or on the S3 server where a test asks: parametrize("table", ["s3"], indirect=True).
    store = make_store(getattr(request, "param", "local"), tmp_path_factory.mktemp("ds"), request)
    t = store.create_table("t", SCHEMA, partition_by=["ds"])
    # Several appends and small row groups: many units, uneven sizes, a remainder.
    for k, n in enumerate([3000, 1234, 2500, 777]):
        t.append(make_rows(sum([3000, 1234, 2500, 777][:k]), n), row_group_rows=500)
    return t


N_ROWS = 3000 + 1234 + 2500 + 777


def row_ids(batches) -> np.ndarray:
    return np.concatenate([b.extras["row_id"].numpy() for b in batches]) if batches else np.empty(0, np.int64)


@pytest.mark.parametrize("table", ["local", "s3"], indirect=True)
@pytest.mark.parametrize("workers", [0, 2])
def test_every_row_exactly_once_per_epoch(table, workers):
    ds = SampleDataset(table, batch_size=256, seed=1)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))
    ids = row_ids(batches)
    assert len(ids) == N_ROWS and np.array_equal(np.sort(ids), np.arange(N_ROWS))
    assert len(batches) == len(ds) == -(-N_ROWS // 256)
    assert [b.index for b in batches] == list(range(len(batches)))
    assert all(len(b) == 256 for b in batches[:-1])


@pytest.mark.slow
def test_spawned_workers_deliver_every_row_once(table):
    # Spawned workers get a pickled copy of the dataset: a detached lease, no shared ring
    # (an anonymous mapping reaches forked workers only), batches by torch's own path.
    ds = SampleDataset(table, batch_size=1000, seed=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    ids = row_ids(list(loader))
    assert np.array_equal(np.sort(ids), np.arange(N_ROWS))


def test_ranks_split_rows_exactly_once_with_equal_batch_counts(table):
    for world in (2, 3):
        per_rank = [list(SampleDataset(table, batch_size=300, seed=2, rank=r, world_size=world)) for r in range(world)]
        ids = np.concatenate([row_ids(b) for b in per_rank])
        assert np.array_equal(np.sort(ids), np.arange(N_ROWS))
        assert len({len(b) for b in per_rank}) == 1
        dl = [list(SampleDataset(table, batch_size=300, seed=2, rank=r, world_size=world, drop_last=True))
              for r in range(world)]
        assert len({len(b) for b in dl}) == 1 and all(len(x) == 300 for b in dl for x in b)
        dropped = N_ROWS - sum(len(x) for b in dl for x in b)
        assert 0 <= dropped < 300 * world


@pytest.mark.slow
def test_two_ranks_under_torchrun_with_gloo(table, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    worker = os.path.join(os.path.dirname(__file__), "dist_worker.py")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", worker,
                        table.store.root, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    ids = np.array(res[0]["ids"] + res[1]["ids"])
    assert np.array_equal(np.sort(ids), np.arange(N_ROWS))
    assert res[0]["batches"] == res[1]["batches"] == res[0]["len"]
    assert res[0]["total_batches"] == 2 * res[0]["batches"]


def test_order_depends_on_seed_and_epoch_only(table):
    ds = SampleDataset(table, batch_size=512, seed=5)
    e0 = row_ids(list(ds))
    e0_again = row_ids(list(ds))
    ds.set_epoch(1)
    e1 = row_ids(list(ds))
    other = row_ids(list(SampleDataset(table, batch_size=512, seed=6)))
    assert np.array_equal(e0, e0_again)
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, other)
    assert np.array_equal(np.sort(e1), np.arange(N_ROWS))
    # Without shuffling, rows come in table order: files in commit order, rows in file order.
    unshuffled = row_ids(list(SampleDataset(table, batch_size=512, shuffle=False)))
    assert np.array_equal(unshuffled, table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy())


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_delivers_exactly_the_rest(table, workers):
    full = row_ids(list(torch.utils.data.DataLoader(SampleDataset(table, batch_size=200, seed=9), batch_size=None,
                                                     num_workers=workers)))
    ds = SampleDataset(table, batch_size=200, seed=9)
    seen, state = [], None
    for b in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers):
        seen.append(b)
        if len(seen) == 13:
            state = ds.state_at(b)
            break
    resumed = SampleDataset(table, batch_size=200, seed=9)
    resumed.load_state_dict(state)
    rest = list(torch.utils.data.DataLoader(resumed, batch_size=None, num_workers=workers))
    assert rest[0].index == 13
    assert np.array_equal(np.concatenate([row_ids(seen), row_ids(rest)]), full)


def test_resume_in_process_state_dict(table):
    ds = SampleDataset(table, batch_size=300, seed=4)
    ds.set_epoch(2)
    it = iter(ds)
    first = [next(it) for _ in range(5)]
    state = ds.state_dict()
    assert state["epoch"] == 2 and state["next_batch"] == 5
    again = SampleDataset(table, batch_size=300, seed=4)
    again.load_state_dict(state)
    rest = list(again)
    whole = SampleDataset(table, batch_size=300, seed=4)
    whole.set_epoch(2)
    assert np.array_equal(np.concatenate([row_ids(first), row_ids(rest)]), row_ids(list(whole)))


def test_stateful_dataloader_from_torchdata(table):
    tdl = pytest.importorskip("torchdata.stateful_dataloader")
    make = lambda: tdl.StatefulDataLoader(SampleDataset(table, batch_size=250, seed=8), batch_size=None,  # noqa: E731
                                          num_workers=2)
    full = row_ids(list(make()))
    loader = make()
    seen = []
    for b in loader:
        seen.append(b)
        if len(seen) == 7:
            state = loader.state_dict()
            break
    loader2 = make()
    loader2.load_state_dict(state)
    rest = list(loader2)
    assert np.array_equal(np.concatenate([row_ids(seen), row_ids(rest)]), full)


CONTENT_FEATURES = ["row_id", "dense", "a", "w", "hist", "emb", "click", "like"]


@pytest.mark.parametrize("table", ["local", "s3"], indirect=True)
def test_batch_contents_equal_the_scan(table):
    scan = table.scan().to_arrow().sort_by("row_id")
    ds = SampleDataset(table, features=CONTENT_FEATURES, batch_size=333)
    for b in ds:
        check_batch_against_scan(b, scan)


def test_worker_batches_in_ring_slots_are_exact_and_slots_come_back(table):
    # Keep every batch of an epoch: the workers run out of free ring slots and fall back to
    # per-batch segments; no slot may be overwritten while its batch is alive.
    import gc

    from samplestore.torch.ring import _FREE, _HELD

    scan = table.scan().to_arrow().sort_by("row_id")
    ds = SampleDataset(table, features=CONTENT_FEATURES, batch_size=97, seed=3)
    ring = ds._ring
    assert ring is not None
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    held = int(np.sum(ring.state == _HELD))
    assert 0 < held <= 2 * ring.slots  # some batches came through the ring, the rest did not
    assert len(batches) > held
    for b in batches:
        check_batch_against_scan(b, scan)
    assert np.array_equal(np.sort(row_ids(batches)), np.arange(N_ROWS))
    del batches, b
    gc.collect()
    assert np.all(ring.state == _FREE)  # every slot back, none leaked by batches spanning windows
    # A second epoch, consuming batches one by one, reuses the slots.
    gen0 = ring.gen.copy()
    ds.set_epoch(1)
    seen = []
    for b in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2):
        check_batch_against_scan(b, scan)
        seen.append(b.extras["row_id"].numpy().copy())
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(N_ROWS))
    assert int((ring.gen - gen0).sum()) > 2 * ring.slots  # slots were claimed more than once


def check_batch_against_scan(b, scan) -> None:
    """Every field of batch ``b`` equals the scanned rows it names (by row_id)."""
    rid = b.extras["row_id"].numpy()
    rows = scan.take(pa.array(rid))
    assert np.array_equal(b.dense.numpy(), np.stack(rows.column("dense").to_numpy(zero_copy_only=False)))
    assert np.array_equal(b.labels.numpy(), np.stack([rows.column("click").to_numpy(), rows.column("like").to_numpy()], 1))
    assert b.sparse.keys == ["a", "w", "hist"]
    for key in ("a", "hist"):
        values, lengths = b.sparse[key]
        expect = rows.column(key).combine_chunks()
        assert lengths.tolist() == [len(x) for x in expect.to_pylist()]
        assert values.tolist() == expect.flatten().to_pylist()
    wv, wl = b.sparse["w"]
    wexp = rows.column("w").combine_chunks()
    assert wv.tolist() == wexp.field("ids").flatten().to_pylist()
    per = b.sparse.length_per_key()
    wstart = per[0]
    assert b.sparse.weights[wstart: wstart + per[1]].tolist() == wexp.field("weights").flatten().to_pylist()
    assert torch.all(b.sparse.weights[:per[0]] == 1.0)
    assert np.array_equal(b.embeddings["emb"].numpy(), np.stack(rows.column("emb").to_numpy(zero_copy_only=False)))
    assert b.dense_feature("dense").shape == (len(b), 3)
    assert b.sparse.offsets[-1] == b.sparse.values.numel()


def test_filter_and_snapshot_pinning(table):
    import pyarrow.compute as pc
    ds = SampleDataset(table, batch_size=1000, filter=pc.field("ds") == "d1")
    ids = row_ids(list(ds))
    assert np.array_equal(np.sort(ids), np.arange(1, N_ROWS, 3))
    old = SampleDataset(table, batch_size=1000, snapshot=1)
    assert np.array_equal(np.sort(row_ids(list(old))), np.arange(3000))


def test_device_prefetcher_on_cpu(table):
    loader = torch.utils.data.DataLoader(SampleDataset(table, batch_size=1000), batch_size=None)
    got = list(DevicePrefetcher(loader, "cpu"))
    assert len(got) == len(loader) and all(isinstance(b, Batch) for b in got)
    assert np.array_equal(np.sort(row_ids(got)), np.arange(N_ROWS))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_batches_reach_the_gpu(table):
    loader = torch.utils.data.DataLoader(SampleDataset(table, batch_size=1000), batch_size=None, pin_memory=True,
                                         num_workers=2)
    n = 0
    for b in DevicePrefetcher(loader, "cuda"):
        assert b.dense.is_cuda and b.sparse.values.is_cuda
        n += len(b)
    assert n == N_ROWS


def test_follow_delivers_new_appends_once(tmp_path):
    t = ss.open_store(tmp_path / "f", create=True).create_table("t", SCHEMA)
    t.append(make_rows(0, 1000))
    ds = SampleDataset(t, batch_size=128, follow=True, poll_seconds=0.05, follow_idle_seconds=1.5)

    def writer():
        for k in range(3):
            time.sleep(0.2)
            t.append(make_rows(1000 + k * 500, 500))

    th = threading.Thread(target=writer)
    th.start()
    ids = row_ids(list(ds))
    th.join()
    assert np.array_equal(np.sort(ids), np.arange(2500))


def test_shuffle_quality_on_a_million_rows(tmp_path):
    """Default settings, 1,000,000 rows: Spearman(table position, output position) within
    +-0.05 and consecutive output rows almost never table neighbours."""
    schema = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Label("y")])
    t = ss.open_store(tmp_path / "q", create=True).create_table("t", schema)
    n = 1_000_000
    t.append({"row_id": pa.array(np.arange(n)), "y": pa.array(np.zeros(n, np.float32))})
    out = row_ids(list(SampleDataset(t)))
    assert np.array_equal(np.sort(out), np.arange(n))
    pos = np.arange(n, dtype=np.float64)
    rho = np.corrcoef(out.astype(np.float64), pos)[0, 1]  # positions are ranks already
    neighbours = float(np.mean(np.abs(np.diff(out)) == 1))
    print(f"spearman {rho:+.4f}, neighbour rate {neighbours:.2e}")
    assert abs(rho) <= 0.05
    assert neighbours < 1e-3


def test_to_kjt_needs_torchrec_and_says_so(table):
    batch = next(iter(SampleDataset(table, batch_size=16)))
    try:
        with warnings.catch_warnings():  # fbgemm's import-time deprecation notices are not ours
            warnings.simplefilter("ignore")
            import torchrec  # noqa: F401
    except ImportError:
        with pytest.raises(ss.MissingDependency, match="torchrec"):
            batch.to_kjt()
    else:
        kjt = batch.to_kjt()
        assert kjt.keys() == batch.sparse.keys


def test_follow_survives_expiry_of_the_append_snapshots(tmp_path):
    t = ss.open_store(tmp_path / "fx", create=True).create_table("t", SCHEMA)
    t.append(make_rows(0, 300))
    ds = SampleDataset(t, batch_size=128, follow=True, poll_seconds=0.3, follow_idle_seconds=1.5)

    def writer():
        time.sleep(0.1)
        t.append(make_rows(300, 200))
        t.append(make_rows(500, 200))
        t.expire_snapshots(retain_last=1)  # the first append's snapshot is gone before the next poll

    th = threading.Thread(target=writer)
    th.start()
    ids = row_ids(list(ds))
    th.join()
    assert np.array_equal(np.sort(ids), np.arange(700))


def test_decoding_runs_at_most_one_window_ahead():
    # Memory per worker is bounded by two windows: the one batches are cut from and the one
    # being decoded. The decode thread must not start a third before one is taken.
    from samplestore.torch.dataset import _Prefetch

    loaded = []
    source = _Prefetch(lambda j: loaded.append(j) or j, range(10))

    def settled(expected: int) -> None:
        deadline = time.monotonic() + 5
        while len(loaded) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # time enough to run further ahead, if it would
        assert len(loaded) == expected

    try:
        settled(1)
        assert source.next() == 0
        settled(2)
        assert source.next() == 1 and source.next() == 2
        settled(4)
    finally:
        source.close()


def _held_bytes(a: np.ndarray) -> int:
    """Bytes of the buffer an array keeps alive (a view keeps its whole base)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.nbytes if a.base is None else memoryview(a.base).nbytes


def _windows_loaded(monkeypatch, keep: bool = False) -> tuple[list, list]:
    """Record each window the dataset decodes (weak references, or the windows with
    ``keep``), and how many earlier ones were alive as it began."""
    import weakref

    import samplestore.torch.dataset as dataset_module

    real, windows, alive_at_start = dataset_module.load_window, [], []

    def load(*args, **kwargs):
        alive_at_start.append(sum(w() is not None for w in windows) if not keep else None)
        win = real(*args, **kwargs)
        windows.append(win if keep else weakref.ref(win))
        return win

    monkeypatch.setattr(dataset_module, "load_window", load)
    return windows, alive_at_start


def test_a_window_keeps_only_its_own_rows_of_a_split_row_group(table, monkeypatch):
    # 500-row groups in windows of 333 * 3 rows: most windows start or end inside a group.
    # The part a window takes is copied, so it does not pin the whole decoded group: the
    # bytes a window holds stay those of its rows (the memory bound of two windows).
    kept, _ = _windows_loaded(monkeypatch, keep=True)
    n = sum(len(b.labels) for b in SampleDataset(table, batch_size=333, shuffle_buffer_rows=2 * 999))
    assert n == 3000 + 1234 + 2500 + 777 and len(kept) > 3
    for win in kept:
        for name in ("a", "w", "hist"):
            col = win.columns[name]
            for off, values, second in zip(col.offsets, col.pieces, col.second):
                assert off[0] == 0 and values.nbytes == int(off[-1]) * 8 == _held_bytes(values), name
                assert second.nbytes in (0, int(off[-1]) * 4) and second.nbytes == _held_bytes(second), name
        for name in ("dense", "emb", "click"):
            pieces = win.columns[name].pieces
            assert sum(_held_bytes(p) for p in pieces) == sum(p.nbytes for p in pieces), name


def test_the_decode_thread_starts_a_window_with_at_most_one_other_alive(table, monkeypatch):
    # The window served before the current one is dropped before the thread may decode the
    # next: never three windows of decoded rows at once. Taking a window lets the thread
    # start the next one: here the consumer waits until it has, so that the thread counts
    # the windows alive at the worst moment, before the consumer has moved on.
    import samplestore.torch.dataset as dataset_module

    windows, alive_at_start = _windows_loaded(monkeypatch)
    real_next = dataset_module._Prefetch.next

    def next_once_the_thread_started_the_next(self):
        started = len(alive_at_start)
        win = real_next(self)
        deadline = time.monotonic() + 5
        while len(alive_at_start) == started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        return win

    monkeypatch.setattr(dataset_module._Prefetch, "next", next_once_the_thread_started_the_next)
    for _ in SampleDataset(table, batch_size=100, shuffle_buffer_rows=2 * 1000):
        pass
    assert len(windows) >= 7 and max(alive_at_start) <= 1


def test_windows_decode_outside_arrows_default_pool(table, monkeypatch):
    # Decoded buffers are malloc'ed (Arrow's system pool): Arrow's default pool (mimalloc)
    # kept the pages windows freed and the loader's peak grew a third past two windows.
    if pa.default_memory_pool().backend_name == "system":
        pytest.skip("ARROW_DEFAULT_MEMORY_POOL=system: the default pool is the system pool")
    kept, _ = _windows_loaded(monkeypatch, keep=True)
    before = pa.total_allocated_bytes()
    next(iter(SampleDataset(table, batch_size=333, shuffle_buffer_rows=2 * 999)))
    held = sum(p.nbytes for win in kept for c in win.columns.values() for p in c.pieces)
    assert held > 0 and pa.total_allocated_bytes() - before < held // 10
