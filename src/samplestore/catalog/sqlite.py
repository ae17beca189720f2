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
import uuid
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

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
    added_by TEXT NOT NULL,
    added_snapshot INTEGER NOT NULL,
    removed_snapshot INTEGER,
    UNIQUE (table_name, path)
);
CREATE INDEX IF NOT EXISTS files_by_snapshot ON files (table_name, added_snapshot, removed_snapshot);
CREATE TABLE IF NOT EXISTS deletes (
    table_name TEXT NOT NULL,
    file_id INTEGER NOT NULL,
    snapshot_id INTEGER NOT NULL,
    positions BLOB NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (file_id, snapshot_id)
);
CREATE INDEX IF NOT EXISTS deletes_by_table ON deletes (table_name, snapshot_id);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT PRIMARY KEY,
    table_name TEXT NOT NULL,
    snapshot_id INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    owner TEXT NOT NULL,
    keep_later INTEGER NOT NULL DEFAULT 0
);
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
        self._migrate(conn)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))

    # Columns added after the first catalogs were made: (table, column, definition).
    _ADDED_COLUMNS = (
        ("files", "row_group_size", "INTEGER NOT NULL DEFAULT 0"),
        ("files", "added_by", "TEXT NOT NULL DEFAULT 'append'"),
        ("leases", "keep_later", "INTEGER NOT NULL DEFAULT 0"),
    )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older catalog's tables up to date (adding columns never loses data)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, column, definition in self._ADDED_COLUMNS:
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
                "row_group_size, added_by "
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
        return [DataFile(r[1], json.loads(r[2]), r[3], r[4], r[5], r[0], r[6], r[7], stats.get(r[0], {}), r[8], r[9])
                for r in rows]

    def appended_files(self, name: str, after: int) -> list[DataFile]:
        """Files added by appends after snapshot ``after`` (removed ones the catalog still has too)."""
        c = self._conn()
        rows = c.execute(
            "SELECT file_id, path, partition, num_rows, file_bytes, num_row_groups, added_snapshot, removed_snapshot, "
            "row_group_size, added_by FROM files WHERE table_name = ? AND added_snapshot > ? "
            "AND added_by IN ('append', 'stream-append') ORDER BY added_snapshot, file_id", (name, int(after))).fetchall()
        return [DataFile(r[1], json.loads(r[2]), r[3], r[4], r[5], r[0], r[6], r[7], {}, r[8], r[9]) for r in rows]

    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot) of every file the catalog knows for a table."""
        c = self._conn()
        return [tuple(r) for r in c.execute(
            "SELECT file_id, path, removed_snapshot FROM files WHERE table_name = ?", (name,))]

    # -- deletes -------------------------------------------------------------------------
    def deleted_positions(self, name: str, snapshot_id: int, file_ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Deleted row positions (sorted int64) of each file, as of a snapshot."""
        c = self._conn()
        q = "SELECT file_id, positions FROM deletes WHERE table_name = ? AND snapshot_id <= ?"
        args: list[Any] = [name, snapshot_id]
        ids = list(file_ids) if file_ids is not None else None
        if ids is not None:
            if not ids:
                return {}
            q += f" AND file_id IN ({','.join('?' * len(ids))})"
            args += ids
        out: dict[int, list[np.ndarray]] = {}
        for fid, blob in c.execute(q, args):
            out.setdefault(fid, []).append(np.frombuffer(blob, dtype="<i8"))
        return {k: (v[0] if len(v) == 1 else np.unique(np.concatenate(v))) for k, v in out.items()}

    # -- lifecycle -----------------------------------------------------------------------
    def acquire_lease(self, name: str, snapshot_id: int, ttl: float, owner: str = "", keep_later: bool = False) -> str:
        """Pin a snapshot for a reader; GC keeps its files until the lease lapses."""
        lease = uuid.uuid4().hex
        with self._tx() as c:
            c.execute("INSERT INTO leases (lease_id, table_name, snapshot_id, expires_at, owner, keep_later) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (lease, name, snapshot_id, time.time() + ttl, owner, int(keep_later)))
        return lease

    def renew_lease(self, lease_id: str, ttl: float) -> bool:
        """Extend a lease (the reader's heartbeat); False if it had lapsed and was removed."""
        with self._tx() as c:
            # A lease past its expiry is not revived: GC may already have removed its files.
            now = time.time()
            cur = c.execute("UPDATE leases SET expires_at = ? WHERE lease_id = ? AND expires_at > ?",
                            (now + ttl, lease_id, now))
            return cur.rowcount == 1

    def release_lease(self, lease_id: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def live_leases(self, name: str) -> list[tuple[str, int, float, str]]:
        """(lease id, snapshot, expires at, owner) of the unexpired leases of a table."""
        return [tuple(r) for r in self._conn().execute(
            "SELECT lease_id, snapshot_id, expires_at, owner FROM leases WHERE table_name = ? AND expires_at > ?",
            (name, time.time()))]

    def expire_snapshots(self, name: str, keep: Iterable[int]) -> list[int]:
        """Forget every snapshot of a table not in ``keep`` (the current one is always kept)."""
        keep = set(int(k) for k in keep)
        with self._tx() as c:
            row = self._require(c, name)
            keep.add(row[5])
            c.execute("DELETE FROM leases WHERE expires_at <= ?", (time.time(),))
            keep |= {r[0] for r in c.execute("SELECT snapshot_id FROM leases WHERE table_name = ?", (name,))}
            ids = [r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = ?", (name,))]
            drop = [i for i in ids if i not in keep]
            c.executemany("DELETE FROM snapshots WHERE table_name = ? AND snapshot_id = ?", [(name, i) for i in drop])
        return drop

    def unreferenced_files(self, name: str) -> list[tuple[int, str]]:
        """Files live in no retained snapshot and no leased one: (file id, path) safe to delete."""
        c = self._conn()
        c.execute("BEGIN")
        try:
            self._require(c, name)
            pinned = {r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = ?", (name,))}
            now = time.time()
            pinned |= {r[0] for r in c.execute("SELECT snapshot_id FROM leases WHERE table_name = ? AND expires_at > ?",
                                               (name, now))}
            # A follower keeps every file removed after its snapshot (appends it has yet to read).
            since = c.execute("SELECT MIN(snapshot_id) FROM leases WHERE table_name = ? AND expires_at > ? "
                              "AND keep_later != 0", (name, now)).fetchone()[0]
            rows = c.execute("SELECT file_id, path, added_snapshot, removed_snapshot FROM files WHERE table_name = ? "
                             "AND removed_snapshot IS NOT NULL", (name,)).fetchall()
        finally:
            c.execute("COMMIT")
        pins = np.array(sorted(pinned), dtype=np.int64)
        out = []
        for fid, path, added, removed in rows:
            if since is not None and removed > since:
                continue
            # Live in snapshot s iff added <= s < removed.
            lo = np.searchsorted(pins, added, side="left")
            if lo >= len(pins) or pins[lo] >= removed:
                out.append((fid, path))
        return out

    def forget_files(self, name: str, file_ids: Iterable[int]) -> None:
        """Drop files (already deleted from disk) and their statistics and deletes from the catalog."""
        ids = list(file_ids)
        if not ids:
            return
        with self._tx() as c:
            for k in range(0, len(ids), 500):
                part = ids[k:k + 500]
                marks = ",".join("?" * len(part))
                c.execute(f"DELETE FROM column_stats WHERE file_id IN ({marks})", part)
                c.execute(f"DELETE FROM deletes WHERE file_id IN ({marks})", part)
                c.execute(f"DELETE FROM files WHERE table_name = ? AND removed_snapshot IS NOT NULL AND file_id IN ({marks})",
                          (name, *part))

    # -- commit --------------------------------------------------------------------------
    def commit(self, name: str, operation: str, *, add: Iterable[DataFile] = (), remove: Iterable[int] = (),
               schema: Schema | None = None, writer_id: str | None = None, commit_token: str | None = None,
               summary: Mapping[str, Any] | None = None, deletes: Mapping[int, Any] | None = None,
               planned_at: int | None = None) -> Snapshot:
        add, remove = list(add), sorted(set(int(i) for i in remove))
        deletes = {int(k): v for k, v in (deletes or {}).items() if len(v)}
        with self._tx() as c:
            row = self._require(c, name)
            parent = row[5]
            new_id = parent + 1
            removed_rows = 0
            guarded = sorted(set(remove) | set(deletes))
            if planned_at is not None and guarded:
                marks = ",".join("?" * len(guarded))
                late = c.execute(f"SELECT DISTINCT file_id FROM deletes WHERE file_id IN ({marks}) AND snapshot_id > ?",
                                 (*guarded, planned_at)).fetchall()
                if late:
                    raise CommitConflict(
                        f"{operation} on table {name!r} lost a race: rows of file(s) {[r[0] for r in late][:10]} were "
                        f"deleted after snapshot {planned_at}, when this commit was planned; re-plan and retry")
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
                # Rows of these files already deleted were subtracted from the totals by their delete.
                removed_rows -= c.execute(f"SELECT COALESCE(SUM(count), 0) FROM deletes WHERE file_id IN ({marks})",
                                          tuple(remove)).fetchone()[0]
                c.execute(f"UPDATE files SET removed_snapshot = ? WHERE file_id IN ({marks})", (new_id, *remove))
            added_rows = 0
            for f in add:
                cur = c.execute("INSERT INTO files (table_name, path, partition, num_rows, file_bytes, num_row_groups, "
                                "row_group_size, added_by, added_snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (name, f.path, json.dumps(dict(f.partition), sort_keys=True), f.num_rows, f.file_bytes,
                                 f.num_row_groups, f.row_group_size or f.num_rows, operation, new_id))
                fid = cur.lastrowid
                added_rows += f.num_rows
                c.executemany("INSERT INTO column_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                    (fid, col, s.nulls, s.missing, s.values, _sql_value(s.min), _sql_value(s.max), s.bytes,
                     json.dumps(dict(s.extra))) for col, s in f.stats.items()])
            deleted_rows = 0
            if deletes:
                marks = ",".join("?" * len(deletes))
                live = {r[0] for r in c.execute(f"SELECT file_id FROM files WHERE table_name = ? AND removed_snapshot IS NULL "
                                                f"AND file_id IN ({marks})", (name, *deletes))}
                if len(live) != len(deletes):
                    raise CommitConflict(f"delete on table {name!r} lost a race: file(s) "
                                         f"{sorted(set(deletes) - live)[:10]} were replaced; re-plan and retry")
                for fid, pos in deletes.items():
                    arr = np.unique(np.asarray(pos, dtype="<i8"))
                    deleted_rows += len(arr)
                    c.execute("INSERT INTO deletes VALUES (?, ?, ?, ?, ?)", (name, fid, new_id, arr.tobytes(), len(arr)))
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = ? AND snapshot_id = ?", (name, parent)).fetchone()
            prev_totals = json.loads(prev[0]) if prev else {"total_rows": 0, "total_files": 0}
            full = {
                "added_files": len(add), "added_rows": added_rows,
                "removed_files": len(remove), "removed_rows": removed_rows,
                "total_files": prev_totals.get("total_files", 0) + len(add) - len(remove),
                "deleted_rows": deleted_rows,
                "total_rows": prev_totals.get("total_rows", 0) + added_rows - removed_rows - deleted_rows,
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
