"""Data-quality expectations: rules a table's data must meet, checked at commit from the
statistics the writer computes anyway (no second pass over the data).

A table's expectations are a list of rules stored in its catalog properties (key
``expectations``), each a JSON object ``{"rule": ..., "column": ..., bounds..., "action": ...}``
(see docs/QUALITY.md for every rule and field):

- ``missing_rate`` (``max``): the share of missing values of a column (NaN slots of a dense
  feature or label, empty lists, nulls); ``"dense[3]"`` names one slot of a dense feature;
- ``range`` (``min``/``max``): the values of a numeric scalar, label or dense column;
- ``list_length_p99`` (``min``/``max``): the 99th percentile of a list feature's lengths;
- ``label_rate`` (``min``/``max``): the mean of a label;
- ``rows`` (``min``/``max`` per partition, and/or ``max_change``: the largest relative change
  from the median rows of the previous ``window`` partitions);
- ``freshness`` (``deadline_hours``): partition ``column=D`` (a date) committed by ``D +
  deadline_hours``; checked by the report (:mod:`samplestore.table.quality`), not at commit.

``action`` says what a commit that breaks the rule does: ``warn`` (commit, log, record the
warning in the snapshot summary), ``reject`` (raise :class:`DataQualityError`, commit
nothing) or ``quarantine`` (commit the partition's files held back, see
``Table.quarantines``). ``missing_rate``, ``range`` and ``list_length_p99`` measure the files
a commit adds, per partition; ``rows`` and ``label_rate`` the partition so far (its visible
files and the commit's). A streaming commit is a part of its partition, so there ``rows``
checks only the upper bounds (``max``, and ``max_change`` upwards): whether a partition is
too small is known when it is complete, and the report says it.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..catalog.base import DataFile
from ..errors import DataQualityError
from ..schema import Schema
from .stats import column_stats

__all__ = ["Expectation", "Violation", "CommitVerdict", "parse_expectations", "expectations_of", "check_commit",
           "measure", "judge", "rows_change", "partition_order", "EXPECTATIONS_PROPERTY", "RULES", "ACTIONS"]

log = logging.getLogger("samplestore.quality")

#: The table property holding the expectations (a JSON list of rule objects).
EXPECTATIONS_PROPERTY = "expectations"
#: Each rule and the bound fields it takes.
RULES: Mapping[str, tuple[str, ...]] = {
    "missing_rate": ("max",),
    "range": ("min", "max"),
    "list_length_p99": ("min", "max"),
    "label_rate": ("min", "max"),
    "rows": ("min", "max", "max_change", "window"),
    "freshness": ("deadline_hours",),
}
ACTIONS = ("warn", "reject", "quarantine")
#: Rules measured on the partition so far rather than on the files of one commit.
_PARTITION_RULES = ("rows", "label_rate")
_SLOT = re.compile(r"([^\[\]]+)\[(\d+)\]")
_LIST_KINDS = ("sparse", "sequence")


@dataclass(frozen=True, slots=True)
class Expectation:
    """One validated rule (see the module docstring); ``index`` is its place in the list."""

    index: int
    rule: str
    column: str | None
    bounds: Mapping[str, float]
    action: str
    feature: str | None = None  # the feature a column like "dense[3]" belongs to
    slot: int | None = None  # its slot

    def to_dict(self) -> dict[str, Any]:
        """The rule's JSON form, as stored."""
        out: dict[str, Any] = {"rule": self.rule}
        if self.column is not None:
            out["column"] = self.column
        return {**out, **self.bounds, "action": self.action}

    @property
    def label(self) -> str:
        """How messages name the rule: ``missing_rate of dense[3]``."""
        return f"{self.rule} of {self.column}" if self.column else self.rule


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule a partition broke: what was measured against which bound."""

    expectation: Expectation
    partition: Mapping[str, Any]
    measured: float
    bound: Mapping[str, float]
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a quarantine and a snapshot summary record."""
        e = self.expectation
        return {"rule_index": e.index, "rule": e.rule, "column": e.column, "partition": dict(self.partition),
                "measured": self.measured, "bound": dict(self.bound), "action": e.action, "message": self.message}


@dataclass(slots=True)
class CommitVerdict:
    """What the expectations say about one commit: the violations to quarantine (by
    partition key) and the warnings. Rejections are raised, not returned."""

    quarantine: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# -- parsing ---------------------------------------------------------------------------------
def _bad(index: int, field_name: str, why: str) -> DataQualityError:
    return DataQualityError(f"expectation {index}, field {field_name!r}: {why}; nothing was stored")


