"""Crafted files: checksum-valid bytes that lie about lengths, sizes or columns are refused.

Every file here has correct chunk and footer checksums, so only the reader's checks of
every length, offset, count and declared size against the bytes actually there stand
between it and an out-of-bounds read, a memory blow-up or an exception other than
``CorruptFileError``. The committed files in ``crafted/`` come from ``crafted/make_crafted.py``.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import samplestore as ss
from samplestore.format import FileReader, read_file
from samplestore.format.spec import Codec, DType, Encoding

HERE = os.path.dirname(os.path.abspath(__file__))
CRAFTED_DIR = os.path.join(HERE, "crafted")
sys.path.insert(0, CRAFTED_DIR)

import make_crafted as mk  # noqa: E402
from ssf_layout import IntField, assemble, fix_checksums, pack_chunk, parse, stream  # noqa: E402


def _write(tmp_path, blob: bytes, name: str = "crafted.ssf") -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "wb") as f:
        f.write(blob)
    return path


def _refused_everywhere(path: str, row_group, column) -> list[ss.CorruptFileError]:
    """Every read path raises CorruptFileError naming ``path``, ``row_group`` and ``column``."""
    errors = []

    def training_path():  # what load_window does per row group
        with FileReader(path) as r:
            names = [n for n in ("ids", "click") if r.has_column(n)]
            for rg in range(r.num_row_groups):
                r.read_raw(rg, names)

    def verify():
        with FileReader(path) as r:
            r.verify()

    for read in (lambda: read_file(path), training_path, verify):
        with pytest.raises(ss.CorruptFileError) as e:
            read()
        assert e.value.path == path and e.value.row_group == row_group and e.value.column == column, str(e.value)
        assert repr(path) in str(e.value)
        if column is not None:
            assert repr(column) in str(e.value)
        if row_group is not None:
            assert f"row group {row_group}" in str(e.value)
        errors.append(e.value)
    return errors


@pytest.mark.parametrize("name", sorted(mk.CRAFTED))
def test_committed_crafted_files_are_what_the_generator_makes(name):
    make, _, _ = mk.CRAFTED[name]
    with open(os.path.join(CRAFTED_DIR, name), "rb") as f:
        assert f.read() == make(), f"rerun tests/format/crafted/make_crafted.py and commit {name}"


@pytest.mark.parametrize("name", sorted(mk.CRAFTED))
def test_committed_crafted_file_is_refused_naming_file_row_group_and_column(name):
    _, row_group, column = mk.CRAFTED[name]
    _refused_everywhere(os.path.join(CRAFTED_DIR, name), row_group, column)


@pytest.mark.parametrize("first", [1_000_000, 2**30, 2**31 - 1])
def test_lengths_wrapping_past_int32_in_int64_are_refused(tmp_path, first):
    # The lengths sum to the 2 ids there are only in wrapping int64 arithmetic; the first row
    # claimed `first` ids of a 16-byte buffer (read past it, or a segfault for large values).
    path = _write(tmp_path, mk.lengths_wrap(first))
    errors = _refused_everywhere(path, 0, "ids")
    assert "values stream holds 2" in str(errors[0])


def test_lengths_beyond_the_values_are_refused_in_every_encoding(tmp_path):
    from samplestore.format import _codec

    lengths = np.array([1, 5, 0], np.int64)  # 6 in all for 2 ids, no wrapping involved
    buf = np.empty(30, np.uint8)
    size = _codec.delta_varint_encode(lengths, buf)
    for head in (stream(lengths, DType.INT64, 3),
                 stream(buf[:size], DType.INT64, 3, encoding=Encoding.DELTA_VARINT),
                 stream(np.array([1, 5, 0], "u1"), DType.INT64, 3, encoding=Encoding.FOR, param1=1)):
        chunk = pack_chunk([head, stream(np.array([7, 8], "<i8"), DType.INT64, 2)])
        blob = assemble([[chunk], [mk._click(3)]], [mk.IDS, mk.CLICK], [3])
        _refused_everywhere(_write(tmp_path, blob), 0, "ids")


def test_training_loader_window_refuses_wrapped_lengths(tmp_path):
    # The SampleDataset path: load_window decodes row groups through FileReader.read_raw.
    pytest.importorskip("torch")
    from samplestore.torch.window import FeatureLayout, ReaderCache, load_window

    path = _write(tmp_path, mk.lengths_wrap(1_000_000))
    layout = FeatureLayout.of([ss.Sparse("ids"), ss.Label("click")])
    readers = ReaderCache()
    try:
        with pytest.raises(ss.CorruptFileError) as e:
            load_window(np.array([[0, 0, 3]], np.int64), [path], np.array([0]), np.array([0]), layout, readers)
    finally:
        readers.close()
    assert e.value.row_group == 0 and e.value.column == "ids"


def test_verify_command_reports_a_crafted_file_as_damaged(tmp_path, capsys):
    from samplestore.cli.main import main

    store = ss.open_store(tmp_path / "store", create=True)
    table = store.create_table("t", ss.Schema([ss.Sparse("ids"), ss.Label("click")]))
    table.append(pa.table({"ids": pa.array([[1], [], [2]], pa.list_(pa.int64())),
                           "click": pa.array([0.0, 1.0, 0.0], pa.float32())}))
    assert main(["verify", str(tmp_path / "store"), "--json"]) == 0
    capsys.readouterr()
    [f] = table.files()
    path = os.path.join(table.dir, f.path)
    with open(path, "wb") as out:  # same columns and rows, checksums intact, lengths that wrap
        out.write(mk.lengths_wrap())
    code = main(["verify", str(tmp_path / "store"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["ok"]
    [t] = report["tables"]
    assert not t["ok"] and len(t["errors"]) == 1
    assert t["errors"][0]["path"] == path
    assert "row group 0" in t["errors"][0]["error"] and "'ids'" in t["errors"][0]["error"]


def test_zstd_frames_declaring_3_gib_are_refused_before_allocating(tmp_path):
    # Under a 1 GiB address-space limit: a reader that allocates what a frame header (or a
    # stream head) declares before checking it fails with MemoryError instead.
    files = {
        "frame_3gib": mk.zstd_declaring(3 << 30),  # the committed file
        "frame_unsized_head_3gib": mk.zstd_declaring(None, encoded_size=3 << 30),
        "frame_and_head_3gib": mk.zstd_declaring(3 << 30, encoded_size=3 << 30),
        "frame_2_64": mk.zstd_declaring(2**64 - 1),
    }
    paths = {k: _write(tmp_path, v, f"{k}.ssf") for k, v in files.items()}
    script = textwrap.dedent("""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        import samplestore as ss
        from samplestore.format import FileReader, read_file
        out = {}
        for name, path in json.loads(sys.argv[1]).items():
            try:
                read_file(path)
                out[name] = "read"
            except ss.CorruptFileError as exc:
                out[name] = ["CorruptFileError", exc.row_group, exc.column, str(exc)]
            except BaseException as exc:
                out[name] = [type(exc).__name__, str(exc)]
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(paths)], capture_output=True, text=True,
                          timeout=120, env=_child_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    for name, got in out.items():
        assert got[:3] == ["CorruptFileError", 0, "click"], (name, got)
    assert "declaring 3221225472 bytes, expected 16" in out["frame_3gib"][3]


