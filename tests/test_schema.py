import json

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.schema import feature_from_dict


def full_schema() -> ss.Schema:
    return ss.Schema([
        ss.Dense("dense", dim=13),
        ss.Dense("one"),
        ss.Sparse("c0"),
        ss.Sparse("tags", weighted=True),
        ss.Sequence("history"),
        ss.Sequence("clicks", timestamps=True),
        ss.Embedding("user_emb", dim=4, storage="float16"),
        ss.Label("click"),
        ss.Scalar("user_id", "int64"),
        ss.Scalar("ts", "timestamp"),
        ss.Scalar("ds", "string"),
    ])


def test_json_roundtrip_and_arrow_form():
    s = full_schema()
    again = ss.Schema.from_json(s.to_json())
    assert again == s
    assert json.loads(s.to_json())["features"][0] == {"kind": "dense", "name": "dense", "dim": 13}
    a = s.to_arrow()
    assert a.field("dense").type == pa.list_(pa.float32(), 13)
    assert a.field("one").type == pa.float32()
    assert a.field("c0").type == pa.list_(pa.int64())
    assert a.field("tags").type == pa.struct([("ids", pa.list_(pa.int64())), ("weights", pa.list_(pa.float32()))])
    assert a.field("user_emb").type == pa.list_(pa.float32(), 4)
    assert a.field("click").type == pa.float32()
    assert a.field("ts").type == pa.timestamp("us")
    assert not a.field("c0").nullable and a.field("user_id").nullable


@pytest.mark.parametrize("bad", [
    lambda: ss.Dense("x", dim=0),
    lambda: ss.Dense("bad/name"),
    lambda: ss.Dense(".."),
    lambda: ss.Embedding("e", dim=2, storage="int8"),
    lambda: ss.Scalar("s", "decimal"),
    lambda: ss.Schema([ss.Label("a"), ss.Label("a")]),
    lambda: feature_from_dict({"kind": "nope", "name": "x"}),
    lambda: ss.Schema.from_json("{not json"),
])
def test_bad_definitions_raise_schema_error(bad):
    with pytest.raises(ss.SchemaError):
        bad()


def test_schema_error_is_a_value_error():
    assert issubclass(ss.SchemaError, ValueError) and issubclass(ss.SchemaError, ss.SampleStoreError)


def _err(schema, data) -> str:
    with pytest.raises(ss.SchemaError) as e:
        schema.conform(data)
    return str(e.value)


def test_wrong_type_names_column_expected_and_found():
    s = ss.Schema([ss.Sparse("c0")])
    msg = _err(s, {"c0": pa.array(["a", "b"])})
    assert "'c0'" in msg and "list<int64>" in msg and "string" in msg


def test_dense_vector_of_wrong_length_names_row():
    s = ss.Schema([ss.Dense("d", dim=3)])
    msg = _err(s, {"d": pa.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0]])})
    assert "row 2" in msg and "length 2" in msg and "[3]" in msg


def test_null_where_forbidden_names_row():
    s = ss.Schema([ss.Label("y")])
    msg = _err(s, {"y": pa.array([1.0, None, 0.0])})
    assert "row 1" in msg and "null" in msg
    s = ss.Schema([ss.Sparse("c")])
    assert "row 2" in _err(s, {"c": pa.array([[1], [], None])})
    assert "null element" in _err(s, {"c": pa.array([[1], [2, None]])})


def test_negative_length_is_rejected():
    s = ss.Schema([ss.Sparse("c")])
    msg = _err(s, {"c": (np.array([1, 2]), np.array([2, -1, 1]))})
    assert "row 1" in msg and "-1" in msg
    assert "sum" in _err(s, {"c": (np.array([1, 2]), np.array([1, 0, 0]))})


def test_weighted_lengths_must_match():
    s = ss.Schema([ss.Sparse("t", weighted=True)])
    bad = pa.array([{"ids": [1, 2], "weights": [0.5, 1.0]}, {"ids": [1], "weights": []}])
    assert "row 1" in _err(s, {"t": bad})


