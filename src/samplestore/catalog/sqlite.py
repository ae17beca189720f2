"""The embedded catalog: one SQLite database (WAL mode) inside the store's root.

Safe for many processes on one host: every change runs in one ``BEGIN IMMEDIATE``
transaction, so commits are serialised by SQLite's write lock and readers see only whole
commits. Connections are per process and per thread, so a forked DataLoader worker never
shares a connection with its parent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

from ..errors import CatalogError, CommitConflict, SnapshotNotFound, TableExists, TableNotFound
from ..schema import Schema
from .base import Catalog, ColumnStats, DataFile, Snapshot, TableMeta, validate_table_name

__all__ = ["SQLiteCatalog", "CATALOG_FILE"]

CATALOG_FILE = "catalog.db"
_SCHEMA_VERSION = "1"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY,
    schema_json TEXT NOT NULL,
    partition_by TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at REAL NOT NULL,
    current_snapshot INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS snapshots (
    table_name TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    parent_id INTEGER,
    created_at REAL NOT NULL,
    operation TEXT NOT NULL,
    summary TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    writer_id TEXT,
    commit_token TEXT,
    PRIMARY KEY (table_name, snapshot_id)
);
CREATE INDEX IF NOT EXISTS snapshots_token ON snapshots (table_name, writer_id, snapshot_id);
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    path TEXT NOT NULL,
    partition TEXT NOT NULL,
    num_rows INTEGER NOT NULL,
    file_bytes INTEGER NOT NULL,
    num_row_groups INTEGER NOT NULL,
    row_group_size INTEGER NOT NULL,
    added_snapshot INTEGER NOT NULL,
    removed_snapshot INTEGER,
    UNIQUE (table_name, path)
);
CREATE INDEX IF NOT EXISTS files_by_snapshot ON files (table_name, added_snapshot, removed_snapshot);
CREATE TABLE IF NOT EXISTS column_stats (
    file_id INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    nulls INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    value_count INTEGER NOT NULL,
    min_value,
    max_value,
    bytes INTEGER NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (file_id, column_name)
);
"""


