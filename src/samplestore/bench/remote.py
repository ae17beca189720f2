"""Remote-read benchmark: a training epoch and a wide-file read over a real S3-API server.

The server is moto's ``ThreadedMotoServer`` on 127.0.0.1 (the ``test`` extra), started here;
it is slow (a Python web server), so samples/s over it are quoted as measured, next to the
same epoch over local disk, with no target. The figures with targets count what the reader
asks of the storage (:class:`~samplestore.storage.IOStats`):

- requests per (row group, needed columns): every request of the epoch (the ``HEAD`` that
  opens a file, footer reads and chunk reads) over the row groups read; target <= 2;
- bytes fetched / bytes the projected columns occupy in the files (their chunks, from the
  footers); target <= 1.1;
- opening a 5,000-column file and reading 10 adjacent columns: requests (target <= 3) and
  bytes; and 10 columns spread over the file, for comparison (one request per column: they
  are megabytes apart, and coalescing them would fetch the file).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import numpy as np

from .. import datagen
from ..extras import require_extra
from .format import WIDE_READ_COLUMNS, wide_data

__all__ = ["run_remote_bench", "format_markdown"]

_OPTIONS = {"scheme": "http", "region": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: A model that uses a few of the table's features: the label, the dense vector and four id
#: lists spread over the row group's columns (what coalescing cannot read in one request).
PROJECTED_FEATURES = ("click", "dense", "c3", "c11", "c19", "c25")


def _epoch(table: Any, batch_size: int, features: Any = None) -> tuple[int, float]:
    from ..torch import SampleDataset

    ds = SampleDataset(table, batch_size=batch_size, shuffle=True, seed=0, features=features)
    t0 = time.perf_counter()
    n = sum(len(b) for b in ds)
    seconds = time.perf_counter() - t0
    ds.close()
    return n, seconds


def run_remote_bench(workdir: str, rows: int = 1_000_000, wide_rows: int = 5_000, wide_cols: int = 5_000,
                     batch_size: int = 4096) -> dict[str, Any]:
    """Measure one training epoch of the Criteo-like table over the S3 server and on local
    disk, and a 10-of-``wide_cols`` read of a wide file over the server."""
    import samplestore as ss

    server_mod = require_extra("moto.server", "samplestore bench remote", extra="test",
                               instead="the other benchmarks run without it")
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)  # the local server takes any credentials
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import pyarrow.fs as pafs

        options = dict(_OPTIONS, endpoint_override=f"127.0.0.1:{port}")
        pafs.S3FileSystem(**options, allow_bucket_creation=True).create_dir("bench")
        remote = ss.open_store("s3://bench/samples", create=True, catalog=os.path.join(workdir, "catalog"),
                               storage_options=options)
        local = ss.open_store(os.path.join(workdir, "local"), create=True)
        schema = datagen.criteo_schema()
        data = schema.conform(datagen.criteo_like(rows, seed=0))
        tables = {}
        for where, store in (("s3", remote), ("local", local)):
            t = store.create_table("criteo", schema)
            step = max(1, -(-rows // 4))  # four appends: four files, each opened (HEAD + footer)
            for start in range(0, rows, step):
                t.append(data.slice(start, step))
            tables[where] = t
        del data
        res: dict[str, Any] = {"rows": rows, "batch_size": batch_size}

        # Row groups and projected bytes, from the footers of the local copy (same data); one
        # epoch of every feature, and one of a few (PROJECTED_FEATURES).
        t_local = tables["local"]
        storage = remote.storage
        for key, features in (("epoch", None), ("epoch_projected", list(PROJECTED_FEATURES))):
            names = features or [f.name for f in schema]
            row_groups = projected = 0
            for f in t_local.files():
                with ss.format.FileReader(t_local.storage.join(t_local.dir, f.path), t_local.storage) as r:
                    row_groups += r.num_row_groups
                    projected += r.chunk_bytes(names)
            storage.stats.reset()
            n, secs = _epoch(tables["s3"], batch_size, features)
            st = storage.stats.snapshot()
            n_local, secs_local = _epoch(t_local, batch_size, features)
            if n != rows or n_local != rows:
                raise AssertionError(f"an epoch delivered {n} rows over S3 and {n_local} locally, expected {rows}")
            res[key] = {
                "features": names, "files": len(t_local.files()), "row_groups": row_groups, "opens": st["opens"],
                "get_requests": st["requests"], "requests_per_row_group": (st["opens"] + st["requests"]) / row_groups,
                "bytes_fetched": st["bytes_read"], "projected_bytes": projected,
                "bytes_ratio": st["bytes_read"] / projected,
                "samples_per_s": {"s3 (moto, 127.0.0.1)": rows / secs, "local disk": rows / secs_local},
            }

        # The wide file: one table of one file, read through a scan (the catalog plans it).
        wide, wschema = wide_data(wide_rows, wide_cols)
        wt = remote.create_table("wide", wschema)
        wt.append(wide)
        del wide
        res["wide"] = {"rows": wide_rows, "columns": wide_cols, "file_bytes": wt.files()[0].file_bytes}
        picks = {"adjacent": [f"f{i}" for i in range(100, 100 + WIDE_READ_COLUMNS)],
                 "spread": [f"f{i}" for i in np.linspace(0, wide_cols - 1, WIDE_READ_COLUMNS).astype(int)]}
        for kind, cols in picks.items():
            storage.stats.reset()
            t0 = time.perf_counter()
            got = wt.scan(columns=cols).to_arrow()
            secs = time.perf_counter() - t0
            st = storage.stats.snapshot()
            if got.num_rows != wide_rows:
                raise AssertionError(f"the wide read returned {got.num_rows} rows, expected {wide_rows}")
            res["wide"][kind] = {"opens": st["opens"], "get_requests": st["requests"],
                                 "requests": st["opens"] + st["requests"], "bytes_fetched": st["bytes_read"],
                                 "seconds": secs}
        remote.close()
        local.close()
        return res
    finally:
        server.stop()


def format_markdown(res: dict[str, Any]) -> str:
    """The remote benchmark as a markdown table."""
    e, p, w = res["epoch"], res["epoch_projected"], res["wide"]
    sps = e["samples_per_s"]
    ad, sp = w["adjacent"], w["spread"]
    lines = [
        f"Criteo-like table, {res['rows']:,} rows in {e['files']} files, {e['row_groups']} row groups, one shuffled "
        f"training epoch (batch {res['batch_size']}) over moto's S3 server on 127.0.0.1; wide file {w['rows']:,} rows "
        f"x {w['columns']:,} float columns ({w['file_bytes'] / 1e6:.1f} MB).",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| requests per (row group, needed columns) | {e['requests_per_row_group']:.2f} "
        f"({e['opens']} HEAD + {e['get_requests']} GET) | <= 2 |",
        f"| bytes fetched / bytes of the projected columns | {e['bytes_ratio']:.3f} | <= 1.1 |",
        f"| the same, epoch of {len(p['features'])} of the {len(e['features'])} features ({', '.join(p['features'])}): "
        f"requests per row group | {p['requests_per_row_group']:.2f} ({p['opens']} HEAD + {p['get_requests']} GET) "
        f"| <= 2 |",
        f"| ... bytes fetched / bytes of those columns | {p['bytes_ratio']:.3f} | <= 1.1 |",
        f"| open + read 10 adjacent of {w['columns']:,} columns: requests | {ad['requests']} ({ad['opens']} HEAD + "
        f"{ad['get_requests']} GET), {ad['bytes_fetched'] / 1e6:.2f} MB | <= 3 |",
        f"| open + read 10 spread columns: requests | {sp['requests']} ({sp['opens']} HEAD + {sp['get_requests']} GET), "
        f"{sp['bytes_fetched'] / 1e6:.2f} MB | - |",
        f"| epoch samples/s over S3 (moto) | {sps['s3 (moto, 127.0.0.1)']:,.0f} | - |",
        f"| epoch samples/s on local disk | {sps['local disk']:,.0f} | - |",
    ]
    return "\n".join(lines)
