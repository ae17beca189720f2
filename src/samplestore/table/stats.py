"""Table statistics from the catalog alone (no data read): the data-quality view.

Per column (and optionally per partition): rows, nulls, missing values (nulls, empty lists
or NaNs by kind) and their share, min/max, stored bytes, and for list features the length
mean, p50 and p99 from merged length histograms.

``rows`` counts the live rows of the snapshot (what a scan returns); ``deleted_rows`` the
rows deleted but not yet purged from the files by compaction, and ``stored_rows`` both.
The per-column figures come from the files' statistics, written when the files were, so
they describe the stored rows, deleted ones included, until compaction rewrites the files.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..catalog.base import DataFile
from ..format.kinds import kind_codec

__all__ = ["table_stats", "deleted_rows_by_file", "column_stats"]


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


def column_stats(files: list[DataFile], schema: Any) -> dict[str, Any]:
    """Per-column figures of ``files`` (as :func:`table_stats` gives them under ``columns``),
    from the statistics the files carry: pass files read with ``with_stats``."""
    return _columns(files, schema)


def _columns(files: list[DataFile], schema: Any) -> dict[str, Any]:
    rows = sum(f.num_rows for f in files)
    out: dict[str, Any] = {}
    for feat in schema:
        name = feat.name
        # What `missing` counts is the kind's to say (a dense vector's NaN slots: rows x dim).
        slots = kind_codec(feat).missing_slots(feat, rows)
        agg: dict[str, Any] = {"nulls": 0, "missing": 0, "values": 0, "min": None, "max": None, "bytes": 0}
        hist: dict[int, int] = {}
        by_dim: np.ndarray | None = None
        total: float | None = 0.0  # a label's sum; None once a file lacks it (written before it was kept)
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
            total = total + s.extra["sum"] if total is not None and "sum" in s.extra else None
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
        present = slots - agg["missing"]
        if total is not None and feat.kind == "label" and files and present > 0:
            agg["mean"] = total / present  # the label rate of a 0/1 label
        out[name] = agg
    return out


def deleted_rows_by_file(table: Any, snapshot_id: int, files: list[DataFile]) -> dict[int, int]:
    """Rows of each of ``files`` deleted as of ``snapshot_id`` (file id -> count; absent = 0)."""
    if not files:
        return {}
    ids = {f.file_id for f in files}
    # All of the table's deletes, then filtered: a list of thousands of file ids would not
    # fit in one SQL statement.
    positions = table.catalog.deleted_positions(table.name, snapshot_id)
    return {fid: len(pos) for fid, pos in positions.items() if fid in ids}


def _row_counts(files: list[DataFile], deleted: dict[int, int]) -> dict[str, int]:
    stored = sum(f.num_rows for f in files)
    gone = sum(deleted.get(f.file_id, 0) for f in files)
    return {"rows": stored - gone, "deleted_rows": gone, "stored_rows": stored}


def table_stats(table: Any, snapshot: int | None = None, by_partition: bool = False, *,
                include_quarantined: bool = False) -> dict[str, Any]:
    """Statistics of a table snapshot, computed from the catalog alone (no data is read).

    Returns a dict with ``rows`` (live rows), ``deleted_rows`` (deleted, not yet purged),
    ``stored_rows``, ``files``, ``bytes``, ``columns`` (per column, over the stored rows;
    a label's ``mean`` too, when every file recorded its sum) and, with ``by_partition``,
    the same per partition. Quarantined files (see ``Table.quarantines``) count only with
    ``include_quarantined``.
    """
    sid = table.resolve_snapshot(snapshot, None)
    schema = table.schema_at(sid)
    files = table.catalog.files(table.name, sid, with_stats=schema.names, include_quarantined=include_quarantined)
    deleted = deleted_rows_by_file(table, sid, files)
    res: dict[str, Any] = {
        "table": table.name,
        "snapshot_id": sid,
        **_row_counts(files, deleted),
        "files": len(files),
        "bytes": sum(f.file_bytes for f in files),
        "columns": _columns(files, schema),
    }
    if by_partition and table.partition_by:
        groups: dict[str, list[DataFile]] = {}
        for f in files:
            groups.setdefault(f.partition_key, []).append(f)
        res["partitions"] = [
            {"partition": json.loads(k), **_row_counts(fs, deleted), "files": len(fs),
             "columns": _columns(fs, schema)}
            for k, fs in sorted(groups.items())
        ]
    return res
