"""Compaction's shuffled layout (``layout="shuffled"``): rows of each rewritten group in a random
order, recorded in the catalog, kept by later compactions, asked for by the daemon and the CLI."""

import json
import os
import sys

import numpy as np
import pytest

import samplestore as ss
from samplestore.compaction import run_daemon, run_once
from samplestore.errors import SchemaError
from samplestore.format import FileReader
from samplestore.torch import SampleDataset

sys.path.insert(0, os.path.dirname(__file__))
from compaction_workers import SCHEMA, rows  # noqa: E402


def small_files(store, name="t", files=12, each=100, **create):
    """A table of ``files`` appends of ``each`` rows, ``row_id`` counting up in append order."""
    t = store.create_table(name, SCHEMA, **create)
    for k in range(files):
        t.append(rows(k * each, each))
    return t


def file_row_ids(table) -> list[np.ndarray]:
    """The ``row_id`` of each live file, in the order the file holds them."""
    out = []
    for f in table.files():
        with FileReader(table.storage.join(table.dir, f.path), table.storage) as r:
            out.append(r.read(["row_id"]).column("row_id").to_numpy())
    return out


def successor_share(table) -> float:
    """Share of consecutive rows in the files whose row ids differ by exactly 1: ~1 in append
    order, ~2/rows in a random order."""
    pairs = [np.diff(ids) == 1 for ids in file_row_ids(table)]
    return float(np.concatenate(pairs).mean())


def all_ids(table) -> np.ndarray:
    return np.sort(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy())


@pytest.fixture
def store(tmp_path):
    return ss.open_store(tmp_path / "s", create=True)


def test_shuffled_compaction_keeps_every_row_once_in_a_random_order(store):
    plain, shuffled = small_files(store, "plain"), small_files(store, "shuffled")
    plain.compact()
    res = shuffled.compact(layout="shuffled")
    assert res.files_in == 12 and res.files_out == 1
    assert np.array_equal(all_ids(shuffled), np.arange(1200))
    assert successor_share(plain) == 1.0  # commit order: every row follows its predecessor
    assert successor_share(shuffled) < 0.01  # a random order of 1,200 rows: ~0.0017
    (f,) = shuffled.files()
    assert f.shuffled and not plain.files()[0].shuffled
    assert shuffled.snapshots()[-1].summary["layout"] == "shuffled"


def test_deleted_rows_are_purged_by_a_shuffled_compaction(store):
    import pyarrow.compute as pc

    t = small_files(store)
    gone = np.arange(0, 1200, 7)
    t.delete(pc.field("row_id").isin(gone))
    t.compact(layout="shuffled")
    kept = np.setdiff1d(np.arange(1200), gone)
    assert np.array_equal(all_ids(t), kept)
    (ids,) = file_row_ids(t)  # the file holds the kept rows only, each once
    assert np.array_equal(np.sort(ids), kept)


def test_later_compactions_leave_shuffled_files_alone_and_sort_by_rewrites_them(store):
    t = small_files(store, partition_by=["ds"])  # two partitions: one file each after compaction
    t.compact(layout="shuffled")
    first = {f.file_id: ids for f, ids in zip(t.files(), file_row_ids(t))}
    assert len(first) == 2 and all(f.shuffled for f in t.files())
    assert t.compaction_plan(layout="shuffled").groups == ()
    assert t.compact(layout="shuffled").files_in == 0
    # A shuffled file is sorted by no column: asking for a sort key rewrites it.
    assert not any(f.sorted_by(["row_id"]) for f in t.files())
    assert t.compaction_plan(sort_by=["row_id"]).files_in == 2
    t.compact(sort_by=["row_id"])
    assert all(np.all(np.diff(ids) > 0) for ids in file_row_ids(t))
    # ... and asking for the layout again rewrites the sorted files, in a new random order.
    assert t.compact(layout="shuffled").files_in == 2
    again = sorted(file_row_ids(t), key=len)
    assert not any(np.array_equal(a, b) for a in again for b in first.values())
    assert np.array_equal(all_ids(t), np.arange(1200))


