"""How a reader on a remote storage merges the chunks it needs into requests: gaps up to the
storage's ``coalesce_gap``, smallest first, while the bytes read beyond the chunks stay
within ``coalesce_overread`` of them."""

import numpy as np
import pyarrow.fs as pafs

import samplestore as ss
from samplestore.format import FileReader, write_file
from samplestore.format.spec import HEADER
from samplestore.storage import ArrowStorage

# Chunks of ~34 KB (f0..f3) and ~3.5 KB (t0..t2) of random floats, laid out in this order; a
# last large chunk z holds the file's tail, which opening the file reads (so no chunk above
# is served from it).
SCHEMA = ss.Schema([ss.Dense("f0", dim=10), ss.Dense("t0", dim=1), ss.Dense("f1", dim=10), ss.Dense("t1", dim=1),
                    ss.Dense("f2", dim=10), ss.Dense("t2", dim=1), ss.Dense("f3", dim=10), ss.Dense("z", dim=60)])


def _file(tmp_path, gap, overread):
    (tmp_path / "fs" / "s").mkdir(parents=True)
    storage = ArrowStorage(pafs.SubTreeFileSystem(str(tmp_path / "fs"), pafs.LocalFileSystem()), "s", remote=True)
    storage.coalesce_gap, storage.coalesce_overread = gap, overread
    rng = np.random.default_rng(0)
    data = {f.name: rng.standard_normal((1000, f.dim), dtype=np.float32).tolist() for f in SCHEMA}
    path = storage.join(storage.root, "f.ssf")
    write_file(path, SCHEMA.conform(data), SCHEMA, row_group_rows=1000, storage=storage)
    r = FileReader(path, storage)
    size = {f.name: r.chunk_bytes([f.name], [0]) for f in SCHEMA}
    return storage, r, size


def _cost(storage, r, columns):
    storage.stats.reset()
    assert r.read_row_group(0, columns).num_rows == 1000
    return storage.stats.requests, storage.stats.bytes_read


def test_small_gaps_are_read_within_the_overread_budget_and_large_ones_are_not(tmp_path):
    storage, r, size = _file(tmp_path, gap=1 << 20, overread=0.1)
    assert 25_000 < size["f1"] < 45_000 and 2_500 < size["t1"] < 5_000 and size["z"] > 128 << 10
    # f1, f2, f3: the gaps are the small t1 and t2 chunks (~8 KB in all, < 10% of ~120 KB): one request.
    assert _cost(storage, r, ["f1", "f2", "f3"]) == (1, size["f1"] + size["t1"] + size["f2"] + size["t2"] + size["f3"])
    # t0, t1, t2: gaps of ~40 KB against ~12 KB needed: each chunk on its own, no byte more.
    assert _cost(storage, r, ["t0", "t1", "t2"]) == (3, size["t0"] + size["t1"] + size["t2"])
    # f0, f2, f3: the gap f2..f3 (t2) fits the budget, the gap f0..f2 (t0, f1, t1) does not
    # (f0 comes with the file header before it, checked on the way).
    assert _cost(storage, r, ["f0", "f2", "f3"]) == (2, HEADER.size + size["f0"] + size["f2"] + size["t2"] + size["f3"])
    r.close()


def test_without_an_overread_bound_every_gap_up_to_coalesce_gap_is_read(tmp_path):
    storage, r, size = _file(tmp_path, gap=1 << 20, overread=None)
    assert _cost(storage, r, ["t0", "t1", "t2"]) == (1, size["t0"] + size["f1"] + size["t1"] + size["f2"] + size["t2"])
    r.close()
