"""What a new user meets in the first hour, run as they run it: `samplestore ...` in a
subprocess, output checked (export, --json errors, --version, help text, stats and
snapshots output, empty partition folders after compaction)."""

import argparse
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

import samplestore
from samplestore import datagen
from samplestore.cli.main import build_parser

# The package under test, wherever it is (a worktree's src/ or an installed copy).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(samplestore.__file__)))


def cli(*args, code=None):
    """Run ``python -m samplestore ARGS`` (or a ``-c`` script with ``code``) in a subprocess."""
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-c", code, *map(str, args)] if code else [sys.executable, "-m", "samplestore", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with a table 's' of 2,000 session rows over two days, partitioned by day."""
    tmp = tmp_path_factory.mktemp("first-hour")
    (tmp / "schema.json").write_text(datagen.sessions_schema(num_sparse=2).to_json())
    data = datagen.sessions_like(2000, num_sparse=2, days=2)
    pq.write_table(data, tmp / "in.parquet")
    root = tmp / "store"
    for args in (("init", root), ("create", root, "s", "--schema", tmp / "schema.json", "--partition-by", "ds"),
                 ("ingest", root, "s", tmp / "in.parquet", "--quiet")):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    return root, data


# -- export --------------------------------------------------------------------------------------
def test_export_into_an_existing_folder_writes_table_parquet_there(store, tmp_path):
    root, _ = store
    out = tmp_path / "out"
    out.mkdir()
    r = cli("export", root, "s", f"{out}{os.sep}", "--quiet")
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["s.parquet"]  # and no temporary file left beside it
    assert pq.read_table(out / "s.parquet").num_rows == 2000
    assert str(out / "s.parquet") in r.stdout
    r = cli("export", root, "s", out, "--quiet")  # the same without the trailing slash
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["s.parquet"]


def test_export_into_a_missing_folder_is_a_one_line_error(store, tmp_path):
    root, _ = store
    for target in (f"{tmp_path / 'nope'}{os.sep}", tmp_path / "nope" / "x.parquet"):
        r = cli("export", root, "s", target, "--quiet")
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "does not exist" in r.stderr and "nope" in r.stderr
    assert os.listdir(tmp_path) == []


def test_export_that_fails_midway_leaves_no_temporary_file(store, tmp_path):
    """The disk fills up after the first batch: exit 2, one line, nothing left in the folder."""
    root, _ = store
    code = textwrap.dedent("""
        import errno, sys
        import pyarrow.parquet as pq
        def full(self, batch, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        pq.ParquetWriter.write_batch = full
        from samplestore.cli.main import main
        raise SystemExit(main(sys.argv[1:]))
    """)
    r = cli("export", root, "s", tmp_path / "s.parquet", "--quiet", code=code)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "No space left" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == []


# -- --json errors --------------------------------------------------------------------------------
@pytest.mark.slow
def test_json_errors_are_one_json_object_on_stdout_and_exit_2(store, tmp_path):
    root, _ = store
    for args, words in [(("info", root, "nope", "--json"), "no table 'nope'"),
                        (("stats", tmp_path / "elsewhere", "s", "--json"), "samplestore init"),
                        (("head", root, "s", "-n", "many", "--json"), "invalid int value"),
                        (("snapshots", root, "--json"), "the following arguments are required")]:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert list(doc) == ["error"] and words in doc["error"], (args, doc)
        assert r.stderr == "", (args, r.stderr)
    r = cli("info", root, "nope")  # without --json: one line of text on stderr, as before
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("samplestore: error: no table 'nope'")


# -- --version ------------------------------------------------------------------------------------
def test_version_prints_the_packages_one_version_string():
    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"samplestore {samplestore.__version__}\n"


def test_the_package_metadata_takes_its_version_from_the_package():
    tomllib = pytest.importorskip("tomllib")
    pyproject = os.path.join(os.path.dirname(SRC), "pyproject.toml")
    if not os.path.exists(pyproject):
        pytest.skip("not run from a source checkout")
    with open(pyproject, "rb") as f:
        doc = tomllib.load(f)
    assert "version" not in doc["project"] and "version" in doc["project"]["dynamic"]
    assert doc["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "samplestore.version.__version__"}
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    # What a build would write into the package's metadata.
    assert pyprojecttoml.read_configuration(pyproject)["project"]["version"] == samplestore.__version__
    # ...and no second copy of the string anywhere in the package (file footers included).
    package = pathlib.Path(samplestore.__file__).parent
    copies = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
              if f'"{samplestore.__version__}"' in p.read_text()]
    assert copies == ["version.py"], copies


