"""Real processes: concurrent appends, and writers killed with SIGKILL at random moments."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import samplestore as ss
from samplestore.table.verify import verify_table

WORKER = os.path.join(os.path.dirname(__file__), "table_workers.py")
sys.path.insert(0, os.path.dirname(__file__))
from helpers import BOTH_CATALOGS  # noqa: E402
from table_workers import BATCH, SCHEMA  # noqa: E402


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.mark.slow
@BOTH_CATALOGS
def test_four_processes_fifty_appends_each(tmp_path, catalog_backend):
    root = str(tmp_path / "store")
    ss.open_store(root, create=True).create_table("t", SCHEMA)
    procs = [subprocess.Popen([sys.executable, WORKER, "append", root, str(p), "50"], env=_env()) for p in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    t = ss.open_store(root).table("t")
    ids = t.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy()
    expected = np.sort(np.concatenate([p * 1_000_000 + np.arange(500) for p in range(4)]))
    assert len(ids) == 2000 and np.array_equal(np.sort(ids), expected)  # every row once
    snaps = t.snapshots()
    assert len(snaps) == 200 and [s.snapshot_id for s in snaps] == list(range(1, 201))
    assert snaps[-1].summary["total_rows"] == 2000


@pytest.mark.slow
@BOTH_CATALOGS
def test_sigkill_of_a_streaming_writer_at_random_moments(tmp_path, catalog_backend):
    root = str(tmp_path / "store")
    ss.open_store(root, create=True).create_table("t", SCHEMA)
    rng = np.random.default_rng(7)
    for trial in range(5):
        p = subprocess.Popen([sys.executable, WORKER, "stream", root], env=_env(), stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.8)))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        t = ss.open_store(root).table("t")
        token = t.last_commit_token("job")
        ids = np.sort(t.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy())
        committed = (int(token) + 1) * BATCH if token is not None else 0
        # Every committed row exactly once, nothing uncommitted visible.
        assert np.array_equal(ids, np.arange(committed)), f"trial {trial}"
        report = verify_table(t)
        assert report["ok"], report["errors"]
    # Where a random kill lands (mid-write, or in a commit with every file closed) depends on
    # the machine's load, so one more writer is killed while it surely holds an open file.
    p = subprocess.Popen([sys.executable, WORKER, "hold", root], env=_env(), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "holding"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    # The killed writers' processes are gone, so their files are leftovers at once, before
    # their leases lapse.
    report = verify_table(t)
    assert len(report["temporary_files"]) > 0
    # Leftovers of the killed writers are reported and removable; the table stays intact.
    report = verify_table(t, remove_leftovers=True, grace_seconds=0)
    assert sorted(report["removed"]) == sorted(report["temporary_files"] + report["orphan_files"])
    assert verify_table(t)["temporary_files"] == [] and verify_table(t)["orphan_files"] == []
    assert len(t.scan(columns=["row_id"]).to_arrow()) == committed


def test_a_lease_owner_is_dead_only_when_its_process_on_this_host_is_gone():
    import socket

    from samplestore.table.lease import owner_is_dead, owner_tag

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert owner_is_dead(owner_tag(p.pid))
    assert not owner_is_dead(owner_tag(os.getpid()))
    assert not owner_is_dead(f"not-{socket.gethostname()} pid {p.pid}")  # another host: cannot tell
    assert not owner_is_dead(f"pid {p.pid}")  # the older owner form: cannot tell
