"""The committed golden files pin each .ssf format version: every later version reads them."""

import hashlib
import os
import sys

import numpy as np
import pyarrow as pa
import pytest
from helpers import assert_same_data

import samplestore as ss
from samplestore.format import FileReader

# One committed file per major version, with the sha256 of its bytes.
GOLDEN_SHA256 = {
    1: "ce773cca277bb7d220fd1f9dd5ed8a99383cb161f500630440a8d279bcd699a5",
    2: "c4659628359e0faf6bff7f743df935a23c9481ce8152e3f057a7040b92a177e8",
}


#: Golden files of encodings added within a major version (a new encoding id changes only the
#: streams that use it): file name -> sha256 of its bytes.
ENCODING_GOLDEN_SHA256 = {
    "v2_cross_row.ssf": "9690425b4157c302029594a1888a90b60f2f9e64c31350c0bfda0e4f40357f91",
}


def golden(version: int | str) -> str:
    name = version if isinstance(version, str) else f"v{version}.ssf"
    return os.path.join(os.path.dirname(__file__), "..", "golden", name)

SCHEMA = ss.Schema([
    ss.Dense("dense", dim=3),
    ss.Sparse("ids"),
    ss.Sparse("tags", weighted=True),
    ss.Sequence("hist", timestamps=True),
    ss.Embedding("e16", dim=2, storage="float16"),
    ss.Embedding("ebf", dim=2, storage="bfloat16"),
    ss.Label("click"),
    ss.Scalar("user_id", "int64"),
    ss.Scalar("ts", "timestamp"),
    ss.Scalar("ds", "string"),
    ss.Scalar("ok", "bool"),
    ss.Scalar("score", "float64"),
])


def expected_table() -> pa.Table:
    """200 rows built by plain arithmetic (no randomness, no writer involved)."""
    n = 200
    i = np.arange(n)
    lengths = i % 5
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = (np.arange(offsets[-1]) * 7919 % 1000).astype(np.int64)
    ids[:3] = [2**63 - 1, -(2**63), 0]
    lst = lambda v: pa.ListArray.from_arrays(pa.array(offsets), pa.array(v))  # noqa: E731
    dense = (i[:, None] * np.array([1.0, 0.5, -0.25])).astype(np.float32)
    dense[0, 0] = np.nan
    return SCHEMA.conform({
        "dense": dense,
        "ids": lst(ids),
        "tags": pa.StructArray.from_arrays([lst(ids), lst((ids % 10 / 4).astype(np.float32))], ["ids", "weights"]),
        "hist": pa.StructArray.from_arrays([lst(ids), lst(1_700_000_000_000_000 + np.arange(offsets[-1]) * 1000)],
                                           ["ids", "ts"]),
        "e16": (np.stack([i, -i], 1) / 8).astype(np.float32),
        "ebf": (np.stack([i, i], 1) * 2.0).astype(np.float32),
        "click": (i % 3 == 0).astype(np.float32),
        "user_id": pa.array([None if k % 11 == 0 else k * 1000 for k in range(n)], pa.int64()),
        "ts": pa.array(1_700_000_000_000_000 + i * 1_000_000, pa.timestamp("us")),
        "ds": pa.array([None if k % 13 == 0 else f"2026-11-{k % 3 + 1:02d}" for k in range(n)]),
        "ok": pa.array([None if k % 7 == 0 else k % 2 == 0 for k in range(n)]),
        "score": (i / 3.0).astype(np.float64),
    })


CROSS_ROW_SCHEMA = ss.Schema([ss.Sequence("hist", timestamps=True), ss.Sparse("ids"), ss.Label("click")])
CROSS_ROW_ROW_GROUP_ROWS = 50


