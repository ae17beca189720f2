# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# Row indices and offsets are checked before each loop, so the loops run unchecked; these
# directives are also passed by setup.py.
"""Gather kernels for batch assembly: copy chosen rows of decoded column buffers straight into
preallocated batch tensors (KeyedJaggedTensor layout for jagged features).

Row indices are checked against the source size before any loop runs.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from hashing cimport find_or_add, new_slots


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


# ---------------------------------------------------------------- gathers from several pieces
# A shuffle window is a list of decoded pieces (row ranges of row groups). These kernels
# gather batch rows straight from the pieces (no copy of the window into one buffer): row i
# of the batch is row ``local[i]`` of piece ``piece[i]``.

from libc.stdlib cimport malloc, free


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define SS_PREFETCH(p) __builtin_prefetch((const void*)(p))
    #else
    #define SS_PREFETCH(p) ((void)0)
    #endif
    """
    void SS_PREFETCH(const void* p) nogil

# Rows of a batch are random rows of a window far larger than the caches: each one costs a
# DRAM round trip. Touching rows a few iterations ahead keeps several misses in flight.
DEF AHEAD_OFFSETS = 16
DEF AHEAD_VALUES = 8
# The copy pass reads each list's start from a sequential array, so it can look further ahead.
DEF AHEAD_COPY = 32


cdef int _check_rows(const int32_t[::1] piece, const int64_t[::1] local, Py_ssize_t npieces,
                     const int64_t* rows_in) except -1:
    cdef Py_ssize_t i
    cdef int32_t p
    if piece.shape[0] != local.shape[0]:
        raise ValueError("gather: piece and local index arrays differ in length")
    for i in range(piece.shape[0]):
        p = piece[i]
        if p < 0 or p >= npieces or local[i] < 0 or local[i] >= rows_in[p]:
            raise IndexError(f"gather: row {local[i]} of piece {p} is out of range")
    return 0


def gather_jagged_pieces(list offsets, list values, Py_ssize_t itemsize, const int32_t[::1] piece,
                         const int64_t[::1] local, int32_t[::1] out_lengths, uint8_t[::1] out_values):
    """Copy the lists of the chosen rows from several pieces into ``out_values``.

    ``offsets[p]`` (int32, rows+1 entries) index items of ``itemsize`` bytes in the byte view
    ``values[p]``. Writes each row's length to ``out_lengths``; returns the items written.
    """
    cdef Py_ssize_t np_ = len(offsets), n = piece.shape[0], i, p
    if len(values) != np_ or out_lengths.shape[0] != n or itemsize <= 0:
        raise ValueError("gather: pieces, values and outputs do not match")
    cdef const int32_t** offs = <const int32_t**>malloc(np_ * sizeof(int32_t*) + 1)
    cdef const uint8_t** vals = <const uint8_t**>malloc(np_ * sizeof(uint8_t*) + 1)
    cdef int64_t* rows_in = <int64_t*>malloc(np_ * sizeof(int64_t) + 1)
    cdef const int32_t[::1] o
    cdef const uint8_t[::1] v
    cdef int64_t start, length, pos = 0, cap = out_values.shape[0] // itemsize
    cdef int32_t a, b
    try:
        if offs == NULL or vals == NULL or rows_in == NULL:
            raise MemoryError()
        for p in range(np_):
            o = offsets[p]
            v = values[p]
            if o.shape[0] < 1:
                raise ValueError("gather: a piece has no offsets")
            rows_in[p] = o.shape[0] - 1
            if o[0] < 0 or <int64_t>o[o.shape[0] - 1] * itemsize > v.shape[0]:
                raise ValueError(f"gather: offsets of piece {p} point past its values")
            offs[p] = &o[0]
            vals[p] = &v[0] if v.shape[0] else NULL
        _check_rows(piece, local, np_, rows_in)
        with nogil:
            for i in range(n):
                if i + AHEAD_OFFSETS < n:
                    SS_PREFETCH(&offs[piece[i + AHEAD_OFFSETS]][local[i + AHEAD_OFFSETS]])
                if i + AHEAD_VALUES < n and vals[piece[i + AHEAD_VALUES]] != NULL:
                    SS_PREFETCH(&vals[piece[i + AHEAD_VALUES]][
                        <int64_t>offs[piece[i + AHEAD_VALUES]][local[i + AHEAD_VALUES]] * itemsize])
                p = piece[i]
                a = offs[p][local[i]]
                b = offs[p][local[i] + 1]
                length = b - a
                if length < 0 or pos + length > cap:
                    pos = -1
                    break
                out_lengths[i] = <int32_t>length
                if length:
                    memcpy(&out_values[pos * itemsize], &vals[p][<int64_t>a * itemsize], length * itemsize)
                pos += length
    finally:
        free(<void*>offs)
        free(<void*>vals)
        free(rows_in)
    if pos < 0:
        raise ValueError("gather: offsets decrease or the output is too small")
    return pos


