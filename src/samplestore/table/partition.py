"""Partitioning: split rows by the values of partition columns, and name partition folders."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError
from ..schema import Scalar, Schema

__all__ = ["check_partition_columns", "split_by_partition", "partition_path", "partition_expression", "to_json_value"]


def check_partition_columns(schema: Schema, partition_by: Sequence[str]) -> None:
    """Partition columns must be scalar features of the schema (not floats)."""
    for name in partition_by:
        f = schema.field(name)
        if not isinstance(f, Scalar) or f.dtype in ("float32", "float64"):
            raise SchemaError(
                f"partition column {name!r} must be a scalar int, bool, string or timestamp feature; found {f!r}"
            )


def to_json_value(v: Any) -> Any:
    """A partition value as stored in the catalog (timestamps as integer microseconds)."""
    if isinstance(v, _dt.datetime):
        epoch = _dt.datetime(1970, 1, 1, tzinfo=v.tzinfo)
        return (v - epoch) // _dt.timedelta(microseconds=1)
    if isinstance(v, np.generic):
        return v.item()
    return v


def split_by_partition(table: pa.Table, partition_by: Sequence[str]) -> Iterator[tuple[dict[str, Any], pa.Table]]:
    """Yield ``(partition values, rows)`` for each distinct combination, rows in input order."""
    if not partition_by or table.num_rows == 0:
        yield {}, table
        return
    codes = []
    dicts = []
    for name in partition_by:
        enc = table.column(name).combine_chunks().dictionary_encode(null_encoding="encode")
        codes.append(enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        dicts.append(enc.dictionary)
    if all(len(d) == 1 for d in dicts):
        yield {n: to_json_value(d[0].as_py()) for n, d in zip(partition_by, dicts)}, table
        return
    key = np.zeros(table.num_rows, dtype=np.int64)
    for c, d in zip(codes, dicts):
        key = key * len(d) + c
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    bounds = np.flatnonzero(np.diff(sorted_key)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    for s, e in zip(starts, ends):
        idx = order[s:e]
        first = int(idx[0])
        values = {n: to_json_value(d[int(c[first])].as_py()) for n, d, c in zip(partition_by, dicts, codes)}
        yield values, table.take(pa.array(idx))


def partition_path(values: Mapping[str, Any]) -> str:
    """Hive-style folder for a partition: ``ds=2026-11-01/hour=3`` (values URL-quoted)."""
    if not values:
        return ""
    return "/".join(f"{k}={'__null__' if v is None else quote(str(v), safe='')}" for k, v in values.items())


def partition_expression(schema: Schema, values: Mapping[str, Any]) -> pc.Expression | None:
    """An expression true for every row of a partition (a guarantee used for pruning)."""
    expr = None
    for k, v in values.items():
        t = schema.field(k).arrow_type()
        e = pc.field(k).is_null() if v is None else (pc.field(k) == pa.scalar(v, type=t))
        expr = e if expr is None else expr & e
    return expr
