"""Property tests: any valid batch of every feature kind round-trips exactly through a file."""

import numpy as np
import pyarrow as pa
import pytest
from helpers import assert_same_data, check_roundtrip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import samplestore as ss
from samplestore.format import FileReader, FileWriter, write_file

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Floats are drawn as bit patterns: every value of the width is reachable, and unlike
# st.floats(width=...) nothing is drawn and then rejected, which would trip Hypothesis's
# filtering health check on batches of many floats.
SPECIAL = st.sampled_from([0.0, -0.0, 1.0, float("inf"), float("-inf"), float("nan")])


def _f32(bits: int) -> float:
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def _f16(bits: int) -> float:
    # Values exactly representable in float16 storage, so the round trip is exact.
    x = float(np.array([bits], np.uint16).view(np.float16)[0])
    return 0.0 if np.isnan(x) else x


def _bf16(bits: int) -> float:
    x = float(np.array([bits << 16], np.uint32).view(np.float32)[0])
    return 0.0 if np.isnan(x) else x


F32 = SPECIAL | st.integers(0, 2**32 - 1).map(_f32)
F16 = st.integers(0, 0xFFFF).map(_f16)
BF16 = st.integers(0, 0xFFFF).map(_bf16)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SCHEMA = ss.Schema([
    ss.Dense("d1"),
    ss.Dense("d3", dim=3),
    ss.Sparse("ids"),
    ss.Sparse("tags", weighted=True),
    ss.Sequence("hist"),
    ss.Sequence("events", timestamps=True),
    ss.Embedding("e32", dim=2),
    ss.Embedding("e16", dim=2, storage="float16"),
    ss.Embedding("ebf", dim=2, storage="bfloat16"),
    ss.Label("y"),
    ss.Scalar("i64", "int64"),
    ss.Scalar("i32", "int32"),
    ss.Scalar("f64", "float64"),
    ss.Scalar("f32", "float32"),
    ss.Scalar("flag", "bool"),
    ss.Scalar("s", "string"),
    ss.Scalar("ts", "timestamp"),
])


# Three groups, each drawn on its own: one batch of all 17 columns can need more random bytes
# than Hypothesis gives an example, and overrun examples count against its health check.
JAGGED = ["ids", "tags", "hist", "events"]
VECTORS = ["d1", "d3", "e32", "e16", "ebf", "y"]
SCALARS = [n for n in SCHEMA.names if n not in JAGGED + VECTORS]


@st.composite
def batches(draw, columns):
    """A batch of ``columns`` of SCHEMA; kept small so Hypothesis never runs out of entropy."""
    n = draw(st.integers(0, 12))
    lists = lambda elem, max_len=4: draw(st.lists(st.lists(elem, max_size=max_len), min_size=n, max_size=n))  # noqa: E731
    vec = lambda elem, dim: draw(st.lists(st.lists(elem, min_size=dim, max_size=dim), min_size=n, max_size=n))  # noqa: E731
    col = lambda elem: draw(st.lists(elem, min_size=n, max_size=n))  # noqa: E731

    def pairs(second):
        ids = lists(I64)
        return [{"ids": r, "x": [draw(second) for _ in r]} for r in ids]

    makers = {
        "d1": lambda: pa.array(col(F32), pa.float32()),
        "d3": lambda: pa.array(vec(F32, 3), pa.list_(pa.float32(), 3)),
        "ids": lambda: pa.array(lists(I64), pa.list_(pa.int64())),
        "tags": lambda: pa.array([{"ids": r["ids"], "weights": r["x"]} for r in pairs(F32)],
                                 pa.struct([("ids", pa.list_(pa.int64())), ("weights", pa.list_(pa.float32()))])),
        "hist": lambda: pa.array(lists(I64, 10), pa.list_(pa.int64())),
        "events": lambda: pa.array([{"ids": r["ids"], "ts": r["x"]} for r in pairs(I64)],
                                   pa.struct([("ids", pa.list_(pa.int64())), ("ts", pa.list_(pa.int64()))])),
        "e32": lambda: pa.array(vec(F32, 2), pa.list_(pa.float32(), 2)),
        "e16": lambda: pa.array(vec(F16, 2), pa.list_(pa.float32(), 2)),
        "ebf": lambda: pa.array(vec(BF16, 2), pa.list_(pa.float32(), 2)),
        "y": lambda: pa.array(col(F32), pa.float32()),
        "i64": lambda: pa.array(col(st.none() | I64), pa.int64()),
        "i32": lambda: pa.array(col(st.none() | st.integers(-(2**31), 2**31 - 1)), pa.int32()),
        "f64": lambda: pa.array(col(st.none() | st.floats(allow_nan=True)), pa.float64()),
        "f32": lambda: pa.array(col(st.none() | F32), pa.float32()),
        "flag": lambda: pa.array(col(st.none() | st.booleans()), pa.bool_()),
        "s": lambda: pa.array(col(st.none() | st.text(max_size=8)), pa.string()),
        "ts": lambda: pa.array(col(st.none() | st.integers(-(2**62), 2**62)), pa.timestamp("us")),
    }
    return pa.table({c: makers[c]() for c in columns})


