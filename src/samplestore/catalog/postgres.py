"""A catalog many hosts share: PostgreSQL, through psycopg 3.

One store's catalog is one PostgreSQL *schema* (``samplestore`` unless the URI says
``?schema=NAME``): a database holds as many stores as it has such schemas, and a schema holds
one. ``create=True`` makes the schema and its tables (in one transaction, so a catalog is
never seen half made); a schema that holds tables but no samplestore ``meta`` table, or a
``meta`` of an unknown version, is refused and left as it is.

The commit protocol is the embedded catalog's (see :mod:`samplestore.catalog.sqlite`), with
SQLite's single write lock replaced by a row lock on the table's row (``SELECT ... FOR
UPDATE``): every change to a table runs in one READ COMMITTED transaction that first locks its
row, so two hosts committing to a table at once are serialised exactly as two processes on
one host are by ``BEGIN IMMEDIATE``, and the checks after the lock (is the file still live?)
see every commit before it. Multi-query reads run in one REPEATABLE READ snapshot. Times
(snapshot creation, lease expiry) are the server's clock, so hosts whose clocks differ agree
on when a lease lapses.

Failures of the server or the network raise :class:`CatalogError` naming the catalog by its
URI without a password; a connection broken by a server restart is replaced by the next call,
so an object outlives an outage. Credentials (in the URI, ``PGPASSWORD`` or ``~/.pgpass``, as
libpq reads them) are never stored in the catalog nor shown.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import threading
import time
import uuid
import weakref
from contextlib import suppress
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ..errors import CatalogError, SnapshotNotFound, TableExists, TableNotFound
from ..schema import Schema
from . import common
from .base import (Catalog, partition_key, ColumnStats, DataFile, Quarantine, Snapshot, TableMeta, Tag, validate_table_name,
                   validate_tag_name)

__all__ = ["PostgresCatalog", "DEFAULT_SCHEMA", "SCHEMES"]

#: The PostgreSQL schema holding a store's catalog when the URI names none.
DEFAULT_SCHEMA = "samplestore"
#: URI schemes of PostgreSQL catalogs (libpq's).
SCHEMES = ("postgresql", "postgres")
#: "1": the first PostgreSQL catalogs (the tables of SQLite's version 3). "2": quarantines
#: (files.quarantine_id, files.released_snapshot, the quarantines table; SQLite's version 5).
_SCHEMA_VERSION = "2"
_KNOWN_VERSIONS = ("1", "2")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Query parameters that hold secrets: never part of a location shown to anyone.
_SECRET_PARAMS = {"password", "sslpassword"}
# The server's clock in epoch seconds, for every time the catalog records or compares.
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"

# Version 2: files a commit held back for breaking an expectation (files.quarantine_id).
_QUARANTINE_DDL = (
    """CREATE TABLE IF NOT EXISTS quarantines (
    quarantine_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name TEXT NOT NULL,
    partition TEXT NOT NULL,
    violations TEXT NOT NULL,
    files BIGINT NOT NULL,
    num_rows BIGINT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    resolution TEXT,
    resolved_snapshot BIGINT
)""",
)
# What a version 1 catalog gains on opening (in one transaction).
_MIGRATE_1_TO_2 = (
    "ALTER TABLE files ADD COLUMN IF NOT EXISTS quarantine_id BIGINT",
    "ALTER TABLE files ADD COLUMN IF NOT EXISTS released_snapshot BIGINT",
    *_QUARANTINE_DDL,
    f"UPDATE meta SET value = '{_SCHEMA_VERSION}' WHERE key = 'schema_version'",
)

_DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE tables (
    name TEXT PRIMARY KEY,
    schema_json TEXT NOT NULL,
    partition_by TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    current_snapshot BIGINT NOT NULL DEFAULT 0,
    appends_replaced_upto BIGINT NOT NULL DEFAULT 0
)""",
    """CREATE TABLE snapshots (
    table_name TEXT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    parent_id BIGINT,
    created_at DOUBLE PRECISION NOT NULL,
    operation TEXT NOT NULL,
    summary TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    writer_id TEXT,
    commit_token TEXT,
    PRIMARY KEY (table_name, snapshot_id)
)""",
    # file_id orders files in commit order: ids are drawn under the table's row lock.
    """CREATE TABLE files (
    file_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name TEXT NOT NULL,
    path TEXT NOT NULL,
    partition TEXT NOT NULL,
    num_rows BIGINT NOT NULL,
    file_bytes BIGINT NOT NULL,
    num_row_groups BIGINT NOT NULL,
    row_group_size BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    sort_key TEXT NOT NULL DEFAULT '[]',
    added_snapshot BIGINT NOT NULL,
    removed_snapshot BIGINT,
    quarantine_id BIGINT,
    released_snapshot BIGINT,
    UNIQUE (table_name, path)
)""",
    "CREATE INDEX files_by_snapshot ON files (table_name, added_snapshot, removed_snapshot)",
    # positions: sorted, distinct row numbers as raw little-endian int64 (the SQLite layout).
    """CREATE TABLE deletes (
    table_name TEXT NOT NULL,
    file_id BIGINT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    positions BYTEA NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (file_id, snapshot_id)
)""",
    "CREATE INDEX deletes_by_table ON deletes (table_name, snapshot_id)",
    """CREATE TABLE leases (
    lease_id TEXT PRIMARY KEY,
    table_name TEXT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    owner TEXT NOT NULL,
    keep_later BOOLEAN NOT NULL DEFAULT FALSE
)""",
    "CREATE INDEX leases_by_table ON leases (table_name, expires_at)",
    # min/max as JSON text: a statistic is an int, a float (NaN and infinities included) or a string.
    """CREATE TABLE column_stats (
    file_id BIGINT NOT NULL,
    column_name TEXT NOT NULL,
    nulls BIGINT NOT NULL,
    missing BIGINT NOT NULL,
    value_count BIGINT NOT NULL,
    min_value TEXT,
    max_value TEXT,
    bytes BIGINT NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (file_id, column_name)
)""",
    # Outlives snapshot expiry: a restarted streaming writer finds where it stopped.
    """CREATE TABLE commit_tokens (
    table_name TEXT NOT NULL,
    writer_id TEXT NOT NULL,
    commit_token TEXT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    committed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (table_name, writer_id)
)""",
    """CREATE TABLE tags (
    table_name TEXT NOT NULL,
    name TEXT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (table_name, name)
)""",
    *_QUARANTINE_DDL,
)


