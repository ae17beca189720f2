"""Compaction benchmark: a table of many small files (what streaming leaves), before and after.

Figures: loader samples/s (median of 3 epochs, one process) on 1,000 small files and after
compaction, compaction throughput (input MB/s and rows/s), and bytes per sample after
compacting with and without a cluster key (``sort_by=["user_id", "ts"]``).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from .. import datagen

__all__ = ["run_compaction_bench", "format_markdown"]


def _epoch_rate(table: Any, epochs: int = 3) -> float:
    """Median samples/s of ``epochs`` one-process epochs (an epoch here is well under a second)."""
    from ..torch import SampleDataset

    ds = SampleDataset(table, batch_size=4096)
    rates = []
    for e in range(epochs):
        ds.set_epoch(e)
        t0 = time.perf_counter()
        n = sum(len(b) for b in ds)
        rates.append(n / (time.perf_counter() - t0))
    ds.close()
    return float(statistics.median(rates))


def run_compaction_bench(workdir: str, files: int = 1000, rows_per_file: int = 200) -> dict[str, Any]:
    """Two identical tables of ``files`` small files; compact one plainly, one sorted."""
    import samplestore as ss

    store = ss.open_store(os.path.join(workdir, "compaction"), create=True)
    schema = datagen.sessions_schema()
    data = datagen.sessions_like(files * rows_per_file, seed=5)
    tables = {}
    for name in ("plain", "sorted"):
        if name in store.tables():
            store.drop_table(name)
        t = store.create_table(name, schema)
        with t.writer(commit_every_rows=rows_per_file, target_file_bytes=1) as w:
            for k in range(files):
                w.write(data.slice(k * rows_per_file, rows_per_file))
        tables[name] = t
    rows = files * rows_per_file
    plain = tables["plain"]
    before_files = len(plain.files())
    before_bytes = sum(f.file_bytes for f in plain.files())
    rate_before = _epoch_rate(plain)
    t0 = time.perf_counter()
    res = plain.compact()
    seconds = time.perf_counter() - t0
    rate_after = _epoch_rate(plain)
    t0 = time.perf_counter()
    tables["sorted"].compact(sort_by=["user_id", "ts"])
    sorted_seconds = time.perf_counter() - t0
    size = lambda t: sum(f.file_bytes for f in t.files())  # noqa: E731
    return {
        "rows": rows, "files_before": before_files, "files_after": len(plain.files()),
        "loader_samples_per_s": {"before": rate_before, "after": rate_after},
        "compaction": {"seconds": seconds, "input_mb_per_s": res.bytes_in / 1e6 / seconds, "rows_per_s": rows / seconds,
                       "sorted_seconds": sorted_seconds},
        "bytes_per_sample": {"small_files": before_bytes / rows, "compacted": size(plain) / rows,
                             "compacted_sorted": size(tables["sorted"]) / rows},
    }


def format_markdown(res: dict[str, Any]) -> str:
    """The compaction benchmark as a markdown table."""
    ls, c, b = res["loader_samples_per_s"], res["compaction"], res["bytes_per_sample"]
    return "\n".join([
        f"{res['rows']:,} session samples written as {res['files_before']:,} small files (one per streaming commit).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| loader samples/s, {res['files_before']:,} small files | {ls['before']:,.0f} |",
        f"| loader samples/s, after compaction ({res['files_after']} files) | {ls['after']:,.0f} |",
        f"| compaction throughput | {c['input_mb_per_s']:.1f} MB/s of input, {c['rows_per_s']:,.0f} rows/s |",
        f"| bytes per sample: small files | {b['small_files']:.1f} |",
        f"| bytes per sample: compacted | {b['compacted']:.1f} |",
        f"| bytes per sample: compacted, sort_by user_id, ts | {b['compacted_sorted']:.1f} |",
    ])
