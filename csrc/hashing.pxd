# Small C helpers shared by the kernels of csrc/ (cimported, compiled into each module).
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    # splitmix64 finaliser: spreads clustered (zipf, sequential) ids evenly over a hash table.
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111eb
    x ^= x >> 31
    return x


cdef inline Py_ssize_t find_or_add(uint32_t* slots, uint64_t mask, int64_t* keys, Py_ssize_t k, Py_ssize_t limit,
                                   int64_t v) noexcept nogil:
    # Open-addressing lookup of v among keys[0:k], through slots (0 = empty, else index + 1;
    # mask + 1 slots, more than twice the keys). Returns v's index; when v is new, stores it as
    # keys[k] and returns k (the caller then holds k + 1 keys), or -1 if k == limit.
    cdef uint64_t h = mix64(<uint64_t>v) & mask
    cdef uint32_t s
    while True:
        s = slots[h]
        if s == 0:
            if k >= limit:
                return -1
            keys[k] = v
            slots[h] = <uint32_t>(k + 1)
            return k
        if keys[s - 1] == v:
            return s - 1
        h = (h + 1) & mask


cdef inline uint32_t* new_slots(Py_ssize_t keys, uint64_t* mask) except NULL:
    # A zeroed slot table for up to `keys` keys (a power of two, more than twice as many
    # slots); sets *mask. The caller frees it.
    cdef Py_ssize_t cap = 16
    while cap < 2 * keys + 2:
        cap <<= 1
    mask[0] = <uint64_t>(cap - 1)
    cdef uint32_t* slots = <uint32_t*>calloc(cap, sizeof(uint32_t))
    if slots == NULL:
        raise MemoryError()
    return slots
