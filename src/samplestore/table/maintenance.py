"""Table maintenance (compaction, snapshot expiry, garbage collection) as ``table/`` sees it.

The work itself lives in :mod:`samplestore.compaction`, a layer *above* ``table/``:
compaction reads and rewrites tables, so ``table/`` never imports it, not even inside a
function (the import contracts forbid the upward edge). ``Table.compact()``,
``Table.compaction_plan()``, ``Table.expire_snapshots()`` and ``Table.gc()`` stay the user's
entry points because the dependency points down: :mod:`samplestore.compaction` registers its
implementation here when it is imported, and ``samplestore/__init__.py`` imports it, so it
is registered as soon as any part of samplestore is imported. A program that somehow has no
implementation registered gets :class:`~samplestore.errors.MissingDependency` saying so.

This module is the one extension point for it: another implementation registers a
:class:`Maintenance` of its own, and another *executor* of compaction (``samplestore.ray``,
which rewrites the groups as Ray tasks) registers under a name that
``Table.compact(executor=NAME)`` picks (:func:`register_executor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import MissingDependency

__all__ = ["Maintenance", "register_maintenance", "maintenance", "register_executor", "compact_executor"]


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What :class:`~samplestore.table.Table` delegates its maintenance methods to.

    Each callable takes the :class:`~samplestore.table.Table` first; the other arguments are
    those of the ``Table`` method of the same purpose (see there).

    Attributes:
        compact: ``compact(table, target_file_bytes, sort_by=, partitions=, layout=)`` ->
            a ``CompactionResult``.
        plan_compaction: ``plan_compaction(table, target_file_bytes, partitions, sort_by=, layout=)``
            -> a ``CompactionPlan``.
        expire_snapshots: ``expire_snapshots(table, older_than=, retain_last=)`` -> the ids
            expired.
        gc: ``gc(table, grace_seconds)`` -> a report (a dict).
        default_target_file_bytes: the file size compaction aims at when not told.
    """

    compact: Callable[..., Any]
    plan_compaction: Callable[..., Any]
    expire_snapshots: Callable[..., list[int]]
    gc: Callable[..., dict]
    default_target_file_bytes: int


_registered: Maintenance | None = None


def register_maintenance(impl: Maintenance) -> None:
    """Make ``impl`` what ``Table.compact()`` and friends run (the last registration wins).

    Raises:
        TypeError: ``impl`` is not a :class:`Maintenance`.
    """
    global _registered
    if not isinstance(impl, Maintenance):
        raise TypeError(f"register_maintenance expects a samplestore.table.maintenance.Maintenance; found "
                        f"{type(impl).__name__}")
    _registered = impl


def maintenance(what: str = "table maintenance") -> Maintenance:
    """The registered implementation.

    Raises:
        MissingDependency: none is registered (``samplestore.compaction`` was not imported).
    """
    if _registered is None:
        raise MissingDependency(
            f"{what} needs samplestore.compaction, which registers itself when imported, but it is not registered "
            f"in this process; `import samplestore` (which imports it) or `import samplestore.compaction`")
    return _registered


# name -> a function returning that executor's compact(): called on first use, so that an
# executor whose package is an optional extra (Ray) is imported only when asked for.
_executors: dict[str, Callable[[], Callable[..., Any]]] = {}


def register_executor(name: str, load: Callable[[], Callable[..., Any]]) -> None:
    """Make ``Table.compact(executor=name)`` run ``load()(table, target_file_bytes, sort_by=,
    partitions=, layout=, **options)``; ``load`` imports the executor on first use (and raises
    :class:`~samplestore.errors.MissingDependency` where its extra is missing)."""
    _executors[name] = load


def compact_executor(name: str) -> Callable[..., Any]:
    """The compact() of executor ``name`` (``"local"``: the registered :class:`Maintenance`'s).

    Raises:
        ValueError: no executor of that name (the message lists them).
        MissingDependency: the executor's optional dependency is not installed.
    """
    if name == "local":
        return maintenance("Table.compact()").compact
    load = _executors.get(name)
    if load is None:
        raise ValueError(f"unknown compaction executor {name!r}; known: {['local', *sorted(_executors)]}")
    return load()
