"""The cross-row encoding: a row's ids as a slice of an earlier row of the chunk plus new ids.

Round trips (hypothesis) through the encoding alone and through whole files, the policy's
choice (only where the chunk comes out smaller), and crafted streams whose ops lie: each is
refused with ``CorruptFileError`` naming the file, row group and column.
"""

import os
import sys

import numpy as np
import pyarrow as pa
import pytest
from helpers import assert_same_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import samplestore as ss
from samplestore.format import FileReader, read_file, write_file
from samplestore.format.codecs import get_encoding
from samplestore.format.encodings import Compressor, Hint, decode_stream, encode_stream
from samplestore.format.spec import DType, Encoding

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "crafted"))

import make_crafted as mk  # noqa: E402
from ssf_layout import assemble, pack_chunk, parse, stream  # noqa: E402
from test_crafted import _refused_everywhere, _write  # noqa: E402

EXTREMES = [2**63 - 1, -(2**63), 0, -1]
ID = st.one_of(st.integers(0, 6), st.sampled_from(EXTREMES), st.integers(-(2**63), 2**63 - 1))


def flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in rows], np.int64)
    values = np.array([x for r in rows for x in r], np.int64).reshape(-1)
    return values, lengths


def windows(users: int, samples: int, size: int, *, newest_first: bool = False, seed: int = 0) -> list[list[int]]:
    """Each user's samples sliding one item: the last ``size`` items before each sample."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(users):
        items = rng.integers(-(2**63), 2**63 - 1, samples + size, dtype=np.int64).tolist()
        for t in range(samples):
            w = items[max(0, t + 1 - size): t + 1]
            rows.append(w[::-1] if newest_first else w)
    return rows


def roundtrip_stream(values: np.ndarray, lengths: np.ndarray, codec: str) -> tuple[int, np.ndarray]:
    """Encode with cross-row pinned where the encoder takes the stream, else by the policy,
    store and decode; (cross-row's id, or -1 where the encoder declined; the decoded values)."""
    enc = get_encoding(Encoding.CROSS_ROW).encode(values, rows=lengths)
    compressor = Compressor(codec)
    if enc is not None:
        head, stored = encode_stream(values, DType.INT64, Hint.IDS, compressor, Encoding.CROSS_ROW, lengths)
        assert head.encoding == Encoding.CROSS_ROW and head.param0 == len(lengths)
        return head.encoding, decode_stream(head, memoryview(bytes(stored)))
    # Declined: no row had anything worth copying (not even a repeat of the row before it),
    # pinning cross-row is refused, and the policy stores the stream another way.
    rows = np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []
    assert not any(len(r) >= 2 and np.array_equal(r, rows[i - 1]) for i, r in enumerate(rows) if i)
    with pytest.raises(ValueError, match="does not take this stream"):
        encode_stream(values, DType.INT64, Hint.IDS, compressor, Encoding.CROSS_ROW, lengths)
    head, stored = encode_stream(values, DType.INT64, Hint.IDS, compressor, rows=lengths)
    assert head.encoding != Encoding.CROSS_ROW
    return -1, decode_stream(head, memoryview(bytes(stored)))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(ID, max_size=12), max_size=30), codec=st.sampled_from(["zstd", "none"]))
def test_any_lists_round_trip(rows, codec):
    values, lengths = flat(rows)
    enc, got = roundtrip_stream(values, lengths, codec)
    assert enc in (-1, Encoding.CROSS_ROW)
    np.testing.assert_array_equal(got, values)


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(st.lists(ID, max_size=8), min_size=1, max_size=6),
    ops=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 3), st.lists(ID, max_size=3),
                           st.booleans()), max_size=40),
)
def test_overlapping_windows_and_repeats_round_trip(base, ops):
    # Each new row slides, shrinks, grows or repeats an earlier one (identical lists included).
    rows = [list(r) for r in base]
    for back, drop_front, drop_back, new, front in ops:
        ref = rows[max(0, len(rows) - 1 - back)]
        kept = ref[drop_front: len(ref) - drop_back] if drop_back else ref[drop_front:]
        rows.append(new + kept if front else kept + new)
    values, lengths = flat(rows)
    enc, got = roundtrip_stream(values, lengths, "zstd")
    np.testing.assert_array_equal(got, values)
    if any(len(r) >= 2 and r == rows[i - 1] for i, r in enumerate(rows) if i):
        assert enc == Encoding.CROSS_ROW  # a repeated list of 2+ ids is always found


@pytest.mark.parametrize("newest_first", [False, True])
def test_sliding_windows_store_one_new_id_per_row(newest_first):
    values, lengths = flat(windows(5, 40, 30, newest_first=newest_first))
    enc = get_encoding(Encoding.CROSS_ROW).encode(values, rows=lengths)
    # Per user: the first window is all new ids, and so is the second (copying 1 id does not
    # pay for a reference), each later one adds exactly one.
    assert enc.param0 == 200 and enc.param1 == 5 * (40 + 1)
    enc_id, got = roundtrip_stream(values, lengths, "none")
    np.testing.assert_array_equal(got, values)


