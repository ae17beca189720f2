"""A real S3-API server for the tests: moto's ``ThreadedMotoServer`` on 127.0.0.1 on a free
port, started once per test process; a fresh bucket per test. Nothing outside the machine."""

from __future__ import annotations

import itertools
import logging
import os
import socket
from dataclasses import dataclass

import pytest

_buckets = itertools.count()


@dataclass(frozen=True)
class S3Server:
    """Where the server listens, and the ``storage_options`` that reach it."""

    endpoint: str

    @property
    def options(self) -> dict:
        return {"endpoint_override": self.endpoint, "scheme": "http", "region": "us-east-1"}

    def filesystem(self, **kw):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(**self.options, **kw)

    def new_bucket(self) -> str:
        """A new, empty bucket (unique in this test process)."""
        name = f"t{os.getpid()}-{next(_buckets)}"
        self.filesystem(allow_bucket_creation=True).create_dir(name)
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server():
    """Start the server (the generator of the session fixture); skips where moto is missing
    (fails under CI, where every variant must run)."""
    reason = "the S3 tests need moto[server] (pip install -e '.[test]')"
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: the S3 tests must run there)", pytrace=False)
        pytest.skip(reason)
    from moto.server import ThreadedMotoServer

    # Fake credentials for the fake server, for this process and the processes tests start;
    # no instance-metadata lookups (there is no cloud here).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"127.0.0.1:{port}")
    finally:
        server.stop()


def make_store(where: str, tmp_path, request, name: str = "store"):
    """A new store on the local disk (``where == "local"``) or on the S3 server with a
    PostgreSQL catalog, as a fleet of hosts would share them: one fixture parameter runs a
    test on both. (An S3 store with an SQLite catalog beside it is tests/storage's case.)"""
    import samplestore as ss

    if where == "local":
        return ss.open_store(tmp_path / name, create=True)
    server = request.getfixturevalue("s3_server")
    # The catalog a test chose through SAMPLESTORE_CATALOG, else a new schema on the session's server.
    catalog = os.environ.get("SAMPLESTORE_CATALOG") or request.getfixturevalue("pg_server").uri()
    return ss.open_store(f"s3://{server.new_bucket()}/{name}", create=True, catalog=catalog,
                         storage_options=server.options)