def test_zstd_frame_without_content_size_is_refused(tmp_path):
    # The format stores one frame with its content size set; one without is not ours.
    path = _write(tmp_path, mk.zstd_declaring(None, encoded_size=16))
    with pytest.raises(ss.CorruptFileError, match="no content size") as e:
        read_file(path)
    assert e.value.row_group == 0 and e.value.column == "click"
    with FileReader(path) as r, pytest.raises(ss.CorruptFileError):
        r.verify()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(ss.__file__))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("descriptor, column", [
    (b'{"kind":["sparse"],"name":"ids","weighted":false}', "ids"),  # TypeError (unhashable kind)
    (b'{"kind":{"a":1},"name":"ids"}', "ids"),
    (b'{"kind":"sparse","name":"ids","weighted":' + b"[" * 5000 + b"]" * 5000 + b"}", None),  # RecursionError
    (b'{"kind":"sparse","name":7}', None),
    (b'[1,2,3]', None),
    (b'{"kind":"sparse","name":"ids","extra":1}', "ids"),
    (b'{"kind":"sparse","name":"\xff\xfe"}', None),  # not UTF-8
    (b'{"kind":"dense","name":"ids","dim":1e400}', "ids"),
    (b'{"kind":"dense","name":"ids","dim":' + b"9" * 5000 + b"}", None),  # int longer than Python parses
])
def test_malformed_column_descriptors_are_refused(tmp_path, descriptor, column):
    path = _write(tmp_path, mk.with_descriptor(descriptor))
    with pytest.raises(ss.CorruptFileError, match="column descriptor 0 of 2") as e:
        read_file(path)
    assert e.value.path == path and e.value.column == column and e.value.row_group is None
    with FileReader(path) as r:
        with pytest.raises(ss.CorruptFileError, match="column descriptor 0 of 2"):
            r.has_column("ids")  # the training loader's lookup
        with pytest.raises(ss.CorruptFileError, match="column descriptor 0 of 2"):
            r.schema


