"""Data-quality gates from the command line: a generated week of Criteo TSV days, checked at
ingest (quarantine, reject), released, and reported by `samplestore quality`."""

import datetime as dt
import json

import pytest

import samplestore as ss
from samplestore import datagen
from samplestore.table.stats import table_stats
from samplestore.torch import SampleDataset

from .test_cli import run

ROWS = 2_000
# Every integer column misses 5% of its values, but the bad day's i4 (the slot dense[3]) 40%.
USUAL = {f"i{k}": 0.05 for k in range(1, 14)}


def _week(tmp_path, bad_day: int = 3, days: int = 7, special: dict | None = None) -> list[tuple[str, str]]:
    """(ds, path) of a week of Criteo TSV days ending yesterday; day ``bad_day`` has 40% of
    i4 missing; ``special`` maps a day index to other write_criteo_tsv arguments."""
    first = dt.date.today() - dt.timedelta(days=days)
    out = []
    for d in range(days):
        ds = (first + dt.timedelta(days=d)).isoformat()
        args = {"n": ROWS, "rates": {**USUAL, "i4": 0.4} if d == bad_day else USUAL, **(special or {}).get(d, {})}
        path = tmp_path / f"day-{ds}.tsv"
        datagen.write_criteo_tsv(str(path), seed=d, **args)
        out.append((ds, str(path)))
    return out


def _expect(capsys, tmp_path, root, rules) -> None:
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    code, _, err = run(capsys, "expect", root, "c", tmp_path / "rules.json")
    assert code == 0, err


def _ingest(capsys, root, ds, path, *extra):
    return run(capsys, "ingest", root, "c", path, "--format", "criteo", "--partition", f"ds={ds}", "--quiet", *extra)


def test_a_day_with_40_percent_missing_is_quarantined_invisible_then_released(tmp_path, capsys):
    root = tmp_path / "store"
    week = _week(tmp_path)
    code, _, err = _ingest(capsys, root, *week[0], "--create")
    assert code == 0, err
    _expect(capsys, tmp_path, root, [{"rule": "missing_rate", "column": "dense[3]", "max": 0.1, "action": "quarantine"}])
    said = {}
    for ds, path in week[1:]:
        code, said[ds], _ = _ingest(capsys, root, ds, path)
        assert code == 0
    code, out, _ = run(capsys, "quarantine", root, "c", "--json")
    [q] = json.loads(out)
    assert f"quarantined (2,000 rows, quarantine {q['id']}): partition ds={week[3][0]}: missing_rate of dense[3] is " \
           f"{q['violations'][0]['measured']:.4g}, above the bound max=0.1" in said[week[3][0]]
    assert "--release" in said[week[3][0]] and "quarantined" not in said[week[4][0]]
    bad = week[3][0]
    assert q["partition"] == {"ds": bad} and q["rows"] == ROWS
    [v] = q["violations"]
    assert (v["rule"], v["column"], v["bound"]) == ("missing_rate", "dense[3]", {"max": 0.1})
    assert 0.37 < v["measured"] < 0.43
    assert f"partition ds={bad}" in v["message"] and "dense[3]" in v["message"]
    assert f"{v['measured']:.4g}" in v["message"] and "max=0.1" in v["message"]
    code, out, _ = run(capsys, "quarantine", root, "c")
    assert f"{q['id']}: partition ds={bad}: 2,000 rows" in out and "missing_rate of dense[3]: measured 0.4" in out

    # An open quarantine is rows training does not get: the report fails and shows the day held.
    code, out, _ = run(capsys, "quality", root, "c")
    assert code == 1 and f"{bad}" in out and "HELD 2,000 rows" in out and "1 open quarantines" in out
    rep = json.loads(run(capsys, "quality", root, "c", "--json")[1])
    assert rep["failures"] == {"checks": 0, "freshness": 0, "quarantines": 1}
    assert [p["state"] for p in rep["partitions"]].count("held") == 1

    table = ss.open_store(str(root)).table("c")
    held_at = table.current_snapshot_id
    assert _dataset_rows(table) == 6 * ROWS
    assert table.count() == 6 * ROWS and table.count(include_quarantined=True) == 7 * ROWS
    assert bad not in {f.partition["ds"] for f in table.files()}
    assert table_stats(table)["rows"] == 6 * ROWS

    code, out, _ = run(capsys, "quarantine", root, "c", "--release", q["id"])
    assert code == 0 and "released" in out
    assert _dataset_rows(table) == 7 * ROWS
    assert _dataset_rows(table, snapshot=held_at) == 6 * ROWS  # time travel: as it was
    code, out, _ = run(capsys, "quarantine", root, "c", "--json")
    assert json.loads(out) == []
    code, out, err = run(capsys, "quarantine", root, "c", "--release", q["id"], "--json")
    assert code == 2 and "released already" in json.loads(out)["error"]


def _dataset_rows(table, snapshot=None) -> int:
    ds = SampleDataset(table, features=["click"], batch_size=1024, shuffle=False, snapshot=snapshot)
    return sum(len(b.labels) for b in ds)