def test_shuffled_layout_rewrites_a_large_file_in_commit_order(store):
    t = store.create_table("t", SCHEMA)
    t.append(rows(0, 4000))
    target = t.files()[0].file_bytes  # large: left alone by size
    assert t.compaction_plan(target).groups == ()
    plan = t.compaction_plan(target, layout="shuffled")
    assert [len(g.file_ids) for g in plan.groups] == [1]
    t.compact(target, layout="shuffled")
    assert successor_share(t) < 0.01 and np.array_equal(all_ids(t), np.arange(4000))


def test_layout_with_sort_by_or_an_unknown_layout_is_refused(store):
    t = small_files(store, files=3)
    for call in (lambda: t.compact(layout="shuffled", sort_by=["row_id"]),
                 lambda: t.compaction_plan(layout="shuffled", sort_by=["row_id"])):
        with pytest.raises(SchemaError, match="both set the order of the rows"):
            call()
    with pytest.raises(SchemaError, match="layout must be one of"):
        t.compact(layout="random")
    assert len(t.files()) == 3  # nothing was rewritten


def test_the_marker_is_no_column_anywhere(store, capsys):
    from samplestore.cli.main import main

    t = small_files(store, files=3)
    t.compact(layout="shuffled")
    (marker,) = t.files()[0].sort_key
    with pytest.raises(SchemaError):  # no column can bear its name ...
        ss.Schema([ss.Scalar(marker, "int64")])
    with pytest.raises(SchemaError):  # ... so it is no sort key to ask for either
        t.compact(sort_by=[marker])
    assert t.schema.names == SCHEMA.names and t.to_arrow().column_names == SCHEMA.names
    assert main(["stats", str(store.root), "t", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["columns"]) == set(SCHEMA.names)


def test_daemon_pass_follows_each_tables_layout_property(store):
    shuffled = small_files(store, "shuffled", properties={"compaction.layout": "shuffled"})
    plain = small_files(store, "plain")
    bad = small_files(store, "bad", files=3, properties={"compaction.layout": "random"})
    assert len(bad.snapshots()) == 3
    reports = {r["table"]: r for r in run_once(store, retain_last=1, grace_seconds=0)}
    assert successor_share(shuffled) < 0.01 and all(f.shuffled for f in shuffled.files())
    assert successor_share(plain) == 1.0 and reports["plain"]["files_out"] == 1
    assert "compaction.layout" in reports["bad"]["error"] and len(bad.files()) == 3
    assert len(bad.snapshots()) == 1  # a failed compaction does not keep expiry from running
    # The layout given to the pass applies to tables whose properties set none.
    run_once(store, ["plain"], layout="shuffled", grace_seconds=0)
    assert all(f.shuffled for f in plain.files()) and np.array_equal(all_ids(plain), np.arange(1200))
    with pytest.raises(SchemaError):
        run_once(store, layout="shuffled", sort_by=["row_id"])
    with pytest.raises(SchemaError):  # refused at once, not retried pass after pass
        run_daemon(store, interval=0.01, max_passes=3, layout="random")


def test_cli_compact_layout_and_its_conflict_with_sort_by(store, capsys):
    from samplestore.cli.main import main

    t = small_files(store, files=10)
    root = str(store.root)
    assert main(["compact", root, "t", "--layout", "shuffled", "--sort-by", "row_id"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "both set the order of the rows" in err, err
    assert len(t.files()) == 10  # refused before any work
    assert main(["compact", root, "--daemon", "--layout", "shuffled", "--sort-by", "row_id"]) == 2
    assert "--layout and --sort-by" in capsys.readouterr().err
    assert main(["compact", root, "t", "--layout", "shuffled", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["files_in"] == 10
    assert [f.shuffled for f in t.files()] == [True] and successor_share(t) < 0.05


def test_sample_dataset_delivers_every_row_of_a_shuffled_table_once(store):
    t = small_files(store, files=20)
    t.compact(layout="shuffled", row_group_rows=256)  # 8 units of 256 rows
    ds = SampleDataset(t, features=["row_id", "y"], batch_size=128, shuffle_buffer_rows=1024)
    try:
        got = np.concatenate([b.extras["row_id"].numpy() for b in ds])
    finally:
        ds.close()
    assert np.array_equal(np.sort(got), np.arange(2000))
