"""Property tests of the Cython codec kernels and the encoding policy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samplestore.format import _codec
from samplestore.torch import _gather
from samplestore.format.encodings import Compressor, DecodeError, Hint, decode_stream, encode_stream
from samplestore.format.spec import DType, Encoding

I64_ARRAYS = hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-(2**63), 2**63 - 1))
SMALL_RANGE = hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-5, 300))


@settings(max_examples=200, deadline=None)
@given(v=I64_ARRAYS | SMALL_RANGE)
def test_delta_varint_roundtrip(v):
    buf = np.empty(10 * len(v), np.uint8)
    size = _codec.delta_varint_encode(v, buf)
    out = np.empty_like(v)
    _codec.delta_varint_decode(buf[:size], out)
    assert np.array_equal(out, v)


def test_delta_varint_rejects_truncated_and_trailing_bytes():
    v = np.array([1, 1000, -5, 2**40], np.int64)
    buf = np.empty(40, np.uint8)
    size = _codec.delta_varint_encode(v, buf)
    with pytest.raises(ValueError):
        _codec.delta_varint_decode(buf[: size - 1], np.empty(4, np.int64))
    with pytest.raises(ValueError):
        _codec.delta_varint_decode(buf[:size], np.empty(3, np.int64))
    with pytest.raises(ValueError):
        _codec.delta_varint_decode(np.full(20, 0xFF, np.uint8), np.empty(1, np.int64))


@settings(max_examples=200, deadline=None)
@given(v=I64_ARRAYS | SMALL_RANGE, hint=st.sampled_from([Hint.IDS, Hint.INT, Hint.ORDERED, Hint.LENGTHS]),
       codec=st.sampled_from(["zstd", "none"]))
def test_int_stream_roundtrip_any_encoding(v, hint, codec):
    if hint == Hint.LENGTHS:
        v = np.abs(v % 1000)
    head, stored = encode_stream(v, DType.INT64, hint, Compressor(codec))
    assert np.array_equal(decode_stream(head, memoryview(stored)), v)


@settings(max_examples=150, deadline=None)
@given(v=hnp.arrays(np.float32, st.integers(0, 300), elements=st.floats(width=32)) |
       hnp.arrays(np.float32, st.integers(0, 300), elements=st.sampled_from([0.0, 1.0, -0.0, float("nan")])))
def test_float_stream_roundtrip_bit_exact(v):
    head, stored = encode_stream(v, DType.FLOAT32, Hint.FLOAT, Compressor())
    out = decode_stream(head, memoryview(stored))
    assert np.array_equal(out.view(np.uint32), v.view(np.uint32))


@pytest.mark.parametrize("k,bits", [(2, 1), (4, 2), (16, 4), (256, 8), (65536, 16), (70000, 32)])
def test_dictionary_chosen_for_every_index_width(k, bits):
    rng = np.random.default_rng(k)
    v = rng.integers(0, k, max(4 * k, 256)).astype(np.int64) * 1_000_003
    v[:k] = np.arange(k) * 1_000_003  # every entry present
    head, stored = encode_stream(v, DType.INT64, Hint.IDS, Compressor())
    assert head.encoding == Encoding.DICT and head.param0 == k and head.param1 == bits
    assert np.array_equal(decode_stream(head, memoryview(stored)), v)


def test_dictionary_decode_checks_indices():
    entries = np.array([5, 6], np.int64)
    with pytest.raises(ValueError, match="outside"):
        _codec.dict_decode(entries, np.array([0, 1, 7], np.uint8), 8, np.empty(3, np.int64))


def test_corrupt_stream_head_raises_decode_error():
    v = np.arange(1000, dtype=np.int64) % 7
    head, stored = encode_stream(v, DType.INT64, Hint.IDS, Compressor())
    from dataclasses import replace
    for bad in (replace(head, count=head.count + 1), replace(head, encoded_size=3), replace(head, encoding=99),
                replace(head, param1=3), replace(head, codec=7)):
        with pytest.raises(DecodeError):
            decode_stream(bad, memoryview(stored))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_gather_jagged_matches_python(data):
    lengths = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=30))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.arange(offsets[-1], dtype=np.int64) * 3
    rows = np.array(data.draw(st.lists(st.integers(0, len(lengths) - 1), max_size=40)), np.int64)
    total = _gather.jagged_total(offsets, rows)
    out_len = np.empty(len(rows), np.int32)
    out_val = np.empty(total, np.int64)
    assert _gather.gather_jagged(offsets, values.view(np.uint8), 8, rows, out_len, out_val.view(np.uint8)) == total
    expect = [values[offsets[r]:offsets[r + 1]] for r in rows]
    assert out_len.tolist() == [len(e) for e in expect]
    assert np.array_equal(out_val, np.concatenate(expect) if expect else np.empty(0, np.int64))
    with pytest.raises(IndexError):
        _gather.gather_jagged(offsets, values.view(np.uint8), 8, np.array([len(lengths)], np.int64),
                              np.empty(1, np.int32), out_val.view(np.uint8))


def _jagged_window(data, ncols, npieces, itemsize=8):
    """Random pieces of ``ncols`` jagged columns (same rows per piece in every column)."""
    rows = [data.draw(st.integers(0, 12)) for _ in range(npieces)]
    offsets, values = [], []
    for k in range(ncols):
        offs, vals = [], []
        for p, n in enumerate(rows):
            lengths = data.draw(st.lists(st.integers(0, 11), min_size=n, max_size=n))
            offs.append(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
            dtype = np.int64 if itemsize == 8 else np.float32
            vals.append((np.arange(offs[-1][-1]) * 1000 + k * 100 + p).astype(dtype).view(np.uint8))
        offsets.append(offs)
        values.append(vals)
    return rows, offsets, values


@settings(max_examples=100, deadline=None)
@given(data=st.data(), itemsize=st.sampled_from([8, 4]))
def test_jagged_pieces_match_python(data, itemsize):
    """Both passes over several columns give every chosen row's list, key-major, as the
    per-row slices would (lists longer than 8 items take the memcpy path)."""
    ncols, npieces = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    rows, offsets, values = _jagged_window(data, ncols, npieces, itemsize)
    choices = [(p, r) for p, n in enumerate(rows) for r in range(n)]
    picked = data.draw(st.lists(st.sampled_from(choices), max_size=40)) if choices else []
    piece = np.array([p for p, _ in picked], np.int32)
    local = np.array([r for _, r in picked], np.int64)
    n = len(picked)
    jp = _gather.JaggedPieces(offsets, values, itemsize)
    lengths, starts, totals = np.empty(ncols * n, np.int32), np.empty(ncols * n, np.int32), np.empty(ncols, np.int64)
    total = jp.lengths(piece, local, lengths, starts, totals)
    out = np.empty(total * itemsize, np.uint8)
    assert jp.copy(piece, lengths, starts, out) == total
    expect = [values[k][p].view(np.int64 if itemsize == 8 else np.float32)[offsets[k][p][r]:offsets[k][p][r + 1]]
              for k in range(ncols) for p, r in picked]
    assert lengths.tolist() == [len(e) for e in expect]
    assert totals.tolist() == [sum(len(e) for e in expect[k * n:(k + 1) * n]) for k in range(ncols)]
    assert out.tobytes() == b"".join(e.tobytes() for e in expect)


def test_jagged_pieces_refuse_what_does_not_fit():
    offs = [np.array([0, 2, 3], np.int32), np.array([0, 1], np.int32)]
    vals = [np.arange(3, dtype=np.int64).view(np.uint8), np.arange(1, dtype=np.int64).view(np.uint8)]
    jp = _gather.JaggedPieces([offs], [vals], 8)
    piece, local = np.array([0, 1], np.int32), np.array([1, 0], np.int64)
    lengths, starts, totals = np.empty(2, np.int32), np.empty(2, np.int32), np.empty(1, np.int64)
    assert jp.lengths(piece, local, lengths, starts, totals) == 2
    assert (lengths.tolist(), starts.tolist(), totals.tolist()) == ([1, 1], [2, 0], [2])
    # Rows and pieces out of range.
    with pytest.raises(IndexError, match="row 2 of piece 0"):  # piece 0 has 2 rows
        jp.lengths(piece, np.array([2, 0], np.int64), lengths, starts, totals)
    with pytest.raises(IndexError, match="piece 2"):
        jp.lengths(np.array([2, 0], np.int32), local, lengths, starts, totals)
    with pytest.raises(IndexError, match="piece 5"):
        jp.copy(np.array([5, 0], np.int32), lengths, starts, np.empty(16, np.uint8))
    # Outputs and inputs of the wrong size.
    with pytest.raises(ValueError, match="3 lengths, 2 starts and 1 totals, expected 2, 2 and 1"):
        jp.lengths(piece, local, np.empty(3, np.int32), starts, totals)
    with pytest.raises(ValueError, match="expected 2, 2 and 1"):
        jp.lengths(piece, local, lengths, starts, np.empty(2, np.int64))
    with pytest.raises(ValueError, match="1 lengths and 2 starts, expected 2 each"):
        jp.copy(piece, lengths[:1], starts, np.empty(16, np.uint8))
    with pytest.raises(ValueError, match="holds 1 items, too small"):
        jp.copy(piece, lengths, starts, np.empty(8, np.uint8))
    # Lists that lie outside their piece: a start past the end, a negative start or length.
    for bad_len, bad_start, found in (([1, 1], [3, 0], "items 3 to 4"), ([1, 1], [-1, 0], "items -1 to 0"),
                                      ([-1, 1], [0, 0], "items 0 to -1")):
        with pytest.raises(ValueError, match=f"column 0, batch row 0 \\(piece 0\\): {found}, expected a range within "
                                             "the piece's 3 items"):
            jp.copy(piece, np.array(bad_len, np.int32), np.array(bad_start, np.int32), np.empty(16, np.uint8))
    # Offsets that decrease, go negative or point past the values, found per row...
    for o, row in (([0, 3, 1], 1), ([0, -1, 2], 1), ([0, 9, 3], 0)):  # decreasing, negative, past the end
        bad = _gather.JaggedPieces([[np.array(o, np.int32)]], [[vals[0]]], 8)
        with pytest.raises(ValueError, match=f"row {row} of piece 0: offsets .* expected a rising range within "
                                             "the piece's 3 items"):
            bad.lengths(np.array([0], np.int32), np.array([row], np.int64), lengths[:1], starts[:1], totals)
    # ... or when the pieces are taken: past the values, negative first, none, rows or
    # pieces that differ between columns, item sizes and list counts that do not fit.
    with pytest.raises(ValueError, match="run from 0 to 4, past its 3 items"):
        _gather.JaggedPieces([[np.array([0, 4], np.int32)]], [[vals[0]]], 8)
    with pytest.raises(ValueError, match="run from -1 to 2"):
        _gather.JaggedPieces([[np.array([-1, 2], np.int32)]], [[vals[0]]], 8)
    with pytest.raises(ValueError, match="has no offsets"):
        _gather.JaggedPieces([[np.empty(0, np.int32)]], [[vals[0]]], 8)
    with pytest.raises(ValueError, match="has 1 rows, expected 2"):
        _gather.JaggedPieces([offs, [offs[1], offs[1]]], [vals, [vals[1], vals[1]]], 8)
    with pytest.raises(ValueError, match="column 1 has 1 offsets and 1 values pieces, expected 2"):
        _gather.JaggedPieces([offs, offs[:1]], [vals, vals[:1]], 8)
    with pytest.raises(ValueError, match="items of 0 bytes"):
        _gather.JaggedPieces([offs], [vals], 0)
    with pytest.raises(ValueError, match="1 values lists for 2 offsets lists"):
        _gather.JaggedPieces([offs, offs], [vals], 8)
    none = _gather.JaggedPieces([], [], 8)  # no jagged feature: nothing to check or copy
    assert none.lengths(piece, local, np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.int64)) == 0
    assert none.copy(piece, np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.uint8)) == 0


def test_jagged_pieces_hold_their_buffers():
    """The buffers stay exported while the object lives: they cannot be freed or resized
    under it, and replacing the lists' arrays does not pull them away."""
    import mmap

    m = mmap.mmap(-1, 4096)
    np.frombuffer(m, np.int64)[:3] = [7, 8, 9]
    offsets = [[np.array([0, 3], np.int32)]]
    jp = _gather.JaggedPieces(offsets, [[np.frombuffer(m, np.uint8)]], 8)
    with pytest.raises(BufferError):
        m.close()
    grow = bytearray(24)
    jp2 = _gather.JaggedPieces([[np.array([0, 3], np.int32)]], [[grow]], 8)
    with pytest.raises(BufferError):
        grow.extend(b"x" * 1_000_000)
    offsets[0][0] = np.array([0, 0], np.int32)  # the object keeps the array it was given
    lengths, starts, totals = np.empty(1, np.int32), np.empty(1, np.int32), np.empty(1, np.int64)
    assert jp.lengths(np.zeros(1, np.int32), np.zeros(1, np.int64), lengths, starts, totals) == 3
    out = np.empty(3, np.int64)
    jp.copy(np.zeros(1, np.int32), lengths, starts, out.view(np.uint8))
    assert out.tolist() == [7, 8, 9]
    del jp, jp2
    m.close()
    grow.extend(b"x")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_impute_columns_matches_numpy(data):
    b, d = data.draw(st.integers(0, 40)), data.draw(st.integers(1, 6))
    start = data.draw(st.integers(0, d - 1))
    k = data.draw(st.integers(1, d - start))
    vals = data.draw(hnp.arrays(np.float32, (b, d + k), elements=st.floats(-1e3, 1e3, width=32) | st.just(np.nan)))
    fill = data.draw(hnp.arrays(np.float32, k, elements=st.floats(-5, 5, width=32)))
    ind = data.draw(st.sampled_from([-1, d]))
    out = vals.copy()
    if ind >= 0:
        out[:, d:] = 7.0  # garbage the kernel must overwrite
    nan = np.isnan(vals[:, start:start + k])
    assert _gather.impute_columns(out, start, fill, ind) == int(nan.sum())
    want = vals.copy()
    want[:, start:start + k] = np.where(nan, fill, vals[:, start:start + k])
    if ind >= 0:
        want[:, d:] = nan
    rest = [c for c in range(d + k) if not start <= c < start + k and not (ind >= 0 and c >= d)]
    np.testing.assert_array_equal(out[:, start:start + k], want[:, start:start + k])
    np.testing.assert_array_equal(out[:, rest], vals[:, rest])  # NaNs elsewhere untouched
    if ind >= 0:
        np.testing.assert_array_equal(out[:, d:], want[:, d:])


def test_impute_columns_rejects_a_layout_that_does_not_fit():
    out = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="outside"):
        _gather.impute_columns(out, 3, np.zeros(2, np.float32), -1)
    with pytest.raises(ValueError, match="overlapping"):
        _gather.impute_columns(out, 0, np.zeros(2, np.float32), 1)
    with pytest.raises(ValueError):  # not C-contiguous: refused, never silently copied
        _gather.impute_columns(np.zeros((4, 3), np.float32).T, 0, np.zeros(1, np.float32), -1)
