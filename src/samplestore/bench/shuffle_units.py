"""Shuffle-unit benchmark: what the loader's read unit (a table's row group) costs and buys.

``SampleDataset`` decodes whole row groups into a window of ``shuffle_buffer_rows / 2`` rows,
so a window holds ``window / row_group_rows`` units, and two consecutive delivered samples
come from the same unit with probability about ``row_group_rows / window``: the neighbour
rate of :mod:`samplestore.bench.loader` cannot fall below that, whatever the permutation.
Smaller row groups buy diversity with bytes (each row group repeats its dictionaries) and
with per-unit decode work. This part measures both sides on the rows of the loader bench:

- per row-group size: the table's bytes per sample (as ``append`` writes it) against
  Parquet (zstd, pyarrow's defaults) on the same rows; one ``SampleDataset`` epoch with the
  default buffer, in a fresh process, one process: samples/s (the sizes' runs alternate,
  medians), Spearman, neighbour rate within a batch and a random order's, distinct units
  per batch;
- per row-group size, the same rows with a user column (``samples_per_user`` samples per
  user on average, users drawn at random per row, ``ts`` the row's time), compacted with
  ``sort_by=["user_id", "ts"]`` and that row-group size: the share of consecutive delivered
  samples of the same user, against a random order's (``sum_u n_u (n_u - 1) / (N (N - 1))``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import datagen
from ..schema import Scalar, Schema
from ..table.writer import TABLE_ROW_GROUP_ROWS
from .loader import _median_runs, bench_schema

__all__ = ["run_shuffle_units_bench", "format_markdown", "same_group_figures"]

_CHUNK = 500_000


def same_group_figures(groups: np.ndarray) -> dict[str, float]:
    """Share of consecutive delivered samples with the same group (user), and what a
    uniformly random order of the same samples gives.

    Args:
        groups: the group of every delivered sample, in delivery order.
    """
    n = len(groups)
    if n < 2:
        return {"same_group_rate": 0.0, "random_same_group_rate": 0.0}
    counts = np.unique(groups, return_counts=True)[1].astype(np.float64)
    return {"same_group_rate": float(np.mean(groups[1:] == groups[:-1])),
            "random_same_group_rate": float(np.sum(counts * (counts - 1)) / (n * (n - 1.0)))}


def _rows(rows: int) -> list[pa.Table]:
    """The loader bench's rows (same seeds, same ``row_id``), in chunks."""
    out = []
    for k, start in enumerate(range(0, rows, _CHUNK)):
        n = min(_CHUNK, rows - start)
        data = datagen.criteo_like(n, seed=k)
        out.append(data.add_column(0, "row_id", pa.array(np.arange(start, start + n))))
    return out


def _user_schema() -> Schema:
    return Schema([*bench_schema().features, Scalar("user_id", "int64", nullable=False),
                   Scalar("ts", "int64", nullable=False)])


