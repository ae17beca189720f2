"""The extension points are registries: a kind or an encoding defined here, in the test, is
written, read and batched with no edit to the reader, the writer or the window code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.format import FileReader, read_file, write_file
from samplestore.format.codecs import (
    DecodeError, Encoded, StreamEncoding, StreamHead, register_encoding, registered_encodings, unregister_encoding,
)
from samplestore.format.columns import default_column, to_arrow
from samplestore.format.encodings import Hint
from samplestore.format.kinds import ColumnData, ChunkStats, KindCodec, StreamSpec, register_kind, unregister_kind
from samplestore.format.spec import DType
from samplestore.schema import Feature, register_feature_kind, unregister_feature_kind

TOY_ID = 200


class XorBytes(StreamEncoding):
    """Toy encoding: every byte XOR 0x5A (reversible, and never chosen by the policy)."""

    id = TOY_ID
    name = "toy_xor"

    def encode(self, values, **params):
        return Encoded(self.id, np.bitwise_xor(values.view(np.uint8), 0x5A), 0, 0)

    def encoded_size(self, head: StreamHead, np_dtype):
        return head.count * np_dtype.itemsize

    def decode(self, head, raw, np_dtype):
        return np.bitwise_xor(np.frombuffer(raw, np.uint8), 0x5A).view(np_dtype)


@dataclass(frozen=True, slots=True)
class Count(Feature):
    """Toy kind: one non-negative int64 count per row, default 0."""

    kind: ClassVar[str] = "toy_count"

    def arrow_type(self):
        return pa.int64()

    def conform(self, arr):
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if arr.null_count or not pa.types.is_integer(arr.type):
            raise self._fail("non-null integers", str(arr.type))
        return arr.cast(pa.int64())

    def default_array(self, n):
        return pa.array(np.zeros(n, np.int64))


class CountCodec(KindCodec):
    """Toy kind codec: one int64 stream, pinned to the toy encoding."""

    def streams(self, feat):
        return (StreamSpec("counts", DType.INT64, Hint.INT, encoding=TOY_ID),)

    def encode(self, feat, arr):
        v = arr.to_numpy()
        return [v], ChunkStats(0, len(v), int(v.min()) if len(v) else None, int(v.max()) if len(v) else None)

    def decode(self, feat, streams, n):
        return ColumnData(streams.values("counts", n))

    def to_arrow(self, feat, col, n):
        return pa.array(col.values, pa.int64())


@pytest.fixture
def toy_kind():
    register_encoding(XorBytes())
    register_feature_kind(Count)
    register_kind("toy_count", CountCodec())
    try:
        yield
    finally:
        unregister_kind("toy_count")
        unregister_feature_kind("toy_count")
        unregister_encoding(TOY_ID)


def test_a_kind_and_an_encoding_registered_in_a_test_round_trip_a_file(tmp_path, toy_kind):
    schema = ss.Schema([Count("n"), ss.Label("y")])
    data = pa.table({"n": pa.array(np.arange(1000) * 7, pa.int64()), "y": pa.array(np.ones(1000, np.float32))})
    path = tmp_path / "toy.ssf"
    write_file(path, data, schema, row_group_rows=256)
    back = read_file(path)
    assert back.equals(schema.conform(data))
    with FileReader(path) as r:
        assert r.schema == schema
        assert r.minmax("n", 0) == (0, 255 * 7)
        assert r.verify() == 2 * r.num_row_groups
    # The stream really went through the toy encoding: without it the file does not read,
    # and the error names the file, the row group, the column and the encoding id.
    unregister_encoding(TOY_ID)
    try:
        with pytest.raises(ss.CorruptFileError, match=f"unknown encoding id {TOY_ID}") as e:
            read_file(path)
        assert (e.value.path, e.value.row_group, e.value.column) == (str(path), 0, "n")
    finally:
        register_encoding(XorBytes())


def test_a_registered_kind_is_batched_through_a_registered_assembler(tmp_path, toy_kind):
    pytest.importorskip("torch")
    from samplestore.torch.kinds import Assembler, register_assembler, unregister_assembler
    from samplestore.torch.window import FeatureLayout, ReaderCache, gather, load_window

    class CountAssembler(Assembler):
        slot = "extras"

        def add_piece(self, feat, col, cd, n_rg, lo, hi, rowmap):
            v = cd.values[lo:hi]
            col.pieces.append(v if rowmap is None else v[rowmap])

        def finish(self, feat, col):
            col.flat = np.concatenate(col.pieces) if col.pieces else np.empty(0, np.int64)

    old = tmp_path / "old.ssf"  # written before the feature existed: reads its default
    write_file(old, pa.table({"y": pa.array(np.zeros(3, np.float32))}), ss.Schema([ss.Label("y")]))
    new = tmp_path / "new.ssf"
    schema = ss.Schema([ss.Label("y"), Count("n")])
    write_file(new, pa.table({"y": pa.array(np.ones(4, np.float32)), "n": pa.array([5, 6, 7, 8], pa.int64())}), schema)
    register_assembler("toy_count", CountAssembler())
    readers = ReaderCache()
    try:
        layout = FeatureLayout.of(list(schema))
        assert layout.extras == (Count("n"),)
        win = load_window(np.array([[0, 0, 3], [1, 0, 4]], np.int64), [str(old), str(new)], np.array([0, 1]),
                          np.array([0, 0]), layout, readers)
        batch = gather(win, np.arange(7), layout)
    finally:
        readers.close()
        unregister_assembler("toy_count")
    assert batch["extras"]["n"].tolist() == [0, 0, 0, 5, 6, 7, 8]
    assert batch["labels"][:, 0].tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_a_kind_without_an_assembler_is_refused_by_name(toy_kind):
    pytest.importorskip("torch")
    from samplestore.torch.window import FeatureLayout

    with pytest.raises(TypeError, match="toy_count.*no batch assembler"):
        FeatureLayout.of([Count("n")])


def test_unregistered_kinds_and_encodings_are_gone(tmp_path):
    assert TOY_ID not in registered_encodings()
    with pytest.raises(ss.SchemaError, match="unknown kind 'toy_count'"):
        ss.Schema.from_dict({"features": [{"kind": "toy_count", "name": "n"}]})
    with pytest.raises(ValueError, match="already registered"):
        register_encoding(type("Clash", (XorBytes,), {"id": 0, "name": "clash"})())


@pytest.mark.parametrize("feat", [
    ss.Dense("d", dim=3), ss.Label("l"), ss.Embedding("e", dim=2, storage="bfloat16"),
    ss.Embedding("h", dim=2, storage="float16"), ss.Sparse("s"), ss.Sparse("w", weighted=True), ss.Sequence("q"),
    ss.Sequence("t", timestamps=True), ss.Scalar("i", "int32"), ss.Scalar("f", "float32"), ss.Scalar("b", "bool"),
    ss.Scalar("x", "string"), ss.Scalar("ts", "timestamp"),
])
def test_the_training_default_is_the_schema_default(feat):
    # One definition of a kind's default (Feature.default_array): the decoded buffers the
    # training path fills a missing feature with read back as exactly that.
    n = 5
    got, want = to_arrow(feat, default_column(feat, n), n), feat.default_array(n)
    assert got.type == want.type and got.null_count == want.null_count
    np.testing.assert_equal(got.to_pylist(), want.to_pylist())  # NaN labels compare equal here
