"""Expectations and quarantines through the Python API: validation, streaming commits,
compaction, expiry and GC, deletes, statistics, and files written before the statistics."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import samplestore as ss
from samplestore.catalog.base import ColumnStats, DataFile
from samplestore.table.expectations import judge, parse_expectations
from samplestore.table.quality import psi, quality_report
from samplestore.table.stats import table_stats

SCHEMA = ss.Schema([
    ss.Scalar("row_id", "int64", nullable=False),
    ss.Dense("x", dim=4),
    ss.Sparse("ids"),
    ss.Label("y"),
    ss.Scalar("ds", "string"),
])


def rows(start: int, n: int, ds: str, missing: float = 0.0, label: float = 0.5, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed + start)
    x = rng.lognormal(1.0, 1.0, (n, 4)).astype(np.float32)
    x[rng.random(n) < missing, 2] = np.nan
    return pa.table({
        "row_id": pa.array(np.arange(start, start + n)),
        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4),
        "ids": pa.array([[i] * (i % 3) for i in range(n)], pa.list_(pa.int64())),
        "y": pa.array((rng.random(n) < label).astype(np.float32)),
        "ds": pa.array([ds] * n),
    })


@pytest.fixture
def table(tmp_path):
    return ss.open_store(str(tmp_path / "s"), create=True).create_table("t", SCHEMA, partition_by=["ds"])


QUARANTINE_X2 = {"rule": "missing_rate", "column": "x[2]", "max": 0.1, "action": "quarantine"}


@pytest.mark.parametrize("rule, words", [
    ({"rule": "nulls", "column": "x"}, "expectation 1, field 'rule': expected one of"),
    ({"rule": "missing_rate", "column": "nope", "max": 0.1}, "expectation 1, field 'column': no column 'nope'"),
    ({"rule": "missing_rate", "column": "x[4]", "max": 0.1}, r"slot 4 is out of range: 'x' has dim 4 \(slots 0..3\)"),
    ({"rule": "missing_rate", "column": "y[0]", "max": 0.1}, "'y' is a label feature, not dense"),
    ({"rule": "missing_rate", "column": "x", "max": 1.5}, "field 'max': expected a number between 0 and 1"),
    ({"rule": "missing_rate", "column": "x"}, "field 'max': rule 'missing_rate' needs at least one bound"),
    ({"rule": "range", "column": "row_id", "min": 5, "max": 1}, "field 'min': min 5 is above max 1"),
    ({"rule": "range", "column": "ds", "min": 0}, "holds strings"),
    ({"rule": "range", "column": "x[1]", "min": 0}, "takes a whole column"),
    ({"rule": "label_rate", "column": "x", "min": 0}, "applies to label features"),
    ({"rule": "list_length_p99", "column": "y", "max": 3}, "applies to sparse or sequence features"),
    ({"rule": "rows", "max_change": "a lot"}, "field 'max_change': expected a finite number"),
    ({"rule": "rows", "min": 1.5}, "field 'min': expected a whole number"),
    ({"rule": "rows", "window": 3}, "needs at least one bound"),
    ({"rule": "rows", "min": 10, "column": "x"}, "takes no column"),
    ({"rule": "freshness", "column": "row_id", "deadline_hours": 30}, "not a partition column"),
    ({"rule": "missing_rate", "column": "x", "max": 0.1, "action": "drop"}, "field 'action'"),
    ({"rule": "missing_rate", "column": "x", "max": 0.1, "maximum": 1}, "field 'maximum'"),
    ("missing_rate", "expectation 1: expected a JSON object"),
])
def test_a_bad_rule_is_refused_naming_its_index_and_field_and_nothing_is_stored(table, rule, words):
    table.set_expectations([QUARANTINE_X2])
    with pytest.raises(ss.DataQualityError, match=words):
        table.set_expectations([{"rule": "rows", "min": 1}, rule])
    assert [e.to_dict() for e in table.expectations] == [QUARANTINE_X2]


def test_rules_round_trip_with_their_defaults(table):
    got = table.set_expectations([{"rule": "rows", "max_change": 0.5}, {"rule": "freshness", "deadline_hours": 6}])
    assert [e.to_dict() for e in got] == [
        {"rule": "rows", "max_change": 0.5, "window": 7, "action": "warn"},
        {"rule": "freshness", "column": "ds", "deadline_hours": 6.0, "action": "warn"}]
    assert [e.to_dict() for e in table.expectations] == [e.to_dict() for e in got]
    table.set_expectations([])
    assert table.expectations == []


def test_streaming_commits_are_checked_each_and_partition_rules_see_the_partition_so_far(table):
    table.set_expectations([QUARANTINE_X2, {"rule": "rows", "min": 1000, "max": 1500, "action": "reject"}])
    with table.writer(commit_every_rows=400) as w:
        w.write(rows(0, 400, "d1"))  # 400 < min: not an error for a partition still being written
        w.write(rows(400, 400, "d1", missing=0.5))  # this commit's files only: quarantined
        w.write(rows(800, 400, "d1"))
    assert table.count() == 800 and table.count(include_quarantined=True) == 1200
    [q] = table.quarantines()
    assert q.rows == 400 and q.violations[0]["column"] == "x[2]"
    # 800 visible + 800 more > max 1500: the partition so far breaks the upper bound.
    w = table.writer(commit_every_rows=None)
    w.write(rows(1200, 800, "d1"))
    with pytest.raises(ss.DataQualityError, match=r"partition ds=d1: rows is 1,600, above the bound max=1500"):
        w.commit()
    with pytest.raises(ValueError, match="data-quality check"):
        w.write(rows(2000, 10, "d1"))
    assert table.count(include_quarantined=True) == 1200
    # A batch append is a whole partition: the lower bound counts.
    with pytest.raises(ss.DataQualityError, match=r"partition ds=d2: rows is 10, below the bound min=1000"):
        table.append(rows(0, 10, "d2"))
    assert table.count(include_quarantined=True) == 1200


def test_quarantine_survives_compaction_expiry_and_gc_and_release_reads_as_committed(table):
    table.set_expectations([QUARANTINE_X2])
    for k in range(3):
        table.append(rows(100 * k, 100, "d1"))
    table.append(rows(300, 100, "d1", missing=0.5))
    held_at = table.current_snapshot_id
    table.compact()
    files = table.files(include_quarantined=True)
    assert len(files) == 2 and sorted(f.quarantine_id is None for f in files) == [False, True]
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    assert table.count(include_quarantined=True) == 400 and table.count() == 300
    [q] = table.quarantines()
    table.release_quarantine(q.quarantine_id)
    ids = sorted(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_pylist())
    assert ids == list(range(400))
    table.compact()  # now it may merge them
    assert len(table.files()) == 1 and table.count() == 400
    assert held_at not in [s.snapshot_id for s in table.snapshots()]


def test_a_dropped_quarantine_is_deleted_from_disk_by_expiry_and_gc(table, tmp_path):
    table.set_expectations([QUARANTINE_X2])
    table.append(rows(0, 100, "d1", missing=0.5))
    [f] = table.files(include_quarantined=True)
    path = table.storage.join(table.dir, f.path)
    assert table.storage.exists(path)
    table.drop_quarantine(table.quarantines()[0].quarantine_id)
    assert table.files(include_quarantined=True) == []
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    assert not table.storage.exists(path)


def test_a_delete_reaches_quarantined_rows(table):
    table.set_expectations([QUARANTINE_X2])
    table.append(rows(0, 100, "d1", missing=0.5))
    table.delete(pc.field("row_id") < 10)
    table.release_quarantine(table.quarantines()[0].quarantine_id)
    assert table.count() == 90


def test_stats_leave_quarantined_files_out_unless_asked(table):
    table.set_expectations([QUARANTINE_X2])
    table.append(rows(0, 100, "d1"))
    table.append(rows(100, 300, "d2", missing=0.5))
    assert table_stats(table)["rows"] == 100
    st = table_stats(table, include_quarantined=True, by_partition=True)
    assert st["rows"] == 400 and [p["rows"] for p in st["partitions"]] == [100, 300]
    assert 0.4 < st["partitions"][1]["columns"]["x"]["missing_by_dim"][2] / 300 < 0.6


def test_label_rate_and_histograms_come_from_per_file_statistics(table):
    table.append(rows(0, 1000, "d1", label=0.2))
    [f] = table.files(with_stats=["y", "x"])
    y = table.scan(columns=["y"]).to_arrow().column("y").to_numpy()
    assert f.stats["y"].extra["sum_by_dim"] == [float(y.sum())]
    assert table_stats(table)["columns"]["y"]["mean_by_dim"] == [pytest.approx(y.mean())]
    hist = f.stats["x"].extra["histogram"]
    assert {s for s, _b, _c in hist} == {0, 1, 2, 3}
    assert sum(c for s, _b, c in hist if s == 0) == 1000  # every non-NaN value of slot 0 in one bin


def test_files_written_before_the_statistics_are_not_measurable_not_an_error():
    schema = SCHEMA
    old = DataFile("old.ssf", {"ds": "d1"}, 10, 100, 1, stats={
        "y": ColumnStats(0, 0, 10, 0.0, 1.0, 40, {}), "x": ColumnStats(0, 0, 40, 0.0, 9.0, 160, {})})
    [label, rate] = parse_expectations([{"rule": "label_rate", "column": "y", "min": 0.1},
                                        {"rule": "missing_rate", "column": "x[1]", "max": 0.1}], schema, ["ds"])
    broken, record = judge(label, [old], schema, {"ds": "d1"})
    assert broken == [] and record["verdict"] == "not measurable" and "sum" in record["reason"]
    broken, record = judge(rate, [old], schema, {"ds": "d1"})
    assert broken == [] and record["verdict"] == "pass"  # a vector without per-slot counts: the column's rate


def test_psi_is_zero_for_equal_shapes_and_large_for_a_shift():
    assert psi({0: 50, 1: 50}, {0: 500, 1: 500}) == 0.0
    assert psi({0: 100}, {1: 100}) > 5
    assert psi({}, {0: 1}) is None


def test_report_psi_sees_a_shifted_feature(table):
    for k in range(4):
        table.append(rows(1000 * k, 1000, f"d{k}", seed=k))
    shifted = rows(4000, 1000, "d4", seed=9)
    x = shifted.column("x").combine_chunks().flatten().to_numpy().reshape(-1, 4).copy()
    x[:, 1] *= 50  # slot 1 moves ~5.6 doublings up
    table.append(shifted.set_column(1, "x", pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4)))
    rep = quality_report(table, psi_window=3)
    last = rep["partitions"][-1]["psi"]["x"]
    assert last["by_dim"][1] > 1 and max(last["by_dim"][i] for i in (0, 2, 3)) < 0.1
    assert rep["partitions"][-1]["psi"]["y"]["max"] < 0.1


def test_open_quarantines_fail_the_report_and_show_as_held(table, tmp_path):
    table.set_expectations([QUARANTINE_X2])
    table.append(rows(0, 100, "d1"))
    table.append(rows(100, 100, "d2", missing=0.5))  # held back whole
    table.append(rows(200, 100, "d1", missing=0.5))  # d1 partly held
    rep = quality_report(table)
    assert rep["failed"] == 2 and rep["failures"] == {"checks": 0, "freshness": 0, "quarantines": 2}
    by = {p["partition"]["ds"]: p for p in rep["partitions"]}
    assert by["d1"]["state"] == "partly held" and by["d1"]["rows"] == 100 and by["d1"]["held"]["rows"] == 100
    assert by["d2"]["state"] == "held" and by["d2"]["rows"] == 0 and by["d2"]["held"]["rows"] == 100
    assert 0.35 < by["d2"]["missing_rate"]["x[2]"] < 0.65  # why it is held shows in the heat map
    # As of the snapshot before the quarantines, there were none.
    assert quality_report(table, snapshot=1)["failed"] == 0
    for q in table.quarantines():
        table.release_quarantine(q.quarantine_id)
    assert quality_report(table)["failures"]["quarantines"] == 0


def test_psi_has_its_textbook_value():
    # sum((p - q) ln(p / q)), not KL divergence sum(p ln(p / q)) (0.0823 here).
    assert psi({0: 30, 1: 70}, {0: 50, 1: 50}) == pytest.approx(0.2 * np.log(5 / 3) + 0.2 * np.log(1.4), rel=1e-12)


def test_report_psi_sees_a_shift_inside_zero_to_one(tmp_path):
    t = ss.open_store(str(tmp_path / "s"), create=True).create_table(
        "u", ss.Schema([ss.Dense("x", dim=1), ss.Scalar("ds", "string")]), partition_by=["ds"])

    def day(ds, values):
        x = np.repeat(np.array(values, np.float32), 50)
        return pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x), 1), "ds": pa.array([ds] * len(x))})

    t.append(day("d0", [0.05, 0.15]))  # [0, 0.2)
    t.append(day("d1", [0.85, 0.95]))  # [0.8, 1): 4 bins, shares 0.5 against the floor 1e-4
    got = quality_report(t, psi_window=1)["partitions"][1]["psi"]["x"]["max"]
    assert got == pytest.approx(4 * (0.5 - 1e-4) * np.log(0.5 / 1e-4), rel=1e-9)


def test_freshness_counts_a_day_from_its_first_append_not_its_compaction(table):
    import datetime as dt
    import time

    today = dt.datetime.now(dt.timezone.utc).date()
    table.append(rows(0, 50, today.isoformat()))
    table.append(rows(50, 50, today.isoformat()))
    midnight = dt.datetime.combine(today, dt.time(), dt.timezone.utc).timestamp()
    hours = (time.time() + 0.05 - midnight) / 3600  # the deadline falls between the appends and the compaction
    table.set_expectations([{"rule": "freshness", "deadline_hours": hours}])
    time.sleep(0.1)
    table.compact()
    assert [f.added_by for f in table.files()] == ["replace"]
    [fresh] = quality_report(table, now=time.time())["freshness"]
    assert fresh["verdict"] == "pass" and fresh["late"] == []


def test_since_compares_compact_dates_as_dates(table):
    for ds in ("20261101", "20261102", "20261103"):
        table.append(rows(0, 10, ds))
    rep = quality_report(table, since="2026-11-02")
    assert [p["partition"]["ds"] for p in rep["partitions"]] == ["20261102", "20261103"]


def test_heat_map_hatches_held_partitions_and_leaves_a_missing_day_grey(table, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from samplestore.table.quality import plot_missing_heatmap

    table.set_expectations([QUARANTINE_X2, {"rule": "freshness", "deadline_hours": 24}])
    table.append(rows(0, 100, "2026-11-01"))
    table.append(rows(100, 100, "2026-11-03", missing=0.5))  # held; 11-02 never came
    rep = quality_report(table, now=1.9e9)
    assert [(p["partition"]["ds"], p["state"]) for p in rep["partitions"]] == [("2026-11-01", "visible"),
                                                                               ("2026-11-03", "held")]
    assert rep["freshness"][0]["missing"][:3] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    rep["freshness"][0]["missing"] = rep["freshness"][0]["missing"][:3]  # a short plot
    png = plot_missing_heatmap(rep, str(tmp_path / "m.png"))
    rgb = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    colours = {tuple(c) for c in rgb}
    assert (0x1f, 0x77, 0xb4) in colours and (0xd9, 0xd9, 0xd9) in colours  # hatching, the grey gap
    assert plot_missing_heatmap({**rep, "partitions": []}, str(tmp_path / "none.png")) is None
    assert not (tmp_path / "none.png").exists()


def test_an_erasure_in_a_quarantine_is_physical_after_compact_expire_and_gc(table):
    from samplestore.format import FileReader

    table.set_expectations([QUARANTINE_X2])
    table.append(rows(0, 100, "d1"))
    table.append(rows(100, 100, "d1", missing=0.5))  # held, in the same partition as a visible file
    table.delete(pc.field("row_id") >= 190)
    s = table.snapshot(table.current_snapshot_id).summary
    assert s["deleted_rows"] == 10 and s["total_rows"] == 100  # held rows were never in the total
    [q] = table.quarantines()
    table.compact()
    files = table.files(include_quarantined=True)
    assert sorted(f.quarantine_id or 0 for f in files) == [0, q.quarantine_id]  # rewritten apart, still held
    assert table.quarantines()[0].rows == 90 and table.count() == 100
    table.expire_snapshots(retain_last=1)
    table.gc(grace_seconds=0)
    on_disk = []
    for entry in table.storage.list_files(table.dir):
        if entry.path.endswith(".ssf"):
            with FileReader(entry.path, table.storage) as r:
                on_disk += r.read(["row_id"]).column("row_id").to_pylist()
    assert sorted(on_disk) == list(range(190))
    rel = table.release_quarantine(q.quarantine_id)
    assert rel.summary["total_rows"] == 190 and rel.summary["released_files"] == 1
    assert sorted(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_pylist()) == list(range(190))


def test_one_rule_object_is_a_list_of_one_and_a_slot_is_stored_as_reported(table):
    [e] = table.set_expectations({"rule": "missing_rate", "column": "x[02]", "max": 0.1})
    assert e.column == "x[2]" and table.expectations[0].to_dict()["column"] == "x[2]"
    with pytest.raises(ss.DataQualityError, match=r"wrap it in \[ \]"):
        table.set_expectations({"missing_rate": 0.1})


def test_a_commit_reads_statistics_of_its_own_partitions_only(table, monkeypatch):
    for k in range(4):
        table.append(rows(100 * k, 100, f"d{k}"))
    table.set_expectations([{"rule": "label_rate", "column": "y", "min": 0.01},
                            {"rule": "rows", "max_change": 0.5, "window": 2, "action": "reject"}])
    real, seen = table.catalog.files, []

    def files(*args, **kwargs):
        got = real(*args, **kwargs)
        seen.append(({f.partition["ds"] for f in got}, bool(kwargs.get("with_stats"))))
        return got

    monkeypatch.setattr(table.catalog, "files", files)
    with pytest.raises(ss.DataQualityError, match=r"ds=d9: rows is 10, -90.0% from the median 100"):
        table.append(rows(0, 10, "d9"))
    with_stats = [parts for parts, stats in seen if stats]
    assert all(parts <= {"d9"} for parts in with_stats)  # not the statistics of d0..d3
