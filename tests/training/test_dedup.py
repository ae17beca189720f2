"""SampleDataset(dedup=[...]): distinct ids + inverse indices per batch, equal to the full batch."""

import numpy as np
import pyarrow as pa
import pytest
import torch

import samplestore as ss
from samplestore import datagen
from samplestore.torch import DedupIds, SampleDataset


SCHEMA = ss.Schema([
    ss.Dense("dense", dim=2),
    ss.Sparse("a"),
    ss.Sequence("hist"),
    ss.Sparse("w", weighted=True),
    ss.Sparse("b"),
    ss.Label("click"),
])


def _rows(n: int, seed: int = 0) -> pa.Table:
    """Histories sliding over a few users' items (many repeats per batch), other ids random."""
    rng = np.random.default_rng(seed)
    lst = lambda lens, vals, t=pa.int64(): pa.ListArray.from_arrays(  # noqa: E731
        pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)), pa.array(vals, t))
    user = rng.integers(0, 12, n)
    t = np.arange(n)
    hist_len = rng.integers(0, 30, n)
    hist = np.concatenate([user[i] * 1000 + (t[i] + np.arange(hist_len[i])) % 97 for i in range(n)]) if n else []
    hist = np.asarray(hist, np.int64)
    hist[:1] = 2**63 - 1
    a_len, w_len, b_len = rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(1, 3, n)
    w_ids = rng.integers(0, 20, int(w_len.sum()))
    return pa.table({
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(2 * n, np.float32)), 2),
        "a": lst(a_len, rng.integers(0, 10**9, int(a_len.sum()))),
        "hist": lst(hist_len, hist),
        "w": pa.StructArray.from_arrays([lst(w_len, w_ids), lst(w_len, (w_ids % 5).astype(np.float32), pa.float32())],
                                        ["ids", "weights"]),
        "b": lst(b_len, rng.integers(0, 5, int(b_len.sum()))),
        "click": pa.array((t % 2).astype(np.float32)),
    })


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    t = ss.open_store(tmp_path_factory.mktemp("dedup") / "s", create=True).create_table("t", SCHEMA)
    t.append(_rows(3000))
    t.append(_rows(1000, seed=1))  # two files: batches span windows and files
    return t


def _same(x: torch.Tensor | None, y: torch.Tensor | None) -> bool:
    return (x is None and y is None) or (x is not None and y is not None and x.dtype == y.dtype
                                          and torch.equal(x, y))


def check_pair(plain, deduped, names) -> tuple[int, int]:
    """A deduplicated batch equals its plain twin; returns (ids delivered, ids in full)."""
    assert set(deduped.dedup) == set(names) and not set(deduped.sparse.keys) & set(names)
    full, ref = deduped.full_sparse(), plain.sparse
    assert full.keys == ref.keys == ["a", "hist", "w", "b"]
    assert _same(full.values, ref.values) and _same(full.lengths, ref.lengths) and _same(full.weights, ref.weights)
    assert torch.equal(deduped.dense, plain.dense) and torch.equal(deduped.labels, plain.labels)
    sent = deduped.sparse.values.numel()
    for name, d in deduped.dedup.items():
        vals, lens = ref[name]
        assert d.unique.dtype == torch.int64 and d.inverse.dtype == torch.int32 and d.lengths.dtype == torch.int32
        assert torch.equal(d.lengths, lens) and torch.equal(d.values(), vals)
        assert len(torch.unique(d.unique)) == len(d.unique)  # each id once
        assert d.inverse.numel() == 0 or int(d.inverse.max()) < len(d.unique)
        sent += d.unique.numel()
    return sent, ref.values.numel()


@pytest.mark.parametrize("names", [["hist"], ["hist", "w"], ["a", "hist", "w", "b"]])
def test_deduplicated_batches_equal_plain_ones(table, names):
    kw = dict(batch_size=700, shuffle=True, seed=3, shuffle_buffer_rows=1500)
    plain, deduped = SampleDataset(table, **kw), SampleDataset(table, dedup=names, **kw)
    sent = full = 0
    for x, y in zip(plain, deduped, strict=True):
        s, f = check_pair(x, y, names)
        sent, full = sent + s, full + f
    assert sent < full  # repeated history ids cross once per batch
    plain.close()
    deduped.close()


def test_to_kjt_of_a_deduplicated_batch_is_the_full_one(table):
    pytest.importorskip("torchrec")
    kw = dict(batch_size=512, seed=1)
    for x, y in zip(SampleDataset(table, **kw), SampleDataset(table, dedup=["w", "hist"], **kw)):
        kx, ky = x.to_kjt(), y.to_kjt()
        assert kx.keys() == ky.keys()
        assert torch.equal(kx.values(), ky.values()) and torch.equal(kx.lengths(), ky.lengths())
        assert torch.equal(kx.weights(), ky.weights())