cdef class JaggedPieces:
    """The pieces of several jagged columns of one window, checked once, for batch after batch.

    ``offsets[k][p]`` (int32, rows + 1 entries) index items of ``itemsize`` bytes in the byte
    view ``values[k][p]`` of column ``k``'s piece ``p``; every column has the same pieces
    with the same rows. A batch takes two passes over all the columns, so the ~50 Python
    calls a batch of 26 features made become two, and the copy pass knows where each list
    comes from and goes to before it starts (its prefetches need no load of offsets):
    :meth:`lengths` writes each chosen row's length and the position of its first item,
    key-major, and each column's total; :meth:`copy` then copies the lists into one output,
    key-major.

    The object holds the buffers it was given (their exports, not only the lists), so they
    can be neither freed nor resized while it lives.

    Raises:
        ValueError: the columns' pieces, rows or offsets do not fit their values.
    """

    cdef const int32_t** offs
    cdef const uint8_t** vals
    cdef int64_t* nvals
    cdef int64_t* rows_in
    cdef readonly Py_ssize_t ncols, npieces, itemsize
    cdef list _keep  # the buffer exports the pointers point into

    def __cinit__(self, list offsets, list values, Py_ssize_t itemsize):
        cdef Py_ssize_t k, p, m, ncols = len(offsets)
        cdef Py_ssize_t npieces = len(offsets[0]) if ncols else 0
        cdef const int32_t[::1] o
        cdef const uint8_t[::1] v
        if not 1 <= itemsize <= 64:
            raise ValueError(f"gather: items of {itemsize} bytes, expected 1 to 64")
        if len(values) != ncols:
            raise ValueError(f"gather: {len(values)} values lists for {ncols} offsets lists, expected one each")
        m = ncols * npieces
        self._keep = []
        self.offs = <const int32_t**>malloc(m * sizeof(int32_t*) + 1)
        self.vals = <const uint8_t**>malloc(m * sizeof(uint8_t*) + 1)
        self.nvals = <int64_t*>malloc(m * sizeof(int64_t) + 1)
        self.rows_in = <int64_t*>malloc(npieces * sizeof(int64_t) + 1)
        if self.offs == NULL or self.vals == NULL or self.nvals == NULL or self.rows_in == NULL:
            raise MemoryError()
        for k in range(ncols):
            if len(offsets[k]) != npieces or len(values[k]) != npieces:
                raise ValueError(f"gather: jagged column {k} has {len(offsets[k])} offsets and {len(values[k])} "
                                 f"values pieces, expected {npieces}")
            for p in range(npieces):
                o = offsets[k][p]
                v = values[k][p]
                self._keep.append(o)  # keeps each buffer exported, so it stays where the pointers are
                self._keep.append(v)
                if o.shape[0] < 1:
                    raise ValueError(f"gather: piece {p} of jagged column {k} has no offsets, expected rows + 1")
                if k == 0:
                    self.rows_in[p] = o.shape[0] - 1
                elif o.shape[0] - 1 != self.rows_in[p]:
                    raise ValueError(f"gather: piece {p} of jagged column {k} has {o.shape[0] - 1} rows, "
                                     f"expected {self.rows_in[p]}")
                if o[0] < 0 or <int64_t>o[o.shape[0] - 1] * itemsize > v.shape[0]:
                    raise ValueError(f"gather: offsets of piece {p} of jagged column {k} run from {o[0]} to "
                                     f"{o[o.shape[0] - 1]}, past its {v.shape[0] // itemsize} items")
                self.offs[k * npieces + p] = &o[0]
                self.vals[k * npieces + p] = &v[0] if v.shape[0] else NULL
                self.nvals[k * npieces + p] = v.shape[0] // itemsize
        self.ncols, self.npieces, self.itemsize = ncols, npieces, itemsize

    def __dealloc__(self):
        free(<void*>self.offs)
        free(<void*>self.vals)
        free(self.nvals)
        free(self.rows_in)

    def lengths(self, const int32_t[::1] piece, const int64_t[::1] local, int32_t[::1] out_lengths,
                int32_t[::1] out_starts, int64_t[::1] totals):
        """Describe the lists of the chosen rows: row ``local[i]`` of piece ``piece[i]``.

        For each column ``k`` and chosen row ``i``, writes the list's length to
        ``out_lengths[k * n + i]`` and the position of its first item in the piece's values
        to ``out_starts[k * n + i]``, and each column's total to ``totals[k]``.

        Returns:
            The number of items over all columns.

        Raises:
            ValueError: the outputs are not ``ncols * n`` (totals: ``ncols``) long, or a
                row's offsets decrease or point outside its values.
            IndexError: a piece or row is out of range.
        """
        cdef Py_ssize_t n = piece.shape[0], k, i, np_ = self.npieces, bad_k = -1, bad_i = -1
        cdef const int32_t* o
        cdef int64_t t, total = 0
        cdef int32_t a, b
        if out_lengths.shape[0] != self.ncols * n or out_starts.shape[0] != self.ncols * n \
                or totals.shape[0] != self.ncols:
            raise ValueError(f"gather: outputs of {out_lengths.shape[0]} lengths, {out_starts.shape[0]} starts and "
                             f"{totals.shape[0]} totals, expected {self.ncols * n}, {self.ncols * n} and {self.ncols}")
        if self.ncols == 0:  # no jagged column: no pieces to check rows against, nothing to do
            return 0
        _check_rows(piece, local, np_, self.rows_in)
        with nogil:
            for k in range(self.ncols):
                t = 0
                for i in range(n):
                    if i + AHEAD_OFFSETS < n:
                        SS_PREFETCH(&self.offs[k * np_ + piece[i + AHEAD_OFFSETS]][local[i + AHEAD_OFFSETS]])
                    o = self.offs[k * np_ + piece[i]]
                    a = o[local[i]]
                    b = o[local[i] + 1]
                    if a < 0 or b < a or b > self.nvals[k * np_ + piece[i]]:
                        bad_k, bad_i = k, i
                        break
                    out_starts[k * n + i] = a
                    out_lengths[k * n + i] = b - a
                    t += b - a
                if bad_k >= 0:
                    break
                totals[k] = t
                total += t
        if bad_k >= 0:
            o = self.offs[bad_k * np_ + piece[bad_i]]
            raise ValueError(f"gather: jagged column {bad_k}, row {local[bad_i]} of piece {piece[bad_i]}: offsets "
                             f"{o[local[bad_i]]} to {o[local[bad_i] + 1]}, expected a rising range within the "
                             f"piece's {self.nvals[bad_k * np_ + piece[bad_i]]} items")
        return total

    def copy(self, const int32_t[::1] piece, const int32_t[::1] lengths, const int32_t[::1] starts,
             uint8_t[::1] out):
        """Copy the lists :meth:`lengths` described, column after column, into ``out``.

        Returns:
            The number of items written.

        Raises:
            ValueError: ``lengths`` or ``starts`` are not ``ncols * n`` long, a list lies
                outside its piece's values, or ``out`` is too small.
            IndexError: a piece is out of range.
        """
        cdef Py_ssize_t n = piece.shape[0], k, i, j, np_ = self.npieces, isz = self.itemsize
        cdef Py_ssize_t bad_k = -1, bad_i = -1
        cdef int64_t pos = 0, ln, a, cap = out.shape[0] // self.itemsize
        cdef int32_t p
        cdef const uint8_t* src
        cdef uint8_t* dst
        if lengths.shape[0] != self.ncols * n or starts.shape[0] != self.ncols * n:
            raise ValueError(f"gather: {lengths.shape[0]} lengths and {starts.shape[0]} starts, "
                             f"expected {self.ncols * n} each")
        if self.ncols == 0:
            return 0
        for i in range(n):
            if piece[i] < 0 or piece[i] >= np_:
                raise IndexError(f"gather: piece {piece[i]} is out of range (the window has {np_})")
        with nogil:
            for k in range(self.ncols):
                for i in range(n):
                    if i + AHEAD_COPY < n and self.vals[k * np_ + piece[i + AHEAD_COPY]] != NULL:
                        SS_PREFETCH(self.vals[k * np_ + piece[i + AHEAD_COPY]]
                                    + <int64_t>starts[k * n + i + AHEAD_COPY] * isz)
                    p = piece[i]
                    ln = lengths[k * n + i]
                    a = starts[k * n + i]
                    if ln < 0 or a < 0 or a + ln > self.nvals[k * np_ + p] or pos + ln > cap:
                        bad_k, bad_i = k, i
                        break
                    if ln:
                        src = self.vals[k * np_ + p] + a * isz
                        dst = &out[pos * isz]
                        if isz == 8 and ln <= 8:
                            # Most lists hold a few ids: fixed 8-byte copies compile to plain
                            # moves, where memcpy's call and size dispatch cost more than the copy.
                            for j in range(ln):
                                memcpy(dst + 8 * j, src + 8 * j, 8)
                        else:
                            memcpy(dst, src, ln * isz)
                    pos += ln
                if bad_k >= 0:
                    break
        if bad_k >= 0:
            p, ln, a = piece[bad_i], lengths[bad_k * n + bad_i], starts[bad_k * n + bad_i]
            if ln < 0 or a < 0 or a + ln > self.nvals[bad_k * np_ + p]:
                raise ValueError(f"gather: jagged column {bad_k}, batch row {bad_i} (piece {p}): items {a} to "
                                 f"{a + ln}, expected a range within the piece's {self.nvals[bad_k * np_ + p]} items")
            raise ValueError(f"gather: the output holds {cap} items, too small for the {pos + ln} these lists need "
                             f"so far")
        return pos


