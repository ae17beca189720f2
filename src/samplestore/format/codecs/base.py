"""The stream-encoding registry: an encoding registers its id, its encoder and its decoder.

Modelled on numcodecs' ``register_codec``/``get_codec``: the id a stream head records
(``spec.Encoding``) is the key, and the reader and the writer find the encoding by it, so a
new encoding is one module that subclasses :class:`StreamEncoding` and calls
:func:`register_encoding` (plus tests), with no edit to the reader or the writer. Which
encoding a stream gets is policy and stays in :mod:`samplestore.format.encodings`.

Compression (``spec.Codec``: zstd) is applied after the encoding and is not part of this
registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pyarrow as pa

from ...registry import Registry
from ..spec import STREAM_HEAD

__all__ = [
    "DecodeError",
    "UnknownEncoding",
    "StreamHead",
    "Encoded",
    "StreamEncoding",
    "register_encoding",
    "unregister_encoding",
    "get_encoding",
    "registered_encodings",
    "empty",
]


class DecodeError(ValueError):
    """A stream's bytes do not decode as its head says (the caller adds file/column context)."""


class UnknownEncoding(DecodeError):
    """A stream head names an encoding id that no registered encoding has."""

    def __init__(self, encoding: int) -> None:
        known = ", ".join(f"{i} ({e.name})" for i, e in _REGISTRY.items())
        super().__init__(
            f"unknown encoding id {encoding}; this samplestore knows {known}: the file was written "
            "by a newer samplestore or with an encoding registered elsewhere (upgrade samplestore or "
            "import the module that registers it), or it is damaged")
        self.encoding = encoding


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The decoded 48-byte head of one stream."""

    encoding: int
    codec: int
    dtype: int
    count: int
    encoded_size: int
    stored_size: int
    param0: int = 0
    param1: int = 0

    def pack(self) -> bytes:
        """The head as the 48 bytes the file stores."""
        return STREAM_HEAD.pack(
            self.encoding, self.codec, self.dtype, 0, 0, self.count,
            self.encoded_size, self.stored_size, self.param0, self.param1,
        )

    @classmethod
    def unpack_from(cls, buf: bytes | memoryview, offset: int) -> "StreamHead":
        """Read a head from ``buf`` at ``offset``."""
        enc, codec, dtype, _flags, _res, count, esize, ssize, p0, p1 = STREAM_HEAD.unpack_from(buf, offset)
        return cls(enc, codec, dtype, count, esize, ssize, p0, p1)


class Encoded(NamedTuple):
    """What an encoder returns: the encoding id, the encoded bytes and the head's two parameters."""

    encoding: int
    payload: Any  # numpy array, bytes or memoryview
    param0: int
    param1: int


def empty(n: int, dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array of ``n`` elements in Arrow's system memory pool (``malloc``).

    The arrays hand their buffer to Arrow unchanged. The system pool, not Arrow's default
    (mimalloc), because decoded buffers are freed a shuffle window at a time: mimalloc kept
    the freed pages and reused them only in part, so a training loader's peak above its
    imports was 1.62x its shuffle buffer's decoded bytes (1.38x with glibc, measured with
    the loader bench at 1M rows).
    """
    dt = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(n * dt.itemsize, memory_pool=_POOL), dtype=dt, count=n)


_POOL = pa.system_memory_pool()


class StreamEncoding:
    """One stream encoding: its id (the byte a stream head records), encoder and decoder.

    Subclasses set :attr:`id` and :attr:`name` and implement :meth:`encode`,
    :meth:`encoded_size` and :meth:`decode`. Instances hold no per-stream state (one is
    shared by every thread).
    """

    id: ClassVar[int]
    name: ClassVar[str]
    #: The payload is ``param0`` byte planes of equal size: the writer compresses them plane
    #: by plane (codec "zstd planes") and a reader may meet that codec only on such a stream.
    planes: ClassVar[bool] = False

    def encode(self, values: np.ndarray, **params: Any) -> Encoded | None:
        """Encode a contiguous array; None where this encoding does not apply or not pay.

        ``params`` are encoding-specific inputs the policy already computed (a frame of
        reference's base and width, a dictionary's hash keys and the size to beat).
        """
        raise NotImplementedError

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        """The encoded size that ``head``'s count, element type and parameters imply.

        Called on every head before anything is allocated, so that nothing a file declares
        makes a reader allocate more than its bytes hold.

        Raises:
            DecodeError: the parameters are not valid for this encoding or element type.
        """
        raise NotImplementedError

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        """Decode ``raw`` (exactly :meth:`encoded_size` bytes) into ``head.count`` values.

        Raises:
            DecodeError or ValueError: ``raw`` does not decode (the caller adds context).
        """
        raise NotImplementedError

    def decodes_lengths(self, head: StreamHead) -> bool:
        """Whether :meth:`decode_lengths` can turn this lengths stream into offsets directly."""
        return False

    def decode_lengths(self, head: StreamHead, raw: bytes | memoryview, out: np.ndarray) -> int:
        """Write the int32 offsets of a lengths stream into ``out``; return the total."""
        raise NotImplementedError


_REGISTRY: Registry[int, StreamEncoding] = Registry("encoding id")


def register_encoding(encoding: StreamEncoding, *, replace: bool = False) -> StreamEncoding:
    """Make ``encoding`` known to readers and writers under its id; returns it.

    Raises:
        ValueError: the id does not fit the head's byte (0 to 255), or another encoding
            already has it and ``replace`` is false.
    """
    eid = encoding.id
    if not isinstance(eid, int) or not 0 <= eid <= 255:
        raise ValueError(f"an encoding id is an integer from 0 to 255 (one byte of the stream head), found {eid!r}")
    return _REGISTRY.register(eid, encoding, replace=replace)


def unregister_encoding(eid: int) -> StreamEncoding:
    """Forget the encoding registered under ``eid``; returns it.

    Raises:
        KeyError: no encoding has that id.
    """
    return _REGISTRY.unregister(eid)


def get_encoding(eid: int) -> StreamEncoding:
    """The encoding registered under ``eid``.

    Raises:
        UnknownEncoding: (a :class:`DecodeError`) no encoding has that id.
    """
    enc = _REGISTRY.get(eid)
    if enc is None:
        raise UnknownEncoding(eid)
    return enc


def registered_encodings() -> dict[int, str]:
    """Registered encoding ids and their names."""
    return {i: e.name for i, e in _REGISTRY.items()}