# -- connections across fork ------------------------------------------------------------------
# Every open connection of this process. A forked child (a DataLoader worker) shares their
# sockets with its parent: closing one the ordinary way would send the server a Terminate
# message and end the *parent's* session. The child points its copies of the sockets at
# /dev/null first, then closes them, and opens its own connections when it needs them.
_OPEN: "weakref.WeakSet[psycopg.Connection]" = weakref.WeakSet()


def _disown_connections_in_child() -> None:
    for conn in list(_OPEN):
        with suppress(Exception):
            fd = conn.pgconn.socket
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
        with suppress(Exception):
            conn.close()
    _OPEN.clear()


os.register_at_fork(after_in_child=_disown_connections_in_child)


class _Held:
    """A thread's connection: closed when the thread (and so its thread-local) goes away,
    so no connection is left to the garbage collector open."""

    __slots__ = ("conn", "pid")

    def __init__(self, conn: psycopg.Connection, pid: int) -> None:
        self.conn, self.pid = conn, pid

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with suppress(Exception):
                self.conn.close()


def _stat_text(v: Any) -> str | None:
    """A statistic as stored: JSON of an int, float or str (numpy integers stay exact ints,
    other numbers become floats)."""
    if v is None:
        return None
    if not isinstance(v, (int, float, str)):
        v = int(v) if isinstance(v, numbers.Integral) else float(v)
    return json.dumps(v)


def _stat_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# Every psycopg error of a method is raised as a CatalogError naming the catalog (no password).
_translated = common.translated(psycopg.Error)


