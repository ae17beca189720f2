"""The daily data-quality report of a table, from catalog statistics alone (no data read).

Per partition (what readers see: open quarantines are listed, not counted): rows, each
expectation's measured value and verdict, the missing rate of every column (and of each
slot of a dense feature) as a trend across partitions, and the population stability index
(PSI) of each dense feature (per slot) and label against the previous ``psi_window``
partitions; then the freshness rules (every date partition committed by its deadline).
``samplestore quality`` prints it and exits 1 when an expectation fails.

PSI compares a partition's value histogram (:func:`~samplestore.format.kinds.vector.value_bins`,
the bins the writer records per file, merged to one bin per doubling of ``1 + |x|``) with
the histograms of the previous partitions summed: ``sum((p - q) * ln(p / q))`` over the bins,
shares below 1e-4 raised to 1e-4 so an empty bin counts without dividing by zero. Below 0.1
is usually read as stable, above 0.25 as a shift.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..catalog.base import DataFile
from ..extras import require_extra
from ..format.kinds.vector import HIST_BINS_PER_OCTAVE
from .expectations import Expectation, expectations_of, judge, partition_order
from .stats import column_stats

__all__ = ["quality_report", "plot_missing_heatmap", "psi", "DEFAULT_PSI_WINDOW"]

#: Partitions a PSI compares against by default.
DEFAULT_PSI_WINDOW = 7
_PSI_FLOOR = 1e-4


def psi(current: Mapping[int, int], baseline: Mapping[int, int]) -> float | None:
    """The population stability index of two histograms (bin -> count); None if either is empty."""
    a, b = sum(current.values()), sum(baseline.values())
    if not a or not b:
        return None
    total = 0.0
    for k in set(current) | set(baseline):
        p = max(current.get(k, 0) / a, _PSI_FLOOR)
        q = max(baseline.get(k, 0) / b, _PSI_FLOOR)
        total += (p - q) * math.log(p / q)
    return total


def _histograms(files: Sequence[DataFile], name: str) -> dict[int, dict[int, int]] | None:
    """Per slot, the merged value histogram of column ``name`` in ``files``, coarsened to one
    bin per doubling; None when a file lacks one (written before samplestore kept them)."""
    out: dict[int, dict[int, int]] = {}
    for f in files:
        s = f.stats.get(name)
        if s is None or "histogram" not in s.extra:
            return None
        for slot, b, count in s.extra["histogram"]:
            h = out.setdefault(int(slot), {})
            k = int(b) // HIST_BINS_PER_OCTAVE
            h[k] = h.get(k, 0) + int(count)
    return out


def _psi_of(files: Sequence[DataFile], baseline: Sequence[DataFile], name: str, dim: int) -> dict[str, Any] | None:
    cur, base = _histograms(files, name), _histograms(baseline, name)
    if cur is None or base is None or not baseline:
        return None
    by_slot = [psi(cur.get(i, {}), base.get(i, {})) for i in range(dim)]
    known = [v for v in by_slot if v is not None]
    out: dict[str, Any] = {"max": max(known) if known else None, "mean": sum(known) / len(known) if known else None}
    if dim > 1:
        out["by_dim"] = by_slot
    return out


def _missing_rates(col: Mapping[str, Any], name: str, rows: int) -> dict[str, float]:
    out = {name: col["missing_fraction"]}
    for i, n in enumerate(col.get("missing_by_dim", ())):
        out[f"{name}[{i}]"] = n / rows if rows else 0.0
    return out


def _as_date(v: Any) -> _dt.date | None:
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    try:
        return _dt.date.fromisoformat(str(v))  # 2026-11-20 and 20261120 both
    except ValueError:
        return None


def _freshness(e: Expectation, parts: list[dict[str, Any]], now: float, since: _dt.date | None) -> dict[str, Any]:
    """Whether every date partition from the first (or ``since``) to the last whose deadline
    has passed at ``now`` was committed by its deadline."""
    hours = e.bounds["deadline_hours"]
    seen: dict[_dt.date, float | None] = {}
    for p in parts:
        d = _as_date(p["partition"].get(e.column))
        if d is None:
            return {"rule_index": e.index, "rule": e.rule, "column": e.column, "bound": dict(e.bounds),
                    "action": e.action, "verdict": "not measurable",
                    "reason": f"partition value {p['partition'].get(e.column)!r} is not a date"}
        seen[d] = p["committed_at"]
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    deadline = lambda d: (_dt.datetime.combine(d, _dt.time(), _dt.timezone.utc) - epoch).total_seconds() + hours * 3600  # noqa: E731
    missing, late = [], []
    start = since or (min(seen) if seen else None)
    if start is not None:
        d = start
        while deadline(d) <= now:
            if d not in seen:
                missing.append(d.isoformat())
            elif seen[d] is not None and seen[d] > deadline(d):
                late.append(d.isoformat())
            d += _dt.timedelta(days=1)
    msgs = [f"partition {e.column}={d} is missing, due by {hours:g} h after its date (expectation {e.index})"
            for d in missing]
    msgs += [f"partition {e.column}={d} was committed after its deadline of {hours:g} h (expectation {e.index})"
             for d in late]
    return {"rule_index": e.index, "rule": e.rule, "column": e.column, "bound": dict(e.bounds), "action": e.action,
            "missing": missing, "late": late, "measured": len(missing) + len(late),
            "verdict": "fail" if msgs else "pass", "messages": msgs}


def quality_report(table: Any, *, since: Any = None, snapshot: int | str | None = None, now: float | None = None,
                   psi_window: int = DEFAULT_PSI_WINDOW) -> dict[str, Any]:
    """The quality report of a table snapshot (the current one by default), as JSON-ready data.

    Args:
        since: only partitions whose first partition value is at or after this (a date or
            its ISO text); freshness counts from it.
        now: the time (epoch seconds) freshness deadlines are checked at (default: now).
        psi_window: how many previous partitions a partition's PSI compares against.

    Returns:
        ``{"table", "snapshot_id", "as_of", "expectations", "partitions": [{"partition",
        "rows", "files", "committed_at", "missing_rate": {column: share}, "checks": [...],
        "psi": {column: {"max", "mean", "by_dim"}}}], "freshness": [...], "quarantines":
        [...], "failed": n}``: a check's ``verdict`` is ``pass``, ``fail`` or ``not
        measurable`` (with a ``reason``); ``failed`` counts failed checks.
    """
    now = time.time() if now is None else float(now)
    sid = table.resolve_snapshot(snapshot, None)
    schema = table.schema_at(sid)
    meta = table.meta()
    rules = expectations_of(meta.properties, schema, meta.partition_by)
    files = table.catalog.files(table.name, sid, with_stats=schema.names)
    groups: dict[str, list[DataFile]] = {}
    for f in files:
        groups.setdefault(f.partition_key, []).append(f)
    order = partition_order(groups)
    created = {s.snapshot_id: s.created_at for s in table.snapshots()}
    since_date = _as_date(since) if since is not None else None
    since_text = None if since is None else since_date.isoformat() if since_date else str(since)
    vectors = [f for f in schema if f.kind in ("dense", "label")]
    parts: list[dict[str, Any]] = []
    history: list[int] = []
    for i, key in enumerate(order):
        fs = groups[key]
        values = json.loads(key)
        rows = sum(f.num_rows for f in fs)
        first = next(iter(values.values()), None)
        if since_text is None or str(first) >= since_text:
            cols = column_stats(fs, schema)
            missing: dict[str, float] = {}
            for feat in schema:
                missing.update(_missing_rates(cols[feat.name], feat.name, rows))
            checks = [judge(e, fs, schema, values, history)[1] for e in rules if e.rule != "freshness"]
            baseline = [f for k in order[max(0, i - psi_window):i] for f in groups[k]]
            shift = {feat.name: _psi_of(fs, baseline, feat.name, getattr(feat, "dim", 1)) for feat in vectors}
            visible_at = [created.get(f.visible_from) for f in fs]
            parts.append({"partition": values, "rows": rows, "files": len(fs),
                          "committed_at": max(visible_at) if None not in visible_at and visible_at else None,
                          "missing_rate": missing, "checks": checks, "psi": shift})
        history.append(rows)
    fresh = [_freshness(e, parts, now, since_date) for e in rules if e.rule == "freshness"]
    failed = sum(c["verdict"] == "fail" for p in parts for c in p["checks"]) + sum(
        f["verdict"] == "fail" for f in fresh)
    return {"table": table.name, "snapshot_id": sid,
            "as_of": _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="seconds"),
            "psi_window": psi_window, "expectations": [e.to_dict() for e in rules], "partitions": parts,
            "freshness": fresh, "quarantines": [q.to_dict() for q in table.quarantines()], "failed": failed}


def plot_missing_heatmap(report: Mapping[str, Any], path: str) -> str:
    """Write a heat map of the missing rate by (column, partition) of ``report`` (from
    :func:`quality_report`) to the PNG file ``path``; returns ``path``.

    Raises:
        MissingDependency: matplotlib is not installed (``pip install 'samplestore[plot]'``).
    """
    mpl = require_extra("matplotlib", "samplestore quality --plot", extra="plot")
    mpl.use("Agg")  # a file, never a window
    plt = require_extra("matplotlib.pyplot", "samplestore quality --plot", extra="plot")
    parts = report["partitions"]
    columns = list(parts[0]["missing_rate"]) if parts else []
    grid = np.array([[p["missing_rate"].get(c, np.nan) for p in parts] for c in columns], dtype=float).reshape(
        len(columns), len(parts))
    labels = [",".join(str(v) for v in p["partition"].values()) or "(all)" for p in parts]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.6 * len(parts)), max(3.0, 0.8 + 0.22 * len(columns))))
    try:
        im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0.0, vmax=max(0.05, float(np.nanmax(grid)) if grid.size else 1.0))
        ax.set_xticks(range(len(parts)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(columns)), columns, fontsize=7)
        ax.set_xlabel("partition")
        ax.set_title(f"missing rate by column and partition: {report['table']} (snapshot {report['snapshot_id']})",
                     fontsize=9)
        fig.colorbar(im, ax=ax, label="missing rate")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
