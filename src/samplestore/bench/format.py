"""File-format benchmark: .ssf against pyarrow Parquet (zstd) on the same Arrow data.

Figures: write MB/s (Arrow in-memory bytes per second), bytes per sample, single-threaded
full-read samples/s, the time to open a wide file (5,000 float columns) and read 10, and a
64-float dense feature stored as float32, float16 and bfloat16 (bytes per sample, full-read
samples/s; always read as float32).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import datagen
from ..format import FileReader, write_file
from ..schema import Dense, Schema
from . import median_seconds

__all__ = ["criteo_data", "wide_data", "run_format_bench", "format_markdown", "WIDE_READ_COLUMNS",
           "dense_storage_figures", "dense_read_spread", "DENSE_STORAGE_ROWS"]

WIDE_READ_COLUMNS = 10


def criteo_data(rows: int, seed: int = 0) -> tuple[pa.Table, Schema]:
    """A Criteo-like table (13 dense, 26 sparse zipf id lists, 1 label) and its schema."""
    schema = datagen.criteo_schema()
    return schema.conform(datagen.criteo_like(rows, seed=seed)), schema


def wide_data(rows: int, cols: int, seed: int = 0) -> tuple[pa.Table, Schema]:
    """A table of ``cols`` float32 columns ``f0``..: a very wide feature table."""
    rng = np.random.default_rng(seed)
    schema = Schema([Dense(f"f{i}") for i in range(cols)])
    block = rng.standard_normal((cols, rows), dtype=np.float32)
    return pa.table({f"f{i}": pa.array(block[i]) for i in range(cols)}, schema=schema.to_arrow()), schema


def write_ssf(table: pa.Table, schema: Schema, path: str) -> None:
    write_file(path, table, schema)


def write_parquet(table: pa.Table, path: str) -> None:
    pq.write_table(table, path, compression="zstd")


def read_ssf(path: str, columns: list[str] | None = None) -> pa.Table:
    with FileReader(path) as r:
        return r.read(columns)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(path, columns=columns, use_threads=False)


DENSE_STORAGE_DIM = 64

#: Rows of the dense-storage figures at the full size: one read of them takes well over
#: 100 ms here, so a round is not timer noise.
DENSE_STORAGE_ROWS = 400_000


def dense_storage_figures(workdir: str, rows: int, repeats: int, dim: int = DENSE_STORAGE_DIM) -> dict[str, Any]:
    """Bytes per sample and full-read samples/s of one standard-normal ``dim``-float dense
    feature in each storage (the same values, rounded on write).

    The reads are timed in ``repeats`` rounds (after one untimed round), each round reading
    every storage once in a rotating order, so a slow spell of a shared machine falls on
    all of them alike; ``read_samples_s`` holds the medians, ``read_samples_s_range`` the
    (slowest, fastest) round of each storage."""
    x = np.random.default_rng(3).standard_normal((rows, dim), dtype=np.float32)
    storages = ("float32", "float16", "bfloat16")
    out: dict[str, Any] = {"rows": rows, "dim": dim, "rounds": max(1, repeats), "bytes_per_sample": {},
                           "read_samples_s": {}, "read_samples_s_range": {}}
    paths = {}
    for storage in storages:
        schema = Schema([Dense("x", dim=dim, storage=storage)])
        paths[storage] = os.path.join(workdir, f"dense_{storage}.ssf")
        write_file(paths[storage], {"x": x}, schema)
        out["bytes_per_sample"][storage] = os.path.getsize(paths[storage]) / rows
    del x
    times: dict[str, list[float]] = {k: [] for k in storages}
    for r in range(-1, out["rounds"]):
        for storage in storages[r % 3:] + storages[:r % 3]:
            t0 = time.perf_counter()
            read_ssf(paths[storage])
            if r >= 0:  # round -1 warms the caches and memory pools
                times[storage].append(time.perf_counter() - t0)
    for storage, t in times.items():
        out["read_samples_s"][storage] = rows / statistics.median(t)
        out["read_samples_s_range"][storage] = (rows / max(t), rows / min(t))
    return out


def run_format_bench(workdir: str, rows: int = 1_000_000, wide_rows: int = 100_000,
                     wide_cols: int = 5_000, repeats: int = 3, dense_rows: int = DENSE_STORAGE_ROWS) -> dict[str, Any]:
    """Measure both formats on the same data in this run; return figures and ratios
    (``dense_rows``: of :func:`dense_storage_figures`, read in at least 9 rounds)."""
    os.makedirs(workdir, exist_ok=True)
    table, schema = criteo_data(rows)
    mb = table.nbytes / 1e6
    ssf, parquet = os.path.join(workdir, "criteo.ssf"), os.path.join(workdir, "criteo.parquet")
    res: dict[str, Any] = {"rows": rows, "arrow_mb": round(mb, 1)}
    t_ssf = median_seconds(lambda: write_ssf(table, schema, ssf), repeats)
    t_pq = median_seconds(lambda: write_parquet(table, parquet), repeats)
    res["write_mb_s"] = {"ssf": mb / t_ssf, "parquet": mb / t_pq}
    res["bytes_per_sample"] = {"ssf": os.path.getsize(ssf) / rows, "parquet": os.path.getsize(parquet) / rows}
    if not read_ssf(ssf).equals(table):
        raise AssertionError("the .ssf file does not read back the table written")
    r_ssf = median_seconds(lambda: read_ssf(ssf), repeats, warmup=1)
    r_pq = median_seconds(lambda: read_parquet(parquet), repeats, warmup=1)
    res["read_samples_s"] = {"ssf": rows / r_ssf, "parquet": rows / r_pq}
    del table

    wide, wschema = wide_data(wide_rows, wide_cols)
    wssf, wpq = os.path.join(workdir, "wide.ssf"), os.path.join(workdir, "wide.parquet")
    write_ssf(wide, wschema, wssf)
    write_parquet(wide, wpq)
    del wide
    cols = [f"f{i}" for i in np.linspace(0, wide_cols - 1, WIDE_READ_COLUMNS).astype(int)]
    o_ssf = median_seconds(lambda: read_ssf(wssf, cols), max(repeats, 9), warmup=1)
    o_pq = median_seconds(lambda: read_parquet(wpq, cols), max(repeats, 9), warmup=1)
    res["wide"] = {"rows": wide_rows, "columns": wide_cols, "read_columns": WIDE_READ_COLUMNS}
    res["open_read_10_s"] = {"ssf": o_ssf, "parquet": o_pq}
    res["dense_storage"] = dense_storage_figures(workdir, dense_rows, max(repeats, 9))
    res["ratios"] = {
        "write": res["write_mb_s"]["ssf"] / res["write_mb_s"]["parquet"],
        "bytes_per_sample": res["bytes_per_sample"]["ssf"] / res["bytes_per_sample"]["parquet"],
        "read": res["read_samples_s"]["ssf"] / res["read_samples_s"]["parquet"],
        "open_read_10_speedup": o_pq / o_ssf,
    }
    return res


def format_markdown(res: dict[str, Any]) -> str:
    """The format benchmark as a markdown table."""
    r = res["ratios"]
    w = res["wide"]
    lines = [
        f"Criteo-like table, {res['rows']:,} rows ({res['arrow_mb']} MB in Arrow); wide table "
        f"{w['rows']:,} rows x {w['columns']:,} float columns.",
        "",
        "| figure | .ssf | Parquet (zstd) | ratio |",
        "|---|---:|---:|---:|",
        f"| write MB/s | {res['write_mb_s']['ssf']:.0f} | {res['write_mb_s']['parquet']:.0f} | {r['write']:.2f}x |",
        f"| bytes per sample | {res['bytes_per_sample']['ssf']:.1f} | {res['bytes_per_sample']['parquet']:.1f} | {r['bytes_per_sample']:.3f}x |",
        f"| full read, samples/s (1 thread) | {res['read_samples_s']['ssf']:,.0f} | {res['read_samples_s']['parquet']:,.0f} | {r['read']:.2f}x |",
        f"| open + read 10 of {w['columns']:,} columns | {res['open_read_10_s']['ssf'] * 1e3:.1f} ms | {res['open_read_10_s']['parquet'] * 1e3:.1f} ms | {r['open_read_10_speedup']:.1f}x faster |",
    ]
    ds = res.get("dense_storage")
    if ds:
        lines += ["", f"A {ds['dim']}-float dense feature (standard normal), {ds['rows']:,} rows, by `storage` "
                      f"(read back as float32; median of {ds['rounds']} interleaved rounds, slowest-fastest):", "",
                  "| storage | bytes per sample | full read, samples/s (1 thread) | spread |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {ds['bytes_per_sample'][k]:.1f} | {ds['read_samples_s'][k]:,.0f} | "
                  f"{dense_read_spread(ds, k)} |" for k in ds["bytes_per_sample"]]
    return "\n".join(lines)


def dense_read_spread(ds: dict[str, Any], storage: str) -> str:
    """The slowest and fastest round of one storage's reads, as a table cell."""
    lo, hi = ds["read_samples_s_range"][storage]
    return f"{lo:,.0f}-{hi:,.0f}"