def test_descriptor_that_disagrees_with_the_name_index_is_refused(tmp_path):
    # A descriptor renamed in place ("ids" -> "idz") no longer hashes to its index entry: the
    # column would otherwise vanish from lookups (and the loader read defaults for it).
    blob = bytearray(mk.with_descriptor(mk.IDS))
    at = blob.index(b'"name":"ids"') + len(b'"name":"id')
    blob[at:at + 1] = b"z"
    path = _write(tmp_path, bytes(fix_checksums(blob)))
    with FileReader(path) as r, pytest.raises(ss.CorruptFileError, match="name index") as e:
        r.has_column("ids")
    assert e.value.column == "idz"
    with pytest.raises(ss.CorruptFileError, match="name index"):
        read_file(path)


def test_two_descriptors_with_one_name_are_refused(tmp_path):
    chunk = pack_chunk([stream(np.array([1, 0, 1], "<i8"), DType.INT64, 3),
                        stream(np.array([7, 8], "<i8"), DType.INT64, 2)])
    path = _write(tmp_path, assemble([[chunk], [chunk]], [mk.IDS, mk.IDS], [3]))
    with pytest.raises(ss.CorruptFileError, match="both name 'ids'"):
        read_file(path)


def _stream_field(blob: bytes, column: str, role: int, field: str, value: int) -> bytes:
    """``blob`` with one field of one stream head set to ``value``, checksums recomputed."""
    lay = parse(blob)
    sm = lay.chunk(column, 0).streams[role]
    at, size, signed = {"encoding": (0, 1, False), "codec": (1, 1, False), "count": (8, 8, False),
                        "encoded_size": (16, 8, False), "stored_size": (24, 8, False),
                        "param0": (32, 8, True), "param1": (40, 8, True)}[field]
    buf = bytearray(blob)
    IntField(field, sm.head_at + at, size, signed).write(buf, value)
    return bytes(fix_checksums(buf))


def _for_file() -> bytes:
    """ids/click where both ids streams are frame-of-reference coded, width 1."""
    chunk = pack_chunk([stream(np.array([1, 0, 1], "u1"), DType.INT64, 3, encoding=Encoding.FOR, param1=1),
                        stream(np.array([7, 8], "u1"), DType.INT64, 2, encoding=Encoding.FOR, param1=1)])
    return assemble([[chunk], [mk._click(3)]], [mk.IDS, mk.CLICK], [3])


def _dict_file() -> bytes:
    """ids/click whose ids stream is a 2-entry dictionary with 8-bit indices."""
    entries = np.empty(16, np.uint8)
    from samplestore.format import _codec
    _codec.shuffle_bytes(np.array([7, 8], "<i8").view(np.uint8), 8, entries)
    payload = np.concatenate([entries, np.array([0, 1], np.uint8)])
    chunk = pack_chunk([stream(np.array([1, 0, 1], "<i8"), DType.INT64, 3),
                        stream(payload, DType.INT64, 2, encoding=Encoding.DICT, param0=2, param1=8)])
    return assemble([[chunk], [mk._click(3)]], [mk.IDS, mk.CLICK], [3])


