"""The committed golden files pin each .ssf format version: every later version reads them."""

import hashlib
import os

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


def golden(version: int) -> str:
    return os.path.join(os.path.dirname(__file__), "..", "golden", f"v{version}.ssf")

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
