"""bench.md and bench.json say when the run finished and from which commit."""

import json
import os
import re
import subprocess

from samplestore.bench.report import run_all


def test_bench_report_records_finish_time_and_commit(tmp_path, monkeypatch):
    doc = run_all(str(tmp_path), [], quick=True, log=lambda _: None)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["finished_at"] == doc["finished_at"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                                       saved["finished_at"])
    src = os.path.dirname(os.path.abspath(run_all.__code__.co_filename))
    head = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else "unknown"
    assert saved["git_commit"].split("+")[0] == expected
    md = (tmp_path / "bench.md").read_text().splitlines()
    assert md[2] == f"Finished {saved['finished_at']}, samplestore commit {saved['git_commit']}."
    # Without git on the PATH the run still completes, the commit unknown.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run_all(str(tmp_path / "nogit"), [], quick=True, log=lambda _: None)["git_commit"] == "unknown"