def test_files_record_the_version_that_wrote_them(tmp_path):
    path = str(tmp_path / "one.ssf")
    ss_schema = samplestore.Schema([samplestore.Label("y")])
    samplestore.format.write_file(path, ss_schema.conform({"y": [1.0]}), ss_schema)
    assert samplestore.format.read_metadata(path)["metadata"]["created_by"] == f"samplestore {samplestore.__version__}"


# -- help text ------------------------------------------------------------------------------------
def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_option_and_positional_of_every_command_has_help():
    parser = build_parser()
    missing = []
    commands = [("samplestore", parser), *_subparsers(parser)]
    assert {name for name, _ in commands} >= {"samplestore", "init", "ingest", "head", "stats", "export", "gc",
                                              "bench", "demo"}
    for name, p in commands:
        if not (p.description or "").strip():
            missing.append(f"{name}: description")
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name}: {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_help_of_the_program_and_of_a_command_as_printed():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    assert "--version" in r.stdout and "--json" in r.stdout and '{"error"' in r.stdout
    for command in ("init", "ingest", "export", "stats", "bench", "demo"):
        assert f"    {command}" in r.stdout
    r = cli("export", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "TABLE.parquet" in text and "--snapshot" in text and "--columns" in text
    assert "snapshot id" in text and "comma-separated" in text


# -- stats and snapshots --------------------------------------------------------------------------
def test_stats_text_shows_iso_timestamps_and_dashes_not_none_or_nan(store):
    root, data = store
    r = cli("stats", root, "s")
    assert r.returncode == 0, r.stderr
    assert "None" not in r.stdout and "nan" not in r.stdout
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    ts_min = min(data.column("ts").to_pylist()).isoformat()
    ts_max = max(data.column("ts").to_pylist()).isoformat()
    header = r.stdout.splitlines()[1].split()
    col = {name: header.index(name) for name in ("min", "max", "len_mean", "len_p50", "len_p99")}
    assert rows["ts"][col["min"]] == ts_min and rows["ts"][col["max"]] == ts_max
    assert rows["ds"][col["min"]] == rows["ds"][col["max"]] == "-"  # no string min/max is stored
    for name in ("dense", "click", "user_id", "ts", "ds"):  # not lists: no list lengths
        assert [rows[name][col[k]] for k in ("len_mean", "len_p50", "len_p99")] == ["-", "-", "-"], name
    assert rows["history"][col["len_p99"]] != "-"


def test_stats_json_gives_timestamps_as_iso_strings(store):
    root, data = store
    r = cli("stats", root, "s", "--json", "--by-partition")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    ts = st["columns"]["ts"]
    assert dt.datetime.fromisoformat(ts["min"]) == min(data.column("ts").to_pylist())
    assert dt.datetime.fromisoformat(ts["max"]) == max(data.column("ts").to_pylist())
    for p in st["partitions"]:
        assert isinstance(p["columns"]["ts"]["min"], str)
    assert isinstance(st["columns"]["user_id"]["min"], int)  # other columns keep their numbers


def test_snapshots_text_has_a_header_row(store):
    root, _ = store
    r = cli("snapshots", root, "s")
    assert r.returncode == 0, r.stderr
    header, first = r.stdout.splitlines()[:2]
    assert header.split()[:3] == ["snapshot", "created", "operation"]
    assert first.split()[0] == "1" and "append" in first


# -- compaction leaves no empty partition folder ----------------------------------------------------
@pytest.mark.slow
def test_compact_removes_the_folder_of_a_partition_it_emptied(tmp_path):
    # The table is made through the API (the store fixture covers init, create and ingest in
    # the CLI); the deletes, compactions and verify are the commands under test.
    root = tmp_path / "store"
    table = samplestore.open_store(root, create=True).create_table("s", datagen.sessions_schema(num_sparse=2),
                                                                    partition_by=["ds"])
    table.append(datagen.sessions_like(1000, num_sparse=2, days=2))
    data = root / "tables" / "s" / "data"
    days = sorted(os.listdir(data))
    assert len(days) == 2
    day = days[0].partition("=")[2]
    assert cli("delete", root, "s", "--where", f"ds={day}").returncode == 0
    # Expiry to the last snapshot (the table's policy would keep a week of them), so GC may
    # remove the deleted rows' old files.
    r = cli("compact", root, "s", "--grace", "0", "--retain-last", "1")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(data)) == days[1:]
    assert cli("delete", root, "s", "--where", f"ds={days[1].partition('=')[2]}").returncode == 0
    assert cli("compact", root, "s", "--grace", "0", "--retain-last", "1").returncode == 0
    assert os.listdir(data) == []  # the table's own data folder stays
    r = cli("verify", root, "s", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"]