def test_missing_and_extra_columns():
    s = ss.Schema([ss.Label("y"), ss.Dense("d")])
    assert "'d'" in _err(s, {"y": [1.0]})
    assert "unexpected" in _err(s, {"y": [1.0], "d": [1.0], "zzz": [1]})


def test_conform_casts_compatible_inputs():
    s = ss.Schema([ss.Dense("d", dim=2), ss.Sparse("c"), ss.Label("y"), ss.Scalar("u", "int64")])
    t = s.conform({
        "d": np.array([[1, 2], [3, 4]], dtype=np.float64),
        "c": pa.array([[1, 2], []], type=pa.list_(pa.int32())),
        "y": [True, False],
        "u": pa.array([1, 2], pa.int32()),
    })
    assert t.schema == s.to_arrow()
    assert t.column("d").to_pylist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.column("y").to_pylist() == [1.0, 0.0]


def test_conform_fills_defaults_when_allowed():
    s = ss.Schema([ss.Label("y"), ss.Sparse("c"), ss.Scalar("u")])
    t = s.conform({"y": [1.0, 0.0]}, allow_missing=True)
    assert t.column("c").to_pylist() == [[], []]
    assert t.column("u").to_pylist() == [None, None]


def test_pandas_input():
    pd = pytest.importorskip("pandas")
    s = ss.Schema([ss.Label("y"), ss.Scalar("u", "int64")])
    t = s.conform(pd.DataFrame({"y": [1.0, 0.0], "u": [3, 4]}))
    assert t.column("u").to_pylist() == [3, 4]


def test_schema_pickles_to_an_equal_schema():
    # Spawned DataLoader workers receive the dataset, and with it the schema, by pickle.
    import pickle

    s = ss.Schema([ss.Dense("d", dim=3), ss.Sparse("ids", weighted=True), ss.Scalar("ts", "timestamp")])
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.names == s.names
    with pytest.raises(AttributeError, match="immutable"):
        t.features = ()


@pytest.mark.parametrize("make, words", [
    (lambda: ss.Sparse("c0\n"), "feature name"),
    (lambda: ss.Label("y\r\n"), "feature name"),
    (lambda: ss.Dense("d", dim=2**31), "dim must be an integer from 1 to"),
    (lambda: ss.Dense("d", dim=ss.schema.MAX_DIM + 1), "dim must be an integer from 1 to"),
    (lambda: ss.Dense("d", dim=1e20), "dim must be an integer"),
    (lambda: ss.Dense("d", dim=3.0), "dim must be an integer"),
    (lambda: ss.Embedding("e", dim=True), "dim must be an integer"),
    (lambda: ss.Embedding("e", dim=2**40), "dim must be an integer from 1 to"),
    (lambda: ss.Scalar("s", "int64", nullable="false"), "nullable must be true or false"),
    (lambda: ss.Scalar("s", "int64", nullable=0), "nullable must be true or false"),
    (lambda: ss.Sparse("c", weighted="yes"), "weighted must be true or false"),
    (lambda: ss.Sequence("h", timestamps=1), "timestamps must be true or false"),
    (lambda: feature_from_dict({"kind": "dense", "name": "d", "dim": 1e20}), "dim must be an integer"),
    (lambda: feature_from_dict({"kind": "scalar", "name": "s", "dtype": "string", "nullable": "no"}), "nullable"),
    (lambda: ss.Schema.from_json('{"features": [{"kind": "label", "name": "y\\n"}]}'), "feature name"),
])
def test_out_of_range_and_ill_typed_definitions_are_refused(make, words):
    with pytest.raises(ss.SchemaError, match=words) as info:
        make()
    name = str(info.value)
    assert any(n in name for n in ("'c0\\n'", "'y\\r\\n'", "'y\\n'", "'d'", "'e'", "'s'", "'c'", "'h'"))


def test_largest_dim_is_accepted():
    assert ss.Dense("d", dim=ss.schema.MAX_DIM).arrow_type() == pa.list_(pa.float32(), ss.schema.MAX_DIM)
