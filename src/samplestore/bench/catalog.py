"""Catalog benchmark: planning scans of a table of many small files (real files on disk).

Three plans over ``files`` files in 100 partitions: the whole table, one partition
(partition pruning) and a narrow user-id range (min/max statistics pruning).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["make_many_files", "plan_cases", "run_catalog_bench", "format_markdown", "DAYS"]

DAYS = 100


def make_many_files(workdir: str, files: int) -> Any:
    """A table of ``files`` ten-row files spread over 100 day partitions."""
    import samplestore as ss

    schema = ss.Schema([ss.Scalar("user_id", "int64"), ss.Sparse("ids"), ss.Label("y"), ss.Scalar("ds", "string")])
    store = ss.open_store(os.path.join(workdir, "plan"), create=True)
    if "t" in store.tables():
        store.drop_table("t")
    table = store.create_table("t", schema, partition_by=["ds"])
    with table.writer(commit_every_rows=10_000, target_file_bytes=1) as w:
        for i in range(files):
            w.write({"user_id": pa.array(np.arange(i * 10, i * 10 + 10)), "ids": pa.array([[1, 2]] * 10),
                     "y": pa.array(np.zeros(10, np.float32)), "ds": [f"day{i % DAYS:03d}"] * 10})
    return table


def plan_cases(files: int) -> dict[str, tuple[Any, int]]:
    """Filter and expected file count of each planning case."""
    return {"all": (None, files), "one partition": (pc.field("ds") == "day007", files // DAYS),
            "user range": ((pc.field("user_id") >= files * 5) & (pc.field("user_id") < files * 5 + 100), 10)}


def run_catalog_bench(workdir: str, files: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    """Median seconds to plan each case; checks each plan holds the expected files."""
    table = make_many_files(workdir, files)
    out: dict[str, Any] = {"files": len(table.files()), "plan_seconds": {}}
    for name, (flt, expected) in plan_cases(files).items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            plan = table.scan(filter=flt).plan()
            times.append(time.perf_counter() - t0)
            if plan.num_files != expected:
                raise AssertionError(f"plan {name!r} holds {plan.num_files} files, expected {expected}")
        out["plan_seconds"][name] = statistics.median(times)
    return out


def format_markdown(res: dict[str, Any]) -> str:
    """The catalog benchmark as a markdown table."""
    rows = [f"Planning a scan of a table of {res['files']:,} files (100 partitions), median of 5:", "",
            "| plan | seconds |", "|---|---:|"]
    rows += [f"| {k} | {v:.3f} |" for k, v in res["plan_seconds"].items()]
    return "\n".join(rows)
