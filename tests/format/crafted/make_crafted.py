"""Write the crafted .ssf files in this folder: checksum-valid files that a reader must refuse.

Each file has correct chunk and footer checksums, so only the checks behind them stand
between its bytes and the decoders. ``tests/format/test_crafted.py`` reads each one and
checks that this script still makes exactly the committed bytes. Rerun it (it overwrites
the files) when adding a case::

    PYTHONPATH=src python tests/format/crafted/make_crafted.py

The files are laid out by ``tests/format/ssf_layout.py`` from explicit streams, not by the
writer, so they do not change when the writer's encoding choices do.
"""

from __future__ import annotations

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..")]

import numpy as np  # noqa: E402

from samplestore.format.spec import Codec, DType, Encoding  # noqa: E402
from ssf_layout import assemble, pack_chunk, stream  # noqa: E402

IDS = b'{"kind":"sparse","name":"ids","weighted":false}'
CLICK = b'{"kind":"label","name":"click"}'


def _i64(*v: int) -> np.ndarray:
    return np.array(v, "<i8")


def _click(n: int) -> bytes:
    return pack_chunk([stream(np.arange(n, dtype="<f4") % 2, DType.FLOAT32, n)])


def sparse_file(lengths: list[int], ids: list[int], **lengths_head: int) -> bytes:
    """Columns ``ids`` (sparse) and ``click`` in one row group; the lengths stream as given."""
    n = len(lengths)
    payload = np.array([x % 2**64 for x in lengths], "<u8")
    chunk = pack_chunk([stream(payload, DType.INT64, n, **lengths_head),
                        stream(_i64(*ids), DType.INT64, len(ids))])
    return assemble([[chunk], [_click(n)]], [IDS, CLICK], [n])


def lengths_wrap(first: int = 1_000_000) -> bytes:
    """Three rows whose lengths sum, in wrapping int64 arithmetic, to the 2 ids there are.

    Each length is a valid non-negative int64 and the total matches the ids stream, but the
    first row claims ``first`` ids of a 16-byte buffer: int32 offsets 0, ``first``, ..., 2.
    """
    second = 2**63 - 1
    third = (2 - first - second) % 2**64
    return sparse_file([first, second, third], [7, 8])


def lengths_width_overflow() -> bytes:
    """A frame-of-reference lengths stream whose width (param1) does not fit a C int."""
    n = 3
    chunk = pack_chunk([stream(np.array([1, 0, 1], "u1"), DType.INT64, n, encoding=Encoding.FOR,
                               encoded_size=3, param1=2**40),
                        stream(_i64(7, 8), DType.INT64, 2)])
    return assemble([[chunk], [_click(n)]], [IDS, CLICK], [n])


def zstd_frame(declared: int | None, content: bytes = b"\0" * 16) -> bytes:
    """A zstd frame of one RLE block repeating ``content[0]`` ``len(content)`` times, whose
    header declares ``declared`` bytes of content (None: no content size in the header)."""
    if declared is None:
        header = bytes([0x00, 0x00])  # no content size, not single-segment; window descriptor 0 (1 KiB)
    else:
        header = bytes([0xE0]) + struct.pack("<Q", declared)  # single segment, 8-byte content size
    block = 1 | (1 << 1) | (len(content) << 3)  # last block, RLE
    return b"\x28\xb5\x2f\xfd" + header + struct.pack("<I", block)[:3] + content[:1]


def zstd_declaring(declared: int | None = 3 << 30, encoded_size: int = 16) -> bytes:
    """One label column of 4 rows whose values are a zstd frame declaring ``declared`` bytes."""
    chunk = pack_chunk([stream(zstd_frame(declared), DType.FLOAT32, 4, codec=Codec.ZSTD,
                               encoded_size=encoded_size)])
    return assemble([[chunk]], [CLICK], [4])


def with_descriptor(descriptor: bytes) -> bytes:
    """The ``ids``/``click`` file of three valid rows with the ``ids`` descriptor replaced."""
    chunk = pack_chunk([stream(_i64(1, 0, 1), DType.INT64, 3), stream(_i64(7, 8), DType.INT64, 2)])
    return assemble([[chunk], [_click(3)]], [descriptor, CLICK], [3])


def bad_descriptor() -> bytes:
    """A descriptor whose kind is a list (``_KINDS.get`` raised TypeError on it)."""
    return with_descriptor(b'{"kind":["sparse"],"name":"ids","weighted":false}')


def deep_descriptor(depth: int = 5000) -> bytes:
    """A descriptor nested deeper than the JSON parser recurses (it raised RecursionError)."""
    return with_descriptor(b'{"kind":"sparse","name":"ids","weighted":' + b"[" * depth + b"]" * depth + b"}")


#: file name -> (bytes maker, row group and column the error must name)
CRAFTED = {
    "lengths_wrap.ssf": (lengths_wrap, 0, "ids"),
    "lengths_width_overflow.ssf": (lengths_width_overflow, 0, "ids"),
    "zstd_3gib.ssf": (zstd_declaring, 0, "click"),
    "bad_descriptor.ssf": (bad_descriptor, None, "ids"),
    "deep_descriptor.ssf": (deep_descriptor, None, None),
}

if __name__ == "__main__":
    for name, (make, _rg, _col) in CRAFTED.items():
        path = os.path.join(HERE, name)
        with open(path, "wb") as f:
            f.write(make())
        print(path)