def _scalar_file(validity: bytes) -> bytes:
    """One nullable int64 scalar of 3 rows with the given validity stream."""
    chunk = pack_chunk([stream(validity, DType.UINT8, len(validity)), stream(np.array([5, 0, 7], "<i8"), DType.INT64, 3)])
    return assemble([[chunk]], [b'{"kind":"scalar","name":"ids","dtype":"int64","nullable":true}'], [3])


@pytest.mark.parametrize("make, role, field, value", [
    (_for_file, 0, "param1", 2**40),  # lengths width: OverflowError converting it to a C int
    (_for_file, 1, "param1", 2**40),  # ids width
    (_for_file, 1, "param1", -(2**63)),
    (_for_file, 0, "param1", 8),
    (_dict_file, 1, "param1", 2**40),  # index bits
    (_dict_file, 1, "param0", 2**62),  # dictionary entries
    (_dict_file, 1, "param0", -1),
    (lambda: mk.lengths_wrap(), 0, "count", 2**64 - 1),
    (lambda: mk.lengths_wrap(), 1, "count", 2**61),
    (lambda: mk.lengths_wrap(), 1, "encoded_size", 2**63),
    (lambda: mk.lengths_wrap(), 1, "codec", Codec.ZSTD),
    (lambda: mk.lengths_wrap(), 1, "codec", Codec.ZSTD_PLANES),
    (lambda: mk.lengths_wrap(), 1, "encoding", Encoding.BYTE_SHUFFLE),
    (lambda: _scalar_file(b"\x05"), 0, "count", 0),  # validity bytes there, head says none
])
def test_malformed_stream_heads_are_refused(tmp_path, make, role, field, value):
    path = _write(tmp_path, _stream_field(make(), "ids", role, field, value))
    with pytest.raises(ss.CorruptFileError) as e:
        read_file(path)
    assert e.value.path == path and e.value.row_group == 0 and e.value.column == "ids"


def test_int32_column_holding_a_wider_value_is_refused(tmp_path):
    chunk = pack_chunk([stream(b"", DType.UINT8, 0), stream(np.array([1, 2**40], "<i8"), DType.INT64, 2)])
    path = _write(tmp_path, assemble([[chunk]], [b'{"kind":"scalar","name":"x","dtype":"int32","nullable":true}'], [2]))
    with pytest.raises(ss.CorruptFileError, match="outside the int32 range"):
        read_file(path)


def test_invalid_utf8_in_a_string_column_is_refused(tmp_path):
    chunk = pack_chunk([stream(b"", DType.UINT8, 0), stream(np.array([2, 1], "<i8"), DType.INT64, 2),
                        stream(b"ok\xff", DType.UINT8, 3)])
    path = _write(tmp_path, assemble([[chunk]], [b'{"kind":"scalar","name":"s","dtype":"string","nullable":true}'], [2]))
    with pytest.raises(ss.CorruptFileError, match="UTF-8") as e:
        read_file(path)
    assert e.value.column == "s" and e.value.row_group == 0


@pytest.mark.parametrize("rows", [0, 4, 2**31, 2**63 + 3])
def test_row_group_sizes_beyond_limits_are_refused(tmp_path, rows):
    blob = bytearray(mk.lengths_wrap())
    lay = parse(bytes(blob))
    # The file's one row group and its row count changed together, so that they agree.
    IntField("rg", lay.sections["rg_rows"][0], 8).write(blob, rows)
    IntField("rows", lay.footer_at + 8, 8).write(blob, rows)
    path = _write(tmp_path, bytes(fix_checksums(blob)))
    with pytest.raises(ss.CorruptFileError, match="row groups hold") as e:
        FileReader(path)
    assert e.value.path == path
