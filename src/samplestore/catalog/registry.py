"""Choosing a catalog backend: one registry from a location's URI scheme to an opener.

A store opens its catalog with :func:`open_catalog`, never by naming a backend class, so a
new backend is a module that implements :class:`~samplestore.catalog.base.Catalog`, passes
the conformance class (``tests/table/test_catalog_conformance.py``) and registers its
schemes here. A backend whose driver is an optional extra registers an opener that imports
the driver only when called, so ``import samplestore`` never needs it:

    register_backend("postgresql", lambda location, create: _postgres().open(location, create=create))

A location without a scheme (a local folder) is the embedded SQLite catalog inside it.
"""

from __future__ import annotations

import os
import re
from typing import Callable

from ..errors import CatalogError
from ..extras import require_extra
from .base import Catalog

__all__ = ["open_catalog", "register_backend", "backend_schemes", "LOCAL"]

#: The scheme under which the backend for plain local folders is registered.
LOCAL = ""

#: An opener makes a catalog from a location (the string given) and whether to create it.
Opener = Callable[[str, bool], Catalog]

_BACKENDS: dict[str, Opener] = {}
# RFC 3986 scheme, then "://"; at least two letters so a Windows drive ("C:\\") is a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")


def register_backend(scheme: str, opener: Opener) -> None:
    """Open locations ``<scheme>://...`` with ``opener(location, create)``; :data:`LOCAL`
    (``""``) is the backend for plain folders. The last registration of a scheme wins.

    Raises:
        ValueError: ``scheme`` is not a valid URI scheme (letters, digits, ``+.-``) or ``""``.
    """
    if scheme != LOCAL and not _SCHEME.fullmatch(scheme + "://"):
        raise ValueError(f"a catalog backend scheme is letters, digits, '+', '.' and '-', starting with a letter "
                         f"(e.g. 'postgresql'), or '' for local folders; found {scheme!r}")
    _BACKENDS[scheme.lower()] = opener


def backend_schemes() -> list[str]:
    """The URI schemes a catalog can be opened from (``""``: a local folder), sorted."""
    return sorted(_BACKENDS)


def open_catalog(location: str | os.PathLike[str], *, create: bool = False) -> Catalog:
    """Open the catalog at ``location`` with the backend its URI scheme names: a plain path
    is the embedded SQLite catalog in that folder (``<folder>/catalog.db``).

    Args:
        location: a local folder, or ``<scheme>://...`` of a registered backend.
        create: make a new, empty catalog where there is none (never overwrites one).

    Raises:
        CatalogError: no backend is registered for the scheme (the message lists those that
            are), or the backend cannot open (or create) the catalog.
    """
    text = os.fsdecode(location)
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else LOCAL
    opener = _BACKENDS.get(scheme)
    if opener is None:
        known = [f"{s}://" for s in backend_schemes() if s != LOCAL]
        raise CatalogError(f"no catalog backend for {scheme}:// locations (in {text!r}); catalogs open from a local "
                           f"folder or from {known or 'no URI scheme yet'}")
    return opener(text, create)


def _open_postgres(location: str, create: bool) -> Catalog:
    """Open a PostgreSQL catalog, importing its driver (an extra) only now."""
    require_extra("psycopg", "a PostgreSQL catalog (postgresql://...)", extra="postgres",
                  instead="without it, a store keeps its catalog in an SQLite file in its root folder")
    from .postgres import PostgresCatalog

    return PostgresCatalog(location, create=create)


# PostgreSQL (many hosts): psycopg is imported on the first open, so `import samplestore` never needs it.
for _scheme in ("postgresql", "postgres"):
    register_backend(_scheme, _open_postgres)
