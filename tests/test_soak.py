"""Soak: streaming writers (one SIGKILLed and restarted), the compaction daemon expiring to
one snapshot, a slow scan reader and a SampleDataset reader, all real processes at once.

Acceptance of the table guarantees: every committed row exactly once, resume after a kill
from the last commit token, no reader ever fails, replaced files collected while readers
read. Run on the local disk (SQLite catalog) and on the S3 server with the PostgreSQL catalog, where it also checks
erasure: after a delete and compact + expire + gc, no object under the store's prefix holds
a deleted row, and every kept row lies in exactly one. Bounded to 60 s on the local disk,
100 s on S3 (where every request of every process goes to the one moto server in the test
process); on a quiet 2-core machine they take ~26 s and ~56 s.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

import samplestore as ss
from samplestore.format import FileReader
from samplestore.storage import ArrowStorage
from samplestore.table.verify import TABLE_MARKER

HERE = os.path.dirname(__file__)
WORKER = os.path.join(HERE, "soak_workers.py")
sys.path.insert(0, HERE)
from helpers import purge  # noqa: E402
from soak_workers import BATCH, SCHEMA, WRITER_BASE, row_base  # noqa: E402

WRITERS = 3
KILLED = 0  # the writer that is SIGKILLed and restarted
#: How long everything runs together, by where the store lives; starting, stopping and
#: checking take ~15 s more (on S3 more: every request goes to one moto server in this process).
#: With writers appending all along, one compaction step would go on merging the files they
#: keep adding (on S3 several seconds per pass over moto); the daemon's --compact-seconds bound
#: ends each table's compaction so that expiry and GC run in every pass, under the readers.
RUN_SECONDS = {"local": 12.0, "s3": 15.0}
COMPACT_SECONDS = "3"
WALL_SECONDS = {"local": 60, "s3": 100}  # the test's own bound, everything included
KILL_WINDOWS = ((0.15, 0.4), (0.5, 0.75))  # when in the run each SIGKILL lands (fractions, drawn at random)
#: Erasure on S3: writer w1's first batches go, and every 50th row of w2 and of the killed
#: writer w0 (whose unfinished multipart uploads, which may hold copies of its rows as parts,
#: GC aborts: none may be left after the purge).
ERASED_BATCHES = 8
SEED = int(os.environ.get("SOAK_SEED", "2026"))
GC_REMOVED = re.compile(r"gc t: removed [1-9]\d* unreferenced")
DAEMON_STOP = re.compile(r"samplestore\.daemon signal \d+: stopping")
DAEMON_ERROR = re.compile(r"samplestore\.daemon table t: (?!\d+ files ->)")


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


class Proc:
    """A child process whose stdout and stderr are drained by threads (never a full pipe)."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.p = subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._drain, args=(self.p.stdout, self.out, True), daemon=True),
                         threading.Thread(target=self._drain, args=(self.p.stderr, self.err, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _drain(self, pipe, into: list[str], lines: bool) -> None:
        for line in pipe:
            into.append(line)
            if lines:
                self._lines.put(line.rstrip("\n"))
        pipe.close()
        if lines:
            self._lines.put(None)  # end of output

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with ``prefix``; fails naming the process if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name}: no {prefix!r} line within {timeout} s; stderr:\n{self.stderr_tail()}")
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"{self.name} exited ({self.p.poll()}) before a {prefix!r} line; stderr:\n"
                                     f"{self.stderr_tail()}")
            if line.startswith(prefix):
                return line

    def stop(self, timeout: float) -> int:
        """SIGTERM, then wait (SIGKILL if it does not stop in time); returns the exit status."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.err.append(f"[soak: {self.name} did not stop within {timeout} s of SIGTERM and was killed]\n")
        self.join()
        return self.p.returncode

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=30)

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=10)

    def stderr_tail(self, n: int = 4000) -> str:
        return "".join(self.err)[-n:]


def writer_args(root: str, index: int, seconds: float) -> list[str]:
    return [sys.executable, WORKER, "writer", root, str(index), str(seconds)]


def start_writer(root: str, index: int, seconds: float, procs: list[Proc]) -> tuple[Proc, int]:
    """Start writer ``index``; returns it and the batch it resumes at (from its last commit token)."""
    w = Proc(f"writer w{index}", writer_args(root, index, seconds))
    procs.append(w)
    return w, int(w.wait_line("ready", 60).split()[1])


def soak_root(where: str, tmp_path, request) -> str:
    """The store's root: a local folder, or a prefix in a new bucket on the S3 server with the
    endpoint in the URI's query string, so that every process opens the same store from this
    one string (its catalog from SAMPLESTORE_CATALOG, the server's fake credentials from the
    environment s3server.py set)."""
    if where == "local":
        return str(tmp_path / "soak")
    server = request.getfixturevalue("s3_server")
    query = "&".join(f"{k}={v}" for k, v in server.options.items())
    return f"s3://{server.new_bucket()}/soak?{query}"


def rows_in_objects(fs: pafs.FileSystem, prefix: str) -> tuple[np.ndarray, list[str], list[str]]:
    """What the object store holds under ``prefix``, listed and read straight from it (not
    through the catalog, so deletion vectors do not hide anything): the row ids in every
    data object (repeats kept), the data objects, and the other objects."""
    storage = ArrowStorage(fs)
    parts, data, others = [], [], []
    for info in fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        if not info.path.endswith(".ssf"):
            others.append(info.path)
            continue
        with FileReader(info.path, storage) as r:
            parts.append(r.read(["row_id"]).column("row_id").to_numpy())
        data.append(info.path)
    return (np.concatenate(parts) if parts else np.empty(0, np.int64)), data, others


def unfinished_uploads(endpoint: str, prefix: str) -> list[str]:
    """The keys of the multipart uploads under ``prefix`` not completed nor aborted (asked of
    the server with boto3: pyarrow cannot list them)."""
    import boto3

    bucket, _, key_prefix = prefix.partition("/")
    s3 = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix=key_prefix).get("Uploads", [])]


def check_erasure(table, server, prefix: str, problems: list[str]) -> str:
    """Delete some committed rows, purge as the daemon does (compact, expire to the last
    snapshot, gc with no grace), then read every object under ``prefix``: no deleted row
    anywhere, every kept row exactly once. Appends what broke to ``problems``; returns a
    line for the summary."""
    fs = server.filesystem()
    ids = table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy()
    w0, w1, w2 = row_base(KILLED), row_base(1), row_base(2)
    gone = ids[((ids >= w1) & (ids < w1 + ERASED_BATCHES * BATCH))
               | ((ids >= w2) & (ids < w2 + WRITER_BASE) & (ids % 50 == 0))
               | ((ids >= w0) & (ids < w0 + WRITER_BASE) & (ids % 50 == 0))]
    before, _, _ = rows_in_objects(fs, prefix)
    held = int(np.isin(before, gone).sum())
    if held < len(gone):
        problems.append(f"erasure: only {held} of the {len(gone)} committed rows to delete were found in objects "
                        f"under {prefix!r}: the check cannot see the store's data")
    snap = table.delete(pc.field("row_id").isin(gone))
    deleted = snap.summary.get("deleted_rows") if snap is not None else 0
    if deleted != len(gone):
        problems.append(f"erasure: the delete of {len(gone)} rows committed {deleted}")
    report = purge(table)
    after, data, others = rows_in_objects(fs, prefix)
    uploads = unfinished_uploads(server.endpoint, prefix)
    if uploads:
        problems.append(f"erasure: {len(uploads)} unfinished multipart uploads are left under {prefix!r} after "
                        f"compact + expire + gc: {uploads[:5]}")
    kept = np.setdiff1d(ids, gone)
    lingering = np.intersect1d(after, gone)
    if len(lingering):
        problems.append(f"erasure: {len(lingering)} deleted rows are still in objects under {prefix!r} after "
                        f"compact + expire + gc (first: {lingering[:5].tolist()}); objects: {data}")
    if not np.array_equal(np.sort(after), kept):
        extra = np.setdiff1d(after, kept)
        repeats = len(after) - len(np.unique(after))
        problems.append(f"erasure: objects under {prefix!r} hold {len(after)} rows ({repeats} repeats), "
                        f"{len(kept)} kept rows expected: {len(np.setdiff1d(kept, after))} missing, "
                        f"{len(extra)} unexpected (first: {extra[:5].tolist()})")
    scanned = np.sort(table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy())
    if not np.array_equal(scanned, kept):
        problems.append(f"erasure: the table holds {len(scanned)} rows after the delete, {len(kept)} expected")
    if [o for o in others if o.rsplit("/", 1)[-1] != TABLE_MARKER]:
        problems.append(f"erasure: objects under {prefix!r} that are neither data files nor the table's marker: "
                        f"{others}")
    return (f"erasure: {len(gone)} rows deleted ({held} copies in objects before), purge removed "
            f"{report['files_removed']} files; then {len(data)} data objects hold {len(after):,} rows "
            f"({len(uploads)} unfinished uploads), "
            f"{len(lingering)} deleted, each kept row {'once' if np.array_equal(np.sort(after), kept) else 'NOT once'}")


def committed_batches(table, index: int) -> np.ndarray:
    """Batch indexes of writer ``index`` present in the current snapshot (with repeats)."""
    # The scan leases its snapshot: the daemon cannot remove a file under it, so any error
    # here is a failure of the guarantees, not something to retry.
    ids = table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy()
    mine = ids[(ids >= row_base(index)) & (ids < row_base(index) + WRITER_BASE)]
    return (mine - row_base(index)) // BATCH


@pytest.mark.slow
def test_soak_killed_writer_daemon_slow_scan_and_dataset(tmp_path, request, monkeypatch):
    """Where the store lives x its catalog: the local disk with the embedded catalog, then the
    S3 server with the PostgreSQL catalog many hosts would share (PostgreSQL on the local disk
    runs the multi-process tests of tests/table/test_processes.py). One test, one soak after the
    other: two at once on a 2-core machine slow each past its time bound, and two tests would
    leave one xdist worker waiting for the other's soak instead of running the rest."""
    (tmp_path / "local").mkdir()
    soak(tmp_path / "local", request, "local", "sqlite")
    monkeypatch.setenv("SAMPLESTORE_CATALOG", request.getfixturevalue("pg_server").uri())
    (tmp_path / "s3").mkdir()
    soak(tmp_path / "s3", request, "s3", "postgres")


