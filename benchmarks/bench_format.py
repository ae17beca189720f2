"""Format benchmark: .ssf against pyarrow Parquet (zstd) on the same data, in the same run.

Groups (pytest-benchmark shows each side by side): write, full read (single-threaded),
open + read 10 of 5,000 columns. Bytes per sample is deterministic and asserted.
Full size: ``make bench`` (1,000,000 Criteo-like rows; 100,000 x 5,000 wide table).
"""

import os

import numpy as np
import pytest

from samplestore.bench import format as fb

WIDE_COLS = 5_000


@pytest.fixture(scope="module")
def criteo(bench_rows, tmp_path_factory):
    table, schema = fb.criteo_data(bench_rows)
    d = tmp_path_factory.mktemp("criteo")
    paths = {"ssf": str(d / "c.ssf"), "parquet": str(d / "c.parquet")}
    fb.write_ssf(table, schema, paths["ssf"])
    fb.write_parquet(table, paths["parquet"])
    return table, schema, paths


@pytest.fixture(scope="module")
def wide(wide_rows, tmp_path_factory):
    table, schema = fb.wide_data(wide_rows, WIDE_COLS)
    d = tmp_path_factory.mktemp("wide")
    paths = {"ssf": str(d / "w.ssf"), "parquet": str(d / "w.parquet")}
    fb.write_ssf(table, schema, paths["ssf"])
    fb.write_parquet(table, paths["parquet"])
    cols = [f"f{i}" for i in np.linspace(0, WIDE_COLS - 1, fb.WIDE_READ_COLUMNS).astype(int)]
    return paths, cols


@pytest.mark.parametrize("fmt", ["ssf", "parquet"])
def test_write(benchmark, criteo, fmt, tmp_path):
    table, schema, _ = criteo
    benchmark.group = "write"
    out = str(tmp_path / f"w.{fmt}")
    fn = (lambda: fb.write_ssf(table, schema, out)) if fmt == "ssf" else (lambda: fb.write_parquet(table, out))
    benchmark.pedantic(fn, rounds=3, iterations=1)
    benchmark.extra_info["arrow_mb"] = table.nbytes / 1e6
    if benchmark.stats:
        benchmark.extra_info["mb_per_s"] = table.nbytes / 1e6 / benchmark.stats.stats.median


def test_bytes_per_sample(criteo):
    table, _, paths = criteo
    ssf = os.path.getsize(paths["ssf"]) / table.num_rows
    parquet = os.path.getsize(paths["parquet"]) / table.num_rows
    print(f"\nbytes per sample: ssf {ssf:.1f}, parquet {parquet:.1f}")
    assert ssf <= parquet


@pytest.mark.parametrize("fmt", ["ssf", "parquet"])
def test_full_read_single_thread(benchmark, criteo, fmt):
    table, _, paths = criteo
    benchmark.group = "full read (1 thread)"
    read = fb.read_ssf if fmt == "ssf" else fb.read_parquet
    got = benchmark.pedantic(read, args=(paths[fmt],), rounds=3, iterations=1)
    assert got.num_rows == table.num_rows
    if benchmark.stats:
        benchmark.extra_info["samples_per_s"] = table.num_rows / benchmark.stats.stats.median


@pytest.mark.parametrize("fmt", ["ssf", "parquet"])
def test_open_and_read_10_of_5000_columns(benchmark, wide, fmt):
    paths, cols = wide
    benchmark.group = "open + read 10 of 5000 columns"
    read = fb.read_ssf if fmt == "ssf" else fb.read_parquet
    got = benchmark.pedantic(read, args=(paths[fmt], cols), rounds=7, iterations=1)
    assert got.column_names == cols


def test_dense_storage(tmp_path, quick):
    from samplestore.bench.format import dense_storage_figures

    res = dense_storage_figures(str(tmp_path), 2_000 if quick else 100_000, repeats=1 if quick else 5)
    b = res["bytes_per_sample"]
    # Deterministic: half-width storage halves the bytes of incompressible floats (or better).
    assert b["float16"] < 0.55 * b["float32"] and b["bfloat16"] < 0.55 * b["float32"]
    assert all(v > 0 for v in res["read_samples_s"].values())