def _users(rows: int, samples_per_user: int) -> np.ndarray:
    """A user per row: drawn at random, so each user's samples are spread over the stream."""
    return np.random.default_rng(17).integers(0, max(1, rows // samples_per_user), rows)


def _table_bytes(table: Any) -> int:
    return sum(f.file_bytes for f in table.files())


def _epoch(table: Any, batch_size: int, buffer_rows: int) -> tuple[np.ndarray, list[int], float]:
    """One epoch of SampleDataset over ``table``, in this process: the ``row_id`` delivered,
    the rows of each batch, samples/s."""
    from ..torch import SampleDataset

    ds = SampleDataset(table, features=[f.name for f in bench_schema().features], batch_size=batch_size,
                       shuffle_buffer_rows=buffer_rows)
    try:
        t0 = time.perf_counter()
        ids = [b.extras["row_id"].numpy().copy() for b in ds]
        elapsed = time.perf_counter() - t0
    finally:
        ds.close()
    out = np.concatenate(ids)
    return out, [len(x) for x in ids], len(out) / elapsed


def _sorted_epoch(table: Any, users: np.ndarray, batch_size: int, buffer_rows: int) -> dict[str, Any]:
    """One epoch of SampleDataset over ``table`` (sorted by user): the same-user figures."""
    out, _sizes, speed = _epoch(table, batch_size, buffer_rows)
    return {"samples_per_s": speed, **same_group_figures(users[out])}


def _shuffled_layout(workdir: str, chunks: list[pa.Table], users: np.ndarray, batch_size: int,
                     buffer_rows: int) -> dict[str, Any]:
    """The offline alternative (Corgi²-style): the same rows, and the rows with users, each
    compacted with ``layout="shuffled"`` (each rewritten group's rows in a random order,
    8,192-row groups), read with the default loader. Order figures are over ``row_id``, the
    order the rows arrived in."""
    import samplestore as ss
    from ..compaction import compact
    from .loader import order_figures, random_order_figures

    rows = len(users)
    store = ss.open_store(os.path.join(workdir, "shuffled"), create=True)
    out: dict[str, Any] = {"row_group_rows": TABLE_ROW_GROUP_ROWS}
    for name, schema in (("rows", bench_schema()), ("by_user", _user_schema())):
        if name in store.tables():
            store.drop_table(name)
        table = store.create_table(name, schema)
        for c in chunks:
            if name == "by_user":
                rid = c.column("row_id").to_numpy()
                c = c.append_column("user_id", pa.array(users[rid])).append_column("ts", pa.array(rid))
            table.append(schema.conform(c))
        compact(table, layout="shuffled")
        ids, sizes, speed = _epoch(table, batch_size, buffer_rows)
        if name == "rows":
            out["bytes_per_sample"] = _table_bytes(table) / rows
            # Units here are the arrival order's 8,192-row stretches: how many a batch mixes.
            starts = np.arange(0, rows, TABLE_ROW_GROUP_ROWS)
            out["loader"] = {"samples_per_s": speed, **order_figures(ids, sizes, batch_size, starts),
                             "random_order": random_order_figures(rows, batch_size, np.diff(np.append(starts, rows)))}
        else:
            out["sorted_by_user"] = {"samples_per_s": speed, **same_group_figures(users[ids])}
    return out


def run_shuffle_units_bench(workdir: str, rows: int = 1_000_000, unit_rows: tuple[int, ...] = (65_536, 8_192, 1_024, 512),
                            batch_size: int = 4096, buffer_rows: int | None = None, repeats: int = 3,
                            samples_per_user: int = 50, shuffled_layout: bool = True,
                            fresh_processes: bool = True) -> dict[str, Any]:
    """Write the tables, then measure each row-group size (see the module docstring); each
    loader run in a fresh process (``fresh_processes=False``: in this one, for a quick test)."""
    import samplestore as ss
    from ..compaction import compact
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS

    buffer_rows = buffer_rows or DEFAULT_SHUFFLE_BUFFER_ROWS
    chunks = _rows(rows)
    schema = bench_schema()
    users = _users(rows, samples_per_user)
    pq_path = os.path.join(workdir, "rows.parquet")
    os.makedirs(workdir, exist_ok=True)
    with pq.ParquetWriter(pq_path, chunks[0].schema, compression="zstd") as w:
        for c in chunks:
            w.write_table(c)
    parquet_bytes = os.path.getsize(pq_path)
    infos, sorted_tables = {}, {}
    for u in unit_rows:
        store = ss.open_store(os.path.join(workdir, f"rg{u}"), create=True)
        for name in ("criteo", "by_user"):
            if name in store.tables():
                store.drop_table(name)
        table = store.create_table("criteo", schema)
        by_user = store.create_table("by_user", _user_schema())
        for c in chunks:
            table.append(schema.conform(c), row_group_rows=u)
            rid = c.column("row_id").to_numpy()
            by_user.append(_user_schema().conform(c.append_column("user_id", pa.array(users[rid]))
                                                  .append_column("ts", pa.array(rid))), row_group_rows=u)
        compact(by_user, sort_by=["user_id", "ts"], row_group_rows=u)
        infos[u] = {"store": store.root, "rows": rows, "bytes_per_sample": _table_bytes(table) / rows}
        sorted_tables[u] = by_user
    runs: dict[int, list[dict[str, Any]]] = {u: [] for u in unit_rows}
    for r in range(repeats):  # sizes alternate (the order too), so drifting load hits all alike
        for u in (unit_rows if r % 2 == 0 else unit_rows[::-1]):
            runs[u].append(_median_runs("samplestore", infos[u], 0, batch_size, buffer_rows, 1, fresh_processes))
    results = []
    for u in unit_rows:
        med = dict(runs[u][0])
        med["samples_per_s"] = float(np.median([x["samples_per_s"] for x in runs[u]]))
        med["samples_per_s_runs"] = [x["samples_per_s"] for x in runs[u]]
        results.append({"row_group_rows": u, "bytes_per_sample": infos[u]["bytes_per_sample"],
                        "loader": {k: med[k] for k in ("samples_per_s", "samples_per_s_runs", "spearman",
                                                       "batch_neighbour_rate", "units_per_batch",
                                                       "peak_rss_above_import_mb", "random_order")},
                        "sorted_by_user": _sorted_epoch(sorted_tables[u], users, batch_size, buffer_rows)})
    shuffled = _shuffled_layout(workdir, chunks, users, batch_size, buffer_rows) if shuffled_layout else None
    return {"rows": rows, "batch_size": batch_size, "buffer_rows": buffer_rows, "samples_per_user": samples_per_user,
            "parquet_bytes_per_sample": parquet_bytes / rows, "results": results, "shuffled_layout": shuffled}


def format_markdown(res: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    lines = [f"{res['rows']:,} Criteo-like rows, batch {res['batch_size']:,}, default buffer "
             f"({res['buffer_rows']:,} rows: windows of {res['buffer_rows'] // 2:,}); Parquet (zstd): "
             f"{res['parquet_bytes_per_sample']:.0f} B/sample. Same user: users of ~{res['samples_per_user']} "
             "samples, table compacted with sort_by user_id, ts (in the offline shuffled layout's row: "
             "the same rows compacted with layout=\"shuffled\" instead).", "",
             "| row group rows | B/sample | samples/s (1 process, median) | Spearman | neighbour rate (random) | "
             "units/batch | same user (random) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    shuffled = [dict(res["shuffled_layout"], label=" (offline shuffled layout)")] if res.get("shuffled_layout") else []
    for r in [*res["results"], *shuffled]:
        ld, su = r["loader"], r["sorted_by_user"]
        lines.append(f"| {r['row_group_rows']:,}{r.get('label', '')} | {r['bytes_per_sample']:.0f} | {ld['samples_per_s']:,.0f} | "
                     f"{ld['spearman']:+.4f} | {ld['batch_neighbour_rate']:.4f} "
                     f"({ld['random_order']['batch_neighbour_rate']:.4f}) | {ld['units_per_batch']:.1f} | "
                     f"{su['same_group_rate']:.5f} ({su['random_same_group_rate']:.5f}) |")
    return "\n".join(lines)
