"""Snapshot leases: a reader pins its snapshot so garbage collection keeps its files."""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from typing import Any

from ..catalog.base import Catalog
from ..errors import LeaseExpired, SampleStoreError

__all__ = ["Lease", "owner_tag", "owner_is_dead", "pid_alive", "lease_is_live"]


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (owned by any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def owner_tag(pid: int) -> str:
    """How a lease names its owner: ``"<host> pid <pid>"``."""
    return f"{socket.gethostname()} pid {pid}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner is known to be gone: a process of this host that no longer
    exists. Owners on other hosts, or in an older form, count as alive until the lease
    lapses by itself."""
    host, sep, pid = owner.rpartition(" pid ")
    if not sep or host != socket.gethostname() or not pid.isdigit():
        return False
    return not pid_alive(int(pid))


class Lease:
    """A lease on a table snapshot, renewed by a background heartbeat.

    Readers lease the snapshot they read. Writers hold a lease on snapshot 0 (it pins
    nothing) whose id is part of every file name they write: garbage collection leaves the
    temporary and not-yet-committed files of a writer whose lease is live alone.

    Only the process that took the lease renews or releases it: a forked DataLoader worker
    holds a copy that does nothing. If the process dies the lease lapses after ``ttl``
    seconds, and GC may then remove the snapshot's files; on the owner's own host, leftover
    files of a writer whose process is gone are recognised at once (:func:`owner_is_dead`).

    A lease that could not be renewed in time (the catalog refused the renewal because the
    lease had lapsed, or no renewal succeeded for ``ttl`` seconds) is *lapsed*: :meth:`check`
    raises :class:`~samplestore.errors.LeaseExpired`, so a reader stops with that error
    instead of failing later on a file GC removed.
    """

    def __init__(self, catalog: Catalog, table: str, snapshot_id: int, ttl: float = 300.0, *,
                 keep_later: bool = False, renew: bool = True) -> None:
        self.catalog, self.table, self.snapshot_id, self.ttl = catalog, table, snapshot_id, ttl
        self.owner_pid = os.getpid()
        self.lease_id: str | None = None
        self.lapsed = False
        self._stop = threading.Event()
        # Taken before the request: the catalog's expiry is counted from a moment after it.
        self.renewed_at = time.monotonic()
        # Snapshot 0 pins no files: that is a writer's lease, which marks its files in progress.
        # keep_later: a follower's lease, which also keeps every file removed after the snapshot.
        self.lease_id = catalog.acquire_lease(table, snapshot_id, ttl, owner=owner_tag(self.owner_pid),
                                              keep_later=keep_later)
        if renew:  # a lease not renewed simply lapses after ttl (a hand-over to other processes)
            t = threading.Thread(target=Lease._beat, args=(weakref.ref(self), self._stop, ttl), daemon=True)
            t.start()
        weakref.finalize(self, Lease._release, catalog, self.lease_id, self.owner_pid, self._stop)

    @staticmethod
    def _beat(ref: Any, stop: threading.Event, ttl: float) -> None:
        while not stop.wait(max(0.05, ttl / 3)):
            lease = ref()
            if lease is None or os.getpid() != lease.owner_pid or lease.lease_id is None:
                return
            asked_at = time.monotonic()
            try:
                ok = lease.catalog.renew_lease(lease.lease_id, ttl)
            except (SampleStoreError, OSError):
                ok = None  # a missed heartbeat only shortens the lease; the next one may succeed
            if ok:
                lease.renewed_at = asked_at
            elif ok is False:  # the catalog no longer has it: it lapsed, GC may have run
                lease.lapsed = True
                return
            del lease

    @staticmethod
    def _release(catalog: Any, lease_id: str | None, owner_pid: int, stop: threading.Event) -> None:
        stop.set()
        if lease_id is not None and os.getpid() == owner_pid:
            try:
                catalog.release_lease(lease_id)
            except (SampleStoreError, OSError):
                pass  # the lease lapses by itself after its ttl

    @property
    def owned(self) -> bool:
        """Whether this process took the lease (and so renews and checks it)."""
        return self.owner_pid == os.getpid() and self.lease_id is not None

    def check(self) -> None:
        """Raise :class:`LeaseExpired` if the lease lapsed. A copy in another process (a
        DataLoader worker) checks nothing: see :func:`lease_is_live` for that."""
        if self.owner_pid != os.getpid():
            return
        if self.lease_id is None:
            raise LeaseExpired(f"the lease on snapshot {self.snapshot_id} of table {self.table!r} was released; "
                               "plan the read again")
        silent = time.monotonic() - self.renewed_at
        if self.lapsed or silent > self.ttl:
            self.lapsed = True
            raise LeaseExpired(
                f"the lease pinning snapshot {self.snapshot_id} of table {self.table!r} lapsed (last renewed "
                f"{silent:.1f} s ago, ttl {self.ttl:g} s: the process was stalled or the catalog unreachable), so "
                f"garbage collection may have removed files of that snapshot; plan the read again "
                f"(or raise lease_seconds)")

    def release(self) -> None:
        """Release now (idempotent)."""
        Lease._release(self.catalog, self.lease_id, self.owner_pid, self._stop)
        self.lease_id = None

    def detached(self) -> "Lease":
        """A copy for another process: it neither renews nor releases."""
        return _detached(self.table, self.snapshot_id, self.ttl, self.lease_id)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # A lease sent to another process (a spawned DataLoader worker) arrives detached:
        # its heartbeat thread and catalog connection belong to this process.
        return _detached, (self.table, self.snapshot_id, self.ttl, self.lease_id)


def _detached(table: str, snapshot_id: int, ttl: float, lease_id: str | None = None) -> Lease:
    d = Lease.__new__(Lease)
    d.catalog, d.table, d.snapshot_id, d.ttl = None, table, snapshot_id, ttl
    d.owner_pid, d._stop = -1, threading.Event()
    # The id stays readable (a worker asks the catalog whether it is live); the copy never
    # renews or releases it.
    d.lease_id, d.lapsed, d.renewed_at = lease_id, False, time.monotonic()
    return d


def lease_is_live(catalog: Catalog, table: str, lease_id: str | None) -> bool:
    """Whether the catalog still holds an unexpired lease ``lease_id`` on ``table``."""
    if lease_id is None:
        return False
    return any(row[0] == lease_id for row in catalog.live_leases(table))
