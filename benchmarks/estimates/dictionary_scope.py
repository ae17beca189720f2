"""Bytes of the id-list columns under different dictionary scopes and compression frames.

An estimate for the format's design (docs/ARCHITECTURE.md, "Reading for training"), not a
benchmark of the writer: on the loader bench's 1,000,000 Criteo-like rows, each of the 26
id-list columns is dictionary-encoded per ``scope`` rows (most frequent id first, indices
one, two or four bytes wide; each group's dictionary zstd-compressed whole) and its indices
and list lengths are zstd-compressed (level 3) in independent frames of ``frame`` rows.
Prints, for each (scope, frame), B/sample in all and the dictionaries' B/sample. Took 2.4
minutes on one core here:

    python benchmarks/estimates/dictionary_scope.py
"""

import numpy as np
import pyarrow as pa
import zstandard

from samplestore import datagen

ROWS, CHUNK = 1_000_000, 500_000
SETTINGS = [(8_192, 8_192), (65_536, 65_536), (65_536, 1_024), (65_536, 512), (1_024, 1_024), (512, 512)]


def _lists(rows: int) -> list[pa.ListArray]:
    parts = [datagen.criteo_like(min(CHUNK, rows - s), seed=k) for k, s in enumerate(range(0, rows, CHUNK))]
    table = pa.concat_tables(parts)
    return [table.column(f.name).combine_chunks() for f in table.schema if pa.types.is_list(f.type)]


def _column_bytes(col: pa.ListArray, scope: int, frame: int, z: zstandard.ZstdCompressor) -> tuple[int, int]:
    """(dictionary bytes, index + length bytes) of one column."""
    offs, vals, n = col.offsets.to_numpy(), col.values.to_numpy(), len(col)
    dict_bytes = rest = 0
    for g0 in range(0, n, scope):
        g1 = min(n, g0 + scope)
        ids, inverse, counts = np.unique(vals[offs[g0]:offs[g1]], return_inverse=True, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        rank = np.empty(len(ids), np.int64)
        rank[order] = np.arange(len(ids))
        width = np.uint8 if len(ids) <= 256 else np.uint16 if len(ids) <= 65_536 else np.uint32
        idx = rank[inverse].astype(width)
        dict_bytes += len(z.compress(ids[order].astype("<i8").tobytes()))
        for p0 in range(g0, g1, frame):
            p1 = min(g1, p0 + frame)
            rest += len(z.compress(idx[offs[p0] - offs[g0]:offs[p1] - offs[g0]].tobytes()))
            lengths = np.diff(offs[p0:p1 + 1])
            assert lengths.max(initial=0) < 256, "list lengths are stored as one byte here"
            rest += len(z.compress(lengths.astype(np.uint8).tobytes()))
    return dict_bytes, rest


def main() -> None:
    cols = _lists(ROWS)
    z = zstandard.ZstdCompressor(level=3)
    print(f"{len(cols)} id-list columns, {ROWS:,} rows")
    for scope, frame in SETTINGS:
        parts = [_column_bytes(c, scope, frame, z) for c in cols]
        d, r = sum(p[0] for p in parts), sum(p[1] for p in parts)
        print(f"dictionary per {scope:>6,} rows, frames of {frame:>6,} rows: {(d + r) / ROWS:6.1f} B/sample "
              f"(dictionaries {d / ROWS:5.1f})", flush=True)


if __name__ == "__main__":
    main()
