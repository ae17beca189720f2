"""Table statistics from the catalog alone (no data read): the data-quality view.

Per column (and optionally per partition): rows, nulls, missing values (nulls, empty lists
or NaNs by kind) and their share, min/max, stored bytes, and for list features the length
mean, p50 and p99 from merged length histograms. The figures describe the stored files:
rows deleted but not yet purged by compaction still count.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..catalog.base import DataFile

__all__ = ["table_stats"]


def _quantile(hist: dict[int, int], q: float) -> int:
    total = sum(hist.values())
    if total == 0:
        return 0
    acc, target = 0, q * total
    for length in sorted(hist):
        acc += hist[length]
        if acc >= target:
            return length
    return max(hist)


def _columns(files: list[DataFile], schema: Any) -> dict[str, Any]:
    rows = sum(f.num_rows for f in files)
    out: dict[str, Any] = {}
    for feat in schema:
        name = feat.name
        # A dense vector's missing values are NaN slots: their share is of rows x dim.
        slots = rows * getattr(feat, "dim", 1) if feat.kind in ("dense", "embedding") else rows
        agg: dict[str, Any] = {"nulls": 0, "missing": 0, "values": 0, "min": None, "max": None, "bytes": 0}
        hist: dict[int, int] = {}
        by_dim: np.ndarray | None = None
        for f in files:
            s = f.stats.get(name)
            if s is None:  # file written before the feature was added: all defaults
                continue
            agg["nulls"] += s.nulls
            agg["missing"] += s.missing
            agg["values"] += s.values
            agg["bytes"] += s.bytes
            if s.min is not None:
                agg["min"] = s.min if agg["min"] is None else min(agg["min"], s.min)
                agg["max"] = s.max if agg["max"] is None else max(agg["max"], s.max)
            for length, count in s.extra.get("lengths", []):
                hist[length] = hist.get(length, 0) + count
            if "missing_by_dim" in s.extra:
                d = np.asarray(s.extra["missing_by_dim"], dtype=np.int64)
                by_dim = d if by_dim is None else by_dim + d
        agg["missing_fraction"] = agg["missing"] / slots if slots else 0.0
        if hist:
            total = sum(hist.values())
            agg["list_length"] = {
                "mean": sum(k * v for k, v in hist.items()) / total,
                "p50": _quantile(hist, 0.5),
                "p99": _quantile(hist, 0.99),
                "max": max(hist),
            }
        if by_dim is not None:
            agg["missing_by_dim"] = by_dim.tolist()
        out[name] = agg
    return out


def table_stats(table: Any, snapshot: int | None = None, by_partition: bool = False) -> dict[str, Any]:
    """Statistics of a table snapshot, computed from the catalog's per-file statistics."""
    sid = table._resolve_snapshot(snapshot, None)
    schema = table._schema_at(sid)
    files = table._catalog.files(table.name, sid, with_stats=schema.names)
    res: dict[str, Any] = {
        "table": table.name,
        "snapshot_id": sid,
        "rows": sum(f.num_rows for f in files),
        "files": len(files),
        "bytes": sum(f.file_bytes for f in files),
        "columns": _columns(files, schema),
    }
    if by_partition and table.partition_by:
        groups: dict[str, list[DataFile]] = {}
        for f in files:
            groups.setdefault(json.dumps(dict(f.partition), sort_keys=True), []).append(f)
        res["partitions"] = [
            {"partition": json.loads(k), "rows": sum(f.num_rows for f in fs), "files": len(fs),
             "columns": _columns(fs, schema)}
            for k, fs in sorted(groups.items())
        ]
    return res
