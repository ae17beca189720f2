"""Ingest and compaction with Ray at 1 and 2 tasks in flight against the single-process path,
on the same data (``pip install 'samplestore[ray]'``).

Ingest: ``files`` Criteo-like Parquet files into a new table, by ``samplestore.table.ingest``
(one process, one writer) and by ``samplestore.ray.ingest`` (one Ray task per file, at most
``k`` at a time, one commit). Compaction: the same table of ``files`` small files (as Ray's
ingest leaves it, one file per source) merged into about four files, by ``Table.compact()``
and by ``Table.compact(executor="ray", max_in_flight=k)``. Rows/s exclude Ray's start-up (the
cluster is started first) but include its per-task costs (scheduling, a worker opening the
store, results sent back).
"""

from __future__ import annotations

import os
import time
from typing import Any

from .. import datagen

__all__ = ["run_ray_bench", "format_markdown"]


def run_ray_bench(workdir: str, files: int = 16, rows_per_file: int = 50_000, num_sparse: int = 8,
                  num_cpus: int = 2) -> dict[str, Any]:
    """Run the benchmark in ``workdir``; starts a local Ray cluster of ``num_cpus`` CPUs
    unless this process is connected to one (and then shuts it down at the end)."""
    import pyarrow.parquet as pq
    import ray

    import samplestore as ss
    import samplestore.ray as ssr
    from ..table.ingest import ingest

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        paths = []
        for k in range(files):
            paths.append(os.path.join(workdir, f"part-{k:03d}.parquet"))
            pq.write_table(datagen.criteo_like(rows_per_file, seed=k, num_sparse=num_sparse), paths[-1])
        rows = files * rows_per_file
        store = ss.open_store(os.path.join(workdir, "store"), create=True)
        schema = datagen.criteo_schema(num_sparse=num_sparse)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        out: dict[str, Any] = {"rows": rows, "files": files, "cluster_cpus": cpus, "os_cpus": os.cpu_count(),
                               "ingest_rows_per_s": {}, "compaction_rows_per_s": {}}

        def timed(fn: Any) -> float:
            t0 = time.perf_counter()
            fn()
            return rows / (time.perf_counter() - t0)

        ways = {"single process": None, "ray, 1 task": 1, "ray, 2 tasks": 2}
        small = {}
        for i, (name, k) in enumerate(ways.items()):
            t = store.create_table(f"ingest{i}", schema)
            if k is None:
                rate = timed(lambda: ingest(t, paths))
            else:
                rate = timed(lambda: ssr.ingest(t, paths, max_in_flight=k))
            out["ingest_rows_per_s"][name] = rate
            # Tables of one small file per source, for the compaction runs.
            small[name] = store.create_table(f"small{i}", schema)
            ssr.ingest(small[name], paths)
        target = sum(f.file_bytes for f in small["ray, 1 task"].files()) // 4 + 1
        for name, k in ways.items():
            t = small[name]
            if k is None:
                rate = timed(lambda: t.compact(target_file_bytes=target))
            else:
                rate = timed(lambda: t.compact(target_file_bytes=target, executor="ray", max_in_flight=k))
            out["compaction_rows_per_s"][name] = rate
            if t.count() != rows:
                raise AssertionError(f"compaction of {name} lost rows: {t.count()} of {rows}")
        out["files_after_compaction"] = len(small["ray, 2 tasks"].files())
        return out
    finally:
        if started:
            ray.shutdown()


def format_markdown(res: dict[str, Any]) -> str:
    """The benchmark as a markdown table."""
    lines = [f"{res['rows']:,} Criteo-like rows in {res['files']} Parquet files; Ray cluster of "
             f"{res['cluster_cpus']} CPUs on a {res['os_cpus']}-core machine.", "",
             "| path | ingest rows/s | compaction rows/s |", "|---|---:|---:|"]
    for name, rate in res["ingest_rows_per_s"].items():
        lines.append(f"| {name} | {rate:,.0f} | {res['compaction_rows_per_s'][name]:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m samplestore.bench.ray_scaling WORKDIR [FILES ROWS_PER_FILE]
    import sys

    args = sys.argv[1:]
    os.makedirs(args[0], exist_ok=True)
    print(format_markdown(run_ray_bench(args[0], *(int(x) for x in args[1:3]))))
