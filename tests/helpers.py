"""Shared checks for the test suite (importable from any test module)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from samplestore.format import read_file, write_file
from samplestore.schema import Schema


#: Run a test once with each catalog backend (the ``catalog_backend`` fixture of conftest.py):
#: the embedded SQLite catalog and a PostgreSQL catalog on the session's private server.
BOTH_CATALOGS = pytest.mark.parametrize("catalog_backend", ["sqlite", "postgres"], indirect=True)


def leaves(arr: pa.Array) -> list[np.ndarray]:
    """Flatten an Arrow array into comparable numpy arrays (floats by bit pattern, so NaN == NaN)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    out = [np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))]
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        off = arr.offsets.to_numpy()
        out.append(off - off[0])
        out += leaves(arr.values.slice(int(off[0]), int(off[-1] - off[0])))
    elif pa.types.is_fixed_size_list(t):
        out += leaves(arr.flatten())
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            out += leaves(arr.field(i))
    elif pa.types.is_string(t):
        out.append(np.array(arr.to_pylist(), dtype=object))
    elif pa.types.is_floating(t):
        width = t.bit_width
        vals = arr.fill_null(0).to_numpy(zero_copy_only=False)
        out.append(vals.view(f"u{width // 8}"))
    else:
        out.append(np.asarray(arr.fill_null(0 if not pa.types.is_boolean(t) else False).to_numpy(zero_copy_only=False)))
    return out


def assert_same_data(a: pa.Table, b: pa.Table) -> None:
    """Tables hold identical data: same columns, types, rows, values (NaN bit-exact)."""
    assert a.column_names == b.column_names, (a.column_names, b.column_names)
    assert a.num_rows == b.num_rows, (a.num_rows, b.num_rows)
    for name in a.column_names:
        ca, cb = a.column(name), b.column(name)
        assert ca.type == cb.type, (name, ca.type, cb.type)
        la, lb = leaves(ca), leaves(cb)
        assert len(la) == len(lb), name
        for x, y in zip(la, lb):
            assert x.shape == y.shape and np.array_equal(x, y), f"column {name!r} differs"


def check_roundtrip(tmp_path: Any, schema: Schema, data: Any, **options: Any) -> pa.Table:
    """Write ``data`` to a file, read it back, and assert it is identical; return what was read."""
    expected = schema.conform(data)
    path = os.path.join(str(tmp_path), "roundtrip.ssf")
    info = write_file(path, expected, schema, **options)
    assert info.num_rows == expected.num_rows
    got = read_file(path)
    assert got.schema == schema.to_arrow()
    assert_same_data(got, expected)
    return got


def purge(table: Any) -> dict:
    """What the compaction daemon does every pass: compact, expire to one snapshot, collect
    garbage at once. Returns GC's report."""
    table.compact()
    table.expire_snapshots(retain_last=1)
    return table.gc(grace_seconds=0)


def purge_after_next_listing(monkeypatch: Any, table: Any) -> list:
    """Run :func:`purge` right after the next time the catalog lists a snapshot's files (as
    the daemon might, between a reader's planning and its reading). Returns a list that then
    holds GC's report."""
    catalog_type = type(table.store.catalog)
    real_files = catalog_type.files
    fired: list = []

    def files_then_purge(self: Any, name: str, snapshot_id: int, **kw: Any) -> Any:
        out = real_files(self, name, snapshot_id, **kw)
        if not fired:
            fired.append("running")  # the purge lists files too
            fired[0] = purge(table)
        return out

    monkeypatch.setattr(catalog_type, "files", files_then_purge)
    return fired