class SQLiteCatalog(Catalog):
    """A catalog in ``<root>/catalog.db``.

    Args:
        root: the store's root directory (created if missing when ``create`` is true).
        create: create the database if it does not exist.
        timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, root: str, *, create: bool = True, timeout: float = 60.0) -> None:
        self.root = os.path.abspath(root)
        self.path = os.path.join(self.root, CATALOG_FILE)
        self.timeout = timeout
        if not os.path.exists(self.path):
            if not create:
                raise CatalogError(f"no samplestore catalog at {self.path!r} (run `samplestore init {root}`)")
            os.makedirs(self.root, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.executescript(_DDL)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))

    # -- connections ---------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != pid:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn, self._local.pid = conn, pid
        return conn

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise CatalogError(f"catalog {self.path!r} is busy or unavailable: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()

    # -- tables --------------------------------------------------------------------------
    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str],
                     properties: Mapping[str, Any] | None = None) -> TableMeta:
        validate_table_name(name)
        parts = tuple(partition_by)
        with self._tx() as c:
            if c.execute("SELECT 1 FROM tables WHERE name = ?", (name,)).fetchone():
                raise TableExists(f"table {name!r} exists already in {self.root!r}")
            now = time.time()
            c.execute("INSERT INTO tables VALUES (?, ?, ?, ?, ?, 0)",
                      (name, schema.to_json(), json.dumps(parts), json.dumps(dict(properties or {})), now))
        return TableMeta(name, schema, parts, 0, now, dict(properties or {}))

    def drop_table(self, name: str) -> None:
        with self._tx() as c:
            self._require(c, name)
            c.execute("DELETE FROM column_stats WHERE file_id IN (SELECT file_id FROM files WHERE table_name = ?)", (name,))
            c.execute("DELETE FROM files WHERE table_name = ?", (name,))
            c.execute("DELETE FROM snapshots WHERE table_name = ?", (name,))
            c.execute("DELETE FROM tables WHERE name = ?", (name,))

    def table_names(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT name FROM tables ORDER BY name")]

    def _require(self, c: sqlite3.Connection, name: str) -> tuple:
        row = c.execute("SELECT name, schema_json, partition_by, properties, created_at, current_snapshot "
                        "FROM tables WHERE name = ?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in c.execute("SELECT name FROM tables ORDER BY name")]
            raise TableNotFound(f"no table {name!r} in {self.root!r}; tables: {names}")
        return row

    def load_table(self, name: str) -> TableMeta:
        row = self._require(self._conn(), name)
        return TableMeta(row[0], Schema.from_json(row[1]), tuple(json.loads(row[2])), row[5], row[4],
                         json.loads(row[3]))

    # -- snapshots -----------------------------------------------------------------------
    @staticmethod
    def _snapshot(row: tuple) -> Snapshot:
        return Snapshot(row[0], row[1], row[2], row[3], json.loads(row[4]), Schema.from_json(row[5]), row[6], row[7])

    _SNAP_COLS = "snapshot_id, parent_id, created_at, operation, summary, schema_json, writer_id, commit_token"

    def snapshots(self, name: str) -> list[Snapshot]:
        c = self._conn()
        self._require(c, name)
        rows = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? ORDER BY snapshot_id", (name,))
        return [self._snapshot(r) for r in rows]

    def snapshot(self, name: str, snapshot_id: int) -> Snapshot:
        c = self._conn()
        self._require(c, name)
        row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? AND snapshot_id = ?",
                        (name, int(snapshot_id))).fetchone()
        if row is None:
            ids = [r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = ? ORDER BY snapshot_id", (name,))]
            shown = ids if len(ids) <= 20 else ids[:5] + ["..."] + ids[-10:]
            raise SnapshotNotFound(f"table {name!r} has no snapshot {snapshot_id}; snapshots: {shown}")
        return self._snapshot(row)

    def snapshot_as_of(self, name: str, when: float) -> Snapshot:
        """The last snapshot committed at or before ``when`` (seconds since the epoch)."""
        c = self._conn()
        self._require(c, name)
        row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = ? AND created_at <= ? "
                        "ORDER BY snapshot_id DESC LIMIT 1", (name, float(when))).fetchone()
        if row is None:
            first = c.execute("SELECT MIN(created_at) FROM snapshots WHERE table_name = ?", (name,)).fetchone()[0]
            raise SnapshotNotFound(f"table {name!r} has no snapshot as of {when}; the first was committed at {first}")
        return self._snapshot(row)

    def last_commit_token(self, name: str, writer_id: str) -> str | None:
        c = self._conn()
        self._require(c, name)
        row = c.execute("SELECT commit_token FROM snapshots WHERE table_name = ? AND writer_id = ? "
                        "AND commit_token IS NOT NULL ORDER BY snapshot_id DESC LIMIT 1", (name, writer_id)).fetchone()
        return row[0] if row else None

    # -- files ---------------------------------------------------------------------------
    def files(self, name: str, snapshot_id: int, *, with_stats: Iterable[str] | None = None) -> list[DataFile]:
        c = self._conn()
        c.execute("BEGIN")
        try:
            self._require(c, name)
            rows = c.execute(
                "SELECT file_id, path, partition, num_rows, file_bytes, num_row_groups, added_snapshot, removed_snapshot, "
                "row_group_size "
                "FROM files WHERE table_name = ? AND added_snapshot <= ? AND (removed_snapshot IS NULL OR removed_snapshot > ?) "
                "ORDER BY file_id", (name, snapshot_id, snapshot_id)).fetchall()
            stats: dict[int, dict[str, ColumnStats]] = {}
            cols = list(with_stats) if with_stats is not None else []
            if cols and rows:
                marks = ",".join("?" * len(cols))
                q = (f"SELECT s.file_id, column_name, nulls, missing, value_count, min_value, max_value, bytes, extra "
                     f"FROM column_stats s JOIN files f ON f.file_id = s.file_id WHERE f.table_name = ? "
                     f"AND f.added_snapshot <= ? AND (f.removed_snapshot IS NULL OR f.removed_snapshot > ?) "
                     f"AND column_name IN ({marks})")
                for r in c.execute(q, (name, snapshot_id, snapshot_id, *cols)):
                    stats.setdefault(r[0], {})[r[1]] = ColumnStats(r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
        finally:
            c.execute("COMMIT")
        return [DataFile(r[1], json.loads(r[2]), r[3], r[4], r[5], r[0], r[6], r[7], stats.get(r[0], {}), r[8])
                for r in rows]

    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot) of every file the catalog knows for a table."""
        c = self._conn()
        return [tuple(r) for r in c.execute(
            "SELECT file_id, path, removed_snapshot FROM files WHERE table_name = ?", (name,))]

    # -- commit --------------------------------------------------------------------------
    def commit(self, name: str, operation: str, *, add: Iterable[DataFile] = (), remove: Iterable[int] = (),
               schema: Schema | None = None, writer_id: str | None = None, commit_token: str | None = None,
               summary: Mapping[str, Any] | None = None) -> Snapshot:
        add, remove = list(add), sorted(set(int(i) for i in remove))
        with self._tx() as c:
            row = self._require(c, name)
            parent = row[5]
            new_id = parent + 1
            removed_rows = 0
            if remove:
                marks = ",".join("?" * len(remove))
                live = c.execute(f"SELECT file_id, num_rows FROM files WHERE table_name = ? AND removed_snapshot IS NULL "
                                 f"AND file_id IN ({marks})", (name, *remove)).fetchall()
                if len(live) != len(remove):
                    gone = sorted(set(remove) - {r[0] for r in live})
                    raise CommitConflict(
                        f"{operation} on table {name!r} lost a race: file(s) {gone[:10]} were removed by a commit "
                        f"after this one was planned (snapshot {parent} is current); re-plan and retry")
                removed_rows = sum(r[1] for r in live)
                c.execute(f"UPDATE files SET removed_snapshot = ? WHERE file_id IN ({marks})", (new_id, *remove))
            added_rows = 0
            for f in add:
                cur = c.execute("INSERT INTO files (table_name, path, partition, num_rows, file_bytes, num_row_groups, "
                                "row_group_size, added_snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (name, f.path, json.dumps(dict(f.partition), sort_keys=True), f.num_rows, f.file_bytes,
                                 f.num_row_groups, f.row_group_size or f.num_rows, new_id))
                fid = cur.lastrowid
                added_rows += f.num_rows
                c.executemany("INSERT INTO column_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                    (fid, col, s.nulls, s.missing, s.values, _sql_value(s.min), _sql_value(s.max), s.bytes,
                     json.dumps(dict(s.extra))) for col, s in f.stats.items()])
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = ? AND snapshot_id = ?", (name, parent)).fetchone()
            prev_totals = json.loads(prev[0]) if prev else {"total_rows": 0, "total_files": 0}
            full = {
                "added_files": len(add), "added_rows": added_rows,
                "removed_files": len(remove), "removed_rows": removed_rows,
                "total_files": prev_totals.get("total_files", 0) + len(add) - len(remove),
                "total_rows": prev_totals.get("total_rows", 0) + added_rows - removed_rows,
                **dict(summary or {}),
            }
            schema_json = schema.to_json() if schema is not None else row[1]
            now = time.time()
            c.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (name, new_id, parent if parent else None, now, operation, json.dumps(full), schema_json,
                       writer_id, commit_token))
            c.execute("UPDATE tables SET current_snapshot = ?, schema_json = ? WHERE name = ?", (new_id, schema_json, name))
        return Snapshot(new_id, parent if parent else None, now, operation, full,
                        schema if schema is not None else Schema.from_json(row[1]), writer_id, commit_token)


def _sql_value(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return float(v)
