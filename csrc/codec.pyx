# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# Bounds are checked at the boundary (every size from a file, before a loop), so the loops
# run unchecked; these directives are also passed by setup.py.
"""Hot encode/decode kernels for the .ssf format.

Every kernel takes typed memoryviews and a preallocated output, runs its loop without the
GIL, and checks every size that came from a file before the loop, so a malformed file raises
``ValueError`` (mapped to ``CorruptFileError`` by the caller) instead of reading out of bounds.
Policy (which encoding to use) lives in ``samplestore.format.encodings``.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from hashing cimport find_or_add, mix64, new_slots


# A narrow value inside a byte stream need not be aligned (a chunk slice starts anywhere):
# load and store it through memcpy into a fixed-size local, which compilers turn into one
# plain (unaligned-safe) move, instead of dereferencing a cast uint16_t*/uint32_t* pointer,
# which is undefined behaviour when misaligned. Byte order is the host's: little-endian,
# as the format is.
cdef inline uint16_t _load16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline uint32_t _load32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline void _store16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)


cdef inline void _store32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


# ---------------------------------------------------------------- byte shuffle (floats)

def shuffle_bytes(const uint8_t[::1] src, Py_ssize_t itemsize, uint8_t[::1] out):
    """Transpose ``src`` (n items of ``itemsize`` bytes) into ``itemsize`` planes of n bytes."""
    cdef Py_ssize_t size = src.shape[0]
    if itemsize <= 0 or size % itemsize != 0:
        raise ValueError(f"byte shuffle: {size} bytes is not a whole number of {itemsize}-byte items")
    if out.shape[0] != size:
        raise ValueError(f"byte shuffle: output holds {out.shape[0]} bytes, expected {size}")
    cdef Py_ssize_t n = size // itemsize, i, b
    with nogil:
        for b in range(itemsize):
            for i in range(n):
                out[b * n + i] = src[i * itemsize + b]


def unshuffle_bytes(const uint8_t[::1] src, Py_ssize_t itemsize, uint8_t[::1] out):
    """Invert :func:`shuffle_bytes`."""
    cdef Py_ssize_t size = src.shape[0]
    if itemsize <= 0 or size % itemsize != 0:
        raise ValueError(f"byte unshuffle: {size} bytes is not a whole number of {itemsize}-byte items")
    if out.shape[0] != size:
        raise ValueError(f"byte unshuffle: output holds {out.shape[0]} bytes, expected {size}")
    cdef Py_ssize_t n = size // itemsize, i, b
    with nogil:
        if itemsize == 4:
            for i in range(n):
                out[4 * i] = src[i]
                out[4 * i + 1] = src[n + i]
                out[4 * i + 2] = src[2 * n + i]
                out[4 * i + 3] = src[3 * n + i]
        else:
            for b in range(itemsize):
                for i in range(n):
                    out[i * itemsize + b] = src[b * n + i]


def unshuffle_planes(planes, uint8_t[::1] out):
    """Interleave byte planes (one bytes-like object each, equal sizes) into ``out``.

    Same result as :func:`unshuffle_bytes` on the planes laid end to end, without first
    copying them together.
    """
    cdef Py_ssize_t itemsize = len(planes), n, i, b
    if itemsize < 1 or itemsize > 8:
        raise ValueError(f"byte unshuffle: {itemsize} planes, expected 1 to 8")
    n = out.shape[0] // itemsize
    if out.shape[0] != n * itemsize:
        raise ValueError("byte unshuffle: output is not a whole number of items")
    cdef const uint8_t[::1] p, p0, p1, p2, p3
    for b in range(itemsize):
        p = planes[b]
        if p.shape[0] != n:
            raise ValueError(f"byte unshuffle: plane {b} holds {p.shape[0]} bytes, expected {n}")
    cdef uint8_t* o
    if itemsize == 4 and n:
        # Whole 32-bit words from the four planes in one pass (little-endian byte order).
        p0, p1, p2, p3 = planes[0], planes[1], planes[2], planes[3]
        o = &out[0]
        with nogil:
            for i in range(n):
                _store32(o + 4 * i, <uint32_t>p0[i] | (<uint32_t>p1[i] << 8) | (<uint32_t>p2[i] << 16)
                         | (<uint32_t>p3[i] << 24))
        return
    for b in range(itemsize):
        p = planes[b]
        with nogil:
            for i in range(n):
                out[i * itemsize + b] = p[i]


# ---------------------------------------------------------------- delta + zigzag + varint

def delta_varint_encode(const int64_t[::1] values, uint8_t[::1] out):
    """Delta, zigzag and LEB128-varint encode ``values`` into ``out``; return bytes written.

    ``out`` must hold at least ``10 * len(values)`` bytes.
    """
    cdef Py_ssize_t n = values.shape[0], i, pos = 0
    if out.shape[0] < 10 * n:
        raise ValueError("delta varint: output buffer too small")
    cdef int64_t prev = 0
    cdef uint64_t d, z
    with nogil:
        for i in range(n):
            # Wrapping subtraction in unsigned arithmetic keeps int64 extremes exact.
            d = <uint64_t>values[i] - <uint64_t>prev
            prev = values[i]
            z = (d << 1) ^ <uint64_t>(-(<int64_t>(d >> 63)))
            while z >= 0x80:
                out[pos] = <uint8_t>(z | 0x80)
                z >>= 7
                pos += 1
            out[pos] = <uint8_t>z
            pos += 1
    return pos


def delta_varint_decode(const uint8_t[::1] src, int64_t[::1] out):
    """Decode exactly ``len(out)`` values from ``src``; ``ValueError`` if ``src`` is malformed."""
    cdef Py_ssize_t n = out.shape[0], size = src.shape[0], i, pos = 0
    cdef uint64_t z, acc = 0
    cdef int shift
    cdef uint8_t byte
    cdef int bad = 0
    with nogil:
        for i in range(n):
            z = 0
            shift = 0
            while True:
                if pos >= size or shift > 63:
                    bad = 1
                    break
                byte = src[pos]
                pos += 1
                z |= (<uint64_t>(byte & 0x7F)) << shift
                if byte < 0x80:
                    break
                shift += 7
            if bad:
                break
            acc += (z >> 1) ^ (<uint64_t>0 - (z & 1))
            out[i] = <int64_t>acc
    if bad:
        raise ValueError(f"delta varint: stream ends or overflows before value {i} of {n}")
    if pos != size:
        raise ValueError(f"delta varint: {size - pos} bytes left over after {n} values")


# ---------------------------------------------------------------- frame of reference, narrow width

def minmax_int64(const int64_t[::1] values):
    """(min, max) of a non-empty int64 array in one pass."""
    cdef Py_ssize_t n = values.shape[0], i
    if n == 0:
        raise ValueError("minmax of an empty array")
    cdef int64_t lo = values[0], hi = values[0], v
    with nogil:
        for i in range(1, n):
            v = values[i]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
    return lo, hi


def for_encode(const int64_t[::1] values, int64_t base, int width, uint8_t[::1] out):
    """Store ``values - base`` in ``width`` (1, 2 or 4) little-endian bytes each."""
    cdef Py_ssize_t n = values.shape[0], i
    if out.shape[0] != n * width:
        raise ValueError("frame of reference: output size mismatch")
    cdef uint8_t* o = &out[0] if n else NULL
    with nogil:
        if width == 1:
            for i in range(n):
                out[i] = <uint8_t>(<uint64_t>values[i] - <uint64_t>base)
        elif width == 2:
            for i in range(n):
                _store16(o + 2 * i, <uint16_t>(<uint64_t>values[i] - <uint64_t>base))
        elif width == 4:
            for i in range(n):
                _store32(o + 4 * i, <uint32_t>(<uint64_t>values[i] - <uint64_t>base))
    if width not in (1, 2, 4):
        raise ValueError(f"frame of reference: width must be 1, 2 or 4, found {width}")


def for_decode(const uint8_t[::1] src, int64_t base, int width, int64_t[::1] out):
    """Invert :func:`for_encode` into ``out`` (``len(src) == len(out) * width``)."""
    cdef Py_ssize_t n = out.shape[0], i
    if width not in (1, 2, 4):
        raise ValueError(f"frame of reference: width must be 1, 2 or 4, found {width}")
    if src.shape[0] != n * width:
        raise ValueError(f"frame of reference: {src.shape[0]} bytes for {n} values of width {width}")
    cdef const uint8_t* s = &src[0] if n else NULL
    with nogil:
        if width == 1:
            for i in range(n):
                out[i] = <int64_t>(<uint64_t>base + src[i])
        elif width == 2:
            for i in range(n):
                out[i] = <int64_t>(<uint64_t>base + _load16(s + 2 * i))
        else:
            for i in range(n):
                out[i] = <int64_t>(<uint64_t>base + _load32(s + 4 * i))


def lengths_to_offsets(const uint8_t[::1] src, int width, int32_t[::1] out):
    """Prefix-sum ``width``-byte unsigned lengths into int32 offsets (``out[0] = 0``).

    Returns the total; ``ValueError`` if it does not fit an int32 offset.
    """
    cdef Py_ssize_t n = out.shape[0] - 1, i
    if n < 0:
        raise ValueError("offsets output must hold at least one entry")
    if width not in (1, 2, 4):
        raise ValueError(f"lengths: width must be 1, 2 or 4, found {width}")
    if src.shape[0] != n * width:
        raise ValueError(f"lengths: {src.shape[0]} bytes for {n} lengths of width {width}")
    cdef const uint8_t* s = &src[0] if n else NULL
    cdef int64_t acc = 0
    cdef int overflow = 0
    with nogil:
        out[0] = 0
        if width == 1:
            for i in range(n):
                acc += src[i]
                out[i + 1] = <int32_t>acc
        elif width == 2:
            for i in range(n):
                acc += _load16(s + 2 * i)
                out[i + 1] = <int32_t>acc
        else:
            for i in range(n):
                acc += _load32(s + 4 * i)
                if acc > 2147483647:
                    overflow = 1
                    break
                out[i + 1] = <int32_t>acc
        if acc > 2147483647:
            overflow = 1
    if overflow:
        raise ValueError("lengths add up to more than an int32 offset can hold")
    return acc


# ---------------------------------------------------------------- dictionary

def dict_build(const int64_t[::1] values, Py_ssize_t max_entries,
               uint32_t[::1] indices, int64_t[::1] entries, int64_t[::1] counts):
    """Assign each distinct value an index in order of first appearance.

    Writes ``indices[i]`` for every value, the distinct values to ``entries`` and their
    counts to ``counts``. Returns the number of distinct values, or -1 as soon as it would
    exceed ``max_entries`` (the caller then picks another encoding).
    """
    cdef Py_ssize_t n = values.shape[0], i
    if indices.shape[0] != n:
        raise ValueError("dictionary: indices output size mismatch")
    if entries.shape[0] < max_entries or counts.shape[0] < max_entries:
        raise ValueError("dictionary: entries/counts outputs smaller than max_entries")
    cdef uint64_t mask
    cdef uint32_t* slots = new_slots(max_entries, &mask)
    cdef Py_ssize_t k = 0, j
    cdef int64_t* keys = &entries[0] if entries.shape[0] else NULL
    try:
        with nogil:
            for i in range(n):
                j = find_or_add(slots, mask, keys, k, max_entries, values[i])
                if j < 0:
                    k = -1
                    break
                if j == k:
                    counts[k] = 0
                    k += 1
                counts[j] += 1
                indices[i] = <uint32_t>j
    finally:
        free(slots)
    return k


ctypedef fused entry_t:
    int64_t
    int32_t


def packed_size(Py_ssize_t n, int bits):
    """Bytes that ``n`` indices of ``bits`` bits take when packed."""
    return (n * bits + 7) // 8


cdef inline int _check_bits(int bits) except -1:
    if bits not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"dictionary: index width must be 1, 2, 4, 8, 16 or 32 bits, found {bits}")
    return 0


def dict_decode(const entry_t[::1] entries, const uint8_t[::1] src, int bits, entry_t[::1] out):
    """``out[i] = entries[index i]`` for ``bits``-bit packed indices in ``src``; checks every index."""
    _check_bits(bits)
    cdef Py_ssize_t n = out.shape[0], i, k = entries.shape[0]
    if src.shape[0] != (n * bits + 7) // 8:
        raise ValueError(f"dictionary: {src.shape[0]} index bytes for {n} values of {bits} bits")
    cdef const uint8_t* s = &src[0] if n else NULL
    cdef uint32_t j, mask = (1u << bits) - 1 if bits < 32 else 0xFFFFFFFFu
    cdef int per = 8 // bits if bits < 8 else 1
    cdef Py_ssize_t bad = -1
    with nogil:
        if bits < 8:
            for i in range(n):
                j = (src[i // per] >> ((i % per) * bits)) & mask
                if j >= k:
                    bad = i
                    break
                out[i] = entries[j]
        elif bits == 8:
            for i in range(n):
                j = src[i]
                if j >= k:
                    bad = i
                    break
                out[i] = entries[j]
        elif bits == 16:
            for i in range(n):
                j = _load16(s + 2 * i)
                if j >= k:
                    bad = i
                    break
                out[i] = entries[j]
        else:
            for i in range(n):
                j = _load32(s + 4 * i)
                if j >= k:
                    bad = i
                    break
                out[i] = entries[j]
    if bad >= 0:
        raise ValueError(f"dictionary: index at position {bad} is outside the {k}-entry dictionary")


def pack_indices(const uint32_t[::1] indices, const uint32_t[::1] rank, int bits, uint8_t[::1] out):
    """Write ``rank[indices[i]]`` packed in ``bits`` bits each (re-ordering a dictionary).

    ``indices`` come from :func:`dict_build` on the writer side, so every one is < ``len(rank)``.
    """
    _check_bits(bits)
    cdef Py_ssize_t n = indices.shape[0], i
    if out.shape[0] != (n * bits + 7) // 8:
        raise ValueError("dictionary pack: output size mismatch")
    cdef uint8_t* o = &out[0] if n else NULL
    cdef int per = 8 // bits if bits < 8 else 1
    with nogil:
        if bits < 8:
            for i in range(out.shape[0]):
                out[i] = 0
            for i in range(n):
                out[i // per] |= <uint8_t>(rank[indices[i]] << ((i % per) * bits))
        elif bits == 8:
            for i in range(n):
                out[i] = <uint8_t>rank[indices[i]]
        elif bits == 16:
            for i in range(n):
                _store16(o + 2 * i, <uint16_t>rank[indices[i]])
        else:
            for i in range(n):
                _store32(o + 4 * i, rank[indices[i]])


# ---------------------------------------------------------------- cross-row (sequences)
#
# A row's list as a slice of an earlier row of the same chunk plus new ids: per row five
# LEB128 varints (ref, skip, copy, head, tail), then the literal ids (plain int64) of every
# row in order. Row r = head literals + row[r - ref][skip : skip + copy] + tail literals;
# ref = 0 means no reference (skip = copy = 0). See docs/FORMAT.md.

# Longest varint a cross-row op may take: every op is below 2^31 (a chunk's values are
# addressed by int32 offsets), which 5 LEB128 bytes hold.
cdef enum:
    _XR_MAX_VARINT = 5
# How many occurrences of an anchor id in a candidate row are tried (repeated ids in a list).
cdef enum:
    _XR_OCCURRENCES = 4


cdef inline Py_ssize_t _put_varint(uint8_t* out, Py_ssize_t pos, uint64_t v) noexcept nogil:
    while v >= 0x80:
        out[pos] = <uint8_t>(v | 0x80)
        v >>= 7
        pos += 1
    out[pos] = <uint8_t>v
    return pos + 1


cdef inline Py_ssize_t _common(const int64_t* a, const int64_t* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


cdef inline Py_ssize_t _xr_lookup(const int64_t* keys, const int64_t* rows, uint64_t mask, int64_t v) noexcept nogil:
    # Row (+1) last stored under v, 0 if none.
    cdef uint64_t h = mix64(<uint64_t>v) & mask
    while rows[h] != 0:
        if keys[h] == v:
            return rows[h]
        h = (h + 1) & mask
    return 0


cdef inline void _xr_store(int64_t* keys, int64_t* rows, uint64_t mask, int64_t v, int64_t row) noexcept nogil:
    cdef uint64_t h = mix64(<uint64_t>v) & mask
    while rows[h] != 0 and keys[h] != v:
        h = (h + 1) & mask
    keys[h] = v
    rows[h] = row + 1


cdef inline void _xr_try(const int64_t* v, const int64_t* starts, Py_ssize_t r, Py_ssize_t s,
                         Py_ssize_t* best) noexcept nogil:
    # Best alignment of row r against earlier row s: r starting inside s (oldest first: s's
    # first items dropped), or s starting inside r (newest first: new items in front).
    # best = [copy, ref, skip, head], updated in place when this candidate copies more.
    cdef const int64_t* rp = v + starts[r]
    cdef const int64_t* sp = v + starts[s]
    cdef Py_ssize_t m = starts[r + 1] - starts[r], sm = starts[s + 1] - starts[s]
    cdef Py_ssize_t k, c, tries
    if m == 0 or sm == 0:
        return
    tries = 0
    for k in range(sm):
        if sp[k] == rp[0]:
            c = _common(rp, sp + k, m if m < sm - k else sm - k)
            if c > best[0]:
                best[0], best[1], best[2], best[3] = c, r - s, k, 0
            tries += 1
            if tries == _XR_OCCURRENCES:
                break
    tries = 0
    for k in range(1, m):
        if rp[k] == sp[0]:
            c = _common(rp + k, sp, m - k if m - k < sm else sm)
            if c > best[0]:
                best[0], best[1], best[2], best[3] = c, r - s, 0, k
            tries += 1
            if tries == _XR_OCCURRENCES:
                break


def cross_row_encode(const int64_t[::1] values, const int64_t[::1] lengths, int window,
                     uint8_t[::1] ops, int64_t[::1] literals):
    """Encode each row (``lengths`` partition ``values``) against an earlier row of the chunk.

    Candidates for row r are the ``window`` rows before it and the latest rows whose first
    or second id equals r's first or second id (found by hashing), so a user's windows need
    not be adjacent. A candidate is used when it gives at least 2 ids to copy.

    ``ops`` must hold ``5 * 5 * len(lengths)`` bytes and ``literals`` ``len(values)`` ids.
    Returns ``(ops bytes, literal count, ids copied)``.
    """
    cdef Py_ssize_t nrows = lengths.shape[0], n = values.shape[0], r, s, d, j, pos = 0, nlit = 0, copied = 0
    if ops.shape[0] < 5 * _XR_MAX_VARINT * nrows or literals.shape[0] < n:
        raise ValueError("cross-row encode: output buffers too small")
    if n >= 2147483648 or nrows >= 2147483648:
        raise ValueError(f"cross-row encode: {nrows} rows of {n} values, expected fewer than 2^31 of each")
    cdef Py_ssize_t cap = 16
    while cap < 4 * nrows + 4:
        cap <<= 1
    cdef uint64_t mask = <uint64_t>(cap - 1)
    cdef int64_t* starts = <int64_t*>calloc(nrows + 1, sizeof(int64_t))
    cdef int64_t* keys = <int64_t*>calloc(cap, sizeof(int64_t))
    cdef int64_t* rows = <int64_t*>calloc(cap, sizeof(int64_t))  # row + 1 per key, 0 = empty
    cdef int64_t* keys2 = <int64_t*>calloc(cap, sizeof(int64_t))
    cdef int64_t* rows2 = <int64_t*>calloc(cap, sizeof(int64_t))
    cdef Py_ssize_t best[4]
    cdef Py_ssize_t cand[4]
    cdef Py_ssize_t m, a, head, tail
    cdef const int64_t* v = &values[0] if n else NULL
    cdef int64_t* lp = &literals[0] if n else NULL
    cdef uint8_t* op = &ops[0] if ops.shape[0] else NULL
    cdef int bad = 0
    try:
        if starts == NULL or keys == NULL or rows == NULL or keys2 == NULL or rows2 == NULL:
            raise MemoryError()
        with nogil:
            for r in range(nrows):
                if lengths[r] < 0 or lengths[r] > n - starts[r]:
                    bad = 1
                    break
                starts[r + 1] = starts[r] + lengths[r]
            if not bad:
                for r in range(nrows):
                    a = starts[r]
                    m = starts[r + 1] - a
                    best[0] = 1  # a reference must copy at least 2 ids to pay for its ops
                    best[1] = best[2] = best[3] = 0
                    if m > 0:
                        d = 1
                        while d <= window and d <= r and best[0] < m:
                            _xr_try(v, starts, r, r - d, best)
                            d += 1
                        # Rows found by content: same first id, or first id = our second (new
                        # item in front), or second id = our first (oldest item dropped).
                        cand[0] = _xr_lookup(keys, rows, mask, v[a]) - 1
                        cand[1] = _xr_lookup(keys2, rows2, mask, v[a]) - 1
                        cand[2] = _xr_lookup(keys, rows, mask, v[a + 1]) - 1 if m > 1 else -1
                        for j in range(3):
                            s = cand[j]
                            if s >= 0 and r - s > window and best[0] < m:
                                _xr_try(v, starts, r, s, best)
                        _xr_store(keys, rows, mask, v[a], r)
                        if m > 1:
                            _xr_store(keys2, rows2, mask, v[a + 1], r)
                    if best[1] == 0:
                        pos = _put_varint(op, pos, 0)
                        pos = _put_varint(op, pos, 0)
                        pos = _put_varint(op, pos, 0)
                        pos = _put_varint(op, pos, 0)
                        pos = _put_varint(op, pos, <uint64_t>m)
                        if m:
                            memcpy(lp + nlit, v + a, m * sizeof(int64_t))
                            nlit += m
                    else:
                        head = best[3]
                        tail = m - head - best[0]
                        pos = _put_varint(op, pos, <uint64_t>best[1])
                        pos = _put_varint(op, pos, <uint64_t>best[2])
                        pos = _put_varint(op, pos, <uint64_t>best[0])
                        pos = _put_varint(op, pos, <uint64_t>head)
                        pos = _put_varint(op, pos, <uint64_t>tail)
                        if head:
                            memcpy(lp + nlit, v + a, head * sizeof(int64_t))
                            nlit += head
                        if tail:
                            memcpy(lp + nlit, v + a + head + best[0], tail * sizeof(int64_t))
                            nlit += tail
                        copied += best[0]
                if starts[nrows] != n:
                    bad = 1
    finally:
        free(starts)
        free(keys)
        free(rows)
        free(keys2)
        free(rows2)
    if bad:
        raise ValueError(f"cross-row encode: lengths do not partition the {n} values")
    return pos, nlit, copied


cdef inline int _get_varint(const uint8_t* src, Py_ssize_t size, Py_ssize_t* pos, uint64_t* out) noexcept nogil:
    # One LEB128 varint of at most _XR_MAX_VARINT bytes; 0 on success, -1 when it runs past
    # the ops or is longer than an op may be.
    cdef uint64_t z = 0
    cdef int shift = 0
    cdef uint8_t byte
    while True:
        if pos[0] >= size or shift >= 7 * _XR_MAX_VARINT:
            return -1
        byte = src[pos[0]]
        pos[0] += 1
        z |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            out[0] = z
            return 0
        shift += 7


def cross_row_decode(const uint8_t[::1] src, Py_ssize_t nrows, Py_ssize_t nliterals, int64_t[::1] out):
    """Decode a cross-row stream of ``nrows`` rows and ``nliterals`` literal ids into ``out``.

    Every op is checked before it is used (the reference is an earlier row, the slice lies
    inside it, the literals and the output have room), so a malformed stream raises
    ``ValueError`` naming the row instead of reading or writing out of bounds.
    """
    cdef Py_ssize_t n = out.shape[0], size = src.shape[0]
    if nrows < 0 or nliterals < 0 or nliterals > n or 8 * nliterals > size:
        raise ValueError(f"cross-row: {nliterals} literal ids for {n} values do not fit a {size}-byte stream")
    cdef Py_ssize_t ops_size = size - 8 * nliterals
    # Each row's op is five varints of at least one byte: a row count the ops cannot hold is
    # refused before it sizes an allocation.
    if nrows > ops_size // 5:
        raise ValueError(f"cross-row: {nrows} rows need at least {5 * nrows} op bytes, "
                         f"the stream has {ops_size}")
    cdef int64_t* starts = <int64_t*>calloc(nrows + 1, sizeof(int64_t))
    if starts == NULL:
        raise MemoryError()
    cdef const uint8_t* s = &src[0] if size else NULL
    cdef const uint8_t* lits = s + ops_size if size else NULL
    cdef int64_t* o = &out[0] if n else NULL
    cdef Py_ssize_t r = 0, pos = 0, lit = 0, at = 0, ref_start, ref_len
    cdef uint64_t ref = 0, skip = 0, copy = 0, head = 0, tail = 0
    cdef int bad = 0
    try:
        with nogil:
            for r in range(nrows):
                if (_get_varint(s, ops_size, &pos, &ref) or _get_varint(s, ops_size, &pos, &skip)
                        or _get_varint(s, ops_size, &pos, &copy) or _get_varint(s, ops_size, &pos, &head)
                        or _get_varint(s, ops_size, &pos, &tail)):
                    bad = 1
                    break
                if ref > <uint64_t>r or (ref == 0 and (skip or copy)):
                    bad = 2
                    break
                if head > <uint64_t>(nliterals - lit) or tail > <uint64_t>(nliterals - lit) - head:
                    bad = 3
                    break
                if copy > <uint64_t>(n - at) or head > <uint64_t>(n - at) - copy or tail > <uint64_t>(n - at) - copy - head:
                    bad = 4
                    break
                if head:
                    memcpy(o + at, lits + 8 * lit, head * 8)
                    at += head
                    lit += head
                if ref:
                    ref_start = starts[r - ref]
                    ref_len = starts[r - ref + 1] - ref_start
                    if skip > <uint64_t>ref_len or copy > <uint64_t>ref_len - skip:
                        bad = 5
                        break
                    if copy:
                        # The reference row lies wholly before this row's output: no overlap.
                        memcpy(o + at, o + ref_start + skip, copy * 8)
                        at += copy
                if tail:
                    memcpy(o + at, lits + 8 * lit, tail * 8)
                    at += tail
                    lit += tail
                starts[r + 1] = at
    finally:
        free(starts)
    if bad == 1:
        raise ValueError(f"cross-row: the ops of row {r} run past the {ops_size} op bytes or overflow")
    if bad == 2:
        raise ValueError(f"cross-row: row {r} refers {ref} rows back (skip {skip}, copy {copy}), "
                         f"expected an earlier row of the chunk")
    if bad == 3:
        raise ValueError(f"cross-row: row {r} takes {head} + {tail} literal ids, only {nliterals - lit} are left")
    if bad == 4:
        raise ValueError(f"cross-row: row {r} needs {head + copy + tail} values, only {n - at} of {n} are left")
    if bad == 5:
        raise ValueError(f"cross-row: row {r} copies [{skip}, {skip + copy}) of a {ref_len}-id reference row")
    if pos != ops_size:
        raise ValueError(f"cross-row: {ops_size - pos} op bytes left over after {nrows} rows")
    if lit != nliterals or at != n:
        raise ValueError(f"cross-row: {nrows} rows decode to {at} values using {lit} literal ids, "
                         f"the head says {n} values and {nliterals} literal ids")
