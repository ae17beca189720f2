"""``samplestore``: create, fill, inspect and check stores from the command line.

Read commands (info, head, stats, snapshots, verify, compact, quality, ...) take ``--json``. Errors
print one line, no traceback, and exit with status 2 (``verify`` exits 1 when it finds damage,
``quality`` when an expectation fails);
with ``--json`` that line is a JSON object ``{"error": "..."}`` on stdout instead of text on
stderr, so that a program reading stdout always gets one JSON document.
"""

from __future__ import annotations

import argparse
import contextvars
import datetime as _dt
import importlib.util
import json
import os
import sys
import time
from typing import Any, NoReturn, Sequence

from .. import __version__
from ..errors import SampleStoreError
from ..extras import require_extra
from ..storage import LocalStorage, input_size, is_remote_uri, open_output, redact

__all__ = ["main", "build_parser"]


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, (_dt.datetime, _dt.date)):
            return o.isoformat()
        if isinstance(o, bytes):
            return o.hex()
        if hasattr(o, "item"):
            return o.item()
        return str(o)

    return json.dumps(obj, indent=2, default=default, allow_nan=True)


# The --catalog of the command being run (every command that opens a store takes it).
_CATALOG: contextvars.ContextVar[str | None] = contextvars.ContextVar("catalog", default=None)


def _store(root: str, create: bool = False) -> Any:
    """The store at ``root``, with the catalog ``--catalog`` names (else $SAMPLESTORE_CATALOG,
    else the SQLite file in ``root``); only ``init`` and ``ingest --create`` make one (a
    CatalogError saying how to make one otherwise, so that a mistyped path makes no empty store)."""
    from ..table import open_store

    return open_store(root, create=create, catalog=_CATALOG.get())


# ------------------------------------------------------------------------------ commands
def _cmd_init(a: argparse.Namespace) -> int:
    s = _store(a.root, create=True)
    print(f"store ready at {s.root} (catalog: {s.catalog.location})")
    return 0


def _cmd_create(a: argparse.Namespace) -> int:
    from ..schema import Schema
    from ..table.ingest import criteo_tsv_schema

    if a.criteo == bool(a.schema):
        raise SampleStoreError("give exactly one of --schema FILE.json or --criteo")
    if a.criteo:
        schema = criteo_tsv_schema()
    else:
        with open(a.schema) as f:
            schema = Schema.from_json(f.read())
    t = _store(a.root).create_table(a.table, schema, partition_by=a.partition_by or ())
    print(f"created table {t.name!r} with {len(schema)} features"
          + (f", partitioned by {list(t.partition_by)}" if t.partition_by else ""))
    return 0


def _cmd_ingest(a: argparse.Namespace) -> int:
    from ..errors import TableExists, TableNotFound
    from ..schema import Scalar
    from ..table.ingest import guess_format, infer_schema, ingest
    from ..progress import Progress

    shape = [opt for opt, given in (("--label", a.label), ("--ids", a.ids), ("--dense", a.dense),
                                    ("--partition-by", a.partition_by)) if given]
    if shape and not a.create:
        raise SampleStoreError(f"{', '.join(shape)}: these options describe the table that --create "
                               f"makes; add --create, or leave them out to ingest into an existing table")
    sizes = [input_size(p) for p in a.files]  # a local path or a URI (s3://bucket/key?endpoint_override=...)
    for p, size in zip(a.files, sizes):
        if size is None:
            raise SampleStoreError(f"input file {redact(p)!r} does not exist (or is not a file)")
    store = _store(a.root, create=a.create)
    created = False
    try:
        table = store.table(a.table)
    except TableNotFound as exc:
        if not a.create:
            raise TableNotFound(f"{exc}; run `samplestore create {a.root} {a.table} --schema FILE.json` first, "
                                f"or pass --create to make the table from the first file's columns") from exc
        # The first file decides the schema; every file must then conform to it.
        schema = infer_schema(a.files[0], a.format or guess_format(a.files[0]),
                              labels=a.label or (), dense=a.dense or (), ids=a.ids or ())
        given = list(a.partition or {})
        schema = schema.add([Scalar(n, "string") for n in given if n not in schema])
        try:
            table = store.create_table(a.table, schema, partition_by=a.partition_by or given)
            created = True
        except TableExists:  # another process made it meanwhile: ingest into theirs
            table = store.table(a.table)
    total = sum(sizes)  # type: ignore[arg-type]  # none is None (checked above)
    bar = Progress(f"ingest {a.table}", total=total, unit=" MB", scale=1e6, enabled=not a.quiet)
    rows = [0]

    def on_rows(n: int) -> None:
        rows[0] += n
        bar.extra = f"{rows[0]:,} rows"

    t0 = time.perf_counter()
    try:
        if a.executor == "ray":
            require_extra("ray", "samplestore ingest --executor ray")
            if a.partition:
                raise SampleStoreError("--partition is not supported with --executor ray yet; ingest without "
                                       "--executor ray, or give the files the partition column")
            from ..ray import ingest as ray_ingest

            sid = ray_ingest(table, a.files, a.format, address=a.address, progress=not a.quiet)
            rows[0] = table.snapshot(sid).summary.get("added_rows", 0) if sid else 0
        else:
            sid = ingest(table, a.files, a.format, on_bytes=bar.update, on_rows=on_rows, partition=a.partition)
    except BaseException:
        if created:
            # Nothing was committed: drop the table made from the first file, so that a rerun
            # with other --label/--ids/--dense infers afresh instead of finding it.
            try:
                store.drop_table(a.table)
            except SampleStoreError as drop_exc:
                print(f"samplestore: note: the empty table {a.table!r} made by --create was left: {drop_exc}",
                      file=sys.stderr)
        raise
    bar.done = total
    bar.close()
    print(f"ingested {rows[0]:,} rows into {a.table!r} in {time.perf_counter() - t0:.1f} s"
          + (f" (snapshot {sid})" if sid else " (nothing to commit)"))
    if sid:
        _print_quality_of_commit(a, table, sid)
    return 0


