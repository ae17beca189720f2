"""pandas and polars in and out: table.append takes their DataFrames, scans give them back."""

import sys

import numpy as np
import pyarrow.compute as pc
import pytest

import samplestore as ss

pl = pytest.importorskip("polars")
pd = pytest.importorskip("pandas")

SCHEMA = ss.Schema([ss.Sparse("user"), ss.Sparse("genres"), ss.Dense("emb", dim=2), ss.Label("liked"),
                    ss.Scalar("ds", "string")])


def _table(tmp_path):
    store = ss.open_store(tmp_path / "store", create=True)
    return store.create_table("t", SCHEMA, partition_by=["ds"])


def test_append_takes_a_polars_dataframe(tmp_path):
    t = _table(tmp_path)
    df = pl.DataFrame({
        "user": [1, 2, 3],  # one id per row, as a recommendation log holds it
        "genres": [[4, 5], [], [6]],
        "emb": pl.Series([[0.5, 1.0], [0.0, 0.0], [2.0, 3.0]], dtype=pl.Array(pl.Float32, 2)),
        "liked": [True, False, True],
        "ds": ["d1", "d2", "d1"],
    })
    snap = t.append(df)
    assert snap is not None and snap.summary["added_rows"] == 3
    got = t.scan().to_arrow().sort_by("ds").to_pylist()
    assert [r["user"] for r in got] == [[1], [3], [2]]
    assert [r["genres"] for r in got] == [[4, 5], [6], []]
    assert [r["emb"] for r in got] == [[0.5, 1.0], [2.0, 3.0], [0.0, 0.0]]
    assert [r["liked"] for r in got] == [1.0, 1.0, 0.0]


def test_append_refuses_a_polars_lazyframe_saying_collect(tmp_path):
    t = _table(tmp_path)
    lazy = pl.DataFrame({"user": [1], "genres": [[1]], "emb": [[0.0, 0.0]], "liked": [1.0], "ds": ["d"]}).lazy()
    with pytest.raises(ss.SchemaError, match=r"LazyFrame.*collect\(\)"):
        t.append(lazy)
    assert t.current_snapshot_id == 0


def _filled(tmp_path):
    t = _table(tmp_path)
    t.append({"user": np.arange(4), "genres": [[1], [2, 3], [], [4]],
              "emb": np.arange(8, dtype=np.float32).reshape(4, 2), "liked": [1.0, 0.0, 1.0, 0.0],
              "ds": ["a", "a", "b", "b"]})
    return t


def test_scan_to_pandas_and_to_polars(tmp_path):
    t = _filled(tmp_path)
    filt = pc.field("ds") == "b"
    pdf = t.scan(columns=["user", "liked", "ds"], filter=filt).to_pandas()
    assert isinstance(pdf, pd.DataFrame) and list(pdf.columns) == ["user", "liked", "ds"]
    assert [list(u) for u in pdf["user"]] == [[2], [3]] and pdf["liked"].tolist() == [1.0, 0.0]
    pldf = t.scan().to_polars()
    assert isinstance(pldf, pl.DataFrame) and pldf.columns == SCHEMA.names
    assert pldf.schema["emb"] == pl.Array(pl.Float32, 2) and pldf.schema["genres"] == pl.List(pl.Int64)
    assert sorted(pldf["genres"].to_list()) == [[], [1], [2, 3], [4]]


@pytest.mark.parametrize("method, module, extra", [("to_pandas", "pandas", "pandas"), ("to_polars", "polars", "polars")])
def test_scan_without_the_library_raises_missing_dependency_naming_the_extra(tmp_path, monkeypatch, method, module, extra):
    t = _filled(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(ss.MissingDependency) as e:
        getattr(t.scan(), method)()
    assert f"samplestore[{extra}]" in str(e.value) and "to_arrow()" in str(e.value)
    assert isinstance(e.value, ImportError)
