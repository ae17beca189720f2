"""Cross-row: each row's id list as a slice of an earlier row of the same chunk plus new ids.

Behaviour histories repeat across a user's samples, each a window one item further than the
last. This encoding stores a row as "``copy`` ids of the row ``ref`` rows back, from position
``skip``, with ``head`` new ids in front and ``tail`` new ids after"; rows with no such
reference are all new ids. The reference is found from the chunk's own content (the rows
just before, and the latest rows sharing a first or second id), so no user column is needed;
a table sorted by (user, time) makes the windows adjacent. References never leave the chunk
(one row group of one column), so each chunk decodes on its own.

Payload: per row five LEB128 varints ``ref, skip, copy, head, tail``, then every row's new
ids as plain int64, row by row. ``param0`` is the number of rows, ``param1`` the number of new
(literal) ids. The encoder needs the row lengths (``rows=``); the decoder does not: the ops
say how long each row is. See docs/FORMAT.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _codec
from ..spec import DType, Encoding
from .base import DecodeError, Encoded, StreamEncoding, StreamHead, empty, register_encoding

__all__ = ["CrossRow", "WINDOW"]

#: How many rows just before a row are tried as its reference (besides the rows found by
#: content): enough for a few users' samples interleaved at one timestamp.
WINDOW = 4
# Every op is below 2^31, so 1 to 5 varint bytes; five ops per row.
_OPS_MIN, _OPS_MAX = 5, 25


class CrossRow(StreamEncoding):
    """Rows of int64 ids stored against earlier rows of the chunk (``param0`` rows,
    ``param1`` literal ids)."""

    id = Encoding.CROSS_ROW
    name = "cross_row"

    def encode(self, values: np.ndarray, *, rows: np.ndarray | None = None, **params: Any) -> Encoded | None:
        """Encode ``values`` partitioned by the int64 row lengths ``rows``; None when no row
        copies anything from another (or there are no row lengths)."""
        if rows is None or values.dtype != np.int64:
            return None
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        ops = np.empty(_OPS_MAX * len(rows), np.uint8)
        literals = np.empty(len(values), np.int64)
        ops_size, nlit, copied = _codec.cross_row_encode(values, rows, WINDOW, ops, literals)
        if copied == 0:
            return None
        payload = np.empty(ops_size + 8 * nlit, np.uint8)
        payload[:ops_size] = ops[:ops_size]
        payload[ops_size:] = literals[:nlit].view(np.uint8)
        return Encoded(self.id, payload, len(rows), nlit)

    def encoded_size(self, head: StreamHead, np_dtype: np.dtype) -> int:
        nrows, nlit, esize = head.param0, head.param1, head.encoded_size
        if head.dtype != DType.INT64:
            raise DecodeError(f"cross-row encoding on a {np_dtype} stream, expected int64")
        if not 0 <= nrows < 2**31 or not 0 <= nlit <= head.count:
            raise DecodeError(f"cross-row stream of {head.count} values declares {nrows} rows and {nlit} "
                              "literal ids, expected fewer than 2^31 rows and at most one literal per value")
        lo, hi = _OPS_MIN * nrows + 8 * nlit, _OPS_MAX * nrows + 8 * nlit
        if not lo <= esize <= hi:
            raise DecodeError(f"cross-row stream of {nrows} rows and {nlit} literal ids holds {esize} bytes, "
                              f"expected {lo} to {hi}")
        return esize

    def decode(self, head: StreamHead, raw: bytes | memoryview, np_dtype: np.dtype) -> np.ndarray:
        out = empty(head.count, np.int64)
        _codec.cross_row_decode(np.frombuffer(raw, np.uint8), head.param0, head.param1, out)
        return out


register_encoding(CrossRow())
