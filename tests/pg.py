"""A private PostgreSQL server for the tests, from the binaries the ``pgserver`` package ships.

pgserver's own ``get_server`` listens on a Unix socket only and, run as root, adds a system
user; the tests want a server on 127.0.0.1 that they can stop and start again (the outage
test), so this helper drives the same binaries (``initdb``, ``pg_ctl``) itself. As root (CI)
the server runs as ``nobody``: PostgreSQL refuses to run as root. ``nobody`` may not be able
to enter the checkout (a clone under ``mktemp -d`` is mode 700), so the binaries it runs are
copied once to a world-readable folder first.

Under CI (``CI`` set, as ``.ci/run`` does) a server that cannot start fails the test instead of
skipping it: a green CI run must not be one that quietly left PostgreSQL out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid


class PgUnavailable(Exception):
    """No PostgreSQL server can be started here (the reason says why)."""


def _bin_dir() -> str:
    # find_spec does not import pgserver (whose import touches the user's runtime folder).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PgUnavailable("the pgserver package is not installed (pip install 'samplestore[test]')")
    path = os.path.join(list(spec.submodule_search_locations)[0], "pginstall", "bin")
    if not os.path.exists(os.path.join(path, "pg_ctl")):
        raise PgUnavailable(f"pgserver ships no PostgreSQL binaries for this platform (no {path}/pg_ctl)")
    return path


def _install_for(ids: tuple[int, int] | None) -> str:
    """The ``bin`` folder to run: pgserver's own, or, when the server runs as another user,
    a copy of its install in a world-readable temporary folder (made once, atomically)."""
    bin_dir = _bin_dir()
    if ids is None:
        return bin_dir
    install = os.path.dirname(bin_dir)  # .../site-packages/pgserver/pginstall
    site = os.path.dirname(os.path.dirname(install))
    key = hashlib.sha256(f"{install}:{os.stat(os.path.join(bin_dir, 'postgres')).st_mtime_ns}".encode()).hexdigest()[:12]
    target = os.path.join(tempfile.gettempdir(), f"samplestore-pginstall-{key}")
    # The binaries find their shared libraries at $ORIGIN/../../../pgserver.libs (their RPATH):
    # the copy keeps that layout.
    if not os.path.exists(os.path.join(target, "pgserver", "pginstall", "bin", "pg_ctl")):
        staging = tempfile.mkdtemp(prefix="samplestore-pginstall-staging-")
        for part in ("bin", "lib", "share"):
            shutil.copytree(os.path.join(install, part), os.path.join(staging, "pgserver", "pginstall", part),
                            symlinks=True)
        if os.path.isdir(os.path.join(site, "pgserver.libs")):
            shutil.copytree(os.path.join(site, "pgserver.libs"), os.path.join(staging, "pgserver.libs"))
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target)  # another process may have won the race: use its copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(target, "pgserver", "pginstall", "bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A PostgreSQL server on 127.0.0.1, in a temporary folder, stopped and removed by :meth:`close`."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="samplestore-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.ids: tuple[int, int] | None = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.ids = (nobody.pw_uid, nobody.pw_gid)
            os.chown(self.dir, *self.ids)
        try:
            self.bin = _install_for(self.ids)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.port = _free_port()
        try:
            self._run("initdb", "-D", self.data, "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync")
            self.start()
        except BaseException:
            self.close()
            raise

    def _run(self, exe: str, *args: str) -> None:
        kw = {"user": self.ids[0], "group": self.ids[1], "extra_groups": []} if self.ids else {}
        try:
            subprocess.run([os.path.join(self.bin, exe), *args], check=True, capture_output=True, text=True,
                           timeout=60, cwd=self.dir, **kw)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            out = getattr(exc, "stderr", "") or ""
            log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise PgUnavailable(f"{exe} failed: {exc}; {out[-2000:]} {log}") from exc

    def start(self) -> None:
        """Start (again) on the same port; fsync off: a test server need not survive a power cut."""
        opts = (f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", opts, "start")

    def stop(self) -> None:
        """Stop at once (``-m fast``: open sessions are ended, as when a server goes down)."""
        self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    def uri(self, schema: str | None = None) -> str:
        """A catalog URI on this server: a new, unique schema unless one is named."""
        schema = schema or f"s_{uuid.uuid4().hex[:16]}"
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?schema={schema}"

    def close(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self.stop()
            except PgUnavailable:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def start_or_skip() -> PgServer:
    """A new server, or the test is skipped saying why none could start on this machine
    (failed instead under CI, where every variant must run)."""
    import pytest

    try:
        return PgServer()
    except PgUnavailable as exc:
        message = f"no PostgreSQL server could be started on this machine: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: the PostgreSQL tests must run there)", pytrace=False)
        pytest.skip(message)
