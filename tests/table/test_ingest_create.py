"""`samplestore ingest --create` on Parquet and CSV/TSV, and ingest's one-line errors."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import samplestore as ss
from samplestore.cli.main import main
from samplestore.table.ingest import guess_format, ingest, infer_schema


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def ratings(n: int, first_user: int = 0) -> pa.Table:
    return pa.table({
        "user": pa.array(range(first_user, first_user + n), pa.int64()),
        "movie": pa.array([i % 7 for i in range(n)], pa.int32()),
        "liked": pa.array([i % 2 == 0 for i in range(n)]),
        "genres": pa.array([[i % 3, 10 + i % 5] for i in range(n)], pa.list_(pa.int64())),
        "price": pa.array([i / 4 for i in range(n)], pa.float64()),
        "ds": pa.array([f"2026-11-0{1 + i % 2}" for i in range(n)]),
    })


def kinds(root, table: str) -> dict:
    return {f.name: f for f in ss.open_store(root).table(table).schema}


def test_create_from_parquet_infers_the_schema_and_ingests_every_file_in_one_commit(tmp_path, capsys):
    pq.write_table(ratings(30), tmp_path / "a.parquet")
    pq.write_table(ratings(20, first_user=100), tmp_path / "b.parquet")
    root = tmp_path / "store"  # no store yet: --create makes it too
    code, out, err = run(capsys, "ingest", root, "r", tmp_path / "a.parquet", tmp_path / "b.parquet", "--create",
                         "--label", "liked", "--ids", "user,movie", "--dense", "price", "--partition-by", "ds",
                         "--quiet")
    assert code == 0, err
    assert "ingested 50 rows" in out
    f = kinds(root, "r")
    assert list(f.values()) == [ss.Sparse("user"), ss.Sparse("movie"), ss.Label("liked"), ss.Sparse("genres"),
                                ss.Dense("price"), ss.Scalar("ds", "string")]
    t = ss.open_store(root).table("r")
    assert t.partition_by == ("ds",)
    assert [s.operation for s in t.snapshots()] == ["append"]  # both files, one commit
    got = t.to_arrow().sort_by([("price", "ascending")])
    assert sorted(u[0] for u in got.column("user").to_pylist()) == list(range(30)) + list(range(100, 120))
    assert all(len(u) == 1 for u in got.column("movie").to_pylist())
    assert got.column("liked").type == pa.float32()


@pytest.mark.parametrize("fmt, sep", [("csv", ","), ("tsv", "\t")])
def test_create_from_csv_and_tsv(tmp_path, capsys, fmt, sep):
    path = tmp_path / f"ratings.{fmt}"
    rows = ["user,movie,liked,price,city".replace(",", sep)]
    rows += [sep.join([str(i), str(i % 4), str(i % 2), f"{i / 2}", f"c{i % 3}"]) for i in range(12)]
    path.write_text("\n".join(rows) + "\n")
    root = tmp_path / "store"
    code, out, err = run(capsys, "ingest", root, "r", path, "--create", "--label", "liked", "--ids", "user,movie",
                         "--dense", "price", "--partition-by", "city", "--quiet")
    assert code == 0, err
    assert "ingested 12 rows" in out
    f = kinds(root, "r")
    assert list(f.values()) == [ss.Sparse("user"), ss.Sparse("movie"), ss.Label("liked"), ss.Dense("price"),
                                ss.Scalar("city", "string")]
    got = ss.open_store(root).table("r").to_arrow().sort_by([("price", "ascending")])
    assert got.column("user").to_pylist() == [[i] for i in range(12)]
    assert got.column("liked").to_pylist() == [float(i % 2) for i in range(12)]


def test_a_file_of_unknown_format_is_a_one_line_error_naming_format(tmp_path, capsys):
    data = tmp_path / "ratings.dat"
    data.write_text("user,movie\n1,2\n")
    root = tmp_path / "store"
    ss.open_store(root, create=True).create_table("r", ss.Schema([ss.Sparse("user"), ss.Sparse("movie")]))
    for table, extra in (("r", []), ("new", ["--create"])):
        code, _, err = run(capsys, "ingest", root, table, data, "--quiet", *extra)
        line = one_line_error(err)
        assert code == 2 and "could not recognise the format" in line and "'" + str(data) + "'" in line
        assert "--format parquet|csv|tsv|criteo" in line
    assert ss.open_store(root).tables() == ["r"]
    assert ss.open_store(root).table("r").current_snapshot_id == 0
    # A Parquet file is recognised by its bytes whatever its name; a named format is obeyed.
    pq.write_table(ratings(5), tmp_path / "export-0001")
    assert guess_format(str(tmp_path / "export-0001")) == "parquet"
    code, out, err = run(capsys, "ingest", root, "p", tmp_path / "export-0001", "--create", "--quiet")
    assert code == 0 and "ingested 5 rows" in out, err
    code, out, err = run(capsys, "ingest", root, "c", data, "--format", "csv", "--create", "--quiet")
    assert code == 0 and "ingested 1 rows" in out, err


def test_a_misnamed_file_says_to_pass_format(tmp_path, capsys):
    bad = tmp_path / "ratings.parquet"
    bad.write_text("user,movie\n1,2\n")
    root = tmp_path / "store"
    ss.open_store(root, create=True).create_table("r", ss.Schema([ss.Sparse("user"), ss.Sparse("movie")]))
    for table, extra in (("r", []), ("new", ["--create"])):
        code, _, err = run(capsys, "ingest", root, table, bad, "--quiet", *extra)
        line = one_line_error(err)
        assert code == 2 and "does not read as a Parquet file" in line and "--format csv|tsv|criteo" in line
    assert ss.open_store(root).tables() == ["r"]
    # The Python API raises the same error, a SchemaError (a ValueError).
    with pytest.raises(ss.SchemaError, match="Parquet"):
        infer_schema(str(bad))


def test_ingest_into_a_missing_table_says_to_create_it(tmp_path, capsys):
    pq.write_table(ratings(3), tmp_path / "in.parquet")
    root = tmp_path / "store"
    run(capsys, "init", root)
    code, _, err = run(capsys, "ingest", root, "nope", tmp_path / "in.parquet", "--quiet")
    line = one_line_error(err)
    assert code == 2 and "'nope'" in line and "samplestore create" in line and "--create" in line


def test_table_options_without_create_are_refused(tmp_path, capsys):
    pq.write_table(ratings(3), tmp_path / "in.parquet")
    root = tmp_path / "store"
    run(capsys, "init", root)
    code, _, err = run(capsys, "ingest", root, "r", tmp_path / "in.parquet", "--ids", "user", "--quiet")
    line = one_line_error(err)
    assert code == 2 and "--ids" in line and "--create" in line
    assert ss.open_store(root).tables() == []


def test_a_failed_create_ingest_commits_nothing_and_leaves_no_table(tmp_path, capsys):
    pq.write_table(ratings(4), tmp_path / "a.parquet")
    pq.write_table(ratings(4).drop_columns(["genres"]), tmp_path / "b.parquet")
    root = tmp_path / "store"
    code, _, err = run(capsys, "ingest", root, "r", tmp_path / "a.parquet", tmp_path / "b.parquet", "--create",
                       "--ids", "user", "--quiet")
    line = one_line_error(err)
    assert code == 2 and "b.parquet" in line and "'genres'" in line
    assert ss.open_store(root).tables() == []
    assert not os.path.exists(root / "tables" / "r")
    # A rerun with a different description infers afresh.
    code, _, err = run(capsys, "ingest", root, "r", tmp_path / "a.parquet", "--create", "--label", "liked",
                       "--quiet")
    assert code == 0, err
    assert kinds(root, "r")["liked"] == ss.Label("liked") and kinds(root, "r")["user"] == ss.Scalar("user", "int64")


def test_bad_inference_options_are_one_line_errors(tmp_path, capsys):
    pq.write_table(ratings(3), tmp_path / "in.parquet")
    root = tmp_path / "store"
    code, _, err = run(capsys, "ingest", root, "r", tmp_path / "in.parquet", "--create", "--ids", "ds", "--quiet")
    line = one_line_error(err)
    assert code == 2 and "'ds'" in line and "string" in line and "ids=" in line
    code, _, err = run(capsys, "ingest", root, "r", tmp_path / "in.parquet", "--create", "--label", "click",
                       "--quiet")
    assert code == 2 and "'click'" in one_line_error(err) and "not a column" in err
    tsv = tmp_path / "day0.tsv"
    tsv.write_text("1\t" + "\t" * 38 + "\n")
    code, _, err = run(capsys, "ingest", root, "c", tsv, "--format", "criteo", "--create", "--label", "y",
                       "--quiet")
    assert code == 2 and "Criteo" in one_line_error(err)
    assert json.loads(run(capsys, "info", root, "--json")[1])["tables"] == []


def test_the_python_ingest_refuses_an_unknown_format(tmp_path):
    store = ss.open_store(tmp_path / "store", create=True)
    t = store.create_table("r", ss.Schema([ss.Sparse("user")]))
    data = tmp_path / "x.bin"
    data.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ss.SchemaError, match="could not recognise the format"):
        ingest(t, [str(data)])
    assert t.current_snapshot_id == 0
