"""Tables: appends, snapshots and time travel, partitions and pruning, evolution, streaming."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import BOTH_CATALOGS, assert_same_data
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from s3server import make_store

import samplestore as ss
from samplestore import datagen

SCHEMA = ss.Schema([
    ss.Scalar("row_id", "int64", nullable=False),
    ss.Sparse("ids"),
    ss.Label("y"),
    ss.Scalar("ds", "string"),
])


def rows(start: int, n: int, days=("2026-11-01", "2026-11-02", "2026-11-03")) -> pa.Table:
    r = np.arange(start, start + n)
    return pa.table({
        "row_id": pa.array(r),
        "ids": pa.array([[int(x), int(x) + 1][: int(x) % 3] for x in r], pa.list_(pa.int64())),
        "y": pa.array((r % 2).astype(np.float32)),
        "ds": pa.array([days[int(x) % len(days)] for x in r]),
    })


def ids_of(table: ss.Table, **scan) -> list[int]:
    return sorted(table.scan(columns=["row_id"], **scan).to_arrow().column("row_id").to_pylist())


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, catalog_backend):
    return make_store(request.param, tmp_path, request)


@BOTH_CATALOGS
def test_append_partitions_and_time_travel(store):
    t = store.create_table("events", SCHEMA, partition_by=["ds"])
    s1 = t.append(rows(0, 100))
    assert s1.snapshot_id == 1 and s1.summary["added_files"] == 3
    t.append(rows(100, 50))
    t.append(rows(150, 25))
    assert t.count() == 175 and len(t.snapshots()) == 3
    assert ids_of(t, snapshot=1) == list(range(100))
    assert ids_of(t, snapshot=2) == list(range(150))
    assert ids_of(t) == list(range(175))
    assert ids_of(t, as_of=t.snapshots()[1].created_at) == list(range(150))
    with pytest.raises(ss.SnapshotNotFound, match=r"snapshots: \[1, 2, 3\]"):
        t.scan(snapshot=7)
    # Files live in hive-style partition folders.
    folders = {os.path.relpath(e.path, t.data_dir).split("/")[0] for e in t.storage.list_files(t.data_dir)}
    assert sorted(folders) == ["ds=2026-11-01", "ds=2026-11-02", "ds=2026-11-03"]


@BOTH_CATALOGS
def test_scan_contents_match_input(store):
    t = store.create_table("events", SCHEMA, partition_by=["ds"])
    data = rows(0, 300)
    t.append(data)
    got = t.scan().to_arrow()
    order = pc.sort_indices(got, [("row_id", "ascending")])
    assert_same_data(got.take(order), SCHEMA.conform(data))
    reader = t.scan(columns=["y", "row_id"]).to_batches()
    assert isinstance(reader, pa.RecordBatchReader) and reader.schema.names == ["y", "row_id"]


@BOTH_CATALOGS
def test_partition_pruning_and_exact_filtering(store):
    t = store.create_table("events", SCHEMA, partition_by=["ds"])
    t.append(rows(0, 300))
    f = pc.field("ds") == "2026-11-02"
    scan = t.scan(filter=f)
    assert scan.plan().num_files == 1
    assert ids_of(t, filter=f) == [i for i in range(300) if i % 3 == 1]
    g = (pc.field("ds") == "2026-11-02") & (pc.field("row_id") < 50)
    assert ids_of(t, filter=g) == [i for i in range(50) if i % 3 == 1]
    assert t.scan(filter=pc.field("row_id").isin([4, 7])).count() == 2
    # A filter on a column outside the projection still applies.
    assert t.scan(columns=["y"], filter=pc.field("row_id") >= 290).count() == 10
    # Sound pruning: is_valid() must not prune files whose rows are all valid.
    assert t.scan(filter=pc.field("ds").is_valid() & (pc.field("ds") == "2026-11-01")).count() == 100


@BOTH_CATALOGS
def test_statistics_prune_files_and_row_groups(store):
    t = store.create_table("events", SCHEMA)
    for k in range(5):
        t.append(rows(k * 1000, 1000), row_group_rows=100)
    f = pc.field("row_id") >= 4500
    assert t.scan(filter=f).plan().num_files == 1
    scan = t.scan(filter=f)
    from samplestore.format import FileReader
    task = scan.plan().tasks[0]
    with FileReader(task.path, t.storage) as r:
        assert scan._row_groups(r, task) == [5, 6, 7, 8, 9]
    assert ids_of(t, filter=f) == list(range(4500, 5000))


@BOTH_CATALOGS
def test_bad_append_commits_nothing_and_leaves_no_file(store):
    t = store.create_table("events", SCHEMA, partition_by=["ds"])
    t.append(rows(0, 10))
    bad = rows(10, 10).set_column(2, "y", pa.array([None] * 10, pa.float32()))
    with pytest.raises(ss.SchemaError, match="'y'"):
        t.append(bad)
    assert len(t.snapshots()) == 1 and t.count() == 10
    from samplestore.table.verify import leftover_files
    assert leftover_files(t) == ([], [])


@BOTH_CATALOGS
def test_schema_evolution_reads_defaults_for_old_files(store):
    t = store.create_table("events", SCHEMA)
    t.append(rows(0, 10))
    s = t.add_features([ss.Sparse("new_ids"), ss.Dense("score", dim=2)])
    assert s.operation == "schema" and "new_ids" in t.schema
    new = rows(10, 5).append_column("new_ids", pa.array([[7]] * 5, pa.list_(pa.int64())))
    new = new.append_column("score", pa.array([[1.0, 2.0]] * 5, pa.list_(pa.float32(), 2)))
    t.append(new)
    got = t.scan(columns=["row_id", "new_ids", "score"]).to_arrow().sort_by("row_id")
    assert got.column("new_ids").to_pylist() == [[]] * 10 + [[7]] * 5
    assert got.column("score").to_pylist() == [[0.0, 0.0]] * 10 + [[1.0, 2.0]] * 5
    # The snapshot before the change still reads with the old schema.
    assert t.scan(snapshot=1).to_arrow().column_names == SCHEMA.names


@BOTH_CATALOGS
def test_streaming_writer_rolls_commits_and_resumes_without_duplicates(store):
    t = store.create_table("stream", SCHEMA, partition_by=["ds"])
    batch = 40

    def run(crash_after: int | None) -> None:
        last = t.last_commit_token("job")
        start = int(last) + 1 if last is not None else 0
        w = t.writer(commit_every_rows=100, writer_id="job", target_file_bytes=1)
        for k in range(start, 30):
            w.write(rows(k * batch, batch), commit_token=k)
            if crash_after is not None and k == crash_after:
                # The job dies: whatever was not committed is dropped.
                w.abort()
                return
        w.close()

    # Commits land after batches 2, 5 and 8 (every 100 rows); batches 9 and 10 die uncommitted.
    run(crash_after=10)
    assert t.count() == 9 * batch
    assert t.last_commit_token("job") == "8"
    run(crash_after=None)
    assert ids_of(t) == list(range(30 * batch))
    ops = {s.operation for s in t.snapshots()}
    assert ops == {"stream-append"}


def test_streaming_writer_commits_on_time(store, monkeypatch):
    t = store.create_table("stream", SCHEMA)
    clock = [1000.0]
    monkeypatch.setattr("samplestore.table.writer.time.monotonic", lambda: clock[0])
    w = t.writer(commit_every_rows=None, commit_every_seconds=60)
    w.write(rows(0, 10))
    assert t.count() == 0
    clock[0] += 61
    w.write(rows(10, 10))
    assert t.count() == 20
    w.close()


def test_unknown_table_lists_tables(store):
    store.create_table("a", SCHEMA)
    with pytest.raises(ss.TableNotFound, match=r"tables: \['a'\]"):
        store.table("b")


@BOTH_CATALOGS
def test_drop_table_removes_files(store):
    t = store.create_table("a", SCHEMA)
    t.append(rows(0, 10))
    store.drop_table("a")
    assert store.tables() == [] and not os.path.exists(t.dir)


def test_sessions_data_roundtrips_through_a_table(store):
    schema = datagen.sessions_schema(num_sparse=2)
    data = datagen.sessions_like(3000, num_sparse=2, days=3)
    t = store.create_table("s", schema, partition_by=["ds"])
    t.append(data)
    got = t.scan().to_arrow()
    key = lambda tab: pc.sort_indices(tab, [("ts", "ascending"), ("user_id", "ascending")])  # noqa: E731
    assert_same_data(got.take(key(got)), data.take(key(data)))


class TableModel(RuleBasedStateMachine):
    """Appends and schema changes against a model: every snapshot reads what was committed."""

    def __init__(self):
        super().__init__()
        import tempfile
        self.dir = tempfile.mkdtemp()
        self.table = ss.open_store(self.dir, create=True).create_table("m", SCHEMA, partition_by=["ds"])
        self.next_id = 0
        self.by_snapshot: dict[int, list[int]] = {0: []}

    @rule(n=st.integers(0, 30))
    def append(self, n):
        self.table.append(rows(self.next_id, n))
        self.next_id += n
        sid = self.table.current_snapshot_id
        self.by_snapshot[sid] = list(range(self.next_id))

    @rule(n=st.integers(1, 30), commit_every=st.integers(1, 40))
    def stream(self, n, commit_every):
        with self.table.writer(commit_every_rows=commit_every) as w:
            for _ in range(n):
                w.write(rows(self.next_id, 1))
                self.next_id += 1
                if w.snapshots and w.snapshots[-1] not in self.by_snapshot:
                    self.by_snapshot[w.snapshots[-1]] = list(range(self.next_id))
        self.by_snapshot[self.table.current_snapshot_id] = list(range(self.next_id))

    @invariant()
    def snapshots_read_what_was_committed(self):
        for sid in list(self.by_snapshot)[-3:]:
            assert ids_of(self.table, snapshot=sid) == self.by_snapshot[sid]


TestTableModel = TableModel.TestCase
TestTableModel.settings = settings(max_examples=12, stateful_step_count=6, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])
