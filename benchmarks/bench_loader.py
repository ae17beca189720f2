"""Loader benchmark: SampleDataset against a careful Parquet + pyarrow loader (same Batch) and Lance.

Full size (``make bench`` or ``samplestore bench loader``): 1,000,000 Criteo-like rows,
num_workers 0 and 2, each configuration in a fresh process: samples/s, time to first
batch, CPU cores used, peak RSS (also above the RSS after imports, and with a 4x larger
buffer), Spearman, adjacent and neighbour rate, distinct read units per batch. As a quick
test it runs the same path on a small table and checks that every loader delivers every
row once and reports sane figures; the order figures are checked on known orders.
"""

import sys

import numpy as np
import pytest

from samplestore.bench.loader import (
    format_impute_markdown, format_markdown, order_figures, random_order_figures, run_impute_bench, run_loader_bench,
)

FIELDS = ("samples_per_s", "cpu_cores", "samples_per_core_s", "spearman", "neighbour_rate", "batch_neighbour_rate",
          "units_per_batch", "import_rss_mb", "peak_rss_mb", "peak_rss_above_import_mb", "unit")


def test_loader_against_parquet_and_lance(benchmark, quick, tmp_path):
    rows = 20_000 if quick else 1_000_000
    batch = 1024 if quick else 4096
    # Quick (a bare pytest): no DataLoader workers, no second buffer size, each loader measured
    # in this process (a fresh one imports torch: seconds each; the fresh-process path has the
    # test below); the worker paths have tests of their own.
    workers = (0,) if quick else (0, 2)
    res = benchmark.pedantic(lambda: run_loader_bench(str(tmp_path), rows=rows, batch_size=batch,
                                                      repeats=1 if quick else 3, workers=workers,
                                                      large_buffer_factor=0 if quick else 4,
                                                      fresh_processes=not quick),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    for r in res["results"] + res["large_buffer"]["results"]:
        assert r["rows"] == rows and r["unique_rows"] == rows, r
        assert all(k in r for k in FIELDS), r
        assert r["samples_per_s"] > 0 and r["cpu_cores"] > 0 and r["import_rss_mb"] > 0
        assert 0 <= r["batch_neighbour_rate"] <= 1 and -1 <= r["spearman"] <= 1
        assert 1 <= r["units_per_batch"] <= batch
    got = {(r["loader"], r["workers"]) for r in res["results"]}
    lance = [k for k in ("lance-ranges", "lance-take") if k not in res["skipped"]]
    assert got == {(k, w) for k in ("samplestore", "parquet", *lance) for w in workers}
    by = {(r["loader"], r["workers"]): r for r in res["results"]}
    if lance:
        # Lance's range shuffle delivers each batch as one contiguous range: sequential inside.
        assert by[("lance-ranges", 0)]["batch_neighbour_rate"] > 0.99
        assert by[("lance-ranges", 0)]["units_per_batch"] == 1
        # take() of a permutation is a random order: close to what one predicts.
        take, rnd = by[("lance-take", 0)], by[("lance-take", 0)]["random_order"]
        assert abs(take["batch_neighbour_rate"] - rnd["batch_neighbour_rate"]) < 0.3 * rnd["batch_neighbour_rate"]
    benchmark.extra_info.update({k: v for k, v in res["ratios"].items()})


def test_a_run_in_a_fresh_process_reports_what_one_in_this_process_does(tmp_path):
    """The full-size bench measures each loader in a fresh process (``python -m
    samplestore.bench.loader``, one JSON line back): the quick tests above measure in this one,
    so this runs that path once, on a small table."""
    here, fresh = (run_loader_bench(str(tmp_path / str(f)), rows=2_000, batch_size=512, buffer_rows=2_000, repeats=1,
                                    large_buffer_factor=0, loaders=("samplestore",), workers=(0,),
                                    fresh_processes=f)["results"][0] for f in (False, True))
    assert fresh["rows"] == fresh["unique_rows"] == 2_000 and fresh["samples_per_s"] > 0
    assert set(fresh) == set(here) and fresh["unit"] == here["unit"]
    # The same seed and table: both processes deliver the same order.
    assert fresh["spearman"] == here["spearman"] and fresh["units_per_batch"] == here["units_per_batch"]


def test_loader_with_and_without_imputation(benchmark, quick, tmp_path):
    """``samplestore bench impute``: the same table, dense NaNs filled by the snapshot's means
    or not, runs alternating; the quick test checks what each delivered, not the speed."""
    rows = 8_000 if quick else 1_000_000
    res = benchmark.pedantic(lambda: run_impute_bench(str(tmp_path), rows=rows, batch_size=1024 if quick else 4096,
                                                      repeats=1 if quick else 5, fresh_processes=not quick),
                             rounds=1, iterations=1)
    print("\n" + format_impute_markdown(res))
    plain, imputed = res["runs"]["samplestore"][0], res["runs"]["samplestore-impute"][0]
    for r in (plain, imputed):
        assert r["rows"] == rows and r["unique_rows"] == rows and r["samples_per_s"] > 0
    # 5% of the 13 dense values of a batch are NaN without imputation, none with, plus 13 indicators.
    assert plain["first_batch_dense_nan"] > 0 and plain["first_batch_dense_columns"] == 13
    assert imputed["first_batch_dense_nan"] == 0 and imputed["first_batch_dense_columns"] == 26
    assert res["ratio"] > 0
    benchmark.extra_info["impute_ratio"] = res["ratio"]


def test_lance_is_skipped_with_the_reason_where_pylance_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lance", None)  # import lance now raises ImportError
    res = run_loader_bench(str(tmp_path), rows=100, batch_size=50, loaders=("lance-ranges", "lance-take"))
    assert res["results"] == [] and set(res["skipped"]) == {"lance-ranges", "lance-take"}
    assert "pip install 'samplestore[lance]'" in res["skipped"]["lance-take"]
    assert "lance-take: skipped" in format_markdown(res)


def test_order_figures_of_known_orders():
    n, b = 100_000, 1000
    units = np.arange(0, n, 10_000)
    seq = order_figures(np.arange(n), [b] * (n // b), b, units)
    assert seq["batch_neighbour_rate"] == 1.0 and seq["neighbour_rate"] == 1.0 and seq["spearman"] > 0.999
    assert 1 <= seq["units_per_batch"] <= 2
    perm = order_figures(np.random.default_rng(0).permutation(n), [b] * (n // b), b, units)
    expect = random_order_figures(n, b, np.full(10, 10_000))
    assert expect["batch_neighbour_rate"] == pytest.approx(2 * b / n, rel=0.01)
    assert perm["batch_neighbour_rate"] == pytest.approx(expect["batch_neighbour_rate"], rel=0.1)
    assert perm["units_per_batch"] == pytest.approx(expect["units_per_batch"], rel=0.01)
    assert abs(perm["spearman"]) < 0.02 and perm["neighbour_rate"] < 1e-3