def gather_rows_pieces(list srcs, Py_ssize_t rowbytes, const int32_t[::1] piece, const int64_t[::1] local,
                       uint8_t[::1] out, Py_ssize_t out_stride, Py_ssize_t out_offset):
    """Copy fixed-size rows (``rowbytes`` each) of several pieces into rows of ``out``.

    Row ``i`` goes to ``out[i * out_stride + out_offset : ... + rowbytes]``, so a feature can
    be written into its columns of a wider [B, D] output directly.
    """
    cdef Py_ssize_t np_ = len(srcs), n = piece.shape[0], i, p
    if rowbytes <= 0 or out_offset < 0 or out_offset + rowbytes > out_stride or out.shape[0] < n * out_stride:
        raise ValueError("gather: output layout does not fit the rows")
    cdef const uint8_t** ptr = <const uint8_t**>malloc(np_ * sizeof(uint8_t*) + 1)
    cdef int64_t* rows_in = <int64_t*>malloc(np_ * sizeof(int64_t) + 1)
    cdef const uint8_t[::1] s
    try:
        if ptr == NULL or rows_in == NULL:
            raise MemoryError()
        for p in range(np_):
            s = srcs[p]
            rows_in[p] = s.shape[0] // rowbytes
            ptr[p] = &s[0] if s.shape[0] else NULL
        _check_rows(piece, local, np_, rows_in)
        with nogil:
            for i in range(n):
                if i + AHEAD_VALUES < n:
                    SS_PREFETCH(&ptr[piece[i + AHEAD_VALUES]][local[i + AHEAD_VALUES] * rowbytes])
                memcpy(&out[i * out_stride + out_offset], &ptr[piece[i]][local[i] * rowbytes], rowbytes)
    finally:
        free(<void*>ptr)
        free(rows_in)


