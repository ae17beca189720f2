"""`samplestore tag` and `samplestore retention` as a user runs them, and `--snapshot TAG` on
the read commands. Each test runs one command as a subprocess, the others through the CLI's
``main`` in this process (the same code, without a second of start-up each)."""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import samplestore as ss

SCHEMA = ss.Schema([ss.Scalar("row_id", "int64", nullable=False), ss.Label("y"), ss.Scalar("ds", "string")])


def rows(start: int, n: int) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({"row_id": pa.array(r), "y": pa.array((r % 2).astype(np.float32)),
                     "ds": pa.array([f"d{int(x) % 2}" for x in r])})


def cli(*args, ok=True, process=False) -> subprocess.CompletedProcess:
    """``samplestore ARGS``: its exit status and what it printed. In this process (the CLI's
    ``main``, a second each saved: an uncaught exception fails the test, as a traceback
    would), or with ``process`` as a user runs it, ``python -m samplestore``."""
    argv = [*map(str, args)]
    if process:
        src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.abspath(src), *sys.path])}
        r = subprocess.run([sys.executable, "-m", "samplestore", *argv], env=env, capture_output=True, text=True,
                           timeout=120)
    else:
        from samplestore.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        r = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def root(tmp_path):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", SCHEMA, partition_by=["ds"])
    for k in range(3):
        t.append(rows(k * 100, 100))
    return tmp_path / "s"


@pytest.mark.slow
def test_tag_a_snapshot_and_read_it_back_after_the_table_moved_on(root, tmp_path):
    out = cli("tag", root, "t", "train-2026-11-20", process=True).stdout
    assert f"tagged snapshot 3 of 't' as 'train-2026-11-20'; read it with --snapshot train-2026-11-20" in out
    assert f"samplestore tag {root} t --delete train-2026-11-20" in out
    assert "tagged snapshot 1 of 't' as 'first'" in cli("tag", root, "t", "first", "--snapshot", "1").stdout
    t = ss.open_store(root).table("t")
    t.append(rows(300, 100))
    t.compact(target_file_bytes=1 << 20)
    cli("compact", root, "t", "--retain-last", "1", "--grace", "0")
    assert [s.snapshot_id for s in t.snapshots()] == [1, 3, t.current_snapshot_id]
    listing = json.loads(cli("tag", root, "t", "--list", "--json").stdout)
    assert [(g["name"], g["snapshot_id"]) for g in listing] == [("first", 1), ("train-2026-11-20", 3)]
    text = cli("tag", root, "t").stdout  # no name: a listing too
    assert text.splitlines()[0].split()[:3] == ["first", "snapshot", "1"]
    head = json.loads(cli("head", root, "t", "--snapshot", "train-2026-11-20", "-n", "1000", "--columns", "row_id",
                          "--json").stdout)
    assert sorted(r["row_id"] for r in head) == list(range(300))
    cli("export", root, "t", tmp_path / "train.parquet", "--snapshot", "train-2026-11-20", "--quiet")
    assert sorted(pq.read_table(tmp_path / "train.parquet").column("row_id").to_pylist()) == list(range(300))
    st = json.loads(cli("stats", root, "t", "--snapshot", "first", "--json").stdout)
    assert (st["snapshot_id"], st["rows"]) == (1, 100)
    assert json.loads(cli("stats", root, "t", "--snapshot", "1", "--json").stdout)["snapshot_id"] == 1


@pytest.mark.slow
def test_deleting_a_tag_lets_expiry_drop_its_snapshot(root):
    cli("tag", root, "t", "old", "--snapshot", "1")
    cli("expire", root, "t", "--retain-last", "1")
    assert [s["snapshot_id"] for s in json.loads(cli("snapshots", root, "t", "--json").stdout)] == [1, 3]
    out = cli("tag", root, "t", "--delete", "old").stdout
    assert "removed tag 'old' of 't' (snapshot 1)" in out
    assert "has no tags" in cli("tag", root, "t", "--list").stdout
    assert "expired 1 snapshots of 't' as asked; 1 retained" in cli("expire", root, "t", "--retain-last", "1").stdout