def _is_unreachable(exc: BaseException) -> bool:
    """Whether an error means the server could not be reached or went away (not a refusal
    of one statement): a failed or broken connection, or the server shutting down."""
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, pgerrors.TransactionRollback):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class PostgresCatalog(Catalog):
    """A catalog in a PostgreSQL schema.

    Args:
        uri: ``postgresql://[user[:password]@]host[:port]/database[?schema=NAME&...]``; the
            other query parameters are libpq's (``sslmode``, ``connect_timeout``...). The
            password is best left to ``PGPASSWORD`` or ``~/.pgpass``.
        create: make the schema and the catalog's tables if the schema holds no catalog.
        timeout: seconds to wait for another process's lock on a table before failing.

    Raises:
        CatalogError: the URI is not a PostgreSQL URI or names an invalid schema; the server
            is unreachable or refuses the login; there is no catalog there and ``create`` is
            false; or the schema holds something else, or a catalog of an unknown version.
    """

    def __init__(self, uri: str, *, create: bool = False, timeout: float = 60.0) -> None:
        self.timeout = float(timeout)
        self._local = threading.local()
        self._catalog_id: str | None = None
        self._found_version: str | None = None
        self._conninfo, self.schema, self._location, self._server = _parse_uri(uri)
        try:
            self._open(create)
        except psycopg.Error as exc:
            self.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self.close()
            raise

    # -- opening and creating --------------------------------------------------------------
    def _refuse(self, found: str) -> CatalogError:
        return CatalogError(
            f"{self.location} is not a usable samplestore catalog: {found}. Expected the PostgreSQL schema "
            f"{self.schema!r} with the samplestore 'meta' table (schema_version one of {list(_KNOWN_VERSIONS)}). "
            f"Nothing was changed; point at another schema with ?schema=NAME, or at the right database")

    def _open(self, create: bool) -> None:
        c = self._conn()
        state = self._inspect(c)
        if state == "catalog":
            if self._found_version != _SCHEMA_VERSION:
                with c.transaction():
                    # One process migrates; another waiting on the lock finds it done.
                    c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"samplestore catalog {self.schema}",))
                    if self._inspect(c) == "catalog" and self._found_version == "1":
                        c.execute(";\n".join(_MIGRATE_1_TO_2))
            return
        if not create:
            raise CatalogError(
                f"no samplestore catalog at {self.location} (no schema {self.schema!r} with samplestore's tables); "
                f"to create one, use open_store(ROOT, catalog=URI, create=True) or `samplestore init ROOT --catalog URI`")
        with c.transaction():
            # Two processes creating the catalog at once: one makes it, the other finds it.
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"samplestore catalog {self.schema}",))
            if self._inspect(c) == "catalog":
                return
            c.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            c.execute(";\n".join(_DDL))  # one round trip
            c.cursor().executemany("INSERT INTO meta VALUES (%s, %s)", [
                ("schema_version", _SCHEMA_VERSION), ("catalog_id", uuid.uuid4().hex), ("created_at", repr(time.time()))])

    def _inspect(self, c: psycopg.Connection) -> str:
        """'catalog' if the schema holds a catalog this version reads, 'empty' if there is
        no schema or an empty one; refuses anything else."""
        names = [r[0] for r in c.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname", (self.schema,))]
        if not names:
            return "empty"
        if "meta" not in names:
            raise self._refuse(f"the schema holds other tables and no samplestore 'meta' table (tables: {names[:10]})")
        try:
            rows = dict(c.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', 'catalog_id')").fetchall())
        except (pgerrors.UndefinedColumn, pgerrors.DatatypeMismatch) as exc:
            raise self._refuse(f"its 'meta' table is not samplestore's ({exc})") from exc
        self._found_version = common.check_version(rows.get("schema_version"), _KNOWN_VERSIONS, _SCHEMA_VERSION,
                                                   f"at {self.location}", self._refuse)
        if "catalog_id" not in rows:
            raise self._refuse("its 'meta' table holds no catalog_id")
        self._catalog_id = rows["catalog_id"]
        return "catalog"

    # -- connections, transactions and errors -------------------------------------------------
    def _conn(self) -> psycopg.Connection:
        held = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid() and not held.conn.closed:
            return held.conn
        self._local.held = None
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL("SET lock_timeout TO {}").format(sql.Literal(f"{int(self.timeout * 1000)}ms")))
        except BaseException:
            conn.close()
            raise
        _OPEN.add(conn)
        self._local.held = _Held(conn, os.getpid())
        return conn

    def _drop_conn(self) -> None:
        """Forget this thread's connection (the next call opens a new one)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held.pid == os.getpid():
            with suppress(psycopg.Error):
                held.conn.close()

    def _run(self, work: Callable[[psycopg.Connection], Any], *, tx: bool = True, snapshot: bool = False) -> Any:
        """Run ``work(connection)``: in one transaction (``tx``; REPEATABLE READ and read-only
        with ``snapshot``), or as autocommitted statements.

        A transaction the server rolled back to break a deadlock or a serialisation failure
        is run again (where SQLite would have waited for its lock). A connection found broken
        (the server restarted since its last use) is replaced and the work run again once,
        unless the break came while committing: then whether the commit was recorded is
        unknown, and the caller is told so.
        """
        deadline = time.monotonic() + self.timeout
        reconnected = False
        pause = 0.01
        while True:
            conn = self._conn()
            committing = False
            try:
                if not tx:
                    return work(conn)
                with conn.transaction():
                    if snapshot:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    out = work(conn)
                    committing = True
                return out
            except pgerrors.TransactionRollback:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except psycopg.OperationalError as exc:
                if not conn.closed:
                    raise
                self._drop_conn()
                if committing:
                    raise self._error(exc, "commit", unknown_outcome=True) from exc
                if reconnected:
                    raise
                reconnected = True

    def _error(self, exc: psycopg.Error, doing: str, unknown_outcome: bool = False) -> CatalogError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        low = str(exc).lower()
        if unknown_outcome:
            return CatalogError(
                f"the catalog at {self.location} became unreachable while committing ({text}); whether the change "
                f"was recorded is unknown: check with a read once the server is back ({self._server} reachable?)")
        if "authentication" in low or "password" in low or ("role" in low and "does not exist" in low):
            hint = (f"the server at {self._server} refused the login: check the user in the URI and the password "
                    f"(PGPASSWORD or ~/.pgpass; never put it where it is printed)")
            return CatalogError(f"catalog {self.location}: {doing} failed: {text}; {hint}")
        if "database" in low and "does not exist" in low:
            return CatalogError(f"catalog {self.location}: {doing} failed: {text}; create the database first "
                                f"(createdb), or name an existing one in the URI")
        if _is_unreachable(exc):
            return CatalogError(
                f"the catalog at {self.location} is unreachable ({doing} failed: {text}); check that the PostgreSQL "
                f"server at {self._server} is running and reachable from this host (address, port, firewall, TLS "
                f"settings). Nothing was changed by this call; retry once the server is back")
        if isinstance(exc, pgerrors.LockNotAvailable):
            hint = (f"another process held a lock on a table of the catalog for more than {self.timeout:g} s; retry, "
                    f"or open the store with a longer timeout")
        elif isinstance(exc, pgerrors.InsufficientPrivilege):
            hint = f"the user lacks a privilege on schema {self.schema!r} (it needs USAGE and CREATE, and its tables)"
        elif isinstance(exc, (pgerrors.UndefinedTable, pgerrors.UndefinedColumn)):
            hint = f"the schema {self.schema!r} lost tables or columns of the catalog; restore it from a backup"
        else:
            hint = "check the server's log and the catalog's schema"
        return CatalogError(f"catalog {self.location}: {doing} failed with {type(exc).__name__}: {text}; {hint}")

    @property
    @_translated
    def catalog_id(self) -> str:
        """A random id fixed when this catalog was made (see :attr:`Catalog.catalog_id`)."""
        if self._catalog_id is None:
            row = self._run(lambda c: c.execute("SELECT value FROM meta WHERE key = 'catalog_id'").fetchone(), tx=False)
            if row is None:
                raise CatalogError(f"catalog {self.location} has no catalog_id in its meta table; it is damaged")
            self._catalog_id = str(row[0])
        return self._catalog_id

    @property
    def location(self) -> str:
        """The URI without credentials, with the schema (see :attr:`Catalog.location`)."""
        return self._location

    def __repr__(self) -> str:
        return f"PostgresCatalog({self._location!r})"

    def close(self) -> None:
        """Close this thread's connection (in this process)."""
        self._drop_conn()

    # -- helpers ---------------------------------------------------------------------------
    def _require(self, c: psycopg.Connection, name: str, lock: str = "") -> tuple:
        """The table's row, locked ``FOR UPDATE`` / ``FOR SHARE`` when ``lock`` says so;
        TableNotFound (listing the tables) if there is none."""
        row = c.execute("SELECT name, schema_json, partition_by, properties, created_at, current_snapshot "
                        f"FROM tables WHERE name = %s {lock}", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in c.execute("SELECT name FROM tables ORDER BY name")]
            raise TableNotFound(f"no table {name!r} in the catalog {self.location}; tables: {names}")
        return row

    @staticmethod
    def _retained(c: psycopg.Connection, name: str, snapshot_id: int) -> bool:
        return c.execute("SELECT 1 FROM snapshots WHERE table_name = %s AND snapshot_id = %s",
                         (name, int(snapshot_id))).fetchone() is not None

    @staticmethod
    def _retained_ids(c: psycopg.Connection, name: str) -> list:
        return common.shown_ids([r[0] for r in c.execute(
            "SELECT snapshot_id FROM snapshots WHERE table_name = %s ORDER BY snapshot_id", (name,))])

    # -- tables --------------------------------------------------------------------------
    @_translated
    def create_table(self, name: str, schema: Schema, partition_by: Iterable[str],
                     properties: Mapping[str, Any] | None = None) -> TableMeta:
        """Create a table at snapshot 0; TableExists if the name is taken."""
        validate_table_name(name)
        parts = tuple(partition_by)
        props = dict(properties or {})

        def work(c: psycopg.Connection) -> float:
            row = c.execute(f"INSERT INTO tables (name, schema_json, partition_by, properties, created_at) "
                            f"VALUES (%s, %s, %s, %s, {_NOW}) ON CONFLICT (name) DO NOTHING RETURNING created_at",
                            (name, schema.to_json(), json.dumps(parts), json.dumps(props))).fetchone()
            if row is None:
                raise TableExists(f"table {name!r} exists already in the catalog {self.location}")
            return row[0]

        return TableMeta(name, schema, parts, 0, self._run(work), props)

    @_translated
    def drop_table(self, name: str, *, force: bool = False) -> None:
        """Remove a table and every row the catalog holds for it, in one transaction; refuses
        while a live reader lease pins one of its snapshots, unless ``force``."""

        def work(c: psycopg.Connection) -> None:
            self._require(c, name, "FOR UPDATE")
            readers = c.execute(f"SELECT owner, snapshot_id, expires_at - {_NOW} FROM leases WHERE table_name = %s "
                                f"AND snapshot_id != 0 AND expires_at > {_NOW} ORDER BY snapshot_id, owner",
                                (name,)).fetchall()
            if readers and not force:
                raise common.readers_refusal(name, f"the catalog {self.location}", readers)
            c.execute("DELETE FROM column_stats WHERE file_id IN (SELECT file_id FROM files WHERE table_name = %s)",
                      (name,))
            for table in ("deletes", "leases", "commit_tokens", "tags", "quarantines", "files", "snapshots"):
                c.execute(sql.SQL("DELETE FROM {} WHERE table_name = %s").format(sql.Identifier(table)), (name,))
            c.execute("DELETE FROM tables WHERE name = %s", (name,))

        self._run(work)

    @_translated
    def set_table_properties(self, name: str, properties: Mapping[str, Any], *,
                             remove: Iterable[str] = ()) -> TableMeta:
        """Set some properties of a table and remove others, under the table's row lock."""
        updates, gone = dict(properties), list(remove)
        common.changed_properties(name, "{}", updates, ())  # not JSON: refused before the transaction

        def work(c: psycopg.Connection) -> TableMeta:
            row = self._require(c, name, "FOR UPDATE")
            props = common.changed_properties(name, row[3], updates, gone)
            c.execute("UPDATE tables SET properties = %s WHERE name = %s", (json.dumps(props), name))
            return TableMeta(row[0], Schema.from_json(row[1]), tuple(json.loads(row[2])), row[5], row[4], props)

        return self._run(work)

    @_translated
    def table_names(self) -> list[str]:
        """Names of all tables, sorted."""
        return self._run(lambda c: [r[0] for r in c.execute("SELECT name FROM tables ORDER BY name")], tx=False)

    @_translated
    def load_table(self, name: str) -> TableMeta:
        """A table's current definition; TableNotFound lists the tables."""
        row = self._run(lambda c: self._require(c, name), tx=False)
        return TableMeta(row[0], Schema.from_json(row[1]), tuple(json.loads(row[2])), row[5], row[4],
                         json.loads(row[3]))

    # -- snapshots -----------------------------------------------------------------------
    _SNAP_COLS = "snapshot_id, parent_id, created_at, operation, summary, schema_json, writer_id, commit_token"

    @staticmethod
    def _snapshot(row: tuple) -> Snapshot:
        return Snapshot(row[0], row[1], row[2], row[3], json.loads(row[4]), Schema.from_json(row[5]), row[6], row[7])

    @_translated
    def snapshots(self, name: str) -> list[Snapshot]:
        """Retained snapshots, oldest first."""

        def work(c: psycopg.Connection) -> list[Snapshot]:
            self._require(c, name)
            rows = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = %s ORDER BY snapshot_id",
                             (name,))
            return [self._snapshot(r) for r in rows]

        return self._run(work, tx=False)

    @_translated
    def snapshot(self, name: str, snapshot_id: int) -> Snapshot:
        """One retained snapshot; SnapshotNotFound lists those that exist."""

        def work(c: psycopg.Connection) -> Snapshot:
            self._require(c, name)
            row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = %s AND snapshot_id = %s",
                            (name, int(snapshot_id))).fetchone()
            if row is None:
                raise SnapshotNotFound(f"table {name!r} has no snapshot {snapshot_id}; snapshots: "
                                       f"{self._retained_ids(c, name)}")
            return self._snapshot(row)

        return self._run(work, tx=False)

    @_translated
    def snapshot_as_of(self, name: str, when: float) -> Snapshot:
        """The last retained snapshot committed at or before ``when`` (epoch seconds)."""

        def work(c: psycopg.Connection) -> Snapshot:
            self._require(c, name)
            row = c.execute(f"SELECT {self._SNAP_COLS} FROM snapshots WHERE table_name = %s AND created_at <= %s "
                            "ORDER BY snapshot_id DESC LIMIT 1", (name, float(when))).fetchone()
            if row is None:
                first = c.execute("SELECT MIN(created_at) FROM snapshots WHERE table_name = %s", (name,)).fetchone()[0]
                raise SnapshotNotFound(f"table {name!r} has no snapshot as of {when}; the first retained one was "
                                       f"committed at {first}")
            return self._snapshot(row)

        return self._run(work, tx=False)

    @_translated
    def last_commit_token(self, name: str, writer_id: str) -> str | None:
        """The commit token ``writer_id`` stored last; it survives the expiry of its snapshot."""

        def work(c: psycopg.Connection) -> str | None:
            self._require(c, name)
            row = c.execute("SELECT commit_token FROM commit_tokens WHERE table_name = %s AND writer_id = %s",
                            (name, writer_id)).fetchone()
            return row[0] if row else None

        return self._run(work, tx=False)

    # -- files ---------------------------------------------------------------------------
    _FILE_COLS = ("file_id, path, partition, num_rows, file_bytes, num_row_groups, added_snapshot, removed_snapshot, "
                  "row_group_size, added_by, sort_key, quarantine_id, released_snapshot")

    @staticmethod
    def _file(r: tuple, stats: Mapping[str, ColumnStats] | None = None) -> DataFile:
        return DataFile(r[1], json.loads(r[2]), r[3], r[4], r[5], r[0], r[6], r[7], stats or {}, r[8], r[9],
                        tuple(json.loads(r[10])), r[11], r[12])

    @_translated
    def files(self, name: str, snapshot_id: int, *, with_stats: Iterable[str] | None = None,
              include_quarantined: bool = False, partitions: Iterable[Mapping[str, Any]] | None = None
              ) -> list[DataFile]:
        """The files live in a snapshot, in commit order, read in one snapshot of the database."""
        cols = list(with_stats) if with_stats is not None else []
        snapshot_id = int(snapshot_id)
        keys = None if partitions is None else sorted({partition_key(p) for p in partitions})

        def work(c: psycopg.Connection) -> list[DataFile]:
            self._require(c, name)
            live = "table_name = %s AND added_snapshot <= %s AND (removed_snapshot IS NULL OR removed_snapshot > %s)"
            args: tuple = (name, snapshot_id, snapshot_id)
            if not include_quarantined:
                live += f" AND {common.visible_clause(str(snapshot_id))}"
            if keys is not None:
                live += " AND partition = ANY(%s)"
                args += (keys,)
            rows = c.execute(f"SELECT {self._FILE_COLS} FROM files WHERE {live} ORDER BY file_id", args).fetchall()
            stats: dict[int, dict[str, ColumnStats]] = {}
            if cols and rows:
                q = ("SELECT file_id, column_name, nulls, missing, value_count, min_value, max_value, bytes, extra "
                     f"FROM column_stats WHERE file_id IN (SELECT file_id FROM files WHERE {live}) "
                     "AND column_name = ANY(%s)")
                for r in c.execute(q, (*args, cols)):
                    stats.setdefault(r[0], {})[r[1]] = ColumnStats(r[2], r[3], r[4], _stat_value(r[5]),
                                                                   _stat_value(r[6]), r[7], json.loads(r[8]))
            return [self._file(r, stats.get(r[0])) for r in rows]

        return self._run(work, snapshot=True)

    @_translated
    def appended_files(self, name: str, after: int) -> list[DataFile]:
        """Files added by appends after snapshot ``after`` (removed ones the catalog still has too)."""
        return self._run(lambda c: [self._file(r) for r in c.execute(
            f"SELECT {self._FILE_COLS} FROM files WHERE table_name = %s AND added_by IN ('append', 'stream-append') "
            "AND ((quarantine_id IS NULL AND added_snapshot > %s) OR released_snapshot > %s) "
            "ORDER BY COALESCE(released_snapshot, added_snapshot), file_id", (name, int(after), int(after)))],
            tx=False)

    @_translated
    def all_file_paths(self, name: str) -> list[tuple[int, str, int | None]]:
        """(file id, path, removed snapshot) of every file the catalog knows for a table."""
        return self._run(lambda c: [tuple(r) for r in c.execute(
            "SELECT file_id, path, removed_snapshot FROM files WHERE table_name = %s", (name,))], tx=False)

    @_translated
    def unreferenced_files(self, name: str) -> list[tuple[int, str]]:
        """Files live in no retained snapshot and no leased one: (file id, path) safe to delete."""

        def work(c: psycopg.Connection) -> tuple:
            self._require(c, name)
            pinned = {r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = %s", (name,))}
            pinned |= {r[0] for r in c.execute(f"SELECT snapshot_id FROM leases WHERE table_name = %s "
                                               f"AND expires_at > {_NOW}", (name,))}
            # A follower keeps every file removed after its snapshot (appends it has yet to read).
            since = c.execute(f"SELECT MIN(snapshot_id) FROM leases WHERE table_name = %s AND expires_at > {_NOW} "
                              "AND keep_later", (name,)).fetchone()[0]
            rows = c.execute("SELECT file_id, path, added_snapshot, removed_snapshot FROM files WHERE table_name = %s "
                             "AND removed_snapshot IS NOT NULL ORDER BY file_id", (name,)).fetchall()
            return pinned, since, rows

        pinned, since, rows = self._run(work, snapshot=True)
        return common.unreferenced(rows, pinned, since)

    @_translated
    def forget_files(self, name: str, file_ids: Iterable[int]) -> None:
        """Drop removed files (already deleted from disk) with their statistics and deletes."""
        ids = [int(i) for i in file_ids]
        if not ids:
            return

        def work(c: psycopg.Connection) -> None:
            c.execute("SELECT 1 FROM tables WHERE name = %s FOR UPDATE", (name,))
            # Only removed files of this table: a live file's records must survive an id
            # passed here by mistake.
            part = [r[0] for r in c.execute("SELECT file_id FROM files WHERE table_name = %s AND removed_snapshot "
                                            "IS NOT NULL AND file_id = ANY(%s)", (name, ids))]
            if part:
                c.execute("DELETE FROM column_stats WHERE file_id = ANY(%s)", (part,))
                c.execute("DELETE FROM deletes WHERE file_id = ANY(%s)", (part,))
                c.execute("DELETE FROM files WHERE file_id = ANY(%s)", (part,))

        self._run(work)

    # -- deletes -------------------------------------------------------------------------
    @_translated
    def deleted_positions(self, name: str, snapshot_id: int, file_ids: Iterable[int] | None = None) -> dict[int, Any]:
        """Deleted row positions (sorted int64) of each file, as of a snapshot."""
        q = "SELECT file_id, positions FROM deletes WHERE table_name = %s AND snapshot_id <= %s"
        args: list[Any] = [name, int(snapshot_id)]
        if file_ids is not None:
            ids = [int(i) for i in file_ids]
            if not ids:
                return {}
            q += " AND file_id = ANY(%s)"
            args.append(ids)
        return common.merge_positions(self._run(lambda c: c.execute(q, args).fetchall(), tx=False), self.location)

    # -- leases --------------------------------------------------------------------------
    @_translated
    def acquire_lease(self, name: str, snapshot_id: int, ttl: float, owner: str = "", keep_later: bool = False) -> str:
        """Pin a snapshot (0: a writer's marker) for ``ttl`` seconds; a reader's snapshot must
        be retained, checked under the table's row lock so expiry cannot slip in between."""
        lease = uuid.uuid4().hex
        snapshot_id = int(snapshot_id)

        def work(c: psycopg.Connection) -> None:
            # FOR SHARE: readers lease at once, but never while a commit or expiry holds the row.
            row = self._require(c, name, "FOR SHARE")
            if snapshot_id != 0 and not keep_later and not self._retained(c, name, snapshot_id):
                raise common.not_retained(name, snapshot_id, self._retained_ids(c, name), row[5])
            c.execute(f"INSERT INTO leases (lease_id, table_name, snapshot_id, expires_at, owner, keep_later) "
                      f"VALUES (%s, %s, %s, {_NOW} + %s, %s, %s)",
                      (lease, name, snapshot_id, float(ttl), owner, bool(keep_later)))

        self._run(work)
        return lease

    @_translated
    def renew_lease(self, lease_id: str, ttl: float) -> bool:
        """Extend a live lease; False if it had lapsed or was released (never revived)."""
        return self._run(lambda c: c.execute(
            f"UPDATE leases SET expires_at = {_NOW} + %s WHERE lease_id = %s AND expires_at > {_NOW}",
            (float(ttl), lease_id)).rowcount == 1, tx=False)

    @_translated
    def release_lease(self, lease_id: str) -> None:
        """Drop a lease (a no-op if it is gone already)."""
        self._run(lambda c: c.execute("DELETE FROM leases WHERE lease_id = %s", (lease_id,)), tx=False)

    @_translated
    def live_leases(self, name: str) -> list[tuple[str, int, float, str]]:
        """(lease id, snapshot, expires at, owner) of the unexpired leases of a table."""
        return self._run(lambda c: [tuple(r) for r in c.execute(
            f"SELECT lease_id, snapshot_id, expires_at, owner FROM leases WHERE table_name = %s "
            f"AND expires_at > {_NOW} ORDER BY expires_at", (name,))], tx=False)

    @_translated
    def follow_watermark(self, name: str) -> int | None:
        """The lowest snapshot of the table's live keep-later leases (None: no follower)."""
        return self._run(lambda c: c.execute(
            f"SELECT MIN(snapshot_id) FROM leases WHERE table_name = %s AND expires_at > {_NOW} AND keep_later",
            (name,)).fetchone()[0], tx=False)

    @_translated
    def appends_replaced_upto(self, name: str) -> int:
        """The newest snapshot whose appended files a commit has since removed (0: none)."""

        def work(c: psycopg.Connection) -> int:
            self._require(c, name)
            return int(c.execute("SELECT appends_replaced_upto FROM tables WHERE name = %s", (name,)).fetchone()[0])

        return self._run(work, tx=False)

    # -- expiry --------------------------------------------------------------------------
    @_translated
    def expire_snapshots(self, name: str, keep: Iterable[int], upto: int | None = None) -> list[int]:
        """Forget every snapshot not in ``keep`` and not after ``upto``; the current, leased and
        tagged ones are always kept (read under the table's row lock)."""
        keep = {int(k) for k in keep}

        def work(c: psycopg.Connection) -> list[int]:
            row = self._require(c, name, "FOR UPDATE")
            kept = keep | {row[5]}
            c.execute(f"DELETE FROM leases WHERE table_name = %s AND expires_at <= {_NOW}", (name,))
            kept |= {r[0] for r in c.execute("SELECT snapshot_id FROM leases WHERE table_name = %s", (name,))}
            kept |= {r[0] for r in c.execute("SELECT snapshot_id FROM tags WHERE table_name = %s", (name,))}
            ids = [r[0] for r in c.execute("SELECT snapshot_id FROM snapshots WHERE table_name = %s "
                                           "ORDER BY snapshot_id", (name,))]
            drop = [i for i in ids if i not in kept and (upto is None or i <= upto)]
            if drop:
                c.execute("DELETE FROM snapshots WHERE table_name = %s AND snapshot_id = ANY(%s)", (name, drop))
            return drop

        return self._run(work)

    # -- tags ----------------------------------------------------------------------------
    def _missing_tag(self, c: psycopg.Connection, name: str, tag: str) -> SnapshotNotFound:
        return common.missing_tag(name, tag, [r[0] for r in c.execute(
            "SELECT name FROM tags WHERE table_name = %s ORDER BY name", (name,))])

    @_translated
    def create_tag(self, name: str, tag: str, snapshot_id: int, *, replace: bool = False) -> Tag:
        """Name a retained snapshot (see :meth:`Catalog.create_tag`)."""
        validate_tag_name(tag)
        snapshot_id = int(snapshot_id)

        def work(c: psycopg.Connection) -> Tag:
            row = self._require(c, name, "FOR UPDATE")
            if not self._retained(c, name, snapshot_id):
                raise common.not_retained(name, snapshot_id, self._retained_ids(c, name), row[5], tag=tag)
            old = c.execute("SELECT snapshot_id FROM tags WHERE table_name = %s AND name = %s", (name, tag)).fetchone()
            if old is not None and not replace:
                raise common.tag_taken(name, tag, old[0])
            made = c.execute(f"INSERT INTO tags (table_name, name, snapshot_id, created_at) VALUES (%s, %s, %s, {_NOW}) "
                             "ON CONFLICT (table_name, name) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id, "
                             "created_at = EXCLUDED.created_at RETURNING created_at",
                             (name, tag, snapshot_id)).fetchone()[0]
            return Tag(tag, snapshot_id, made)

        return self._run(work)

    @_translated
    def drop_tag(self, name: str, tag: str) -> Tag:
        """Remove a tag; SnapshotNotFound (listing the tags) if there is none of that name."""

        def work(c: psycopg.Connection) -> Tag:
            self._require(c, name, "FOR UPDATE")
            row = c.execute("DELETE FROM tags WHERE table_name = %s AND name = %s RETURNING name, snapshot_id, "
                            "created_at", (name, tag)).fetchone()
            if row is None:
                raise self._missing_tag(c, name, tag)
            return Tag(*row)

        return self._run(work)

    @_translated
    def tags(self, name: str) -> list[Tag]:
        """A table's tags, sorted by name."""

        def work(c: psycopg.Connection) -> list[Tag]:
            self._require(c, name)
            return [Tag(*r) for r in c.execute("SELECT name, snapshot_id, created_at FROM tags WHERE table_name = %s "
                                               "ORDER BY name", (name,))]

        return self._run(work, tx=False)

    @_translated
    def resolve_tag(self, name: str, tag: str) -> int:
        """The snapshot a tag names; SnapshotNotFound (listing the tags) if there is none."""

        def work(c: psycopg.Connection) -> int:
            self._require(c, name)
            row = c.execute("SELECT snapshot_id FROM tags WHERE table_name = %s AND name = %s", (name, tag)).fetchone()
            if row is None:
                raise self._missing_tag(c, name, tag)
            return int(row[0])

        return self._run(work, tx=False)

    # -- commit --------------------------------------------------------------------------
    @_translated
    def commit(self, name: str, operation: str, *, add: Iterable[DataFile] = (), remove: Iterable[int] = (),
               schema: Schema | None = None, writer_id: str | None = None, commit_token: str | None = None,
               summary: Mapping[str, Any] | None = None, deletes: Mapping[int, Any] | None = None,
               planned_at: int | None = None, quarantine: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
               ) -> Snapshot:
        """One atomic commit as a new snapshot (see :meth:`Catalog.commit`), under the table's
        row lock; the writer's commit token, if any, is recorded in the same transaction."""
        add, remove = list(add), sorted(set(int(i) for i in remove))
        positions = {int(k): np.unique(np.asarray(v, dtype="<i8")) for k, v in (deletes or {}).items() if len(v)}
        held = common.quarantine_groups(add, quarantine)

        def work(c: psycopg.Connection) -> Snapshot:
            row = self._require(c, name, "FOR UPDATE")
            parent = row[5]
            new_id = parent + 1
            guarded = sorted(set(remove) | set(positions))
            if planned_at is not None and guarded:
                late = c.execute("SELECT DISTINCT file_id FROM deletes WHERE file_id = ANY(%s) AND snapshot_id > %s "
                                 "ORDER BY file_id", (guarded, int(planned_at))).fetchall()
                if late:
                    raise common.late_deletes(operation, name, [r[0] for r in late], planned_at)
            removed_rows = removed_files = 0
            refresh: set[int] = set()
            if remove:
                live = c.execute(f"SELECT file_id, num_rows, {common.HELD}, quarantine_id FROM files WHERE table_name = %s "
                                 "AND removed_snapshot IS NULL AND file_id = ANY(%s)", (name, remove)).fetchall()
                if len(live) != len(remove):
                    raise common.removed_since(operation, name, sorted(set(remove) - {r[0] for r in live}), parent)
                # Held files were never in the totals; their quarantine's counts are refreshed.
                shown = [r[0] for r in live if not r[2]]
                refresh.update(r[3] for r in live if r[2])
                removed_files = len(shown)
                # Rows of these files already deleted were subtracted from the totals by their delete.
                removed_rows = sum(r[1] for r in live if not r[2]) - c.execute(
                    "SELECT COALESCE(SUM(count), 0)::bigint FROM deletes WHERE file_id = ANY(%s)", (shown,)).fetchone()[0]
                c.execute("UPDATE files SET removed_snapshot = %s WHERE file_id = ANY(%s)", (new_id, remove))
                # How far appends have been merged away (see appends_replaced_upto).
                c.execute("UPDATE tables SET appends_replaced_upto = GREATEST(appends_replaced_upto, COALESCE(("
                          "SELECT MAX(COALESCE(released_snapshot, added_snapshot)) FROM files WHERE file_id = ANY(%s) "
                          f"AND added_by IN ('append', 'stream-append') AND NOT {common.HELD}), 0)) WHERE name = %s",
                          (remove, name))
            qid_of: dict[int, int] = {}
            for key, idx in held.items():
                qid = c.execute("INSERT INTO quarantines (table_name, partition, violations, files, num_rows, "
                                f"snapshot_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, {_NOW}) RETURNING quarantine_id",
                                (name, key, json.dumps(list(quarantine[key])), len(idx),
                                 sum(add[i].num_rows for i in idx), new_id)).fetchone()[0]
                qid_of.update((i, qid) for i in idx)
            joined = common.joined_quarantines(c.execute, "%s", name, add)
            refresh.update(q for q, _ in joined.values())
            placed = [joined.get(i, (qid_of.get(i), operation)) for i in range(len(add))]
            added_rows = sum(f.num_rows for f, (qid, _) in zip(add, placed) if qid is None)
            if add:
                cur = c.cursor()
                cur.executemany(
                    "INSERT INTO files (table_name, path, partition, num_rows, file_bytes, num_row_groups, "
                    "row_group_size, added_by, sort_key, added_snapshot, quarantine_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING file_id",
                    [(name, f.path, f.partition_key, f.num_rows, f.file_bytes, f.num_row_groups,
                      f.row_group_size or f.num_rows, added_by, json.dumps(list(f.sort_key)), new_id, qid)
                     for f, (qid, added_by) in zip(add, placed)],
                    returning=True)
                fids = []
                while True:
                    fids.append(cur.fetchone()[0])
                    if not cur.nextset():
                        break
                stats = [(fid, col, s.nulls, s.missing, s.values, _stat_text(s.min), _stat_text(s.max), s.bytes,
                          json.dumps(dict(s.extra))) for fid, f in zip(fids, add) for col, s in f.stats.items()]
                if stats:
                    cur.executemany("INSERT INTO column_stats VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", stats)
            deleted_rows = held_deleted = 0
            if positions:
                live_ids = dict(c.execute(
                    f"SELECT file_id, {common.HELD} FROM files WHERE table_name = %s AND removed_snapshot IS NULL "
                    "AND file_id = ANY(%s)", (name, list(positions))).fetchall())
                if len(live_ids) != len(positions):
                    raise common.replaced_since(name, sorted(set(positions) - set(live_ids)))
                c.cursor().executemany("INSERT INTO deletes VALUES (%s, %s, %s, %s, %s)", [
                    (name, fid, new_id, arr.tobytes(), len(arr)) for fid, arr in positions.items()])
                deleted_rows = sum(len(arr) for arr in positions.values())
                held_deleted = sum(len(arr) for fid, arr in positions.items() if live_ids[fid])
            for qid in sorted(refresh):
                c.execute(common.refresh_quarantine_sql("%s"), (qid,))
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = %s AND snapshot_id = %s",
                             (name, parent)).fetchone()
            full = common.commit_summary(prev[0] if prev else None, added_files=len(add) - len(qid_of) - len(joined),
                                         added_rows=added_rows, removed_files=removed_files, removed_rows=removed_rows,
                                         deleted_rows=deleted_rows, held_deleted_rows=held_deleted,
                                         extra=common.held_summary(add, qid_of, summary))
            schema_json = schema.to_json() if schema is not None else row[1]
            now = c.execute(f"INSERT INTO snapshots VALUES (%s, %s, %s, {_NOW}, %s, %s, %s, %s, %s) RETURNING created_at",
                            (name, new_id, parent if parent else None, operation, json.dumps(full), schema_json,
                             writer_id, commit_token)).fetchone()[0]
            if writer_id is not None and commit_token is not None:
                # In the commit's own transaction: the token and the rows it covers become
                # visible together, so a restarted writer never skips or repeats rows.
                c.execute("INSERT INTO commit_tokens VALUES (%s, %s, %s, %s, %s) ON CONFLICT (table_name, writer_id) "
                          "DO UPDATE SET commit_token = EXCLUDED.commit_token, snapshot_id = EXCLUDED.snapshot_id, "
                          "committed_at = EXCLUDED.committed_at", (name, writer_id, commit_token, new_id, now))
            c.execute("UPDATE tables SET current_snapshot = %s, schema_json = %s WHERE name = %s",
                      (new_id, schema_json, name))
            return Snapshot(new_id, parent if parent else None, now, operation, full,
                            schema if schema is not None else Schema.from_json(row[1]), writer_id, commit_token)

        return self._run(work)


    # -- quarantine ----------------------------------------------------------------------
    @_translated
    def quarantines(self, name: str, *, resolved: bool = False) -> list[Quarantine]:
        """The table's open quarantines (all of them with ``resolved``), by id."""
        q = f"SELECT {common.QUARANTINE_COLS} FROM quarantines WHERE table_name = %s"
        if not resolved:
            q += " AND resolution IS NULL"

        def work(c: psycopg.Connection) -> list[Quarantine]:
            self._require(c, name)
            return [common.quarantine_of(r) for r in c.execute(q + " ORDER BY quarantine_id", (name,))]

        return self._run(work, snapshot=True)

    @_translated
    def resolve_quarantine(self, name: str, quarantine_id: int, action: str) -> Snapshot:
        """Release or drop an open quarantine as one snapshot (see :meth:`Catalog.resolve_quarantine`)."""
        operation = common.quarantine_action(action)
        qid = int(quarantine_id)

        def work(c: psycopg.Connection) -> Snapshot:
            row = self._require(c, name, "FOR UPDATE")
            common.require_open_quarantine(c.execute, "%s", name, qid)
            parent = row[5]
            new_id = parent + 1
            files, rows = c.execute(common.held_counts_sql("%s"), (name, qid, name, qid)).fetchone()
            rows = int(rows)  # a sum of bigints is numeric
            column = sql.Identifier("released_snapshot" if action == "release" else "removed_snapshot")
            c.execute(sql.SQL("UPDATE files SET {} = %s WHERE table_name = %s AND quarantine_id = %s "
                              "AND removed_snapshot IS NULL").format(column), (new_id, name, qid))
            c.execute("UPDATE quarantines SET resolution = %s, resolved_snapshot = %s WHERE quarantine_id = %s",
                      (common.resolution_of(action), new_id, qid))
            prev = c.execute("SELECT summary FROM snapshots WHERE table_name = %s AND snapshot_id = %s",
                             (name, parent)).fetchone()
            full = common.resolved_summary(prev[0] if prev else None, action, qid, files, rows)
            now = c.execute(f"INSERT INTO snapshots VALUES (%s, %s, %s, {_NOW}, %s, %s, %s, NULL, NULL) "
                            "RETURNING created_at", (name, new_id, parent if parent else None, operation,
                                                     json.dumps(full), row[1])).fetchone()[0]
            c.execute("UPDATE tables SET current_snapshot = %s WHERE name = %s", (new_id, name))
            return Snapshot(new_id, parent if parent else None, now, operation, full, Schema.from_json(row[1]))

        return self._run(work)


