"""Optional dependencies: import one, or say which extra installs it.

samplestore is a library first: writing, scanning, compacting and exporting need only numpy,
pyarrow, zstandard and xxhash. The training path (torch), DataFrames (pandas, polars), TorchRec
and charts are extras, and reaching one that is not installed raises
:class:`~samplestore.errors.MissingDependency` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependency

__all__ = ["require_extra"]


def require_extra(module: str, what: str, *, extra: str | None = None, instead: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependency.

    Args:
        module: the module to import, e.g. ``"torch"``.
        what: what needs it, as the user called it (``"Scan.to_pandas()"``).
        extra: the samplestore extra that installs it (default: the module's name).
        instead: what works without it, appended to the message in parentheses.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f" ({instead})" if instead else ""
        raise MissingDependency(f"{what} needs {module}, which is not installed: "
                                f"pip install 'samplestore[{extra or module}]'{hint}") from exc
