"""Zero-copy views of Arrow buffers and small statistics helpers shared by the kind codecs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["np_view", "list_parts", "minmax"]


def np_view(arr: pa.Array, dtype: np.dtype | str) -> np.ndarray:
    """Zero-copy numpy view of a primitive Arrow array's values (nulls hold whatever is there)."""
    dtype = np.dtype(dtype)
    buf = arr.buffers()[1]
    if buf is None:
        return np.zeros(len(arr), dtype=dtype)
    return np.frombuffer(buf, dtype=dtype)[arr.offset: arr.offset + len(arr)]


def list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(int64 lengths, the values the rows span) of a list array."""
    offsets = arr.offsets.to_numpy()
    return np.diff(offsets).astype(np.int64, copy=False), arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def minmax(v: np.ndarray, is_float: bool) -> tuple[float | int | None, float | int | None]:
    """(min, max) of ``v``, NaNs ignored; (None, None) where there is no value."""
    if v.size == 0:
        return None, None
    if is_float:
        if np.isnan(v).all():
            return None, None
        return float(np.nanmin(v)), float(np.nanmax(v))
    return int(v.min()), int(v.max())