def test_interleaved_users_find_their_own_earlier_rows():
    # Rows of 20 users interleaved (sorted by time, not user): references reach past the
    # rows just before, found by content.
    per_user = [windows(1, 30, 25, seed=s) for s in range(20)]
    rows = [per_user[u][t] for t in range(30) for u in range(20)]
    values, lengths = flat(rows)
    enc = get_encoding(Encoding.CROSS_ROW).encode(values, rows=lengths)
    assert enc.param1 == 20 * (30 + 1)
    np.testing.assert_array_equal(roundtrip_stream(values, lengths, "zstd")[1], values)


SCHEMA = ss.Schema([ss.Sequence("hist", timestamps=True), ss.Sparse("ids"), ss.Label("click")])


def seq_table(rows: list[list[int]]) -> pa.Table:
    values, lengths = flat(rows)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    ts = pa.ListArray.from_arrays(offsets, pa.array(1_700_000_000_000_000 + np.abs(values) % 1000, pa.int64()))
    ids = pa.ListArray.from_arrays(offsets, pa.array(values, pa.int64()))
    return SCHEMA.conform({"hist": pa.StructArray.from_arrays([ids, ts], ["ids", "ts"]), "ids": ids,
                           "click": np.zeros(len(rows), np.float32)})


def encodings_used(path, column: str) -> set[int]:
    with open(path, "rb") as f:
        lay = parse(f.read())
    return {sm.encoding for rg in range(lay.num_row_groups) for sm in lay.chunk(column, rg).streams[1:2]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.integers(1, 6), samples=st.integers(1, 30), size=st.integers(1, 40), rg=st.integers(1, 50),
       newest_first=st.booleans())
def test_files_round_trip_with_row_groups_cutting_through_windows(tmp_path, users, samples, size, rg, newest_first):
    # A row group is its own chunk: the first row of each one has no reference before it, even
    # where the previous row group ends with the same user's window.
    table = seq_table(windows(users, samples, size, newest_first=newest_first))
    path = tmp_path / "w.ssf"
    write_file(path, table, SCHEMA, row_group_rows=rg)
    assert_same_data(read_file(path), table)
    with FileReader(path) as r:  # each row group decodes on its own, in any order
        for g in reversed(range(r.num_row_groups)):
            start = g * rg
            assert_same_data(pa.Table.from_batches([r.read_row_group(g)]), table.slice(start, rg))


def test_every_row_group_of_sliding_windows_is_cross_row_coded_on_its_own(tmp_path):
    # Deterministic companion of the property above: 12 row groups of 10 rows cut through one
    # user's 16-id windows; every row group after the first (whose windows are still growing
    # from one id, where another encoding may come out smaller) stores them cross-row, its
    # first row with nothing earlier in its own chunk to refer to.
    table = seq_table(windows(1, 120, 16))
    path = tmp_path / "w.ssf"
    write_file(path, table, SCHEMA, row_group_rows=10)
    with open(path, "rb") as f:
        lay = parse(f.read())
    assert lay.num_row_groups == 12
    for column in ("hist", "ids"):
        assert [lay.chunk(column, g).streams[1].encoding for g in range(1, 12)] == [Encoding.CROSS_ROW] * 11
    assert_same_data(read_file(path), table)


def test_the_decode_kernel_refuses_more_rows_than_its_ops_can_hold():
    # Each row's op takes at least five bytes: a row count beyond that is refused before it
    # sizes the kernel's allocation (a lying count once asked calloc for terabytes).
    from samplestore.format import _codec

    out = np.empty(1, np.int64)
    ops = np.frombuffer(_varints(0, 0, 0, 0, 1) + np.array([7], "<i8").tobytes(), np.uint8)
    _codec.cross_row_decode(ops, 1, 1, out)
    assert out.tolist() == [7]
    for nrows in (2, 2**40):
        with pytest.raises(ValueError, match=f"{nrows} rows need at least {5 * nrows} op bytes, the stream has 5"):
            _codec.cross_row_decode(ops, nrows, 1, out)


def test_policy_picks_cross_row_only_where_the_chunk_gets_smaller(tmp_path):
    rows = windows(20, 50, 100)
    table = seq_table(rows)
    sorted_path, shuffled_path = tmp_path / "sorted.ssf", tmp_path / "shuffled.ssf"
    write_file(sorted_path, table, SCHEMA, row_group_rows=500)
    order = np.random.default_rng(0).permutation(len(rows))
    shuffled = table.take(order)
    write_file(shuffled_path, shuffled, SCHEMA, row_group_rows=500)
    assert encodings_used(sorted_path, "hist") == {Encoding.CROSS_ROW}
    assert encodings_used(sorted_path, "ids") == {Encoding.CROSS_ROW}
    # Shuffled, a row still finds its user's earlier windows by content where a chunk holds them.
    assert_same_data(read_file(shuffled_path), shuffled)
    assert_same_data(read_file(sorted_path), table)
    # Random ids in no overlapping lists: the policy keeps what it had.
    rng = np.random.default_rng(1)
    noise = seq_table([rng.integers(0, 2**62, int(k)).tolist() for k in rng.integers(0, 20, 500)])
    noise_path = tmp_path / "noise.ssf"
    write_file(noise_path, noise, SCHEMA)
    assert Encoding.CROSS_ROW not in encodings_used(noise_path, "ids")
    plain_size = os.path.getsize(sorted_path)
    assert plain_size < 0.2 * len(rows) * 100 * 8 * 2  # far below the raw ids of both columns


