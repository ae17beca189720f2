"""A small thread-safe registry: the table behind every extension point (encodings by id,
feature kinds' storage codecs and batch assemblers by kind name), as numcodecs keeps its
codecs. It depends on nothing in samplestore, so any layer may hold one."""

from __future__ import annotations

import threading
from typing import Generic, Hashable, TypeVar

__all__ = ["Registry"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _describe(value: object) -> str:
    name = getattr(value, "name", None)
    return repr(name) if isinstance(name, str) else type(value).__name__


class Registry(Generic[K, V]):
    """Extensions of one kind by key.

    Args:
        what: how messages name a key, e.g. ``"encoding id"``.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def register(self, key: K, value: V, *, replace: bool = False) -> V:
        """Register ``value`` under ``key``; returns it.

        Raises:
            ValueError: another value has ``key`` and ``replace`` is false.
        """
        with self._lock:
            other = self._items.get(key)
            if other is not None and other is not value and not replace:
                raise ValueError(f"{self.what} {key!r} is already registered to {_describe(other)}; "
                                 f"choose another for {_describe(value)} or pass replace=True")
            self._items[key] = value
        return value

    def unregister(self, key: K) -> V:
        """Remove and return the value of ``key``.

        Raises:
            KeyError: nothing is registered under ``key``.
        """
        with self._lock:
            try:
                return self._items.pop(key)
            except KeyError:
                raise KeyError(f"no {self.what} {key!r} is registered") from None

    def get(self, key: K) -> V | None:
        """The value of ``key``, or None."""
        return self._items.get(key)

    def items(self) -> list[tuple[K, V]]:
        """(key, value) pairs, sorted by key."""
        return sorted(self._items.items(), key=lambda kv: kv[0])  # type: ignore[no-any-return]

    def keys(self) -> list[K]:
        """Registered keys, sorted."""
        return [k for k, _ in self.items()]