def test_reject_commits_nothing_of_the_day_and_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "store"
    week = _week(tmp_path, days=4)
    assert _ingest(capsys, root, *week[0], "--create")[0] == 0
    _expect(capsys, tmp_path, root, [{"rule": "missing_rate", "column": "dense[3]", "max": 0.1, "action": "reject"}])
    for ds, path in week[1:3]:
        assert _ingest(capsys, root, ds, path)[0] == 0
    before = ss.open_store(str(root)).table("c").current_snapshot_id
    code, out, err = _ingest(capsys, root, *week[3])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"partition ds={week[3][0]}" in err and "missing_rate of dense[3] is 0.4" in err and "max=0.1" in err
    assert "nothing was committed" in err
    table = ss.open_store(str(root)).table("c")
    assert table.current_snapshot_id == before and table.count(include_quarantined=True) == 3 * ROWS
    assert week[3][0] not in {f.partition["ds"] for f in table.files(include_quarantined=True)}
    day_folder = root / "tables" / "c" / "data" / f"ds={week[3][0]}"
    assert not day_folder.exists() or not any(p.is_file() for p in day_folder.rglob("*"))  # the writer removed them
    code, out, _ = run(capsys, "quality", root, "nope", "--json")
    assert code == 2 and "no table 'nope'" in json.loads(out)["error"]