# -- crafted streams ------------------------------------------------------------------------

def _varints(*ops: int) -> bytes:
    out = bytearray()
    for v in ops:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _cross_row_file(ops: bytes, literals: list[int], lengths: list[int], *, count: int | None = None,
                    param0: int | None = None, param1: int | None = None) -> bytes:
    """ids/click with the ids stream cross-row coded from the given ops and literals."""
    lits = np.array(literals, "<i8").tobytes()
    n = sum(lengths) if count is None else count
    ids = stream(ops + lits, DType.INT64, n, encoding=Encoding.CROSS_ROW,
                 param0=len(lengths) if param0 is None else param0,
                 param1=len(literals) if param1 is None else param1)
    chunk = pack_chunk([stream(np.array(lengths, "<i8"), DType.INT64, len(lengths)), ids])
    return assemble([[chunk], [mk._click(len(lengths))]], [mk.IDS, mk.CLICK], [len(lengths)])


def test_a_crafted_cross_row_file_reads(tmp_path):
    # Row 0: [7, 8, 9]; row 1: row 0 from 1 + [10] = [8, 9, 10]; row 2: [5] + row 1[0:2] = [5, 8, 9].
    ops = _varints(0, 0, 0, 0, 3, 1, 1, 2, 0, 1, 1, 0, 2, 1, 0)
    got = read_file(_write(tmp_path, _cross_row_file(ops, [7, 8, 9, 10, 5], [3, 3, 3])))
    assert got.column("ids").to_pylist() == [[7, 8, 9], [8, 9, 10], [5, 8, 9]]


@pytest.mark.parametrize("ops, literals, lengths, kw, message", [
    (_varints(1, 0, 1, 0, 0), [], [1], {}, "refers 1 rows back"),  # row 0 has no earlier row
    (_varints(0, 0, 0, 0, 2, 2, 0, 2, 0, 0), [1, 2], [2, 2], {}, "refers 2 rows back"),
    (_varints(0, 0, 0, 0, 2, 1, 1, 2, 0, 0), [1, 2], [2, 2], {}, "copies [1, 3) of a 2-id reference row"),
    (_varints(0, 0, 0, 0, 2, 1, 2**31 - 1, 2, 0, 0), [1, 2], [2, 2], {}, "copies"),
    (_varints(0, 1, 1, 0, 1), [1], [1], {}, "refers 0 rows back"),  # skip/copy without a reference
    (_varints(0, 0, 0, 0, 3), [1, 2], [3], {"count": 3}, "literal"),  # more literals than stored
    (_varints(0, 0, 0, 0, 2, 1, 0, 2, 0, 0), [1, 2], [2, 1], {}, "needs 2 values, only 1"),
    (_varints(0, 0, 0, 0, 1), [1], [1], {"count": 1, "param0": 2}, "holds 13 bytes"),
    (_varints(0, 0, 0, 0, 1) + b"\x00" * 5, [1], [1], {}, "op bytes left over"),
    (b"\x80\x80\x80\x80\x80\x01" + _varints(0, 0, 0, 0), [1], [1], {}, "run past"),  # 6-byte varint
    (_varints(0, 0, 0, 0) + b"\x81", [1], [1], {}, "run past"),  # ops end inside a varint
    (_varints(0, 0, 0, 1, 0), [1, 2], [1], {"count": 1, "param1": 2}, "literal"),
    (_varints(0, 0, 0, 0, 1), [1], [1], {"param0": -1}, "declares -1 rows"),
    (_varints(0, 0, 0, 0, 1), [1], [1], {"param1": 2**62}, "literal ids"),
])
def test_lying_cross_row_ops_are_refused(tmp_path, ops, literals, lengths, kw, message):
    path = _write(tmp_path, _cross_row_file(ops, literals, lengths, **kw))
    errors = _refused_everywhere(path, 0, "ids")
    assert message in str(errors[0]), str(errors[0])


def test_cross_row_on_a_float_stream_is_refused():
    # The reader refuses it earlier by the column's element type; the encoding refuses it too.
    from samplestore.format.codecs import DecodeError, StreamHead

    raw = _varints(0, 0, 0, 0, 1) + b"\x00" * 8
    head = StreamHead(Encoding.CROSS_ROW, 0, DType.FLOAT32, 1, len(raw), len(raw), 1, 1)
    with pytest.raises(DecodeError, match="expected int64"):
        decode_stream(head, memoryview(raw))
