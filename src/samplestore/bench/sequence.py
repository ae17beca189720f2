"""Sequence benchmark: long behaviour histories, stored once across rows.

The workload (:func:`samplestore.datagen.sequence_like`): Criteo-like columns plus a history
of up to 200 ids per sample, each user's samples sliding one item, rows in time order as a
stream writes them. Figures: bytes per sample of the table as appended (time order, one
file) and after ``compact(sort_by=["user_id", "ts"])``, against Parquet (zstd) on the same
rows in the same orders, in total and for the history column alone; and, on the sorted table
read with ``SampleDataset(dedup=["history"])`` (shuffled batches of 4,096), the history ids a
batch delivers with and without deduplication and the median CPU time of one training step
of a sum-pooled embedding bag over the history (sparse gradients, SGD) both ways; and loader
samples/s (one process, median of 3 epochs) of ``SampleDataset`` on the sorted table against
the careful Parquet loader of ``samplestore.bench.loader`` on the same sorted rows, same batch
layout and shuffle buffer.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import datagen
from ..schema import Schema

__all__ = ["run_sequence_bench", "format_markdown", "SORT_BY"]

SORT_BY = ["user_id", "ts"]


def _parquet(table: pa.Table, path: str) -> tuple[int, int]:
    """(file bytes, compressed bytes of the history column) of ``table`` as Parquet (zstd)."""
    pq.write_table(table, path, compression="zstd")
    meta = pq.ParquetFile(path).metadata
    hist = sum(meta.row_group(g).column(c).total_compressed_size for g in range(meta.num_row_groups)
               for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema.startswith("history"))
    return os.path.getsize(path), hist


def _ssf(table: Any) -> tuple[int, int]:
    """(bytes of the live files, bytes of their history column) of a samplestore table."""
    files = table.catalog.files(table.name, table.current_snapshot_id, with_stats=["history"])
    return sum(f.file_bytes for f in files), sum(f.stats["history"].bytes for f in files)


def _dedup_figures(table: Any, batch_size: int = 4096, max_batches: int = 20, dim: int = 16,
                   buckets: int = 1_000_003) -> dict[str, Any]:
    """Ids per batch and median training-step times with and without ``dedup=["history"]``."""
    import torch
    import torch.nn.functional as F

    from ..torch import SampleDataset

    torch.manual_seed(0)
    weights = {name: torch.nn.Parameter(torch.randn(buckets, dim) * 0.01) for name in ("dedup", "full")}
    opts = {name: torch.optim.SGD([w], lr=0.01) for name, w in weights.items()}
    ds = SampleDataset(table, batch_size=batch_size, shuffle=True, seed=0, dedup=["history"],
                       features=["history", "click"])
    ids = {"full": 0, "dedup": 0}
    times: dict[str, list[float]] = {"full": [], "dedup": []}

    def step(name: str, pooled_of: Any, labels: Any) -> None:
        t0 = time.perf_counter()
        loss = (pooled_of(weights[name]).sum(1) - labels).pow(2).mean()
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()
        times[name].append(time.perf_counter() - t0)

    for k, batch in enumerate(ds):
        if k == max_batches:
            break
        d, full, y = batch.dedup["history"], batch.full_sparse(), batch.labels[:, 0]
        ids["dedup"] += d.unique.numel()
        ids["full"] += d.inverse.numel()
        unique, values, offsets = d.unique % buckets, full.values % buckets, full.offsets[:-1]  # hashed to the table
        # Deduplicated: one embedding lookup per distinct id, then a bag over those rows.
        step("dedup", lambda w: F.embedding_bag(d.inverse, F.embedding(unique, w, sparse=True), d.offsets[:-1],
                                                mode="sum"), y)
        step("full", lambda w: F.embedding_bag(values, w, offsets, mode="sum", sparse=True), y)
    ds.close()
    return {"batch_size": batch_size, "batches": len(times["full"]), "history_ids": ids,
            "factor": ids["full"] / max(1, ids["dedup"]),
            "step_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()}}


def _loader_rates(table: Any, rows: pa.Table, workdir: str, batch_size: int = 4096, epochs: int = 3) -> dict[str, Any]:
    """Median samples/s of one-process epochs: SampleDataset vs the careful Parquet loader."""
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS, SampleDataset
    from .loader import PARQUET_ROW_GROUP_ROWS, ParquetLoader

    path = os.path.join(workdir, "loader.parquet")
    pq.write_table(rows, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP_ROWS)
    buffer_rows = DEFAULT_SHUFFLE_BUFFER_ROWS
    # What a trainer reads: the features (user_id and ts only lay the table out).
    train = Schema([f for f in table.schema if f.name not in SORT_BY])
    rates: dict[str, list[float]] = {"samplestore": [], "parquet": []}
    ds = SampleDataset(table, features=train.names, batch_size=batch_size, shuffle_buffer_rows=buffer_rows)
    for e in range(epochs):
        ds.set_epoch(e)
        for name, loader in (("samplestore", ds),
                             ("parquet", ParquetLoader([path], train, batch_size, buffer_rows, seed=e))):
            t0 = time.perf_counter()
            n = sum(len(b) for b in loader)
            rates[name].append(n / (time.perf_counter() - t0))
    ds.close()
    out = {k: statistics.median(v) for k, v in rates.items()}
    return {"samples_per_s": out, "ratio": out["samplestore"] / out["parquet"], "batch_size": batch_size,
            "buffer_rows": buffer_rows}


def run_sequence_bench(workdir: str, rows: int = 400_000, samples_per_user: int = 400) -> dict[str, Any]:
    """Measure one workload both ways, in this run; return figures and ratios."""
    import samplestore as ss

    os.makedirs(workdir, exist_ok=True)
    data = datagen.sequence_like(rows, seed=11, samples_per_user=samples_per_user)
    schema = datagen.sequence_schema()
    hist = data.column("history")
    ids = sum(len(data.column(c).combine_chunks().values) for c in data.column_names
              if pa.types.is_list(data.schema.field(c).type))
    by_user = data.take(pc.sort_indices(data, [(c, "ascending") for c in SORT_BY]))
    pq_time = _parquet(data, os.path.join(workdir, "time.parquet"))
    pq_sorted = _parquet(by_user, os.path.join(workdir, "sorted.parquet"))

    store = ss.open_store(os.path.join(workdir, "store"), create=True)
    if "seq" in store.tables():
        store.drop_table("seq")
    table = store.create_table("seq", schema)
    table.append(data)  # one large file in time order: what compaction must re-cluster
    appended = _ssf(table)
    files_before = len(table.files())
    table.compact(sort_by=SORT_BY)
    compacted = _ssf(table)
    back = table.scan().to_arrow()
    if not back.equals(schema.conform(by_user)):
        raise AssertionError("the compacted table does not read back the rows sorted by (user_id, ts)")
    files = table.files()
    dedup = _dedup_figures(table)
    loader = _loader_rates(table, schema.conform(by_user), workdir)
    per = lambda b: b / rows  # noqa: E731
    res: dict[str, Any] = {
        "rows": rows, "users": rows // samples_per_user, "ids_per_sample": ids / rows,
        "history_ids_per_sample": len(hist.combine_chunks().values) / rows,
        "files": {"appended": files_before, "compacted": len(files)},
        "dedup": dedup,
        "loader": loader,
        "sort_keys": sorted({list(f.sort_key).__repr__() for f in files}),
        "bytes_per_sample": {"ssf_time_order": per(appended[0]), "ssf_sorted": per(compacted[0]),
                             "parquet_time_order": per(pq_time[0]), "parquet_sorted": per(pq_sorted[0])},
        "history_bytes_per_sample": {"ssf_time_order": per(appended[1]), "ssf_sorted": per(compacted[1]),
                                     "parquet_time_order": per(pq_time[1]), "parquet_sorted": per(pq_sorted[1])},
    }
    b = res["bytes_per_sample"]
    res["ratios"] = {
        "sorted_vs_parquet_sorted": b["ssf_sorted"] / b["parquet_sorted"],
        "sorted_vs_parquet_time_order": b["ssf_sorted"] / b["parquet_time_order"],
        "time_order_vs_parquet_time_order": b["ssf_time_order"] / b["parquet_time_order"],
    }
    return res


def format_markdown(res: dict[str, Any]) -> str:
    """The sequence benchmark as a markdown table."""
    b, h, r, d = res["bytes_per_sample"], res["history_bytes_per_sample"], res["ratios"], res["dedup"]
    lo = res["loader"]
    return "\n".join([
        f"{res['rows']:,} samples of {res['users']:,} users, {res['ids_per_sample']:.0f} ids per sample "
        f"({res['history_ids_per_sample']:.0f} in the history); appended in time order as "
        f"{res['files']['appended']} file(s), then `compact(sort_by={SORT_BY})` "
        f"({res['files']['compacted']} file(s)).",
        "",
        "| bytes per sample | .ssf | Parquet (zstd) | ratio |",
        "|---|---:|---:|---:|",
        f"| time order (as appended) | {b['ssf_time_order']:.1f} | {b['parquet_time_order']:.1f} | "
        f"{r['time_order_vs_parquet_time_order']:.3f}x |",
        f"| sorted by (user_id, ts) | {b['ssf_sorted']:.1f} | {b['parquet_sorted']:.1f} | "
        f"{r['sorted_vs_parquet_sorted']:.3f}x |",
        f"| history column, time order | {h['ssf_time_order']:.1f} | {h['parquet_time_order']:.1f} | "
        f"{h['ssf_time_order'] / h['parquet_time_order']:.3f}x |",
        f"| history column, sorted | {h['ssf_sorted']:.1f} | {h['parquet_sorted']:.1f} | "
        f"{h['ssf_sorted'] / h['parquet_sorted']:.3f}x |",
        "",
        f"Sorted .ssf against Parquet of the rows as a stream leaves them (time order): "
        f"{r['sorted_vs_parquet_time_order']:.3f}x.",
        "",
        f"`SampleDataset(dedup=[\"history\"])` on the sorted table, shuffled batches of {d['batch_size']:,} "
        f"({d['batches']} batches): history ids delivered {d['history_ids']['dedup']:,} instead of "
        f"{d['history_ids']['full']:,} (**{d['factor']:.1f}x fewer**); CPU training step of a sum-pooled "
        f"embedding bag over the history, median: {d['step_ms']['dedup']:.1f} ms deduplicated, "
        f"{d['step_ms']['full']:.1f} ms on the full ids ({d['step_ms']['full'] / d['step_ms']['dedup']:.2f}x).",
        "",
        f"Loader on the sorted rows, one process, batch {lo['batch_size']:,}, shuffle buffer {lo['buffer_rows']:,} "
        f"rows, median of 3 epochs: samplestore {lo['samples_per_s']['samplestore']:,.0f} samples/s, careful Parquet "
        f"loader {lo['samples_per_s']['parquet']:,.0f} samples/s (**{lo['ratio']:.2f}x**).",
    ])