def _number(index: int, name: str, v: Any, *, integer: bool = False, low: float | None = None,
            high: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise _bad(index, name, f"expected a finite number, found {v!r}")
    if integer and float(v) != int(v):
        raise _bad(index, name, f"expected a whole number, found {v!r}")
    if (low is not None and v < low) or (high is not None and v > high):
        span = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise _bad(index, name, f"expected a number {span}, found {v!r}")
    return int(v) if integer else float(v)


def _column(index: int, rule: str, raw: Any, schema: Schema, partition_by: Sequence[str]) -> tuple[str, str, int | None]:
    if not isinstance(raw, str) or not raw:
        raise _bad(index, "column", f"rule {rule!r} needs a column name, found {raw!r}")
    m = _SLOT.fullmatch(raw)
    name, slot = (m.group(1), int(m.group(2))) if m else (raw, None)
    if name not in schema:
        raise _bad(index, "column", f"no column {name!r} in the table; columns: {schema.names}")
    feat = schema.field(name)
    if slot is not None:
        if feat.kind != "dense":
            raise _bad(index, "column", f"{raw!r} names a slot, but {name!r} is a {feat.kind} feature, not dense")
        if slot >= feat.dim:
            raise _bad(index, "column", f"slot {slot} is out of range: {name!r} has dim {feat.dim} (slots 0..{feat.dim - 1})")
        if rule != "missing_rate":
            raise _bad(index, "column", f"rule {rule!r} takes a whole column; a slot ({raw!r}) only missing_rate "
                                        f"(the writer keeps per-slot statistics of missing values only)")
    kinds = {"label_rate": ("label",), "list_length_p99": _LIST_KINDS, "range": ("scalar", "dense", "label")}
    if rule in kinds and feat.kind not in kinds[rule]:
        raise _bad(index, "column", f"rule {rule!r} applies to {' or '.join(kinds[rule])} features; {name!r} is "
                                    f"{feat.kind}")
    if rule == "range" and feat.kind == "scalar" and getattr(feat, "dtype", "") == "string":
        raise _bad(index, "column", f"rule 'range' needs numbers; {name!r} holds strings")
    if rule == "freshness" and name not in partition_by:
        raise _bad(index, "column", f"freshness is about partitions: {name!r} is not a partition column "
                                    f"(the table is partitioned by {list(partition_by)})")
    # "dense[03]" is stored as reported: "dense[3]".
    return (raw if slot is None else f"{name}[{slot}]"), name, slot


def _parse_one(index: int, raw: Any, schema: Schema, partition_by: Sequence[str]) -> Expectation:
    if not isinstance(raw, Mapping):
        raise DataQualityError(f"expectation {index}: expected a JSON object {{\"rule\": ..., ...}}, found "
                               f"{raw!r}; nothing was stored")
    rule = raw.get("rule")
    if rule not in RULES:
        raise _bad(index, "rule", f"expected one of {sorted(RULES)}, found {rule!r}")
    allowed = {"rule", "column", "action", *RULES[rule]}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise _bad(index, extra[0], f"rule {rule!r} takes only {sorted(allowed)}")
    action = raw.get("action", "warn")
    if action not in ACTIONS:
        raise _bad(index, "action", f"expected one of {list(ACTIONS)}, found {action!r}")
    column = feature = slot = None
    if rule == "freshness":
        if not partition_by:
            raise _bad(index, "rule", "freshness needs a partitioned table (partition_by=[\"ds\"]); this one is not")
        column, feature, slot = _column(index, rule, raw.get("column", partition_by[0]), schema, partition_by)
    elif rule != "rows":
        column, feature, slot = _column(index, rule, raw.get("column"), schema, partition_by)
    elif "column" in raw:
        raise _bad(index, "column", "rule 'rows' counts a partition's rows and takes no column")
    bounds: dict[str, float] = {}
    for name in RULES[rule]:
        if name in raw:
            unit = (0.0, 1.0) if rule == "missing_rate" else (0.0, None) if rule in ("list_length_p99", "rows") else (None, None)
            if name == "window":
                bounds[name] = _number(index, name, raw[name], integer=True, low=1)
            elif name in ("max_change", "deadline_hours"):
                bounds[name] = _number(index, name, raw[name], low=0)
            else:
                bounds[name] = _number(index, name, raw[name], integer=rule == "rows", low=unit[0], high=unit[1])
    if not any(k in bounds for k in RULES[rule] if k != "window"):
        raise _bad(index, RULES[rule][0], f"rule {rule!r} needs at least one bound of {[k for k in RULES[rule] if k != 'window']}")
    if "window" in bounds and "max_change" not in bounds:
        raise _bad(index, "window", "a window applies to max_change; give max_change too")
    if rule == "rows" and "max_change" in bounds:
        bounds.setdefault("window", 7)
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise _bad(index, "min", f"min {bounds['min']:g} is above max {bounds['max']:g}")
    return Expectation(index, rule, column, bounds, action, feature, slot)


def parse_expectations(rules: Any, schema: Schema, partition_by: Sequence[str]) -> list[Expectation]:
    """Validate a list of rules (JSON objects) against a table's schema and partitioning.

    Raises:
        DataQualityError: a rule is not valid (the message names its index and field).
    """
    if isinstance(rules, Mapping) and "expectations" in rules:
        rules = rules["expectations"]
    elif isinstance(rules, Mapping) and "rule" in rules:
        rules = [rules]  # one rule: a list of one
    elif isinstance(rules, Mapping):
        raise DataQualityError(f"expectations must be a list of rule objects, found one object without a 'rule' "
                               f"({sorted(rules)[:5]}); give [{{\"rule\": ..., ...}}, ...] (a single rule may be "
                               f"one object; else wrap it in [ ]); nothing was stored")
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise DataQualityError(f"expectations must be a list of rule objects, found {type(rules).__name__}; "
                               f"nothing was stored")
    return [_parse_one(i, r, schema, partition_by) for i, r in enumerate(rules)]


def expectations_of(properties: Mapping[str, Any], schema: Schema, partition_by: Sequence[str]) -> list[Expectation]:
    """The expectations a table's properties hold (none if it set none)."""
    return parse_expectations(properties.get(EXPECTATIONS_PROPERTY) or [], schema, partition_by)


# -- measuring -------------------------------------------------------------------------------
def measure(e: Expectation, files: Sequence[DataFile], schema: Schema,
            history: Sequence[int] = ()) -> tuple[float | None, str]:
    """What rule ``e`` measures on ``files`` (read with the statistics of its column), and
    "" or, when it cannot be measured, None and why (files written before the writer kept
    the statistic it needs, or no rows). ``history`` is the rows of the previous partitions,
    oldest first (for ``rows`` with ``max_change``). ``rows`` measures the rows; its change
    is :func:`rows_change`."""
    if e.rule == "rows":
        return float(sum(f.num_rows for f in files)), ""
    if e.rule == "freshness":
        return None, "freshness is checked by the report"
    if not files:
        return None, "no rows"
    col = column_stats(list(files), schema.select([e.feature]))[e.feature]
    rows = sum(f.num_rows for f in files)
    if e.rule == "missing_rate":
        if e.slot is not None and "missing_by_dim" in col:
            return col["missing_by_dim"][e.slot] / rows if rows else None, "" if rows else "no rows"
        return col["missing_fraction"], ""
    if e.rule == "range":
        if col["min"] is None:
            return None, "no values"
        lo, hi = e.bounds.get("min"), e.bounds.get("max")
        # The value that breaks the rule, if one does: the one to name.
        if lo is not None and col["min"] < lo:
            return float(col["min"]), ""
        if hi is not None and col["max"] > hi:
            return float(col["max"]), ""
        return float(col["max"] if hi is not None else col["min"]), ""
    if e.rule == "list_length_p99":
        if "list_length" not in col:
            return None, "no list lengths recorded"
        return float(col["list_length"]["p99"]), ""
    if e.rule == "label_rate":
        mean = col.get("mean_by_dim")
        if not mean:
            return None, "files written before samplestore recorded a vector's sum_by_dim"
        if mean[0] is None:
            return None, "every label value is missing"
        return float(mean[0]), ""
    raise AssertionError(e.rule)  # parse_expectations admits no other rule


def rows_change(rows: float, history: Sequence[int], window: int) -> float | None:
    """The relative change of ``rows`` from the median of the last ``window`` entries of
    ``history`` (None without history, or a median of 0)."""
    past = list(history)[-window:]
    if not past:
        return None
    med = statistics.median(past)
    return (rows - med) / med if med else None


def _partition_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(unpartitioned)"


def judge(e: Expectation, files: Sequence[DataFile], schema: Schema, partition: Mapping[str, Any],
          history: Sequence[int] = (), partial: bool = False) -> tuple[list[Violation], dict[str, Any]]:
    """Check rule ``e`` on a partition's ``files``: (violations, the measurement as JSON).

    ``partial``: the files are part of a partition still being written (a streaming commit),
    so ``rows`` checks only its upper bounds.
    """
    where = f"partition {_partition_text(partition)}"
    value, why = measure(e, files, schema, history)
    out: list[Violation] = []
    record: dict[str, Any] = {"rule_index": e.index, "rule": e.rule, "column": e.column, "action": e.action,
                              "bound": dict(e.bounds), "measured": value}
    if value is None:
        record.update(verdict="not measurable", reason=why)
        return out, record

    def broke(measured: float, bound: dict[str, float], relation: str) -> None:
        shown = f"{int(value):,}" if e.rule == "rows" else f"{value:.4g}"
        text = ", ".join(f"{k}={v:g}" for k, v in bound.items())
        msg = f"{where}: {e.label} is {shown}, {relation} the bound {text} (expectation {e.index}, action {e.action})"
        out.append(Violation(e, dict(partition), measured, bound, msg))

    lo, hi = e.bounds.get("min"), e.bounds.get("max")
    if lo is not None and value < lo and not (partial and e.rule == "rows"):
        broke(value, {"min": lo}, "below")
    if hi is not None and value > hi:
        broke(value, {"max": hi}, "above")
    if e.rule == "rows" and "max_change" in e.bounds:
        window = int(e.bounds["window"])
        change = rows_change(value, history, window)
        record["change"] = change
        limit = e.bounds["max_change"]
        if change is not None and (change > limit or (change < -limit and not partial)):
            past = list(history)[-window:]
            broke(change, {"max_change": limit, "window": window},
                  f"{change:+.1%} from the median {statistics.median(past):,.0f} of the last {len(past)} partitions, "
                  f"beyond")
    record["verdict"] = "fail" if out else "pass"
    return out, record


# -- at commit -------------------------------------------------------------------------------
def _by_partition(files: Iterable[DataFile]) -> dict[str, list[DataFile]]:
    groups: dict[str, list[DataFile]] = {}
    for f in files:
        groups.setdefault(f.partition_key, []).append(f)
    return groups


def partition_order(keys: Iterable[str]) -> list[str]:
    """Partition keys in the order of their values (ISO dates sort as dates)."""
    return sorted(keys, key=lambda k: [str(v) for v in json.loads(k).values()])


def check_commit(table: Any, files: Sequence[DataFile], operation: str) -> CommitVerdict:
    """Check a commit's files against the table's expectations (see the module docstring).

    Returns what to quarantine and the warnings; a table without expectations costs one
    read of its definition.

    Raises:
        DataQualityError: a ``reject`` rule was broken; the message names every such
            violation (partition, column, measured value, bound). Nothing is committed.
    """
    meta = table.meta()
    rules = [e for e in expectations_of(meta.properties, meta.schema, meta.partition_by) if e.rule != "freshness"]
    verdict = CommitVerdict()
    if not rules or not files:
        return verdict
    partial = operation == "stream-append"
    new = _by_partition(files)
    so_far: dict[str, list[DataFile]] = {}
    history: dict[str, list[int]] = {}
    if any(e.rule in _PARTITION_RULES for e in rules):
        # Statistics only of the partitions this commit writes; the rows of earlier
        # partitions (file records, no statistics) only when a max_change rule needs them.
        cols = sorted({e.feature for e in rules if e.rule in _PARTITION_RULES and e.feature})
        mine = [json.loads(k) for k in new]
        sid = meta.current_snapshot
        visible = _by_partition(table.catalog.files(table.name, sid, with_stats=cols or None, partitions=mine))
        rows_of: dict[str, int] = {}
        if any(e.rule == "rows" and "max_change" in e.bounds for e in rules):
            everything = _by_partition(table.catalog.files(table.name, sid))
            rows_of = {k: sum(f.num_rows for f in fs) for k, fs in everything.items()}
        order = partition_order(set(rows_of) | set(new))
        for key in new:
            so_far[key] = visible.get(key, []) + new[key]
            history[key] = [rows_of[k] for k in order[:order.index(key)] if k in rows_of]
    rejected: list[Violation] = []
    for key, fs in new.items():
        partition = json.loads(key)
        for e in rules:
            scope = so_far[key] if e.rule in _PARTITION_RULES else fs
            broken, _ = judge(e, scope, meta.schema, partition, history.get(key, ()), partial)
            for v in broken:
                if e.action == "reject":
                    rejected.append(v)
                elif e.action == "quarantine":
                    verdict.quarantine.setdefault(key, []).append(v.to_dict())
                else:
                    log.warning("table %r: %s", table.name, v.message)
                    verdict.warnings.append(v.message)
    if rejected:
        more = f" (and {len(rejected) - 1} more: {'; '.join(v.message for v in rejected[1:3])})" if len(rejected) > 1 else ""
        raise DataQualityError(f"{operation} to table {table.name!r} rejected, nothing was committed: "
                               f"{rejected[0].message}{more}")
    return verdict