@SETTINGS
@given(table=batches(JAGGED), rg=st.integers(1, 9), codec=st.sampled_from(["zstd", "none"]))
def test_jagged_kinds_roundtrip_exactly(tmp_path, table, rg, codec):
    check_roundtrip(tmp_path, SCHEMA.select(JAGGED), table, row_group_rows=rg, compression=codec)


@SETTINGS
@given(table=batches(VECTORS), rg=st.integers(1, 9), codec=st.sampled_from(["zstd", "none"]))
def test_vector_kinds_roundtrip_exactly(tmp_path, table, rg, codec):
    check_roundtrip(tmp_path, SCHEMA.select(VECTORS), table, row_group_rows=rg, compression=codec)


@SETTINGS
@given(table=batches(SCALARS), rg=st.integers(1, 9), codec=st.sampled_from(["zstd", "none"]))
def test_scalar_kinds_roundtrip_exactly(tmp_path, table, rg, codec):
    check_roundtrip(tmp_path, SCHEMA.select(SCALARS), table, row_group_rows=rg, compression=codec)


@SETTINGS
@given(ids=st.lists(I64, min_size=0, max_size=400), rg=st.integers(1, 500))
def test_id_columns_roundtrip_through_every_encoding(tmp_path, ids, rg):
    # Repeating values in big chunks drives the dictionary, narrow and varint encoders.
    s = ss.Schema([ss.Sparse("c"), ss.Scalar("u", "int64")])
    rep = (ids * 5)[: max(len(ids) * 5, 1)] if ids else []
    lengths = np.full(len(rep), 1)
    check_roundtrip(tmp_path, s, {"c": (np.array(rep, np.int64), lengths), "u": pa.array(rep, pa.int64())},
                    row_group_rows=rg)


def test_extremes_and_special_floats(tmp_path):
    s = ss.Schema([ss.Sparse("c"), ss.Dense("d", dim=2), ss.Label("y"), ss.Scalar("t", "timestamp")])
    big = 2**63 - 1
    data = {
        "c": pa.array([[big, -(2**63), 0], [], [big] * 100], pa.list_(pa.int64())),
        "d": pa.array([[float("nan"), -0.0], [float("inf"), -float("inf")], [1e-45, 3.4e38]], pa.list_(pa.float32(), 2)),
        "y": pa.array([float("nan"), 1.0, 0.0], pa.float32()),
        "t": pa.array([0, 2**62, -(2**62)], pa.timestamp("us")),
    }
    got = check_roundtrip(tmp_path, s, data, row_group_rows=2)
    assert got.column("c").to_pylist()[0] == [big, -(2**63), 0]


def test_empty_batches_and_empty_file(tmp_path):
    s = ss.Schema([ss.Sparse("c"), ss.Label("y")])
    path = tmp_path / "empty.ssf"
    with FileWriter(path, s) as w:
        w.write({"c": pa.array([], pa.list_(pa.int64())), "y": pa.array([], pa.float32())})
    with FileReader(path) as r:
        assert r.num_rows == 0 and r.num_row_groups == 0
        t = r.read()
    assert t.num_rows == 0 and t.schema == s.to_arrow()


def test_many_small_writes_make_fixed_row_groups(tmp_path):
    s = ss.Schema([ss.Scalar("i", "int64", nullable=False)])
    path = tmp_path / "rg.ssf"
    with FileWriter(path, s, row_group_rows=100) as w:
        for k in range(37):
            w.write({"i": pa.array(np.arange(k * 7, k * 7 + 7))})
    with FileReader(path) as r:
        assert list(r.row_group_rows) == [100, 100, 59]
        assert r.read().column("i").to_pylist() == list(range(259))
        assert r.read(row_groups=[1]).column("i").to_pylist() == list(range(100, 200))
        assert r.minmax("i", 2) == (200, 258)