@pytest.mark.slow
def test_tag_errors_are_one_line_and_exit_2(root):
    cli("tag", root, "t", "train")
    for i, (args, words) in enumerate([(("tag", root, "t", "train"), "has a tag 'train' already (on snapshot 3)"),
                        (("tag", root, "t", "9x"), "tag name must start with a letter"),
                        (("tag", root, "t", "x", "--snapshot", "42"), "has no snapshot 42; snapshots: [1, 2, 3]"),
                        (("tag", root, "t", "--delete", "nope"), "no tag 'nope'; tags: ['train']"),
                        (("head", root, "t", "--snapshot", "nope"), "no tag 'nope'; tags: ['train']"),
                        (("tag", root, "t", "x", "--list"), "--list takes no tag name")]):
        r = cli(*args, ok=False, process=i == 0)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert "moved" not in cli("tag", root, "t", "train", "--snapshot", "2", "--replace").stdout
    assert json.loads(cli("tag", root, "t", "--json").stdout)[0]["snapshot_id"] == 2


@pytest.mark.slow
def test_retention_shows_sets_and_is_what_expire_and_compact_follow(root):
    out = cli("retention", root, "t", process=True).stdout
    assert out.startswith("table 't': keep the last 1 snapshot(s) and every snapshot younger than 7d;")
    assert json.loads(cli("retention", root, "t", "--json").stdout)["older_than"] == 7 * 24 * 3600
    # Everything is younger than a week: the default keeps it all, with or without compaction.
    assert "expired 0 snapshots of 't' by the table's retention policy" in cli("expire", root, "t").stdout
    cli("compact", root, "t", "--grace", "0")
    t = ss.open_store(root).table("t")
    assert [s.snapshot_id for s in t.snapshots()][:3] == [1, 2, 3]
    out = cli("retention", root, "t", "--retain-last", "2", "--older-than", "none").stdout
    assert out.startswith("table 't': keep the last 2 snapshot(s); always kept")
    assert json.loads(cli("retention", root, "t", "--json").stdout)["older_than"] is None
    t.append(rows(300, 100))
    cli("compact", root, "t", "--grace", "0")  # no options: the policy
    assert len(t.snapshots()) == 2
    t.append(rows(400, 100))
    t.append(rows(500, 100))
    assert "expired 2 snapshots of 't' by the table's retention policy (keep the last 2" in cli("expire", root,
                                                                                                 "t").stdout
    # Changing one rule keeps the other; --reset restores the defaults.
    cli("retention", root, "t", "--older-than", "36h")
    assert json.loads(cli("retention", root, "t", "--json").stdout)["retain_last"] == 2
    assert json.loads(cli("retention", root, "t", "--json").stdout)["older_than"] == 36 * 3600
    cli("retention", root, "t", "--reset")
    assert ss.open_store(root).table("t").retention == ss.catalog.RetentionPolicy()


@pytest.mark.parametrize("args, words", [(("--older-than", "soon"), "expected a duration"),
                                         (("--retain-last", "0"), "expected a whole number >= 1"),
                                         (("--reset", "--retain-last", "3"), "give it alone")])
def test_a_bad_retention_is_refused_and_nothing_changes(root, args, words):
    r = cli("retention", root, "t", *args, ok=False)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert ss.open_store(root).table("t").retention == ss.catalog.RetentionPolicy()


def help_text(capsys, command: str) -> str:
    """``samplestore COMMAND --help`` as printed (in this process: argparse's own output)."""
    from samplestore.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_says_the_policy_applies_unless_options_are_given(capsys):
    for command in ("expire", "compact"):
        text = help_text(capsys, command)
        assert "overrides" in text and "retention policy" in text, command
    text = help_text(capsys, "tag")
    assert "--snapshot" in text and "--delete NAME" in text and "--list" in text
    assert "snapshot id or tag name" in help_text(capsys, "head")