def cross_row_table() -> pa.Table:
    """120 rows: 3 users x 40 samples, each history the last (at most) 30 items, one more per
    sample, oldest first, timestamps parallel; ``ids`` repeats one 12-id list per user, plus one id per sample. Ids
    are spread over 64 bits by a multiplicative hash (plain arithmetic, no randomness)."""
    spread = lambda k: ((k * 0x9E3779B97F4A7C15) % 2**64 - 2**63)  # noqa: E731
    hist, ids = [], []
    for u in range(3):
        items = [spread(u * 1000 + k) for k in range(60)]
        items[5] = 2**63 - 1
        for t in range(40):
            hist.append(items[max(0, t - 29): t + 1])
            ids.append([spread(7 * u + j + 5000) for j in range(11)] + [-(2**63), spread(9000 + 40 * u + t)])
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in hist])]).astype(np.int32)
    flat = np.array([x for h in hist for x in h], np.int64)
    ts = np.array([spread(int(x) % 100_003) // 2**20 for x in flat], np.int64)
    lst = lambda v: pa.ListArray.from_arrays(pa.array(offsets), pa.array(v, pa.int64()))  # noqa: E731
    return CROSS_ROW_SCHEMA.conform({
        "hist": pa.StructArray.from_arrays([lst(flat), lst(ts)], ["ids", "ts"]),
        "ids": pa.array(ids, pa.list_(pa.int64())),
        "click": (np.arange(120) % 4 == 0).astype(np.float32),
    })


#: name -> (schema, expected table, row group rows): what make_golden.py writes for each.
ENCODING_GOLDEN = {"v2_cross_row.ssf": (CROSS_ROW_SCHEMA, cross_row_table, CROSS_ROW_ROW_GROUP_ROWS)}


@pytest.mark.parametrize("name", sorted(ENCODING_GOLDEN_SHA256))
def test_encoding_golden_file_reads_exactly(name):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ssf_layout import parse

    from samplestore.format.spec import Encoding

    schema, table, rg_rows = ENCODING_GOLDEN[name]
    with open(golden(name), "rb") as f:
        blob = f.read()
    assert hashlib.sha256(blob).hexdigest() == ENCODING_GOLDEN_SHA256[name], "a committed golden file changed"
    with FileReader(golden(name)) as r:
        assert r.format_version == 2 and r.schema == schema
        assert r.num_row_groups == -(-table().num_rows // rg_rows)
        assert_same_data(r.read(), table())
    # It pins what it claims to: every list stream of every row group is cross-row coded.
    lay = parse(blob)
    used = {(ch.name, ch.row_group, i): sm.encoding for ch in lay.chunks for i, sm in enumerate(ch.streams)
            if ch.name != "click" and i > 0}
    assert len(used) == 3 * lay.num_row_groups and set(used.values()) == {Encoding.CROSS_ROW}


@pytest.mark.parametrize("version", sorted(GOLDEN_SHA256))
def test_golden_reads_exactly(version):
    with FileReader(golden(version)) as r:
        assert r.format_version == version
        assert r.num_rows == 200 and r.num_row_groups == 4
        assert r.metadata["user"] == {"golden": f"v{version}"}
        assert r.schema == SCHEMA
        got = r.read()
        assert r.verify() == 4 * len(SCHEMA)
    assert_same_data(got, expected_table())


@pytest.mark.parametrize("version", sorted(GOLDEN_SHA256))
def test_golden_bytes_are_pinned(version):
    # If this fails a committed file was changed: a format version is immutable once released.
    with open(golden(version), "rb") as f:
        blob = f.read()
    assert hashlib.sha256(blob).hexdigest() == GOLDEN_SHA256[version]
    assert blob[:4] == b"SSF1" and blob[-4:] == b"SSF1"
    assert int.from_bytes(blob[4:6], "little") == version


def test_every_version_has_a_golden_file():
    # Bumping the writer's major version without committing its golden file fails here.
    assert max(GOLDEN_SHA256) == ss.format.VERSION_MAJOR
    assert sorted(GOLDEN_SHA256) == list(range(1, ss.format.VERSION_MAJOR + 1))