def _print_quality_of_commit(a: argparse.Namespace, table: Any, sid: int) -> None:
    """What the table's expectations did to a commit: warnings and quarantined partitions."""
    summary = table.snapshot(sid).summary
    for w in summary.get("quality_warnings", ()):
        print(f"warning: {w}")
    held = set(summary.get("quarantine_ids", ()))
    for q in (q for q in table.quarantines() if q.quarantine_id in held):
        for v in q.violations:
            print(f"quarantined ({q.rows:,} rows, quarantine {q.quarantine_id}): {v.get('message')}")
        print(f"  release with `samplestore quarantine {a.root} {a.table} --release {q.quarantine_id}`, or --drop")


def _table_info(t: Any) -> dict[str, Any]:
    from ..table.stats import deleted_rows_by_file

    sid = t.current_snapshot_id
    files = t.files(sid)
    snap = t.snapshot(sid) if sid else None
    stored = sum(f.num_rows for f in files)
    deleted = sum(deleted_rows_by_file(t, sid, files).values())
    return {
        "table": t.name,
        "current_snapshot": sid,
        "rows": stored - deleted,  # live rows: what a scan returns
        "deleted_rows": deleted,  # deleted, still in the files until compaction rewrites them
        "stored_rows": stored,
        "files": len(files),
        "bytes": sum(f.file_bytes for f in files),
        "partition_by": list(t.partition_by),
        "partitions": len({f.partition_key for f in files}),
        "schema": t.schema.to_dict()["features"],
        "last_commit": snap.to_dict() if snap else None,
    }


def _cmd_info(a: argparse.Namespace) -> int:
    store = _store(a.root)
    if a.table:
        info = _table_info(store.table(a.table))
        if a.json:
            print(_json(info))
        else:
            print(f"table {info['table']}: {info['rows']:,} rows{_deleted_note(info)} in {info['files']} files "
                  f"({info['bytes'] / 1e6:.1f} MB), snapshot {info['current_snapshot']}, "
                  f"{info['partitions']} partitions by {info['partition_by']}")
            for f in info["schema"]:
                params = ", ".join(f"{k}={v}" for k, v in f.items() if k not in ("kind", "name"))
                print(f"  {f['name']:<24} {f['kind']}" + (f" ({params})" if params else ""))
        return 0
    infos = [_table_info(store.table(n)) for n in store.tables()]
    if a.json:
        print(_json({"root": store.root, "tables": [{k: v for k, v in i.items() if k != "schema"} for i in infos]}))
    else:
        print(f"store {store.root}: {len(infos)} tables")
        for i in infos:
            print(f"  {i['table']:<24} {i['rows']:>14,} rows {i['files']:>7} files {i['bytes'] / 1e6:>10.1f} MB  "
                  f"snapshot {i['current_snapshot']}{_deleted_note(i)}")
    return 0


def _deleted_note(d: dict[str, Any]) -> str:
    n = d.get("deleted_rows", 0)
    return f" (+{n:,} deleted, not yet purged by compaction)" if n else ""


