"""The daily data-quality report of a table, from catalog statistics alone (no data read).

Per partition (what readers see): rows, each expectation's measured value and verdict, the
missing rate of every column (and of each slot of a dense feature) as a trend across
partitions, and the population stability index (PSI) of each dense feature (per slot) and
label against the previous ``psi_window`` partitions; then the freshness rules (every date
partition committed by its deadline). Partitions with files in open quarantines are listed
too, marked held (``state``: ``partly held`` or ``held``), and every open quarantine counts
as a failure: rows held back are rows training does not get. ``samplestore quality`` prints
it and exits 1 when anything failed.

PSI compares a partition's value histogram (:func:`~samplestore.format.kinds.vector.value_bins`,
the fixed bins the writer records per file: eight per doubling of ``1 + |x|``, so [0, 1) alone
has eight) with the histograms of the previous partitions summed: ``sum((p - q) * ln(p / q))``
over the bins, shares below 1e-4 raised to 1e-4 so an empty bin counts without dividing by
zero. Below 0.1 is usually read as stable, above 0.25 as a shift.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..catalog.base import DataFile, partition_key
from ..extras import require_extra
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
    """Per slot, the merged value histogram of column ``name`` in ``files``, in the writer's
    bins (eight per doubling: coarser bins would put all of [0, 1) in one and miss a shift
    inside it); None when a file lacks one (written before samplestore kept them)."""
    out: dict[int, dict[int, int]] = {}
    for f in files:
        s = f.stats.get(name)
        if s is None or "histogram" not in s.extra:
            return None
        for slot, b, count in s.extra["histogram"]:
            h = out.setdefault(int(slot), {})
            h[int(b)] = h.get(int(b), 0) + int(count)
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


def _open_at(quarantines: Sequence[Any], sid: int) -> list[Any]:
    """The quarantines open as of snapshot ``sid``: made at or before it, resolved after it
    (or not yet)."""
    return [q for q in quarantines
            if q.snapshot_id <= sid and (q.resolved_snapshot is None or q.resolved_snapshot > sid)]


def _first_visible(table: Any, sid: int, files: Sequence[DataFile]) -> dict[str, int]:
    """Per partition key, the snapshot (at or before ``sid``) in which the partition's rows
    first became visible: its earliest append or release. A compaction output (operation
    ``replace``) is not new data, so it does not count; the appends it replaced do while the
    catalog still records them (until GC forgets them; then the time is unknown)."""
    first: dict[str, int] = {}
    known = list(table.catalog.appended_files(table.name, 0)) + [f for f in files if f.added_by != "replace"]
    for f in known:
        v = f.visible_from
        if v is not None and v <= sid:
            key = f.partition_key
            first[key] = min(first.get(key, v), v)
    return first


def _at_or_after(value: Any, since: Any, since_date: _dt.date | None) -> bool:
    """Whether a partition value is at or after ``since``: as dates when both are dates
    (``20261101`` and ``2026-11-01`` alike), else as text."""
    d = _as_date(value) if since_date is not None else None
    if d is not None:
        return d >= since_date
    return str(value) >= str(since)


def quality_report(table: Any, *, since: Any = None, snapshot: int | str | None = None, now: float | None = None,
                   psi_window: int = DEFAULT_PSI_WINDOW) -> dict[str, Any]:
    """The quality report of a table snapshot (the current one by default), as JSON-ready data.

    The expectations are the table's current ones (a table keeps no history of its rules);
    the files, statistics and open quarantines are those of the snapshot.

    Args:
        since: only partitions whose first partition value is at or after this (a date or
            its ISO text; compared as dates when both are); freshness counts from it.
        now: the time (epoch seconds) freshness deadlines are checked at (default: now).
        psi_window: how many previous partitions a partition's PSI compares against.

    Returns:
        ``{"table", "snapshot_id", "as_of", "expectations", "partitions": [{"partition",
        "state", "rows", "files", "held", "committed_at", "missing_rate": {column: share},
        "checks": [...], "psi": {column: {"max", "mean", "by_dim"}}}], "freshness": [...],
        "quarantines": [...], "failures": {"checks", "freshness", "quarantines"}, "failed":
        n}``: a check's ``verdict`` is ``pass``, ``fail`` or ``not measurable`` (with a
        ``reason``); ``state`` is ``visible``, ``partly held`` or ``held`` (every file in
        open quarantines: ``rows`` 0, the missing rates those of the held files, no checks);
        ``held`` is ``{"rows", "files", "quarantine_ids"}`` of the held files, or None;
        ``committed_at`` is when the partition first became visible (None: unknown);
        ``failed`` counts failed checks and freshness rules and open quarantines.
    """
    now = time.time() if now is None else float(now)
    sid = table.resolve_snapshot(snapshot, None)
    schema = table.schema_at(sid)
    meta = table.meta()
    rules = expectations_of(meta.properties, schema, meta.partition_by)
    every = table.catalog.files(table.name, sid, with_stats=schema.names, include_quarantined=True)
    files = [f for f in every if f.visible_from is not None and f.visible_from <= sid]
    held_back = [f for f in every if f.visible_from is None or f.visible_from > sid]
    groups: dict[str, list[DataFile]] = {}
    for f in files:
        groups.setdefault(f.partition_key, []).append(f)
    held: dict[str, list[DataFile]] = {}
    for f in held_back:
        held.setdefault(f.partition_key, []).append(f)
    order = partition_order(set(groups) | set(held))
    created = {s.snapshot_id: s.created_at for s in table.snapshots()}
    first = _first_visible(table, sid, files)
    since_date = _as_date(since) if since is not None else None
    vectors = [f for f in schema if f.kind in ("dense", "label")]
    parts: list[dict[str, Any]] = []
    history: list[int] = []
    shown: set[str] = set()
    for key in order:
        fs = groups.get(key, [])
        values = json.loads(key)
        rows = sum(f.num_rows for f in fs)
        first_value = next(iter(values.values()), None)
        if since is None or _at_or_after(first_value, since, since_date):
            shown.add(key)
            hs = held.get(key, [])
            measured = fs or hs  # a partition held back whole: its held files say why
            cols = column_stats(measured, schema)
            missing: dict[str, float] = {}
            for feat in schema:
                missing.update(_missing_rates(cols[feat.name], feat.name, sum(f.num_rows for f in measured)))
            checks = [judge(e, fs, schema, values, history)[1] for e in rules if e.rule != "freshness"] if fs else []
            earlier = [k for k in order[:order.index(key)] if k in groups][-psi_window:]
            baseline = [f for k in earlier for f in groups[k]]
            shift = {feat.name: _psi_of(fs, baseline, feat.name, getattr(feat, "dim", 1)) for feat in vectors} if fs else {}
            parts.append({"partition": values, "state": "held" if not fs else "partly held" if hs else "visible",
                          "rows": rows, "files": len(fs),
                          "held": {"rows": sum(f.num_rows for f in hs), "files": len(hs),
                                   "quarantine_ids": sorted({f.quarantine_id for f in hs})} if hs else None,
                          "committed_at": created.get(first[key]) if fs and key in first else None,
                          "missing_rate": missing, "checks": checks, "psi": shift})
        if fs:
            history.append(rows)
    fresh = [_freshness(e, [p for p in parts if p["state"] != "held"], now, since_date)
             for e in rules if e.rule == "freshness"]
    quarantines = [q for q in _open_at(table.quarantines(resolved=True), sid) if partition_key(q.partition) in shown]
    failures = {"checks": sum(c["verdict"] == "fail" for p in parts for c in p["checks"]),
                "freshness": sum(f["verdict"] == "fail" for f in fresh), "quarantines": len(quarantines)}
    return {"table": table.name, "snapshot_id": sid,
            "as_of": _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="seconds"),
            "psi_window": psi_window, "expectations": [e.to_dict() for e in rules], "partitions": parts,
            "freshness": fresh, "quarantines": [q.to_dict() for q in quarantines], "failures": failures,
            "failed": sum(failures.values())}


def _heatmap_columns(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any] | None, str]]:
    """(label, partition entry or None for a gap, state) of each heat-map column: the
    report's partitions, with each date a freshness rule found missing (and not held back)
    put in its place among them as a gap."""
    cols = [(",".join(str(v) for v in p["partition"].values()) or "(all)", p, p.get("state", "visible"))
            for p in report["partitions"]]
    for f in report.get("freshness", ()):
        dates = {_as_date(p["partition"].get(f["column"])): p for p in report["partitions"]}
        for text in f.get("missing", ()):
            d = _dt.date.fromisoformat(text)
            if d in dates or None in dates:  # held back (shown hatched), or partitions that are not dates
                continue
            at = next((i for i, c in enumerate(cols) if c[1] is not None
                       and (_as_date(c[1]["partition"].get(f["column"])) or d) > d), len(cols))
            cols.insert(at, (f"{text} (missing)", None, "missing"))
    return cols


def plot_missing_heatmap(report: Mapping[str, Any], path: str) -> str | None:
    """Write a heat map of the missing rate by (column, partition) of ``report`` (from
    :func:`quality_report`) to the PNG file ``path``; returns ``path``, or None (nothing
    written) when the report has no partition.

    Partitions held back by open quarantines are hatched (their cells show the held files'
    missing rate); a date the freshness rule found missing is an empty grey column.

    Raises:
        MissingDependency: matplotlib is not installed (``pip install 'samplestore[plot]'``).
    """
    mpl = require_extra("matplotlib", "samplestore quality --plot", extra="plot")
    mpl.use("Agg")  # a file, never a window
    plt = require_extra("matplotlib.pyplot", "samplestore quality --plot", extra="plot")
    patches = require_extra("matplotlib.patches", "samplestore quality --plot", extra="plot")
    parts = report["partitions"]
    if not parts:
        return None
    cols = _heatmap_columns(report)
    columns = list(parts[0]["missing_rate"])
    grid = np.array([[p["missing_rate"].get(c, np.nan) if p is not None else np.nan for _, p, _ in cols]
                     for c in columns], dtype=float).reshape(len(columns), len(cols))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.6 * len(cols)), max(3.0, 1.2 + 0.22 * len(columns))))
    try:
        cmap = mpl.colormaps["magma_r"].with_extremes(bad="#d9d9d9")  # a missing day: no data at all
        top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0
        im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0.0, vmax=max(0.05, top))
        notes = []
        for x, (_, _, state) in enumerate(cols):
            if state in ("held", "partly held"):
                ax.add_patch(patches.Rectangle((x - 0.5, -0.5), 1, len(columns), fill=False, hatch="//",
                                                   edgecolor="#1f77b4", linewidth=2))
        if any(state in ("held", "partly held") for _, _, state in cols):
            notes.append("hatched: held in an open quarantine")
        if any(state == "missing" for _, _, state in cols):
            notes.append("grey: a missing day")
        ax.set_xticks(range(len(cols)), [label for label, _, _ in cols], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(columns)), columns, fontsize=7)
        ax.set_xlabel("partition" + ("\n" + "; ".join(notes) if notes else ""), fontsize=8)
        ax.set_title(f"missing rate by column and partition: {report['table']} (snapshot {report['snapshot_id']})",
                     fontsize=9)
        fig.colorbar(im, ax=ax, label="missing rate")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