def test_workers_deliver_deduplicated_batches_through_shared_slots(table):
    kw = dict(batch_size=600, seed=2)
    loaders = [torch.utils.data.DataLoader(SampleDataset(table, dedup=d, **kw), batch_size=None, num_workers=2)
               for d in ([], ["hist", "b"])]
    pairs = list(zip(*loaders, strict=True))
    assert len(pairs) == 7
    for x, y in pairs:
        check_pair(x, y, ["hist", "b"])


def test_dedup_names_must_be_jagged_features_of_the_dataset(table):
    with pytest.raises(ss.SchemaError, match=r"\['click'\].*'a', 'hist', 'w', 'b'"):
        SampleDataset(table, dedup=["click"])
    with pytest.raises(ss.SchemaError, match="nope"):
        SampleDataset(table, features=["a", "click"], dedup=["hist", "nope"])


def test_embedding_lookup_once_per_distinct_id_equals_the_full_bag(table):
    # The README example: look up the distinct ids once, then pool per sample (or gather per position).
    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(100_000, 8, mode="sum")
    for batch in SampleDataset(table, batch_size=256, dedup=["hist"], features=["hist", "click"]):
        d = batch.dedup["hist"]
        F = torch.nn.functional
        rows = F.embedding(d.unique % 100_000, emb.weight, sparse=True)  # [U, 8]: one lookup per distinct id
        pooled = d.pool(rows)  # [B, 8]
        per_id = rows.index_select(0, d.inverse)  # [N, 8], the other way
        seg = torch.repeat_interleave(torch.arange(len(batch)), d.lengths)
        full = batch.full_sparse()
        expected = emb(full.values % 100_000, full.offsets[:-1])
        torch.testing.assert_close(pooled, expected)
        torch.testing.assert_close(torch.zeros(len(batch), 8).index_add_(0, seg, per_id), expected)
        pooled.sum().backward()  # gradients reach the table through the distinct rows only
        dedup_grad = emb.weight.grad.to_dense()
        emb.weight.grad = None
        expected.sum().backward()
        torch.testing.assert_close(dedup_grad, emb.weight.grad)  # the same step as on every id
        break


def test_sequence_workload_ids_per_batch_fall():
    # On the bench's sequence workload sorted by user and time, the history repeats most ids.
    data = datagen.sequence_like(3000, seed=4, samples_per_user=300, num_sparse=2)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        t = ss.open_store(d, create=True).create_table("seq", datagen.sequence_schema(num_sparse=2))
        t.append(data)
        t.compact(sort_by=["user_id", "ts"])
        ds = SampleDataset(t, batch_size=1000, shuffle=False, dedup=["history"], features=["history", "click"])
        batches = list(ds)
        ds.close()
    unique = sum(b.dedup["history"].unique.numel() for b in batches)
    full = sum(b.dedup["history"].inverse.numel() for b in batches)
    assert full == len(pa.chunked_array(data.column("history")).combine_chunks().values)
    assert full / unique > 20  # consecutive windows of ~10 users share all but one item


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_pool_equals_embedding_bag_in_values_and_gradients(table, mode, device):
    """DedupIds.pool (its own backward, by the transpose of inverse: a counting sort on CPU, a
    stable sort elsewhere) gives embedding_bag's pooled rows and gradients, weighted or not,
    with empty samples."""
    import torch.nn.functional as F

    batch = next(iter(SampleDataset(table, batch_size=512, shuffle=False, dedup=["hist", "w"]))).to(device)
    for name, d in batch.dedup.items():
        assert name != "hist" or bool((d.lengths == 0).any())  # empty histories are in the batch
        rows = torch.randn(d.unique.numel(), 4, dtype=torch.float64, device=device, requires_grad=True)
        ref_rows = rows.detach().clone().requires_grad_()
        w = d.weights.double() if d.weights is not None else None
        if mode == "mean":
            scale = (1.0 / d.lengths.double().clamp(min=1)).repeat_interleave(d.lengths.long())
            w = scale if w is None else w * scale
        ref = F.embedding_bag(d.inverse, ref_rows, d.offsets[:-1], mode="sum", per_sample_weights=w)
        d64 = d.map_tensors(lambda t: t.double() if t.is_floating_point() else t)
        out = d64.pool(rows, mode)
        grad = torch.randn_like(ref)
        out.backward(grad)
        ref.backward(grad)
        assert torch.allclose(out, ref) and torch.allclose(rows.grad, ref_rows.grad)
    with pytest.raises(ValueError, match="pool mode 'max'"):
        d.pool(rows, "max")


