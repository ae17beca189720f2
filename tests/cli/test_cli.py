"""The command line as a user runs it: exit codes, messages, --json output."""

import gc
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from samplestore import datagen
from samplestore.cli.main import main


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_criteo_ingest_of_many_lines_and_missing_value_stats(tmp_path, capsys):
    # 120,000 lines (~29 MiB): several of the ingest's 8 MiB read blocks (the full-size
    # ingest rate is `samplestore bench`'s to measure, not the suite's).
    tsv = tmp_path / "day0.tsv"
    missing = datagen.write_criteo_tsv(str(tsv), 120_000, seed=1, missing_rate=0.1)
    assert tsv.stat().st_size > 3 * (8 << 20)
    root = tmp_path / "store"
    code, out, err = run(capsys, "ingest", root, "criteo", tsv, "--format", "criteo", "--create")
    assert code == 0, err
    assert "ingested 120,000 rows" in out
    assert "100.0%" in err and "ingest criteo [" in err  # the progress bar
    code, out, _ = run(capsys, "stats", root, "criteo", "--json")
    st = json.loads(out)
    assert st["rows"] == 120_000
    by_slot = st["columns"]["dense"]["missing_by_dim"]
    assert by_slot == [missing[f"i{k}"] for k in range(1, 14)]
    for k in range(26):
        assert st["columns"][f"c{k}"]["missing"] == missing[f"c{k}"], k
    assert st["columns"]["click"]["missing"] == 0
    assert st["columns"]["c1"]["list_length"]["p99"] == 1


def test_store_commands_end_to_end(tmp_path, capsys):
    root = tmp_path / "store"
    assert run(capsys, "init", root)[0] == 0
    schema = datagen.sessions_schema(num_sparse=2)
    (tmp_path / "schema.json").write_text(schema.to_json())
    code, out, _ = run(capsys, "create", root, "s", "--schema", tmp_path / "schema.json", "--partition-by", "ds")
    assert code == 0 and "partitioned by ['ds']" in out
    pq.write_table(datagen.sessions_like(2000, num_sparse=2, days=2), tmp_path / "in.parquet")
    assert run(capsys, "ingest", root, "s", tmp_path / "in.parquet", "--quiet")[0] == 0
    info = json.loads(run(capsys, "info", root, "s", "--json")[1])
    assert info["rows"] == 2000 and info["partitions"] == 2 and info["current_snapshot"] == 1
    store_info = json.loads(run(capsys, "info", root, "--json")[1])
    assert store_info["tables"][0]["table"] == "s"
    head = json.loads(run(capsys, "head", root, "s", "-n", "3", "--columns", "user_id,history", "--json")[1])
    assert len(head) == 3 and set(head[0]) == {"user_id", "history"}
    snaps = json.loads(run(capsys, "snapshots", root, "s", "--json")[1])
    assert [s["operation"] for s in snaps] == ["append"]
    st = json.loads(run(capsys, "stats", root, "s", "--by-partition", "--json")[1])
    assert len(st["partitions"]) == 2 and st["columns"]["history"]["list_length"]["p99"] <= 50
    assert run(capsys, "export", root, "s", tmp_path / "out.parquet", "--quiet")[0] == 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 2000
    code, out, _ = run(capsys, "verify", root, "--json")
    assert code == 0 and json.loads(out)["ok"]


def test_bad_input_is_one_line_error_and_nothing_is_committed(tmp_path, capsys):
    root = tmp_path / "store"
    run(capsys, "init", root)
    (tmp_path / "schema.json").write_text(datagen.criteo_schema(num_sparse=2).to_json())
    run(capsys, "create", root, "t", "--schema", tmp_path / "schema.json")
    wrong = pa.table({"dense": pa.array([[1.0] * 13] * 3, pa.list_(pa.float32(), 13)),
                      "c0": pa.array([[1], [2], [3]]), "c1": pa.array(["x", "y", "z"]),
                      "click": pa.array([1.0, 0.0, 1.0], pa.float32())})
    pq.write_table(wrong, tmp_path / "bad.parquet")
    code, out, err = run(capsys, "ingest", root, "t", tmp_path / "bad.parquet", "--quiet")
    assert code == 2 and "Traceback" not in err
    assert "'c1'" in err and "list<int64>" in err
    info = json.loads(run(capsys, "info", root, "t", "--json")[1])
    assert info["current_snapshot"] == 0 and info["files"] == 0
    assert os.listdir(tmp_path / "store" / "tables" / "t" / "data") == []


