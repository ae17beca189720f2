"""Damaged files: every read returns exactly the original data or raises CorruptFileError."""

import os

import numpy as np
import pyarrow as pa
import pytest
from helpers import assert_same_data

import samplestore as ss
from samplestore import datagen
from samplestore.format import FileReader, FileWriter, TEMP_SUFFIX, write_file


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    schema = datagen.sessions_schema(num_sparse=3)
    table = datagen.sessions_like(1500, num_sparse=3, seed=3)
    path = tmp_path_factory.mktemp("orig") / "orig.ssf"
    write_file(path, table, schema, row_group_rows=400)
    return path, table, path.read_bytes()


def _read_all(path) -> pa.Table:
    with FileReader(path) as r:
        return r.read()


def _check(path, table):
    try:
        got = _read_all(path)
    except ss.CorruptFileError as exc:
        assert str(path) in str(exc)
        return "error"
    assert_same_data(got, table)
    return "same"


def test_random_truncations(original, tmp_path):
    path, table, blob = original
    rng = np.random.default_rng(1)
    cuts = set(rng.integers(0, len(blob), 120).tolist()) | {0, 1, 7, 8, len(blob) - 1, len(blob) - 24}
    bad = tmp_path / "cut.ssf"
    for cut in sorted(cuts):
        bad.write_bytes(blob[:cut])
        assert _check(bad, table) == "error", cut


def test_random_byte_flips(original, tmp_path):
    path, table, blob = original
    rng = np.random.default_rng(2)
    bad = tmp_path / "flip.ssf"
    outcomes = {"error": 0, "same": 0}
    for _ in range(300):
        data = bytearray(blob)
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(data))
        outcomes[_check(bad, table)] += 1
    # Nearly every byte is covered by a checksum; the few that are not (reserved fields,
    # the minor version) leave the data intact.
    assert outcomes["error"] > 250


def test_flips_name_row_group_and_column(original, tmp_path):
    path, table, blob = original
    with FileReader(path) as r:
        o = r._ordinal("history")
        entry = r._chunks[o * r.num_row_groups + 2]
    data = bytearray(blob)
    data[int(entry["offset"]) + int(entry["length"]) // 2] ^= 0x10
    bad = tmp_path / "chunk.ssf"
    bad.write_bytes(bytes(data))
    with FileReader(bad) as r:
        r.read(columns=["click"])  # other columns are unaffected
        with pytest.raises(ss.CorruptFileError) as e:
            r.read(columns=["history"])
    assert e.value.row_group == 2 and e.value.column == "history" and e.value.path == str(bad)
    assert "row group 2" in str(e.value) and "'history'" in str(e.value)
    assert isinstance(e.value, OSError)


def test_foreign_empty_and_newer_files(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    foreign = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), foreign)
    with pytest.raises(ss.CorruptFileError, match="not an .ssf file"):
        FileReader(foreign)
    empty = tmp_path / "empty.ssf"
    empty.write_bytes(b"")
    with pytest.raises(ss.CorruptFileError, match="shorter"):
        FileReader(empty)
    s = ss.Schema([ss.Label("y")])
    newer = tmp_path / "newer.ssf"
    write_file(newer, {"y": [1.0]}, s)
    data = bytearray(newer.read_bytes())
    data[4] = 9  # major version in the header
    newer.write_bytes(bytes(data))
    with pytest.raises(ss.FormatVersionError, match="version 9"):
        FileReader(newer)


def test_writer_is_crash_safe(tmp_path):
    s = ss.Schema([ss.Label("y")])
    dest = tmp_path / "out.ssf"
    w = FileWriter(dest, s, row_group_rows=10)
    w.write({"y": np.zeros(25, np.float32)})
    # Mid-write: nothing at the destination, only a recognisable temporary file.
    assert not dest.exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(TEMP_SUFFIX)]
    with pytest.raises(ss.SchemaError):
        w.write({"y": [None]})  # bad input is rejected, earlier rows stay buffered
    info = w.close()
    assert info.num_rows == 25 and dest.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(TEMP_SUFFIX)]
    # An exception inside the context manager leaves nothing behind.
    with pytest.raises(RuntimeError):
        with FileWriter(tmp_path / "never.ssf", s) as w2:
            w2.write({"y": [1.0]})
            raise RuntimeError("job died")
    assert sorted(os.listdir(tmp_path)) == ["out.ssf"]
