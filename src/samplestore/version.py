"""The package's one version string (the package, file footers' ``created_by`` and the
distribution's metadata all read it from here; it imports nothing, so every layer may)."""

__version__ = "0.1.0"
