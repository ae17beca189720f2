# cython: language_level=3
"""Gather kernels for batch assembly: copy chosen rows of decoded column buffers straight into
preallocated batch tensors (KeyedJaggedTensor layout for jagged features).

Row indices are checked against the source size before any loop runs.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memcpy


def gather_jagged(const int64_t[::1] offsets, const uint8_t[::1] values, Py_ssize_t itemsize,
                  const int64_t[::1] rows, int32_t[::1] out_lengths, uint8_t[::1] out_values):
    """Copy the lists of ``rows`` (ragged rows given by ``offsets`` into ``values``).

    ``values``/``out_values`` are byte views of items of ``itemsize`` bytes. Writes each
    row's length to ``out_lengths`` and the items back to back into ``out_values``; returns
    the number of items written. ``out_values`` must be large enough (see
    :func:`jagged_total`).
    """
    cdef Py_ssize_t nrows = offsets.shape[0] - 1, n = rows.shape[0], i, r
    cdef int64_t start, length, pos = 0, cap = out_values.shape[0] // itemsize
    if out_lengths.shape[0] != n:
        raise ValueError(f"gather: lengths output holds {out_lengths.shape[0]}, expected {n}")
    for i in range(n):
        r = rows[i]
        if r < 0 or r >= nrows:
            raise IndexError(f"gather: row {r} outside a source of {nrows} rows")
    if offsets[nrows] * itemsize > values.shape[0] or offsets[0] < 0:
        raise ValueError("gather: offsets point past the values buffer")
    with nogil:
        for i in range(n):
            r = rows[i]
            start = offsets[r]
            length = offsets[r + 1] - start
            if length < 0 or pos + length > cap:
                pos = -1
                break
            out_lengths[i] = <int32_t>length
            if length:
                memcpy(&out_values[pos * itemsize], &values[start * itemsize], length * itemsize)
            pos += length
    if pos < 0:
        raise ValueError("gather: offsets decrease or the output is too small")
    return pos


def jagged_total(const int64_t[::1] offsets, const int64_t[::1] rows):
    """Total number of items the lists of ``rows`` hold."""
    cdef Py_ssize_t nrows = offsets.shape[0] - 1, n = rows.shape[0], i, r
    cdef int64_t total = 0
    for i in range(n):
        r = rows[i]
        if r < 0 or r >= nrows:
            raise IndexError(f"gather: row {r} outside a source of {nrows} rows")
    with nogil:
        for i in range(n):
            r = rows[i]
            total += offsets[r + 1] - offsets[r]
    return total


def gather_rows(const uint8_t[::1] src, Py_ssize_t rowbytes, const int64_t[::1] rows,
                uint8_t[::1] out):
    """Copy fixed-size rows (``rowbytes`` each) of ``src`` chosen by ``rows`` into ``out``."""
    cdef Py_ssize_t nrows = src.shape[0] // rowbytes if rowbytes > 0 else 0
    cdef Py_ssize_t n = rows.shape[0], i, r
    if rowbytes <= 0 or out.shape[0] != n * rowbytes:
        raise ValueError(f"gather: output holds {out.shape[0]} bytes, expected {n * rowbytes}")
    for i in range(n):
        r = rows[i]
        if r < 0 or r >= nrows:
            raise IndexError(f"gather: row {r} outside a source of {nrows} rows")
    with nogil:
        for i in range(n):
            memcpy(&out[i * rowbytes], &src[rows[i] * rowbytes], rowbytes)