def _parse_uri(uri: str) -> tuple[str, str, str, str]:
    """(what libpq connects with, the schema, the location shown (no password), host:port/db).

    Raises:
        CatalogError: not a ``postgresql://`` URI, or an invalid ``schema`` parameter.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise CatalogError(f"a PostgreSQL catalog is a postgresql:// URI (postgresql://user@host:port/db); found "
                           f"{parts.scheme}://...")
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in params if k == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise CatalogError(f"the schema of a PostgreSQL catalog (?schema=NAME) must be lowercase letters, digits and "
                           f"'_', starting with a letter or '_', at most 63 characters; found {schema!r}")
    libpq = [(k, v) for k, v in params if k != "schema"]
    if not any(k == "connect_timeout" for k, _ in libpq):
        libpq.append(("connect_timeout", "10"))  # an unreachable host fails in seconds, not minutes
    if not any(k == "application_name" for k, _ in libpq):
        libpq.append(("application_name", "samplestore"))
    # Joined by hand: urlunsplit drops the "//" of an empty host (a Unix socket given as ?host=).
    conninfo = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(libpq)}"
    try:
        info = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise CatalogError(f"not a valid PostgreSQL URI ({exc}); expected postgresql://user@host:port/db"
                           f"[?schema=NAME]") from exc
    # What is shown: the URI less its password (in the netloc or the query), with the schema.
    # The netloc is split by hand: libpq allows several hosts (h1:5432,h2:5432), urlsplit not.
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{hosts}"
    shown = [(k, v) for k, v in params if k not in _SECRET_PARAMS and k != "schema"] + [("schema", schema)]
    location = f"{parts.scheme}://{netloc}{parts.path}?{urlencode(shown)}"
    server = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"
    return conninfo, schema, location, server