def test_column_subsets_and_raw_buffers(tmp_path):
    from samplestore import datagen
    s = datagen.criteo_schema(num_sparse=4)
    t = s.conform(datagen.criteo_like(3000, num_sparse=4))
    path = tmp_path / "c.ssf"
    write_file(path, t, s, row_group_rows=1000)
    sub = ss.format.read_file(path, columns=["c3", "click"])
    assert_same_data(sub, t.select(["c3", "click"]))
    with FileReader(path) as r:
        raw = r.read_raw(1, ["c2", "dense"])
    c2 = t.column("c2").combine_chunks().slice(1000, 1000)
    off = c2.offsets.to_numpy()
    assert np.array_equal(raw["c2"].offsets, off - off[0])
    assert np.array_equal(raw["c2"].values, c2.values.to_numpy()[off[0]:off[-1]])
    assert raw["dense"].values.shape == (1000 * 13,)
    with pytest.raises(ss.SchemaError, match="no column 'nope'"):
        ss.format.read_file(path, columns=["nope"])


def test_embedding_storage_is_smaller_and_rounds(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((2000, 16)).astype(np.float32)
    sizes = {}
    for storage in ("float32", "float16", "bfloat16"):
        s = ss.Schema([ss.Embedding("e", dim=16, storage=storage)])
        info = write_file(tmp_path / f"{storage}.ssf", {"e": vecs}, s, compression="none")
        sizes[storage] = info.columns["e"].stored_bytes
        back = ss.format.read_file(tmp_path / f"{storage}.ssf").column("e").combine_chunks().flatten().to_numpy()
        tol = {"float32": 0, "float16": 1e-3, "bfloat16": 8e-3}[storage]
        np.testing.assert_allclose(back, vecs.reshape(-1), rtol=tol, atol=tol * 4)
    assert sizes["float16"] < 0.55 * sizes["float32"] and sizes["bfloat16"] < 0.55 * sizes["float32"]


@pytest.mark.parametrize("dim", [1, 5])
def test_dense_storage_is_smaller_and_reads_exactly_the_rounded_values(tmp_path, dim):
    from samplestore.format.kinds.vector import bf16_to_f32, f32_to_bf16

    rng = np.random.default_rng(dim)
    x = rng.standard_normal((3000, dim)).astype(np.float32)
    x[0, 0] = np.nan
    expected = {"float32": x, "float16": x.astype(np.float16).astype(np.float32),
                "bfloat16": bf16_to_f32(f32_to_bf16(x.reshape(-1))).reshape(x.shape)}
    sizes = {}
    for storage, want in expected.items():
        s = ss.Schema([ss.Dense("d", dim=dim, storage=storage), ss.Label("y")])
        info = write_file(tmp_path / f"{storage}.ssf", {"d": x if dim > 1 else x[:, 0], "y": x[:, 0]}, s,
                          compression="none")
        sizes[storage] = info.columns["d"].stored_bytes
        with ss.format.FileReader(tmp_path / f"{storage}.ssf") as r:
            assert r.schema == s  # the descriptor keeps the storage
            col = r.read().column("d").combine_chunks()
        back = (col.flatten() if dim > 1 else col).to_numpy(zero_copy_only=False).reshape(x.shape)
        np.testing.assert_array_equal(back.view(np.uint32), want.view(np.uint32))  # bit for bit, NaN included
        assert info.columns["d"].missing == 1
    assert sizes["float16"] <= 0.5 * sizes["float32"] + 64 and sizes["bfloat16"] <= 0.5 * sizes["float32"] + 64


def test_dense_storage_in_the_schema():
    assert ss.Dense("d", dim=2).to_dict() == {"kind": "dense", "name": "d", "dim": 2}  # as before storage existed
    d = ss.Dense("d", dim=2, storage="bfloat16")
    assert ss.Schema.from_json(ss.Schema([d]).to_json()).features == (d,)
    with pytest.raises(ss.SchemaError, match="storage must be one of"):
        ss.Dense("d", storage="int8")


def test_one_reader_gives_each_column_selection_its_own_schema(tmp_path):
    # The reader keeps the Arrow schema of each selection it was asked for (scans ask for
    # the same one at every row group): every selection, in any order, gets its own, also
    # after more selections than it keeps.
    names = ["a", "b", "c", "d", "e"]
    schema = ss.Schema([ss.Scalar(n, "int64") for n in names])
    data = pa.table({n: pa.array(np.arange(3) + 10 * k, pa.int64()) for k, n in enumerate(names)})
    write_file(tmp_path / "f.ssf", data, schema, row_group_rows=2)
    pairs = [[x, y] for x in names for y in names if x != y]  # 20 ordered selections
    with FileReader(tmp_path / "f.ssf") as r:
        for cols in [None, *pairs, *pairs[::-1], ["e"], None]:
            for rg in range(r.num_row_groups):
                got = pa.Table.from_batches([r.read_row_group(rg, cols)])
                assert got.equals(data.slice(2 * rg, 2).select(cols or names)), (cols, rg)
