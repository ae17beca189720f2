"""Stream encodings, one module each, registered by id (see :mod:`.base`).

Importing this package registers the built-in encodings: plain, byte shuffle, delta varint,
frame of reference, dictionary and cross-row. A new encoding is a new module here (or anywhere) that
subclasses :class:`StreamEncoding` and calls :func:`register_encoding`.
"""

from __future__ import annotations

from . import base, byte_shuffle, cross_row, delta_varint, dictionary, frame_of_reference, plain  # noqa: F401  (registers them)
from .base import (
    DecodeError, Encoded, StreamEncoding, StreamHead, UnknownEncoding, empty, get_encoding, register_encoding,
    registered_encodings, unregister_encoding,
)

__all__ = list(base.__all__)
