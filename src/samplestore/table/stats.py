"""Table statistics from the catalog alone (no data read): the data-quality view.

Per column (and optionally per partition): rows, nulls, missing values (nulls, empty lists
or NaNs by kind) and their share, min/max, stored bytes, for list features the length
mean, p50 and p99 from merged length histograms, and for vectors (dense, label, embedding)
the mean of each dimension over its non-missing values (``mean_by_dim``, from the sums the
writer records per file: what ``SampleDataset(impute={...: "mean"})`` fills NaNs with).

``rows`` counts the live rows of the snapshot (what a scan returns); ``deleted_rows`` the
rows deleted but not yet purged from the files by compaction, and ``stored_rows`` both.
The per-column figures come from the files' statistics, written when the files were, so
they describe the stored rows, deleted ones included, until compaction rewrites the files.
``mean_by_dim`` does too: a deleted row's values weigh in the mean until compaction purges
them (excluding them would mean reading the deleted rows back). Rows of files written before
a feature was added count as the feature's default (dense: zeros, labels: NaN, i.e. missing),
as scans return them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import numpy as np

from ..catalog.base import DataFile
from ..errors import CatalogError
from ..format.kinds import ChunkStats, kind_codec
from ..schema import Feature

__all__ = ["table_stats", "deleted_rows_by_file", "vector_means", "column_stats"]


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


def _default_row(feat: Feature) -> ChunkStats:
    """The statistics of one row of ``feat``'s default, as its kind's encoder computes them."""
    # Keyed without the name: a table of 10,000 features has a handful of distinct kinds.
    return _default_row_of(dataclasses.replace(feat, name="_"))


@functools.lru_cache(maxsize=256)
def _default_row_of(feat: Feature) -> ChunkStats:
    return kind_codec(feat).encode(feat, feat.default_array(1))[1]


def _vector_mean(files: list[DataFile], feat: Feature) -> tuple[np.ndarray | None, list[str]]:
    """Per dimension, the mean of ``feat``'s non-missing values over the stored rows of
    ``files`` (NaN where a dimension holds no value), and the files whose statistics have no
    ``sum_by_dim`` (written before samplestore recorded it: then the mean is None).

    Returns (None, []) for a feature whose kind records no sums (not a vector).
    """
    default = _default_row(feat)
    if default.sum_by_dim is None:
        return None, []
    dim = len(default.sum_by_dim)
    total = np.zeros(dim, np.float64)
    missing = np.zeros(dim, np.int64)
    rows = 0
    legacy: list[str] = []
    name = feat.name
    default_missing = _by_dim(default.missing_by_dim, default.missing, dim, f"the default of {name!r}")
    for f in files:
        rows += f.num_rows
        s = f.stats.get(name)
        if s is None:  # written before the feature was added: every row reads its default
            total += default.sum_by_dim * f.num_rows
            missing += default_missing * f.num_rows
            continue
        sums = s.extra.get("sum_by_dim")
        if sums is None:
            legacy.append(f.path)
            continue
        if len(sums) != dim:
            raise CatalogError(f"statistics of file {f.path}, column {name!r}: sum_by_dim holds {len(sums)} values, "
                               f"expected {dim} (the feature's dim)")
        with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf: NaN, no mean
            total += np.asarray(sums, dtype=np.float64)
        missing += _by_dim(s.extra.get("missing_by_dim"), s.missing, dim, f"file {f.path}, column {name!r}")
    if legacy:
        return None, legacy
    present = rows - missing
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, total / np.maximum(present, 1), np.nan), []


def _by_dim(by_dim: Any, missing: int, dim: int, where: str) -> np.ndarray:
    """NaNs per dimension: recorded per slot (``missing_by_dim``) for ``dim`` > 1 wherever
    any row is stored; for one dimension, the total."""
    if by_dim is not None and len(by_dim) == dim:
        return np.asarray(by_dim, dtype=np.int64)
    if by_dim is None and (dim == 1 or missing == 0):
        return np.full(dim, missing, np.int64)
    raise CatalogError(f"statistics of {where}: {missing} NaNs recorded but missing_by_dim is "
                       f"{by_dim!r}, expected {dim} counts (the feature's dim)")


def vector_means(table: Any, snapshot: int | str | None, names: list[str]) -> dict[str, np.ndarray]:
    """Per dimension, the mean of each vector feature of ``names`` in a snapshot, from the
    catalog's statistics alone (no data read): float64 arrays, NaN where a dimension holds no
    non-missing value. Like every figure of :func:`table_stats`, over the stored rows of the
    snapshot's files (deleted rows not yet purged included).

    Raises:
        CatalogError: a file of the snapshot was written before samplestore recorded the
            sums per dimension (the message names it and what rewrites it), or a name is not
            a vector feature of the snapshot's schema.
    """
    sid = table.resolve_snapshot(snapshot, None)
    schema = table.schema_at(sid)
    files = table.catalog.files(table.name, sid, with_stats=names)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in schema.names:
            raise CatalogError(f"table {table.name!r}, snapshot {sid}: no feature {name!r}; features: {schema.names}")
        mean, legacy = _vector_mean(files, schema[name])
        if legacy:
            raise CatalogError(
                f"table {table.name!r}, snapshot {sid}: file {legacy[0]} ({len(legacy)} of {len(files)} files) has no "
                f"sum_by_dim statistics for {name!r}: it was written before samplestore recorded them, so the mean "
                "per dimension is unknown. Rewriting a file records them: table.compact() rewrites small files and "
                "files with deleted rows, table.compact(sort_by=[...]) every file not sorted by that key; or impute "
                "with \"zero\" or a value")
        if mean is None:
            raise CatalogError(f"table {table.name!r}: feature {name!r} is of kind {schema[name].kind!r}, which has "
                               "no mean per dimension (only dense, label and embedding vectors do)")
        out[name] = mean
    return out


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
        mean, legacy = _vector_mean(files, feat)
        if mean is not None:
            agg["mean_by_dim"] = [None if np.isnan(x) else float(x) for x in mean]
        elif legacy:  # files written before the sums were recorded: no mean to give
            agg["mean_by_dim"] = None
            agg["files_without_sums"] = len(legacy)
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
    ``stored_rows``, ``files``, ``bytes``, ``columns`` (per column, over the stored rows)
    and, with ``by_partition``, the same per partition. A vector column's ``mean_by_dim``
    lists the mean of each dimension over its non-missing values (None for a dimension
    with none); it is None, with ``files_without_sums`` counting them, where files written
    before samplestore recorded the sums leave it unknown.
    Quarantined files (see ``Table.quarantines``) count only with ``include_quarantined``.
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