def test_transpose_kernel_groups_positions_by_id_and_checks_its_input():
    from samplestore.torch import _gather
    from samplestore.torch.batch import _transpose, _transpose_by_sort

    rng = np.random.default_rng(5)
    lengths = torch.from_numpy(rng.integers(0, 6, 300).astype(np.int32))
    inverse = torch.from_numpy(rng.integers(0, 40, int(lengths.sum())).astype(np.int32))
    for got, want in zip(_transpose(inverse, lengths, 41), _transpose_by_sort(inverse, lengths, 41)):
        assert torch.equal(got, want)  # id 40 unused: an empty group
    offsets, order, samples = np.empty(41, np.int64), np.empty(len(inverse), np.int64), np.empty(len(inverse), np.int64)
    bad = inverse.numpy().copy()
    bad[7] = 40
    with pytest.raises(IndexError, match=r"inverse\[7\] = 40, outside the 40 distinct ids"):
        _gather.transpose_inverse(bad, lengths.numpy(), offsets, order, samples)
    with pytest.raises(ValueError, match="lengths add up to"):
        _gather.transpose_inverse(inverse.numpy()[1:], lengths.numpy(), offsets, order[1:], samples[1:])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_pool_gives_learned_weights_embedding_bags_gradient(table, mode, device):
    """Weights that require grad get dL/dw_i = grad[sample of i] . rows[inverse[i]], as in
    F.embedding_bag with per_sample_weights (weighted mean: the weighted sum over the count)."""
    import torch.nn.functional as F

    d = next(iter(SampleDataset(table, batch_size=512, shuffle=False, dedup=["w"]))).dedup["w"].map_tensors(lambda t: t.to(device))
    torch.manual_seed(1)
    rows = torch.randn(d.unique.numel(), 4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.rand(d.inverse.numel(), dtype=torch.float64, device=device, requires_grad=True)
    ref_rows, ref_w = rows.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    scale = (1.0 / d.lengths.double().clamp(min=1)).repeat_interleave(d.lengths.long())
    ref = F.embedding_bag(d.inverse, ref_rows, d.offsets[:-1], mode="sum",
                          per_sample_weights=ref_w * scale if mode == "mean" else ref_w)
    out = DedupIds(d.unique, d.inverse, d.lengths, w).pool(rows, mode)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(rows.grad, ref_rows.grad)
    torch.testing.assert_close(w.grad, ref_w.grad)
    assert float(w.grad.abs().sum()) > 0


def test_pool_in_mean_mode_equals_embedding_bag_mean_directly(table):
    import torch.nn.functional as F

    d = next(iter(SampleDataset(table, batch_size=512, shuffle=False, dedup=["hist"]))).dedup["hist"]
    assert bool((d.lengths == 0).any())  # empty samples: embedding_bag's mean gives zeros
    rows = torch.randn(d.unique.numel(), 4, dtype=torch.float64, requires_grad=True)
    ref_rows = rows.detach().clone().requires_grad_()
    out = d.pool(rows, "mean")
    ref = F.embedding_bag(d.inverse, ref_rows, d.offsets[:-1], mode="mean")
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(rows.grad, ref_rows.grad)


def test_pool_accepts_torch_uniques_int64_inverse():
    import torch.nn.functional as F

    ids = torch.tensor([7, 3, 7, 9, 3, 3, 7], dtype=torch.int64)
    lengths = torch.tensor([3, 0, 4], dtype=torch.int32)
    unique, inverse = torch.unique(ids, return_inverse=True)
    assert inverse.dtype == torch.int64
    rows = torch.randn(unique.numel(), 3, dtype=torch.float64, requires_grad=True)
    ref_rows = rows.detach().clone().requires_grad_()
    out = DedupIds(unique, inverse, lengths).pool(rows)
    ref = F.embedding_bag(inverse, ref_rows, torch.tensor([0, 3, 3]), mode="sum")
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(rows.grad, ref_rows.grad)
    with pytest.raises(IndexError, match=r"values in \[0, 2\], expected indices into the 2 rows"):
        DedupIds(unique, inverse, lengths).pool(rows[:2])
    with pytest.raises(TypeError, match="dtype torch.int16, expected torch.int32 or torch.int64"):
        DedupIds(unique, inverse.to(torch.int16), lengths).pool(rows)