def soak(tmp_path, request, where: str, catalog_backend: str) -> None:
    """One soak of the store at ``where`` (its catalog: SAMPLESTORE_CATALOG, else SQLite)."""
    started = time.monotonic()
    rng = np.random.default_rng(SEED)
    root = soak_root(where, tmp_path, request)
    run_seconds = RUN_SECONDS[where]
    limit = run_seconds + 40  # the processes' own time limit: a bound only, the test stops them before
    store = ss.open_store(root, create=True)
    table = store.create_table("t", SCHEMA, partition_by=["ds"])
    erasure = ""
    cli = [sys.executable, "-m", "samplestore"]
    procs: list[Proc] = []
    problems: list[str] = []
    restarts: list[str] = []
    phases: dict[str, float] = {}  # seconds each part of the run took, for the summary
    try:
        # The daemon: a pass every 0.5 s; expiry to 1 snapshot and GC with no grace, so that
        # replaced files are deleted from disk while readers may still be on them.
        daemon = Proc("daemon", [*cli, "compact", root, "--daemon", "--interval", "0.5", "--target-mb", "1",
                                 "--retain-last", "1", "--grace", "0", "--compact-seconds", COMPACT_SECONDS])
        procs.append(daemon)
        # Every process starts at once (their imports overlap); the readers report ready once
        # the table has a snapshot, so that they start on a table with rows.
        writers = {i: Proc(f"writer w{i}", writer_args(root, i, limit)) for i in range(WRITERS)}
        scan_reader = Proc("scan reader", [sys.executable, WORKER, "scan", root, str(limit)])
        dataset_reader = Proc("dataset reader", [sys.executable, WORKER, "dataset", root, str(limit)])
        procs += [*writers.values(), scan_reader, dataset_reader]
        for w in writers.values():
            assert int(w.wait_line("ready", 60).split()[1]) == 0  # a new writer starts at batch 0
        scan_reader.wait_line("ready", 60)
        dataset_reader.wait_line("ready", 60)
        assert table.current_snapshot_id > 0
        phases["start"] = time.monotonic() - started

        # SIGKILL one writer at random moments, and restart it from its last commit token.
        run_start = time.monotonic()
        run_end = run_start + run_seconds
        for kill, (lo, hi) in enumerate(KILL_WINDOWS):
            time.sleep(max(0.0, run_start + run_seconds * float(rng.uniform(lo, hi)) - time.monotonic()))
            victim = writers[KILLED]
            victim.kill()
            victim.join()
            token = table.last_commit_token(f"w{KILLED}")
            batches = committed_batches(table, KILLED)
            top = int(batches.max()) if len(batches) else -1
            writers[KILLED], resumed = start_writer(root, KILLED, limit, procs)
            restarts.append(f"kill {kill + 1}: last_commit_token {token!r}, table held batches up to {top}, "
                            f"restarted at batch {resumed}")
            if resumed != top + 1:
                problems.append(f"writer w{KILLED} after kill {kill + 1}: resumed at batch {resumed}, but the table "
                                f"held its batches up to {top} (last_commit_token was {token!r})")

        # Let the run finish, then stop writers cleanly (they commit what they hold).
        time.sleep(max(0.0, run_end - time.monotonic()))
        final_tokens = {}
        for i, w in writers.items():
            if w.stop(timeout=30) != 0:
                problems.append(f"writer w{i} exited {w.p.returncode}: {w.stderr_tail()}")
            done = [ln for ln in w.out if ln.startswith("done")]
            if done:
                final_tokens[i] = int(done[-1].split()[2])  # the last batch it wrote and committed
        readers = {}
        for r in (scan_reader, dataset_reader):
            code = r.stop(timeout=40)
            done = [ln for ln in r.out if ln.startswith("done")]
            readers[r.name] = int(done[-1].split()[1]) if done else 0
            if code != 0 or r.stderr_tail().strip():
                problems.append(f"{r.name} failed (exit {code}) after {readers[r.name]} full passes:\n"
                                f"{r.stderr_tail(2500)}")
            elif readers[r.name] < 1:
                problems.append(f"{r.name} completed no full pass: the run was too short to check it")
        if daemon.stop(timeout=60) != 0:
            problems.append(f"daemon exited {daemon.p.returncode}: {daemon.stderr_tail()}")
        log = "".join(daemon.err)
        phases["run+stop"] = time.monotonic() - started - sum(phases.values())

        # One last compaction pass, then check every invariant and report all that broke.
        last = subprocess.run([*cli, "compact", root, "--target-mb", "1", "--retain-last", "1", "--grace", "0"],
                              env=env(), capture_output=True, text=True, timeout=120)
        if last.returncode != 0:
            problems.append(f"the last compaction pass exited {last.returncode}: {last.stderr[-2000:]}")
        ids = table.scan(columns=["row_id"]).to_arrow().column("row_id").to_numpy()
        duplicated = len(ids) - len(np.unique(ids))
        if duplicated:
            problems.append(f"{duplicated} of {len(ids)} rows in the table more than once")
        for i in range(WRITERS):
            token = table.last_commit_token(f"w{i}")
            if token is None:
                problems.append(f"writer w{i}: last_commit_token is None; it last committed batch "
                                f"{final_tokens.get(i)}")
            elif i in final_tokens and int(token) != final_tokens[i]:
                problems.append(f"writer w{i}: last_commit_token {token}, but it committed batch {final_tokens[i]} last")
            t = int(token) if token is not None else final_tokens.get(i)
            if t is None:
                continue
            batches = committed_batches(table, i)
            have = np.zeros(max(t + 1, int(batches.max()) + 1 if len(batches) else 0), np.int64)
            np.add.at(have, batches, 1)  # rows present of each batch
            if not (have[:t + 1] == BATCH).all() or have[t + 1:].any():
                wrong = np.flatnonzero(have[:t + 1] != BATCH)
                problems.append(
                    f"writer w{i}: batches 0..{t} should each be present once ({(t + 1) * BATCH} rows); found "
                    f"{len(batches)} rows: {int((have[:t + 1] == 0).sum())} batches missing, "
                    f"{int((have[:t + 1] > BATCH).sum())} more than once (first wrong: {wrong[:10].tolist()}), "
                    f"{int(have[t + 1:].sum())} rows after batch {t}")
        phases["compact+check"] = time.monotonic() - started - sum(phases.values())
        verify = subprocess.run([*cli, "verify", root], env=env(), capture_output=True, text=True, timeout=120)
        if verify.returncode != 0:
            problems.append(f"samplestore verify exited {verify.returncode}: {verify.stdout[-2000:]}{verify.stderr[-1000:]}")
        phases["verify"] = time.monotonic() - started - sum(phases.values())
        if where == "s3":
            erasure = "; " + check_erasure(table, request.getfixturevalue("s3_server"), store.storage.root,
                                           problems)
    finally:
        for p in procs:
            p.kill()
            p.join()

    wall = time.monotonic() - started
    phases["erasure+cleanup" if where == "s3" else "cleanup"] = wall - sum(phases.values())
    stop = DAEMON_STOP.search(log)  # the daemon is stopped after the readers
    summary = (f"soak {where}+{catalog_backend} (seed {SEED}, {wall:.1f} s): {len(ids):,} rows, "
               f"{len(table.files())} files, "
               f"{log.count('compacted t')} compaction commits, {log.count('snapshots of t (kept')} expiries, "
               f"{len(GC_REMOVED.findall(log))} GC passes that removed replaced files "
               f"({len(GC_REMOVED.findall(log[:stop.start() if stop else len(log)]))} while the readers ran), "
               f"{len(DAEMON_ERROR.findall(log))} daemon errors; reader passes {readers}; "
               + "; ".join(restarts) + erasure + "; seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    print("\n" + summary)
    assert not problems, summary + "\n" + "\n".join(problems)
    # The run exercised what it is meant to: compaction, expiry and deletion of replaced files
    # while the readers were reading them.
    assert "compacted t" in log and GC_REMOVED.search(log[:stop.start() if stop else len(log)]), summary
    assert wall < WALL_SECONDS[where], summary
