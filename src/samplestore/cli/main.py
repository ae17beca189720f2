"""``samplestore`` command line: one sub-command per job; read commands take ``--json``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Sequence

from ..errors import SampleStoreError

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .. import datagen
    from ..format import FileReader, write_file

    root = args.root or tempfile.mkdtemp(prefix="samplestore-demo-")
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "criteo.ssf")
    schema = datagen.criteo_schema()
    t0 = time.perf_counter()
    table = datagen.criteo_like(args.rows)
    info = write_file(path, table, schema)
    t1 = time.perf_counter()
    with FileReader(path) as r:
        back = r.read()
        r.verify()
    t2 = time.perf_counter()
    print(f"wrote {info.num_rows:,} Criteo-like samples to {path}: {info.file_bytes / info.num_rows:.1f} bytes/sample, "
          f"{info.num_row_groups} row groups, {t1 - t0:.2f} s (with generation)")
    print(f"read back and verified every checksum in {t2 - t1:.2f} s; identical: {back.equals(schema.conform(table))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = argparse.ArgumentParser(prog="samplestore", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="write, read back and verify generated samples")
    d.add_argument("--root", help="directory to write into (default: a new temporary one)")
    d.add_argument("--rows", type=int, default=200_000)
    d.set_defaults(fn=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors print one line (no traceback) and exit non-zero."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except SampleStoreError as exc:
        print(f"samplestore: error: {exc}", file=sys.stderr)
        return 2