def test_half_rows_all_zero_labels_and_a_missing_day_are_caught(tmp_path, capsys):
    root = tmp_path / "store"
    # Day 4 half the rows, day 5 all labels 0, day 2 never arrives.
    week = _week(tmp_path, bad_day=-1, special={4: {"n": ROWS // 2}, 5: {"click_rate": 0.0}})
    assert _ingest(capsys, root, *week[0], "--create")[0] == 0
    _expect(capsys, tmp_path, root, [
        {"rule": "rows", "max_change": 0.3, "window": 3, "action": "warn"},
        {"rule": "label_rate", "column": "click", "min": 0.05, "max": 0.95, "action": "quarantine"},
        {"rule": "freshness", "column": "ds", "deadline_hours": 24 * 30, "action": "warn"},
    ])
    for d, (ds, path) in enumerate(week[1:], 1):
        if d != 2:
            assert _ingest(capsys, root, ds, path)[0] == 0
    table = ss.open_store(str(root)).table("c")
    half = next(s for s in table.snapshots() if s.summary.get("quality_warnings"))
    [warning] = half.summary["quality_warnings"]
    assert f"partition ds={week[4][0]}: rows is 1,000, -50.0% from the median 2,000" in warning
    [q] = table.quarantines()
    assert q.partition == {"ds": week[5][0]} and q.violations[0]["measured"] == 0.0
    assert q.violations[0]["bound"] == {"min": 0.05}

    # As of the day after the last day's deadline: every day is due; day 2 is missing.
    as_of = (dt.datetime.combine(dt.date.fromisoformat(week[-1][0]), dt.time()) + dt.timedelta(days=30, hours=1))
    code, out, err = run(capsys, "quality", root, "c", "--as-of", as_of.isoformat(), "--json")
    assert code == 1, err
    rep = json.loads(out)
    [fresh] = rep["freshness"]
    assert fresh["verdict"] == "fail" and fresh["late"] == []
    # Day 5 is quarantined, so training does not have it either: both are missing.
    assert fresh["missing"] == [week[2][0], week[5][0]]
    by_day = {p["partition"]["ds"]: p for p in rep["partitions"]}
    rows_check = next(c for c in by_day[week[4][0]]["checks"] if c["rule"] == "rows")
    assert rows_check["verdict"] == "fail" and rows_check["change"] == -0.5
    code, out, _ = run(capsys, "quality", root, "c", "--as-of", as_of.isoformat())
    assert code == 1 and f"partition ds={week[2][0]} is missing" in out and "FAIL rows" in out
    # Released, the zero-label day fails its label rule in the report too.
    table.release_quarantine(q.quarantine_id)
    rep = json.loads(run(capsys, "quality", root, "c", "--json", "--since", week[3][0])[1])
    assert [p["partition"]["ds"] for p in rep["partitions"]] == [week[3][0], week[4][0], week[5][0], week[6][0]]
    label = {p["partition"]["ds"]: next(c for c in p["checks"] if c["rule"] == "label_rate") for p in rep["partitions"]}
    assert label[week[5][0]]["verdict"] == "fail" and label[week[5][0]]["measured"] == 0.0
    assert label[week[6][0]]["verdict"] == "pass"


def test_the_report_matches_the_catalog_statistics_and_draws_the_heat_map(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    root = tmp_path / "store"
    week = _week(tmp_path, days=5)
    assert _ingest(capsys, root, *week[0], "--create")[0] == 0
    _expect(capsys, tmp_path, root, [{"rule": "missing_rate", "column": "dense[3]", "max": 0.1, "action": "warn"},
                             {"rule": "list_length_p99", "column": "c1", "max": 1, "action": "warn"},
                             {"rule": "range", "column": "dense", "min": 0, "action": "warn"}])
    for ds, path in week[1:]:
        assert _ingest(capsys, root, ds, path)[0] == 0
    png = tmp_path / "missing.png"
    code, out, err = run(capsys, "quality", root, "c", "--json", "--plot", png)
    assert code == 1, err  # the bad day's missing rate
    rep = json.loads(out)
    table = ss.open_store(str(root)).table("c")
    st = table_stats(table, by_partition=True)
    assert rep["snapshot_id"] == st["snapshot_id"] and len(rep["partitions"]) == len(st["partitions"]) == 5
    for p, s in zip(rep["partitions"], st["partitions"]):
        assert p["partition"] == s["partition"] and p["rows"] == s["rows"]
        for name, col in s["columns"].items():
            assert p["missing_rate"][name] == pytest.approx(col["missing_fraction"])
        for i, n in enumerate(s["columns"]["dense"]["missing_by_dim"]):
            assert p["missing_rate"][f"dense[{i}]"] == pytest.approx(n / s["rows"])
        checks = {c["rule"]: c for c in p["checks"]}
        assert checks["missing_rate"]["measured"] == pytest.approx(s["columns"]["dense"]["missing_by_dim"][3] / s["rows"])
        assert checks["list_length_p99"]["measured"] == s["columns"]["c1"]["list_length"]["p99"]
        assert checks["range"]["measured"] == s["columns"]["dense"]["min"]
        assert p["psi"]["click"] is None or p["psi"]["click"]["max"] < 0.01  # the same label process each day
    verdicts = [next(c["verdict"] for c in p["checks"] if c["rule"] == "missing_rate") for p in rep["partitions"]]
    assert verdicts == ["pass", "pass", "pass", "fail", "pass"]
    assert rep["partitions"][0]["psi"]["dense"] is None  # nothing before the first day
    assert all(p["psi"]["dense"]["max"] < 0.1 for p in rep["partitions"][1:])  # same generator: stable
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_a_missing_day_alone_fails_the_report(tmp_path, capsys):
    root = tmp_path / "store"
    week = _week(tmp_path, bad_day=-1, days=3)
    for k in (0, 2):  # day 1 never arrives
        assert _ingest(capsys, root, *week[k], *(["--create"] if k == 0 else []))[0] == 0
    _expect(capsys, tmp_path, root, [{"rule": "freshness", "deadline_hours": 24 * 30}])
    as_of = dt.datetime.combine(dt.date.fromisoformat(week[2][0]), dt.time()) + dt.timedelta(days=30, hours=1)
    code, out, _ = run(capsys, "quality", root, "c", "--json", "--as-of", as_of.isoformat())
    rep = json.loads(out)
    assert code == 1 and rep["failures"] == {"checks": 0, "freshness": 1, "quarantines": 0}
    assert rep["freshness"][0]["missing"] == [week[1][0]]
    # The rows failure of the report is written with thousands separators, not 1e+04.
    _expect(capsys, tmp_path, root, {"rule": "rows", "min": 12345})  # one object: a list of one
    code, out, _ = run(capsys, "quality", root, "c")
    assert code == 1 and "FAIL rows: 2,000, bound min=12345" in out
    for bad in ("0", "-3"):
        code, _, err = run(capsys, "quality", root, "c", "--psi-window", bad)
        assert code == 2 and "--psi-window" in err and "at least 1" in err


def test_quarantine_json_entries_name_the_rule_value_and_bound(tmp_path, capsys):
    root = tmp_path / "store"
    week = _week(tmp_path, bad_day=1, days=2)
    assert _ingest(capsys, root, *week[0], "--create")[0] == 0
    _expect(capsys, tmp_path, root, [{"rule": "missing_rate", "column": "dense[03]", "max": 0.1, "action": "quarantine"}])
    code, out, _ = run(capsys, "expect", root, "c", "--json")
    assert json.loads(out)["expectations"][0]["column"] == "dense[3]"  # stored as it is reported
    assert _ingest(capsys, root, *week[1])[0] == 0
    [q] = json.loads(run(capsys, "quarantine", root, "c", "--json")[1])
    assert (q["rule"], q["column"], q["bound"]) == ("missing_rate", "dense[3]", {"max": 0.1})
    assert q["measured"] == q["violations"][0]["measured"] and 0.35 < q["measured"] < 0.45


def test_an_empty_table_writes_no_heat_map(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    root = tmp_path / "store"
    ss.open_store(str(root), create=True).create_table("c", ss.Schema([ss.Dense("x", dim=2)]))
    code, out, err = run(capsys, "quality", root, "c", "--plot", tmp_path / "m.png")
    assert code == 0 and "no heat map written" in err and "Warning" not in err
    assert not (tmp_path / "m.png").exists()


def test_a_warning_is_printed_once_and_the_daemon_still_logs(tmp_path):
    import subprocess
    import sys

    script = ("import logging, samplestore\n"
              "log = logging.getLogger('samplestore.quality')\n"
              "log.warning('before basicConfig')\n"  # the CLI printed it already: not again on stderr
              "logging.basicConfig(level=logging.INFO)\n"  # what `samplestore compact` does
              "log.warning('after basicConfig')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "before" not in r.stderr and "after basicConfig" in r.stderr