def _cmd_head(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    cols = a.columns.split(",") if a.columns else None
    rows: list[dict[str, Any]] = []
    for batch in t.scan(columns=cols, snapshot=a.snapshot).to_batches():
        rows.extend(batch.slice(0, a.n - len(rows)).to_pylist())
        if len(rows) >= a.n:
            break
    if a.json:
        print(_json(rows))
    else:
        for r in rows:
            print(", ".join(f"{k}={_short(v)}" for k, v in r.items()))
    return 0


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(_short(x) for x in v[:6]) + f", ... ({len(v)})]"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return str(v)


def _cmd_stats(a: argparse.Namespace) -> int:
    from ..table.stats import table_stats

    t = _store(a.root).table(a.table)
    st = table_stats(t, a.snapshot, by_partition=a.by_partition)
    _timestamps_as_iso(t, st)
    if a.json:
        print(_json(st))
        return 0
    print(f"table {st['table']} @ snapshot {st['snapshot_id']}: {st['rows']:,} rows{_deleted_note(st)}, "
          f"{st['files']} files, {st['bytes'] / 1e6:.1f} MB"
          + ("; column figures include the deleted rows" if st["deleted_rows"] else ""))
    header = ["column", "missing", "missing%", "min", "max", "len_mean", "len_p50", "len_p99", "MB"]
    rows = []
    for name, c in st["columns"].items():
        ll = c.get("list_length")  # only list features have lengths
        rows.append([name, f"{c['missing']:,}", f"{100 * c['missing_fraction']:.2f}%", _stat_cell(c["min"]),
                     _stat_cell(c["max"]), f"{ll['mean']:.2f}" if ll else "-", str(ll["p50"]) if ll else "-",
                     str(ll["p99"]) if ll else "-", f"{c['bytes'] / 1e6:.2f}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  " + " ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(header))
    for row, c in zip(rows, st["columns"].values()):
        print(line(row))
        if "missing_by_dim" in c and any(c["missing_by_dim"]):
            print(f"  {'':<{widths[0]}} missing by slot: {c['missing_by_dim']}")
    for p in st.get("partitions", []):
        worst = max(p["columns"].items(), key=lambda kv: kv[1]["missing_fraction"])
        print(f"  partition {p['partition']}: {p['rows']:,} rows{_deleted_note(p)}, {p['files']} files; most missing: "
              f"{worst[0]} {100 * worst[1]['missing_fraction']:.2f}%")
    return 0


# Seconds per unit of an Arrow timestamp.
_TIME_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _timestamps_as_iso(table: Any, st: dict[str, Any]) -> None:
    """Replace, in place, the min/max of timestamp columns in ``st`` (table_stats' result),
    which the catalog keeps as integers since the epoch, by ISO-8601 strings: people read
    them in the text output, and programs parse them from --json without knowing the unit."""
    import pyarrow as pa

    sid = st["snapshot_id"]
    schema = table.snapshot(sid).schema if sid else table.schema
    units = {}
    for feat in schema:
        t = feat.arrow_type()
        if pa.types.is_timestamp(t):
            units[feat.name] = (t.unit, t.tz)
    for cols in [st["columns"], *(p["columns"] for p in st.get("partitions", []))]:
        for name, (unit, tz) in units.items():
            c = cols.get(name)
            if c is None:
                continue
            for key in ("min", "max"):
                c[key] = _iso(c[key], unit, tz)


def _iso(value: Any, unit: str, tz: str | None) -> Any:
    """An integer timestamp of ``unit`` as ISO-8601 (UTC when the type has a time zone);
    anything else (None, out of range) unchanged."""
    if value is None:
        return None
    try:
        micros = int(value) * 10**6 // _TIME_UNITS[unit]
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc if tz else None)
        return (epoch + _dt.timedelta(microseconds=micros)).isoformat()
    except (KeyError, OverflowError, ValueError, TypeError):
        return value


def _stat_cell(v: Any) -> str:
    """A min/max for the text table: '-' where none is recorded (strings, all missing)."""
    if v is None:
        return "-"
    text = _short(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _cmd_snapshots(a: argparse.Namespace) -> int:
    snaps = _store(a.root).table(a.table).snapshots()
    if a.json:
        print(_json([s.to_dict() for s in snaps]))
        return 0
    print(f"{'snapshot':>8} {'created':<19} {'operation':<13} changes")
    for s in snaps:
        when = _dt.datetime.fromtimestamp(s.created_at).isoformat(timespec="seconds")
        sm = s.summary
        tok = f" token={s.commit_token}" if s.commit_token is not None else ""
        print(f"{s.snapshot_id:>8} {when:<19} {s.operation:<13} +{sm.get('added_files', 0)} files "
              f"+{sm.get('added_rows', 0):,} rows -{sm.get('removed_files', 0)} files; total {sm.get('total_rows', 0):,} rows{tok}")
    return 0


def _export_path(out: str, table: str) -> str:
    """Where ``export`` writes: ``out`` itself, or ``out/TABLE.parquet`` when ``out`` is a
    folder.

    Raises:
        SampleStoreError: the folder to write in does not exist.
    """
    if os.path.isdir(out):
        return os.path.join(out, f"{table}.parquet")
    if out.endswith(os.sep) or (os.altsep and out.endswith(os.altsep)):
        raise SampleStoreError(f"export: OUT {out!r} names a folder (it ends with {os.sep!r}), which does not exist; create it first "
                               f"or give a file name such as {os.path.join(out, table + '.parquet')!r}")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise SampleStoreError(f"export: OUT {out!r} is to be written in folder {folder!r}, which does not exist; "
                               f"create it first or choose another path")
    return out


def _cmd_export(a: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from ..progress import Progress

    t = _store(a.root).table(a.table)
    remote = is_remote_uri(a.out)
    out = "" if remote else _export_path(a.out, a.table)
    scan = t.scan(columns=a.columns.split(",") if a.columns else None, snapshot=a.snapshot)
    bar = Progress(f"export {a.table}", total=scan.plan().num_rows, unit=" rows", enabled=not a.quiet)
    if remote:  # an object, or one in the folder the URI names, on the file system it names
        pending, out = open_output(a.out, f"{a.table}.parquet")
        out = redact(out)
    else:
        pending = LocalStorage().open_write(os.path.abspath(out))
    # OUT is the user's file, not a store path, but it is published like a data file: written
    # under a temporary name of its own in the same folder and moved onto OUT only once
    # complete, so OUT is never a partial file and two exports to one folder do not collide.
    # Any failure, Ctrl-C included, leaves the block unpublished: the temporary file is removed.
    n = 0
    with pending as f:
        with pq.ParquetWriter(f, scan.out_schema.to_arrow(), compression="zstd") as w:
            for batch in scan.to_batches():
                w.write_batch(batch)
                n += batch.num_rows
                bar.update(batch.num_rows)
        f.publish()
    bar.close()
    print(f"exported {n:,} rows of {a.table!r} to {out}")
    return 0


def _cmd_verify(a: argparse.Namespace) -> int:
    from ..table.verify import verify_table
    from ..progress import Progress

    store = _store(a.root)
    names = [a.table] if a.table else store.tables()
    results = []
    for n in names:
        t = store.table(n)
        bar = Progress(f"verify {n}", total=len(t.files(include_quarantined=True)) or None, unit=" files", enabled=not (a.json or a.quiet))
        results.append(verify_table(t, remove_leftovers=a.remove_leftovers, grace_seconds=a.grace, on_file=bar.update))
        bar.close()
    ok = all(r["ok"] for r in results)
    if a.json:
        print(_json({"ok": ok, "tables": results}))
    else:
        for r in results:
            print(f"{r['table']}: {r['files_checked']} files, {r['chunks_checked']} chunks checked, "
                  f"{len(r['errors'])} damaged, {len(r['temporary_files'])} temporary and "
                  f"{len(r['orphan_files'])} orphan files left by dead writers, {len(r['removed'])} removed")
            for e in r["errors"]:
                print(f"  DAMAGED {e['path']}: {e['error']}")
            for p in r["temporary_files"] + r["orphan_files"]:
                if p not in r["removed"]:
                    print(f"  leftover {p} (remove with --remove-leftovers)")
    return 0 if ok else 1


def _cmd_compact(a: argparse.Namespace) -> int:
    import logging

    from ..compaction import run_daemon, run_once
    from ..compaction.daemon import DAEMON_COMPACT_SECONDS

    sort_by = a.sort_by.split(",") if a.sort_by else None
    if a.layout and sort_by:  # refused before any work
        raise SampleStoreError("compact: --layout and --sort-by both set the order of the rows; give one of them")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    opts = dict(target_file_bytes=int(a.target_mb * (1 << 20)), sort_by=sort_by, layout=a.layout,
                retain_last=a.retain_last, older_than=a.older_than, grace_seconds=a.grace)
    if a.daemon:
        if a.table:
            raise SampleStoreError("--daemon works on every table of the store; leave out TABLE")
        bound = DAEMON_COMPACT_SECONDS if a.compact_seconds is None else a.compact_seconds or None  # 0: no bound
        # Opened in the daemon's loop: started while the catalog is down, it waits for it.
        run_daemon(lambda: _store(a.root), interval=a.interval, compact_seconds=bound, executor=a.executor,
                   executor_options={"address": a.address} if a.executor == "ray" else None, **opts)
        return 0
    store = _store(a.root)
    executor = dict(executor=a.executor, executor_options={"address": a.address} if a.executor == "ray" else None)
    reports = run_once(store, [a.table] if a.table else None, compact_seconds=a.compact_seconds or None, **opts,
                       **executor)
    if a.json:
        print(_json(reports))
    else:
        for r in reports:
            if "error" in r:
                print(f"{r['table']}: error: {r['error']}")
                continue
            print(f"{r['table']}: {r['files_in']} files ({r['bytes_in'] / 1e6:.1f} MB) -> {r['files_out']} files "
                  f"({r['bytes_out'] / 1e6:.1f} MB) in {len(r['commits'])} commits; {r['snapshots_expired']} snapshots "
                  f"expired; {r['files_removed']} files and {r['leftovers_removed']} leftovers removed"
                  + ("; stopped at the --compact-seconds bound (run again to go on)" if r.get("time_limited") else ""))
    return 1 if any("error" in r for r in reports) else 0


def _parse_where(table: Any, text: str) -> Any:
    """``col=v1,v2`` -> ``pc.field(col).isin([v1, v2])`` with values of the column's type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "=" not in text:
        raise SampleStoreError(f"--where expects COLUMN=VALUE[,VALUE...]; found {text!r}")
    col, _, vals = text.partition("=")
    feat = table.schema.field(col.strip())
    t = feat.arrow_type()
    try:
        values = pa.array([v.strip() for v in vals.split(",")]).cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SampleStoreError(f"--where: values {vals!r} are not of column {col!r}'s type {t}: {exc}") from exc
    return pc.field(col.strip()).isin(values)


def _cmd_delete(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    snap = t.delete(_parse_where(t, a.where))
    if snap is None:
        print("no rows matched; nothing committed")
    else:
        print(f"deleted {snap.summary['deleted_rows']:,} rows (snapshot {snap.snapshot_id}); hidden from readers now, "
              f"purged from disk by the next compaction + expire + gc")
    return 0


def _cmd_expire(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    dropped = t.expire_snapshots(older_than=a.older_than, retain_last=a.retain_last)
    rule = ("as asked" if a.older_than is not None or a.retain_last is not None
            else f"by the table's retention policy ({_policy_text(t.retention)})")
    print(f"expired {len(dropped)} snapshots of {a.table!r} {rule}; {len(t.snapshots())} retained")
    return 0


def _cmd_gc(a: argparse.Namespace) -> int:
    store = _store(a.root)
    names = [a.table] if a.table else store.tables()
    for n in names:
        r = store.table(n).gc(a.grace)
        print(f"{n}: removed {r['files_removed']} unreferenced files and {r['leftovers_removed']} leftovers, "
              f"{r['bytes_freed'] / 1e6:.1f} MB freed, aborted {r['uploads_aborted']} unfinished uploads")
        if "uploads_unchecked" in r:
            print(f"{n}: note: unfinished uploads not checked: {r['uploads_unchecked']}")
    return 0


def _cmd_tag(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    if a.delete is not None:
        if a.name is not None or a.list or a.snapshot is not None or a.replace:
            raise SampleStoreError("--delete NAME takes no other tag name and no --list, --snapshot or --replace")
        gone = t.untag(a.delete)
        if a.json:
            print(_json(gone.to_dict()))
        else:
            print(f"removed tag {gone.name!r} of {a.table!r} (snapshot {gone.snapshot_id}); that snapshot now expires "
                  f"by the table's retention policy")
        return 0
    if a.name is None or a.list:
        if a.name is not None or a.snapshot is not None or a.replace:
            raise SampleStoreError("--list takes no tag name and no --snapshot or --replace")
        tags = t.tags()
        if a.json:
            print(_json([g.to_dict() for g in tags]))
        elif not tags:
            print(f"table {a.table!r} has no tags; make one with `samplestore tag {a.root} {a.table} NAME`")
        else:
            for g in tags:
                when = _dt.datetime.fromtimestamp(g.created_at).isoformat(timespec="seconds")
                print(f"{g.name:<32} snapshot {g.snapshot_id:>6}  tagged {when}")
        return 0
    made = t.tag(a.name, a.snapshot, replace=a.replace)
    if a.json:
        print(_json(made.to_dict()))
    else:
        print(f"tagged snapshot {made.snapshot_id} of {a.table!r} as {made.name!r}; read it with --snapshot "
              f"{made.name} (kept by expiry until `samplestore tag {a.root} {a.table} --delete {made.name}`)")
    return 0


def _cmd_retention(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    if a.reset or a.retain_last is not _UNSET or a.older_than is not _UNSET:
        now = t.retention
        if a.reset:
            if a.retain_last is not _UNSET or a.older_than is not _UNSET:
                raise SampleStoreError("--reset restores the default policy; give it alone, without --retain-last "
                                       "or --older-than")
            t.set_retention()
        else:
            # What is not given stays as it is: changing the count keeps the age rule.
            t.set_retention(retain_last=now.retain_last if a.retain_last is _UNSET else a.retain_last,
                            older_than=now.older_than if a.older_than is _UNSET else a.older_than)
    policy = t.retention
    if a.json:
        print(_json({"table": a.table, **policy.to_dict(), "tags": [g.to_dict() for g in t.tags()]}))
    else:
        tags = t.tags()
        print(f"table {a.table!r}: {_policy_text(policy)}; always kept: the current snapshot, "
              f"{len(tags)} tagged and any a reader leases")
    return 0


_UNSET: Any = object()  # an option not given (None means "switch this rule off")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or plain seconds -> seconds."""
    t = text.strip().lower()
    unit = t[-1:] if t[-1:] in _UNITS else "s"
    number = t[:-1] if t[-1:] in _UNITS else t
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration such as 7d, 12h, 30m, 45s or seconds; found {text!r}")
    return value


def _duration_or_off(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else _duration(text)


def _count_or_off(text: str) -> int | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'none'; found {text!r}")
    return n


def _snapshot_arg(text: str) -> int | str:
    """A snapshot id, or a tag name (resolved by the table)."""
    return int(text) if text.isascii() and text.isdigit() else text


def _fmt_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def _policy_text(policy: Any) -> str:
    parts = []
    if policy.retain_last is not None:
        parts.append(f"keep the last {policy.retain_last} snapshot(s)")
    if policy.older_than is not None:
        parts.append(f"every snapshot younger than {_fmt_duration(policy.older_than)}")
    if not parts:
        return "keep no snapshot by count or age"
    return ("keep " if policy.retain_last is None else "") + " and ".join(parts)


def _cmd_expect(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    if a.file and a.clear:
        raise SampleStoreError("give FILE.json or --clear, not both")
    if a.file:
        try:
            with open(a.file) as f:
                rules = json.load(f)
        except json.JSONDecodeError as exc:
            raise SampleStoreError(f"{a.file!r} is not JSON ({exc}); expected a list of rules, "
                                   f"[{{\"rule\": \"missing_rate\", \"column\": ..., \"max\": ..., \"action\": ...}}, ...]") from exc
        t.set_expectations(rules)
    elif a.clear:
        t.set_expectations([])
    rules = [e.to_dict() for e in t.expectations]
    if a.json:
        print(_json({"table": t.name, "expectations": rules}))
        return 0
    verb = "set" if a.file or a.clear else "has"
    print(f"table {t.name!r} {verb} {len(rules)} expectation(s)" + (":" if rules else ""))
    for i, r in enumerate(rules):
        print(f"  {i}: {json.dumps(r)}")
    return 0


def _cmd_quarantine(a: argparse.Namespace) -> int:
    t = _store(a.root).table(a.table)
    if a.release is not None and a.drop is not None:
        raise SampleStoreError("give --release ID or --drop ID, not both")
    if a.release is not None or a.drop is not None:
        snap = t.release_quarantine(a.release) if a.release is not None else t.drop_quarantine(a.drop)
        qid = a.release if a.release is not None else a.drop
        if a.json:
            print(_json(snap.to_dict()))
        else:
            done = "released: its rows are visible" if a.release is not None else "dropped: GC deletes its files"
            print(f"quarantine {qid} of table {t.name!r} {done} (snapshot {snap.snapshot_id})")
        return 0
    held = t.quarantines(resolved=a.all)
    if a.json:
        # The first violation's rule, column, measured value and bound at the top level (what
        # a script asks first); every violation stays under "violations".
        print(_json([{**{k: (q.violations[0].get(k) if q.violations else None)
                         for k in ("rule", "column", "measured", "bound")}, **q.to_dict()} for q in held]))
        return 0
    if not held:
        print(f"table {t.name!r} has no {'' if a.all else 'open '}quarantine")
    for q in held:
        part = ", ".join(f"{k}={v}" for k, v in q.partition.items()) or "(unpartitioned)"
        state = f" [{q.resolution} at snapshot {q.resolved_snapshot}]" if q.resolution else ""
        print(f"{q.quarantine_id}: partition {part}: {q.rows:,} rows in {q.files} files, snapshot "
              f"{q.snapshot_id}{state}")
        for v in q.violations:
            bound = ", ".join(f"{k}={b:g}" for k, b in v.get("bound", {}).items())
            print(f"    {v.get('rule')} of {v.get('column') or 'the partition'}: measured {v.get('measured'):.4g}, "
                  f"bound {bound}")
    return 0


def _cmd_quality(a: argparse.Namespace) -> int:
    from ..table.quality import plot_missing_heatmap, quality_report

    t = _store(a.root).table(a.table)
    now = a.as_of.timestamp() if a.as_of is not None else None
    rep = quality_report(t, since=a.since, snapshot=a.snapshot, now=now, psi_window=a.psi_window)
    plotted = plot_missing_heatmap(rep, a.plot) if a.plot else None
    if a.json:
        print(_json(rep))
    else:
        _print_quality(rep)
        if plotted:
            print(f"wrote the missing-rate heat map to {a.plot}")
    if a.plot and not plotted:
        print(f"samplestore: no heat map written to {a.plot}: the report has no partition", file=sys.stderr)
    return 1 if rep["failed"] else 0


def _print_quality(rep: dict[str, Any]) -> None:
    parts = rep["partitions"]
    fails = rep["failures"]
    print(f"quality of table {rep['table']} @ snapshot {rep['snapshot_id']} (as of {rep['as_of']}): "
          f"{len(parts)} partitions, {len(rep['expectations'])} expectations, {rep['failed']} failed "
          f"({fails['checks']} checks, {fails['freshness']} freshness rules, {fails['quarantines']} open quarantines)")
    names = [",".join(str(v) for v in p["partition"].values()) or "(all)" for p in parts]
    for name, p in zip(names, parts):
        bad = [c for c in p["checks"] if c["verdict"] == "fail"]
        unknown = sum(c["verdict"] == "not measurable" for c in p["checks"])
        note = f", {unknown} not measurable" if unknown else ""
        head = f"  {name:<12} {p['rows']:>12,} rows  "
        if p["held"]:
            h = p["held"]
            print(head + f"HELD {h['rows']:,} rows in quarantine(s) {', '.join(map(str, h['quarantine_ids']))}"
                  + (" (the whole partition)" if p["state"] == "held" else ""))
        if not bad and p["state"] != "held":
            print(head + f"ok ({len(p['checks'])} checks{note})")
        for c in bad:
            value = f"{int(c['measured']):,}" if c["rule"] == "rows" else f"{c['measured']:.4g}"
            measured = value + (f" (change {c['change']:+.1%})" if c.get("change") is not None else "")
            bound = ", ".join(f"{k}={v:g}" for k, v in c["bound"].items())
            print(head + f"FAIL {c['rule']}{' of ' + c['column'] if c['column'] else ''}: {measured}, bound {bound}")
    for f in rep["freshness"]:
        msgs = f.get("messages", [])
        shown = msgs[:5] + ([f"... and {len(msgs) - 5} more (--json lists them)"] if len(msgs) > 5 else [])
        print(f"  freshness of {f['column']} (expectation {f['rule_index']}): {f['verdict']}"
              + "".join(f"\n    {m}" for m in shown) + (f" ({f['reason']})" if "reason" in f else ""))
    trend = [c for c in (parts[0]["missing_rate"] if parts else {}) if any(p["missing_rate"][c] for p in parts)]
    if trend:
        print("missing rate (%) by partition (columns with any missing):")
        print("  " + "column".ljust(16) + "".join(n[-10:].rjust(11) for n in names))
        for c in trend:
            print("  " + c.ljust(16) + "".join(f"{100 * p['missing_rate'][c]:>11.2f}" for p in parts))
    shifted = list(dict.fromkeys(c for p in parts for c in p["psi"]))
    if shifted and len(parts) > 1:
        print(f"PSI against the previous {rep['psi_window']} partitions (max over slots; > 0.25: a shift):")
        print("  " + "column".ljust(16) + "".join(n[-10:].rjust(11) for n in names))
        for c in shifted:
            cells = [p["psi"][c]["max"] if p["psi"].get(c) else None for p in parts]
            print("  " + c.ljust(16) + "".join(("-" if v is None else f"{v:.3f}").rjust(11) for v in cells))
    if rep["quarantines"]:
        print(f"FAIL {len(rep['quarantines'])} open quarantine(s) hold rows back from training: release or drop "
              f"them (samplestore quarantine ROOT {rep['table']})")


def _positive_int(text: str) -> int:
    """A whole number >= 1 (--psi-window)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or str(n) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text!r}")
    return n


def _as_of_arg(text: str) -> _dt.datetime:
    """A time for --as-of: ISO 8601 (UTC unless it says otherwise)."""
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an ISO time like 2026-11-21T06:00, found {text!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def _partition_values(text: str) -> dict[str, str]:
    """COL=VALUE[,COL=VALUE...] for ingest --partition."""
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected COL=VALUE[,COL=VALUE...], e.g. ds=2026-11-20; found {text!r}")
        out[name.strip()] = value.strip()
    return out


def _cmd_bench(a: argparse.Namespace) -> int:
    require_extra("torch", "samplestore bench (the loader benchmarks train on PyTorch)")
    from ..bench.report import PARTS, run_all

    which = [a.which]
    if a.which == "all":  # remote needs the S3 server of the test extra
        which = [p for p in PARTS if p != "remote" or importlib.util.find_spec("moto") is not None]
    t0 = time.perf_counter()
    doc = run_all(a.out, which, a.quick, log=lambda m: print(m, file=sys.stderr, flush=True))
    with open(os.path.join(a.out, "bench.md")) as f:
        print(f.read())
    written = "bench.json, bench.md and bench.png" if doc.get("chart") else "bench.json and bench.md"
    print(f"wrote {written} to {a.out} in {time.perf_counter() - t0:.0f} s")
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    require_extra("torch", "samplestore demo (it trains a model)")
    from ..demo import run_demo

    res = run_demo(a.root, rows=a.rows, epochs=a.epochs, workers=a.workers)
    if not res["losses"][-1] < res["losses"][0]:
        print("samplestore: warning: the loss did not fall", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------ parser
JSON_HELP = 'print the result as JSON on stdout; an error is printed there too, as {"error": "..."}, with exit status 2'

_EPILOG = ("Errors print one line and exit with status 2 (verify exits 1 when it finds damage, quality when an "
           "expectation fails). With --json an "
           'error is one JSON object, {"error": "..."}, on stdout instead of a line of text on stderr. '
           "Run `samplestore COMMAND --help` for a command's options.")


class _UsageError(Exception):
    """A command line argparse rejects; :func:`main` prints it as text or as JSON."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors reach :func:`main` as :class:`_UsageError`
    instead of being printed as text and exiting, so that --json can print them as JSON."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command.

    Usage errors raise ``_UsageError`` (of this module) rather than exiting: :func:`main`
    prints them.
    """
    p = _Parser(prog="samplestore", description="Columnar sample storage for recommendation training: create, "
                "fill, inspect, check and compact stores from the command line.", epilog=_EPILOG)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands",
                         help="what to do; each command takes --help")

    def cmd(name: str, fn: Any, help: str, table: str | None = "required") -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("root", help="the store's root: a directory or a URI (s3://bucket/prefix"
                                     "[?endpoint_override=host:port&scheme=http], gs://, abfs://, hdfs://)")
        sp.add_argument("--catalog", metavar="URI",
                        help="the store's catalog, if not the SQLite file in ROOT: postgresql://user@host:port/db"
                             "[?schema=NAME] for one many hosts share (default: $SAMPLESTORE_CATALOG; give the "
                             "password in PGPASSWORD or ~/.pgpass, not here)")
        if table == "required":
            sp.add_argument("table", help="table name")
        elif table == "optional":
            sp.add_argument("table", nargs="?", help="table name (all tables if omitted)")
        sp.set_defaults(fn=fn)
        return sp

    def snapshot_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--snapshot", type=_snapshot_arg, metavar="ID|TAG",
                        help="snapshot id or tag name to read (see `samplestore snapshots` and `samplestore tag "
                             "--list`; default: the current one)")

    def executor_options(sp: argparse.ArgumentParser, ray_help: str) -> None:
        sp.add_argument("--executor", choices=["local", "ray"], default="local",
                        help=f"local: this process (default); ray: {ray_help} (pip install 'samplestore[ray]')")
        sp.add_argument("--address", help="with --executor ray: the Ray cluster (e.g. auto, or ray://HOST:10001; "
                                          "default: start a local one)")

    cmd("init", _cmd_init, "create an empty store (a folder with its catalog)", table=None)
    c = cmd("create", _cmd_create, "create a table from a schema JSON file")
    c.add_argument("--schema", help="schema JSON ({\"features\": [{\"kind\": \"dense\", \"name\": ...}, ...]})")
    c.add_argument("--criteo", action="store_true", help="use the Criteo click-log schema")
    c.add_argument("--partition-by", nargs="*", help="scalar columns to partition by")
    i = cmd("ingest", _cmd_ingest, "ingest Parquet, CSV/TSV or Criteo TSV files as one commit")
    i.add_argument("files", nargs="+", metavar="FILES",
                   help="input files, all of one schema: local paths or URIs as for ROOT (s3://bucket/day.parquet...)")
    i.add_argument("--format", choices=["parquet", "csv", "tsv", "criteo"],
                   help="default: from the file name (.parquet/.pq, .csv, .tsv/.txt), else Parquet if the file is one")
    i.add_argument("--create", action="store_true",
                   help="create the store and table if missing: the schema is inferred from the first file's "
                        "columns (lists of ints -> sparse, fixed-size float lists -> dense, others -> scalar), "
                        "or is the Criteo schema with --format criteo")

    def names(text: str) -> list[str]:
        return [n.strip() for n in text.split(",") if n.strip()]

    i.add_argument("--label", type=names, metavar="COLS",
                   help="with --create: comma-separated number/bool columns that are training labels")
    i.add_argument("--ids", type=names, metavar="COLS",
                   help="with --create: comma-separated integer id columns (e.g. user,movie) to deliver as "
                        "sparse features, one id per row")
    i.add_argument("--dense", type=names, metavar="COLS",
                   help="with --create: comma-separated float columns to deliver as dense features")
    i.add_argument("--partition-by", type=names, metavar="COLS",
                   help="with --create: comma-separated scalar columns to partition the new table by, e.g. ds")
    i.add_argument("--partition", type=_partition_values, metavar="COL=VALUE",
                   help="give every row this value of a column the files lack, e.g. ds=2026-11-20 for a day's Criteo "
                        "log; with --create the column is added to the schema (a string) and partitions the table")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    executor_options(i, "one Ray task per file, one commit at the end (files must be readable from every task)")
    for name, fn, help in [("info", _cmd_info, "describe the store or one table")]:
        sp = cmd(name, fn, help, table="optional")
        sp.add_argument("--json", action="store_true", help=JSON_HELP)
    h = cmd("head", _cmd_head, "print the first rows of a table")
    h.add_argument("-n", type=int, default=5, metavar="ROWS", help="how many rows to print (default 5)")
    h.add_argument("--columns", help="comma-separated column names (default: all)")
    snapshot_option(h)
    h.add_argument("--json", action="store_true", help=JSON_HELP)
    s = cmd("stats", _cmd_stats, "per-column statistics: missing values, min/max, list lengths")
    s.add_argument("--by-partition", action="store_true", help="also give the figures of each partition")
    snapshot_option(s)
    s.add_argument("--json", action="store_true", help=JSON_HELP)
    sn = cmd("snapshots", _cmd_snapshots, "list a table's snapshots")
    sn.add_argument("--json", action="store_true", help=JSON_HELP)
    e = cmd("export", _cmd_export, "export a table (snapshot) to a Parquet file")
    e.add_argument("out", metavar="OUT",
                   help="the Parquet file to write, or an existing folder to write TABLE.parquet in: a local path "
                        "or a URI as for ROOT (a URI ending in / is a folder); written under a temporary name and "
                        "moved onto OUT when complete")
    e.add_argument("--columns", help="comma-separated column names (default: all)")
    snapshot_option(e)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    v = cmd("verify", _cmd_verify, "re-read and fully validate every live file (checksums, sizes, offsets)", table="optional")
    v.add_argument("--remove-leftovers", action="store_true",
                   help="remove temporary and orphan files of dead writers older than --grace")
    v.add_argument("--grace", type=float, default=3600.0, help="seconds (default 3600)")
    v.add_argument("--json", action="store_true", help=JSON_HELP)
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    cp = cmd("compact", _cmd_compact, "compact small files, expire snapshots and collect garbage", table="optional")
    cp.add_argument("--daemon", action="store_true", help="run in a loop until SIGTERM")
    cp.add_argument("--interval", type=float, default=60.0, help="seconds between passes (daemon)")
    cp.add_argument("--compact-seconds", type=_duration,
                    help="time bound on compacting one table in one pass (10m, 300 or seconds): no group of files "
                         "starts after it but the first, then expiry and GC follow; 0 for no bound (default: no "
                         "bound for one pass, 5m with --daemon)")
    cp.add_argument("--target-mb", type=float, default=128.0, help="target file size in MiB")
    cp.add_argument("--sort-by", help="comma-separated cluster key, e.g. user_id,ts")
    cp.add_argument("--layout", choices=["shuffled"],
                    help="shuffled: write each rewritten group's rows in a random order, for training tables "
                         "(every file not written so is rewritten, each group read whole into memory as with "
                         "--sort-by; not with --sort-by). A table's properties compaction.sort_by / "
                         "compaction.layout, where set, win over --sort-by and --layout")
    cp.add_argument("--retain-last", type=int,
                    help="expire keeping the newest N snapshots; given (alone or with --older-than), it overrides "
                         "every table's retention policy for this run (default: each table's policy, see "
                         "`samplestore retention`)")
    cp.add_argument("--older-than", type=_duration,
                    help="expire keeping snapshots younger than this (7d, 12h, 30m or seconds); given, it overrides "
                         "every table's retention policy for this run")
    cp.add_argument("--grace", type=float, default=3600.0, help="age before leftovers of dead writers are removed")
    cp.add_argument("--json", action="store_true", help=JSON_HELP)
    executor_options(cp, "rewrite the groups of files as Ray tasks in parallel (planned and committed here)")
    de = cmd("delete", _cmd_delete, "delete rows (e.g. a user's, for erasure)")
    de.add_argument("--where", required=True, help="COLUMN=VALUE[,VALUE...], e.g. user_id=42,43")
    ex = cmd("expire", _cmd_expire, "forget old snapshots (by the table's retention policy unless told otherwise; "
                                    "tagged snapshots are always kept)")
    ex.add_argument("--retain-last", type=int,
                    help="keep the newest N snapshots; given (alone or with --older-than), it overrides the table's "
                         "retention policy for this run (default: the policy, see `samplestore retention`)")
    ex.add_argument("--older-than", type=_duration,
                    help="keep snapshots younger than this (7d, 12h, 30m or seconds); given, it overrides the "
                         "table's retention policy for this run")
    xp = cmd("expect", _cmd_expect, "set (or show) a table's data-quality expectations, checked at every commit")
    xp.add_argument("file", nargs="?", metavar="FILE.json",
                    help='a JSON list of rules, e.g. [{"rule": "missing_rate", "column": "dense[3]", "max": 0.1, '
                         '"action": "quarantine"}] (see docs/QUALITY.md); replaces the table\'s expectations. '
                         "Without it: show them")
    xp.add_argument("--clear", action="store_true", help="remove every expectation of the table")
    xp.add_argument("--json", action="store_true", help=JSON_HELP)
    qu = cmd("quarantine", _cmd_quarantine, "list, release or drop the partitions' files that commits held back "
                                            "for breaking a quarantine expectation")
    qu.add_argument("--release", type=int, metavar="ID", help="make quarantine ID's rows visible (one snapshot)")
    qu.add_argument("--drop", type=int, metavar="ID",
                    help="remove quarantine ID's files (one snapshot; expire and gc then delete them)")
    qu.add_argument("--all", action="store_true", help="list released and dropped quarantines too")
    qu.add_argument("--json", action="store_true", help=JSON_HELP)
    ql = cmd("quality", _cmd_quality, "the data-quality report: each expectation per partition, missing-rate trend, "
                                      "PSI of dense features and labels, freshness; exit status 1 if a check fails")
    ql.add_argument("--since", metavar="D", help="only partitions from D on (e.g. 2026-11-01); freshness counts from it")
    ql.add_argument("--as-of", type=_as_of_arg, metavar="TIME",
                    help="check freshness deadlines at this ISO time, UTC unless it says (default: now)")
    ql.add_argument("--psi-window", type=_positive_int, default=7, metavar="N",
                    help="how many previous partitions a partition's PSI compares against (default 7)")
    ql.add_argument("--plot", metavar="OUT.png",
                    help="also write a heat map of the missing rate by column and partition (needs matplotlib: "
                         "pip install 'samplestore[plot]')")
    snapshot_option(ql)
    ql.add_argument("--json", action="store_true", help=JSON_HELP)
    g = cmd("gc", _cmd_gc, "remove files no snapshot or reader needs", table="optional")
    g.add_argument("--grace", type=float, default=3600.0,
                   help="seconds before temporary and orphan files of dead writers count as leftovers (default 3600)")
    tg = cmd("tag", _cmd_tag, "name a snapshot so it can be read later (kept by expiry until untagged); list or "
                              "delete tags")
    tg.add_argument("name", nargs="?", help="the tag to make, e.g. train-2026-11-20 (without it: list the tags)")
    tg.add_argument("--snapshot", type=_snapshot_arg,
                    help="snapshot id (or another tag) to tag (default: the current snapshot)")
    tg.add_argument("--replace", action="store_true", help="move an existing tag of that name to this snapshot")
    tg.add_argument("--list", action="store_true", help="list the table's tags (name, snapshot, when tagged)")
    tg.add_argument("--delete", metavar="NAME", help="remove this tag; its snapshot then expires by the policy")
    tg.add_argument("--json", action="store_true", help=JSON_HELP)
    rt = cmd("retention", _cmd_retention,
             "show or set a table's retention policy: which snapshots expire, compact and the daemon keep")
    rt.add_argument("--retain-last", type=_count_or_off, default=_UNSET, metavar="N",
                    help="keep at least the newest N snapshots ('none': no count rule); other rules stay as they are")
    rt.add_argument("--older-than", type=_duration_or_off, default=_UNSET, metavar="AGE",
                    help="keep snapshots younger than AGE: 7d, 12h, 30m, seconds ('none': no age rule); other rules "
                         "stay as they are")
    rt.add_argument("--reset", action="store_true", help="restore the default policy (last 1 and younger than 7d)")
    rt.add_argument("--json", action="store_true", help=JSON_HELP)
    bench_help = "run the benchmarks against Parquet baselines; write JSON, markdown, PNG"
    b = sub.add_parser("bench", help=bench_help, description=bench_help)
    from ..bench.report import PARTS  # the stdlib only: cheap where the parser is built

    b.add_argument("which", nargs="?", default="all", choices=["all", *PARTS],
                   help="which benchmark to run (default all); train-quality trains the demo's model once per loader "
                        "and seed on drifting data and reports held-out AUC and log-loss; sequence measures 200-id "
                        "behaviour histories (cross-row encoding, dedup=, training steps) and float16/bfloat16 dense "
                        "storage; impute runs the loader with and without "
                        "mean imputation of dense NaNs; remote reads over a local S3 server (needs "
                        "the test extra); device times the GPU input path (pinned memory, DevicePrefetcher; "
                        "skipped without CUDA)")
    b.add_argument("--quick", action="store_true", help="smaller sizes (minutes)")
    b.add_argument("--out", default="bench-out", help="output directory (default bench-out)")
    b.set_defaults(fn=_cmd_bench)
    demo_help = "stream, compact and train a DLRM-style model on generated samples"
    d = sub.add_parser("demo", help=demo_help, description=demo_help)
    d.add_argument("--root", default="demo-store", help="store directory (default ./demo-store)")
    d.add_argument("--rows", type=int, default=300_000, help="samples to generate (default 300,000)")
    d.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    d.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    d.set_defaults(fn=_cmd_demo)
    return p


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (before a ``--``, after which all is positional)."""
    argv = list(argv)
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _error(message: str, as_json: bool) -> int:
    """Print an error as one line (or one JSON object on stdout with --json); return 2."""
    if as_json:
        print(json.dumps({"error": message}), flush=True)
    else:
        print(f"samplestore: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors print one line (no traceback; one JSON object on stdout with
    ``--json``) and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        if not as_json:
            exc.parser.print_usage(sys.stderr)
            print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return _error(str(exc), True)
    token = _CATALOG.set(getattr(args, "catalog", None))
    try:
        return int(args.fn(args) or 0)
    except SampleStoreError as exc:
        return _error(str(exc), as_json)
    except KeyboardInterrupt:
        print("samplestore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a command that stopped reading (`| head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A file or folder that is missing, not writable, full...: the message says which.
        return _error(str(exc), as_json)
    finally:
        _CATALOG.reset(token)