def unique_inverse(int64_t[::1] values, int32_t[::1] inverse):
    """Deduplicate ``values`` in place: its first ``k`` entries become the distinct ids in
    order of first appearance, and ``inverse[i]`` the index of the original ``values[i]``
    among them. Returns ``k``.

    In place is safe: entry ``k`` is written only after ``values[i]`` (``i >= k``) was read.
    """
    cdef Py_ssize_t n = values.shape[0], i
    if inverse.shape[0] != n:
        raise ValueError(f"unique: inverse output holds {inverse.shape[0]}, expected {n}")
    if n >= 2147483647:
        raise ValueError(f"unique: {n} ids, more than an int32 inverse index can address")
    cdef uint64_t mask
    cdef uint32_t* slots = new_slots(n, &mask)
    cdef Py_ssize_t k = 0, j
    cdef int64_t* keys = &values[0] if n else NULL
    try:
        with nogil:
            for i in range(n):
                j = find_or_add(slots, mask, keys, k, n, values[i])
                if j == k:
                    k += 1
                inverse[i] = <int32_t>j
    finally:
        free(slots)
    return k


def transpose_inverse(const int32_t[::1] inverse, const int32_t[::1] lengths, int64_t[::1] offsets,
                      int64_t[::1] order, int64_t[::1] samples):
    """Group the positions of a deduplicated feature by the distinct id they index (a counting
    sort: two passes, no comparison sort).

    ``inverse``: each position's index among the ``len(offsets) - 1`` distinct ids;
    ``lengths``: positions per sample. Writes ``offsets`` (int64 ``[U + 1]``), so that
    ``order[offsets[u]:offsets[u + 1]]`` are the positions of id ``u`` in increasing order,
    and ``samples`` the sample of each of those positions.
    """
    cdef Py_ssize_t n = inverse.shape[0], b = lengths.shape[0], u_n = offsets.shape[0] - 1, i, s, t
    cdef int64_t total = 0, bad = -1
    cdef int32_t u
    if u_n < 0 or order.shape[0] != n or samples.shape[0] != n:
        raise ValueError(f"transpose: outputs of {order.shape[0]} and {samples.shape[0]} positions and "
                         f"{offsets.shape[0]} offsets, expected {n}, {n} and at least 1")
    for s in range(b):
        if lengths[s] < 0:
            raise ValueError(f"transpose: sample {s} has length {lengths[s]}, expected >= 0")
        total += lengths[s]
    if total != n:
        raise ValueError(f"transpose: lengths add up to {total}, expected the {n} positions of inverse")
    cdef int64_t* cursor = <int64_t*>malloc(u_n * sizeof(int64_t) + 1)
    if cursor == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(u_n + 1):
                offsets[i] = 0
            for i in range(n):
                u = inverse[i]
                if u < 0 or u >= u_n:
                    bad = i
                    break
                offsets[u + 1] += 1
            if bad < 0:
                for i in range(u_n):
                    offsets[i + 1] += offsets[i]
                    cursor[i] = offsets[i]
                i = 0
                for s in range(b):
                    for t in range(lengths[s]):
                        u = inverse[i]
                        order[cursor[u]] = i
                        samples[cursor[u]] = s
                        cursor[u] += 1
                        i += 1
        if bad >= 0:
            raise IndexError(f"transpose: inverse[{bad}] = {inverse[bad]}, outside the {u_n} distinct ids")
    finally:
        free(cursor)


