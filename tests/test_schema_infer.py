"""Schema.infer: Arrow types -> feature kinds, and integer id columns taken by sparse features."""

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss


def _kinds(schema: ss.Schema) -> dict:
    return {f.name: f for f in schema}


def test_each_arrow_type_maps_to_its_feature_kind():
    arrow = pa.schema([
        ("user", pa.int64()),
        ("genres", pa.list_(pa.int64())),
        ("tags32", pa.large_list(pa.int32())),
        ("emb", pa.list_(pa.float32(), 8)),
        ("tags", pa.struct([("ids", pa.list_(pa.int64())), ("weights", pa.list_(pa.float32()))])),
        ("clicks", pa.struct([("ids", pa.list_(pa.int64())), ("ts", pa.list_(pa.int64()))])),
        ("liked", pa.bool_()),
        ("price", pa.float64()),
        ("age", pa.int8()),
        ("count", pa.uint32()),
        ("score", pa.float32()),
        ("flag", pa.bool_()),
        ("ds", pa.string()),
        ("city", pa.dictionary(pa.int32(), pa.string())),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("day", pa.date32()),
    ])
    s = ss.Schema.infer(arrow, labels=["liked"], dense=["price"])
    assert s.names == arrow.names  # one feature per column, in column order
    f = _kinds(s)
    assert f["user"] == ss.Scalar("user", "int64")
    assert f["genres"] == ss.Sparse("genres") and f["tags32"] == ss.Sparse("tags32")
    assert f["emb"] == ss.Dense("emb", dim=8)
    assert f["tags"] == ss.Sparse("tags", weighted=True)
    assert f["clicks"] == ss.Sequence("clicks", timestamps=True)
    assert f["liked"] == ss.Label("liked")
    assert f["price"] == ss.Dense("price", dim=1)
    assert f["age"] == ss.Scalar("age", "int32") and f["count"] == ss.Scalar("count", "int64")
    assert f["score"] == ss.Scalar("score", "float32")
    assert f["flag"] == ss.Scalar("flag", "bool")
    assert f["ds"] == ss.Scalar("ds", "string") and f["city"] == ss.Scalar("city", "string")
    assert f["ts"] == ss.Scalar("ts", "timestamp") and f["day"] == ss.Scalar("day", "timestamp")


def test_ids_make_integer_columns_sparse_and_a_table_schema_infers_back():
    arrow = pa.schema([("user", pa.int64()), ("movie", pa.int32()), ("rating", pa.float32())])
    s = ss.Schema.infer(arrow, labels="rating", ids=["user", "movie"])  # one name may be a string
    assert list(s) == [ss.Sparse("user"), ss.Sparse("movie"), ss.Label("rating")]
    # A table (or a scan's result) infers back to the schema it was read with.
    full = ss.Schema([ss.Dense("d", dim=3), ss.Sparse("c"), ss.Sparse("w", weighted=True),
                      ss.Sequence("h", timestamps=True), ss.Label("y"), ss.Scalar("ds", "string")])
    assert ss.Schema.infer(full.to_arrow(), labels=["y"]) == full
    table = full.conform({"d": np.zeros((2, 3), np.float32), "c": [[1], []],
                          "w": pa.array([{"ids": [1], "weights": [0.5]}] * 2, full["w"].arrow_type()),
                          "h": pa.array([{"ids": [1], "ts": [7]}] * 2, full["h"].arrow_type()),
                          "y": [1.0, 0.0], "ds": ["a", "b"]})
    assert ss.Schema.infer(table, labels=["y"]) == full


def test_a_sparse_feature_takes_one_integer_id_per_row():
    s = ss.Schema([ss.Sparse("user"), ss.Sparse("item")])
    out = s.conform({"user": pa.array([7, None, 9], pa.int32()),
                     "item": pa.chunked_array([pa.array([1, 2], pa.uint16()), pa.array([3], pa.uint16())])})
    assert out.schema == s.to_arrow()
    assert out.column("user").to_pylist() == [[7], [], [9]]  # a null id is a missing id: []
    assert out.column("item").to_pylist() == [[1], [2], [3]]
    sliced = s.conform({"user": pa.array([1, 2, 3, 4]).slice(1, 2), "item": pa.array([5, 6])})
    assert sliced.column("user").to_pylist() == [[2], [3]]


def test_uint64_ids_are_taken_while_they_fit_in_int64():
    s = ss.Schema([ss.Sparse("user")])
    assert s.conform({"user": pa.array([1, 2**63 - 1], pa.uint64())}).column("user").to_pylist() == [[1], [2**63 - 1]]
    with pytest.raises(ss.SchemaError) as e:
        s.conform({"user": pa.array([1, 2**64 - 1], pa.uint64())})
    assert "'user'" in str(e.value) and "ids that fit in int64" in str(e.value)


def test_a_weighted_sparse_feature_still_refuses_a_plain_integer_column():
    with pytest.raises(ss.SchemaError) as e:
        ss.Schema([ss.Sparse("tags", weighted=True)]).conform({"tags": pa.array([1, 2])})
    assert "'tags'" in str(e.value) and "struct<ids" in str(e.value)


@pytest.mark.parametrize("column, type_, words", [
    ("hist_w", pa.list_(pa.float32()), ["fixed_size_list<float32>[dim]", "weights"]),
    ("blob", pa.binary(), ["binary", "cast it"]),
    ("price", pa.decimal128(10, 2), ["decimal128(10, 2)", "cast it"]),
    ("empty", pa.null(), ["every value is null", "cast the column"]),
    ("pos", pa.struct([("x", pa.float32())]), ["struct<x: float>", "flatten"]),
    ("attrs", pa.map_(pa.string(), pa.int64()), ["map<string, int64>", "cast it"]),
])
def test_an_unsupported_type_names_the_column_its_type_and_what_to_do(column, type_, words):
    with pytest.raises(ss.SchemaError) as e:
        ss.Schema.infer(pa.schema([("ok", pa.int64()), (column, type_)]))
    msg = str(e.value)
    assert f"column {column!r}" in msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize("kw, words", [
    ({"ids": ["name"]}, ["'name'", "string", "ids=", "int64 ids"]),
    ({"labels": ["name"]}, ["'name'", "string", "labels=", "float32"]),
    ({"dense": ["genres"]}, ["'genres'", "list<item: int64>", "dense="]),
    ({"ids": ["nope"]}, ["'nope'", "not a column", "['name', 'genres', 'y']"]),
    ({"ids": ["y"], "labels": ["y"]}, ["'y'", "labels=", "ids="]),
])
def test_named_columns_of_the_wrong_type_or_missing_are_refused(kw, words):
    arrow = pa.schema([("name", pa.string()), ("genres", pa.list_(pa.int64())), ("y", pa.int64())])
    with pytest.raises(ss.SchemaError) as e:
        ss.Schema.infer(arrow, **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_infer_refuses_what_is_not_an_arrow_schema():
    with pytest.raises(ss.SchemaError, match="pyarrow.Schema"):
        ss.Schema.infer({"user": "int64"})