def test_unknown_table_and_missing_store(tmp_path, capsys):
    root = tmp_path / "store"
    run(capsys, "init", root)
    code, _, err = run(capsys, "info", root, "nope")
    assert code == 2 and "no table 'nope'" in err and "tables: []" in err
    code, _, err = run(capsys, "info", tmp_path / "elsewhere")
    assert code == 2 and "samplestore init" in err


def test_entry_point_and_module_run_without_traceback(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("1\tnot-a-number\n")
    for cmd in ([os.path.join(os.path.dirname(sys.executable), "samplestore")], [sys.executable, "-m", "samplestore"]):
        r = subprocess.run([*cmd, "ingest", str(tmp_path / "s"), "t", str(bad), "--format", "criteo", "--create",
                            "--quiet"], capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "error:" in r.stderr


def _small_store(tmp_path, capsys):
    root = tmp_path / "store"
    assert run(capsys, "init", root)[0] == 0
    schema = datagen.sessions_schema(num_sparse=2)
    (tmp_path / "schema.json").write_text(schema.to_json())
    assert run(capsys, "create", root, "s", "--schema", tmp_path / "schema.json", "--partition-by", "ds")[0] == 0
    data = datagen.sessions_like(2000, num_sparse=2, days=2)
    pq.write_table(data, tmp_path / "in.parquet")
    assert run(capsys, "ingest", root, "s", tmp_path / "in.parquet", "--quiet")[0] == 0
    return root, data


def test_info_and_stats_count_live_rows_after_a_delete(tmp_path, capsys):
    root, data = _small_store(tmp_path, capsys)
    user = data.column("user_id")[0].as_py()
    gone = sum(1 for u in data.column("user_id").to_pylist() if u == user)
    code, out, err = run(capsys, "delete", root, "s", "--where", f"user_id={user}")
    assert code == 0, err
    info = json.loads(run(capsys, "info", root, "s", "--json")[1])
    assert (info["rows"], info["deleted_rows"], info["stored_rows"]) == (2000 - gone, gone, 2000)
    listing = json.loads(run(capsys, "info", root, "--json")[1])["tables"][0]
    assert (listing["rows"], listing["deleted_rows"]) == (2000 - gone, gone)
    st = json.loads(run(capsys, "stats", root, "s", "--by-partition", "--json")[1])
    assert (st["rows"], st["deleted_rows"], st["stored_rows"]) == (2000 - gone, gone, 2000)
    assert sum(p["rows"] for p in st["partitions"]) == 2000 - gone
    assert sum(p["deleted_rows"] for p in st["partitions"]) == gone
    text = run(capsys, "info", root, "s")[1]
    assert f"{2000 - gone:,} rows (+{gone:,} deleted, not yet purged" in text
    text = run(capsys, "stats", root, "s")[1]
    assert f"{2000 - gone:,} rows (+{gone:,} deleted" in text
    # Once compaction purges them, nothing is left to report as deleted.
    assert run(capsys, "compact", root, "s", "--grace", "0")[0] == 0
    info = json.loads(run(capsys, "info", root, "s", "--json")[1])
    assert (info["rows"], info["deleted_rows"], info["stored_rows"]) == (2000 - gone, 0, 2000 - gone)


def test_damaged_catalog_is_one_line_exit_2_and_gc_deletes_nothing(tmp_path, capsys):
    root, _ = _small_store(tmp_path, capsys)
    data_files = sorted(str(p) for p in (root / "tables").rglob("*.ssf"))
    assert data_files
    gc.collect()  # close the connections the commands above left in this process, as their exit would
    for suffix in ("-wal", "-shm"):
        if (root / f"catalog.db{suffix}").exists():
            (root / f"catalog.db{suffix}").unlink()
    (root / "catalog.db").write_bytes(b"")
    for args in (("info", root), ("gc", root, "--grace", "0"), ("init", root), ("stats", root, "s"),
                 ("verify", root, "--remove-leftovers", "--grace", "0")):
        code, out, err = run(capsys, *args)
        assert code == 2, args
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert "catalog.db" in err and "empty" in err, (args, err)
    assert sorted(str(p) for p in (root / "tables").rglob("*.ssf")) == data_files
    assert (root / "catalog.db").stat().st_size == 0
    (root / "catalog.db").write_bytes(b"garbage" * 1000)
    r = subprocess.run([sys.executable, "-m", "samplestore", "info", str(root)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not an SQLite database" in r.stderr


def test_only_init_and_ingest_create_make_a_store(tmp_path, capsys):
    (tmp_path / "schema.json").write_text(datagen.criteo_schema(num_sparse=2).to_json())
    code, _, err = run(capsys, "create", tmp_path / "typo", "t", "--schema", tmp_path / "schema.json")
    assert code == 2 and "samplestore init" in err and "create=True" in err
    pq.write_table(datagen.criteo_like(10, num_sparse=2), tmp_path / "in.parquet")
    code, _, err = run(capsys, "ingest", tmp_path / "typo2", "t", tmp_path / "in.parquet", "--quiet")
    assert code == 2 and "samplestore init" in err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "typo2").exists()


def test_the_cli_takes_s3_uris(tmp_path, capsys, monkeypatch, s3_server):
    """ROOT is any URI: the endpoint in its query string, the catalog from SAMPLESTORE_CATALOG."""
    root = f"s3://{s3_server.new_bucket()}/cli?endpoint_override={s3_server.endpoint}&scheme=http&region=us-east-1"
    data = tmp_path / "in.parquet"
    pq.write_table(datagen.criteo_like(300, seed=0), data)
    code, out, err = run(capsys, "init", root)
    assert code == 2 and "pass catalog=" in err and "Traceback" not in err  # a remote root needs a catalog
    monkeypatch.setenv("SAMPLESTORE_CATALOG", str(tmp_path / "catalog"))
    assert run(capsys, "init", root)[0] == 0
    code, out, err = run(capsys, "ingest", root, "criteo", data, "--create")
    assert code == 0, err
    code, out, err = run(capsys, "info", root, "criteo", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == 300
    assert not os.path.exists("s3:")


def test_ingest_reads_and_export_writes_uris(tmp_path, capsys, monkeypatch, s3_server):
    """FILES and OUT take URIs as ROOT does: sources on S3 (Parquet, a Criteo TSV), an export
    to an object and into a "folder" of objects, and a failed export leaves nothing there."""
    fs, bucket = s3_server.filesystem(), s3_server.new_bucket()
    q = f"?endpoint_override={s3_server.endpoint}&scheme=http&region=us-east-1"
    with fs.open_output_stream(f"{bucket}/in/a.parquet") as f:
        pq.write_table(datagen.criteo_like(300, seed=0), f)
    datagen.write_criteo_tsv(str(tmp_path / "day.tsv"), 200, seed=1)
    with fs.open_output_stream(f"{bucket}/in/day") as f:
        f.write((tmp_path / "day.tsv").read_bytes())
    root = tmp_path / "store"
    code, out, err = run(capsys, "ingest", root, "p", f"s3://{bucket}/in/a.parquet{q}", "--create", "--quiet")
    assert code == 0 and "300 rows" in out, err
    code, out, err = run(capsys, "ingest", root, "c", f"s3://{bucket}/in/day{q}", "--format", "criteo", "--create",
                         "--quiet")
    assert code == 0 and "200 rows" in out, err
    code, out, err = run(capsys, "ingest", root, "p", f"s3://{bucket}/in/none.parquet{q}")
    assert code == 2 and "does not exist" in err

    def objects():
        return sorted(i.path for i in fs.get_file_info(pa.fs.FileSelector(f"{bucket}/out", allow_not_found=True)))

    code, out, err = run(capsys, "export", root, "p", f"s3://{bucket}/out/p.parquet{q}", "--quiet")
    assert code == 0 and f"s3://{bucket}/out/p.parquet" in out, err
    assert run(capsys, "export", root, "p", tmp_path / "p.parquet", "--quiet")[0] == 0
    assert pq.read_table(fs.open_input_file(f"{bucket}/out/p.parquet")).equals(pq.read_table(tmp_path / "p.parquet"))
    code, out, err = run(capsys, "export", root, "c", f"s3://{bucket}/out{q}", "--quiet")  # a "folder" there
    assert code == 0, err
    assert pq.read_table(fs.open_input_file(f"{bucket}/out/c.parquet")).num_rows == 200
    assert objects() == [f"{bucket}/out/c.parquet", f"{bucket}/out/p.parquet"]

    def broken(self, batch, *args, **kw):
        raise OSError("the network went away mid-export")

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", broken)
    code, out, err = run(capsys, "export", root, "p", f"s3://{bucket}/out/again.parquet{q}", "--quiet")
    assert code != 0 and "went away" in err
    assert objects() == [f"{bucket}/out/c.parquet", f"{bucket}/out/p.parquet"]  # no half file, no temporary
    assert not os.path.exists("s3:")