def impute_columns(float[:, ::1] out, Py_ssize_t start, const float[::1] fill, Py_ssize_t indicator):
    """Fill the NaNs of columns ``[start, start + len(fill))`` of ``out`` (``[B, D]`` float32)
    in place with ``fill`` (one value per column); with ``indicator`` >= 0, also write 1.0
    where a value was NaN and 0.0 elsewhere into columns ``[indicator, indicator + len(fill))``
    (every row: they may hold garbage before). Returns how many values were filled.
    """
    cdef Py_ssize_t b = out.shape[0], d = out.shape[1], k = fill.shape[0], i, j
    cdef int64_t filled = 0
    cdef float v
    cdef int nan
    if k == 0 or b == 0:
        return 0
    if start < 0 or start + k > d:
        raise ValueError(f"impute: columns [{start}, {start + k}) outside a [{b}, {d}] output")
    if indicator >= 0 and (indicator + k > d or (indicator < start + k and start < indicator + k)):
        raise ValueError(f"impute: indicator columns [{indicator}, {indicator + k}) outside a [{b}, {d}] output "
                         f"or overlapping the filled columns [{start}, {start + k})")
    cdef float* row
    cdef const float* f = &fill[0]
    with nogil:
        # Branch-free inner loops (NaNs come at random: a branch on each would mispredict).
        for i in range(b):
            row = &out[i, 0]
            if indicator >= 0:
                for j in range(k):
                    v = row[start + j]
                    nan = v != v
                    row[start + j] = f[j] if nan else v
                    row[indicator + j] = <float>nan
                    filled += nan
            else:
                for j in range(k):
                    v = row[start + j]
                    nan = v != v
                    row[start + j] = f[j] if nan else v
                    filled += nan
    return filled
