"""SampleDataset(impute=..., missing_indicators=...): dense NaNs filled per dimension from the
pinned snapshot's catalog means (table_stats' mean_by_dim), zero or a value, with indicators."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

import samplestore as ss
from samplestore.errors import CatalogError, SchemaError
from samplestore.format.writer import ColumnSummary
from samplestore.table.stats import table_stats
from samplestore.torch import SampleDataset

SCHEMA = ss.Schema([
    ss.Scalar("row_id", "int64", nullable=False),
    ss.Scalar("ds", "string"),
    ss.Dense("dense", dim=4),
    ss.Dense("one"),
    ss.Sparse("c"),
    ss.Label("click"),
])
NAN_DIMS = (1, 3)  # dims 0 and 2 of "dense" never miss


def _rows(start: int, n: int, ds: str, seed: int, scale: float = 1.0) -> pa.Table:
    """Rows with NaNs in dims 1 and 3 of ``dense`` (rate varying by seed) and in ``one``."""
    rng = np.random.default_rng(seed)
    dense = (rng.normal(size=(n, 4)) * scale + seed).astype(np.float32)
    for d in NAN_DIMS:
        dense[rng.random(n) < 0.1 * (seed + 1), d] = np.nan
    one = rng.normal(size=n).astype(np.float32)
    one[rng.random(n) < 0.2] = np.nan
    return pa.table({
        "row_id": pa.array(np.arange(start, start + n)), "ds": pa.array([ds] * n),
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1)), 4), "one": pa.array(one),
        "c": pa.array([[i % 7] for i in range(n)], pa.list_(pa.int64())),
        "click": pa.array((np.arange(n) % 2).astype(np.float32)),
    })


def _make(root, parts=(("2026-11-01", 0), ("2026-11-02", 1), ("2026-11-01", 2))) -> tuple[ss.Table, pa.Table]:
    """A table of several files over two partitions; returns it and every row appended."""
    t = ss.open_store(root, create=True).create_table("t", SCHEMA, partition_by=["ds"])
    written, start = [], 0
    for ds, seed in parts:
        rows = _rows(start, 400, ds, seed)
        t.append(rows)
        written.append(rows)
        start += 400
    return t, pa.concat_tables(written)


def _by_row(batches, column: str) -> np.ndarray:
    """``dense_feature(column)`` of every batch, ordered by row_id."""
    ids = np.concatenate([b.extras["row_id"].numpy() for b in batches])
    vals = np.concatenate([b.dense_feature(column).numpy() for b in batches])
    return vals[np.argsort(ids)]


def _stored(rows: pa.Table, name: str, dim: int) -> np.ndarray:
    return rows.sort_by("row_id").column(name).combine_chunks().flatten().to_numpy().reshape(-1, dim) \
        if dim > 1 else rows.sort_by("row_id").column(name).to_numpy().reshape(-1, 1)


def _check_filled(batches, rows: pa.Table, means: dict[str, list[float]]) -> None:
    """Values kept where present, the float32 mean where NaN, indicators exactly on the NaNs."""
    for name, dim in (("dense", 4), ("one", 1)):
        orig = _stored(rows, name, dim)
        got, ind = _by_row(batches, name), _by_row(batches, name + "_missing")
        nan = np.isnan(orig)
        assert nan.any() and not np.isnan(got).any()
        np.testing.assert_array_equal(ind, nan.astype(np.float32))
        np.testing.assert_array_equal(got[~nan], orig[~nan])
        fill = np.broadcast_to(np.asarray(means[name], dtype=np.float32), orig.shape)
        np.testing.assert_array_equal(got[nan], fill[nan])


def test_mean_imputation_equals_the_pinned_snapshots_catalog_mean(tmp_path):
    table, rows = _make(tmp_path / "s")
    ds = SampleDataset(table, batch_size=256, shuffle=True, seed=1, impute={"dense": "mean", "one": "mean"},
                       missing_indicators=True)
    stats = table_stats(table, snapshot=ds.snapshot_id)["columns"]
    means = {n: stats[n]["mean_by_dim"] for n in ("dense", "one")}
    # The catalog's mean is the mean of the stored non-NaN values, per dimension.
    for name, dim in (("dense", 4), ("one", 1)):
        np.testing.assert_allclose(means[name], np.nanmean(_stored(rows, name, dim).astype(np.float64), axis=0),
                                   rtol=1e-12)
    assert stats["dense"]["missing_by_dim"][0] == 0 and stats["dense"]["missing_by_dim"][1] > 0
    batches = list(ds)
    b = batches[0]
    assert b.dense.shape == (len(b), 4 + 1 + 4 + 1) and b.dense.dtype == torch.float32
    assert b.dense_names == {"dense": (0, 4), "one": (4, 5), "dense_missing": (5, 9), "one_missing": (9, 10)}
    assert b.sparse.keys == ["c"]  # jagged features (to_kjt) untouched
    _check_filled(batches, rows, means)

    # A later append with other values moves the catalog mean, not the pinned dataset's fills.
    table.append(_rows(1200, 400, "2026-11-03", 3, scale=50.0))
    later = table_stats(table)["columns"]["dense"]["mean_by_dim"]
    assert later != means["dense"]
    _check_filled(list(ds), rows, means)
    _check_filled(list(SampleDataset(table, batch_size=256, snapshot=ds.snapshot_id, missing_indicators=True,
                                     impute={"dense": "mean", "one": "mean"})), rows, means)
    now = SampleDataset(table, batch_size=512, impute={"dense": "mean"}, features=["row_id", "dense", "click"])
    all_rows = table.to_arrow()
    got, orig = _by_row(list(now), "dense"), _stored(all_rows, "dense", 4)
    np.testing.assert_array_equal(got[np.isnan(orig)],
                                  np.broadcast_to(np.float32(later), orig.shape)[np.isnan(orig)])


def test_two_workers_deliver_the_same_imputed_rows(tmp_path):
    table, rows = _make(tmp_path / "s")
    kw = dict(batch_size=128, shuffle=True, seed=2, shuffle_buffer_rows=512, impute={"dense": "mean", "one": "mean"},
              missing_indicators=True)
    ds = SampleDataset(table, **kw)
    means = {n: table_stats(table)["columns"][n]["mean_by_dim"] for n in ("dense", "one")}
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    assert sum(len(b) for b in batches) == rows.num_rows
    _check_filled(batches, rows, means)


def test_zero_and_constant_fills(tmp_path):
    table, rows = _make(tmp_path / "s", parts=(("2026-11-01", 1),))
    orig = _stored(rows, "dense", 4)
    nan = np.isnan(orig)
    for how, fill in (("zero", [0.0] * 4), (-1.5, [-1.5] * 4), ([1, 2, 3, 4.5], [1, 2, 3, 4.5])):
        batches = list(SampleDataset(table, batch_size=300, impute={"dense": how}))
        assert batches[0].dense.shape[1] == 5 and "dense_missing" not in batches[0].dense_names
        got = _by_row(batches, "dense")
        np.testing.assert_array_equal(got[~nan], orig[~nan])
        np.testing.assert_array_equal(got[nan], np.broadcast_to(np.float32(fill), orig.shape)[nan])
        one = _by_row(batches, "one")  # not imputed: NaNs stay
        assert np.isnan(one).sum() == np.isnan(_stored(rows, "one", 1)).sum()


@pytest.mark.parametrize("kw, says", [
    (dict(impute={"nope": "mean"}), "'nope', which is not a feature"),
    (dict(impute={"click": "mean"}), "'click', a label feature"),
    (dict(impute={"c": "zero"}), "'c', a sparse feature"),
    (dict(impute={"one": "zero"}, features=["dense", "click"]), "'one', which this dataset does not deliver"),
    (dict(impute={"dense": "median"}), "impute['dense']: expected one of ['mean', 'zero']"),
    (dict(impute={"dense": float("nan")}), "impute['dense']: expected"),
    (dict(impute={"dense": [1.0, 2.0]}), "or 4 finite numbers"),
    (dict(impute={"dense": True}), "found True"),
    (dict(impute="mean"), "impute is a mapping"),
    (dict(missing_indicators=True), "missing_indicators=True needs impute"),
])
def test_bad_arguments_say_what_is_wrong(tmp_path, kw, says):
    table, _ = _make(tmp_path / "s", parts=(("2026-11-01", 0),))
    with pytest.raises(SchemaError) as err:
        SampleDataset(table, **kw)
    assert says in str(err.value)


def test_a_dimension_without_values_has_no_mean(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", ss.Schema([ss.Dense("x", dim=2), ss.Label("y")]))
    x = np.array([[1, np.nan], [3, np.nan]], np.float32)
    t.append(pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 2), "y": [0.0, 1.0]}))
    assert table_stats(t)["columns"]["x"]["mean_by_dim"] == [2.0, None]
    with pytest.raises(SchemaError, match=r"dimension\(s\) \[1\] have no mean"):
        SampleDataset(t, impute={"x": "mean"})


def test_files_without_sums_fail_mean_until_rewritten(tmp_path, monkeypatch):
    """Files written before sum_by_dim existed stay readable; "mean" names them and what
    rewrites them; compaction rewrites them with the sums."""
    extra = ColumnSummary.extra

    def old_extra(self):  # what the writer recorded before this version
        out = extra(self)
        out.pop("sum_by_dim", None)
        return out

    monkeypatch.setattr(ColumnSummary, "extra", old_extra)
    table, rows = _make(tmp_path / "s", parts=(("2026-11-01", 0), ("2026-11-01", 1)))
    monkeypatch.undo()
    col = table_stats(table)["columns"]["dense"]
    assert col["mean_by_dim"] is None and col["files_without_sums"] == 2
    with pytest.raises(CatalogError, match=r"file .*\.ssf \(2 of 2 files\) has no sum_by_dim .*table\.compact\(\)"):
        SampleDataset(table, impute={"dense": "mean"})
    assert len(list(SampleDataset(table, impute={"dense": "zero"}))) == 1  # still readable, other fills work
    table.compact()
    means = {n: table_stats(table)["columns"][n]["mean_by_dim"] for n in ("dense", "one")}
    _check_filled(list(SampleDataset(table, impute={"dense": "mean", "one": "mean"}, missing_indicators=True)),
                  rows, means)


def test_deleted_rows_weigh_in_the_mean_until_compaction(tmp_path):
    table, rows = _make(tmp_path / "s")
    before = table_stats(table)["columns"]["dense"]["mean_by_dim"]
    table.delete(pc.field("row_id") < 300)
    assert table_stats(table)["columns"]["dense"]["mean_by_dim"] == before  # stored rows, as documented
    table.compact()
    kept = _stored(rows.filter(pc.field("row_id") >= 300), "dense", 4).astype(np.float64)
    np.testing.assert_allclose(table_stats(table)["columns"]["dense"]["mean_by_dim"], np.nanmean(kept, axis=0),
                               rtol=1e-12)


def test_rows_written_before_the_feature_count_as_its_default(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", ss.Schema([ss.Label("y")]))
    t.append(pa.table({"y": [0.0, 1.0, 1.0]}))
    t.add_features([ss.Dense("x", dim=2)])
    x = np.array([[4, np.nan], [6, 8]], np.float32)
    t.append(pa.table({"y": [0.0, 1.0], "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 2)}))
    # Three default rows (zeros) + two written: what a scan returns, NaN left out.
    assert table_stats(t)["columns"]["x"]["mean_by_dim"] == [2.0, 2.0]
    got = next(iter(SampleDataset(t, batch_size=5, shuffle=False, impute={"x": "mean"}))).dense.numpy()
    assert sorted(map(tuple, got.tolist())) == [(0.0, 0.0)] * 3 + [(4.0, 2.0), (6.0, 8.0)]
